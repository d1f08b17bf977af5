"""A strict build of the whole book at the ``ci`` scale.

Catches what nbval cannot: broken cross references (including references to
figures that only exist once a cell has run), unknown directives or roles, bad
bibliography keys and files missing from ``_toc.yml``. The build itself is the
session fixture ``built_book`` (tests/conftest.py): it executes every chapter
afresh (``execute_notebooks: force``) at the ``ci`` scale into a temporary
folder, so it never touches ``_build/`` and takes about as long as running the
chapters once. The browser test (test_book_browser.py) reads the same build.
"""

from __future__ import annotations

import pytest


@pytest.mark.book
def test_strict_build_at_ci_scale(built_book):
    assert built_book.returncode == 0, built_book.log[-6000:]
    html = built_book.html
    missing = [f for f in built_book.pages if not (html / f"{f}.html").exists()]
    assert not missing, f"pages missing from the build: {missing}"
    # MathJax is served from the book itself, not from a CDN
    page = (html / "book" / "api.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
