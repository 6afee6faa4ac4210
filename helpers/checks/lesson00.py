"""Checks for lesson 00, welcome."""

from __future__ import annotations

import threading
from typing import Any, Callable

from google.protobuf.message import Message

from helpers.checks.core import Mismatch, exercise, expect, expect_equal
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


@exercise(
    "0.1",
    "Your first call",
    notebook="00_welcome",
    hint="Look at the cell above the exercise that calls Add: the same three steps "
    "(channel, stub, call) work for Multiply, with the `target` you are given.",
    second_hint="Inside `with grpc.insecure_channel(target) as channel:`, make "
    "calculator_pb2_grpc.CalculatorStub(channel), call stub.Multiply(calculator_pb2."
    "MultiplyRequest(a=a, b=b), timeout=5) and return the reply's .result.",
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
    return (f"the server at target received Multiply for all {len(pairs)} pairs, "
            "and your function returned its products")
