"""Student and instructor notebooks from the book's chapters (``make assignments``).

The chapters (jupytext MyST notebooks in ``book/``) end with exercises written
with sphinx-exercise. This module turns every chapter that has exercises into two
``.ipynb`` files without outputs:

* the **instructor** version: the whole chapter, with the exercise and solution
  directives rewritten as plain Markdown headings that Jupyter can display;
* the **student** version: the same, with the solutions taken out.

Conventions the chapters follow (and this module relies on):

* An exercise is a ``{exercise}`` directive with a title and a ``:label:``.
* A prose solution is a ``{solution} <label>`` directive; the student version drops it.
* A solution with code uses the gated form: ``{solution-start} <label>``, then
  Markdown and code cells, then ``{solution-end}``. The student version drops the
  Markdown and the code cells in between, except code cells tagged ``solution``.
* A code cell tagged ``solution`` holds the reference implementation of one or
  more functions the student is asked to write. In the student version its body
  is replaced by a stub: the imports, each function's signature and docstring, and
  ``raise NotImplementedError("Exercise '<title>': ...")``.
* The cell after a solution calls a ``lthbook.exercises.check_*`` function on the
  student's function; it stays in both versions. In the student notebook it is the
  first cell to fail (with ``NotImplementedError``) until the stub is filled in.

Run ``python -m lthbook.assignments --out _build/assignments`` (what ``make
assignments`` does) to write ``student/<chapter>.ipynb`` and
``instructor/<chapter>.ipynb``, and for the chapters with coding exercises the Otter
Assign sources ``otter/<chapter>.ipynb`` (see :mod:`lthbook.otter_assign`: public and
hidden tests, points, the Gradescope autograder).
"""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import jupytext
import nbformat
from nbformat import NotebookNode

#: Tag of the code cells whose body the student version replaces by a stub.
SOLUTION_TAG = "solution"
VERSIONS = ("student", "instructor")

_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[A-Za-z:-]+)\}\s*(?P<arg>.*?)\s*$")
_OPTION = re.compile(r"^:(?P<key>[A-Za-z_-]+):\s*(?P<value>.*)$")
_EXERCISE_DIRECTIVES = ("exercise", "solution", "solution-start", "solution-end")


@dataclass
class _Directive:
    name: str
    arg: str
    options: dict[str, str]
    body: list[str]


@dataclass
class _State:
    """What the conversion knows while it walks the chapter's cells in order."""

    version: str
    titles: dict[str, str] = field(default_factory=dict)  # exercise label -> title
    in_solution: bool = False
    current: str = ""  # title of the exercise whose solution is open (or was last seen)


def _parse_blocks(text: str) -> list[str | _Directive]:
    """Split Markdown into plain lines and the top-level exercise/solution directives."""
    lines = text.split("\n")
    blocks: list[str | _Directive] = []
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m or m["name"] not in _EXERCISE_DIRECTIVES:
            blocks.append(lines[i])
            i += 1
            continue
        fence = m["fence"]
        j = i + 1
        while j < len(lines) and not (lines[j].strip() and set(lines[j].strip()) == {fence[0]}
                                      and len(lines[j].strip()) >= len(fence)):
            j += 1
        if j == len(lines):
            raise ValueError(f"unclosed {{{m['name']}}} directive: {lines[i]!r}")
        body = lines[i + 1:j]
        options: dict[str, str] = {}
        while body and _OPTION.match(body[0]):
            opt = _OPTION.match(body[0])
            options[opt["key"]] = opt["value"]
            body = body[1:]
        while body and not body[0].strip():
            body = body[1:]
        blocks.append(_Directive(m["name"], m["arg"], options, body))
        i = j + 1
    return blocks


def _convert_markdown(text: str, state: _State) -> str:
    """Rewrite one Markdown cell for ``state.version``; returns ``""`` if nothing is left."""
    out: list[str] = []
    for block in _parse_blocks(text):
        if isinstance(block, str):
            if not (state.in_solution and state.version == "student"):
                out.append(block)
            continue
        if block.name == "exercise":
            label = block.options.get("label", "")
            state.titles[label] = block.arg
            state.current = block.arg
            out += [f"#### Exercise: {block.arg}" if block.arg else "#### Exercise", ""] + block.body
        elif block.name == "solution":
            state.current = state.titles.get(block.arg, block.arg)
            if state.version == "instructor":
                out += ["**Solution.**", ""] + block.body
        elif block.name == "solution-start":
            if state.in_solution:
                raise ValueError(f"solution-start {block.arg!r} inside another gated solution")
            state.in_solution = True
            state.current = state.titles.get(block.arg, block.arg)
            if state.version == "instructor":
                out += ["**Solution.**", ""] + block.body
        else:  # solution-end
            if not state.in_solution:
                raise ValueError("solution-end without a matching solution-start")
            state.in_solution = False
    return "\n".join(out).strip("\n")


def stub_source(source: str, exercise: str) -> str:
    """The student's version of a ``solution`` cell: imports, signatures and docstrings, no body.

    Every top-level function keeps its decorators, signature and docstring; its body
    becomes ``raise NotImplementedError(...)`` naming ``exercise`` and the function.
    Imports are kept; any other statement is dropped.
    """
    tree = ast.parse(source)
    lines = source.split("\n")
    out: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(ast.get_source_segment(source, node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0]
            if first.lineno == node.lineno:
                raise ValueError(f"function {node.name!r}: put its body on its own lines so it can be stubbed")
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                first.value.value, str)
            end = first.end_lineno if has_doc else first.lineno - 1
            indent = " " * first.col_offset
            message = f"Exercise '{exercise}': write the body of {node.name}()"
            if out:
                out += ["", ""]  # two blank lines before a function, as PEP 8 has it
            out += lines[start:end] + [f"{indent}raise NotImplementedError({message!r})"]
    if not any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for node in tree.body):
        out.append(f"raise NotImplementedError({f'Exercise {exercise!r}: write your code here'!r})")
    return "\n".join(out)


def convert(nb: NotebookNode, version: str, source: str = "") -> NotebookNode:
    """The ``version`` (``"student"`` or ``"instructor"``) of a chapter notebook read by jupytext.

    Returns a new nbformat-4 notebook without outputs; ``source`` (the chapter's path)
    is recorded in its metadata.
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    state = _State(version)
    cells = []
    for cell in nb.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "markdown":
            text = _convert_markdown(cell.source, state)
            if text:
                cells.append(nbformat.v4.new_markdown_cell(text))
        elif cell.cell_type == "code":
            is_solution = SOLUTION_TAG in tags
            metadata = {k: v for k, v in cell.metadata.items() if k != "tags"}
            if version == "student" and is_solution:
                tags = [t for t in tags if t != SOLUTION_TAG]
                code = stub_source(cell.source, state.current or "unnamed")
            elif version == "student" and state.in_solution:
                continue  # worked code inside a gated solution
            else:
                code = cell.source
            if tags:
                metadata["tags"] = tags
            cells.append(nbformat.v4.new_code_cell(code, metadata=metadata))
        else:
            cells.append(nbformat.v4.new_raw_cell(cell.source))
    if state.in_solution:
        raise ValueError(f"{source or 'notebook'}: a solution-start has no solution-end")
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata["kernelspec"] = nb.metadata.get(
        "kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    out.metadata["language_info"] = {"name": "python"}
    out.metadata["lthbook"] = {"version": version, "source": source}
    nbformat.validate(out)
    return out


def chapters_with_exercises(book_dir: str | Path = "book") -> list[Path]:
    """The chapters (``book/*.md``) that contain at least one ``{exercise}`` directive, in file-name order."""
    book_dir = Path(book_dir)
    if not book_dir.is_dir():
        raise ValueError(f"book_dir must be a folder, got {str(book_dir)!r}")
    return [p for p in sorted(book_dir.glob("*.md"))
            if re.search(r"^(`{3,}|:{3,})\{exercise\}", p.read_text(encoding="utf-8"), re.MULTILINE)]


def write_assignments(out_dir: str | Path, book_dir: str | Path = "book",
                      chapters: Sequence[str | Path] | None = None) -> list[Path]:
    """Write ``out_dir/{student,instructor}/<chapter>.ipynb`` for each chapter; return the paths written.

    ``chapters`` defaults to :func:`chapters_with_exercises`. Chapters without a
    jupytext header are read as MyST Markdown too.
    """
    paths = [Path(c) for c in chapters] if chapters is not None else chapters_with_exercises(book_dir)
    out_dir = Path(out_dir)
    written = []
    for path in paths:
        nb = jupytext.read(path, fmt="md:myst")
        for version in VERSIONS:
            target = out_dir / version / f"{path.stem}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(convert(nb, version, source=path.as_posix()), target)
            written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m lthbook.assignments [--book book] [--out _build/assignments]``."""
    parser = argparse.ArgumentParser(prog="python -m lthbook.assignments", description=__doc__.split("\n")[0])
    parser.add_argument("--book", default="book", help="folder holding the chapters (default: book)")
    parser.add_argument("--out", default="_build/assignments", help="output folder (default: _build/assignments)")
    parser.add_argument("chapters", nargs="*", help="chapter files (default: every chapter with exercises)")
    args = parser.parse_args(argv)
    written = write_assignments(args.out, args.book, args.chapters or None)
    for path in written:
        print(path)
    print(f"{len(written)} notebooks written under {args.out} (the Otter Assign sources come from "
          f"`python -m lthbook.otter_assign --sources-only`, which `make assignments` runs too)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
