"""Binder and Colab: generated notebooks, launch-button URLs, Binder's pip install.

* The ``.ipynb`` notebooks generated for Colab (``make notebooks``,
  _ext/lthbook_notebooks.py) hold exactly the chapters' code, without outputs, behind
  one install cell; two chapters run top to bottom in a fresh kernel at the ``ci`` scale.
  Only two: every chapter already runs top to bottom in a fresh kernel under nbval (the
  ``book/*.md`` items of this test run), and the conversion is the same for all of them,
  so what remains to test is that a converted notebook, install cell included, still
  runs; the preface and §2 do that in seconds. ``LTHBOOK_TEST_ALL_NOTEBOOKS=1`` runs
  every chapter instead (about as long as the nbval run).
* The Binder and Colab buttons of the built book (session fixture ``built_book``) are
  well-formed URLs that point at files that exist: the ``.md`` chapter in the repository
  for Binder, the published notebook in the HTML folder for Colab.
* Binder's environment installs with pip into a clean virtual environment. That takes a
  few minutes (PyTorch alone is several hundred MB), so it runs only when
  ``LTHBOOK_TEST_BINDER=1`` is set: ``make test-binder``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))

import lthbook_notebooks  # noqa: E402


def _code(cells) -> list[str]:
    return [c.source for c in cells if c.cell_type == "code"]


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("notebooks")
    written = lthbook_notebooks.write_notebooks(out)
    return {str(p.relative_to(out).with_suffix("")): p for p in written}


def test_every_chapter_with_code_gets_a_notebook(notebooks):
    expected = [name for name in lthbook_notebooks.toc_docnames()
                if lthbook_notebooks.is_text_notebook(ROOT / f"{name}.md")]
    assert "book/ch3_local_geometry" in expected
    assert sorted(notebooks) == sorted(expected)


def test_notebooks_hold_the_chapters_code_without_outputs(notebooks):
    for name, path in notebooks.items():
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert lthbook_notebooks.INSTALL_TAG in nb.cells[0].metadata.get("tags", []), name
        assert _code(nb.cells[1:]) == _code(jupytext.read(ROOT / f"{name}.md").cells), name
        assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code"), name
        assert nb.metadata["kernelspec"]["name"] == "python3"


def test_install_cell_installs_from_the_repository():
    url, branch = lthbook_notebooks.repository()
    cell = lthbook_notebooks.install_cell("from myst_nb import glue", url, branch)
    assert f'"lthbook": "lthbook @ git+{url}@{branch}"' in cell.source
    assert '"myst_nb": "myst-nb"' in cell.source
    assert "myst_nb" not in lthbook_notebooks.install_cell("import numpy", url, branch).source
    assert "lthbook.mnist" not in cell.source
    assert '"lthbook.mnist", "fetch"' in lthbook_notebooks.install_cell('run_figure("fig7")', url, branch).source
    compile(cell.source, "install-cell", "exec")


_RUN = ["book/preface", "book/ch2_problem_formulation"]


@pytest.mark.book
@pytest.mark.parametrize("name", _RUN if not os.environ.get("LTHBOOK_TEST_ALL_NOTEBOOKS") else
                         [n for n in lthbook_notebooks.toc_docnames()
                          if lthbook_notebooks.is_text_notebook(ROOT / f"{n}.md")])
def test_generated_notebook_runs_in_a_fresh_kernel(notebooks, name, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("LTHBOOK_SCALE", "ci")
    nb = nbformat.read(notebooks[name], as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "book")}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert any(c.outputs for c in nb.cells[1:] if c.cell_type == "code"), "no cell printed or plotted anything"


def _launch_links(page: str) -> dict[str, str]:
    links = {}
    for href, provider in re.findall(r'<a href="([^"]+)"[^>]*title="Launch on ([^"]+)"', page):
        links[provider.strip()] = href.replace("&amp;", "&")
    return links


@pytest.mark.book
def test_launch_buttons_point_at_existing_files(built_book):
    # a build with warnings still writes every page (--keep-going): check what it wrote;
    # test_strict_build_at_ci_scale reports the warnings themselves
    if not (built_book.html / "index.html").exists():
        pytest.skip("the book did not build (see test_strict_build_at_ci_scale)")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo_path = urlsplit(config["repository"]["url"]).path.strip("/")  # "org/repo"
    branch = config["repository"].get("branch", "main")
    colab_branch = config["sphinx"]["config"].get("lthbook_colab_branch", "gh-pages")
    checked = 0
    for name in built_book.pages:
        if not lthbook_notebooks.is_text_notebook(ROOT / f"{name}.md"):
            continue
        links = _launch_links((built_book.html / f"{name}.html").read_text(encoding="utf-8"))
        assert {"Binder", "Colab"} <= set(links), f"{name}: launch buttons {sorted(links)}"

        binder = urlsplit(links["Binder"])
        assert (binder.scheme, binder.netloc) == ("https", "mybinder.org")
        assert binder.path == f"/v2/gh/{repo_path}/{branch}"
        (urlpath,) = parse_qs(binder.query)["urlpath"]
        assert urlpath == f"lab/tree/{name}.md"
        assert (ROOT / f"{name}.md").exists()

        colab = urlsplit(links["Colab"])
        assert (colab.scheme, colab.netloc) == ("https", "colab.research.google.com")
        prefix = f"/github/{repo_path}/blob/{colab_branch}/"
        assert colab.path.startswith(prefix), colab.path
        published = colab.path[len(prefix):]
        assert published == f"{lthbook_notebooks.HTML_SUBDIR}/{name}.ipynb"
        assert (built_book.html / published).is_file(), f"{name}: Colab notebook {published} not published"
        checked += 1
    assert checked >= 5


def _binder_requirements() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    (pip,) = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    return [req for req in pip if not req.startswith("-e")]


@pytest.mark.skipif(not os.environ.get("LTHBOOK_TEST_BINDER"),
                    reason="installs Binder's environment into a fresh venv (minutes); run `make test-binder`")
def test_binder_environment_installs_with_pip(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    try:
        _install_and_import(venv, tmp_path)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 1.7 GB


def _install_and_import(venv: Path, tmp_path: Path) -> None:
    py = venv / "bin" / "python"
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("\n".join(_binder_requirements() + [f"-e {ROOT}"]) + "\n")
    proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "-r", str(reqs)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check = ("import lthbook, jupytext, myst_nb, torch; "
             "nb = jupytext.read('book/ch3_local_geometry.md'); "
             "assert any(c.cell_type == 'code' for c in nb.cells); print(lthbook.__version__)")
    proc = subprocess.run([str(py), "-c", check], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # postBuild's first step: JupyterLab opens the .md chapters as notebooks
    post_build = (ROOT / "postBuild").read_text()
    assert (ROOT / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
    (line,) = [ln for ln in post_build.splitlines() if ln.startswith("jupytext-config")]
    env = {**os.environ, "HOME": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"),
           "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    subprocess.run(line.split(), check=True, env=env, capture_output=True)
    (settings,) = (tmp_path / ".jupyter").rglob("default_setting_overrides.json")
    viewers = json.loads(settings.read_text())["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["myst"] == viewers["markdown"] == "Jupytext Notebook"
