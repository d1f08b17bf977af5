"""Otter Assign sources for the chapters' coding exercises (Gradescope, Canvas, JupyterHub).

`Otter Grader <https://otter-grader.readthedocs.io>`_ turns one "master" notebook, with
solutions and tests marked in it, into a student notebook and an autograder zip that
Gradescope (or ``otter run``) uses to grade submissions. This module writes such a master
notebook for every chapter with coding exercises, from the chapter itself:

* The notebook is the chapter's ``## Exercises`` section (which starts with its own imports
  and runs on its own), after a short title cell; prose solutions and the worked code of
  gated solutions are left out, as in the plain student notebook (:mod:`lthbook.assignments`).
* Every coding exercise (an ``{exercise}`` whose gated solution holds a code cell tagged
  ``solution``) becomes one Otter *question*, named after its label (``ex_ch2_risk``).
  Its solution is the tagged cell with each function body between ``# BEGIN SOLUTION`` and
  ``# END SOLUTION``, so the student gets the signature, the docstring and ``...``.
* The check cell that follows the solution (``check_risk(my_risk)``) becomes the
  question's tests: for each ``check_*`` call one **public** test, the call as the book
  makes it (``PUBLIC_POINTS`` points), and one **hidden** test, the same check on
  ``HIDDEN_INSTANCES`` other random problems drawn from a seed that appears only in the
  autograder (``HIDDEN_POINTS`` points). Tests are Otter's exception-based tests: a test
  passes when the check returns without raising.
* An answer cannot pass by importing the book's own implementation: the checks refuse a
  function that calls it (:data:`lthbook.exercises.REFERENCE_MODULES`), in the public and
  the hidden tests alike.

``python -m lthbook.assignments`` (``make assignments``) writes the sources to
``_build/assignments/otter/<chapter>.ipynb`` with a ``requirements.txt`` that installs
``lthbook`` from the book's repository on the grading image;
``python -m lthbook.otter_assign`` (``make gradescope``) also runs ``otter assign`` on each,
which writes ``_build/assignments/gradescope/<chapter>/{student,autograder}/``: the notebook
to hand out and the zip to upload to Gradescope as a programming assignment's autograder.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import jupytext
import nbformat
import yaml
from nbformat import NotebookNode

from .assignments import SOLUTION_TAG, _parse_blocks, chapters_with_exercises

#: points of the public test (the book's own call of the check) and of the hidden one
PUBLIC_POINTS = 1
HIDDEN_POINTS = 2
#: random problems per hidden test
HIDDEN_INSTANCES = 6

_CHECK_CALL = re.compile(r"^check_\w+$")


@dataclass
class _Question:
    label: str
    name: str
    solution: str = ""
    checks: list[tuple[str, str, str]] = field(default_factory=list)  # (check, function, call source)


def question_name(label: str) -> str:
    """Otter question name of an exercise label: ``ex-ch2-risk`` -> ``ex_ch2_risk``."""
    name = re.sub(r"\W", "_", label)
    if not name or name[0].isdigit():
        name = f"q_{name}"
    return name


def hidden_seed(chapter: str, label: str, check: str) -> int:
    """The seed of a hidden test: fixed per (chapter, exercise, check), different from the
    public checks' seed 0 and known only to the autograder."""
    return 1000 + zlib.crc32(f"{chapter}:{label}:{check}".encode()) % 1_000_000


def solution_source(source: str) -> str:
    """A ``solution`` cell with each top-level function's body between Otter's
    ``# BEGIN SOLUTION`` / ``# END SOLUTION`` markers (the docstring stays outside)."""
    tree = ast.parse(source)
    lines = source.split("\n")
    inserts: list[tuple[int, str]] = []  # (line index, text), applied from the bottom up
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        raise ValueError("a solution cell must define at least one function")
    for node in functions:
        first = node.body[0]
        if first.lineno == node.lineno:
            raise ValueError(f"function {node.name!r}: put its body on its own lines")
        has_doc = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                   and isinstance(first.value.value, str))
        body = node.body[1:] if has_doc else node.body
        if not body:
            raise ValueError(f"function {node.name!r} has only a docstring")
        indent = " " * body[0].col_offset
        inserts.append((body[0].lineno - 1, f"{indent}# BEGIN SOLUTION"))
        inserts.append((node.end_lineno, f"{indent}# END SOLUTION"))
    for index, text in sorted(inserts, reverse=True):
        lines.insert(index, text)
    return "\n".join(lines)


def _check_calls(source: str) -> list[tuple[str, str, str]]:
    """``(check, function name, call source)`` for each ``check_*(name, ...)`` statement."""
    calls = []
    for node in ast.parse(source).body:
        call = node.value if isinstance(node, ast.Expr) else None
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and _CHECK_CALL.match(call.func.id)
                and call.args and isinstance(call.args[0], ast.Name)):
            calls.append((call.func.id, call.args[0].id, ast.get_source_segment(source, call)))
    return calls


def _raw(text: str) -> NotebookNode:
    return nbformat.v4.new_raw_cell(text)


def _test_cell(name: str, points: int, hidden: bool, function: str, check: str, call: str) -> NotebookNode:
    kind = "hidden" if hidden else "public"
    message = (f"{check} passes on {HIDDEN_INSTANCES} problems you have not seen" if hidden
               else f"{check} passes on the problems of the book")
    return nbformat.v4.new_code_cell("\n".join([
        '""" # BEGIN TEST CONFIG',
        f"points: {points}",
        f"hidden: {'true' if hidden else 'false'}",
        f'success_message: "{message}"',
        '""" # END TEST CONFIG',
        f"def test_{name}_{check}_{kind}({function}):",
        f"    from lthbook.exercises import {check}",
        f"    assert {call} is True",
        "",
        f"test_{name}_{check}_{kind}({function})",
    ]))


def _exercise_events(nb: NotebookNode) -> list[tuple[str, object]]:
    """The cells of the ``## Exercises`` section as a flat list of events: ``("md", line)``,
    ``(directive name, _Directive)`` and ``("code", cell)``."""
    events: list[tuple[str, object]] = []
    started = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for block in _parse_blocks(cell.source):
                if isinstance(block, str):
                    if re.match(r"^##\s+Exercises\s*$", block):
                        started = True
                        continue
                    if started and re.match(r"^#{1,2}\s", block):  # a later section of the same level
                        started = False
                    if started:
                        events.append(("md", block))
                elif started:
                    events.append((block.name, block))
            if started:
                events.append(("md", ""))
        elif cell.cell_type == "code" and started:
            events.append(("code", cell))
    if not events:
        raise ValueError("the chapter has no '## Exercises' section")
    return events


def otter_source(nb: NotebookNode, chapter: str, title: str, requirements: str = "requirements.txt") -> NotebookNode:
    """The Otter Assign master notebook of one chapter (``chapter``: its file stem).

    Raises ``ValueError`` if the chapter has no coding exercise or a check cell names no
    ``check_*`` call."""
    events = _exercise_events(nb)
    config = {
        "name": chapter,
        "requirements": requirements,
        "init_cell": True,
        "check_all_cell": True,
        # students upload the .ipynb itself (Gradescope grades the notebook, no PDF)
        "export_cell": False,
        "run_tests": True,
        "generate": {"pdf": False, "filtering": False},
        "tests": {"ok_format": False, "files": False},
        "show_question_points": True,
        # the Python the book is tested with (Otter's grading image would default to a newer one)
        "python_version": "3.11",
    }
    cells: list[NotebookNode] = [
        _raw("# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False).strip()),
        nbformat.v4.new_markdown_cell(
            f"# {title}: exercises\n\n"
            "The coding exercises of this chapter of *Why Lottery Ticket Wins? An executable book*. "
            "Write each function, then run the `grader.check` cell after it: it runs the book's "
            "check on a few random problems. The autograder runs the same checks on other "
            "problems as well. The functions must compute their answers themselves: a function "
            "that calls the book's own implementation (`lthbook`) of what it is asked for fails."),
    ]
    markdown: list[str] = []
    question: _Question | None = None
    in_solution = False
    awaiting_check = False
    titles: dict[str, str] = {}
    n_questions = 0

    def flush():
        text = "\n".join(markdown).strip("\n")
        if text.strip():
            cells.append(nbformat.v4.new_markdown_cell(text))
        markdown.clear()

    coding = _coding_labels(events)
    for kind, item in events:
        if kind == "md":
            if not in_solution:
                markdown.append(item)
        elif kind == "exercise":
            label = item.options.get("label", "")
            titles[label] = item.arg
            if label in coding:
                flush()
                question = _Question(label, question_name(label))
                cells.append(_raw(f"# BEGIN QUESTION\nname: {question.name}"))
            markdown += [f"#### Exercise: {item.arg}" if item.arg else "#### Exercise", ""] + item.body + [""]
        elif kind == "solution":
            continue  # prose solutions are not part of the student's notebook
        elif kind == "solution-start":
            in_solution = True
        elif kind == "solution-end":
            in_solution = False
            awaiting_check = question is not None and bool(question.solution)
        elif kind == "code":
            cell = item
            if in_solution:
                if SOLUTION_TAG in cell.metadata.get("tags", []):
                    if question is None:
                        raise ValueError(f"{chapter}: a solution cell outside a coding exercise")
                    flush()
                    question.solution = cell.source
                    cells += [_raw("# BEGIN SOLUTION"), nbformat.v4.new_code_cell(solution_source(cell.source)),
                              _raw("# END SOLUTION")]
                continue  # worked code inside a gated solution
            flush()
            if awaiting_check:
                calls = _check_calls(cell.source)
                if not calls:
                    raise ValueError(f"{chapter}: the cell after the solution of {question.label!r} calls no check_*")
                cells.append(_raw("# BEGIN TESTS"))
                for check, function, call in calls:
                    cells.append(_test_cell(question.name, PUBLIC_POINTS, False, function, check, call))
                    seed = hidden_seed(chapter, question.label, check)
                    hidden_call = f"{check}({function}, n_instances={HIDDEN_INSTANCES}, seed={seed})"
                    cells.append(_test_cell(question.name, HIDDEN_POINTS, True, function, check, hidden_call))
                cells += [_raw("# END TESTS"), _raw("# END QUESTION")]
                n_questions += 1
                question, awaiting_check = None, False
            else:
                cells.append(nbformat.v4.new_code_cell(cell.source))
    flush()
    if n_questions == 0:
        raise ValueError(f"{chapter}: no coding exercise with a solution cell and a check")
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    out.metadata["language_info"] = {"name": "python"}
    out.metadata["lthbook"] = {"version": "otter", "source": chapter, "questions": n_questions}
    nbformat.validate(out)
    return out


def _coding_labels(events) -> set[str]:
    """Labels of the exercises whose gated solution holds a code cell tagged ``solution``."""
    labels, current = set(), None
    for kind, item in events:
        if kind == "solution-start":
            current = item.arg
        elif kind == "solution-end":
            current = None
        elif kind == "code" and current and SOLUTION_TAG in item.metadata.get("tags", []):
            labels.add(current)
    return labels


def _chapter_title(nb: NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            if m:
                return m.group(1).strip()
    return fallback


def _repository(root: Path) -> tuple[str, str]:
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    repo = config.get("repository", {})
    return repo.get("url", "https://github.com/lthbook/lthbook"), repo.get("branch", "main")


def coding_chapters(book_dir: str | Path = "book") -> list[Path]:
    """The chapters with at least one coding exercise (a code cell tagged ``solution``)."""
    out = []
    for path in chapters_with_exercises(book_dir):
        nb = jupytext.read(path, fmt="md:myst")
        if any(SOLUTION_TAG in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"):
            out.append(path)
    return out


def write_otter_sources(out_dir: str | Path, book_dir: str | Path = "book",
                        chapters: Sequence[str | Path] | None = None) -> list[Path]:
    """Write ``out_dir/<chapter>.ipynb`` (Otter Assign sources) and ``out_dir/requirements.txt``."""
    book_dir = Path(book_dir)
    paths = [Path(c) for c in chapters] if chapters is not None else coding_chapters(book_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    url, branch = _repository(book_dir.resolve().parent)
    (out_dir / "requirements.txt").write_text(
        "# installs the book's package (and its pinned dependencies) on the grading image\n"
        f"lthbook @ git+{url}@{branch}\n", encoding="utf-8")
    written = []
    for path in paths:
        nb = jupytext.read(path, fmt="md:myst")
        target = out_dir / f"{path.stem}.ipynb"
        nbformat.write(otter_source(nb, path.stem, _chapter_title(nb, path.stem)), target)
        written.append(target)
    return written


def otter_assign(source: str | Path, dist: str | Path) -> Path:
    """Run ``otter assign source dist``; return the autograder zip it wrote.

    ``otter assign`` runs the solutions against every test (public and hidden) and fails
    if one does not pass."""
    dist = Path(dist)
    if dist.exists():
        shutil.rmtree(dist)
    otter = shutil.which("otter", path=str(Path(sys.executable).parent)) or "otter"
    proc = subprocess.run([otter, "assign", "--no-pdfs", str(source), str(dist)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"otter assign {source} failed:\n{proc.stdout}\n{proc.stderr}")
    zips = sorted((dist / "autograder").glob("*.zip"))
    if len(zips) != 1:
        raise RuntimeError(f"otter assign {source}: expected one autograder zip in {dist / 'autograder'}, got {zips}")
    return zips[0]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lthbook.otter_assign [--book book] [--out _build/assignments]``: Otter sources, then ``otter assign``."""
    parser = argparse.ArgumentParser(prog="python -m lthbook.otter_assign", description=__doc__.split("\n")[0])
    parser.add_argument("--book", default="book", help="folder holding the chapters (default: book)")
    parser.add_argument("--out", default="_build/assignments", help="output folder (default: _build/assignments)")
    parser.add_argument("chapters", nargs="*", help="chapter files (default: every chapter with coding exercises)")
    parser.add_argument("--sources-only", action="store_true",
                        help="only write the Otter Assign sources to OUT/otter (no `otter assign`)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    coding = {p.resolve() for p in coding_chapters(args.book)}
    chosen = [Path(c) for c in args.chapters if Path(c).resolve() in coding] if args.chapters else None
    if args.chapters and not chosen:
        print("no chapter with coding exercises among those given: no Otter source written")
        return 0
    sources = write_otter_sources(out / "otter", args.book, chosen)
    if args.sources_only:
        for source in sources:
            print(source)
        print(f"{len(sources)} Otter Assign sources written under {out / 'otter'}; `make gradescope` builds the "
              "autograders")
        return 0
    for source in sources:
        zip_path = otter_assign(source, out / "gradescope" / source.stem)
        print(f"{source.stem}: student notebook in {zip_path.parent.parent / 'student'}, autograder {zip_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
