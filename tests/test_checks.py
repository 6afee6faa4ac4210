"""The checker: a correct answer passes, a wrong or crashing one fails with a short message."""

from __future__ import annotations

import grpc
import pytest

from helpers import check
from helpers.checks import EXERCISES, CheckFailed
from helpers.reference import Calculator, calculator_pb2, calculator_pb2_grpc


def failure(capsys, exercise_id: str, *args) -> str:
    """Run a check that must fail; return what it printed."""
    with pytest.raises(CheckFailed):
        check(exercise_id, *args)
    return capsys.readouterr().out


class WrongAdd(Calculator):
    def Add(self, request, context):
        return calculator_pb2.AddReply(result=request.a - request.b)


class Unsolved(Calculator):
    def Add(self, request, context):
        raise NotImplementedError("Exercise 3.1: not solved yet")

    def Divide(self, request, context):
        raise NotImplementedError("Exercise 3.2: not solved yet")


class SeedDivide(Calculator):
    def Divide(self, request, context):
        return calculator_pb2.DivideReply(result=request.a / request.b)


class Unchecked(Calculator):
    def Multiply(self, request, context):
        return calculator_pb2.MultiplyReply(result=request.a * request.b)


@pytest.mark.parametrize("exercise_id", ["3.1", "3.2", "3.3"])
def test_the_reference_calculator_passes(exercise_id: str, capsys) -> None:
    check(exercise_id, Calculator)
    assert capsys.readouterr().out.startswith(f"✅ Exercise {exercise_id} (")


def test_a_wrong_answer_fails_saying_expected_and_got(capsys) -> None:
    out = failure(capsys, "3.1", WrongAdd)
    assert "❌ Exercise 3.1" in out
    assert "Add(2, 3): expected 5, got -1" in out
    assert "Hint: " in out and "solutions/03_calculator.ipynb" in out


def test_an_untouched_exercise_says_where_to_write_and_shows_no_hint(capsys) -> None:
    """The placeholder raised on the server: "not solved yet", no traceback, no hint yet."""
    out = failure(capsys, "3.2", Unsolved)
    assert "Exercise 3.2 (Divide without crashing): not solved yet. Write your code" in out
    assert "Hint" not in out and "Traceback" not in out


def test_a_check_that_needs_an_earlier_exercise_names_it(capsys) -> None:
    out = failure(capsys, "3.3", Unsolved)  # 3.3 calls Add, which still raises 3.1's placeholder
    assert "needs Exercise 3.1, which is not solved yet" in out and "Hint" not in out


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


def test_the_seeds_divide_by_zero_fails_the_check(capsys) -> None:
    out = failure(capsys, "3.2", SeedDivide)
    assert "Divide(5, 0) ended with UNKNOWN" in out and "expected INVALID_ARGUMENT" in out


def test_an_overflow_that_crashes_fails_the_check(capsys) -> None:
    out = failure(capsys, "3.3", Unchecked)
    assert "Multiply(65536, 65536) ended with UNKNOWN" in out


def test_learner_functions_are_checked_against_a_real_server(capsys) -> None:
    def multiply(target: str, a: int, b: int) -> int:
        with grpc.insecure_channel(target) as channel:
            stub = calculator_pb2_grpc.CalculatorStub(channel)
            return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b), timeout=5).result

    check("0.1", multiply)
    assert capsys.readouterr().out.startswith("✅")
    out = failure(capsys, "0.1", lambda target, a, b: a + b)
    assert "multiply(target, 6, 7): expected 42, got 13" in out


def test_a_learner_function_that_raises_is_named(capsys) -> None:
    def broken(target: str, a: int, b: int) -> int:
        raise ValueError("oops")

    assert "your code raised ValueError: oops" in failure(capsys, "0.1", broken)
    assert "not solved yet" in failure(capsys, "0.1", lambda *a: (_ for _ in ()).throw(
        NotImplementedError("Exercise 0.1: not solved yet")))


def test_a_client_without_a_deadline_fails_instead_of_hanging(capsys) -> None:
    def describe_without_timeout(stub, a, b, timeout=1.0) -> str:
        try:
            return str(stub.Divide(calculator_pb2.DivideRequest(a=a, b=b)).result)
        except grpc.RpcError as error:
            return error.code().name

    out = failure(capsys, "3.4", describe_without_timeout)
    assert "still waiting after 5 s" in out


def test_metadata_exercise_detects_a_missing_echo(capsys) -> None:
    out = failure(capsys, "3.5", lambda stub, a, b, request_id: (a + b, ""))
    assert "expected (5, 'req-1'), got (5, '')" in out


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
