"""Lesson 07 (asyncio): the checks of exercises 7.1-7.4.

Each check passes on a correct answer (and on correct-but-different ones) and fails,
naming the mistake, on the plausible wrong answers in WRONG_ANSWERS.
"""

from __future__ import annotations

import asyncio
import contextlib
import concurrent.futures

import grpc
import pytest
from conftest import WrongAnswer, fails, passes, rejects

from helpers.reference import calculator_pb2, calculator_pb2_grpc
from helpers.reference.routeguide import (
    RouteGuide, in_rectangle, rectangle_problem, routeguide_pb2_grpc,
)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # never-awaited aborts


# --- 7.1: an async unary servicer ---------------------------------------------------

async def in_int32(value: int, context, operation: str) -> int:
    if not -(2**31) <= value <= 2**31 - 1:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{operation} overflows int32")
    return value


class AsyncCalculator(calculator_pb2_grpc.CalculatorServicer):
    async def Add(self, request, context):
        return calculator_pb2.AddReply(result=await in_int32(request.a + request.b, context, "Add"))

    async def Divide(self, request, context):
        if request.b == 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot divide by zero")
        return calculator_pb2.DivideReply(result=request.a / request.b)


class ForgetsAwait(AsyncCalculator):
    async def Divide(self, request, context):
        if request.b == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot divide by zero")  # noqa
        return calculator_pb2.DivideReply(result=request.a / request.b)


class SyncMethods(calculator_pb2_grpc.CalculatorServicer):
    def Add(self, request, context):
        return calculator_pb2.AddReply(result=request.a + request.b)

    def Divide(self, request, context):
        return calculator_pb2.DivideReply(result=request.a / request.b)


class IntegerDivision(AsyncCalculator):
    async def Divide(self, request, context):
        if request.b == 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot divide by zero")
        return calculator_pb2.DivideReply(result=request.a // request.b)


class NoOverflowCheck(AsyncCalculator):
    async def Add(self, request, context):
        return calculator_pb2.AddReply(result=request.a + request.b)


class WrongCodeForZero(AsyncCalculator):
    async def Divide(self, request, context):
        if request.b == 0:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "cannot divide by zero")
        return calculator_pb2.DivideReply(result=request.a / request.b)


class UnsolvedAsync(AsyncCalculator):
    async def Divide(self, request, context):
        raise NotImplementedError("Exercise 7.1: not solved yet")


# --- 7.2: an async server stream ----------------------------------------------------

class AsyncGuide(routeguide_pb2_grpc.RouteGuideServicer):
    def __init__(self, features):
        self.features = list(features)

    async def ListFeatures(self, request, context):
        problem = rectangle_problem(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature


class WritingGuide(AsyncGuide):
    """Correct but different: a coroutine that sends with `await context.write(...)`."""

    async def ListFeatures(self, request, context):
        problem = rectangle_problem(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                await context.write(feature)


class AsyncGuideWithoutValidation(AsyncGuide):
    async def ListFeatures(self, request, context):
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature


class AsyncGuideForgetsAwait(AsyncGuide):
    async def ListFeatures(self, request, context):
        problem = rectangle_problem(request)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)  # noqa
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature


class AsyncGuideOrderedCorners(AsyncGuide):
    async def ListFeatures(self, request, context):
        problem = rectangle_problem(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        lo, hi = request.lo, request.hi
        for feature in self.features:
            p = feature.location
            if (lo.latitude <= p.latitude <= hi.latitude
                    and lo.longitude <= p.longitude <= hi.longitude):
                yield feature


class AsyncGuideUnsolved(AsyncGuide):
    """What the lesson holds before the exercise is solved: a coroutine that raises."""

    async def ListFeatures(self, request, context):
        raise NotImplementedError("Exercise 7.2: not solved yet")


# --- 7.3: bounded gather -------------------------------------------------------------

def _add(a: int, b: int):
    return calculator_pb2.AddRequest(a=a, b=b)


async def add_all(stub, pairs, limit):
    gate = asyncio.Semaphore(limit)

    async def one(a, b):
        async with gate:
            return (await stub.Add(_add(a, b), timeout=5)).result

    return await asyncio.gather(*(one(a, b) for a, b in pairs))


async def add_all_with_tasks(stub, pairs, limit):
    """Correct but different: tasks and a semaphore, results collected in order."""
    gate = asyncio.Semaphore(limit)

    async def one(a, b):
        async with gate:
            return (await stub.Add(_add(a, b), timeout=5)).result

    tasks = [asyncio.create_task(one(a, b)) for a, b in pairs]
    return [await task for task in tasks]


async def add_all_unbounded(stub, pairs, limit):
    replies = await asyncio.gather(*(stub.Add(_add(a, b), timeout=5) for a, b in pairs))
    return [reply.result for reply in replies]


async def add_all_one_by_one(stub, pairs, limit):
    return [(await stub.Add(_add(a, b), timeout=5)).result for a, b in pairs]


async def add_all_without_deadline(stub, pairs, limit):
    gate = asyncio.Semaphore(limit)

    async def one(a, b):
        async with gate:
            return (await stub.Add(_add(a, b))).result

    return await asyncio.gather(*(one(a, b) for a, b in pairs))


async def add_all_fixed_limit(stub, pairs, limit):
    gate = asyncio.Semaphore(3)  # the limit of the first test run, hard-coded

    async def one(a, b):
        async with gate:
            return (await stub.Add(_add(a, b), timeout=5)).result

    return await asyncio.gather(*(one(a, b) for a, b in pairs))


async def add_all_as_completed(stub, pairs, limit):
    gate = asyncio.Semaphore(limit)

    async def one(a, b):
        async with gate:
            return (await stub.Add(_add(a, b), timeout=5)).result

    return [await done for done in asyncio.as_completed([one(a, b) for a, b in pairs])]


async def add_all_semaphore_per_call(stub, pairs, limit):
    async def one(a, b):
        async with asyncio.Semaphore(limit):  # a new gate for every call: no bound at all
            return (await stub.Add(_add(a, b), timeout=5)).result

    return await asyncio.gather(*(one(a, b) for a, b in pairs))


def add_all_sync(stub, pairs, limit):
    raise AssertionError("never called: the check refuses a plain def")


async def add_all_unsolved(stub, pairs, limit):
    raise NotImplementedError("Exercise 7.3: not solved yet")


# --- 7.4: blocking work off the loop ------------------------------------------------

class Offloading(AsyncCalculator):
    def __init__(self, work):
        self.work = work

    async def Multiply(self, request, context):
        product = await asyncio.to_thread(self.work, request.a, request.b)
        return calculator_pb2.MultiplyReply(result=await in_int32(product, context, "Multiply"))


class OffloadingWithExecutor(Offloading):
    """Correct but different: loop.run_in_executor with a pool of its own."""

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)

    async def Multiply(self, request, context):
        loop = asyncio.get_running_loop()
        product = await loop.run_in_executor(self.pool, self.work, request.a, request.b)
        return calculator_pb2.MultiplyReply(result=await in_int32(product, context, "Multiply"))


class Blocking(Offloading):
    async def Multiply(self, request, context):
        product = self.work(request.a, request.b)
        return calculator_pb2.MultiplyReply(result=await in_int32(product, context, "Multiply"))


class CallsWorkFirst(Offloading):
    """Calls the function on the loop and hands its result to to_thread."""

    async def Multiply(self, request, context):
        product = await asyncio.to_thread(self.work(request.a, request.b))
        return calculator_pb2.MultiplyReply(result=await in_int32(product, context, "Multiply"))


class OneThreadAtATime(Offloading):
    """Offloads, but lets only one call's work run at a time."""

    async def Multiply(self, request, context):
        if not hasattr(self, "gate"):
            self.gate = asyncio.Lock()
        async with self.gate:
            product = await asyncio.to_thread(self.work, request.a, request.b)
        return calculator_pb2.MultiplyReply(result=await in_int32(product, context, "Multiply"))


class OffloadsWithoutRangeCheck(Offloading):
    async def Multiply(self, request, context):
        product = await asyncio.to_thread(self.work, request.a, request.b)
        return calculator_pb2.MultiplyReply(result=product)


class UnsolvedOffloading(Offloading):
    async def Multiply(self, request, context):
        raise NotImplementedError("Exercise 7.4: not solved yet")


class UpperLimitOnly(AsyncCalculator):
    async def Add(self, request, context):
        value = request.a + request.b
        if value > 2**31 - 1:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Add overflows int32")
        return calculator_pb2.AddReply(result=value)


class EdgesExcludedAsync(AsyncGuide):
    async def ListFeatures(self, request, context):
        problem = rectangle_problem(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        lo, hi = request.lo, request.hi
        south, north = sorted((lo.latitude, hi.latitude))
        west, east = sorted((lo.longitude, hi.longitude))
        for feature in self.features:
            where = feature.location
            if south < where.latitude < north and west < where.longitude < east:
                yield feature


class HasFieldOnly(AsyncGuide):
    """Checks that both corners are there, not that they are on the globe."""

    async def ListFeatures(self, request, context):
        if not (request.HasField("lo") and request.HasField("hi")):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a corner is missing")
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature


async def add_all_completion_sorted(stub, pairs, limit):
    gate = asyncio.Semaphore(limit)

    async def one(a, b):
        async with gate:
            return (await stub.Add(_add(a, b), timeout=5)).result

    results = []
    for next_done in asyncio.as_completed([one(a, b) for a, b in pairs]):
        results.append(await next_done)
    return sorted(results)


async def add_all_return_exceptions(stub, pairs, limit):
    gate = asyncio.Semaphore(limit)

    async def one(a, b):
        async with gate:
            return (await stub.Add(_add(a, b), timeout=5)).result

    return await asyncio.gather(*(one(a, b) for a, b in pairs), return_exceptions=True)


class OffloadsUpperLimitOnly(Offloading):
    async def Multiply(self, request, context):
        product = await asyncio.to_thread(self.work, request.a, request.b)
        if product > 2**31 - 1:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Multiply overflows int32")
        return calculator_pb2.MultiplyReply(result=product)



# --- 7.5: the fastest of several replicas ---------------------------------------------------

async def fastest_add(targets, a, b, timeout):
    async with contextlib.AsyncExitStack() as stack:
        calls = []
        for target in targets:
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(target))
            calls.append(calculator_pb2_grpc.CalculatorStub(channel).Add(_add(a, b), timeout=timeout))
        pending = {asyncio.ensure_future(call): call for call in calls}
        error = None
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    del pending[task]
                    if task.exception() is None:
                        return task.result().result
                    error = task.exception()
            raise error
        finally:
            for call in pending.values():
                call.cancel()


async def fastest_add_as_completed(targets, a, b, timeout):
    """Correct too: as_completed over tasks, and the tasks cancelled (which cancels the calls)."""
    channels = [grpc.aio.insecure_channel(target) for target in targets]
    tasks = [asyncio.ensure_future(calculator_pb2_grpc.CalculatorStub(c).Add(_add(a, b),
                                                                            timeout=timeout))
             for c in channels]
    try:
        error = None
        for next_done in asyncio.as_completed(tasks):
            try:
                return (await next_done).result
            except grpc.RpcError as failed:
                error = failed
        raise error
    finally:
        for task in tasks:
            task.cancel()
        for channel in channels:
            await channel.close()


async def fastest_one_by_one(targets, a, b, timeout):
    error = None
    for target in targets:
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                return (await calculator_pb2_grpc.CalculatorStub(channel).Add(
                    _add(a, b), timeout=timeout)).result
            except grpc.RpcError as failed:
                error = failed
    raise error


async def fastest_gather_all(targets, a, b, timeout):
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    try:
        replies = await asyncio.gather(*(calculator_pb2_grpc.CalculatorStub(c).Add(
            _add(a, b), timeout=timeout) for c in channels), return_exceptions=True)
    finally:
        for channel in channels:
            await channel.close()
    for reply in replies:
        if not isinstance(reply, BaseException):
            return reply.result
    raise replies[0]


async def fastest_first_done_even_failed(targets, a, b, timeout):
    async with contextlib.AsyncExitStack() as stack:
        tasks = []
        for target in targets:
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(target))
            tasks.append(asyncio.ensure_future(calculator_pb2_grpc.CalculatorStub(channel).Add(
                _add(a, b), timeout=timeout)))
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return done.pop().result().result


_NEVER_CLOSED: list = []  # the channels fastest_never_cancels leaves open, as a leak would


async def fastest_never_cancels(targets, a, b, timeout):
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    _NEVER_CLOSED.extend(channels)  # kept alive: a garbage-collected channel would cancel its calls
    tasks = [asyncio.ensure_future(calculator_pb2_grpc.CalculatorStub(c).Add(_add(a, b),
                                                                            timeout=timeout))
             for c in channels]
    error = None
    for next_done in asyncio.as_completed(tasks):
        try:
            return (await next_done).result
        except grpc.RpcError as failed:
            error = failed
    raise error


async def fastest_unsolved(targets, a, b, timeout):
    raise NotImplementedError("Exercise 7.5: not solved yet")


async def fastest_without_deadline(targets, a, b, timeout):
    return await fastest_add(targets, a, b, None)


WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("7.1", "context.abort without await", (ForgetsAwait,), "UNKNOWN"),
    WrongAnswer("7.1", "plain def methods", (SyncMethods,), "async def"),
    WrongAnswer("7.1", "integer division", (IntegerDivision,), "Divide(7, 2)"),
    WrongAnswer("7.1", "no int32 range check", (NoOverflowCheck,), "Add(INT32_MAX, 1)"),
    WrongAnswer("7.1", "FAILED_PRECONDITION for a zero divisor", (WrongCodeForZero,),
                "expected INVALID_ARGUMENT"),
    WrongAnswer("7.2", "no validation of the rectangle", (AsyncGuideWithoutValidation,),
                "INVALID_ARGUMENT"),
    WrongAnswer("7.2", "context.abort without await", (AsyncGuideForgetsAwait,),
                "succeeded, expected it to fail with INVALID_ARGUMENT"),
    WrongAnswer("7.2", "lesson 06's sync generator", (RouteGuide,), "plain `def`"),
    WrongAnswer("7.2", "assumes lo is the south-west corner", (AsyncGuideOrderedCorners,),
                "features in a rectangle"),
    WrongAnswer("7.3", "no bound on calls in flight", (add_all_unbounded,), "Semaphore"),
    WrongAnswer("7.3", "awaits the calls one by one", (add_all_one_by_one,), "one at a time"),
    WrongAnswer("7.3", "calls without a deadline", (add_all_without_deadline,), "no deadline"),
    WrongAnswer("7.3", "a hard-coded limit", (add_all_fixed_limit,), "the `limit` argument"),
    WrongAnswer("7.3", "results in completion order", (add_all_as_completed,),
                "the order the calls finished"),
    WrongAnswer("7.3", "a new Semaphore in every call", (add_all_semaphore_per_call,),
                "Semaphore"),
    WrongAnswer("7.3", "a plain def", (add_all_sync,), "async def"),
    WrongAnswer("7.4", "blocking work on the loop", (Blocking,), "event loop's thread"),
    WrongAnswer("7.4", "calls work first, hands its result to to_thread", (CallsWorkFirst,),
                "not its result"),
    WrongAnswer("7.4", "one call's work at a time", (OneThreadAtATime,), "one at a time"),
    WrongAnswer("7.4", "no int32 range check on the product", (OffloadsWithoutRangeCheck,),
                "in_int32"),
    WrongAnswer("7.5", "asks the replicas one after another", (fastest_one_by_one,),
                "ask every replica at once"),
    WrongAnswer("7.5", "gathers every reply before answering", (fastest_gather_all,),
                "return as soon as one call succeeds"),
    WrongAnswer("7.5", "takes the first call to finish, even a failed one",
                (fastest_first_done_even_failed,), "a failed call is not an answer"),
    WrongAnswer("7.5", "never cancels the slower calls", (fastest_never_cancels,),
                "cancel the calls still running"),
    WrongAnswer("7.5", "no deadline on the calls", (fastest_without_deadline,),
                "every call needs the deadline"),
    WrongAnswer("7.1", "overflow checked at the upper limit only", (UpperLimitOnly,),
                "Add(INT32_MIN, -1) ended with UNKNOWN"),
    WrongAnswer("7.2", "edges excluded", (EdgesExcludedAsync,), "edges are inside"),
    WrongAnswer("7.2", "only HasField checked: a corner off the globe passes", (HasFieldOnly,),
                "ListFeatures to a latitude of 95 degrees"),
    WrongAnswer("7.3", "completion order, then sorted()", (add_all_completion_sorted,),
                "returned"),
    WrongAnswer("7.3", "return_exceptions=True: an error comes back as an item",
                (add_all_return_exceptions,), "not come back as an item of the list"),
    WrongAnswer("7.4", "the product checked at the upper limit only", (OffloadsUpperLimitOnly,),
                "Multiply(-2**20, 2**20)"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("7.1", AsyncCalculator), ("7.2", AsyncGuide), ("7.2", WritingGuide), ("7.3", add_all),
    ("7.3", add_all_with_tasks), ("7.4", Offloading), ("7.4", OffloadingWithExecutor),
    ("7.5", fastest_add), ("7.5", fastest_add_as_completed),
], ids=lambda value: getattr(value, "__name__", value))
def test_right_answers_pass(exercise_id: str, answer, capsys) -> None:
    passes(capsys, exercise_id, answer)


@pytest.mark.parametrize("exercise_id, answer", [
    ("7.1", UnsolvedAsync), ("7.2", AsyncGuideUnsolved), ("7.3", add_all_unsolved),
    ("7.4", UnsolvedOffloading), ("7.5", fastest_unsolved),
])
def test_unsolved_answers_say_not_solved(exercise_id: str, answer, capsys) -> None:
    out = fails(capsys, exercise_id, answer)
    assert "not solved yet" in out
    assert "async def" not in out.splitlines()[0]  # the learner's code already is async


def test_offloading_wants_the_class(capsys) -> None:
    assert "pass the class" in fails(capsys, "7.4", Offloading(work=lambda a, b: a * b))


# --- helpers.bench_server: the benchmark's server in a process of its own -----------

@pytest.mark.parametrize("mode", ["sync", "aio"])
def test_bench_server_runs_in_a_child_process_and_stops(mode: str) -> None:
    import os

    from helpers import bench_server

    with bench_server.start(mode, workers=4, name=f"test-{mode}") as server:
        assert server.pid != os.getpid()
        with grpc.insecure_channel(server.target) as channel:
            stub = calculator_pb2_grpc.CalculatorStub(channel)
            assert stub.Add(calculator_pb2.AddRequest(a=2, b=3), timeout=10).result == 5
            assert stub.Multiply(calculator_pb2.MultiplyRequest(a=2, b=3), timeout=10).result == 6
        measured = bench_server.threads_and_rss(server.pid)
        if measured is not None:  # Linux
            threads, rss_mb = measured
            assert threads >= 1 and rss_mb > 1
    assert server.process.poll() is not None  # the child has exited
    assert f"test-{mode}" not in bench_server._running
