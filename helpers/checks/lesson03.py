"""Checks for lesson 03, calculator."""

from __future__ import annotations

import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import grpc
from hypothesis import strategies as st

from helpers.checks.core import (
    Mismatch,
    describe_rpc_error,
    exercise,
    expect,
    expect_equal,
    expect_status,
    compare_with_reference,
    concurrently,
    down_target,
    expect_gives_up,
    stub_for,
    stuck_server,
    within,
)
from helpers.reference import INT32_MAX, INT32_MIN, Calculator, calculator_pb2 as pb2
from helpers.reference import calculator_pb2_grpc as pb2_grpc
from helpers.reference.calculator import in_int32

LESSON = "03_calculator"
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
SLOW = 0.3  # seconds: how long the checks' busy servers take to answer (3.5, 3.6)


def _result(rpc: Callable, request: Any) -> Any:
    return rpc(request, timeout=5).result


_EDGES = [INT32_MIN, INT32_MIN + 1, -65536, -46341, -32768, -2, -1, 0, 1, 2, 32768, 46341,
          65536, INT32_MAX - 1, INT32_MAX]
INT32 = st.one_of(st.integers(INT32_MIN, INT32_MAX), st.sampled_from(_EDGES))
SMALL = st.integers(-(2**15), 2**15)  # operands whose sum, difference and product fit in int32


def _rpc(stub: Any, method: str) -> Callable[[tuple[int, int]], Any]:
    """`(a, b) -> result` through `stub.<method>`; a failed call raises its RpcError."""
    request_class = getattr(pb2, f"{method}Request")
    return lambda ab: getattr(stub, method)(request_class(a=ab[0], b=ab[1]), timeout=5).result


@contextmanager
def _yours_and_reference(servicer: Any) -> Iterator[tuple[Any, Any]]:
    """Stubs for the learner's servicer and for the course's reference calculator."""
    with stub_for("calculator", "Calculator", servicer) as yours:
        with stub_for("calculator", "Calculator", Calculator, name="check-reference") as reference:
            yield yours, reference


def _compare(yours: Any, reference: Any, method: str, pairs: Any, examples: list) -> int:
    """Compare `method` on both servers for `examples` then pairs drawn from `pairs`."""
    return compare_with_reference(_rpc(yours, method), _rpc(reference, method), pairs,
                                  lambda ab: f"{method}({ab[0]}, {ab[1]})", examples=examples)


@exercise(
    "3.1",
    "Add, Subtract and Multiply",
    notebook=LESSON,
    hint="Each method gets the decoded request and returns a reply message: which reply class "
    "goes with each method, and which fields does the request have?",
    second_hint="The generated calculator_pb2 module has one reply class per method; its field "
    "is named in calculator.proto. Mind the order of a and b where it matters.",
)
def arithmetic(servicer: Any) -> str:
    compared = 0
    with _yours_and_reference(servicer) as (yours, reference):
        for method in ("Add", "Subtract", "Multiply"):
            compared += _compare(yours, reference, method, st.tuples(SMALL, SMALL),
                                 [(2, 3), (-7, 4), (0, 0), (3, -9)])
    return f"Add, Subtract and Multiply agree with the reference on {compared} generated calls"


@exercise(
    "3.2",
    "Divide without crashing",
    notebook=LESSON,
    hint="Decide before dividing: which status code says \"your request is wrong\", and which "
    "context method ends the call with it?",
    second_hint="Only one divisor is impossible. Negative divisors are fine; and remember that "
    "the context method that ends a call raises, so nothing after it runs.",
)
def safe_divide(servicer: Any) -> str:
    with stub_for("calculator", "Calculator", servicer) as stub:
        expect_status(stub.Divide, pb2.DivideRequest(a=5, b=0), INVALID_ARGUMENT, "Divide(5, 0)")
    with _yours_and_reference(servicer) as (yours, reference):
        pairs = st.tuples(INT32, st.one_of(st.just(0), INT32))
        compared = _compare(yours, reference, "Divide", pairs,
                            [(7, 2), (-9, 3), (7, -2), (1, 3), (0, 5), (INT32_MIN, -1), (5, 0)])
    return (f"Divide agrees with the reference on {compared} calls (negative divisors included) "
            "and answers INVALID_ARGUMENT with a message for a zero divisor")


def _expect_overflow_refused(rpc: Callable, request: Any, what: str, operation: str) -> None:
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
        expect(operation.lower() in error.details().lower(),
               f"{what} gave INVALID_ARGUMENT with the message {error.details()!r}, which does not "
               f"say which operation overflowed ({operation})")
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
    "with the int32 limits. An int32 has two limits.",
    second_hint="Which results are still int32 values: is INT32_MIN itself one? And what does "
    "Add(INT32_MIN, -1) give, or Subtract(0, INT32_MIN)?",
)
def int32_range(servicer: Any) -> str:
    with stub_for("calculator", "Calculator", servicer) as stub:
        for rpc, request, what, operation in [
            (stub.Add, pb2.AddRequest(a=INT32_MAX, b=1), "Add(INT32_MAX, 1)", "Add"),
            (stub.Add, pb2.AddRequest(a=INT32_MIN, b=-1), "Add(INT32_MIN, -1)", "Add"),
            (stub.Subtract, pb2.SubtractRequest(a=INT32_MIN, b=1), "Subtract(INT32_MIN, 1)",
             "Subtract"),
            (stub.Subtract, pb2.SubtractRequest(a=0, b=INT32_MIN), "Subtract(0, INT32_MIN)",
             "Subtract"),
            (stub.Multiply, pb2.MultiplyRequest(a=65536, b=65536), "Multiply(65536, 65536)",
             "Multiply"),
            (stub.Multiply, pb2.MultiplyRequest(a=-65536, b=65536), "Multiply(-65536, 65536)",
             "Multiply"),
        ]:
            _expect_overflow_refused(rpc, request, what, operation)
        _expect_fits(stub.Add, pb2.AddRequest(a=INT32_MAX - 1, b=1), INT32_MAX,
                     "Add(INT32_MAX - 1, 1), which still fits,")
        _expect_fits(stub.Subtract, pb2.SubtractRequest(a=-1, b=INT32_MAX), INT32_MIN,
                     "Subtract(-1, INT32_MAX), which is exactly INT32_MIN,")
        _expect_fits(stub.Multiply, pb2.MultiplyRequest(a=-65536, b=32768), INT32_MIN,
                     "Multiply(-65536, 32768), which is exactly INT32_MIN,")
        expect_status(stub.Divide, pb2.DivideRequest(a=1, b=0), INVALID_ARGUMENT, "Divide(1, 0)")
    compared = 0
    with _yours_and_reference(servicer) as (yours, reference):
        for method in ("Add", "Subtract", "Multiply"):
            compared += _compare(yours, reference, method, st.tuples(INT32, INT32), [])
    return (f"overflows both ways answer INVALID_ARGUMENT naming the operation, the edges of "
            f"int32 still work, and {compared} generated calls agree with the reference")


class _WatchedDivide(Calculator):
    """The reference calculator, except that Divide records what reached the server.

    A zero divisor gets a message with a token only the server knows; b == 11 is refused
    with PERMISSION_DENIED, b == 17 crashes (UNKNOWN); b == 13 is stuck until the client
    gives up (or `release` is set), after recording the deadline it saw.
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
        if request.b == 11:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"11 is not allowed ({self.token})")
        if request.b == 17:
            raise RuntimeError(f"a bug in the server ({self.token})")
        if request.b == 13:
            self.deadlines.append(context.time_remaining())
            while context.is_active() and not self.release.wait(0.02):
                pass
        return super().Divide(request, context)


def _reference_describe(stub: Any, a: int, b: int, timeout: float = 1.0) -> str:
    """The line the statement asks for, computed the reference way."""
    try:
        reply = stub.Divide(pb2.DivideRequest(a=a, b=b), timeout=timeout)
    except grpc.RpcError as error:
        return f"error {error.code().name}: {error.details()}"
    return f"{a} / {b} = {reply.result}"


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
    hint="What does a failed stub call raise, and which two of its methods give the parts of "
    "the line? Where does a call's deadline go?",
    second_hint="Every failed call must give a line, whatever its code: not only the codes you "
    "expect. A StatusCode's name is one of its attributes; str() of it is not the name.",
)
def describe_divide(describe: Callable[..., str]) -> str:
    servicer = _WatchedDivide()
    try:
        with stub_for("calculator", "Calculator", servicer) as stub:
            answer = _expect_one_line(describe(stub, 7, 2, timeout=2), "describe_divide(stub, 7, 2)")
            expect((7, 2) in servicer.divisions,
                   f"describe_divide(stub, 7, 2) returned {answer!r} without calling Divide on "
                   "the server: use the stub")

            def yours(ab: tuple[int, int]) -> str:
                try:
                    answer = describe(stub, ab[0], ab[1], timeout=2)
                except grpc.RpcError as error:
                    raise Mismatch(f"describe_divide(stub, {ab[0]}, {ab[1]}) raised the call's "
                                   f"error ({describe_rpc_error(error)}) instead of describing "
                                   "it: every failed call gets a line, whatever its code") from None
                return _expect_one_line(answer, f"describe_divide(stub, {ab[0]}, {ab[1]})")

            compared = compare_with_reference(
                yours, lambda ab: _reference_describe(stub, ab[0], ab[1], timeout=2),
                st.tuples(st.integers(-1000, 1000), st.sampled_from([0, 11, 17, 1, -1, 2, 4, -8])),
                lambda ab: f"describe_divide(stub, {ab[0]}, {ab[1]})",
                examples=[(7, 2), (1, 0), (5, 11), (5, 17), (-9, 4)], max_examples=20)
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
                expect(answer.startswith("error DEADLINE_EXCEEDED: "),
                       f"describe_divide against a stuck server returned {answer!r}; "
                       "it should read 'error DEADLINE_EXCEEDED: ...'")
    finally:
        servicer.release.set()
    return (f"{compared} lines match the statement's format exactly (results, INVALID_ARGUMENT, "
            "PERMISSION_DENIED and UNKNOWN with the server's message), and DEADLINE_EXCEEDED "
            "came after 0.5 s and 2 s, the deadlines the server saw")


class _TaggedCalculator(Calculator):
    """The reference calculator; Add also sends a server-made x-call-id the client cannot guess.

    The trailing metadata goes out with failed calls too (an overflow). The calls tagged
    with an id in `slow_ids` are answered after SLOW seconds, as a busy server would.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[str | None] = []
        self.call_ids: dict[str | None, str] = {}
        self.slow_ids = {"req-42"}

    def Add(self, request, context):
        sent = dict(context.invocation_metadata()).get("x-request-id")
        call_id = f"call-{secrets.token_hex(3)}"
        with self.lock:
            self.received.append(sent)
            self.call_ids[sent] = call_id
        if sent in self.slow_ids:
            time.sleep(SLOW)
        context.set_trailing_metadata([("x-request-id", sent or ""), ("x-call-id", call_id)])
        return pb2.AddReply(result=in_int32(request.a + request.b, context, "Add"))


def _expect_tagged(servicer: _TaggedCalculator, got: Any, what: str, rid: str,
                   result: int | None) -> None:
    expect(isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], dict),
           f"{what} returned {got!r}, expected (result, trailing metadata as a dict)")
    expect(rid in servicer.received,
           f"the server never received x-request-id {rid!r} for {what}; send it as metadata")
    expect(got[0] is not None or result is None,
           f"{what} returned no result although the server answered it"
           + (f" (after {SLOW} s, well within the 2 s the statement allows: does your call "
              "give the server that long?)" if rid in servicer.slow_ids else ""))
    expect_equal(got[0], result, f"{what}, the result,")
    expected = {"x-request-id": rid, "x-call-id": servicer.call_ids[rid]}
    expect(got[1].get("x-call-id") == expected["x-call-id"],
           f"{what} returned the metadata {got[1]!r}, but the server's trailing metadata was "
           f"{expected!r}: return the metadata of this call, read from the call itself "
           "(not built by hand, not kept from another call)")
    expect_equal(got[1].get("x-request-id"), rid, f"{what}, the echoed x-request-id,")


@exercise(
    "3.5",
    "Send and read metadata",
    notebook=LESSON,
    hint="A plain stub call gives you only the reply. Which way of calling also gives you the "
    "call, and what does a failed call raise that is a call too?",
    second_hint="Metadata goes in with the request as a list of (key, value) pairs. For the "
    "failure, look at what the demo above reads from an RpcError. Build a new dict per call.",
)
def request_id(add_with_request_id: Callable[..., tuple[int | None, dict]]) -> str:
    servicer = _TaggedCalculator()
    with stub_for("calculator", "Calculator", servicer) as stub:
        for a, b, rid in [(2, 3, "req-1"), (40, 2, "req-42")]:
            what = f"add_with_request_id(stub, {a}, {b}, {rid!r})"
            _expect_tagged(servicer, add_with_request_id(stub, a, b, rid), what, rid, a + b)
        first = add_with_request_id(stub, 1, 1, "req-first")
        kept = dict(first[1]) if isinstance(first, tuple) and isinstance(first[1], dict) else None
        add_with_request_id(stub, 2, 2, "req-second")
        expect(kept is None or first[1] == kept,
               "the dict returned for one call changed when you made the next call: return a new "
               "dict for every call, not one kept between calls")
        what = f"add_with_request_id(stub, {INT32_MAX}, 1, 'req-overflow')"
        try:
            got = add_with_request_id(stub, INT32_MAX, 1, "req-overflow")
        except grpc.RpcError as error:
            raise Mismatch(f"{what} raised {describe_rpc_error(error)}; a failed call should "
                           "return (None, its trailing metadata)") from None
        _expect_tagged(servicer, got, what, "req-overflow", None)
        with stuck_server() as target, grpc.insecure_channel(target) as channel:
            stuck = pb2_grpc.CalculatorStub(channel)
            start = time.monotonic()
            expect_gives_up(lambda: add_with_request_id(stuck, 1, 2, "req-stuck"), 4,
                            "add_with_request_id")
            took = time.monotonic() - start
            expect(took <= 2.5, f"against a server that never answers, add_with_request_id "
                   f"waited {took:.1f} s; it may wait 2 s at most")
        outcomes = concurrently(lambda i: add_with_request_id(stub, i, 1, f"req-c{i}"), 8,
                                what="add_with_request_id")
        for i, outcome in enumerate(outcomes):
            if outcome.error is not None:
                raise outcome.error
            _expect_tagged(servicer, outcome.value, f"add_with_request_id(stub, {i}, 1, "
                           f"'req-c{i}') among 8 concurrent calls", f"req-c{i}", i + 1)
    return ("x-request-id reached the server on every call, and each of 12 calls (8 at once, "
            f"one failing, one answered after {SLOW} s) returned its own trailing metadata with "
            "the server's call id; a server that never answers was given up on within 2 s")


# ---- 3.6: a deadline and metadata that travel, proven from the wire --------------------------

MAX_DEADLINE = 2.0  # seconds: the longest deadline 3.6 allows
_SECONDS_PER_UNIT = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def _sent_deadline(headers: dict[str, str]) -> float | None:
    """The deadline a call's HEADERS carried (grpc-timeout), in seconds; None without one."""
    value = headers.get("grpc-timeout")
    return None if value is None else int(value[:-1]) * _SECONDS_PER_UNIT[value[-1]]


class _BusyCalculator(Calculator):
    """The reference calculator, answering Add after SLOW seconds, as a busy server would."""

    def Add(self, request, context):
        time.sleep(SLOW)
        return super().Add(request, context)


def _one_call_seen(tap: Any, before: int, what: str) -> Any:
    """The one call `what` made through `tap` (the calls before it were `before`)."""
    tap.wait_idle(timeout=2)
    calls = [call for call in tap.calls()[before:] if call.path.endswith("/Add")]
    expect(bool(calls), f"{what}: the tap saw no Add call. Call the server at the target you "
                        "are given (the check puts its tap there); do not compute the sum "
                        "yourself or use a channel made for another server")
    expect(len(calls) == 1, f"{what}: the tap saw {len(calls)} Add calls; make one")
    return calls[0]


@exercise(
    "3.6",
    "A deadline and a request id that travel",
    notebook=LESSON,
    hint="Everything the server learns besides the request travels in the request's HEADERS. "
    "Which arguments of a stub call end up there? Run your function through a tap and look.",
    second_hint="`tap.show(stream=1, frames=True, types=['HEADERS'])` lists the headers your "
    "call sent: look for grpc-timeout and for your own key. If one is missing, the stub call "
    "never received it.",
)
def travelling(add_traced: Callable[[str, int, int, str], Any]) -> str:
    from helpers.servers import serve
    from helpers.wiretap import wiretap

    seen = []
    with serve(pb2_grpc.add_CalculatorServicer_to_server, _BusyCalculator(),
               name="check-3.6") as server, wiretap(server.target) as tap:
        for a, b in [(2, 3), (-7, 40), (INT32_MAX - 1, 1)]:
            request_id = f"req-{secrets.token_hex(4)}"
            what = f"add_traced(target, {a}, {b}, {request_id!r})"
            before = len(tap.calls())
            try:
                got = add_traced(tap.target, a, b, request_id)
            except grpc.RpcError as error:
                late = error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                raise Mismatch(f"{what} raised {describe_rpc_error(error)}"
                               + (f"; the check's calculator answers after {SLOW} s, well "
                                  f"within the {MAX_DEADLINE:g} s allowed: does your deadline "
                                  "leave it that long?" if late else "")) from None
            call = _one_call_seen(tap, before, what)
            headers = call.request_headers
            expect("x-request-id" in headers,
                   f"{what}: the call's HEADERS have no x-request-id (they have "
                   f"{sorted(k for k in headers if not k.startswith(':'))}); send it as "
                   "metadata, under that exact key")
            expect(headers["x-request-id"] == request_id,
                   f"{what}: the server received x-request-id {headers['x-request-id']!r}, "
                   f"expected {request_id!r}: send the id you are given")
            deadline = _sent_deadline(headers)
            expect(deadline is not None,
                   f"{what}: the call's HEADERS have no grpc-timeout: the call had no deadline, "
                   "so the server never learned one. Give the call a deadline (timeout=)")
            expect(0 < deadline <= MAX_DEADLINE + 0.02,
                   f"{what}: grpc-timeout {headers['grpc-timeout']} is a deadline of "
                   f"{deadline:g} s; at most {MAX_DEADLINE:g} s was asked")
            expect_equal(got, a + b, f"{what}, the result,")
            seen.append(headers["grpc-timeout"])
    with stuck_server() as stuck, wiretap(stuck) as stuck_tap:
        start = time.monotonic()
        raised = expect_gives_up(lambda: add_traced(stuck_tap.target, 1, 2, "req-stuck"),
                                 MAX_DEADLINE + 1.5, "add_traced")
        waited = time.monotonic() - start
    expect(isinstance(raised, grpc.RpcError),
           "against a server that never answers, add_traced "
           + ("returned" if raised is None else f"raised {type(raised).__name__}")
           + ": let the call's grpc.RpcError (DEADLINE_EXCEEDED) reach the caller")
    expect(waited <= MAX_DEADLINE + 0.5,
           f"add_traced waited {waited:.1f} s on a server that never answers; at most "
           f"{MAX_DEADLINE:g} s was asked")
    return (f"the tap saw each of {len(seen)} calls (answered after {SLOW} s) carry its own "
            "x-request-id and a grpc-timeout "
            f"of at most {MAX_DEADLINE:g} s; a server that never answers was given up after "
            f"{waited:.1f} s with {raised.code().name}")


# ---- 3.7: a calculator with a spare ----------------------------------------------------------

OPERATIONS = ("Add", "Subtract", "Multiply", "Divide")
BUDGET = 2.0  # seconds: the timeout the check passes, unless a scenario says otherwise
SLACK = 0.5  # seconds a check allows beyond a deadline: thread switches on a busy machine
SLOW_PRIMARY, SLOW_BUDGET = 1.6, 4.0  # a primary answering in 40% of the budget is waited for
SLOW_SPARE, STUCK_BUDGET = 1.0, 3.0  # after a stuck primary, a spare answering in a third


@dataclass
class _Seen:
    """One call that reached one of the check's calculators."""

    operation: str
    a: int
    b: int
    request_id: str | None
    deadline: float | None  # the time.monotonic() at which the call's deadline passes


class _Recorded(Calculator):
    """The reference calculator; it records every call that reaches it.

    It answers after `delay` seconds; with `crash`, every call fails with UNKNOWN (a bug).
    """

    def __init__(self, delay: float = 0.0, crash: bool = False) -> None:
        self.delay, self.crash = delay, crash
        self.lock = threading.Lock()
        self.calls: list[_Seen] = []

    def _answer(self, operation: str, request: Any, context: Any) -> Any:
        left = context.time_remaining()
        with self.lock:
            self.calls.append(_Seen(
                operation, request.a, request.b,
                dict(context.invocation_metadata()).get("x-request-id"),
                None if left is None or left > 3600 else time.monotonic() + left))
        if self.crash:
            raise RuntimeError("a bug in this calculator")
        time.sleep(self.delay)
        return getattr(super(), operation)(request, context)

    def Add(self, request, context):
        return self._answer("Add", request, context)

    def Subtract(self, request, context):
        return self._answer("Subtract", request, context)

    def Multiply(self, request, context):
        return self._answer("Multiply", request, context)

    def Divide(self, request, context):
        return self._answer("Divide", request, context)


def _refused(operation: str, a: int, b: int) -> bool:
    """True when no calculator could answer: a zero divisor, or a result outside int32."""
    if operation == "Divide":
        return b == 0
    result = {"Add": a + b, "Subtract": a - b, "Multiply": a * b}[operation]
    return not INT32_MIN <= result <= INT32_MAX


def _expect_carried(seen: _Seen, who: str, what: str, request_id: str, ends_by: float) -> None:
    """The call `seen` by `who` carried `request_id` and a deadline no later than `ends_by`."""
    expect(seen.request_id == request_id,
           f"{what}: the {who} received x-request-id {seen.request_id!r}, expected "
           f"{request_id!r}: every call, to either calculator, carries the id it was given")
    expect(seen.deadline is not None,
           f"{what}: the call reached the {who} without a deadline: give every call one (timeout=)")
    expect(seen.deadline <= ends_by + 0.3,  # the server dates it from when the call arrived
           f"{what}: the {who}'s call had a deadline {seen.deadline - ends_by:+.1f} s past the end "
           "of the budget (timeout, counted from when calculate started): the calls share one "
           "budget, so a later call gets only what is left")


def _new_calls(server: _Recorded, before: int) -> list[_Seen]:
    with server.lock:
        return server.calls[before:]


@exercise(
    "3.7",
    "Challenge: a calculator with a spare",
    notebook=LESSON,
    hint="Three decisions. Which status code says the request itself is wrong, so that the spare "
    "would answer the same? How long may the primary's call take, so that the spare still has "
    "time? And what must each of the two calls carry to the server?",
    second_hint="A deadline belongs to one call: note when calculate starts, give the primary "
    "its share, and give the spare what is left at the moment it is asked. Catch grpc.RpcError "
    "around the primary's call only, and look at its code() before you decide.",
)
def calculator_with_a_spare(calculate: Callable[..., Any]) -> str:
    from helpers.servers import serve

    add = pb2_grpc.add_CalculatorServicer_to_server
    primary, spare = _Recorded(), _Recorded()
    compared = 0
    with serve(add, primary, name="check-3.7-primary") as primary_server, \
            serve(add, spare, name="check-3.7-spare") as spare_server, \
            stub_for("calculator", "Calculator", Calculator, name="check-reference") as reference:

        def yours(primary_target: str, spare_up: bool) -> Callable[[tuple], Any]:
            """calculate(...) on one input, judged on what reached the servers."""

            def attempt(case: tuple[str, int, int]) -> Any:
                operation, a, b = case
                request_id = f"req-{secrets.token_hex(4)}"
                what = (f"calculate(primary, spare, {operation!r}, {a}, {b}, {request_id!r}, "
                        f"{BUDGET:g})" + ("" if spare_up else ", with the primary down,"))
                primary_before, spare_before = len(primary.calls), len(spare.calls)
                start, raised, result = time.monotonic(), None, None
                try:
                    result = calculate(primary_target, spare_server.target, operation, a, b,
                                       request_id, BUDGET)
                except grpc.RpcError as error:  # judged below; other exceptions go on at once
                    raised = error
                # what reached the servers, judged before the outcome is compared
                asked_primary = _new_calls(primary, primary_before)
                asked_spare = _new_calls(spare, spare_before)
                if spare_up:  # the primary works: the spare is never needed
                    expect(asked_primary or asked_spare,
                           f"{what} called neither calculator: call the server at the "
                           "target you are given, do not compute the result yourself")
                    expect(asked_primary or not asked_spare,
                           f"{what} asked the spare, never the primary: the primary answers "
                           "when it can; the spare is only for when it fails")
                    expect(not asked_spare or not _refused(operation, a, b),
                           f"{what} reached the spare after the primary refused it with "
                           "INVALID_ARGUMENT: a request no calculator could answer never "
                           "goes to the spare, which would only say the same")
                    expect(not asked_spare,
                           f"{what} asked the spare although the primary works and answers "
                           "at once: the spare is only for when the primary fails")
                    _expect_carried(asked_primary[0], "primary", what, request_id,
                                    start + BUDGET)
                else:  # the primary is down: every request goes to the spare
                    expect(bool(asked_spare),
                           f"{what} the spare was never asked. A primary that cannot be "
                           "reached is the primary's problem: ask the spare")
                    _expect_carried(asked_spare[0], "spare", what, request_id,
                                    start + BUDGET)
                    code = raised.code() if raised is not None else INVALID_ARGUMENT
                    expect(not _refused(operation, a, b) or code == INVALID_ARGUMENT,
                           f"{what} the spare refused it with INVALID_ARGUMENT, but calculate "
                           f"raised {code.name}: when the spare fails too, the caller gets "
                           "the spare's error")
                if raised is not None:
                    raise raised
                return result

            return attempt

        def reference_answer(case: tuple[str, int, int]) -> Any:
            operation, a, b = case
            return _rpc(reference, operation)((a, b))

        cases = st.tuples(st.sampled_from(OPERATIONS), INT32, st.one_of(st.just(0), INT32))
        edges = [(operation, a, b) for operation in OPERATIONS for a, b in [
            (INT32_MAX, 1), (INT32_MIN, -1), (-1, INT32_MAX), (0, INT32_MIN), (-65536, 32768),
            (65536, 65536), (7, 2), (7, 0)]]
        def describe(case: tuple[str, int, int]) -> str:
            return f"calculate(primary, spare, {case[0]!r}, {case[1]}, {case[2]}, ...)"

        compared += compare_with_reference(yours(primary_server.target, True), reference_answer,
                                           cases, describe, examples=edges, max_examples=60)
        compared += compare_with_reference(yours(down_target(), False), reference_answer, cases,
                                           lambda case: f"{describe(case)} with the primary down",
                                           examples=edges[::3], max_examples=20)

        def scenario(primary_target: str, operation: str, a: int, b: int, budget: float,
                     spare_at: tuple[_Recorded, str] | None = None,
                     ) -> tuple[str, Any, float, list[_Seen]]:
            """Run calculate once; (what, what it returned or raised, seconds, spare's calls).

            The spare is the check's usual one, or `spare_at` (its servicer and target).
            """
            the_spare, spare_target = spare_at or (spare, spare_server.target)
            request_id = f"req-{secrets.token_hex(4)}"
            what = (f"calculate(primary, spare, {operation!r}, {a}, {b}, {request_id!r}, "
                    f"{budget:g})")
            before, start = len(the_spare.calls), time.monotonic()
            try:
                outcome = within(budget + 5, lambda: calculate(
                    primary_target, spare_target, operation, a, b, request_id, budget),
                    "give every call a deadline (timeout=)")
            except grpc.RpcError as error:
                outcome = error
            took = time.monotonic() - start
            asked_spare = _new_calls(the_spare, before)
            for seen in asked_spare:
                _expect_carried(seen, "spare", what, request_id, start + budget)
            return what, outcome, took, asked_spare

        def shown(outcome: Any) -> str:
            if isinstance(outcome, grpc.RpcError):
                return f"raised {describe_rpc_error(outcome)}"
            return f"returned {outcome!r}"

        # A slow primary, well inside its share: never given up on.
        with serve(add, _Recorded(delay=SLOW_PRIMARY), name="check-3.7-slow") as slow_server:
            what, outcome, took, asked_spare = scenario(slow_server.target, "Multiply", 6, 7,
                                                        SLOW_BUDGET)
        expect(not asked_spare and outcome == 42,
               f"{what}, with a primary that answers after {SLOW_PRIMARY:g} s, within half "
               f"of the {SLOW_BUDGET:g} s budget: {shown(outcome)}"
               + (" and asked the spare" if asked_spare else "")
               + ". A primary that answers within half of timeout is never given up on")

        # A primary with a bug: its UNKNOWN is its own problem.
        with serve(add, _Recorded(crash=True), name="check-3.7-crash") as crashing:
            what, outcome, took, asked_spare = scenario(crashing.target, "Subtract", 10, 4, BUDGET)
        expect(outcome == 6 and bool(asked_spare),
               f"{what}, with a primary that crashes (UNKNOWN): {shown(outcome)}"
               + ("" if asked_spare else " without asking the spare")
               + ". Only a wrong request (INVALID_ARGUMENT) stays with the primary; any other "
               "failure is the primary's problem, and the spare answers")

        # A primary that never answers: a spare answering within the other half still answers.
        busy_spare = _Recorded(delay=SLOW_SPARE)
        with stuck_server() as stuck, serve(add, busy_spare, name="check-3.7-busy") as busy:
            what, outcome, took, asked_spare = scenario(stuck, "Add", 20, 22, STUCK_BUDGET,
                                                        (busy_spare, busy.target))
        what += f", with a primary that never answers and a spare that answers in {SLOW_SPARE:g} s"
        if outcome != 42:
            expect(took < STUCK_BUDGET * 0.9,
                   f"{what}: {shown(outcome)} after {took:.1f} s. The primary used the whole "
                   "budget, and the spare had no time left: a spare that answers within the "
                   "other half of timeout still gets its answer through")
            expect(bool(asked_spare),
                   f"{what}: {shown(outcome)} without asking the spare. A primary that does not "
                   "answer in time is the primary's problem: ask the spare")
            raise Mismatch(f"{what}: the spare was asked but calculate {shown(outcome)}. A spare "
                           "that answers within the other half of timeout still gets its answer "
                           "through: did its call get the time that was left?")
        expect(bool(asked_spare), f"{what}: returned 42 without asking the spare: call it")
        expect(took <= STUCK_BUDGET + SLACK,
               f"{what}: took {took:.1f} s; the budget was {STUCK_BUDGET:g} s")

        # Neither answers: the spare's error, within the budget.
        with stuck_server() as stuck, stuck_server() as stuck_spare:
            request_id = f"req-{secrets.token_hex(4)}"
            start = time.monotonic()
            raised = expect_gives_up(
                lambda: calculate(stuck, stuck_spare, "Add", 1, 2, request_id, 1.0),
                1.0 + 2 + SLACK, "calculate")
            took = time.monotonic() - start
        what = f"calculate(primary, spare, 'Add', 1, 2, {request_id!r}, 1), with neither answering,"
        expect(raised is not None,
               f"{what} returned: when the spare fails too, raise its grpc.RpcError")
        expect(isinstance(raised, grpc.RpcError),
               f"{what} raised {type(raised).__name__}: let the spare's grpc.RpcError "
               "(DEADLINE_EXCEEDED) reach the caller")
        expect(took <= 1.0 + SLACK,
               f"{what} took {took:.1f} s; the budget was 1 s, for both calls together: a later "
               "call gets only what is left of it")
        expect(raised.code() == grpc.StatusCode.DEADLINE_EXCEEDED,
               f"{what} raised {describe_rpc_error(raised)}, expected DEADLINE_EXCEEDED")

        # The primary stuck, the spare down: the caller learns the spare's error.
        spare_down = down_target()
        with stuck_server() as stuck:
            request_id = f"req-{secrets.token_hex(4)}"
            try:
                outcome = within(1.0 + 5, lambda: calculate(stuck, spare_down, "Add", 1, 2,
                                                            request_id, 1.0), "")
            except grpc.RpcError as error:
                outcome = error
        expect(isinstance(outcome, grpc.RpcError)
               and outcome.code() == grpc.StatusCode.UNAVAILABLE,
               f"calculate(primary, spare, 'Add', 1, 2, {request_id!r}, 1), with the primary "
               f"stuck and the spare down: {shown(outcome)}. When the spare fails too, the caller "
               "gets the spare's error (UNAVAILABLE here), the last word on the request")

        # Several at once: each call carries its own id and gets its own result.
        outcomes = concurrently(lambda i: calculate(
            primary_server.target, spare_server.target, "Add", i, 1, f"req-c{i}", BUDGET), 8,
            what="calculate")
        for i, outcome in enumerate(outcomes):
            what = f"calculate(primary, spare, 'Add', {i}, 1, 'req-c{i}', 2), among 8 at once,"
            expect(outcome.error is None, f"{what} raised {outcome.error!r}")
            expect_equal(outcome.value, i + 1, what)
            expect(any(seen.request_id == f"req-c{i}" and seen.a == i
                       for seen in _new_calls(primary, 0)),
                   f"{what}: the primary never received this call with its own x-request-id")
    return (f"{compared} calls agree with the reference (all four operations, both ends of int32, "
            "with the primary up and down), a refused request never reached the spare; a slow "
            "primary was waited for; a crashing or stuck primary fell over to the spare within "
            "the budget, with the same request id and what was left of the deadline; 8 calls at "
            "once each got their own answer")
