"""Lesson 00, welcome: exercise 0.1 passes for a real call and rejects plausible wrong answers."""

from __future__ import annotations

import grpc
import pytest
from conftest import WrongAnswer, passes, rejects

from helpers.reference import Calculator, calculator_pb2, calculator_pb2_grpc
from helpers.servers import serve


def multiply(target: str, a: int, b: int) -> int:
    """The solution of exercise 0.1."""
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b), timeout=5).result


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


WRONG_ANSWERS = [
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


def teardown_module() -> None:
    if "channel" in _kept:
        _kept.pop("channel").close()
    if "server" in _notebook_server:
        _notebook_server.pop("server").stop()
