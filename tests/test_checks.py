"""The checker: a correct answer passes, a wrong or crashing one fails with a short message.

These tests are about the checker itself (helpers.checks.core); each lesson's exercises
are tested in tests/test_lessonNN.py.
"""

from __future__ import annotations

import pytest

from helpers import check
from helpers.checks import EXERCISES, CheckFailed
from helpers.reference import Calculator, calculator_pb2


def failure(capsys, exercise_id: str, *args) -> str:
    """Run a check that must fail; return what it printed."""
    with pytest.raises(CheckFailed):
        check(exercise_id, *args)
    return capsys.readouterr().out


class WrongAdd(Calculator):
    def Add(self, request, context):
        return calculator_pb2.AddReply(result=request.a - request.b)


class Unsolved(Calculator):
    def Divide(self, request, context):
        raise NotImplementedError("Exercise 3.2: not solved yet")


def test_a_wrong_answer_fails_saying_expected_and_got(capsys) -> None:
    out = failure(capsys, "3.1", WrongAdd)
    assert "❌ Exercise 3.1" in out
    assert "Add(2, 3): the reference gives 5, yours gives -1" in out
    assert "Hint: " in out and "solutions/03_calculator.ipynb" in out


def test_an_untouched_exercise_says_where_to_write_and_shows_no_hint(capsys) -> None:
    """The placeholder raised on the server: "not solved yet", no traceback, no hint yet."""
    out = failure(capsys, "3.2", Unsolved)
    assert "Exercise 3.2 (Divide without crashing): not solved yet. Write your code" in out
    assert "Hint" not in out and "Traceback" not in out


def test_a_check_that_needs_an_earlier_exercise_names_it(capsys) -> None:
    out = failure(capsys, "3.3", Unsolved)  # 3.3 calls Divide, which still raises 3.2's placeholder
    assert "needs Exercise 3.2, which is not solved yet" in out and "Hint" not in out


def test_a_wrong_attempt_gets_both_hints(capsys) -> None:
    from helpers.checks.core import EXERCISES

    exercise = EXERCISES["3.1"]
    original = exercise.second_hint
    exercise.second_hint = "closer to the answer"
    try:
        out = failure(capsys, "3.1", WrongAdd)
    finally:
        exercise.second_hint = original
    assert f"Hint: {exercise.hint}" in out
    assert "Another hint: closer to the answer" in out


def test_a_learner_function_that_raises_is_named(capsys) -> None:
    def broken(target: str, a: int, b: int) -> int:
        raise ValueError("oops")

    assert "your code raised ValueError: oops" in failure(capsys, "0.1", broken)
    assert "not solved yet" in failure(capsys, "0.1", lambda *a: (_ for _ in ()).throw(
        NotImplementedError("Exercise 0.1: not solved yet")))


def test_check_failed_renders_as_one_line_in_ipython() -> None:
    error = CheckFailed("Exercise 3.1 is not solved yet: boom")
    assert error._render_traceback_() == ["CheckFailed: Exercise 3.1 is not solved yet: boom"]
    assert isinstance(error, AssertionError)


def test_unknown_exercise_ids_are_refused() -> None:
    with pytest.raises(KeyError):
        check("99.9", Calculator)


def test_every_exercise_has_a_title_hint_and_notebook() -> None:
    for ex in EXERCISES.values():
        assert ex.title and len(ex.hint) > 20 and ex.notebook[:2].isdigit(), ex.id
