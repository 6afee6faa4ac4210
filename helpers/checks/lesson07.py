"""Checks for lesson 07, asyncio.

A check is called from a notebook cell, while the kernel's event loop is busy
running that cell. So each check runs its async code with `asyncio.run` in a
thread of its own, on a fresh event loop, and gives up after a few seconds.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import random
import threading
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import grpc

from helpers import protos
from helpers.checks.core import (
    NBGRADER_PLACEHOLDER, Mismatch, describe_rpc_error, exercise, expect, expect_equal, within,
)
from helpers.checks.core import expect_error_status
from helpers.reference import INT32_MAX, INT32_MIN, calculator_pb2 as calc_pb2, calculator_pb2_grpc
from helpers.reference.routeguide import (
    AREA,
    RouteGuide as ReferenceGuide,
    make_features,
    routeguide_pb2,
)
from helpers.servers import serve_aio

LESSON = "07_asyncio"
TIMEOUT = 5  # seconds: the deadline of every call a check makes
T = TypeVar("T")
_ids = itertools.count(1)



def run_in_fresh_loop(make_coroutine: Callable[[], Awaitable[T]], seconds: float = 15) -> T:
    """Run `make_coroutine()` on a new event loop in a new thread; fail after `seconds`."""
    return within(seconds, lambda: asyncio.run(make_coroutine()),
                  "an await that never finishes? every call needs a timeout")


@asynccontextmanager
async def aio_stub_for(proto: str, service: str, servicer: Any) -> AsyncIterator[Any]:
    """Serve `servicer` on a fresh grpc.aio server; yield an async stub for it."""
    _, pb2_grpc = protos.load(proto)
    add_to_server = getattr(pb2_grpc, f"add_{service}Servicer_to_server")
    server = await serve_aio(add_to_server, servicer, name=f"check-aio-{service}-{next(_ids)}")
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            yield getattr(pb2_grpc, f"{service}Stub")(channel)
    finally:
        await server.stop(None)


async def expect_status_async(call: Awaitable, expected: grpc.StatusCode, what: str) -> None:
    """Await a call; fail unless it ends with `expected` and a non-empty message."""
    try:
        await call
    except grpc.RpcError as error:
        expect_error_status(error, expected, what)
        return
    expect_error_status(None, expected, what)


def _expect_async_methods(cls: Any, names: list[str], kind: Callable[[Any], bool],
                          word: str) -> None:
    for name in names:
        method = getattr(cls, name, None)
        expect(method is not None and kind(method),
               f"{name} is not an {word}: declare it with `async def`")


@exercise(
    "7.1",
    "An async unary servicer",
    notebook=LESSON,
    hint="Lesson 03's Add and Divide, as `async def`. In grpc.aio some context methods are "
    "coroutines: what happens to a coroutine you call without `await`?",
    second_hint="Without `await`, context.abort only makes a coroutine object and the method "
    "carries on. Both ends of int32 matter, for Add as in lesson 03.",
)
def async_unary(servicer: Any) -> str:
    cls = servicer if isinstance(servicer, type) else type(servicer)
    _expect_async_methods(cls, ["Add", "Divide"], inspect.iscoroutinefunction,
                          "async method (coroutine function)")

    async def run() -> None:
        instance = servicer() if isinstance(servicer, type) else servicer
        async with aio_stub_for("calculator", "Calculator", instance) as stub:
            pairs = [(2, 3), (-7, 4), (1000, -1000)]
            replies = await asyncio.gather(*(
                stub.Add(calc_pb2.AddRequest(a=a, b=b), timeout=TIMEOUT) for a, b in pairs))
            expect_equal([r.result for r in replies], [a + b for a, b in pairs],
                         "results of 3 concurrent Add calls")
            reply = await stub.Divide(calc_pb2.DivideRequest(a=7, b=2), timeout=TIMEOUT)
            expect_equal(reply.result, 3.5, "Divide(7, 2)")
            await expect_status_async(
                stub.Divide(calc_pb2.DivideRequest(a=1, b=0), timeout=TIMEOUT),
                grpc.StatusCode.INVALID_ARGUMENT, "Divide(1, 0)")
            await expect_status_async(
                stub.Add(calc_pb2.AddRequest(a=INT32_MAX, b=1), timeout=TIMEOUT),
                grpc.StatusCode.INVALID_ARGUMENT, "Add(INT32_MAX, 1)")
            await expect_status_async(
                stub.Add(calc_pb2.AddRequest(a=INT32_MIN, b=-1), timeout=TIMEOUT),
                grpc.StatusCode.INVALID_ARGUMENT, "Add(INT32_MIN, -1)")
            for a, b in _int32_pairs(71, 40):
                await _expect_like_reference(stub.Add, calc_pb2.AddRequest(a=a, b=b), a + b,
                                             f"Add({a}, {b})")
                if b:
                    reply = await stub.Divide(calc_pb2.DivideRequest(a=a, b=b), timeout=TIMEOUT)
                    expect_equal(reply.result, a / b, f"Divide({a}, {b})")

    run_in_fresh_loop(run)
    return ("async Add and Divide answer right over grpc.aio on 40 generated int32 pairs (both "
            "limits); bad input gets INVALID_ARGUMENT")


def _int32_pairs(seed: int, count: int) -> list[tuple[int, int]]:
    """`count` pairs of int32 values, from a seeded generator: edges, small and large values."""
    draw = random.Random(seed)
    edges = [INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX, -(2**16), 2**16]

    def one() -> int:
        kind = draw.random()
        if kind < 0.4:
            return draw.choice(edges)
        if kind < 0.7:
            return draw.randint(-1000, 1000)
        return draw.randint(INT32_MIN, INT32_MAX)

    return [(one(), one()) for _ in range(count)]


async def _expect_like_reference(rpc: Callable, request: Any, exact: int, what: str) -> None:
    """The call returns `exact` when it fits in int32, else ends with INVALID_ARGUMENT."""
    fits = INT32_MIN <= exact <= INT32_MAX
    try:
        reply = await rpc(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        if fits:
            raise Mismatch(f"{what} ended with {describe_rpc_error(error)}, expected {exact}") \
                from None
        expect(error.code() == grpc.StatusCode.INVALID_ARGUMENT,
               f"{what} (outside int32) ended with {describe_rpc_error(error)}, expected "
               "INVALID_ARGUMENT: check both limits of int32")
        return
    expect(fits, f"{what} returned {reply.result}, but {exact} does not fit in int32: refuse "
           "it with INVALID_ARGUMENT (both limits)")
    expect_equal(reply.result, exact, what)


@exercise(
    "7.2",
    "An async server stream",
    notebook=LESSON,
    hint="An async generator is `async def` with `yield`: the shape of lesson 06's ListFeatures, "
    "with `await` in front of anything that is a coroutine (context.abort is one).",
    second_hint="A rectangle can be present and still wrong (a corner off the globe): "
    "rectangle_problem says so. Features on an edge are inside.",
)
def async_stream(servicer: Any) -> str:
    cls = servicer if isinstance(servicer, type) else type(servicer)
    method = getattr(cls, "ListFeatures", None)
    expect(inspect.isasyncgenfunction(method) or inspect.iscoroutinefunction(method),
           "ListFeatures is a plain `def` (a sync generator): a grpc.aio server needs "
           "`async def` with `yield` (or `await context.write(...)`)")
    features = make_features(count=50, seed=72)
    reference = ReferenceGuide(features)
    lo = routeguide_pb2.Point(latitude=401_000_000, longitude=-749_000_000)
    hi = routeguide_pb2.Point(latitude=406_000_000, longitude=-743_000_000)
    rectangles = [routeguide_pb2.Rectangle(lo=lo, hi=hi), routeguide_pb2.Rectangle(lo=hi, hi=lo),
                  AREA]

    async def run() -> None:
        instance = servicer(features) if isinstance(servicer, type) else servicer
        async with aio_stub_for("routeguide", "RouteGuide", instance) as stub:
            for rectangle in rectangles:
                expected = sorted(f.name for f in reference.ListFeatures(rectangle, None))
                got = sorted([f.name async for f in stub.ListFeatures(rectangle,
                                                                       timeout=TIMEOUT)])
                expect(got == expected, f"expected {len(expected)} features in a rectangle, "
                       f"got {len(got)}")

            async def drain() -> None:
                async for _ in stub.ListFeatures(routeguide_pb2.Rectangle(lo=lo),
                                                 timeout=TIMEOUT):
                    pass

            await expect_status_async(drain(), grpc.StatusCode.INVALID_ARGUMENT,
                                      "ListFeatures with no hi corner")

            async def off_the_globe() -> None:
                far = routeguide_pb2.Point(latitude=950_000_000, longitude=-743_000_000)
                async for _ in stub.ListFeatures(routeguide_pb2.Rectangle(lo=lo, hi=far),
                                                 timeout=TIMEOUT):
                    pass

            await expect_status_async(off_the_globe(), grpc.StatusCode.INVALID_ARGUMENT,
                                      "ListFeatures to a latitude of 95 degrees")
            for rectangle in _edge_rectangles(features, 73, 30):
                expected = sorted(f.name for f in reference.ListFeatures(rectangle, None))
                got = sorted([f.name async for f in stub.ListFeatures(rectangle,
                                                                       timeout=TIMEOUT)])
                expect(got == expected, f"the rectangle from ({rectangle.lo.latitude}, "
                       f"{rectangle.lo.longitude}) to ({rectangle.hi.latitude}, "
                       f"{rectangle.hi.longitude}), whose corners lie on features, should "
                       f"stream {len(expected)} features, got {len(got)}: edges are inside")

    run_in_fresh_loop(run)
    return (f"{len(rectangles) + 30} rectangles (30 with corners on features) streamed the "
            "right features from an async generator; a missing corner and one off the globe "
            "get INVALID_ARGUMENT")


def _edge_rectangles(features: list, seed: int, count: int) -> list:
    """Rectangles whose corners lie on features' coordinates, in either order."""
    draw = random.Random(seed)
    points = [f.location for f in features]

    def corner() -> Any:
        return routeguide_pb2.Point(latitude=draw.choice(points).latitude,
                                    longitude=draw.choice(points).longitude)

    return [routeguide_pb2.Rectangle(lo=corner(), hi=corner()) for _ in range(count)]


class _CountingAdder(calculator_pb2_grpc.CalculatorServicer):
    """Add that records how many calls were in flight at once.

    A call takes longer the smaller its `a` (60 ms plus 10 ms per step below 12), so calls
    finish in another order than they started: results must be put back in order.
    """

    def __init__(self) -> None:
        self.in_flight = self.most = self.calls = 0
        self.without_deadline = 0

    async def Add(self, request, context):
        self.calls += 1
        if context.time_remaining() is None:
            self.without_deadline += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.06 + 0.01 * max(0, 12 - request.a))
        finally:
            self.in_flight -= 1
        return calc_pb2.AddReply(result=request.a + request.b)


class _LateFailingAdder(calculator_pb2_grpc.CalculatorServicer):
    """Add answers at once, except a == 13, which fails after 0.3 s (the other calls are
    over by then, so nothing is left running when add_all raises)."""

    async def Add(self, request, context):
        if request.a == 13:
            await asyncio.sleep(0.3)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "13 is unlucky")
        return calc_pb2.AddReply(result=request.a + request.b)


@exercise(
    "7.3",
    "Many calls, a bounded number in flight",
    notebook=LESSON,
    hint="Two tools from the cells above: asyncio.gather runs coroutines together and keeps "
    "their order; an asyncio.Semaphore lets only so many past `async with`.",
    second_hint="One semaphore for the whole add_all, entered around each call (not around "
    "the gather). Which function keeps the order of its arguments, and what does it do when "
    "one of them fails?",
)
def bounded_gather(add_all: Callable[..., Awaitable[list[int]]]) -> str:
    expect(inspect.iscoroutinefunction(add_all),
           "add_all is not an async function: declare it with `async def`")
    pairs = [(i, (7 * i) % 12 * 10 - 55) for i in range(12)]  # sums neither rise nor fall

    async def run() -> None:
        for limit in (3, 5):
            adder = _CountingAdder()
            async with aio_stub_for("calculator", "Calculator", adder) as stub:
                got = await asyncio.wait_for(add_all(stub, pairs, limit), timeout=TIMEOUT)
            expect(list(got) == [a + b for a, b in pairs],
                   f"add_all(stub, 12 pairs, limit={limit}) returned {list(got)}, expected "
                   f"{[a + b for a, b in pairs]}"
                   + (": the results are in the order the calls finished, not the order of "
                      "pairs" if sorted(got) == sorted(a + b for a, b in pairs) else ""))
            expect_equal(adder.calls, len(pairs), f"number of Add calls with limit={limit}")
            expect(adder.most <= limit, f"with limit={limit}, {adder.most} calls were in "
                   "flight at once: hold an asyncio.Semaphore(limit) around each call")
            expect(adder.most > 1, f"with limit={limit}, the calls ran one at a time: start "
                   "them together with asyncio.gather")
            expect(adder.most == limit, f"with limit={limit}, at most {adder.most} calls were "
                   "in flight, never the limit: use the `limit` argument, not a fixed number")
            expect(adder.without_deadline == 0,
                   f"{adder.without_deadline} calls had no deadline: pass timeout=")
        async with aio_stub_for("calculator", "Calculator", _LateFailingAdder()) as stub:
            failing = [(1, 2), (13, 0), (3, 4)]
            try:
                got = await asyncio.wait_for(add_all(stub, failing, 2), timeout=TIMEOUT)
            except grpc.RpcError:
                pass  # the failed call's own error: right
            else:
                raise Mismatch(f"add_all(stub, {failing}, 2) returned {list(got)!r} although one "
                               "call failed: let the call's error reach the caller, not come "
                               "back as an item of the list")

    run_in_fresh_loop(run)
    return ("results in the order of pairs (not of completion); at most `limit` calls in "
            "flight, and the limit reached; a failed call raised its error")


@exercise(
    "7.4",
    "Blocking work off the event loop",
    notebook=LESSON,
    hint="The event loop must not run self.work itself: hand the function to a worker thread "
    "and await the result (the markdown above names two ways).",
    second_hint="Give the worker thread the function and its arguments, not the result of "
    "calling it (that would run it right here, on the loop). The product still has to fit in "
    "int32, at both ends.",
)
def off_the_loop(servicer: Any) -> str:
    expect(isinstance(servicer, type), "pass the class (it is built with work=...), "
           "not an instance")
    _expect_async_methods(servicer, ["Multiply"], inspect.iscoroutinefunction,
                          "async method (coroutine function)")
    seen: dict[str, Any] = {"threads": set(), "in_flight": 0, "most": 0}
    lock = threading.Lock()

    def work(a: int, b: int) -> int:
        with lock:
            seen["threads"].add(threading.get_ident())
            seen["in_flight"] += 1
            seen["most"] = max(seen["most"], seen["in_flight"])
        time.sleep(0.1)  # a blocking call, like requests.get or a sync database driver
        with lock:
            seen["in_flight"] -= 1
        return a * b

    async def run() -> tuple[int, list]:
        loop_thread = threading.get_ident()
        async with aio_stub_for("calculator", "Calculator", servicer(work=work)) as stub:
            replies = await asyncio.gather(*(
                stub.Multiply(calc_pb2.MultiplyRequest(a=i, b=7), timeout=TIMEOUT)
                for i in range(4)), return_exceptions=True)
            try:
                await stub.Multiply(calc_pb2.MultiplyRequest(a=2**20, b=2**20), timeout=TIMEOUT)
            except grpc.RpcError as error:
                overflow = error
            else:
                overflow = None
        return loop_thread, [*replies, overflow]

    loop_thread, replies = run_in_fresh_loop(run)
    *replies, overflow = replies
    for reply in replies:
        if isinstance(reply, grpc.RpcError) and ("not solved yet" in (reply.details() or "")
                                                or NBGRADER_PLACEHOLDER.search(reply.details() or "")):
            raise reply
    expect(seen["threads"], "Multiply never called self.work")
    expect(loop_thread not in seen["threads"], "the blocking work ran on the event loop's "
           "thread, so every other call waited for it: hand the function itself (not its "
           "result) to await asyncio.to_thread(self.work, a, b)")
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    expect_equal([r.result for r in replies], [i * 7 for i in range(4)],
                 "results of 4 concurrent Multiply calls")
    expect(seen["most"] > 1, "the 4 calls' blocking work ran one at a time: run it with "
           "asyncio.to_thread (or loop.run_in_executor with a pool of several threads)")
    expect_error_status(overflow, grpc.StatusCode.INVALID_ARGUMENT,
                        "Multiply(2**20, 2**20), whose product does not fit in int32 "
                        "(check it with in_int32)")

    async def both_limits() -> None:
        async with aio_stub_for("calculator", "Calculator", servicer(work=work)) as stub:
            await _expect_like_reference(stub.Multiply, calc_pb2.MultiplyRequest(a=-(2**20),
                                         b=2**20), -(2**40), "Multiply(-2**20, 2**20)")
            await _expect_like_reference(stub.Multiply, calc_pb2.MultiplyRequest(a=-(2**16),
                                         b=2**15), INT32_MIN, "Multiply(-2**16, 2**15)")

    run_in_fresh_loop(both_limits)
    return ("the blocking work ran in worker threads, overlapping, while the loop stayed free; "
            "overflows at both ends of int32 are refused")


class _Replica(calculator_pb2_grpc.CalculatorServicer):
    """One of several servers running the same calculator: slow, failing, or stuck."""

    def __init__(self, delay: float, code: grpc.StatusCode | None = None) -> None:
        self.delay, self.code = delay, code
        self.started: list[float] = []
        self.ended: list[str] = []  # "answered", "failed" or "cancelled", per call
        self.seen_ended: list[str] = []  # `ended` before the check stopped the server

    async def Add(self, request, context):
        self.started.append(time.monotonic())
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            raise
        if self.code is not None:
            self.ended.append("failed")
            await context.abort(self.code, f"this replica fails with {self.code.name}")
        self.ended.append("answered")
        return calc_pb2.AddReply(result=request.a + request.b)


async def _race(fastest_add: Callable, replicas: list[_Replica], a: int, b: int,
                timeout: float) -> tuple[Any, float]:
    """Serve `replicas`, run the learner's fastest_add over their targets: (outcome, seconds)."""
    servers = [await serve_aio(calculator_pb2_grpc.add_CalculatorServicer_to_server, replica,
                               name=f"check-7.5-{next(_ids)}") for replica in replicas]
    try:
        start = time.monotonic()
        try:
            outcome: Any = await asyncio.wait_for(
                fastest_add([server.target for server in servers], a, b, timeout), timeout + 3)
        except asyncio.TimeoutError:
            raise Mismatch(f"fastest_add was still waiting {timeout + 3:.1f} s after it started, "
                           f"with timeout={timeout}: every call needs the deadline") from None
        except grpc.RpcError as error:
            outcome = error
        took = time.monotonic() - start
        await asyncio.sleep(0.3)  # let the servers see what became of the other calls
        for replica in replicas:  # as they were before stopping the servers cancels the rest
            replica.seen_ended = list(replica.ended)
        return outcome, took
    finally:
        for server in servers:
            await server.stop(None)


@exercise(
    "7.5",
    "Challenge: the fastest of several replicas",
    notebook=LESSON,
    hint="Start every call before waiting for any; then wait for the next one to finish, "
    "again and again, until one has succeeded or none is left.",
    second_hint="asyncio.wait with return_when=FIRST_COMPLETED hands back what is done and what "
    "is still pending; a grpc.aio call object has cancel(). A call that failed is not an "
    "answer.",
)
def fastest_replica(fastest_add: Callable[..., Awaitable[int]]) -> str:
    expect(inspect.iscoroutinefunction(fastest_add),
           "fastest_add is not an async function: declare it with `async def`")
    failed = grpc.StatusCode.UNAVAILABLE

    async def run() -> None:
        slow, quick, middle = _Replica(0.8), _Replica(0.05), _Replica(0.5)
        outcome, took = await _race(fastest_add, [slow, quick, middle], 20, 22, 3)
        if isinstance(outcome, grpc.RpcError):
            raise Mismatch(f"with replicas answering after 0.8, 0.05 and 0.5 s, fastest_add "
                           f"raised {describe_rpc_error(outcome)} instead of returning 42")
        expect_equal(outcome, 42, "fastest_add(targets, 20, 22, timeout=3)")
        starts = [replica.started[0] for replica in (slow, quick, middle) if replica.started]
        expect(len(starts) == 3, f"only {len(starts)} of the 3 replicas were called: ask every "
               "replica at once, not one after another")
        expect(max(starts) - min(starts) < 0.2, f"the last replica was called "
               f"{max(starts) - min(starts):.2f} s after the first: ask every replica at once, "
               "not one after another")
        expect(took < 0.45, f"fastest_add returned after {took:.2f} s, though a replica answered "
               "after 0.05 s: return as soon as one call succeeds, without waiting for the others")
        losers = [r.seen_ended for r in (slow, middle)]
        expect(all(ended == ["cancelled"] for ended in losers),
               f"the two slower replicas' calls ended {losers} on their servers: once a reply "
               "is in, cancel the calls still running so their servers stop working for nobody")

        first_fails = [_Replica(0.0, failed), _Replica(0.15), _Replica(0.05, failed)]
        outcome, _ = await _race(fastest_add, first_fails, 1, 2, 3)
        expect(outcome == 3, f"with two replicas failing at once and one answering after 0.15 s, "
               f"fastest_add gave {_shown_outcome(outcome)}: a failed call is not an answer; "
               "keep waiting while another call may still succeed")

        all_fail = [_Replica(0.0, grpc.StatusCode.INVALID_ARGUMENT), _Replica(0.05, failed),
                    _Replica(0.1, grpc.StatusCode.RESOURCE_EXHAUSTED)]
        outcome, _ = await _race(fastest_add, all_fail, 1, 2, 3)
        expect(isinstance(outcome, grpc.RpcError),
               f"when every replica failed, fastest_add gave {_shown_outcome(outcome)}: raise "
               "the RpcError of one of the failed calls")

        stuck = [_Replica(30), _Replica(30)]
        outcome, took = await _race(fastest_add, stuck, 1, 2, 0.3)
        expect(isinstance(outcome, grpc.RpcError)
               and outcome.code() == grpc.StatusCode.DEADLINE_EXCEEDED and took < 1.5,
               f"with replicas that never answer and timeout=0.3, fastest_add gave "
               f"{_shown_outcome(outcome)} after {took:.1f} s: give every call the deadline, "
               "and raise its DEADLINE_EXCEEDED")

    run_in_fresh_loop(run, seconds=30)
    return ("all replicas asked at once; the first success returned within 0.45 s and the "
            "slower calls cancelled on their servers; failures skipped while another may "
            "succeed; all failing or stuck ended in an RpcError, the stuck ones at the deadline")


def _shown_outcome(outcome: Any) -> str:
    if isinstance(outcome, grpc.RpcError):
        return f"the error {describe_rpc_error(outcome)}"
    return f"{outcome!r}"
