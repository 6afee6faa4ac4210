"""make progress: a learner's partly solved lessons are reported exactly."""

from __future__ import annotations

import nbformat
from conftest import SOLUTIONS

from helpers.build import build_notebook, render
from helpers.progress_report import collect, report, state_of


def test_a_partly_solved_copy_of_the_lessons_is_counted_exactly(tmp_path) -> None:
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    for name, solved in [("00_welcome", {"0.1"}), ("03_calculator", {"3.1", "3.2"})]:
        solution = nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4)
        lesson = build_notebook(solution, f"{name}.ipynb", solved=frozenset(solved))
        (lessons / f"{name}.ipynb").write_text(render(lesson))
    before = {path.name: path.read_text() for path in lessons.iterdir()}

    exercises = collect(lessons)

    states = {exercise.id: exercise.state for exercise in exercises}
    assert states == {"0.1": "solved", "3.1": "solved", "3.2": "solved",
                      "3.3": "not started", "3.4": "not started", "3.5": "not started"}
    text = report(exercises)
    assert "Next: Exercise 3.3" in text and "  Hint: " in text
    assert text.splitlines()[-1] == "solved 3 of 6 exercises"
    assert {path.name: path.read_text() for path in lessons.iterdir()} == before, "never modified"


def test_the_state_comes_from_the_checks_verdict_line() -> None:
    assert state_of("✅ Exercise 3.1 (Add): 12 calls were right") == ("solved", "")
    assert state_of("Traceback...\n❌ Exercise 3.2 (Divide): not solved yet. Write your code") \
        == ("not started", "")
    assert state_of("❌ Exercise 3.1 (Add): Add(2, 3): expected 5, got -1\n   Hint: ...") \
        == ("failed", "Add(2, 3): expected 5, got -1")
    assert state_of("NameError: name 'Calculator' is not defined") \
        == ("failed", "NameError: name 'Calculator' is not defined")
