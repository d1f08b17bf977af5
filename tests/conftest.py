"""Shared pytest setup for the unit tests.

The unit tests use tiny tensors, for which one thread is fastest; with two
OpenMP threads on a busy 2-core machine every small batched matmul waits for
a time slice (milliseconds instead of microseconds). Results do not depend on
the thread count.

``built_book`` builds the whole book once per test session (strictly, at the
``ci`` scale, into a temporary folder); the strict-build test and the browser
test both read that one build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BookBuild:
    returncode: int
    log: str
    html: Path
    pages: list[str]  # the documents of _toc.yml, e.g. "book/ch3_local_geometry"


def toc_files() -> list[str]:
    """Every document of ``_toc.yml`` (``book/preface``, ``book/ch1_introduction``, ...)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []))
    return files


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BookBuild:
    """The book built with ``jupyter-book build -W -n --all`` at the ``ci`` scale, every
    chapter executed afresh (``execute_notebooks: force``), into a temporary folder.

    ``$LTHBOOK_BOOK_HTML``, when set, names the ``html`` folder of a build made before
    (e.g. by ``LTHBOOK_SCALE=ci make book``) and is used instead of building: a quick way
    to re-run the browser test and its screenshots on a finished build."""
    prebuilt = os.environ.get("LTHBOOK_BOOK_HTML")
    if prebuilt:
        return BookBuild(0, f"prebuilt book from $LTHBOOK_BOOK_HTML={prebuilt}", Path(prebuilt), toc_files())
    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "force"
    # local extension folders are resolved relative to the config file: make them absolute
    local = config.get("sphinx", {}).get("local_extensions") or {}
    for name, path in local.items():
        local[name] = str((ROOT / path).resolve())
    config_path = out / "_config.yml"
    config_path.write_text(yaml.safe_dump(config))
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    proc = subprocess.run(
        [jupyter_book, "build", str(ROOT), "--config", str(config_path), "--path-output", str(out),
         "-W", "-n", "--keep-going", "--all"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "LTHBOOK_SCALE": "ci"},
    )
    return BookBuild(proc.returncode, proc.stdout + proc.stderr, out / "_build" / "html", toc_files())
