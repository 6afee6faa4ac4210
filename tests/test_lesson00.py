"""Lesson 00, welcome: exercise 0.1 passes for a real call and rejects plausible wrong answers."""

from __future__ import annotations

import time

import grpc
import pytest
from conftest import WrongAnswer, passes, rejects

from helpers.checks.lesson00 import reference_first_product
from helpers.reference import Calculator, calculator_pb2, calculator_pb2_grpc
from helpers.servers import serve


def multiply(target: str, a: int, b: int) -> int:
    """The solution of exercise 0.1."""
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b), timeout=2).result


def multiply_keyword_style(target: str, a: int, b: int) -> int:
    """Correct too: no `with` block, the channel closed by hand, no timeout keyword order."""
    channel = grpc.insecure_channel(target)
    try:
        reply = calculator_pb2_grpc.CalculatorStub(channel).Multiply(
            calculator_pb2.MultiplyRequest(b=b, a=a), timeout=3)
    finally:
        channel.close()
    return int(reply.result)


def locally(target: str, a: int, b: int) -> int:
    return a * b


def with_add(target: str, a: int, b: int) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        return stub.Add(calculator_pb2.AddRequest(a=a, b=b), timeout=5).result


def whole_reply(target: str, a: int, b: int):
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b), timeout=5)


_notebook_server = {}


def to_the_notebooks_server(target: str, a: int, b: int) -> int:
    """Ignores `target` and calls the server the notebook started earlier."""
    if "server" not in _notebook_server:
        _notebook_server["server"] = serve(calculator_pb2_grpc.add_CalculatorServicer_to_server,
                                           Calculator(), name="test-00-notebook-server")
    return multiply(_notebook_server["server"].target, a, b)


def zero_on_error(target: str, a: int, b: int) -> int:
    try:
        return multiply(target, a, b)
    except grpc.RpcError:
        return 0


def no_timeout(target: str, a: int, b: int) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b)).result


_kept: dict = {}


def keeps_first_channel(target: str, a: int, b: int) -> int:
    """Opens one channel, the first time, and keeps it for every later call."""
    if "channel" not in _kept:
        _kept["channel"] = grpc.insecure_channel(target)
    stub = calculator_pb2_grpc.CalculatorStub(_kept["channel"])
    return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b), timeout=5).result


def wraps_the_error(target: str, a: int, b: int) -> int:
    try:
        return multiply(target, a, b)
    except grpc.RpcError as error:
        raise RuntimeError(f"the call failed: {error.code()}") from None


def impatient(target: str, a: int, b: int) -> int:
    """A deadline of a tenth of a second: a healthy server that takes 0.3 s misses it."""
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b), timeout=0.1).result


def too_patient(target: str, a: int, b: int) -> int:
    """A deadline of five seconds: more than the 3 s the statement allows."""
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b), timeout=5).result


# ---- 0.2: the first server that answers ---------------------------------------------------------

SKIPPED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _ask(target: str, a: int, b: int, timeout: float) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b), timeout=timeout).result


def first_product_with_break(targets, a, b, seconds):
    """Correct too: stops asking when the budget is spent, failures kept as a dict."""
    end = time.time() + seconds
    failed = {}
    for target in targets:
        left = end - time.time()
        if left <= 0:
            break
        try:
            return _ask(target, a, b, min(left, 1.0))
        except grpc.RpcError as error:
            if error.code() in SKIPPED:
                failed[target] = error.code().name
                continue
            raise
    raise ConnectionError(f"none of {len(targets)} servers answered: {failed}")


def skips_every_error(targets, a, b, seconds):
    deadline = time.monotonic() + seconds
    failures = []
    for target in targets:
        try:
            return _ask(target, a, b, min(1, deadline - time.monotonic()))
        except grpc.RpcError as error:
            failures.append(f"{target}: {error.code().name}")
    raise ConnectionError(", ".join(failures))


def only_unavailable(targets, a, b, seconds):
    deadline = time.monotonic() + seconds
    failures = []
    for target in targets:
        try:
            return _ask(target, a, b, min(1, deadline - time.monotonic()))
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            failures.append(f"{target}: {error.code().name}")
    raise ConnectionError(", ".join(failures))


def whole_budget_each(targets, a, b, seconds):
    """Gives each server what is left of the budget: a stuck first server eats all of it."""
    deadline = time.monotonic() + seconds
    failures = []
    for target in targets:
        try:
            return _ask(target, a, b, deadline - time.monotonic())
        except grpc.RpcError as error:
            if error.code() not in SKIPPED:
                raise
            failures.append(f"{target}: {error.code().name}")
    raise ConnectionError(", ".join(failures))


def no_total_budget(targets, a, b, seconds):
    """One second per server, and `seconds` ignored: four stuck servers take four seconds."""
    failures = []
    for target in targets:
        try:
            return _ask(target, a, b, 1)
        except grpc.RpcError as error:
            if error.code() not in SKIPPED:
                raise
            failures.append(f"{target}: {error.code().name}")
    raise ConnectionError(", ".join(failures))


def budget_checked_between_calls(targets, a, b, seconds):
    """Looks at the clock only between calls: the last call may overrun by a whole second."""
    deadline = time.monotonic() + seconds
    failures = []
    for target in targets:
        if time.monotonic() >= deadline:
            break
        try:
            return _ask(target, a, b, 1)
        except grpc.RpcError as error:
            if error.code() not in SKIPPED:
                raise
            failures.append(f"{target}: {error.code().name}")
    raise ConnectionError(", ".join(failures))


def raises_the_last_error(targets, a, b, seconds):
    deadline = time.monotonic() + seconds
    for index, target in enumerate(targets):
        try:
            return _ask(target, a, b, min(1, deadline - time.monotonic()))
        except grpc.RpcError as error:
            if error.code() not in SKIPPED or index == len(targets) - 1:
                raise


def says_nothing_useful(targets, a, b, seconds):
    deadline = time.monotonic() + seconds
    for target in targets:
        try:
            return _ask(target, a, b, min(1, deadline - time.monotonic()))
        except grpc.RpcError as error:
            if error.code() not in SKIPPED:
                raise
    raise ConnectionError("no server answered")


def asks_them_all(targets, a, b, seconds):
    """Asks every server, then returns the first answer: servers after it were asked for nothing."""
    answers, failures = [], []
    deadline = time.monotonic() + seconds
    for target in targets:
        try:
            answers.append(_ask(target, a, b, min(1, deadline - time.monotonic())))
        except grpc.RpcError as error:
            if error.code() not in SKIPPED:
                raise
            failures.append(f"{target}: {error.code().name}")
    if answers:
        return answers[0]
    raise ConnectionError(", ".join(failures))


def half_a_second_each(targets, a, b, seconds):
    deadline = time.monotonic() + seconds
    failures = []
    for target in targets:
        try:
            return _ask(target, a, b, min(0.2, deadline - time.monotonic()))
        except grpc.RpcError as error:
            if error.code() not in SKIPPED:
                raise
            failures.append(f"{target}: {error.code().name}")
    raise ConnectionError(", ".join(failures))


def none_when_nobody_answers(targets, a, b, seconds):
    try:
        return reference_first_product(targets, a, b, seconds)
    except ConnectionError:
        return None


WRONG_ANSWERS = [
    WrongAnswer("0.1", "a deadline so short that a healthy server taking 0.3 s misses it",
                (impatient,), says="gave up on a healthy server too soon"),
    WrongAnswer("0.1", "timeout=5: longer than the 3 s asked", (too_patient,),
                says="3 seconds at most"),
    WrongAnswer("0.2", "skips a server that answered with an error", (skips_every_error,),
                says="an error a server answers with is its answer"),
    WrongAnswer("0.2", "skips only servers that are down, not slow ones", (only_unavailable,),
                says="a server that is down or has not answered within a second is skipped"),
    WrongAnswer("0.2", "each server gets the whole remaining budget", (whole_budget_each,),
                says="a server that is down or has not answered within a second is skipped"),
    WrongAnswer("0.2", "one second per server and no total budget", (no_total_budget,),
                says="must end within `seconds`"),
    WrongAnswer("0.2", "the budget checked only between calls", (budget_checked_between_calls,),
                says="must end within `seconds`"),
    WrongAnswer("0.2", "raises the last RpcError when none answers", (raises_the_last_error,),
                says="raised the last call's RpcError"),
    WrongAnswer("0.2", "ConnectionError that names no server", (says_nothing_useful,),
                says="its message should name each server"),
    WrongAnswer("0.2", "asks every server, then returns the first answer", (asks_them_all,),
                says="ask no server once one has answered"),
    WrongAnswer("0.2", "0.2 s per server: a healthy server taking 0.3 s is skipped",
                (half_a_second_each,), says="a healthy server may take up to half a second"),
    WrongAnswer("0.2", "returns None when no server answers", (none_when_nobody_answers,),
                says="raise ConnectionError instead of a made-up result"),
    WrongAnswer("0.1", "returns 0 when the call fails", (zero_on_error,),
                says="returned a value although the call failed"),
    WrongAnswer("0.1", "no timeout: waits forever on a server that never answers", (no_timeout,),
                says="give every call a deadline"),
    WrongAnswer("0.1", "keeps the channel of its first call", (keeps_first_channel,),
                says="connect to the `target` of each call, not to one kept from an earlier call"),
    WrongAnswer("0.1", "turns the RpcError into a RuntimeError", (wraps_the_error,),
                says="let the call's own RpcError reach the caller"),
    WrongAnswer("0.1", "computes a * b locally, never calls the server", (locally,),
                says="received no Multiply(6, 7) call"),
    WrongAnswer("0.1", "calls Add instead of Multiply", (with_add,), says="called Add"),
    WrongAnswer("0.1", "returns the reply message, not its result", (whole_reply,),
                says="return its .result field"),
    WrongAnswer("0.1", "ignores target, calls the notebook's own server", (to_the_notebooks_server,),
                says="the server at `target` received no Multiply(6, 7) call"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("answer", [multiply, multiply_keyword_style], ids=lambda f: f.__name__)
def test_correct_answers_pass(answer, capsys) -> None:
    passes(capsys, "0.1", answer)


@pytest.mark.parametrize("answer", [reference_first_product, first_product_with_break],
                         ids=lambda f: f.__name__)
def test_correct_first_products_pass(answer, capsys) -> None:
    passes(capsys, "0.2", answer)


def teardown_module() -> None:
    if "channel" in _kept:
        _kept.pop("channel").close()
    if "server" in _notebook_server:
        _notebook_server.pop("server").stop()
