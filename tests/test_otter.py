"""Otter Grader assignments (lthbook.otter_assign): sources, ``otter assign``, ``otter run``.

For every chapter with coding exercises the Otter Assign source is written and ``otter
assign`` turns it into a student notebook and a Gradescope autograder zip. ``otter run``
(the grading that Gradescope runs, here in the current environment) must give the
instructor's solution notebook full marks, the untouched student notebook zero, and a
submission that imports the book's own implementation zero for that question.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lthbook.otter_assign import (HIDDEN_POINTS, PUBLIC_POINTS, _check_calls, coding_chapters, otter_assign,
                                  question_name, solution_source, write_otter_sources)

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

pytest.importorskip("otter", reason="otter-grader (the 'test' extra) is not installed")
OTTER = shutil.which("otter", path=str(Path(sys.executable).parent)) or shutil.which("otter")


def test_solution_markers_wrap_each_body_but_not_the_docstring():
    src = 'import numpy as np\n\n\ndef f(a):\n    """Doc."""\n    b = a + 1\n    return b\n\n\ndef g(x):\n    return x\n'
    assert solution_source(src) == (
        'import numpy as np\n\n\ndef f(a):\n    """Doc."""\n    # BEGIN SOLUTION\n    b = a + 1\n    return b\n'
        "    # END SOLUTION\n\n\ndef g(x):\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n")
    with pytest.raises(ValueError, match="at least one function"):
        solution_source("x = 1\n")


def test_check_calls_and_question_names():
    assert _check_calls("check_first_moment(my_first_moment)\ncheck_second_moment(my_second_moment, seed=3)\n") == [
        ("check_first_moment", "my_first_moment", "check_first_moment(my_first_moment)"),
        ("check_second_moment", "my_second_moment", "check_second_moment(my_second_moment, seed=3)")]
    assert _check_calls("print(1)\n") == []
    assert question_name("ex-ch2-risk") == "ex_ch2_risk"


@pytest.fixture(scope="module")
def assigned(tmp_path_factory):
    """Otter sources for every coding chapter and the result of ``otter assign`` on each."""
    out = tmp_path_factory.mktemp("otter")
    sources = write_otter_sources(out / "otter", BOOK)
    zips = {src.stem: otter_assign(src, out / "gradescope" / src.stem) for src in sources}
    return out, sources, zips


def _questions(nb) -> dict[str, dict[str, int]]:
    """question name -> {"public": points, "hidden": points} from an Otter source notebook."""
    questions: dict[str, dict[str, int]] = {}
    current = None
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.startswith("# BEGIN QUESTION"):
            current = cell.source.split("name:")[1].strip()
            questions[current] = {"public": 0, "hidden": 0}
        elif cell.cell_type == "code" and "# BEGIN TEST CONFIG" in cell.source and current:
            points = int(cell.source.split("points:")[1].split()[0])
            questions[current]["hidden" if "hidden: true" in cell.source else "public"] += points
    return questions


def test_every_coding_chapter_gets_questions_with_public_and_hidden_tests(assigned):
    _, sources, zips = assigned
    assert [s.stem for s in sources] == [p.stem for p in coding_chapters(BOOK)]
    assert {"ch2_problem_formulation", "ch5_2_imp"} <= set(zips)
    for source in sources:
        questions = _questions(nbformat.read(source, as_version=4))
        assert questions, f"{source.name}: no question"
        for name, points in questions.items():
            assert points["public"] >= PUBLIC_POINTS and points["hidden"] >= HIDDEN_POINTS, (source.name, name)
    assert (sources[0].parent / "requirements.txt").read_text().count("lthbook @ git+https://github.com/") == 1


def test_student_notebooks_hide_solutions_and_hidden_tests(assigned):
    out, sources, _ = assigned
    for source in sources:
        student = out / "gradescope" / source.stem / "student" / f"{source.stem}.ipynb"
        text = "\n".join(c.source for c in nbformat.read(student, as_version=4).cells)
        assert "BEGIN SOLUTION" not in text and "hidden" not in text.lower()
        assert "grader.check(" in text
        master = nbformat.read(source, as_version=4)
        for cell in master.cells:
            if cell.cell_type == "code" and "# BEGIN SOLUTION" in cell.source:
                body = cell.source.split("# BEGIN SOLUTION")[1].split("# END SOLUTION")[0]
                for line in body.strip().split("\n"):
                    assert line.strip() not in text.split("\n"), f"{source.stem}: solution line {line!r} leaked"


def _otter_run(zip_path: Path, submission: Path, out: Path) -> dict[str, tuple[float, float]]:
    """Grade ``submission`` with ``otter run``; question name -> (score, max score)."""
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([OTTER, "run", "-a", str(zip_path), "-o", str(out), str(submission)],
                          capture_output=True, text=True, env={**__import__("os").environ, "LTHBOOK_SCALE": "ci"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text())
    return {t["name"]: (t["score"], t["max_score"]) for t in results["tests"] if "max_score" in t}


@pytest.mark.parametrize("chapter", [p.stem for p in coding_chapters(BOOK)])
def test_otter_run_gives_the_solution_full_marks_and_the_student_notebook_zero(assigned, chapter, tmp_path):
    out, _, zips = assigned
    dist = out / "gradescope" / chapter
    solution = _otter_run(zips[chapter], dist / "autograder" / f"{chapter}.ipynb", tmp_path / "solution")
    assert solution and all(score == top > 0 for score, top in solution.values()), solution
    student = _otter_run(zips[chapter], dist / "student" / f"{chapter}.ipynb", tmp_path / "student")
    assert set(student) == set(solution)
    assert all(score == 0 for score, _ in student.values()), student


def test_importing_the_reference_scores_zero(assigned, tmp_path):
    out, _, zips = assigned
    chapter = "ch2_problem_formulation"
    nb = nbformat.read(out / "gradescope" / chapter / "autograder" / f"{chapter}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("def my_risk"))
    cell.source = "from lthbook.risk import empirical_risk as my_risk"
    submission = tmp_path / f"{chapter}.ipynb"
    nbformat.write(nb, submission)
    scores = _otter_run(zips[chapter], submission, tmp_path / "cheat")
    assert scores["ex_ch2_risk"][0] == 0
    assert scores["ex_ch2_gradient"][0] == scores["ex_ch2_gradient"][1] > 0  # the honest answer still counts
