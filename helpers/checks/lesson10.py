"""Checks for lesson 10, production: deadlines and cancellation down a chain, waiting
for a server, round robin with retries, a graceful shutdown.

Each check looks at the server side: the deadline the next hop really saw, the cancel
that really reached the last service, the calls each server really answered.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from helpers.checks.core import (
    Mismatch,
    compare_with_reference,
    down_target,
    exercise,
    expect,
    expect_error_status,
    within,
)
from helpers.reference.production import (
    LastHop,
    Worker,
    free_port,
    production_pb2 as pb2,
    production_pb2_grpc as pb2_grpc,
    serve_on,
)
from helpers.servers import running, serve

LESSON = "10_production"


def _chain(middle_class: type, margin: float, last: LastHop, name: str):
    """Serve `last` and the learner's middle in front of it; return (servers, channels, stub)."""
    last_server = serve(pb2_grpc.add_ChainServicer_to_server, last, name=f"check-{name}-last")
    last_channel = grpc.insecure_channel(last_server.target)
    middle = middle_class(pb2_grpc.ChainStub(last_channel), margin=margin)
    middle_server = serve(pb2_grpc.add_ChainServicer_to_server, middle, name=f"check-{name}-middle")
    middle_channel = grpc.insecure_channel(middle_server.target)
    return [middle_server, last_server], [middle_channel, last_channel], pb2_grpc.ChainStub(
        middle_channel)


def _close(servers, channels) -> None:
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop()


def _first_call(call: Callable[[], Any]) -> Any:
    """Make the first call to the learner's servicer; an unsolved one reads as "not solved yet"."""
    try:
        return call()
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNKNOWN and "not solved yet" in (error.details() or ""):
            raise NotImplementedError(error.details()) from None
        raise


class _Aborted(grpc.RpcError):
    """What `_FakeContext.abort` raises, as a real context's abort does."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class _FakeContext:
    """A handler's context with a fixed `time_remaining()`; `add_callback` answers `callback_ok`
    (False: the call has already ended, as when the caller cancelled before the handler ran)."""

    def __init__(self, remaining: float, callback_ok: bool = True) -> None:
        self.remaining, self.callback_ok = remaining, callback_ok

    def time_remaining(self) -> float:
        return self.remaining

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        return self.callback_ok

    def is_active(self) -> bool:
        return self.callback_ok

    def invocation_metadata(self) -> tuple:
        return ()

    def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise _Aborted(code, details)


def _reference_budget(case: tuple[float, float]) -> float:
    remaining, margin = case
    if remaining - margin <= 0:
        raise _Aborted(grpc.StatusCode.DEADLINE_EXCEEDED, "no time left")
    return remaining - margin


def _same_budget(got: tuple, expected: tuple) -> bool:
    if got[0] == expected[0] == "ok" and isinstance(got[1], (int, float)):
        return abs(got[1] - expected[1]) < 1e-6
    return got == expected


def _expect_budget(last: LastHop, caller_deadline: float, margin: float, timeout: float) -> None:
    """The last hop's deadline must be the caller's deadline minus the margin."""
    seen = last.deadlines[-1]
    expect(seen is not None, "the last service saw no deadline at all: its call from the "
           "middle had no timeout=, so it could run forever after the caller gave up")
    before = caller_deadline - seen
    expect(before > -0.05,
           f"with a {timeout} s caller deadline, the last service's deadline was {-before:.2f} s "
           "later than the caller's deadline: it may work on after the caller has given up; "
           "pass what is left (context.time_remaining() - self.margin), not a fixed number")
    expect(before > margin / 2,
           f"with a {timeout} s caller deadline and margin={margin}, the last service's deadline "
           f"was {before:+.2f} s before the caller's; subtract the margin you were given "
           "(self.margin) from context.time_remaining()")
    expect(before < margin + 0.3,
           f"with a {timeout} s caller deadline and margin={margin}, the last service's deadline "
           f"came {before:.2f} s before the caller's, more than the margin: pass what is left "
           "(context.time_remaining() - self.margin), not a fixed number")


@exercise(
    "10.1",
    "Pass on what is left of the deadline",
    notebook=LESSON,
    hint="An outgoing call made inside a handler gets no deadline unless you give it one; "
    "the handler's own context knows how much time the caller left.",
    second_hint="The context has a method that tells how many seconds are left; keep "
    "self.margin of them for yourself. What should happen when nothing is left to pass on?",
)
def deadline_budget(middle_class: type) -> str:
    from hypothesis import strategies as st

    def learner(case: tuple[float, float]) -> Any:
        remaining, margin = case
        return middle_class(None, margin=margin).budget(_FakeContext(remaining))

    try:
        compared = compare_with_reference(
            learner, _reference_budget,
            st.tuples(st.floats(0, 10), st.floats(0.01, 1)),
            lambda case: f"budget() with {case[0]} s left and margin={case[1]}",
            examples=[(0.3, 0.3), (0.25, 0.3), (0.8, 0.3), (1.0, 0.6), (0.61, 0.6), (0.0, 0.1)],
            same=_same_budget)
    except Mismatch as mismatch:
        expect(False, f"{mismatch} (status DEADLINE_EXCEEDED: context.abort with that code; "
               "the budget is what is left minus self.margin, and none is left when that is "
               "0 or less)")
    checked = []
    for timeout, margin in [(1.5, 0.3), (3.0, 0.6)]:
        last = LastHop()
        servers, channels, stub = _chain(middle_class, margin, last, "deadline")
        try:
            start = time.monotonic()
            _first_call(lambda: stub.Relay(pb2.RelayRequest(note="budget"), timeout=timeout))
            _expect_budget(last, start + timeout, margin, timeout)
            checked.append(f"{timeout} s")
            # a caller that leaves less than the margin: the last hop is not even called
            try:
                stub.Relay(pb2.RelayRequest(note="too late"), timeout=margin / 2)
            except grpc.RpcError as error:
                expect_error_status(error, grpc.StatusCode.DEADLINE_EXCEEDED,
                                    f"a call with a {margin / 2} s deadline (less than the margin)")
            else:
                expect(False, f"a call with a {margin / 2} s deadline (less than the "
                       f"margin {margin}) succeeded; it should end with DEADLINE_EXCEEDED")
            expect(last.calls == 1, f"a caller left {margin / 2} s, less than the margin, yet the "
                   "middle still called the last service: when the budget is not positive, "
                   "abort with DEADLINE_EXCEEDED instead of calling")
        finally:
            _close(servers, channels)
    return ("the last service's deadline was the caller's minus the margin, for "
            f"{' and '.join(checked)} callers (margins 0.3 and 0.6); no call without a budget; "
            f"budget() agreed with the reference on {compared} times left and margins")


class _RefusingHop(pb2_grpc.ChainServicer):
    """A next hop that refuses every call: NOT_FOUND."""

    def Relay(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such note")


def _expect_errors_passed_on(middle_class: type, margin: float) -> None:
    """A next hop's error reaches the caller with its own status, not UNKNOWN."""
    servers, channels, stub = _chain(middle_class, margin, _RefusingHop(), "refusing")
    try:
        stub.Relay(pb2.RelayRequest(note="refused"), timeout=2)
    except grpc.RpcError as error:
        expect(error.code() == grpc.StatusCode.NOT_FOUND,
               f"the next hop answered NOT_FOUND, and the caller got {error.code().name}: wrap "
               "the wait for the next hop's answer in passing_errors_on(context), so its errors "
               "reach the caller with their own status")
    else:
        expect(False, "the next hop answered NOT_FOUND, yet the caller's call succeeded")
    finally:
        _close(servers, channels)


def _expect_cancel_when_already_gone(middle_class: type, last: LastHop,
                                     last_channel: grpc.Channel) -> None:
    """Relay with a context whose caller is already gone (add_callback returns False)."""
    last.started.clear()
    last.cancelled.clear()
    middle = middle_class(pb2_grpc.ChainStub(last_channel), margin=0.3)
    gone = _FakeContext(6.0, callback_ok=False)
    done = threading.Event()

    def relay() -> None:
        try:
            middle.Relay(pb2.RelayRequest(note="caller gone", work_ms=8000), gone)
        except Exception:  # noqa: BLE001 (an abort, or the cancelled call's error)
            pass
        finally:
            done.set()

    threading.Thread(target=relay, daemon=True).start()
    expect(done.wait(3), "the caller was gone before the middle registered its callback "
           "(add_callback returned False: that callback will never run), and Relay was still "
           "waiting for the next hop 3 s later: when add_callback returns False, cancel the "
           "outgoing call at once")
    expect(not last.started.is_set() or last.cancelled.wait(2),
           "the caller was gone before the middle registered its callback, and the last "
           "service went on working: when add_callback returns False, cancel the outgoing "
           "call at once")


@exercise(
    "10.2",
    "Cancel downstream when the caller gives up",
    notebook=LESSON,
    hint="A blocking call cannot be cancelled from another thread; a call started with "
    ".future() can, and the handler's context can tell you when your own caller is gone.",
    second_hint="The context can run a function of yours when the call ends for any reason, "
    "cancel included; register it before you wait for the next hop, and mind what it returns "
    "when the call has already ended.",
)
def cancel_downstream(middle_class: type) -> str:
    margin = 0.3
    last = LastHop()
    servers, channels, stub = _chain(middle_class, margin, last, "cancel")
    try:
        start = time.monotonic()
        trace = _first_call(lambda: stub.Relay(pb2.RelayRequest(note="quick"), timeout=2))
        expect(any(s.service == "last" for s in trace.seen),
               "the reply did not carry the last service's trace: return what the next hop "
               "answered (call.result())")
        _expect_budget(last, start + 2, margin, 2)

        for attempt in (1, 2):
            last.started.clear()
            last.cancelled.clear()
            call = stub.Relay.future(pb2.RelayRequest(note="slow", work_ms=8000), timeout=10)
            expect(last.started.wait(5), "the slow call never reached the last service")
            time.sleep(0.2)
            call.cancel()
            expect(last.cancelled.wait(3),
                   f"the caller cancelled (attempt {attempt}), but the last service went on "
                   "working for 3 s more: the middle must cancel its own outgoing call when its "
                   "caller goes away")
        _expect_cancel_when_already_gone(middle_class, last, channels[1])
        _expect_errors_passed_on(middle_class, margin)
    finally:
        _close(servers, channels)
    return ("the deadline reached the last service, 2 cancels by the caller reached it "
            "through the middle, a caller gone before add_callback cancelled the next hop at "
            "once, and the next hop's NOT_FOUND reached the caller")


@exercise(
    "10.3",
    "A client that waits for its server",
    notebook=LESSON,
    hint="By default a call to a server that is not listening fails at once with UNAVAILABLE; "
    "look at the keyword arguments a stub call takes besides timeout=.",
    second_hint="One call option makes the call wait for a connection instead of failing "
    "fast; the timeout you were given bounds the wait. When nobody comes, let the "
    "RpcError out: the caller decides.",
)
def wait_for_server(call_when_ready: Callable[..., Any]) -> str:
    port = free_port()
    late = Worker("late starter")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    timer = threading.Timer(0.6, lambda: serve_on(port, pb2_grpc.add_WorkerServicer_to_server,
                                                  late, name="check-late"))
    timer.start()
    try:
        stub = pb2_grpc.WorkerStub(channel)
        try:
            reply = within(12, lambda: call_when_ready(stub, pb2.WorkRequest(), 6),
                           "pass the timeout you were given to the call")
        except grpc.RpcError as error:
            expect(error.code() != grpc.StatusCode.UNAVAILABLE,
                   "the call failed with UNAVAILABLE before the server came up (0.6 s later): "
                   "calls fail fast by default; ask this one to wait for the server")
            expect(error.code() != grpc.StatusCode.DEADLINE_EXCEEDED,
                   "the call ended with DEADLINE_EXCEEDED though it was given timeout=6 and "
                   "the server came up 0.6 s later: use the timeout you were given")
            raise
        expect(getattr(reply, "server", None) == "late starter" and late.calls == 1,
               f"call_when_ready returned {reply!r}, not the late server's reply "
               f"(the server counted {late.calls} calls)")
    finally:
        timer.cancel()
        timer.join()
        channel.close()
        if "check-late" in running():
            running()["check-late"].stop()

    gave_up = []
    for budget in (0.4, 1.0):
        nobody = grpc.insecure_channel(down_target())
        try:
            start = time.monotonic()
            try:
                result = within(budget + 3, lambda: call_when_ready(
                    pb2_grpc.WorkerStub(nobody), pb2.WorkRequest(), budget),
                    f"with no server at all and timeout={budget}, the call must give up after "
                    f"about {budget} s: pass the timeout you were given to the call")
            except grpc.RpcError as error:
                expect_error_status(error, grpc.StatusCode.DEADLINE_EXCEEDED,
                                    "with no server at all, the call")
            else:
                expect(False, f"with no server at all, call_when_ready returned {result!r} "
                       "instead of raising: let the RpcError (DEADLINE_EXCEEDED) reach the "
                       "caller, who decides what to do")
            waited = time.monotonic() - start
            expect(waited > budget * 0.8, f"with no server and timeout={budget}, the call gave "
                   f"up after {waited:.2f} s, before its deadline: wait for the server up to "
                   "the deadline")
            expect(waited < budget + 0.5, f"with no server and timeout={budget}, the call gave "
                   f"up after {waited:.2f} s: use the timeout you were given, not one of yours")
            gave_up.append(f"{waited:.1f} s for timeout={budget}")
        finally:
            nobody.close()
    return ("the call waited for a server that started 0.6 s later and reached it; with no "
            f"server it raised DEADLINE_EXCEEDED at its deadline ({', '.join(gave_up)})")


UNSAFE_TO_RETRY = {
    "DEADLINE_EXCEEDED": "the deadline covers every attempt, so a retry has no time left, "
    "and the first attempt may still be running on the server",
    "INTERNAL": "a server bug; the call may have run, and will fail the same way again",
    "UNKNOWN": "an uncaught exception in the handler; the call may have run, and a retry "
    "repeats the crash",
}


def _seconds(duration: Any) -> float | None:
    """A service config duration ('0.05s') in seconds; None if it is not one."""
    try:
        return float(str(duration).removesuffix("s"))
    except ValueError:
        return None


def _expect_backoff(config: Any) -> None:
    """The retry policy for production.Worker has the backoff the statement names."""
    methods = config.get("methodConfig", []) if isinstance(config, dict) else []
    policies = [method.get("retryPolicy") for method in methods
                if method.get("retryPolicy") and any(
                    name.get("service") == "production.Worker" for name in method.get("name", []))]
    if not policies:
        return  # the calls below fail and say why
    policy = policies[0]
    for key, wanted, unit in [("initialBackoff", 0.05, " s"), ("maxBackoff", 0.5, " s"),
                              ("backoffMultiplier", 2, "")]:
        got = _seconds(policy.get(key)) if unit else policy.get(key)
        expect(isinstance(got, (int, float)) and abs(got - wanted) < 1e-9,
               f"the retryPolicy's {key} is {policy.get(key)!r}: the policy asks for a backoff "
               "that starts at 0.05 s, doubles after each attempt and never exceeds 0.5 s")


def _attempts_when_all_are_sick(config_text: str) -> float:
    """Attempts per call, as the servers counted them, when every server answers UNAVAILABLE."""
    sick = [Worker(f"sick{i}", fail=True) for i in range(3)]
    servers = [serve(pb2_grpc.add_WorkerServicer_to_server, worker, name=f"check-rr-{worker.name}")
               for worker in sick]
    target = "ipv4:" + ",".join(server.target for server in servers)
    try:
        with grpc.insecure_channel(target, options=[("grpc.service_config", config_text)]) as channel:
            stub = pb2_grpc.WorkerStub(channel)
            for _ in range(4):
                try:
                    stub.Work(pb2.WorkRequest(), timeout=5)
                except grpc.RpcError:
                    pass
    finally:
        for server in servers:
            server.stop()
    return sum(worker.calls for worker in sick) / 4


@exercise(
    "10.5",
    "A service config that spreads calls and retries",
    notebook=LESSON,
    hint="A service config (JSON) has a key that chooses the load-balancing policy and one "
    "that gives methods a retryPolicy; gRPC's service config and retry documents list their "
    "fields. The default policy uses one server only.",
    second_hint="A retryPolicy needs all of maxAttempts, initialBackoff, maxBackoff (durations "
    "as strings ending in s), backoffMultiplier and retryableStatusCodes. Retry only what "
    "says the call never reached a working server.",
)
def round_robin_retries(service_config: Any) -> str:
    if callable(service_config):  # a function that returns the config
        service_config = service_config()
    text = service_config if isinstance(service_config, str) else json.dumps(service_config)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = {}
    for method in parsed.get("methodConfig", []) if isinstance(parsed, dict) else []:
        codes = {str(code).upper() for code in
                 (method.get("retryPolicy") or {}).get("retryableStatusCodes", [])}
        for code, why in UNSAFE_TO_RETRY.items():
            expect(code not in codes, f"retryableStatusCodes has {code}: {why}")
    _expect_backoff(parsed)
    workers = [Worker("sick", fail=True), Worker("w1"), Worker("w2")]
    servers = [serve(pb2_grpc.add_WorkerServicer_to_server, worker, name=f"check-rr-{worker.name}")
               for worker in workers]
    target = "ipv4:" + ",".join(server.target for server in servers)
    outcomes: Counter = Counter()
    first_error: list[str] = []
    try:
        with grpc.insecure_channel(target, options=[("grpc.service_config", text)]) as channel:
            stub = pb2_grpc.WorkerStub(channel)
            for _ in range(30):
                try:
                    outcomes[stub.Work(pb2.WorkRequest(), timeout=5).server] += 1
                except grpc.RpcError as error:
                    outcomes[error.code().name] += 1
                    first_error.append(f"{error.code().name}: {error.details()}")
    finally:
        for server in servers:
            server.stop()
    invalid = [code for code in outcomes if code == "INVALID_ARGUMENT"]
    if invalid:
        expect(False, f"gRPC refused the service config: {first_error[0]}")
    reached = [worker.name for worker in workers if worker.calls]
    expect(len(reached) > 1,
           f"every attempt went to one server ({reached[0] if reached else 'none'}), the first "
           "address: that is pick_first, the default; choose round_robin in loadBalancingConfig")
    failed = 30 - outcomes["w1"] - outcomes["w2"]
    attempts = _attempts_when_all_are_sick(text)
    expect(not failed or attempts < 2 or attempts == 3,  # a retry policy, but not the team's
           f"{failed} of 30 calls failed, and with every server sick each call made "
           f"{attempts:g} attempts: the policy asks for 3 in all (the first and two retries); "
           "that is maxAttempts")
    expect(failed == 0,
           f"{failed} of 30 calls failed ({dict(outcomes)}): the sick server's UNAVAILABLE was "
           "not retried on another server; give production.Worker a retryPolicy with "
           "UNAVAILABLE in retryableStatusCodes and maxAttempts of 2 or more")
    expect(min(outcomes["w1"], outcomes["w2"]) >= 5,
           f"the healthy servers answered {outcomes['w1']} and {outcomes['w2']} calls: "
           "spread the calls with round_robin")
    expect(attempts == 3, f"with every server sick, each call made {attempts:g} attempts: the "
           "policy asks for 3 in all (the first and two retries); that is maxAttempts")
    return ("30 calls all answered, by both healthy servers; every attempt that reached the "
            "sick server was retried on another one; 3 attempts a call when all were sick, "
            "backoff 0.05 s doubling up to 0.5 s")


class _WatchedEvent:
    """The event stop() returns, noting whether anyone waited on it."""

    def __init__(self, event: threading.Event) -> None:
        self._event, self.waited_on = event, False

    def wait(self, timeout: float | None = None) -> bool:
        self.waited_on = True
        return self._event.wait(timeout)

    def is_set(self) -> bool:
        self.waited_on = True
        return self._event.is_set()


class _StopWatcher:
    """The real grpc.Server, noting what health said when stop() was called."""

    def __init__(self, server: grpc.Server, health_servicer: health.HealthServicer) -> None:
        self._server, self._health = server, health_servicer
        self.health_at_stop: Any = None
        self.stopped: _WatchedEvent | None = None

    def stop(self, grace: float | None) -> "_WatchedEvent":
        request = health_pb2.HealthCheckRequest(service="")
        self.health_at_stop = self._health.Check(request, None).status
        self.stopped = _WatchedEvent(self._server.stop(grace))
        return self.stopped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _watch(stub, service: str, saw: list) -> None:
    """Record the statuses a Watch stream sends until the server ends it.

    (Cancelling a Watch from the client while the health servicer is sending to other
    watchers can deadlock grpcio-health-checking's lock, so the check never does.)
    """
    try:
        for reply in stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=15):
            saw.append(reply.status)
    except grpc.RpcError:
        pass


@exercise(
    "10.4",
    "A graceful shutdown that loses no call",
    notebook=LESSON,
    hint="What must a load balancer learn before the server stops taking calls, and what "
    "does stop() return?",
    second_hint="The health servicer has a method for a shutdown that marks every service "
    "NOT_SERVING; stop(grace) returns at once, with something to wait on that is set when the "
    "last call has finished (or the grace ran out).",
)
def graceful(graceful_shutdown: Callable[..., Any]) -> str:
    health_servicer = health.HealthServicer()
    worker = Worker("draining")

    def add_health(grpc_server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)

    server = serve(pb2_grpc.add_WorkerServicer_to_server, worker, name="check-drain",
                   setup=add_health)
    health_servicer.set("", SERVING)
    health_servicer.set("production.Worker", SERVING)
    channel = grpc.insecure_channel(server.target)
    try:
        health_stub = health_pb2_grpc.HealthStub(channel)
        seen: dict[str, list] = {"": [], "production.Worker": []}
        watchers = [threading.Thread(target=_watch, args=(health_stub, name, seen[name]),
                                     daemon=True)
                    for name in seen]
        for watcher in watchers:
            watcher.start()
        deadline = time.monotonic() + 5
        while not all(seen.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        stub = pb2_grpc.WorkerStub(channel)
        in_flight = [stub.Work.future(pb2.WorkRequest(work_ms=800), timeout=10) for _ in range(3)]
        while worker.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        watched = _StopWatcher(server.grpc_server, health_servicer)
        started = time.monotonic()
        within(10, lambda: graceful_shutdown(watched, health_servicer, 2.0),
               "stop with a grace period of `grace` seconds, not None")
        took = time.monotonic() - started
        finished = worker.finished
        lost = []
        for call in in_flight:
            try:
                call.result()
            except grpc.RpcError as error:
                lost.append(error.code().name)
        for watcher in watchers:
            watcher.join(5)
        for name, statuses in seen.items():
            expect(NOT_SERVING in statuses,
                   f"health never said NOT_SERVING for {name or 'the whole server'!r} during "
                   "the shutdown: mark the server NOT_SERVING first, so load balancers stop "
                   "sending new calls")
        expect(not lost, f"{len(lost)} of 3 calls in flight were lost ({', '.join(lost)}): "
               "stop(None) or stop(0) aborts them; give them a grace period")
        expect(finished == 3, f"graceful_shutdown returned when {finished} of 3 calls in "
               "flight had finished: wait on the event that stop() returns")
        expect(watched.health_at_stop == NOT_SERVING,
               "stop() was called while health still said SERVING: in that order load "
               "balancers keep sending new calls to a server that refuses them; mark it "
               "NOT_SERVING first, then stop")
        expect(watched.stopped is not None and watched.stopped.waited_on,
               f"graceful_shutdown returned after {took:.1f} s without waiting on the event "
               "stop() returns (a sleep?): a sleep guesses, the event is set when the server "
               "has really stopped; wait on the event")
        try:
            pb2_grpc.WorkerStub(channel).Work(pb2.WorkRequest(), timeout=2)
        except grpc.RpcError as error:
            expect(error.code() == grpc.StatusCode.UNAVAILABLE,
                   f"a new call after the shutdown ended with {error.code().name}")
        else:
            expect(False, "the server still answered a new call after graceful_shutdown "
                   "returned: stop it")
    finally:
        channel.close()
        server.stop()
    return ("health went NOT_SERVING for the server and the service before stop(), 3 calls "
            f"in flight finished, the shutdown waited on stop()'s event ({took:.1f} s: open health "
            "Watch streams hold a stop for its whole grace), then the server refused new calls")


# --- 10.6 (challenge) -------------------------------------------------------------------

class _CountingStub:
    """The learner's stub, counting the attempts their code makes."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = pb2_grpc.WorkerStub(channel)
        self.attempts = 0

    def Work(self, *args: Any, **kwargs: Any) -> Any:
        self.attempts += 1
        return self._stub.Work(*args, **kwargs)


class _Picky(Worker):
    """Refuses every request as invalid: a failure that no retry can fix."""

    def Work(self, request, context):
        with self._lock:
            self.calls += 1
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "work_ms must be even")


def _restart_later(port: int, name: str, after: float, worker: Worker) -> threading.Timer:
    timer = threading.Timer(after, lambda: serve_on(port, pb2_grpc.add_WorkerServicer_to_server,
                                                    worker, name=name))
    timer.start()
    return timer


@exercise(
    "10.6",
    "Challenge: a call that survives a restart",
    notebook=LESSON,
    hint="Think of the three ways a restart can meet your call: before it starts, while it is "
    "in flight, never ending. Which status does each give, and which of them may be tried "
    "again?",
    second_hint="A call in flight when its server stops fails whatever options it had; a "
    "new attempt must only get what is left of the one budget; and between attempts, "
    "something must keep you from hammering a closed port.",
)
def survives_restart(call_through_restart: Callable[..., Any]) -> str:
    port = free_port()
    first = Worker("before restart")
    second = Worker("after restart")
    server = serve_on(port, pb2_grpc.add_WorkerServicer_to_server, first, name="check-restart")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    timers: list[threading.Timer] = []
    said = []
    try:
        # 1. the server stops while the call is in flight, and is back 0.6 s later
        stub = _CountingStub(channel)
        stopper = threading.Timer(0.3, lambda: server.stop(0))
        stopper.start()
        timers += [stopper, _restart_later(port, "check-restart", 0.9, second)]
        start = time.monotonic()
        try:
            reply = within(8, lambda: call_through_restart(
                stub, pb2.WorkRequest(work_ms=600), 4.0), "give every attempt a deadline")
        except grpc.RpcError as error:
            expect(False, f"the server stopped during the call and was back 0.6 s later, well "
                   f"within the 4 s budget, yet your function raised {error.code().name}: a "
                   "call in flight when its server stops fails, whatever options it had; "
                   "try it again while there is time")
        took = time.monotonic() - start
        expect(getattr(reply, "server", None) == "after restart",
               f"call_through_restart returned {reply!r}, not the restarted server's reply")
        expect(stub.attempts <= 20, f"{stub.attempts} attempts in {took:.1f} s: retrying in a "
               "tight loop hammers a server that is starting; wait for it between attempts")
        said.append(f"back after a restart in {took:.1f} s, without hammering it")

        # 2. the server stops during the call and never comes back: one budget for all
        for timer in timers:
            timer.join(5)
        stub = _CountingStub(channel)
        gone = running().get("check-restart")
        stopper = threading.Timer(0.5, lambda: gone.stop(0) if gone else None)
        stopper.start()
        timers.append(stopper)
        start = time.monotonic()
        try:
            result = within(6, lambda: call_through_restart(
                stub, pb2.WorkRequest(work_ms=2000), 1.0),
                "with a 1 s budget and no server, the call must end near 1 s: give every "
                "attempt a deadline")
        except grpc.RpcError as error:
            took = time.monotonic() - start
            expect(error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED,
                                    grpc.StatusCode.UNAVAILABLE),
                   f"with no server coming back, your function raised {error.code().name}")
            expect(took < 1.4, f"with a 1 s budget, the call ended after {took:.1f} s: each "
                   "attempt got a budget of its own; give every attempt only what is left of "
                   "the one deadline")
            expect(took > 0.8, f"with a 1 s budget and the server gone after 0.5 s, your "
                   f"function gave up after {took:.1f} s: keep trying until the budget is spent")
        else:
            expect(False, f"with the server gone for good, call_through_restart returned "
                   f"{result!r}: raise the RpcError, the caller must know the call failed")
        said.append(f"gone for good: gave up after {took:.1f} s of a 1 s budget")

        # 3. an error no retry can fix is raised at once
        picky = _Picky("picky")
        picky_server = serve_on(port, pb2_grpc.add_WorkerServicer_to_server, picky,
                                name="check-restart")
        stub = _CountingStub(channel)
        refused: grpc.RpcError | None = None
        try:
            within(6, lambda: call_through_restart(stub, pb2.WorkRequest(work_ms=3), 3.0),
                   "give every attempt a deadline")
        except grpc.RpcError as error:
            refused = error
        expect(picky.calls == 1, f"a request refused as INVALID_ARGUMENT was sent {picky.calls} "
               "times: only a status that says the server was not there is worth another try")
        expect(refused is not None, "a request the server refuses as INVALID_ARGUMENT "
               "returned instead of raising")
        expect_error_status(refused, grpc.StatusCode.INVALID_ARGUMENT,
                            "a request the server refuses as invalid")
        picky_server.stop()
        said.append("INVALID_ARGUMENT raised after 1 attempt")
    finally:
        for timer in timers:
            timer.cancel()
        channel.close()
        if "check-restart" in running():
            running()["check-restart"].stop()
    return "; ".join(said)
