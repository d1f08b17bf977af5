"""The whole-book PDF (``make pdf``, _ext/lthbook_pdf.py), printed from the ``ci``-scale build.

The PDF is printed from the session's strict build (``built_book``, tests/conftest.py) and
read back with pypdf: every chapter title, every theorem, lemma, definition and algorithm
title and every figure caption of the HTML is in its text, the page count is sane, the
outline lists every chapter, and the links between chapters are links inside the PDF.
Then the HTML is built once more into the same folder, as ``make pdf`` does, and every page
must link to the PDF in its footer.

Needs Chromium like the browser test; skipped without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))

import lthbook_pdf  # noqa: E402


def _chromium():
    return os.environ.get("LTHBOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _squash(text: str) -> str:
    """Text without whitespace, ligatures or soft hyphens, to compare HTML and PDF text."""
    return re.sub(r"[\s\u00ad]+", "", unicodedata.normalize("NFKC", text)).lower()


def _plain_runs(element, min_words: int = 3) -> list[str]:
    """The runs of plain text (no math) of at least ``min_words`` words of an HTML element, longest first."""
    clone = element.__copy__()
    for math in clone.select(".math, mjx-container, a.headerlink, .caption-number"):
        math.replace_with("\x00")
    runs = [" ".join(r.split()) for r in clone.get_text().split("\x00")]
    return sorted((r for r in runs if len(r.split()) >= min_words), key=len, reverse=True)


@pytest.fixture(scope="module")
def printed(built_book, tmp_path_factory):
    if _chromium() is None:
        pytest.skip("no Chromium found (install Debian's 'chromium' package or set $LTHBOOK_CHROMIUM)")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("pypdf")
    if not (built_book.html / "index.html").exists():
        pytest.skip("the book did not build (see test_strict_build_at_ci_scale)")
    prebuilt = bool(os.environ.get("LTHBOOK_BOOK_HTML"))
    html = built_book.html
    if prebuilt:  # never write into a build the user made: print from a copy
        html = tmp_path_factory.mktemp("pdf") / "html"
        shutil.copytree(built_book.html, html)
    pdf = lthbook_pdf.print_pdf(html, html / "lthbook.pdf")
    return built_book, html, pdf, prebuilt


@pytest.mark.book
def test_pdf_holds_every_chapter_theorem_and_caption(printed):
    from bs4 import BeautifulSoup
    from pypdf import PdfReader

    book, html, pdf, _ = printed
    reader = PdfReader(pdf)
    assert 50 <= len(reader.pages) <= 1000, f"{len(reader.pages)} pages"
    text = _squash("\n".join(page.extract_text() or "" for page in reader.pages))
    missing, counts = [], {"chapters": 0, "theorems": 0, "captions": 0}
    for name in book.pages:
        soup = BeautifulSoup((html / f"{name}.html").read_text(encoding="utf-8"), "html.parser")
        article = soup.find("article", class_="bd-article")
        h1 = article.find("h1")
        checks = [("chapters", h1)]
        checks += [("theorems", t) for t in article.select(".proof > .admonition-title, .exercise > .admonition-title")]
        checks += [("captions", c) for c in article.select("figcaption")]
        for kind, element in checks:
            runs = _plain_runs(element, 3 if kind == "captions" else 1) or [""]
            counts[kind] += 1
            if not runs[0] or _squash(runs[0]) not in text:
                missing.append(f"{name}: {kind[:-1]} {runs[0]!r}")
    assert not missing, "not in the PDF:\n" + "\n".join(missing)
    # the book has these in every build; a selector that finds nothing would test nothing
    assert counts["chapters"] == len(book.pages) and counts["theorems"] >= 5 and counts["captions"] >= 15, counts


@pytest.mark.book
def test_pdf_outline_contents_and_internal_links(printed):
    from pypdf import PdfReader

    book, _, pdf, _ = printed
    reader = PdfReader(pdf)
    top = [item.title for item in reader.outline if not isinstance(item, list)]
    assert top[:3] == ["Why Lottery Ticket Wins? An executable book", "Contents", "Preface"]
    assert len(top) == len(book.pages) + 2 and "1. Introduction" in top and "Bibliography" in top
    contents = reader.pages[1].extract_text()
    assert re.search(r"1\. Introduction\s*\d+", contents), contents[:500]
    internal = external_to_localhost = 0
    for page in reader.pages:
        for annot in page.get("/Annots") or []:
            annot = annot.get_object()
            action = annot.get("/A") or {}
            if "/Dest" in annot or action.get("/S") == "/GoTo":
                internal += 1
            elif "127.0.0.1" in str(action.get("/URI", "")):
                external_to_localhost += 1
    assert internal > 100 and external_to_localhost == 0
    assert reader.metadata.title == "Why Lottery Ticket Wins? An executable book"


@pytest.mark.book
def test_every_page_links_to_the_pdf_after_the_rebuild(printed):
    book, html, pdf, prebuilt = printed
    if prebuilt:
        pytest.skip("a prebuilt book ($LTHBOOK_BOOK_HTML) is not rebuilt; `make pdf` does that")
    out = html.parent.parent  # the --path-output of the session's build (tests/conftest.py)
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    proc = subprocess.run([jupyter_book, "build", str(ROOT), "--config", str(out / "_config.yml"),
                           "--path-output", str(out), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "LTHBOOK_SCALE": "ci"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in book.pages:
        page = (html / f"{name}.html").read_text(encoding="utf-8")
        depth = name.count("/")
        assert f'href="{"../" * depth}lthbook.pdf">Download the book as PDF' in page, name
    assert pdf.is_file()
