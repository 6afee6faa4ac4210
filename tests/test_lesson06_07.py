"""Checks of lessons 06 (streaming) and 07 (asyncio), and the route guide helpers.

Each check passes on a correct answer and fails with CheckFailed on an unsolved
one and on plausible wrong ones (batching a chat, buffering an upload, blocking
the event loop, ...).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import grpc
import pytest
from conftest import fails, passes

from helpers import protos
from helpers.reference import calculator_pb2, calculator_pb2_grpc
from helpers.reference.routeguide import (
    AREA, RouteGuide, distance_m, feature_at, in_rectangle, make_features, point_problem,
    rectangle_problem, routeguide_pb2 as pb2, routeguide_pb2_grpc,
)

files_pb2, files_pb2_grpc = protos.load("files")




# --- the route guide helpers ------------------------------------------------------

def test_the_dataset_is_deterministic_distinct_and_inside_the_area() -> None:
    features = make_features()
    assert features == make_features()
    assert features != make_features(seed=7)
    assert len(features) == 100
    assert len({f.name for f in features}) == 100
    assert len({(f.location.latitude, f.location.longitude) for f in features}) == 100
    assert all(in_rectangle(f.location, AREA) for f in features)
    assert len(make_features(count=200)) == 200  # more features than base names


def test_geometry() -> None:
    a = pb2.Point(latitude=400_000_000, longitude=-750_000_000)
    b = pb2.Point(latitude=410_000_000, longitude=-750_000_000)
    assert distance_m(a, a) == 0
    assert distance_m(a, b) == pytest.approx(111_195, rel=1e-3)  # one degree of latitude
    swapped = pb2.Rectangle(lo=b, hi=a)
    assert in_rectangle(a, swapped) and in_rectangle(b, swapped)
    assert not in_rectangle(pb2.Point(latitude=399_999_999, longitude=-750_000_000), swapped)
    assert feature_at(make_features(), a) is None


def test_problems_name_what_is_wrong() -> None:
    assert point_problem(pb2.Point(latitude=900_000_000, longitude=-1_800_000_000)) is None
    assert "not a valid position" in point_problem(pb2.Point(latitude=900_000_001))
    assert rectangle_problem(AREA) is None
    assert rectangle_problem(pb2.Rectangle(lo=AREA.lo)) == "the rectangle has no hi corner"
    off_the_map = pb2.Point(longitude=-1_900_000_000)
    assert "corner lo" in rectangle_problem(pb2.Rectangle(lo=off_the_map, hi=AREA.hi))


def test_the_reference_route_guide_serves_a_standard_client() -> None:
    """Call it by the classic wire names, as a route-guide client in any language would."""
    from helpers.servers import serve

    with serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, RouteGuide(),
               name="test-routeguide") as server:
        with grpc.insecure_channel(server.target) as channel:
            get_feature = channel.unary_unary(
                "/routeguide.RouteGuide/GetFeature",
                request_serializer=pb2.Point.SerializeToString,
                response_deserializer=pb2.Feature.FromString)
            first = make_features()[0]
            assert get_feature(first.location, timeout=5).name == first.name
            stub = routeguide_pb2_grpc.RouteGuideStub(channel)
            assert len(list(stub.ListFeatures(AREA, timeout=5))) == 100
            with pytest.raises(grpc.RpcError) as error:
                stub.GetFeature(pb2.Point(latitude=10**9), timeout=5)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- lesson 06 --------------------------------------------------------------------

class Unsolved06(RouteGuide):
    def ListFeatures(self, request, context):
        raise NotImplementedError("Exercise 6.1: not solved yet")

    def RecordRoute(self, request_iterator, context):
        raise NotImplementedError("Exercise 6.2: not solved yet")

    def RouteChat(self, request_iterator, context):
        raise NotImplementedError("Exercise 6.4: not solved yet")


class OrderedCornersOnly(RouteGuide):
    """Assumes lo is the south-west corner."""

    def ListFeatures(self, request, context):
        lo, hi = request.lo, request.hi
        for feature in self.features:
            p = feature.location
            if (lo.latitude <= p.latitude <= hi.latitude
                    and lo.longitude <= p.longitude <= hi.longitude):
                yield feature


class NoValidation(RouteGuide):
    def RecordRoute(self, request_iterator, context):
        points = list(request_iterator)
        return pb2.RouteSummary(point_count=len(points), feature_count=len(points))


class BatchingChat(RouteGuide):
    """Reads every note before replying: no interleaving."""

    def RouteChat(self, request_iterator, context):
        yield from super().RouteChat(iter(list(request_iterator)), context)


@pytest.mark.parametrize("exercise_id", ["6.1", "6.2", "6.4"])
def test_the_reference_route_guide_passes(exercise_id: str, capsys) -> None:
    passes(capsys, exercise_id, RouteGuide)


@pytest.mark.parametrize("exercise_id", ["6.1", "6.2", "6.4"])
def test_unsolved_route_guide_fails(exercise_id: str, capsys) -> None:
    assert "not solved yet" in fails(capsys, exercise_id, Unsolved06)


def test_listing_with_ordered_corners_only_fails(capsys) -> None:
    assert "lo and hi swapped" in fails(capsys, "6.1", OrderedCornersOnly)


def test_route_summary_without_features_or_validation_fails(capsys) -> None:
    assert "feature_count" in fails(capsys, "6.2", NoValidation)


def test_a_chat_that_batches_its_replies_fails_quickly(capsys) -> None:
    start = time.monotonic()
    out = fails(capsys, "6.4", BatchingChat)
    assert "while the client is still sending" in out
    assert time.monotonic() - start < 10  # bounded waits, not a hang


class FileStore(files_pb2_grpc.FileStoreServicer):
    """A correct answer to 6.3."""

    def __init__(self, max_bytes: int = 1_000_000):
        self.max_bytes = max_bytes

    def header(self, request_iterator, context) -> str:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("content") != "info":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first message must carry info")
        return first.info.name

    def chunk(self, message, context) -> bytes:
        if message.HasField("info"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "info may come only first")
        return message.chunk

    def Upload(self, request_iterator, context):
        name = self.header(request_iterator, context)
        size, chunks, digest = 0, 0, hashlib.sha256()
        for message in request_iterator:
            size += len(self.chunk(message, context))
            if size > self.max_bytes:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{name} is over the limit")
            digest.update(message.chunk)
            chunks += 1
        return files_pb2.UploadSummary(name=name, size=size, chunks=chunks,
                                       sha256=digest.hexdigest())


class InfoTwiceStore(FileStore):
    """Right, except that a second info message is silently taken as an empty chunk."""

    def Upload(self, request_iterator, context):
        name = self.header(request_iterator, context)
        size, chunks, digest = 0, 0, hashlib.sha256()
        for message in request_iterator:
            size += len(message.chunk)
            if size > self.max_bytes:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{name} is over the limit")
            digest.update(message.chunk)
            chunks += 1
        return files_pb2.UploadSummary(name=name, size=size, chunks=chunks,
                                       sha256=digest.hexdigest())


class UnsolvedStore(FileStore):
    def Upload(self, request_iterator, context):
        raise NotImplementedError("Exercise 6.3: not solved yet")


class HoardingStore(FileStore):
    """Checks the size per chunk, like seed 004's 'good' example, but keeps every chunk."""

    def Upload(self, request_iterator, context):
        name = self.header(request_iterator, context)
        kept, size = [], 0
        for message in request_iterator:
            kept.append(self.chunk(message, context))
            size += len(kept[-1])
            if size > self.max_bytes:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{name} is over the limit")
        data = b"".join(kept)
        return files_pb2.UploadSummary(name=name, size=size, chunks=len(kept),
                                       sha256=hashlib.sha256(data).hexdigest())


class LateLimitStore(FileStore):
    """Reads the whole upload, then compares its size with the limit."""

    def Upload(self, request_iterator, context):
        name = self.header(request_iterator, context)
        size, chunks, digest = 0, 0, hashlib.sha256()
        for message in request_iterator:
            chunk = self.chunk(message, context)
            size += len(chunk)
            digest.update(chunk)
            chunks += 1
        if size > self.max_bytes:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{name} is over the limit")
        return files_pb2.UploadSummary(name=name, size=size, chunks=chunks,
                                       sha256=digest.hexdigest())


class WrongCodeStore(FileStore):
    def Upload(self, request_iterator, context):
        name = self.header(request_iterator, context)
        size = sum(len(message.chunk) for message in request_iterator)
        if size > self.max_bytes:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "too big")
        return files_pb2.UploadSummary(name=name, size=size)


def test_a_streaming_file_store_passes(capsys) -> None:
    passes(capsys, "6.3", FileStore)


@pytest.mark.parametrize("store, message", [
    (UnsolvedStore, "not solved yet"),
    (InfoTwiceStore, "info a second time"),
    (HoardingStore, "memory"),
    (LateLimitStore, "before refusing it"),
    (WrongCodeStore, "chunks"),
])
def test_wrong_file_stores_fail(store, message: str, capsys) -> None:
    assert message in fails(capsys, "6.3", store)


# --- lesson 07 --------------------------------------------------------------------

async def in_int32(value: int, context, operation: str) -> int:
    if not -(2**31) <= value <= 2**31 - 1:
        await context.abort(grpc.StatusCode.OUT_OF_RANGE, f"{operation} overflows")
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


class UnsolvedAsync(AsyncCalculator):
    async def Divide(self, request, context):
        raise NotImplementedError("Exercise 7.1: not solved yet")


def test_an_async_calculator_passes(capsys) -> None:
    passes(capsys, "7.1", AsyncCalculator)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("servicer, message", [
    (UnsolvedAsync, "not solved yet"),
    (ForgetsAwait, "UNKNOWN"),
    (SyncMethods, "async def"),
])
def test_wrong_async_calculators_fail(servicer, message: str, capsys) -> None:
    assert message in fails(capsys, "7.1", servicer)


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


class AsyncGuideWithoutValidation(AsyncGuide):
    async def ListFeatures(self, request, context):
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature


class AsyncGuideUnsolved(AsyncGuide):
    async def ListFeatures(self, request, context):
        raise NotImplementedError("Exercise 7.2: not solved yet")
        yield  # an async generator, as in the lesson


def test_an_async_route_guide_passes(capsys) -> None:
    passes(capsys, "7.2", AsyncGuide)


@pytest.mark.parametrize("servicer, message", [
    (AsyncGuideUnsolved, "not solved yet"),
    (AsyncGuideWithoutValidation, "INVALID_ARGUMENT"),
    (RouteGuide, "async generator"),
])
def test_wrong_async_route_guides_fail(servicer, message: str, capsys) -> None:
    assert message in fails(capsys, "7.2", servicer)


def _add(a: int, b: int):
    return calculator_pb2.AddRequest(a=a, b=b)


async def add_all(stub, pairs, limit):
    gate = asyncio.Semaphore(limit)

    async def one(a, b):
        async with gate:
            return (await stub.Add(_add(a, b), timeout=5)).result

    return await asyncio.gather(*(one(a, b) for a, b in pairs))


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


async def add_all_unsolved(stub, pairs, limit):
    raise NotImplementedError("Exercise 7.3: not solved yet")


def test_bounded_gather_passes(capsys) -> None:
    passes(capsys, "7.3", add_all)


@pytest.mark.parametrize("function, message", [
    (add_all_unsolved, "not solved yet"),
    (add_all_unbounded, "Semaphore"),
    (add_all_one_by_one, "one at a time"),
    (add_all_without_deadline, "no deadline"),
])
def test_wrong_concurrent_clients_fail(function, message: str, capsys) -> None:
    assert message in fails(capsys, "7.3", function)


class Offloading(AsyncCalculator):
    def __init__(self, work):
        self.work = work

    async def Multiply(self, request, context):
        product = await asyncio.to_thread(self.work, request.a, request.b)
        return calculator_pb2.MultiplyReply(result=await in_int32(product, context, "Multiply"))


class Blocking(Offloading):
    async def Multiply(self, request, context):
        return calculator_pb2.MultiplyReply(result=self.work(request.a, request.b))


class OneThreadAtATime(Offloading):
    """Offloads, but lets only one call's work run at a time."""

    async def Multiply(self, request, context):
        if not hasattr(self, "gate"):
            self.gate = asyncio.Lock()
        async with self.gate:
            product = await asyncio.to_thread(self.work, request.a, request.b)
        return calculator_pb2.MultiplyReply(result=product)


class UnsolvedOffloading(Offloading):
    async def Multiply(self, request, context):
        raise NotImplementedError("Exercise 7.4: not solved yet")


def test_offloading_passes(capsys) -> None:
    passes(capsys, "7.4", Offloading)


@pytest.mark.parametrize("servicer, message", [
    (UnsolvedOffloading, "not solved yet"),
    (Blocking, "event loop's thread"),
    (OneThreadAtATime, "one at a time"),
])
def test_work_on_the_loop_or_serialized_fails(servicer, message: str, capsys) -> None:
    assert message in fails(capsys, "7.4", servicer)


def test_offloading_wants_the_class(capsys) -> None:
    assert "pass the class" in fails(capsys, "7.4", Offloading(work=lambda a, b: a * b))
