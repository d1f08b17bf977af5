"""A strict build of the whole book at the ``ci`` scale.

Catches what nbval cannot: broken cross references (including references to
figures that only exist once a cell has run), unknown directives or roles, bad
bibliography keys and files missing from ``_toc.yml``. It executes every
chapter afresh (``execute_notebooks: force``) at the ``ci`` scale into a
temporary folder, so it never touches ``_build/`` and takes about as long as
running the chapters once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.book
def test_strict_build_at_ci_scale(tmp_path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "force"
    config_path = tmp_path / "_config.yml"
    config_path.write_text(yaml.safe_dump(config))
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    proc = subprocess.run(
        [jupyter_book, "build", str(ROOT), "--config", str(config_path), "--path-output", str(tmp_path),
         "-W", "-n", "--keep-going", "--all"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "LTHBOOK_SCALE": "ci"},
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    html = tmp_path / "_build" / "html"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []))
    missing = [f for f in files if not (html / f"{f}.html").exists()]
    assert not missing, f"pages missing from the build: {missing}"
    # MathJax is served from the book itself, not from a CDN
    page = (html / "book" / "api.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
