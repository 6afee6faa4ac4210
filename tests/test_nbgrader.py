"""Teachers grade the course with nbgrader (teacher/README.md).

The fast tests: the checks read nbgrader's placeholder as "not solved yet".
The slow one (COURSE_TEST_NBGRADER=1, run by `make test-hub`) does what a teacher
does: export two lessons as an nbgrader course in a temporary folder, run
`nbgrader generate_assignment`, take three submissions per assignment (the release
as handed out, the solution, the solution with one exercise wrong), run
`nbgrader autograde`, and read the scores from the gradebook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import fails

from helpers import protos
from helpers.checks.core import NBGRADER_PLACEHOLDER

# nbgrader's code stub, as `nbgrader generate_assignment` writes it in place of a solution.
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")

calculator_pb2, calculator_pb2_grpc = protos.load("calculator")


class StubCalculator(calculator_pb2_grpc.CalculatorServicer):
    """Exercise 3.1 as nbgrader hands it out: each method raises a bare NotImplementedError."""

    def Add(self, request, context):
        raise NotImplementedError()

    Subtract = Multiply = Add


def stub_describe_divide(stub, a: int, b: int, timeout: float = 1.0) -> str:
    raise NotImplementedError()


@pytest.mark.parametrize(("exercise_id", "answer"), [
    ("3.1", StubCalculator),  # raised in a sync servicer: the check sees UNKNOWN
    ("3.4", stub_describe_divide),  # raised in the learner's function itself
], ids=["servicer", "function"])
def test_checks_read_nbgraders_placeholder_as_not_solved(capsys, exercise_id, answer) -> None:
    out = fails(capsys, exercise_id, answer)
    assert "not solved yet" in out
    assert "Hint" not in out, "no hint before the learner has tried"


@pytest.mark.parametrize("message", [
    "your code raised NotImplementedError: ",
    "a call failed with UNKNOWN, because the servicer raised an exception ()",
    "a call failed with UNKNOWN (Exception iterating responses: )",
    "a call failed with UNKNOWN (Unexpected <class 'NotImplementedError'>: )",
])
def test_placeholder_pattern_knows_how_a_bare_not_implemented_reads(message) -> None:
    assert NBGRADER_PLACEHOLDER.search(message)


@pytest.mark.parametrize("message", [
    "your code raised NotImplementedError: Multiply is left to do",
    "a call failed with UNKNOWN, because the servicer raised an exception (division by zero)",
    "a call failed with UNKNOWN (Unexpected <class 'ZeroDivisionError'>: division by zero)",
    "Divide(7, 2): expected 3.5, got 3.0",
])
def test_placeholder_pattern_leaves_real_mistakes_alone(message) -> None:
    assert not NBGRADER_PLACEHOLDER.search(message)


# ---- the whole round trip, as a teacher runs it -------------------------------------------

# lesson prefix -> (exercise made wrong, the solution text replaced, the wrong text)
WRONG = {
    "03": ("3.2", "result=request.a / request.b", "result=request.a // request.b"),
    "04": ("4.1", "grpc.StatusCode.NOT_FOUND", "grpc.StatusCode.INVALID_ARGUMENT"),
}
STUDENTS = ("unsolved", "solved", "wrong")


def nbgrader(course: Path, *args: str) -> None:
    """Run one nbgrader command in the course folder; fail with its output if it fails."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}{done.stderr}"


def grade_ids(notebook: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {cell.metadata.nbgrader.grade_id: cell for cell in notebook.cells
            if cell.metadata.get("nbgrader", {}).get("solution")}


def submission(release: Path, source: Path, student: str, exercise: str, old: str,
               new: str) -> nbformat.NotebookNode:
    """The release notebook as `student` hands it in: untouched, solved, or solved but one."""
    notebook = nbformat.read(release, as_version=4)
    if student == "unsolved":
        return notebook
    solved = grade_ids(nbformat.read(source, as_version=4))
    for grade_id, cell in grade_ids(notebook).items():
        assert all(line in cell.source for line in STUB), f"{grade_id}: no nbgrader placeholder"
        cell.source = solved[grade_id].source
        if student == "wrong" and grade_id == f"exercise-{exercise.replace('.', '_')}":
            assert old in cell.source, f"{old!r} is not in exercise {exercise}'s solution"
            cell.source = cell.source.replace(old, new)
    return notebook


def check_outputs(notebook: Path) -> dict[str, str]:
    """grade_id -> the text a graded check cell showed."""
    shown = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            shown[cell.metadata.nbgrader.grade_id] = "".join(
                output.get("text", "") or output.get("data", {}).get("text/plain", "")
                for output in cell.outputs)
    return shown


@pytest.mark.skipif(os.environ.get("COURSE_TEST_NBGRADER") != "1",
                    reason="slow (minutes): `make test-hub` runs it, or COURSE_TEST_NBGRADER=1")
@pytest.mark.timeout(1800)
def test_nbgrader_generates_and_autogrades_the_course(tmp_path) -> None:
    pytest.importorskip("nbgrader")
    from nbgrader.api import Gradebook

    from helpers.nbgrader_course import assignment_name, export, read_points

    course = tmp_path / "course"
    started = time.monotonic()
    sources = export(course, list(WRONG))
    assert [path.parent.name for path in sources] == [f"ps{prefix}" for prefix in WRONG]
    default_points, points = read_points()
    for source in sources:
        nbgrader(course, "generate_assignment", source.parent.name)
        for student in STUDENTS:
            exercise, old, new = WRONG[source.name[:2]]
            release = course / "release" / source.parent.name / source.name
            target = course / "submitted" / student / source.parent.name / source.name
            target.parent.mkdir(parents=True)
            nbformat.write(submission(release, source, student, exercise, old, new), target)
    for source in sources:
        nbgrader(course, "autograde", source.parent.name)
    print(f"\nexport, generate and autograde of {len(sources)} lessons x {len(STUDENTS)} "
          f"submissions took {time.monotonic() - started:.0f} s")

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for source in sources:
            assignment = assignment_name(source.name)
            exercise, _, _ = WRONG[source.name[:2]]
            scores = {student: gradebook.find_submission(assignment, student)
                      for student in STUDENTS}
            full = scores["solved"].max_score
            checks = check_outputs(course / "autograded" / "solved" / assignment / source.name)
            assert full == sum(points.get(grade_id.removeprefix("check-").replace("_", "."),
                                          default_points) for grade_id in checks)
            assert full > 0
            assert scores["unsolved"].score == 0, f"{assignment}: an unsolved lesson scores 0"
            assert scores["solved"].score == full, f"{assignment}: the solution scores full"
            lost = points.get(exercise, default_points)
            assert scores["wrong"].score == full - lost, \
                f"{assignment}: exercise {exercise} wrong loses its {lost} point(s), no more"
            unsolved = check_outputs(course / "autograded" / "unsolved" / assignment / source.name)
            for grade_id, shown in unsolved.items():
                assert "not solved yet" in shown, f"{grade_id} on the release said: {shown}"
    shutil.rmtree(course)
