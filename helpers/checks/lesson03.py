"""Checks for lesson 03, calculator."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any, Callable

import grpc

from helpers.checks.core import (
    Mismatch,
    describe_rpc_error,
    exercise,
    expect,
    expect_equal,
    expect_status,
    stub_for,
    within,
)
from helpers.reference import INT32_MAX, INT32_MIN, Calculator, calculator_pb2 as pb2

LESSON = "03_calculator"
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT


def _result(rpc: Callable, request: Any) -> Any:
    return rpc(request, timeout=5).result


@exercise(
    "3.1",
    "Add, Subtract and Multiply",
    notebook=LESSON,
    hint="Each method gets the decoded request and returns a reply message: which reply class "
    "goes with each method, and which fields does the request have?",
    second_hint="e.g. return calculator_pb2.AddReply(result=request.a + request.b), and the "
    "same with SubtractReply and MultiplyReply.",
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
    hint="Decide before dividing: which status code says \"your request is wrong\", and which "
    "context method ends the call with it?",
    second_hint="Test request.b == 0 and call context.abort(grpc.StatusCode.INVALID_ARGUMENT, "
    "'cannot divide by zero'). abort() raises, so the division below it never runs.",
)
def safe_divide(servicer: Any) -> str:
    with stub_for("calculator", "Calculator", servicer) as stub:
        for a, b in [(7, 2), (-9, 3), (1, 3)]:
            expect_equal(_result(stub.Divide, pb2.DivideRequest(a=a, b=b)), a / b,
                         f"Divide({a}, {b})")
        expect_status(stub.Divide, pb2.DivideRequest(a=5, b=0), INVALID_ARGUMENT, "Divide(5, 0)")
    return "Divide is right for 3 inputs and answers INVALID_ARGUMENT for a zero divisor"


def _expect_overflow_refused(rpc: Callable, request: Any, what: str) -> None:
    try:
        reply = rpc(request, timeout=5)
    except grpc.RpcError as error:
        expect(error.code() != grpc.StatusCode.OUT_OF_RANGE,
               f"{what} ended with OUT_OF_RANGE; gRPC's status-code guide keeps OUT_OF_RANGE for "
               "what may work once the system changes (reading past the current end of a file). "
               "No state makes this result fit: answer INVALID_ARGUMENT")
        expect(error.code() == INVALID_ARGUMENT,
               f"{what} ended with {describe_rpc_error(error)}, expected INVALID_ARGUMENT")
        expect(bool(error.details()), f"{what} gave INVALID_ARGUMENT but no message (details)")
        return
    raise Mismatch(f"{what} succeeded with {reply.result}, a wrong answer that looks right; "
                   "refuse it with INVALID_ARGUMENT")


def _expect_fits(rpc: Callable, request: Any, expected: int, what: str) -> None:
    try:
        got = _result(rpc, request)
    except grpc.RpcError as error:
        raise Mismatch(f"{what} ended with {describe_rpc_error(error)}: INT32_MIN and INT32_MAX "
                       "are int32 values too, so refuse only what lies outside them") from None
    expect_equal(got, expected, what)


@exercise(
    "3.3",
    "Stay inside int32",
    notebook=LESSON,
    hint="Python's int never overflows, so compute the exact result first; then compare it "
    "with the int32 limits, both of them included.",
    second_hint="Outside INT32_MIN..INT32_MAX call context.abort(grpc.StatusCode."
    "INVALID_ARGUMENT, f'{operation} result {value} does not fit in int32') before building "
    "the reply.",
)
def int32_range(servicer: Any) -> str:
    with stub_for("calculator", "Calculator", servicer) as stub:
        _expect_overflow_refused(stub.Add, pb2.AddRequest(a=INT32_MAX, b=1), "Add(INT32_MAX, 1)")
        _expect_overflow_refused(stub.Subtract, pb2.SubtractRequest(a=INT32_MIN, b=1),
                                 "Subtract(INT32_MIN, 1)")
        _expect_overflow_refused(stub.Multiply, pb2.MultiplyRequest(a=65536, b=65536),
                                 "Multiply(65536, 65536)")
        _expect_fits(stub.Add, pb2.AddRequest(a=INT32_MAX - 1, b=1), INT32_MAX,
                     "Add(INT32_MAX - 1, 1), which still fits,")
        _expect_fits(stub.Multiply, pb2.MultiplyRequest(a=-65536, b=32768), INT32_MIN,
                     "Multiply(-65536, 32768), which is exactly INT32_MIN,")
        expect_status(stub.Divide, pb2.DivideRequest(a=1, b=0), INVALID_ARGUMENT, "Divide(1, 0)")
    return "3 overflows answer INVALID_ARGUMENT, the edges of int32 still work, Divide stays safe"


class _WatchedDivide(Calculator):
    """The reference calculator, except that Divide records what reached the server.

    A zero divisor gets a message with a token only the server knows; b == 13 is stuck
    until the client gives up (or `release` is set), after recording the deadline it saw.
    """

    def __init__(self) -> None:
        self.release = threading.Event()
        self.token = secrets.token_hex(3)
        self.divisions: list[tuple[int, int]] = []
        self.deadlines: list[float | None] = []

    def Divide(self, request, context):
        self.divisions.append((request.a, request.b))
        if request.b == 0:
            context.abort(INVALID_ARGUMENT, f"cannot divide by zero (checked by server {self.token})")
        if request.b == 13:
            self.deadlines.append(context.time_remaining())
            while context.is_active() and not self.release.wait(0.02):
                pass
        return super().Divide(request, context)


def _expect_one_line(answer: Any, what: str) -> str:
    expect(isinstance(answer, str), f"{what} returned {answer!r}, expected a line of text")
    expect("\n" not in answer.strip(),
           f"{what} returned several lines ({answer[:80]!r}...); return one line: the code's "
           "name and the details (str(error) adds a debug dump)")
    return answer


@exercise(
    "3.4",
    "A client that reports errors and gives up in time",
    notebook=LESSON,
    hint="A stub call takes a timeout= argument; a failed call raises grpc.RpcError, which "
    "has .code() and .details().",
    second_hint="Call stub.Divide(request, timeout=timeout) inside try/except grpc.RpcError as "
    "error; in the except branch return f'error {error.code().name}: {error.details()}'.",
)
def describe_divide(describe: Callable[..., str]) -> str:
    servicer = _WatchedDivide()
    try:
        with stub_for("calculator", "Calculator", servicer) as stub:
            answer = _expect_one_line(describe(stub, 7, 2, timeout=2), "describe_divide(stub, 7, 2)")
            expect((7, 2) in servicer.divisions,
                   f"describe_divide(stub, 7, 2) returned {answer!r} without calling Divide on "
                   "the server: use the stub")
            expect("3.5" in answer,
                   f"describe_divide(stub, 7, 2) returned {answer!r}; it should contain 3.5")
            answer = _expect_one_line(describe(stub, 1, 0, timeout=2), "describe_divide(stub, 1, 0)")
            expect("INVALID_ARGUMENT" in answer,
                   f"describe_divide(stub, 1, 0) returned {answer!r}; "
                   "it should name the status code INVALID_ARGUMENT")
            expect(servicer.token in answer,
                   f"describe_divide(stub, 1, 0) returned {answer!r}; it should carry the "
                   "server's message, error.details(), after the code's name")
            for timeout in (0.5, 2.0):
                start = time.perf_counter()
                answer = within(5, lambda: describe(stub, 1, 13, timeout=timeout),
                                "pass timeout= to the stub call")
                took = time.perf_counter() - start
                seen = servicer.deadlines[-1] if servicer.deadlines else None
                expect(seen is not None and seen < 3600,
                       "the call reached the server without a deadline; pass timeout= to the "
                       "stub call")
                expect(timeout - 0.5 <= seen <= timeout + 0.05 and took <= timeout + 1.5,
                       f"describe_divide(stub, 1, 13, timeout={timeout}) reached the server with "
                       f"{seen:.1f} s left and gave up after {took:.1f} s, expected about "
                       f"{timeout} s: pass the `timeout` argument, not a fixed number")
                _expect_one_line(answer, f"describe_divide against a stuck server ({timeout} s)")
                expect("DEADLINE_EXCEEDED" in answer,
                       f"describe_divide against a stuck server returned {answer!r}; "
                       "it should name DEADLINE_EXCEEDED")
    finally:
        servicer.release.set()
    return ("a result, INVALID_ARGUMENT with the server's message, and DEADLINE_EXCEEDED after "
            "0.5 s and 2 s, as asked, each reported in one line")


class _TaggedCalculator(Calculator):
    """The reference calculator; Add also sends a server-made x-call-id the client cannot guess."""

    def __init__(self) -> None:
        self.received: list[str | None] = []
        self.call_ids: list[str] = []

    def Add(self, request, context):
        sent = dict(context.invocation_metadata()).get("x-request-id")
        self.received.append(sent)
        call_id = f"call-{secrets.token_hex(3)}"
        self.call_ids.append(call_id)
        context.set_trailing_metadata([("x-request-id", sent or ""), ("x-call-id", call_id)])
        return pb2.AddReply(result=request.a + request.b)


@exercise(
    "3.5",
    "Send and read metadata",
    notebook=LESSON,
    hint="A plain stub call returns only the reply; the demo above the exercise shows the call "
    "method that also gives you the call object, with its metadata.",
    second_hint="reply, call = stub.Add.with_call(request, metadata=[('x-request-id', "
    "request_id)], timeout=5); return reply.result, dict(call.trailing_metadata()).",
)
def request_id(add_with_request_id: Callable[..., tuple[int, dict]]) -> str:
    servicer = _TaggedCalculator()
    with stub_for("calculator", "Calculator", servicer) as stub:
        for a, b, rid in [(2, 3, "req-1"), (40, 2, "req-42")]:
            what = f"add_with_request_id(stub, {a}, {b}, {rid!r})"
            got = add_with_request_id(stub, a, b, rid)
            expect(isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], dict),
                   f"{what} returned {got!r}, expected (result, trailing metadata as a dict)")
            expect(servicer.received and servicer.received[-1] == rid,
                   f"the server received x-request-id {servicer.received[-1] if servicer.received else None!r}"
                   f" for {what}; send it with metadata=[('x-request-id', request_id)]")
            result, trailing = got
            expect_equal(result, a + b, f"{what}, the result,")
            expect(trailing.get("x-call-id") == servicer.call_ids[-1],
                   f"{what} returned the metadata {trailing!r}, but the server's trailing "
                   f"metadata was {{'x-request-id': {rid!r}, 'x-call-id': "
                   f"{servicer.call_ids[-1]!r}}}: read call.trailing_metadata(), do not build "
                   "the dict yourself")
            expect_equal(trailing.get("x-request-id"), rid, f"{what}, the echoed x-request-id,")
    return ("2 calls sent x-request-id, and returned the trailing metadata the server really "
            "sent, with its own call id")
