"""Checks for lesson 00, welcome."""

from __future__ import annotations

from typing import Callable

from helpers.checks.core import exercise, expect_equal
from helpers.reference import Calculator, calculator_pb2_grpc
from helpers.servers import serve


@exercise(
    "0.1",
    "Your first call",
    notebook="00_welcome",
    hint="Open a channel with grpc.insecure_channel(target), make a CalculatorStub(channel), "
    "call stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b)) and return the reply's "
    ".result.",
)
def first_call(multiply: Callable[[str, int, int], int]) -> str:
    pairs = [(6, 7), (-3, 4), (0, 99)]
    with serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, Calculator(),
               name="check-0.1") as server:
        for a, b in pairs:
            expect_equal(multiply(server.target, a, b), a * b, f"multiply(target, {a}, {b})")
    return f"{len(pairs)} calls to a real server gave the right products"
