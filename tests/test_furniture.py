"""Book furniture: logo and favicon, footer (licence, how to cite, PDF), base URL, issues
button, MyST extensions, theme mode, licence metadata; and the accessibility fixes of
_ext/lthbook_furniture.py. The browser test checks the rendered pages (no 404, no console
error, axe audit); these tests check the configuration and the HTML the build writes."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))

import lthbook_furniture  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def test_logo_and_favicon_are_the_books_own_svg():
    assert CONFIG["logo"] == CONFIG["html"]["favicon"] == "_static/logo.svg"
    svg = (ROOT / CONFIG["logo"]).read_text()
    assert svg.lstrip().startswith("<svg") and "<title" in svg  # an accessible name for the drawing
    assert CONFIG["sphinx"]["config"]["html_theme_options"]["logo"]["text"]  # the title stays in the sidebar


def test_base_url_matches_the_repository():
    owner, repo = CONFIG["repository"]["url"].rstrip("/").split("/")[-2:]
    assert CONFIG["html"]["baseurl"] == f"https://{owner}.github.io/{repo}/"
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["url"] == CONFIG["html"]["baseurl"] and citation["repository-code"] == CONFIG["repository"]["url"]


def test_config_choices():
    assert CONFIG["html"]["use_issues_button"] is True
    extensions = CONFIG["parse"]["myst_enable_extensions"]
    assert {"linkify", "tasklist", "amsmath", "dollarmath", "colon_fence"} <= set(extensions)
    pytest.importorskip("linkify_it", reason="linkify needs linkify-it-py")  # myst-parser's linkify backend
    sphinx = CONFIG["sphinx"]["config"]
    assert sphinx["proof_minimal_theme"] is False and sphinx["exercise_style"] == "solution_follow_exercise"
    # without it pydata-sphinx-theme logs "Got invalid theme mode" on every page
    assert sphinx["html_context"]["default_mode"] in ("auto", "light", "dark")


def test_pyproject_licence_is_an_spdx_string():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    requires = project["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77 for r in requires)


def test_sidebar_toggles_get_the_name_of_their_chapter():
    toc = ('<ul><li class="toctree-l1 has-children"><a class="reference internal" href="ch5.html">5. Numerical '
           '<span>experiments</span></a><details><summary><span class="toctree-toggle" role="presentation">'
           '<i class="fa-solid fa-chevron-down"></i></span></summary><ul>...</ul></details></li></ul>')
    out = lthbook_furniture.label_toggles(toc)
    assert '<summary aria-label="Sections of 5. Numerical experiments"><span class="toctree-toggle"' in out
    assert lthbook_furniture.label_toggles("<p>no toggles</p>") == "<p>no toggles</p>"


@pytest.mark.book
def test_built_pages_carry_the_furniture(built_book):
    if not (built_book.html / "index.html").exists():
        pytest.skip("the book did not build (see test_strict_build_at_ci_scale)")
    for name in built_book.pages:
        page = (built_book.html / f"{name}.html").read_text(encoding="utf-8")
        assert '<link rel="icon" href="../_static/logo.svg"' in page, name
        assert f'<link rel="canonical" href="{CONFIG["html"]["baseurl"]}{name}.html"' in page, name
        assert 'href="https://github.com/lthbook/lthbook/blob/main/LICENSE">MIT licence</a>' in page, name
        assert re.search(r'href="(preface\.html)?#how-to-cite">How to cite</a>', page), name
        assert "github.com/lthbook/lthbook/issues/new" in page, name  # the issues button
        assert "<summary>" not in page.split('bd-docs-nav" aria-label="Main">')[1].split("</nav>")[0], name
    assert 'id="how-to-cite"' in (built_book.html / "book" / "preface.html").read_text(encoding="utf-8")
    assert 'role="doc-biblioentry"' not in (built_book.html / "book" / "bibliography.html").read_text(encoding="utf-8")
