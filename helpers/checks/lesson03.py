"""Checks for lesson 03, calculator."""

from __future__ import annotations

import threading
from typing import Any, Callable

import grpc

from helpers.checks.core import (
    exercise,
    expect,
    expect_equal,
    expect_status,
    stub_for,
    within,
)
from helpers.reference import INT32_MAX, INT32_MIN, Calculator, calculator_pb2 as pb2

LESSON = "03_calculator"
OUT_OF_RANGE = grpc.StatusCode.OUT_OF_RANGE


def _result(rpc: Callable, request: Any) -> Any:
    return rpc(request, timeout=5).result


@exercise(
    "3.1",
    "Add, Subtract and Multiply",
    notebook=LESSON,
    hint="Each method gets (request, context) and returns its reply message, "
    "e.g. return calculator_pb2.AddReply(result=request.a + request.b).",
)
def arithmetic(servicer: Any) -> str:
    cases = [(2, 3), (-7, 4), (0, 0), (1000, -1000)]
    with stub_for("calculator", "Calculator", servicer) as stub:
        for a, b in cases:
            expect_equal(_result(stub.Add, pb2.AddRequest(a=a, b=b)), a + b, f"Add({a}, {b})")
            expect_equal(_result(stub.Subtract, pb2.SubtractRequest(a=a, b=b)), a - b,
                         f"Subtract({a}, {b})")
            expect_equal(_result(stub.Multiply, pb2.MultiplyRequest(a=a, b=b)), a * b,
                         f"Multiply({a}, {b})")
    return f"{3 * len(cases)} calls over a real channel returned the right results"


@exercise(
    "3.2",
    "Divide without crashing",
    notebook=LESSON,
    hint="Before dividing, test request.b == 0 and call "
    "context.abort(grpc.StatusCode.INVALID_ARGUMENT, 'cannot divide by zero'). "
    "abort() raises, so the division below it never runs.",
)
def safe_divide(servicer: Any) -> str:
    with stub_for("calculator", "Calculator", servicer) as stub:
        for a, b in [(7, 2), (-9, 3), (1, 3)]:
            expect_equal(_result(stub.Divide, pb2.DivideRequest(a=a, b=b)), a / b,
                         f"Divide({a}, {b})")
        expect_status(stub.Divide, pb2.DivideRequest(a=5, b=0),
                      grpc.StatusCode.INVALID_ARGUMENT, "Divide(5, 0)")
    return "Divide is right for 3 inputs and answers INVALID_ARGUMENT for a zero divisor"


@exercise(
    "3.3",
    "Stay inside int32",
    notebook=LESSON,
    hint="Compute the exact result with Python's unbounded int first, then compare it with "
    "INT32_MIN and INT32_MAX; outside that range call "
    "context.abort(grpc.StatusCode.OUT_OF_RANGE, ...) before building the reply.",
)
def int32_range(servicer: Any) -> str:
    with stub_for("calculator", "Calculator", servicer) as stub:
        expect_status(stub.Add, pb2.AddRequest(a=INT32_MAX, b=1), OUT_OF_RANGE,
                      "Add(INT32_MAX, 1)")
        expect_status(stub.Subtract, pb2.SubtractRequest(a=INT32_MIN, b=1), OUT_OF_RANGE,
                      "Subtract(INT32_MIN, 1)")
        expect_status(stub.Multiply, pb2.MultiplyRequest(a=65536, b=65536), OUT_OF_RANGE,
                      "Multiply(65536, 65536)")
        expect_equal(_result(stub.Add, pb2.AddRequest(a=INT32_MAX - 1, b=1)), INT32_MAX,
                     "Add(INT32_MAX - 1, 1), which still fits,")
        expect_equal(_result(stub.Multiply, pb2.MultiplyRequest(a=-65536, b=32768)), INT32_MIN,
                     "Multiply(-65536, 32768), which is exactly INT32_MIN,")
        expect_status(stub.Divide, pb2.DivideRequest(a=1, b=0),
                      grpc.StatusCode.INVALID_ARGUMENT, "Divide(1, 0)")
    return "3 overflows answer OUT_OF_RANGE, the edges of int32 still work, Divide stays safe"


class _SlowOnThirteen(Calculator):
    """The reference calculator, except that Divide by 13 waits until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def Divide(self, request, context):
        if request.b == 13:
            self.release.wait(timeout=10)
        return super().Divide(request, context)


@exercise(
    "3.4",
    "A client that reports errors and gives up in time",
    notebook=LESSON,
    hint="Call stub.Divide(request, timeout=timeout) inside try/except grpc.RpcError as error; "
    "in the except branch return f'error {error.code().name}: {error.details()}'.",
)
def describe_divide(describe: Callable[..., str]) -> str:
    servicer = _SlowOnThirteen()
    try:
        with stub_for("calculator", "Calculator", servicer) as stub:
            answer = describe(stub, 7, 2, timeout=2)
            expect(isinstance(answer, str) and "3.5" in answer,
                   f"describe_divide(stub, 7, 2) returned {answer!r}; it should contain 3.5")
            answer = describe(stub, 1, 0, timeout=2)
            expect(isinstance(answer, str) and "INVALID_ARGUMENT" in answer,
                   f"describe_divide(stub, 1, 0) returned {answer!r}; "
                   "it should name the status code INVALID_ARGUMENT")
            answer = within(5, lambda: describe(stub, 1, 13, timeout=0.3),
                            "pass timeout= to the stub call")
            expect(isinstance(answer, str) and "DEADLINE_EXCEEDED" in answer,
                   f"describe_divide against a stuck server returned {answer!r}; "
                   "it should name DEADLINE_EXCEEDED")
    finally:
        servicer.release.set()
    return "a result, INVALID_ARGUMENT and DEADLINE_EXCEEDED were each reported as text"


@exercise(
    "3.5",
    "Send and read metadata",
    notebook=LESSON,
    hint="Use stub.Add.with_call(request, metadata=[('x-request-id', request_id)], timeout=5); "
    "it returns (reply, call), and dict(call.trailing_metadata()) holds the echoed id.",
)
def request_id(add_with_request_id: Callable[..., tuple[int, str]]) -> str:
    with stub_for("calculator", "Calculator", Calculator) as stub:
        for a, b, rid in [(2, 3, "req-1"), (40, 2, "req-42")]:
            got = add_with_request_id(stub, a, b, rid)
            expect_equal(got, (a + b, rid), f"add_with_request_id(stub, {a}, {b}, {rid!r})")
    return "2 calls sent x-request-id and read it back from the trailing metadata"
