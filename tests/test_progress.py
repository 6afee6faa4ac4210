"""make progress: a learner's partly solved lessons are reported exactly, and honestly.

The fast report reads check()'s records; `--rerun` runs the lessons. Both must
agree on the same saved notebooks, and a record must never give a ✅ to code
other than the code it checked.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import SOLUTIONS

from helpers.build import build_notebook, render
from helpers.progress_report import (checked_this_code, collect, fingerprint, read_records,
                                     record, report, state_of)

EXPECTED = {"0.1": "solved", "0.2": "not started", "3.1": "solved", "3.2": "solved",
            "3.3": "not started", "3.4": "not started", "3.5": "not started",
            "3.6": "not started", "3.7": "not started"}


def partly_solved(folder):
    """lessons/ as a learner has it: 0.1, 3.1 and 3.2 solved, the rest untouched."""
    lessons = folder / "lessons"
    lessons.mkdir()
    for name, solved in [("00_welcome", {"0.1"}), ("03_calculator", {"3.1", "3.2"})]:
        solution = nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4)
        lesson = build_notebook(solution, f"{name}.ipynb", solved=frozenset(solved))
        (lessons / f"{name}.ipynb").write_text(render(lesson))
    return lessons


@pytest.fixture
def records(tmp_path, monkeypatch):
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv("COURSE_PROGRESS_FILE", str(path))
    return path


def test_the_rerun_and_the_records_agree_on_a_partly_solved_copy(tmp_path, records) -> None:
    lessons = partly_solved(tmp_path)
    before = {path.name: path.read_text() for path in lessons.iterdir() if path.suffix == ".ipynb"}
    assert {e.id: e.state for e in collect(lessons)} == {
        **EXPECTED, "0.1": "not checked", "3.1": "not checked", "3.2": "not checked"}

    exercises = collect(lessons, rerun=True)  # runs them headless: their checks write records

    assert {exercise.id: exercise.state for exercise in exercises} == EXPECTED
    text = report(exercises)
    assert "Next: Exercise 0.2" in text and "  Hint: " in text
    assert text.splitlines()[-1] == "solved 3 of 9 exercises"
    assert {path.name: path.read_text() for path in lessons.iterdir()
            if path.suffix == ".ipynb"} == before, "never modified"
    fast = collect(lessons)
    assert report(fast) == text, "the records say what the run showed"

    # The learner edits the solved 3.1 and saves without checking again: no ✅ for it.
    notebook = nbformat.read(lessons / "03_calculator.ipynb", as_version=4)
    cell = next(cell for cell in notebook.cells if "def Add(" in cell.source)
    cell.source = cell.source.replace("request.a + request.b", "request.a - request.b")
    nbformat.write(notebook, lessons / "03_calculator.ipynb")
    states = {exercise.id: exercise.state for exercise in collect(lessons)}
    assert states["3.1"] == "changed" and states["3.2"] == states["0.1"] == "solved"


def test_a_record_counts_only_for_the_code_it_checked() -> None:
    exercise, other, unsaved = fingerprint("def f(): ..."), fingerprint("x = 1"), fingerprint("y")
    saved = {exercise, other}
    assert checked_this_code({"ran": [other, exercise, other]}, [exercise], saved)
    assert not checked_this_code({"ran": [other]}, [exercise], saved), "never ran"
    assert not checked_this_code({"ran": [exercise, unsaved]}, [exercise], saved), \
        "an unsaved cell ran after it (an edited version of the exercise, say)"
    assert not checked_this_code({"ran": [exercise]}, [], saved)
    assert fingerprint("x = 1\n") == fingerprint("x = 1"), "a trailing newline is not a change"


def test_check_records_its_verdict_only_in_a_kernel(records, capsys) -> None:
    from helpers import check
    from helpers.checks import CheckFailed

    with pytest.raises(CheckFailed):
        check("0.1", lambda target, a, b: a * b)
    assert not records.exists(), "a check outside IPython has no cells to tie its verdict to"
    record("0.1", None)  # no IPython here either
    assert read_records(str(records)) == {}


def test_the_newest_record_that_matches_wins(tmp_path, records) -> None:
    lessons = partly_solved(tmp_path)
    notebook = nbformat.read(lessons / "00_welcome.ipynb", as_version=4)
    ran = [fingerprint(cell.source) for cell in notebook.cells if cell.cell_type == "code"]
    lines = [{"exercise": "0.1", "passed": False, "detail": "expected 6, got 5", "ran": ran},
             {"exercise": "0.1", "passed": True, "detail": "", "ran": ran + [fingerprint("x")]}]
    records.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"cut short\n')
    exercise = next(e for e in collect(lessons, ["00"]) if e.id == "0.1")
    assert (exercise.state, exercise.detail) == ("failed", "expected 6, got 5")


def test_the_report_runs_no_notebook_unless_asked(records, monkeypatch) -> None:
    """What makes it fast (make bench times it): no kernel, only files are read."""
    from helpers import progress_report

    def no_kernels(*args, **kwargs):
        raise AssertionError("lessons were run")

    monkeypatch.setattr(progress_report, "ProcessPoolExecutor", no_kernels)
    monkeypatch.setattr(progress_report, "run_lesson", no_kernels)
    text = report(collect(names=["00"]))
    assert text.splitlines()[0].split() == ["00_welcome", "·", "0.1", "Your", "first", "call"]
    assert text.splitlines()[-1] == "solved 0 of 2 exercises"
    with pytest.raises(AssertionError, match="lessons were run"):
        collect(names=["00"], rerun=True)


def test_the_state_comes_from_the_checks_verdict_line() -> None:
    assert state_of("✅ Exercise 3.1 (Add): 12 calls were right") == ("solved", "")
    assert state_of("Traceback...\n❌ Exercise 3.2 (Divide): not solved yet. Write your code") \
        == ("not started", "")
    assert state_of("❌ Exercise 3.1 (Add): Add(2, 3): expected 5, got -1\n   Hint: ...") \
        == ("failed", "Add(2, 3): expected 5, got -1")
    assert state_of("NameError: name 'Calculator' is not defined") \
        == ("failed", "NameError: name 'Calculator' is not defined")


def test_helpers_progress_passes_rerun_on(monkeypatch) -> None:
    import helpers
    from helpers import progress_report

    calls = []
    monkeypatch.setattr(progress_report, "progress",
                        lambda *names, rerun: calls.append((names, rerun)))
    helpers.progress("00", rerun=True)
    helpers.progress()
    assert calls == [(("00",), True), ((), False)]


def test_the_report_reads_headings_and_anchors_as_the_builder_writes_them() -> None:
    from helpers import build, progress_report

    assert progress_report.EXERCISE_HEADING.pattern == build.EXERCISE_HEADING.pattern
    assert progress_report.EXERCISE_HEADING.flags == build.EXERCISE_HEADING.flags
    for exercise_id, title in [("3.2", "Divide safely"), ("12.4", "A trace, end to end")]:
        assert progress_report.anchor(exercise_id, title) == build.anchor(exercise_id, title)
