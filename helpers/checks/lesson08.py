"""Checks for lesson 08, interceptors and metadata.

Every check serves lesson 06's route guide (four methods, one per call type) and
looks at what really happened on the server: which calls reached the servicer,
what metadata arrived, what deadline each attempt carried, how many attempts
the server counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import queue
import random
import secrets
import threading
import time
from typing import Any, Callable, Iterator, NamedTuple

import grpc

from helpers.checks.core import (
    Mismatch, concurrently, describe_rpc_error, down_target, exercise, expect, expect_equal,
    expect_error_status,
)
from helpers.checks.lesson07 import run_in_fresh_loop
from helpers.reference.routeguide import (
    RouteGuide as ReferenceGuide, make_features, routeguide_pb2 as pb2, routeguide_pb2_grpc,
)
from helpers.servers import serve, serve_aio

LESSON = "08_interceptors"
TIMEOUT = 5  # seconds: the deadline of every call a check makes
METHODS = ["GetFeature", "ListFeatures", "RecordRoute", "RouteChat"]
KIND = {"GetFeature": "unary", "ListFeatures": "server streaming",
        "RecordRoute": "client streaming", "RouteChat": "bidirectional streaming"}
FEATURES = make_features()
POINTS = [feature.location for feature in FEATURES[:3]]
BAD_POINT = pb2.Point(latitude=10**9)
SMALL = pb2.Rectangle(lo=pb2.Point(latitude=400_000_000, longitude=-750_000_000),
                      hi=pb2.Point(latitude=402_500_000, longitude=-747_500_000))
SMALL_COUNT = len(list(ReferenceGuide(FEATURES).ListFeatures(SMALL, None)))
# Notes at a, a, b, a: the 2nd note earns 1 reply, the 4th earns 2.
NOTES = [pb2.RouteNote(location=POINTS[i], message=str(n)) for n, i in enumerate([0, 0, 1, 0])]
NOTE_REPLIES = 3


class Recorder(ReferenceGuide):
    """The reference route guide that records every call that reaches it."""

    def __init__(self) -> None:
        super().__init__(FEATURES)
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []

    def record(self, method: str, context: Any) -> None:
        with self.lock:
            self.calls.append({"method": method, "metadata": dict(context.invocation_metadata()),
                               "time_remaining": context.time_remaining()})

    def methods(self) -> list[str]:
        with self.lock:
            return [call["method"] for call in self.calls]

    def GetFeature(self, request, context):
        self.record("GetFeature", context)
        return super().GetFeature(request, context)

    def ListFeatures(self, request, context):
        self.record("ListFeatures", context)
        yield from super().ListFeatures(request, context)

    def RecordRoute(self, request_iterator, context):
        self.record("RecordRoute", context)
        return super().RecordRoute(request_iterator, context)

    def RouteChat(self, request_iterator, context):
        self.record("RouteChat", context)
        yield from super().RouteChat(request_iterator, context)


def _calls(stub: Any, metadata: tuple = (), timeout: float = TIMEOUT,
           empty_streams: bool = False) -> dict[str, Callable[[], Any]]:
    """One call per method (a client stream may be empty); each returns what it received."""
    points = [] if empty_streams else POINTS
    notes = [] if empty_streams else NOTES
    md = list(metadata) or None
    return {
        "GetFeature": lambda: stub.GetFeature(POINTS[0], metadata=md, timeout=timeout),
        "ListFeatures": lambda: list(stub.ListFeatures(SMALL, metadata=md, timeout=timeout)),
        "RecordRoute": lambda: stub.RecordRoute(iter(points), metadata=md, timeout=timeout),
        "RouteChat": lambda: list(stub.RouteChat(iter(notes), metadata=md, timeout=timeout)),
    }


def _outcome(call: Callable[[], Any]) -> grpc.RpcError | None:
    try:
        call()
    except grpc.RpcError as error:
        return error
    return None


def _build(cls: Any, *args: Any) -> Any:
    return cls(*args) if isinstance(cls, type) else cls


class _Details(NamedTuple):
    method: str
    invocation_metadata: tuple


_TRIAL = _Details("/routeguide.RouteGuide/GetFeature", ())


def _trial_handler() -> Any:
    return grpc.unary_unary_rpc_method_handler(lambda request, context: request)


def _not_solved_yet(attempt: Callable[[], Any]) -> None:
    """Run `attempt` (one intercept_service call, outside a server): let NotImplementedError out.

    Inside a server, the learner's NotImplementedError would only reach the check as an
    UNKNOWN status; this way the check says "not solved yet". Other errors are left for
    the real calls to show.
    """
    try:
        attempt()
    except NotImplementedError:
        raise
    except Exception:  # noqa: BLE001 - the real calls will report it
        pass


# --- 8.1 a latency interceptor ----------------------------------------------------

CRASH_POINT = pb2.Point(latitude=1, longitude=1)  # the check's GetFeature raises ValueError here,
CRASH_RECTANGLE = pb2.Rectangle(lo=pb2.Point(latitude=1), hi=pb2.Point(latitude=2))  # ...and here
EVERYWHERE = pb2.Rectangle(lo=pb2.Point(latitude=-900_000_000, longitude=-1_800_000_000),
                           hi=pb2.Point(latitude=900_000_000, longitude=1_800_000_000))


class SlowGuide(Recorder):
    """Each method takes a known minimum time on the server; one point crashes GetFeature."""

    def GetFeature(self, request, context):
        if request == CRASH_POINT:
            raise ValueError("a bug in the handler")
        time.sleep(0.15)
        return super().GetFeature(request, context)

    def ListFeatures(self, request, context):
        if request == CRASH_RECTANGLE:
            yield FEATURES[0]
            raise ValueError("a bug in the handler, after its first reply")
        for feature in super().ListFeatures(request, context):
            time.sleep(0.05)
            yield feature

    def RecordRoute(self, request_iterator, context):
        summary = super().RecordRoute(request_iterator, context)
        time.sleep(0.15)
        return summary

    def RouteChat(self, request_iterator, context):
        for note in super().RouteChat(request_iterator, context):
            time.sleep(0.05)
            yield note


class EchoGuide(ReferenceGuide):
    """RouteChat answers every note at once: a client may wait for each reply (ping-pong)."""

    def __init__(self) -> None:
        super().__init__(FEATURES)

    def RouteChat(self, request_iterator, context):
        for note in request_iterator:
            yield note


MIN_SECONDS = {"GetFeature": 0.15, "ListFeatures": 0.05 * SMALL_COUNT, "RecordRoute": 0.15,
               "RouteChat": 0.05 * NOTE_REPLIES}


def _code_name(code: Any) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    return str(code).removeprefix("StatusCode.")


def _ping_pong(stub: Any, notes: int = 3) -> int:
    """A RouteChat whose client waits for each reply before it sends the next note."""
    replies: queue.Queue = queue.Queue()

    def requests():
        for number in range(notes):
            yield pb2.RouteNote(location=POINTS[0], message=f"ping {number}")
            try:
                replies.get(timeout=1.5)
            except queue.Empty:
                return  # no answer: give up, end the stream

    got = 0
    for reply in stub.RouteChat(requests(), timeout=TIMEOUT):
        got += 1
        replies.put(reply)
    return got


def _entries_for(log: list, lock: threading.Lock, start: int, method: str,
                 seconds: float = 2.0) -> list[tuple]:
    """Log entries for `method` written after position `start`, waiting up to `seconds`."""
    full = f"/routeguide.RouteGuide/{method}"
    end = time.monotonic() + seconds
    while True:
        with lock:
            found = [entry for entry in log[start:] if entry[0] == full]
        if found or time.monotonic() > end:
            return found
        time.sleep(0.02)


@exercise(
    "8.1",
    "A latency interceptor for every call type",
    notebook=LESSON,
    hint="intercept_service only finds the handler; the call runs later, inside the handler's "
    "code. Wrap that code, and pick the wrapper by the handler's request_streaming and "
    "response_streaming. The table of the four kinds above says what the code gets and returns.",
    second_hint="Where does a response stream's work happen: when the method's code returns, or "
    "while gRPC pulls replies? And a request stream: who reads it, and when? Count as items pass "
    "through, never by reading ahead. A call can end in four ways (OK, an abort, a crash, the "
    "client going away): which one runs your logging in every case, and what does "
    "context.code() hold in each?",
)
def latency_interceptor(interceptor: Any) -> str:
    log: list[tuple] = []
    lock = threading.Lock()

    def record(method, code, requests, replies, seconds):
        with lock:
            log.append((method, _code_name(code), requests, replies, seconds))

    _not_solved_yet(lambda: _build(interceptor, record).intercept_service(
        lambda details: _trial_handler(), _TRIAL))
    guide = SlowGuide()
    server = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, guide,
                   name="check-8.1", interceptors=[_build(interceptor, record)])
    with server, grpc.insecure_channel(server.target) as channel:
        stub = routeguide_pb2_grpc.RouteGuideStub(channel)
        for name, call in _calls(stub).items():
            error = _outcome(call)
            expect(error is None, f"{name} failed through your interceptor: {error}")
        bad = _outcome(lambda: stub.GetFeature(BAD_POINT, timeout=TIMEOUT))
        expect(bad is not None and bad.code() == grpc.StatusCode.INVALID_ARGUMENT,
               "GetFeature with an invalid point should still fail with INVALID_ARGUMENT")
        time.sleep(0.2)  # a logger in a `finally` may run just after the client has its reply
        with lock:
            start = len(log)
        crashed = _outcome(lambda: stub.GetFeature(CRASH_POINT, timeout=TIMEOUT))
        expect(crashed is not None and crashed.code() == grpc.StatusCode.UNKNOWN,
               "a GetFeature whose handler raised ValueError should reach the client as UNKNOWN "
               f"(got {crashed and describe_rpc_error(crashed)}): let the exception go on")
        crash_log = _entries_for(log, lock, start, "GetFeature")
        with lock:
            start = len(log)
        stream = stub.ListFeatures(EVERYWHERE, timeout=TIMEOUT)
        next(stream)
        stream.cancel()
        cancel_log = _entries_for(log, lock, start, "ListFeatures")
        with lock:
            start = len(log)
        broken = _outcome(lambda: list(stub.ListFeatures(CRASH_RECTANGLE, timeout=TIMEOUT)))
        expect(broken is not None and broken.code() == grpc.StatusCode.UNKNOWN,
               "a ListFeatures whose handler raised ValueError after its first reply should "
               f"reach the client as UNKNOWN (got {broken and describe_rpc_error(broken)}): "
               "log, then let the exception go on out of your generator")
        broken_log = _entries_for(log, lock, start, "ListFeatures")
        time.sleep(0.2)  # time for a second entry, if there is one
    with lock:
        entries = list(log)
    expected = {  # method: (requests, replies)
        "GetFeature": (1, 1), "ListFeatures": (1, SMALL_COUNT),
        "RecordRoute": (len(POINTS), 1), "RouteChat": (len(NOTES), NOTE_REPLIES)}
    for name in METHODS:
        full = f"/routeguide.RouteGuide/{name}"
        found = [e for e in entries if e[0] == full and e[1] == "OK"]
        expect(found, f"no log entry with status OK for {name} ({KIND[name]}): "
               "does your interceptor wrap every kind of handler?")
        method, code, requests, replies, seconds = found[0]
        expect(seconds >= MIN_SECONDS[name] * 0.9,
               f"{name} took {seconds:.3f} s in your log, but its handler ran at least "
               f"{MIN_SECONDS[name]:.2f} s: time the whole call (to the last reply), not "
               "continuation(...) or the creation of a generator")
        expect_equal((requests, replies), expected[name], f"(requests, replies) logged for {name}")
    failed = [e for e in entries if e[0] == "/routeguide.RouteGuide/GetFeature" and e[1] != "OK"]
    expect(failed, "the GetFeature call that failed with INVALID_ARGUMENT was logged as OK or "
           "not at all: a call that fails must be logged with the status it failed with")
    expect_equal(failed[0][1], "INVALID_ARGUMENT", "status logged for the failed GetFeature")
    expect(crash_log, "a GetFeature whose handler raised ValueError was not logged at all")
    expect(crash_log[0][1] == "UNKNOWN",
           f"a GetFeature whose handler raised ValueError was logged with {crash_log[0][1]!r}, "
           "but the client got UNKNOWN: context.code() is None when a handler crashes "
           "without calling abort, so log UNKNOWN then")
    expect(cancel_log, "a ListFeatures that the client cancelled after its first reply was never "
           "logged: when the client goes away, gRPC closes your generator (GeneratorExit at its "
           "`yield`), so only logging that runs on every way out is reached")
    expect(broken_log and broken_log[0][1] == "UNKNOWN",
           "a ListFeatures whose handler raised ValueError after its first reply was logged "
           f"with {broken_log[0][1] if broken_log else 'nothing'}: log UNKNOWN for a crash")
    expect(cancel_log[0][1] == "CANCELLED",
           f"a ListFeatures that the client cancelled was logged with {cancel_log[0][1]!r}: "
           "the client cancelled, so log CANCELLED (context.is_active() is False once the "
           "client has gone)")
    calls = {"GetFeature": 3, "ListFeatures": 3, "RecordRoute": 1, "RouteChat": 1}
    for name, count in calls.items():
        logged = [entry[1] for entry in entries if entry[0] == f"/routeguide.RouteGuide/{name}"]
        expect(len(logged) == count,
               f"{count} {name} calls ({KIND[name]}) were logged {len(logged)} times, with "
               f"{', '.join(logged)}: log exactly once per call, however it ends (does your "
               "code carry on after logging a failure, instead of re-raising?)")
    echo = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, EchoGuide(),
                 name="check-8.1-echo", interceptors=[_build(interceptor, record)])
    with echo, grpc.insecure_channel(echo.target) as channel:
        stub = routeguide_pb2_grpc.RouteGuideStub(channel)
        try:
            answered = _ping_pong(stub)
        except grpc.RpcError as error:
            raise Mismatch(f"a ping-pong RouteChat (the client waits for each reply before its "
                           f"next note) failed: {describe_rpc_error(error)}") from None
    expect(answered == 3, f"a ping-pong RouteChat (the client waits for each reply before its "
           f"next note) got {answered} of 3 replies: your interceptor reads the request stream "
           "ahead of the handler (list(...)?), so the handler waits for a stream the client "
           "has not finished. Count requests as the handler takes them")
    return ("all four call types logged with their status, request and reply counts and a "
            "duration that covers the whole call, once per call; an abort logged "
            "INVALID_ARGUMENT, a crash UNKNOWN (unary and mid-stream, and the client got UNKNOWN "
            "too), a stream the client cancelled CANCELLED; a ping-pong chat flowed")


# --- 8.2 token auth for every call type -------------------------------------------

@exercise(
    "8.2",
    "Token auth on every call type",
    notebook=LESSON,
    hint="A refusal is a handler too, and gRPC drives it like the method it stands for: look at "
    "what a handler of each kind waits for before its code runs.",
    second_hint="A refusing handler must not wait for a request message. Which handler kinds "
    "run their code before any request has arrived? continuation(...) tells you the method's "
    "kind without reading a message.",
)
def token_auth(interceptor: Any) -> str:
    tokens = {secrets.token_hex(8), secrets.token_hex(8)}
    _not_solved_yet(lambda: _build(interceptor, set(tokens)).intercept_service(
        lambda details: _trial_handler(), _TRIAL))
    guide = Recorder()
    server = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, guide,
                   name="check-8.2", interceptors=[_build(interceptor, set(tokens))])
    refused = 0
    with server, grpc.insecure_channel(server.target) as channel:
        stub = routeguide_pb2_grpc.RouteGuideStub(channel)
        cases = [("no token", ()),
                 ("a wrong token", (("authorization", "Bearer " + secrets.token_hex(8)),)),
                 ("a valid token without 'Bearer '", (("authorization", min(tokens)),))]
        for what, metadata in cases:
            for name, call in _calls(stub, metadata).items():
                expect_error_status(_outcome(call), grpc.StatusCode.UNAUTHENTICATED,
                                    f"{name} ({KIND[name]}) with {what}")
                refused += 1
        for name in ["RecordRoute", "RouteChat"]:
            call = _calls(stub, empty_streams=True)[name]
            expect_error_status(_outcome(call), grpc.StatusCode.UNAUTHENTICATED,
                                f"{name} ({KIND[name]}) with an empty request stream and no token "
                                "(the rejecting handler must be of the method's own kind)")
            refused += 1
        expect(not guide.calls, f"{guide.methods()} reached the servicer without a valid token")
        for token in sorted(tokens):
            for name, call in _calls(stub, (("authorization", f"Bearer {token}"),)).items():
                error = _outcome(call)
                expect(error is None, f"{name} ({KIND[name]}) with a valid token failed: {error}")
    expect_equal(sorted(guide.methods()), sorted(METHODS * 2),
                 "calls that reached the servicer with a valid token")
    return (f"{refused} calls without a valid token were refused with UNAUTHENTICATED on all "
            "four call types (empty streams too) and never reached the servicer; 2 valid tokens "
            "passed on all four")


# --- 8.3 a client interceptor adding metadata --------------------------------------

def _each_call(stub: Any, metadata: Any, timeout: float = TIMEOUT) -> dict[str, Callable[[], Any]]:
    """One call per method, each passed this very `metadata` object (None, a list, a tuple)."""
    return {
        "GetFeature": lambda: stub.GetFeature(POINTS[0], metadata=metadata, timeout=timeout),
        "ListFeatures": lambda: list(stub.ListFeatures(SMALL, metadata=metadata, timeout=timeout)),
        "RecordRoute": lambda: stub.RecordRoute(iter(POINTS), metadata=metadata, timeout=timeout),
        "RouteChat": lambda: list(stub.RouteChat(iter(NOTES), metadata=metadata, timeout=timeout)),
    }


@exercise(
    "8.3",
    "Metadata on every outgoing call",
    notebook=LESSON,
    hint="grpc.intercept_channel only uses the methods your class has: one base class and one "
    "intercept_* method per call type. What in the call details must survive your change?",
    second_hint="The details you get belong to the caller: what is details.metadata when the "
    "caller passed none, and whose list is it when they did? Build new details (the CallDetails "
    "named tuple above) rather than changing the old ones, and think about when a value that "
    "must differ per call is made.",
)
def metadata_interceptor(interceptor: Any) -> str:
    token = secrets.token_hex(8)
    guide = Recorder()
    server = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, guide, name="check-8.3")
    own = [("x-caller", "check-0")]
    rounds = [("a list", own, TIMEOUT), ("a tuple", (("x-caller", "check-1"),), TIMEOUT + 3),
              ("no metadata (metadata=None)", None, TIMEOUT + 1)]
    with server, grpc.insecure_channel(server.target) as plain:
        channel = grpc.intercept_channel(plain, _build(interceptor, token))
        stub = routeguide_pb2_grpc.RouteGuideStub(channel)
        for what, metadata, timeout in rounds:
            for name, call in _each_call(stub, metadata, timeout).items():
                try:
                    error = _outcome(call)
                except Exception as crash:  # noqa: BLE001 - a client interceptor that crashed
                    raise Mismatch(f"{name} ({KIND[name]}) called with {what} raised "
                                   f"{type(crash).__name__} in your interceptor ({crash}): the "
                                   "caller's metadata may be None or a tuple; make a new list") \
                        from None
                expect(error is None, f"{name} failed through your interceptor: {error}")
    expect(own == [("x-caller", "check-0")],
           f"after 4 calls the caller's own metadata list holds {len(own)} entries "
           f"({sorted({key for key, _ in own})}): your interceptor appended to the caller's "
           "list; leave it alone and make a new one")
    expect_equal(len(guide.calls), 12, "calls that reached the server")
    request_ids = []
    for index, call in enumerate(guide.calls):
        name, metadata, remaining = call["method"], call["metadata"], call["time_remaining"]
        what, sent, timeout = rounds[index // 4]
        expect(metadata.get("authorization") == f"Bearer {token}",
               f"{name} ({KIND[name]}) arrived without 'authorization: Bearer <token>' "
               f"(it had {sorted(k for k in metadata if k != 'user-agent')}): does your "
               "interceptor handle every call type?")
        expect("x-request-id" in metadata, f"{name} arrived without an x-request-id")
        request_ids.append(metadata["x-request-id"])
        if sent:
            expect(metadata.get("x-caller") == dict(sent)["x-caller"],
                   f"{name} lost the metadata its caller passed: add to it, do not replace it")
        expect(remaining is not None and remaining < 3600,
               f"{name} arrived with no deadline: your interceptor "
               "dropped the caller's timeout")
        expect(timeout - 1 < remaining <= timeout + 0.1,
               f"{name} arrived with a deadline {remaining:.1f} s away, but its caller set "
               f"timeout={timeout}: keep the caller's timeout")
    expect(len(set(request_ids)) == len(request_ids),
           f"{len(request_ids)} calls carried only {len(set(request_ids))} different request "
           "ids: make a new id for each call, not one in __init__")
    _caller_options_kept(_build(interceptor, token))
    return ("on all four call types the server received the token and a fresh request id per "
            "call, with the caller's own metadata and deadline kept (a list, a tuple or none), "
            "and the caller's list left unchanged; call credentials, wait_for_ready and "
            "compression went through")


# --- 8.4 a retry interceptor with a deadline budget --------------------------------

class FlakyGuide(ReferenceGuide):
    """GetFeature fails with `code` (UNAVAILABLE) for the first `fails` attempts (after `work` s)."""

    def __init__(self, fails: int, work: float = 0.0,
                 code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        super().__init__(FEATURES)
        self.fails, self.work, self.code = fails, work, code
        self.lock = threading.Lock()
        self.attempts: list[tuple[float, float | None]] = []  # (arrival, time_remaining)
        self.metadata: list[dict[str, str]] = []  # the metadata of each attempt
        self.record_route_attempts = 0

    def GetFeature(self, request, context):
        with self.lock:
            self.attempts.append((time.monotonic(), context.time_remaining()))
            self.metadata.append(dict(context.invocation_metadata()))
            number = len(self.attempts)
        if self.work:
            time.sleep(self.work)
        if number <= self.fails and request != BAD_POINT:
            context.abort(self.code, f"attempt {number} failed on purpose")
        return super().GetFeature(request, context)

    def RecordRoute(self, request_iterator, context):
        with self.lock:
            self.record_route_attempts += 1
        super().RecordRoute(request_iterator, context)  # the trip is recorded...
        context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost before the reply")  # ...but


def _retry_stub(interceptor: Any, guide: FlakyGuide, name: str, run: Callable[[Any], Any],
                seed: int | None = None) -> Any:
    """Serve `guide`, call run(stub) through `interceptor`; with `seed`, the random module's
    draws during the call are known (seeded once the server and channel are up)."""
    server = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, guide, name=name)
    with server, grpc.insecure_channel(server.target) as plain:
        stub = routeguide_pb2_grpc.RouteGuideStub(grpc.intercept_channel(plain, interceptor))
        if seed is None:
            return run(stub)
        with _seeded_random(seed):
            return run(stub)


@contextlib.contextmanager
def _seeded_random(seed: int) -> Iterator[None]:
    """Make the random module's draws repeatable for a while (jitter the check can predict)."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


# random.seed(126) draws 0.57, 0.58, 0.46, 0.65: each pause is 35% to 65% of its backoff,
# whether it is drawn as uniform(0, backoff) or uniform(backoff, 0).
MIDDLE_DRAWS = 126


def _caller_options_kept(interceptor: Any, fails: int = 0) -> None:
    """Metadata, call credentials, wait_for_ready and compression go out with every attempt.

    GetFeature through `interceptor` fails `fails` times before it works (a retry sends it
    `fails + 1` times); then two calls to a target where nothing listens tell whether
    wait_for_ready reached grpcio (it waits for the deadline) or not (UNAVAILABLE at once).
    """
    guide = FlakyGuide(fails=fails)
    server = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, guide,
                   name="check-8-options", credentials=grpc.local_server_credentials())
    caller_id = secrets.token_hex(4)
    call_credentials = grpc.metadata_call_credentials(
        lambda context, callback: callback((("x-from-credentials", caller_id),), None))
    with server, grpc.secure_channel(server.target, grpc.local_channel_credentials()) as secure:
        stub = routeguide_pb2_grpc.RouteGuideStub(grpc.intercept_channel(secure, interceptor))
        try:
            stub.GetFeature(POINTS[0], timeout=TIMEOUT, metadata=[("x-caller-id", caller_id)],
                            credentials=call_credentials, wait_for_ready=True,
                            compression=grpc.Compression.Gzip)
        except grpc.RpcError as error:
            raise Mismatch(f"a GetFeature with metadata, call credentials, wait_for_ready and "
                           f"compression failed with {describe_rpc_error(error)}") from None
        except Exception as error:  # noqa: BLE001 - grpcio refused the details built
            raise Mismatch(f"a GetFeature with metadata, call credentials, wait_for_ready and "
                           f"compression raised {type(error).__name__}: {error}: build new "
                           "details from the caller's, field by field, in CallDetails' "
                           "order") from None
    for number, metadata in enumerate(guide.metadata, 1):
        for key, what in [("x-caller-id", "the caller's metadata"),
                          ("x-from-credentials", "the caller's call credentials")]:
            expect(metadata.get(key) == caller_id,
                   f"{f'attempt {number}' if fails else 'the call'} arrived without {what} "
                   f"({key} missing): the call must go out as the caller sent it, changed "
                   "only where the exercise says")
    with grpc.insecure_channel(down_target()) as channel:
        stub = routeguide_pb2_grpc.RouteGuideStub(grpc.intercept_channel(channel, interceptor))
        waited = _outcome(lambda: stub.GetFeature(POINTS[0], timeout=0.5, wait_for_ready=True))
        expect(waited is not None and waited.code() == grpc.StatusCode.DEADLINE_EXCEEDED,
               "a GetFeature with wait_for_ready=True to a server that is not up yet ended with "
               f"{waited and describe_rpc_error(waited)}, without waiting for it until its "
               "deadline: pass the caller's wait_for_ready on")
        failed = _outcome(lambda: stub.GetFeature(POINTS[0], timeout=1.0,
                                                  compression=grpc.Compression.Gzip))
        expect(failed is not None and failed.code() == grpc.StatusCode.UNAVAILABLE,
               "a GetFeature with compression=Gzip and no wait_for_ready to a server that is "
               f"down ended with {failed and describe_rpc_error(failed)} instead of failing "
               "at once with UNAVAILABLE: pass the caller's wait_for_ready and compression on, "
               "each in its own place")


NOT_RETRYABLE = [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                 grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED]


@exercise(
    "8.4",
    "A retry interceptor with a deadline budget",
    notebook=LESSON,
    hint="Does continuation(...) raise when the call fails, or hand you something to look at? "
    "And is the caller's timeout meant for each attempt, or for all of them together?",
    second_hint="Note once when the caller's time runs out; everything after (each attempt's "
    "timeout, each pause) is measured against that moment. Which failures say the server did "
    "nothing, and which may come after it did the work? The pause grows, but has a ceiling.",
)
def retry_interceptor(retry_class: Any) -> str:
    expect(isinstance(retry_class, type), "pass the class (the check builds it with its own "
           "max_attempts and backoff), not an instance")

    def make() -> Any:
        return retry_class(max_attempts=5, initial_backoff=0.02, multiplier=2.0, max_backoff=0.2)

    def get_feature(point: Any = POINTS[0], timeout: float = TIMEOUT) -> Callable[[Any], Any]:
        return lambda stub: _outcome(lambda: stub.GetFeature(point, timeout=timeout))

    def timed(run: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, float]]:
        """run(stub), and how long it took (the call alone, not the server's start)."""
        def timed_run(stub: Any) -> tuple[Any, float]:
            start = time.monotonic()
            return run(stub), time.monotonic() - start
        return timed_run

    figures = []
    for fails in (2, 3):
        guide = FlakyGuide(fails)
        reply = _retry_stub(make(), guide, "check-8.4", get_feature())
        expect(len(guide.attempts) > 1 or fails == 0,
               f"the server counted {len(guide.attempts)} attempt for a GetFeature that failed "
               "with UNAVAILABLE: your interceptor did not retry (does it wait for an exception "
               "that continuation never raises?)")
        expect(reply is None, f"GetFeature failing {fails} times then working still failed: "
               f"{reply}")
        expect_equal(len(guide.attempts), fails + 1,
                     f"attempts counted on the server when the first {fails} fail")
        figures.append(len(guide.attempts))
    guide = FlakyGuide(fails=100)
    error = _retry_stub(make(), guide, "check-8.4", get_feature())
    expect(error is not None, "a GetFeature that always fails succeeded?")
    expect_equal(len(guide.attempts), 5, "attempts counted on the server with max_attempts=5 "
                 "and a server that always fails")
    guide = FlakyGuide(fails=0)
    error = _retry_stub(make(), guide, "check-8.4", get_feature(BAD_POINT))
    expect(error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT,
           "GetFeature with a bad point should fail with INVALID_ARGUMENT through the retry")
    expect(len(guide.attempts) == 1, f"a call that failed with INVALID_ARGUMENT was sent "
           f"{len(guide.attempts)} times: retry only UNAVAILABLE (bad input stays bad)")
    for code in NOT_RETRYABLE:
        guide = FlakyGuide(fails=1, code=code)
        error = _retry_stub(make(), guide, "check-8.4", get_feature())
        expect(len(guide.attempts) == 1,
               f"a GetFeature that failed with {code.name} was sent {len(guide.attempts)} times: "
               f"retry only UNAVAILABLE ({code.name} may come after the server did the work, "
               "or will fail the same way again)")
        expect(error is not None and error.code() == code,
               f"a GetFeature that failed with {code.name} ended with "
               f"{error and describe_rpc_error(error)}: return the outcome as it is")
    # The budget: each attempt takes 0.25 s on the server and fails; the caller allows 0.8 s.
    budget = 0.8
    guide = FlakyGuide(fails=100, work=0.25)
    steps = retry_class(max_attempts=5, initial_backoff=0.1, multiplier=1.0, max_backoff=0.1)
    error, took = _retry_stub(steps, guide, "check-8.4", timed(get_feature(timeout=budget)),
                              MIDDLE_DRAWS)
    expect(error is not None, "a GetFeature that always fails succeeded?")
    expect(len(guide.attempts) > 1, f"with timeout={budget}, attempts of 0.25 s and pauses of "
           f"at most 0.1 s, the server counted {len(guide.attempts)} attempt: retry while "
           "there is time left")
    first_arrival = guide.attempts[0][0]
    for number, (arrival, remaining) in enumerate(guide.attempts, 1):
        expect(remaining is not None and remaining < 3600,
               f"attempt {number} carried no deadline at all")
        left = budget - (arrival - first_arrival)
        expect(remaining <= left + 0.1,
               f"attempt {number} arrived {arrival - first_arrival:.2f} s after the first with a "
               f"deadline {remaining:.2f} s away, more than the {max(left, 0):.2f} s left of "
               f"the caller's {budget} s: your retry ignores the deadline (each attempt must "
               "get only the time remaining)")
    expect(took < budget + 0.3, f"the call took {took:.2f} s with timeout={budget}: your retry "
           "slept past the deadline; stop when the next pause would end after it")
    # A pause past the deadline: the 1st attempt uses 0.5 s of 1 s; the pause drawn is 1.4 s
    # or more (a backoff of 4 s): the call must end at once with that attempt's UNAVAILABLE.
    guide = FlakyGuide(fails=100, work=0.5)
    slow = retry_class(max_attempts=5, initial_backoff=4.0, multiplier=2.0, max_backoff=4.0)
    try:
        error, took = _retry_stub(slow, guide, "check-8.4", timed(get_feature(timeout=1.0)),
                                  MIDDLE_DRAWS)
    except Exception as crash:  # noqa: BLE001 - e.g. None handed back to grpcio
        raise Mismatch(f"when the next pause would end after the deadline, the call raised "
                       f"{type(crash).__name__}: {crash}: return the last outcome, the object "
                       "continuation returned") from None
    expect(error is not None, "a GetFeature that always fails succeeded?")
    expect(error.code() == grpc.StatusCode.UNAVAILABLE and len(guide.attempts) == 1
           and took < 1.1,
           f"with timeout=1, a first attempt of 0.5 s and a pause of 1.4 s or more to come, the "
           f"call ended with {describe_rpc_error(error)} after {len(guide.attempts)} attempts "
           f"and {took:.2f} s: your retry slept past the deadline; when the next pause would "
           "end after it, return the last outcome (UNAVAILABLE) at once")
    # The cap: with a multiplier of 10, the 3rd pause would reach 5 s without max_backoff.
    # (A deadline, not a thread that waits: a thread left running would draw from `random`.)
    capped = retry_class(max_attempts=4, initial_backoff=0.05, multiplier=10.0, max_backoff=0.1)
    guide = FlakyGuide(fails=100)
    _retry_stub(capped, guide, "check-8.4-cap", get_feature(timeout=2.5), 80)
    expect(len(guide.attempts) == 4,
           f"with initial_backoff=0.05, multiplier=10, max_backoff=0.1 and a 2.5 s timeout, "
           f"the server counted {len(guide.attempts)} attempts, not 4 (pauses of 0.1 s at "
           "most): the backoff must never grow past max_backoff")
    # The jitter: a fixed backoff of 0.2 s; the draws of random() are 0.27, 0.54, 0.71, 0.96.
    steady = retry_class(max_attempts=5, initial_backoff=0.2, multiplier=1.0, max_backoff=0.2)
    guide = FlakyGuide(fails=100)
    _retry_stub(steady, guide, "check-8.4-jitter", get_feature(timeout=30), 80)
    arrivals = [arrival for arrival, _ in guide.attempts]
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    expect(len(gaps) == 4, f"the server counted {len(arrivals)} attempts with max_attempts=5")
    expect(min(gaps) < 0.15, "with a backoff of 0.2 s, your pauses between attempts were "
           f"{', '.join(f'{gap:.2f}' for gap in gaps)} s: draw each pause at random between 0 "
           "and the backoff (full jitter), so that clients that failed together spread out")
    # The pauses, one by one: backoffs 0.05, 0.2, 0.8 and 0.8 (x4, capped); with the seeded
    # draws each pause is 35% to 65% of its backoff. A gap on the server is a pause plus one
    # call: never shorter than the pause.
    growing = retry_class(max_attempts=5, initial_backoff=0.05, multiplier=4.0, max_backoff=0.8)
    guide = FlakyGuide(fails=100)
    _retry_stub(growing, guide, "check-8.4-pauses", get_feature(timeout=30), MIDDLE_DRAWS)
    arrivals = [arrival for arrival, _ in guide.attempts]
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    expect(len(gaps) == 4, f"the server counted {len(arrivals)} attempts with max_attempts=5")
    shown = ", ".join(f"{gap:.2f}" for gap in gaps)
    for number, (gap, backoff) in enumerate(zip(gaps, [0.05, 0.2, 0.8, 0.8]), 1):
        expect(gap <= backoff + 0.25,
               f"with initial_backoff=0.05, multiplier=4 and max_backoff=0.8, the pauses between "
               f"attempts were {shown} s: pause {number} lasted longer than its backoff of "
               f"{backoff} s. Draw each pause between 0 and the current backoff")
    expect(sum(gaps) >= 0.5 and gaps[2] + gaps[3] >= 0.45,
           f"with initial_backoff=0.05, multiplier=4 and max_backoff=0.8, the pauses between "
           f"attempts were {shown} s, for backoffs of 0.05, 0.2, 0.8 and 0.8 s and draws of "
           "random() of 0.57, 0.58, 0.46 and 0.65: sleep each pause, drawn with the random "
           "module, and multiply the backoff after each one")
    # No timeout: no deadline, and the retries as usual.
    guide = FlakyGuide(fails=2)
    try:
        reply = _retry_stub(make(), guide, "check-8.4", get_feature(timeout=None))
    except Exception as error:  # noqa: BLE001 - the interceptor crashed on timeout=None
        raise Mismatch(f"a GetFeature without a timeout raised {type(error).__name__}: {error}: "
                       "without a timeout there is no deadline (details.timeout is None), and "
                       "the retries go on as usual") from None
    expect(reply is None and len(guide.attempts) == 3,
           f"a GetFeature without a timeout, failing twice then working, ended with "
           f"{reply and describe_rpc_error(reply)} after {len(guide.attempts)} attempts "
           "(expected success on the 3rd)")
    _caller_options_kept(make(), fails=2)
    return (f"attempts counted on the server: {figures[0]} and {figures[1]} when the first 2 and "
            f"3 fail, 5 at most, 1 for INVALID_ARGUMENT, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED "
            f"and RESOURCE_EXHAUSTED; with a {budget} s timeout every attempt got only the time "
            "left and no pause went past the deadline; the pauses were jittered, grew and stayed "
            "under the cap; every attempt carried the caller's metadata, credentials and "
            "wait_for_ready")


# --- 8.5 gRPC's own retry policy ---------------------------------------------------

@exercise(
    "8.5",
    "A retry policy in the service config",
    notebook=LESSON,
    hint="A methodConfig applies to the methods its `name` list matches: a name with only a "
    "service matches every method of it. Count the failures GetFeature may have in a row.",
    second_hint="Which of the guide's methods may run twice without harm, and which failures say "
    "the server did nothing? The number of attempts counts the first one too; the backoff "
    "fields are durations written as strings, and the whole retry must fit in the call's "
    "deadline.",
)
def retry_policy(config: Any) -> str:
    if callable(config):
        config = config()
    try:
        text = config if isinstance(config, str) else json.dumps(config)
        json.loads(text)
    except (TypeError, ValueError) as error:
        raise Mismatch(f"the service config is not valid JSON: {error}") from None
    guide = FlakyGuide(fails=4)
    server = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, guide, name="check-8.5")
    with server, grpc.insecure_channel(server.target,
                                       options=[("grpc.service_config", text)]) as channel:
        stub = routeguide_pb2_grpc.RouteGuideStub(channel)
        first = _outcome(lambda: stub.GetFeature(POINTS[0], timeout=2 * TIMEOUT))
        expect(first is None or first.code() != grpc.StatusCode.DEADLINE_EXCEEDED,
               f"GetFeature's retries did not fit in its {2 * TIMEOUT} s deadline: make the "
               "backoff shorter (initialBackoff of a fraction of a second)")
        expect(first is None or first.code() == grpc.StatusCode.UNAVAILABLE,
               f"GetFeature ended with {first and describe_rpc_error(first)}: is the config "
               "valid?")
        got = len(guide.attempts)
        expect(got > 1, "the server counted 1 GetFeature attempt: no retry happened (check the "
               "full service name 'routeguide.RouteGuide', the method name and the status code "
               "names)")
        expect(first is None, f"GetFeature fails 4 times in a row and the server counted only "
               f"{got} attempts before the call gave up: maxAttempts is too small")
        route = _outcome(lambda: stub.RecordRoute(iter(POINTS), timeout=TIMEOUT))
        expect(route is not None and route.code() == grpc.StatusCode.UNAVAILABLE,
               "RecordRoute should fail with UNAVAILABLE, as the server answers")
        expect(guide.record_route_attempts == 1,
               f"RecordRoute was sent {guide.record_route_attempts} times: it records a trip, so "
               "a retry after a lost reply records it twice. Retry GetFeature only")
        guide.attempts.clear()
        bad = _outcome(lambda: stub.GetFeature(BAD_POINT, timeout=TIMEOUT))
        expect(bad is not None and bad.code() == grpc.StatusCode.INVALID_ARGUMENT,
               "GetFeature with a bad point should fail with INVALID_ARGUMENT")
        expect(len(guide.attempts) == 1, f"a GetFeature that failed with INVALID_ARGUMENT was "
               f"sent {len(guide.attempts)} times: retry UNAVAILABLE only")
    for code in NOT_RETRYABLE:
        guide = FlakyGuide(fails=1, code=code)
        server = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, guide,
                       name="check-8.5-codes")
        with server, grpc.insecure_channel(server.target,
                                           options=[("grpc.service_config", text)]) as channel:
            stub = routeguide_pb2_grpc.RouteGuideStub(channel)
            _outcome(lambda: stub.GetFeature(POINTS[0], timeout=TIMEOUT))
        expect(len(guide.attempts) == 1,
               f"a GetFeature that failed with {code.name} was sent {len(guide.attempts)} times: "
               f"retry UNAVAILABLE only ({code.name} may come after the server did the work)")
    return (f"GetFeature failed 4 times and succeeded on attempt {got} (counted on the server); "
            "RecordRoute, bad input and INTERNAL, UNKNOWN, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED "
            "failures were sent once")


# --- 8.6 an aio interceptor hands a request id to the handler ---------------------

class _IdGuide(routeguide_pb2_grpc.RouteGuideServicer):
    """Every method reports the request id it sees in a trailing metadata entry."""

    def __init__(self, variable: Any) -> None:
        self.variable = variable

    def _report(self, context: Any) -> None:
        context.set_trailing_metadata([("x-seen-request-id", str(self.variable.get(None)))])

    async def GetFeature(self, request, context):
        await asyncio.sleep(0.05)  # another call runs meanwhile
        self._report(context)
        return pb2.Feature(location=request)

    async def ListFeatures(self, request, context):
        self._report(context)
        yield pb2.Feature(name="one")

    async def RecordRoute(self, request_iterator, context):
        async for _ in request_iterator:
            pass
        self._report(context)
        return pb2.RouteSummary()

    async def RouteChat(self, request_iterator, context):
        async for note in request_iterator:
            yield note
        self._report(context)


@exercise(
    "8.6",
    "A request id from an aio interceptor to the handler",
    notebook=LESSON,
    hint="The handler runs after intercept_service has returned, in the same asyncio task: set "
    "the ContextVar and leave it set. Calls without an x-request-id need one of their own.",
    second_hint="Where do the two ids come from: the client's metadata, or made fresh, and when "
    "is each made? Anything you undo after `await continuation(...)` is undone before the "
    "handler starts.",
)
def aio_request_id(interceptor: Any, variable: Any) -> str:
    instance = _build(interceptor)
    expect(isinstance(instance, grpc.aio.ServerInterceptor),
           f"{type(instance).__name__} is not a grpc.aio.ServerInterceptor: a grpc.aio server "
           "refuses other interceptors")
    expect(inspect.iscoroutinefunction(type(instance).intercept_service),
           "intercept_service must be `async def` on a grpc.aio server")

    async def trial_continuation(details: Any) -> Any:
        return _trial_handler()

    _not_solved_yet(lambda: run_in_fresh_loop(
        lambda: instance.intercept_service(trial_continuation, _TRIAL)))

    async def run() -> dict[str, list[str]]:
        server = await serve_aio(routeguide_pb2_grpc.add_RouteGuideServicer_to_server,
                                 _IdGuide(variable), name="check-8.6", interceptors=[instance])
        seen: dict[str, list[str]] = {}

        async def one(name: str, request_id: str | None) -> str:
            md = (("x-request-id", request_id),) if request_id else None
            if name == "GetFeature":
                call = stub.GetFeature(POINTS[0], metadata=md, timeout=TIMEOUT)
                await call
            elif name == "ListFeatures":
                call = stub.ListFeatures(SMALL, metadata=md, timeout=TIMEOUT)
                [_ async for _ in call]
            elif name == "RecordRoute":
                call = stub.RecordRoute(iter(POINTS), metadata=md, timeout=TIMEOUT)
                await call
            else:
                call = stub.RouteChat(iter(NOTES[:2]), metadata=md, timeout=TIMEOUT)
                [_ async for _ in call]
            return dict(await call.trailing_metadata()).get("x-seen-request-id", "")

        try:
            async with grpc.aio.insecure_channel(server.target) as channel:
                stub = routeguide_pb2_grpc.RouteGuideStub(channel)
                ids = [secrets.token_hex(6) for _ in range(2)]
                for name in METHODS:
                    seen[name] = list(await asyncio.gather(*(one(name, i) for i in ids)))
                    seen[name + " without id"] = list(await asyncio.gather(
                        one(name, None), one(name, None)))
                seen["sent"] = ids
        finally:
            await server.stop(None)
        return seen

    seen = run_in_fresh_loop(run)
    default = str(variable.get(None))
    for name in METHODS:
        got = seen[name]
        expect(got != [default, default], f"the {name} handler ({KIND[name]}) saw {default!r}, "
               "the variable's default: set the ContextVar in intercept_service and do not reset "
               "it before the handler runs")
        expect_equal(got, seen["sent"], f"request ids seen by two concurrent {name} handlers")
        unnamed = seen[name + " without id"]
        expect(default not in unnamed and "" not in unnamed,
               f"a {name} call without x-request-id reached its handler with {unnamed[0]!r}: "
               "make a fresh id when the client sent none")
        expect(unnamed[0] != unnamed[1], f"two {name} calls without x-request-id got the same "
               f"id {unnamed[0]!r}: make a fresh one per call")
    return ("on all four call types the handler saw its own call's x-request-id (two concurrent "
            "calls each theirs), and a fresh id when none was sent")


# --- 8.7 challenge: auth, then a rate limit per authenticated user ------------------

def _chain_calls(stub: Any, token: str | None, extra: tuple = (),
                 empty: bool = False) -> dict[str, Callable[[], Any]]:
    metadata = ((("authorization", f"Bearer {token}"),) if token else ()) + extra
    return _calls(stub, metadata, empty_streams=empty)


def _code_of(error: grpc.RpcError | None) -> str:
    return "OK" if error is None else error.code().name


@exercise(
    "8.7",
    "Challenge: who may call, and how often",
    notebook=LESSON,
    hint="Two jobs, two interceptors, and their order decides what a refused call costs. The "
    "limiter must count per user, so it needs to know who the caller is: what does the auth "
    "step know that the limiter does not, and how can it hand that on?",
    second_hint="An interceptor may call continuation with details of its own: the same method, "
    "other metadata (handler_call_details is a named tuple). Calling continuation also runs "
    "every interceptor after yours. Anything the client wrote can be a lie, including a key "
    "you plan to add yourself. And a user can hold several tokens.",
)
def auth_then_limit(guard: Callable) -> str:
    alice1, alice2, bob = (secrets.token_hex(8) for _ in range(3))
    tokens = {alice1: "alice", alice2: "alice", bob: "bob"}
    window = 1.0
    guide = Recorder()
    server = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, guide,
                   name="check-8.7", interceptors=list(guard(dict(tokens), 3, window)))
    claims_alice = (("x-client-id", "alice"), ("x-user", "alice"))
    with server, grpc.insecure_channel(server.target) as channel:
        stub = routeguide_pb2_grpc.RouteGuideStub(channel)
        for what, token in [("no token", None), ("an unknown token", secrets.token_hex(8))]:
            for name, call in _chain_calls(stub, token, claims_alice).items():
                expect_error_status(_outcome(call), grpc.StatusCode.UNAUTHENTICATED,
                                    f"{name} ({KIND[name]}) with {what}, claiming to be alice "
                                    "in other metadata")
        empty = _chain_calls(stub, None, empty=True)["RecordRoute"]
        expect_error_status(_outcome(empty), grpc.StatusCode.UNAUTHENTICATED,
                            "RecordRoute with an empty request stream and no token (the refusal "
                            "must not wait for a request message)")
        expect(not guide.calls, f"{guide.methods()} reached the servicer without a valid token")
        # alice: 3 calls with her two tokens, then the limit, whatever she claims to be.
        plan = [("GetFeature", alice1, ()), ("ListFeatures", alice2, ()),
                ("RecordRoute", alice1, ())]
        for name, token, extra in plan:
            got = _code_of(_outcome(_chain_calls(stub, token, extra)[name]))
            expect(got == "OK", f"alice's call {name} ({KIND[name]}) ended {got}, within her "
                   "limit of 3 calls: did refused, unauthenticated calls that claimed to be alice "
                   "count against her? Authenticate first, then count")
        over = [("RouteChat", alice2, (), "with her second token"),
                ("GetFeature", alice1, (("x-client-id", "carol"), ("x-user", "carol")),
                 "claiming to be carol in x-client-id and x-user metadata")]
        for name, token, extra, what in over:
            got = _code_of(_outcome(_chain_calls(stub, token, extra)[name]))
            expect(got == "RESOURCE_EXHAUSTED",
                   f"alice's 4th call in {window} s, {name} ({KIND[name]}) {what}, ended {got}: "
                   "count per authenticated user (the token's owner), not per token or per "
                   "what the client writes; over the limit is RESOURCE_EXHAUSTED")
        empty = _chain_calls(stub, alice1, empty=True)["RecordRoute"]
        expect_error_status(_outcome(empty), grpc.StatusCode.RESOURCE_EXHAUSTED,
                            "alice's RecordRoute with an empty stream over her limit")
        # bob claims to be alice: his own quota, and alice's is not his to spend.
        for name in ["GetFeature", "ListFeatures", "RouteChat"]:
            got = _code_of(_outcome(_chain_calls(stub, bob, claims_alice)[name]))
            expect(got == "OK", f"bob's call {name} ({KIND[name]}), sent with x-client-id: "
                   f"alice, ended {got}: bob has a limit of his own; the metadata a client "
                   "writes says nothing about who it is")
        got = _code_of(_outcome(_chain_calls(stub, bob)["RecordRoute"]))
        expect(got == "RESOURCE_EXHAUSTED", f"bob's 4th call ended {got}, expected "
               "RESOURCE_EXHAUSTED")
        reached = len(guide.calls)
        expect(reached == 6, f"{reached} calls reached the servicer, but only 6 were allowed "
               "(3 for alice, 3 for bob): a refused call must not reach it")
        time.sleep(window + 0.2)
        got = _code_of(_outcome(_chain_calls(stub, alice2)["GetFeature"]))
        expect(got == "OK", f"alice's call {window + 0.2:.1f} s after her last one ended {got}: "
               f"the limit counts calls in the last {window} s (the window argument), not "
               "forever")
    limited = serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, Recorder(),
                    name="check-8.7-concurrent", interceptors=list(guard({bob: "dave"}, 3, 30)))
    with limited, grpc.insecure_channel(limited.target) as channel:
        stub = routeguide_pb2_grpc.RouteGuideStub(channel)
        outcomes = concurrently(
            lambda index: _code_of(_outcome(_chain_calls(stub, bob)["GetFeature"])), 8,
            seconds=20, what="8 concurrent calls from one user")
    codes = sorted(str(outcome.value or outcome.error) for outcome in outcomes)
    expect(codes.count("OK") == 3, f"8 concurrent calls from one user with a limit of 3 ended "
           f"{codes}: exactly 3 may pass (guard the limiter's table with a lock)")
    return ("unauthenticated calls got UNAUTHENTICATED and counted against nobody; alice (two "
            "tokens) and bob each got 3 calls per window across all four call types whatever "
            "metadata they sent, then RESOURCE_EXHAUSTED; the window slid; 8 concurrent calls "
            "let exactly 3 through")
