"""The assignment generator (lthbook.assignments, ``make assignments``).

Unit tests on a small chapter, then the real book: every chapter with exercises gets a
student and an instructor notebook; the instructor notebooks run clean; the student
notebooks run up to their first stub and fail there with ``NotImplementedError``.

Running every chapter in full would repeat what nbval already does for the chapters
(the instructor notebook's code cells are the chapter's, which a test below asserts),
so only the cheap §2 notebooks run in full; for the other chapters the exercise
section, which starts with its own imports and runs on its own, is executed.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from lthbook.assignments import (SOLUTION_TAG, chapters_with_exercises, convert, main, stub_source,
                                 write_assignments)

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

MINI = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

```{code-cell} ipython3
x = 1
```

## Exercises

```{exercise} Add one
:label: ex-add

Write `add_one(v)`.
```

```{solution-start} ex-add
:class: dropdown
```

SECRET-PROSE: just add.

```{code-cell} ipython3
:tags: [solution]

import math


def add_one(v):
    """v + 1."""
    w = v + 1
    return w
```

```{code-cell} ipython3
print("SECRET-DEMO", add_one(1))
```

```{solution-end}
```

After the solution.

```{code-cell} ipython3
assert add_one(x) == 2
```

```{exercise} Why?
:label: ex-why

Explain.
```

````{solution} ex-why
:class: dropdown

SECRET-ANSWER with a formula
```{math}
1 + 1 = 2
```
````
'''


def _mini(tmp_path):
    path = tmp_path / "ch9_mini.md"
    path.write_text(MINI)
    return jupytext.read(path, fmt="md:myst")


def _text(nb):
    return "\n".join(c.source for c in nb.cells)


def test_student_version_drops_solutions_and_stubs_code(tmp_path):
    student = convert(_mini(tmp_path), "student")
    text = _text(student)
    assert "SECRET" not in text and "Solution" not in text and "return w" not in text
    assert "#### Exercise: Add one" in text and "#### Exercise: Why?" in text and "After the solution." in text
    stub = next(c for c in student.cells if "def add_one" in c.source)
    assert stub.source == ('import math\n\n\ndef add_one(v):\n    """v + 1."""\n'
                           "    raise NotImplementedError(\"Exercise 'Add one': write the body of add_one()\")")
    assert SOLUTION_TAG not in stub.metadata.get("tags", [])
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert student.metadata["lthbook"]["version"] == "student"


def test_instructor_version_keeps_everything(tmp_path):
    nb = _mini(tmp_path)
    instructor = convert(nb, "instructor")
    text = _text(instructor)
    for secret in ("SECRET-PROSE", "SECRET-DEMO", "SECRET-ANSWER", "return w", "1 + 1 = 2"):
        assert secret in text
    assert "{solution" not in text and "{exercise}" not in text  # directives became plain Markdown
    assert [c.source for c in instructor.cells if c.cell_type == "code"] == [
        c.source for c in nb.cells if c.cell_type == "code"]


def test_stub_source_handles_decorators_and_cells_without_functions():
    src = 'import numpy as np\n\n@staticmethod\ndef f(a,\n      b):\n    return a\n\nTABLE = [1]\n'
    assert stub_source(src, "T") == ("import numpy as np\n\n\n@staticmethod\ndef f(a,\n      b):\n"
                                     "    raise NotImplementedError(\"Exercise 'T': write the body of f()\")")
    assert "NotImplementedError" in stub_source("y = 2 * x\n", "T")
    with pytest.raises(ValueError, match="own lines"):
        stub_source("def f(): return 1\n", "T")


def test_malformed_gated_solutions_are_rejected(tmp_path):
    unclosed = MINI.replace("```{solution-end}\n```\n", "")
    path = tmp_path / "bad.md"
    path.write_text(unclosed)
    with pytest.raises(ValueError, match="no solution-end"):
        convert(jupytext.read(path, fmt="md:myst"), "student")
    with pytest.raises(ValueError, match="version"):
        convert(_mini(tmp_path), "teacher")
    with pytest.raises(ValueError, match="book_dir"):
        chapters_with_exercises(tmp_path / "missing")


# ---- the real book -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignments")
    assert main(["--book", str(BOOK), "--out", str(out)]) == 0
    return out


#: chapters whose exercises include coding tasks (the others have derivations and discussion only)
CODING_CHAPTERS = ("ch2_problem_formulation", "ch3_local_geometry", "ch4_convergence", "ch5_1_synthetic",
                   "ch5_2_imp")


def test_every_chapter_from_section_2_has_exercises():
    names = {p.stem for p in chapters_with_exercises(BOOK)}
    assert set(CODING_CHAPTERS) | {"ch6_conclusions"} <= names


def test_both_versions_are_written(generated):
    for path in chapters_with_exercises(BOOK):
        for version in ("student", "instructor"):
            nb = nbformat.read(generated / version / f"{path.stem}.ipynb", as_version=4)
            nbformat.validate(nb)
            assert nb.metadata["kernelspec"]["name"] == "python3"
            assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_versions_match_the_chapters(generated):
    for path in chapters_with_exercises(BOOK):
        chapter = jupytext.read(path, fmt="md:myst")
        instructor = nbformat.read(generated / "instructor" / f"{path.stem}.ipynb", as_version=4)
        student = nbformat.read(generated / "student" / f"{path.stem}.ipynb", as_version=4)
        assert [c.source for c in instructor.cells if c.cell_type == "code"] == [
            c.source for c in chapter.cells if c.cell_type == "code"]
        solutions = [c.source for c in chapter.cells if SOLUTION_TAG in c.metadata.get("tags", [])]
        student_code = [c.source for c in student.cells if c.cell_type == "code"]
        if path.stem in CODING_CHAPTERS:
            assert solutions, f"{path.name}: no code cell tagged {SOLUTION_TAG!r}"
        assert not set(solutions) & set(student_code), f"{path.name}: a solution leaked into the student version"
        stubs = [s for s in student_code if "raise NotImplementedError" in s]
        assert len(stubs) == len(solutions)
        assert "**Solution.**" not in _text(student) and "**Solution.**" in _text(instructor)


def _execute(nb, path, tmp_path, monkeypatch):
    """Run ``nb`` in a fresh kernel at the ci scale; return the index of the failing cell and its error name."""
    monkeypatch.setenv("LTHBOOK_SCALE", "ci")
    monkeypatch.setenv("LTHBOOK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path)}})
    try:
        client.execute()
    except CellExecutionError:
        for i, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    return i, output["ename"]
        raise
    return None, None


def _exercise_section(nb):
    start = next(i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and re.search(r"^## Exercises", c.source, re.MULTILINE))
    nb = nbformat.from_dict(nb)
    nb.cells = nb.cells[start + 1:]
    return nb


def _first_stub(nb):
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "raise NotImplementedError" in c.source)


def _student_fails_at_first_check(nb, tmp_path, monkeypatch):
    failed, error = _execute(nb, BOOK, tmp_path, monkeypatch)
    if not any("raise NotImplementedError" in c.source for c in nb.cells if c.cell_type == "code"):
        assert (failed, error) == (None, None)  # no coding exercise: the student version runs clean
        return
    stub = _first_stub(nb)
    check = next(i for i in range(stub + 1, len(nb.cells)) if nb.cells[i].cell_type == "code")
    assert (failed, error) == (check, "NotImplementedError")
    assert "check_" in nb.cells[check].source
    assert all(o.get("output_type") != "error" for c in nb.cells[:check] for o in c.get("outputs", []))


def test_section_2_notebooks_run_in_full(generated, tmp_path, monkeypatch):
    name = "ch2_problem_formulation.ipynb"
    instructor = nbformat.read(generated / "instructor" / name, as_version=4)
    assert _execute(instructor, BOOK, tmp_path, monkeypatch) == (None, None)
    assert any("check_risk: OK" in o.get("text", "") for c in instructor.cells for o in c.get("outputs", []))
    _student_fails_at_first_check(nbformat.read(generated / "student" / name, as_version=4), tmp_path, monkeypatch)


@pytest.mark.parametrize("chapter", [p.stem for p in chapters_with_exercises(BOOK)
                                     if p.stem != "ch2_problem_formulation"])  # §2 runs in full above
def test_exercise_sections_run(generated, chapter, tmp_path, monkeypatch):
    instructor = _exercise_section(nbformat.read(generated / "instructor" / f"{chapter}.ipynb", as_version=4))
    assert _execute(instructor, BOOK, tmp_path, monkeypatch) == (None, None)
    student = _exercise_section(nbformat.read(generated / "student" / f"{chapter}.ipynb", as_version=4))
    _student_fails_at_first_check(student, tmp_path, monkeypatch)


def test_write_assignments_for_chosen_chapters(tmp_path):
    written = write_assignments(tmp_path, BOOK, [BOOK / "ch3_local_geometry.md"])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "instructor/ch3_local_geometry.ipynb", "student/ch3_local_geometry.ipynb"]
