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
from helpers.checks.core import NBGRADER_PLACEHOLDER, quiet_unsolved_cells

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


class FakeShell:
    """Just what quiet_unsolved_cells uses of IPython's shell; records what a cell shows."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        quiet_unsolved_cells(self)

    def set_custom_exc(self, types: tuple, handler) -> None:
        self.handler = handler

    def _showtraceback(self, etype, value, lines: list[str]) -> None:
        self.shown = lines

    def showtraceback(self, exc_tuple, tb_offset=None) -> None:
        self.shown = ["a full traceback"]

    def fail(self, error: BaseException) -> list[str]:
        self.handler(self, type(error), error, None)
        return self.shown


def test_a_cell_that_needs_an_unsolved_exercise_says_so_in_one_line() -> None:
    shell = FakeShell()
    assert shell.fail(NotImplementedError()) == [
        "⏭ This cell needs an exercise above, which is not solved yet."]
    assert shell.fail(NotImplementedError("Exercise 3.2: not solved yet")) == [
        "⏭ This cell needs Exercise 3.2, which is not solved yet."]
    assert shell.fail(NotImplementedError("async generators")) == ["a full traceback"]


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


def cell_errors(notebook: Path) -> list[str]:
    """Errors outside check cells, and any that is more than the one-line ⏭ of an unsolved cell."""
    problems = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        for error in [out for out in cell.get("outputs", []) if out.output_type == "error"]:
            tags = cell.metadata.get("tags", [])
            if "check" in tags:
                continue
            if "needs-exercise" not in tags or not error.traceback[0].startswith("⏭"):
                problems.append(f"{cell.source[:40]!r}: {error.ename} {error.traceback[:1]}")
    return problems


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
            released = course / "autograded" / "unsolved" / assignment / source.name
            assert cell_errors(released) == []
            assert cell_errors(course / "autograded" / "solved" / assignment / source.name) == []
    shutil.rmtree(course)
