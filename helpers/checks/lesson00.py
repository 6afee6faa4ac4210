"""Checks for lesson 00, welcome."""

from __future__ import annotations

import threading
from typing import Any, Callable

from google.protobuf.message import Message

import grpc

from helpers.checks.core import (
    Mismatch,
    describe_rpc_error,
    down_target,
    exercise,
    expect,
    expect_equal,
    expect_gives_up,
    stuck_server,
    two_servers,
)
from helpers.reference import Calculator, calculator_pb2_grpc
from helpers.servers import serve


class _CountingCalculator(Calculator):
    """The reference calculator, recording every Multiply request it really received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.multiplied: list[tuple[int, int]] = []
        self.other_calls: list[str] = []

    def Multiply(self, request, context):
        with self.lock:
            self.multiplied.append((request.a, request.b))
        return super().Multiply(request, context)

    def Add(self, request, context):
        with self.lock:
            self.other_calls.append("Add")
        return super().Add(request, context)


def _expect_call_error(function: Callable[[], Any], seconds: float, what: str,
                       code: grpc.StatusCode) -> None:
    """`function` must end by itself and let the call's RpcError (with `code`) reach its caller."""
    error = expect_gives_up(function, seconds, what)
    if error is None:
        raise Mismatch(f"{what} returned a value although the call failed: let the RpcError "
                       "reach the caller instead of returning a made-up number")
    if not isinstance(error, grpc.RpcError):
        raise Mismatch(f"{what} raised {type(error).__name__}: {error}; let the call's own "
                       "RpcError reach the caller")
    expect(error.code() == code, f"{what} failed with {describe_rpc_error(error)}, expected "
           f"{code.name}")


@exercise(
    "0.1",
    "Your first call",
    notebook="00_welcome",
    hint="Look at the cell above the exercise that calls Add: the same three steps "
    "(channel, stub, call) work for Multiply, with the `target` you are given.",
    second_hint="Every call to your function may name another server: connect to the one it "
    "names, each time. And what did the lesson say a call needs so that it cannot wait forever?",
)
def first_call(multiply: Callable[[str, int, int], Any]) -> str:
    pairs = [(6, 7), (-3, 4), (0, 99)]
    servicer = _CountingCalculator()
    with serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, servicer,
               name="check-0.1") as server:
        for a, b in pairs:
            got = multiply(server.target, a, b)
            what = f"multiply(target, {a}, {b})"
            if isinstance(got, Message):
                raise Mismatch(f"{what} returned the whole {type(got).__name__} message; "
                               "return its .result field, an int")
            if (a, b) not in servicer.multiplied:
                if servicer.other_calls:
                    raise Mismatch(f"{what} called {servicer.other_calls[-1]} on the server, "
                                   "not Multiply")
                raise Mismatch(f"{what} returned {got!r}, but the server at `target` received no "
                               f"Multiply({a}, {b}) call: ask the server at `target`, do not "
                               "compute the product yourself or call another server")
            expect_equal(got, a * b, what)
    expect(len(servicer.multiplied) >= len(pairs), "the server missed calls")
    servicers = [_CountingCalculator(), _CountingCalculator()]
    with two_servers(calculator_pb2_grpc.add_CalculatorServicer_to_server,
                     iter(servicers).__next__) as targets:
        for name, server, servicer in zip(("first", "second"), targets, servicers):
            try:
                got = multiply(server.target, 5, 8)
            except grpc.RpcError as error:
                raise Mismatch(f"with two servers, multiply({name}_target, 5, 8) failed with "
                               f"{describe_rpc_error(error)}: connect to the `target` of each "
                               "call, not to one kept from an earlier call") from None
            expect_equal(got, 40, f"multiply({name}_target, 5, 8)")
            expect((5, 8) in servicer.multiplied,
                   f"with two servers, multiply({name}_target, 5, 8) did not reach the {name} "
                   "server: connect to the `target` of each call, not to one kept from an "
                   "earlier call")
    _expect_call_error(lambda: multiply(down_target(), 2, 3), 10,
                       "multiply(target, 2, 3) with no server at target",
                       grpc.StatusCode.UNAVAILABLE)
    with stuck_server() as target:
        _expect_call_error(lambda: multiply(target, 2, 3), 6,
                           "multiply(target, 2, 3) with a server that never answers",
                           grpc.StatusCode.DEADLINE_EXCEEDED)
    return (f"the server at target received Multiply for all {len(pairs)} pairs and your function "
            "returned its products; with two servers each got its call; a missing server and one "
            "that never answers gave their errors, within seconds")
