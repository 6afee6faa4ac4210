"""Checks for lesson 00, welcome."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from google.protobuf.message import Message

import grpc

from helpers.checks.core import (
    Mismatch,
    compare_with_reference,
    describe_rpc_error,
    down_target,
    exercise,
    expect,
    expect_equal,
    expect_gives_up,
    stuck_server,
    two_servers,
    within,
)
from helpers.reference import Calculator, calculator_pb2, calculator_pb2_grpc
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


class _SlowCalculator(_CountingCalculator):
    """A healthy calculator that takes 0.3 s to multiply: a deadline of a moment misses it."""

    def Multiply(self, request, context):
        time.sleep(0.3)
        return super().Multiply(request, context)


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
    "names, each time. And what did the lesson say a call needs so that it cannot wait forever? "
    "How long may it be, if a healthy server can take half a second?",
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
    slow = _SlowCalculator()
    with serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, slow,
               name="check-0.1-slow") as server:
        try:
            got = within(6, lambda: multiply(server.target, 4, 5), "give every call a deadline")
        except grpc.RpcError as error:
            why = (": a server may take up to half a second, so your deadline gave up on a "
                   "healthy server too soon" if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                   else "")
            raise Mismatch(f"multiply(target, 4, 5) against a server that answers after 0.3 s "
                           f"failed with {describe_rpc_error(error)}{why}") from None
        expect_equal(got, 20, "multiply(target, 4, 5) against a server that answers after 0.3 s")
    _expect_call_error(lambda: multiply(down_target(), 2, 3), 10,
                       "multiply(target, 2, 3) with no server at target",
                       grpc.StatusCode.UNAVAILABLE)
    with stuck_server() as target:
        start = time.monotonic()
        _expect_call_error(lambda: multiply(target, 2, 3), 6,
                           "multiply(target, 2, 3) with a server that never answers",
                           grpc.StatusCode.DEADLINE_EXCEEDED)
        took = time.monotonic() - start
    expect(took <= 3.5, f"a server that never answers kept multiply waiting {took:.1f} s: "
           "3 seconds at most")
    return (f"the server at target received Multiply for all {len(pairs)} pairs and your function "
            "returned its products; with two servers each got its call; a server taking 0.3 s got "
            "its answer; a missing server and one that never answers gave their errors, "
            "within 3 s")


# ---- 0.2: the first server that answers -----------------------------------------------------

SKIPPED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)  # down, or too slow
INT32 = 2**31


def reference_first_product(targets: list[str], a: int, b: int, seconds: float) -> int:
    """Exercise 0.2, finished: each server in turn, one second each, one budget for all."""
    deadline = time.monotonic() + seconds
    failures = []
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            stub = calculator_pb2_grpc.CalculatorStub(channel)
            try:
                return stub.Multiply(calculator_pb2.MultiplyRequest(a=a, b=b),
                                     timeout=min(1, deadline - time.monotonic())).result
            except grpc.RpcError as error:
                if error.code() not in SKIPPED:
                    raise
                failures.append(f"{target}: {error.code().name}")
    raise ConnectionError("no server answered (" + ", ".join(failures) + ")")


class _Fleet:
    """The check's servers by name: healthy ones that count their calls, down targets, stuck ones."""

    def __init__(self, servers: dict[str, Any], counters: dict[str, _CountingCalculator]) -> None:
        self.servers, self.counters = servers, counters

    def targets(self, names: list[str]) -> list[str]:
        return [self.servers[name] for name in names]

    def asked(self) -> list[str]:
        """The counting servers that received a Multiply since the last reset, by name."""
        return [name for name, counter in self.counters.items() if counter.multiplied]

    def reset(self) -> None:
        for counter in self.counters.values():
            with counter.lock:
                counter.multiplied.clear()


def _run_first(first_product: Callable[..., Any], fleet: _Fleet, names: list[str], a: int, b: int,
               seconds: float) -> tuple[str, Any, float]:
    """Call first_product on the servers `names`: ('ok', value) / ('status', code) /
    ('raised', error), and how long it took."""
    fleet.reset()
    start = time.monotonic()
    try:
        value = within(seconds + 5, lambda: first_product(fleet.targets(names), a, b, seconds),
                       "give every call a deadline, and spend at most `seconds` in all")
    except grpc.RpcError as error:
        return "status", error, time.monotonic() - start
    except (Mismatch, NotImplementedError):
        raise
    except Exception as error:
        return "raised", error, time.monotonic() - start
    return "ok", value, time.monotonic() - start


def _shown(names: list[str], a: int, b: int, seconds: float) -> str:
    return f"first_product([{', '.join(names)}], {a}, {b}, {seconds})"


def _expect_no_answer(outcome: tuple[str, Any, float], fleet: _Fleet, names: list[str],
                      what: str, code: str) -> None:
    """No server answered: ConnectionError, naming every server and `code`."""
    kind, got, _took = outcome
    if kind == "status":
        raise Mismatch(f"{what} raised the last call's RpcError ({describe_rpc_error(got)}): when "
                       "no server answers, raise ConnectionError naming each server and what went "
                       "wrong there")
    if kind == "ok":
        raise Mismatch(f"{what} returned {got!r} although no server answered: raise "
                       "ConnectionError instead of a made-up result")
    expect(isinstance(got, ConnectionError), f"{what} raised {type(got).__name__}: {got}; "
           "when no server answers, raise ConnectionError")
    missing = [name for name, target in zip(names, fleet.targets(names))
               if target not in str(got)]
    expect(not missing and code in str(got),
           f"{what} raised ConnectionError({str(got)!r}): its message should name each server "
           f"it asked ({', '.join(fleet.targets(names))}) and what went wrong there ({code})")


@exercise(
    "0.2",
    "Challenge: the first server that answers",
    notebook="00_welcome",
    hint="Sort the ways a call can end: an answer, a server that is not there, a server that "
    "takes too long, a server that answers with an error. Which of them would another server "
    "answer differently? error.code() tells them apart.",
    second_hint="Two limits at once: one second for each server, and `seconds` for everything. "
    "Every call's timeout can respect both, if you know when the whole thing must be over.",
)
def first_server(first_product: Callable[..., Any]) -> str:
    counters = {name: _CountingCalculator() for name in ("A", "B", "C")}
    counters["slow"] = _SlowCalculator()
    servers: dict[str, Any] = {f"down{i}": down_target() for i in (1, 2, 3)}
    with serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, counters["A"],
               name="check-0.2-A") as server_a, \
            serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, counters["B"],
                  name="check-0.2-B") as server_b, \
            serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, counters["C"],
                  name="check-0.2-C") as server_c, \
            serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, counters["slow"],
                  name="check-0.2-slow") as server_slow, \
            stuck_server() as stuck1, stuck_server() as stuck2, stuck_server() as stuck3, \
            stuck_server() as stuck4:
        servers.update(A=server_a.target, B=server_b.target, C=server_c.target,
                       slow=server_slow.target, stuck1=stuck1, stuck2=stuck2, stuck3=stuck3,
                       stuck4=stuck4)
        fleet = _Fleet(servers, counters)
        said = [_scenarios(first_product, fleet), _generated(first_product, fleet)]
    return "; ".join(said)


def _scenarios(first_product: Callable[..., Any], fleet: _Fleet) -> str:
    # a healthy server that takes 0.3 s answers; nobody after it is asked
    names = ["slow", "A"]
    what = _shown(names, 4, 5, 5)
    kind, got, _ = _run_first(first_product, fleet, names, 4, 5, 5)
    if "A" in fleet.asked():
        raise Mismatch(f"{what}: the first server answers after 0.3 s, yet A was asked too: a "
                       "healthy server may take up to half a second, give each one a second; and "
                       "ask no server once one has answered")
    if kind != "ok":
        raise Mismatch(f"{what} ended with {_ended(kind, got)}, though the first server answers "
                       "after 0.3 s: give each server one second")
    expect(got == 20 and "slow" in fleet.asked(), f"{what}: expected 20 from the first server, "
           f"got {got!r}: ask the servers at `targets`, do not compute the product yourself")

    # down, then two that never answer, then one that does: one second each
    names = ["down1", "stuck1", "stuck2", "B"]
    what = _shown(names, 6, 7, 5)
    kind, got, took = _run_first(first_product, fleet, names, 6, 7, 5)
    if kind != "ok":
        raise Mismatch(f"{what} ended with {_ended(kind, got)} after {took:.1f} s; the last server "
                       "answers at once, and there was time to reach it: a server that is down or "
                       "has not answered within a second is skipped, the next one is asked")
    expect(got == 42, f"{what}: expected 42, got {got!r}")
    expect(fleet.asked() == ["B"], f"{what}: asked {fleet.asked()} of the healthy servers")
    expect(1.7 <= took <= 3.0, f"{what} took {took:.1f} s with two servers that never answer: "
           "give each server one second, no more, no less")

    # an error is an answer: the next server would say the same
    names = ["A", "B"]
    what = _shown(names, 2**16, 2**16, 5)
    kind, got, _ = _run_first(first_product, fleet, names, 2**16, 2**16, 5)
    if "B" in fleet.asked():
        raise Mismatch(f"{what}: A answered INVALID_ARGUMENT (the product does not fit in 32 "
                       "bits), yet B was asked too: an error a server answers with is its answer; "
                       "every server would say the same. Only a server that is down or too slow "
                       "is skipped")
    if kind != "status" or got.code() != grpc.StatusCode.INVALID_ARGUMENT:
        raise Mismatch(f"{what} ended with {_ended(kind, got)}: A answered INVALID_ARGUMENT, and "
                       "its grpc.RpcError should reach the caller")

    # nobody there; nobody answering
    names = ["down1", "down2", "down3"]
    _expect_no_answer(_run_first(first_product, fleet, names, 2, 3, 5), fleet, names,
                      _shown(names, 2, 3, 5), "UNAVAILABLE")
    names = ["stuck1", "stuck2"]
    outcome = _run_first(first_product, fleet, names, 2, 3, 5)
    _expect_no_answer(outcome, fleet, names, _shown(names, 2, 3, 5), "DEADLINE_EXCEEDED")

    # one budget for everything
    names = ["stuck1", "stuck2", "stuck3", "stuck4"]
    what = _shown(names, 2, 3, 2.2)
    kind, got, took = _run_first(first_product, fleet, names, 2, 3, 2.2)
    expect(took <= 2.8, f"{what} took {took:.1f} s: the whole call must end within `seconds`, "
           "however many servers never answer")
    expect(took >= 1.9, f"{what} gave up after {took:.1f} s, with time left to ask another "
           "server")
    expect(kind == "raised" and isinstance(got, ConnectionError),
           f"{what} ended with {_ended(kind, got)}; when no server answers, raise ConnectionError")
    return ("a server taking 0.3 s answered and nobody after it was asked; down and stuck servers "
            "skipped after a second each; INVALID_ARGUMENT raised by the first server, the next not "
            "asked; ConnectionError naming every server when none answered; a 2.2 s budget kept "
            "with four stuck servers")


def _ended(kind: str, got: Any) -> str:
    if kind == "status":
        return describe_rpc_error(got)
    return f"{type(got).__name__}: {got}" if kind == "raised" else f"the value {got!r}"


def _generated(first_product: Callable[..., Any], fleet: _Fleet) -> str:
    """Servers that answer or are down, in every order: the same outcome and calls as the reference."""
    from hypothesis import strategies as st

    names = st.lists(st.sampled_from(["A", "B", "C", "down1", "down2", "down3"]), min_size=1,
                     max_size=4, unique=True)
    numbers = st.one_of(st.integers(-2**16, 2**16), st.integers(-INT32, INT32 - 1))
    cases = st.tuples(names, numbers, numbers)

    def run(function: Callable[..., Any]) -> Callable[[tuple], str]:
        def one(case: tuple) -> str:
            names, a, b = case
            kind, got, _ = _run_first(function, fleet, names, a, b, 5)
            ended = got if kind == "ok" else (got.code().name if kind == "status"
                                              else type(got).__name__)
            asked = " and ".join(fleet.asked()) or "nobody"
            return f"{ended}, asked {asked}"
        return one

    count = compare_with_reference(
        run(first_product), run(reference_first_product), cases,
        lambda case: _shown(case[0], case[1], case[2], 5),
        examples=[(["down1", "A"], 3, 4), (["A", "down1"], -3, 4), (["down2", "C"], INT32 - 1, 1),
                  (["down3", "B"], INT32 // 2, 3)], max_examples=30)
    return f"{count} generated orders of servers that answer or are down agree with the reference"
