"""Collect the book's chapters (jupytext MyST ``.md`` notebooks) for nbval.

nbval only knows ``.ipynb`` files; the chapters are committed as MyST markdown
without outputs. Here each ``book/*.md`` that carries a jupytext header is read
with jupytext and handed to nbval's collector, so ``pytest`` runs every chapter
top to bottom (in lax mode: a cell passes when it raises nothing; the chapters'
claim-check cells assert the paper's claims). The chapters run at the ``ci``
scale unless ``LTHBOOK_SCALE`` says otherwise.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

import jupytext
import nbformat
from nbval.plugin import IPyNbFile

os.environ.setdefault("LTHBOOK_SCALE", "ci")
# tests compute every experiment afresh: a results cache left by an earlier run (or an
# older version of lthbook) must not stand in for the code under test
os.environ.setdefault("LTHBOOK_CACHE_DIR", tempfile.mkdtemp(prefix="lthbook-test-cache-"))

BOOK_DIR = Path(__file__).parent / "book"


def _is_notebook(path: Path) -> bool:
    if path.suffix != ".md" or path.parent != BOOK_DIR:
        return False
    head = path.read_text(encoding="utf-8")[:400]
    return head.startswith("---") and "jupytext:" in head


class MarkdownNotebook(IPyNbFile):
    """nbval's notebook collector, reading the notebook with jupytext."""

    def collect(self):
        def read(path, as_version=4, **kwargs):
            return jupytext.read(path, as_version=as_version)

        with mock.patch.object(nbformat, "read", read):
            yield from super().collect()


def pytest_collect_file(file_path, parent):
    if _is_notebook(Path(file_path)):
        return MarkdownNotebook.from_parent(parent, path=file_path)
    return None
