"""Lesson 06 (streaming): the route guide helpers, and the checks of exercises 6.1-6.5.

Each check passes on a correct answer (and on correct-but-different ones) and fails,
naming the mistake, on the plausible wrong answers in WRONG_ANSWERS.
"""

from __future__ import annotations

import hashlib
import threading
import time

import grpc
import pytest
from conftest import WrongAnswer, fails, passes, rejects

from helpers import protos
from helpers.reference.routeguide import (
    AREA, RouteGuide, distance_m, feature_at, in_rectangle, make_features, point_problem,
    rectangle_problem, require_rectangle, require_valid_point, routeguide_pb2 as pb2,
    routeguide_pb2_grpc,
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


# --- 6.1, 6.2, 6.4: the route guide -----------------------------------------------

class Unsolved06(RouteGuide):
    def ListFeatures(self, request, context):
        raise NotImplementedError("Exercise 6.1: not solved yet")

    def RecordRoute(self, request_iterator, context):
        raise NotImplementedError("Exercise 6.2: not solved yet")

    def RouteChat(self, request_iterator, context):
        raise NotImplementedError("Exercise 6.4: not solved yet")


class ListAsAList(RouteGuide):
    """Correct but different: returns an iterator over a list instead of yielding."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        return iter([f for f in self.features if in_rectangle(f.location, request)])


class OrderedCornersOnly(RouteGuide):
    """Assumes lo is the south-west corner."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        lo, hi = request.lo, request.hi
        for feature in self.features:
            p = feature.location
            if (lo.latitude <= p.latitude <= hi.latitude
                    and lo.longitude <= p.longitude <= hi.longitude):
                yield feature


class EdgesExcluded(RouteGuide):
    """Strict comparisons: a feature on the edge of the rectangle is left out."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        lo, hi = request.lo, request.hi
        south, north = sorted((lo.latitude, hi.latitude))
        west, east = sorted((lo.longitude, hi.longitude))
        for feature in self.features:
            p = feature.location
            if south < p.latitude < north and west < p.longitude < east:
                yield feature


class LatitudesSortedOnly(RouteGuide):
    """Sorts the latitudes of the corners but takes the longitudes as they come."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        lo, hi = request.lo, request.hi
        south, north = sorted((lo.latitude, hi.latitude))
        for feature in self.features:
            p = feature.location
            if south <= p.latitude <= north and lo.longitude <= p.longitude <= hi.longitude:
                yield feature


class EveryFeature(RouteGuide):
    """Streams the whole map, whatever the rectangle."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        yield from self.features


class NoValidation(RouteGuide):
    def RecordRoute(self, request_iterator, context):
        points = list(request_iterator)
        return pb2.RouteSummary(point_count=len(points), feature_count=len(points))


class ElapsedAlwaysZero(RouteGuide):
    """Right counts and distance, but elapsed_time is never measured."""

    def RecordRoute(self, request_iterator, context):
        summary = super().RecordRoute(request_iterator, context)
        summary.elapsed_time = 0
        return summary


class DistinctFeatures(RouteGuide):
    """Counts each feature once, even when the route visits it twice."""

    def RecordRoute(self, request_iterator, context):
        points, seen, distance = 0, set(), 0.0
        previous = None
        start = time.monotonic()
        for point in request_iterator:
            require_valid_point(point, context)
            points += 1
            if feature_at(self.features, point) is not None:
                seen.add((point.latitude, point.longitude))
            if previous is not None:
                distance += distance_m(previous, point)
            previous = point
        return pb2.RouteSummary(point_count=points, feature_count=len(seen),
                                distance=int(distance),
                                elapsed_time=int(time.monotonic() - start))


class TruncatesEachLeg(RouteGuide):
    """Adds int(distance) leg by leg: loses up to a metre per leg."""

    def RecordRoute(self, request_iterator, context):
        points = features = distance = 0
        previous = None
        start = time.monotonic()
        for point in request_iterator:
            require_valid_point(point, context)
            points += 1
            features += feature_at(self.features, point) is not None
            if previous is not None:
                distance += int(distance_m(previous, point))
            previous = point
        return pb2.RouteSummary(point_count=points, feature_count=features, distance=distance,
                                elapsed_time=int(time.monotonic() - start))


class BatchingChat(RouteGuide):
    """Reads every note before replying: no interleaving."""

    def RouteChat(self, request_iterator, context):
        yield from super().RouteChat(iter(list(request_iterator)), context)


class NotesOnTheServicer(RouteGuide):
    """Keeps the notes on self: every chat sees every earlier chat's notes."""

    def __init__(self, features=None):
        super().__init__(features)
        self.notes = []

    def RouteChat(self, request_iterator, context):
        for note in request_iterator:
            require_valid_point(note.location, context, "note location")
            for earlier in self.notes:
                if earlier.location == note.location:
                    yield earlier
            self.notes.append(note)


class NewestFirstChat(RouteGuide):
    """Replies with the earlier notes newest first."""

    def RouteChat(self, request_iterator, context):
        notes = []
        for note in request_iterator:
            require_valid_point(note.location, context, "note location")
            for earlier in reversed(notes):
                if earlier.location == note.location:
                    yield earlier
            notes.append(note)


class ChatWithoutValidation(RouteGuide):
    def RouteChat(self, request_iterator, context):
        notes = []
        for note in request_iterator:
            for earlier in notes:
                if earlier.location == note.location:
                    yield earlier
            notes.append(note)


# --- 6.3: the upload limit ----------------------------------------------------------

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


class JoinEverything(FileStore):
    """Seed 004's 'bad' example: b''.join of the whole stream, then the size."""

    def Upload(self, request_iterator, context):
        name = self.header(request_iterator, context)
        data = b"".join(self.chunk(message, context) for message in request_iterator)
        if len(data) > self.max_bytes:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{name} is over the limit")
        return files_pb2.UploadSummary(name=name, size=len(data), chunks=-(-len(data) // 16384),
                                       sha256=hashlib.sha256(data).hexdigest())


class WrongCodeStore(FileStore):
    """Refuses a large upload with INVALID_ARGUMENT."""

    def Upload(self, request_iterator, context):
        name = self.header(request_iterator, context)
        size, chunks, digest = 0, 0, hashlib.sha256()
        for message in request_iterator:
            size += len(self.chunk(message, context))
            if size > self.max_bytes:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "too big")
            digest.update(message.chunk)
            chunks += 1
        return files_pb2.UploadSummary(name=name, size=size, chunks=chunks,
                                       sha256=digest.hexdigest())


class OffByOneStore(FileStore):
    """Refuses an upload of exactly max_bytes (>= instead of >)."""

    def Upload(self, request_iterator, context):
        name = self.header(request_iterator, context)
        size, chunks, digest = 0, 0, hashlib.sha256()
        for message in request_iterator:
            size += len(self.chunk(message, context))
            if size >= self.max_bytes:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{name} is over the limit")
            digest.update(message.chunk)
            chunks += 1
        return files_pb2.UploadSummary(name=name, size=size, chunks=chunks,
                                       sha256=digest.hexdigest())


class RunningTotalOnSelf(FileStore):
    """Keeps the running size on self: the second upload starts where the first ended."""

    def __init__(self, max_bytes: int = 1_000_000):
        super().__init__(max_bytes)
        self.size = 0

    def Upload(self, request_iterator, context):
        name = self.header(request_iterator, context)
        chunks, digest = 0, hashlib.sha256()
        for message in request_iterator:
            self.size += len(self.chunk(message, context))
            if self.size > self.max_bytes:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{name} is over the limit")
            digest.update(message.chunk)
            chunks += 1
        return files_pb2.UploadSummary(name=name, size=self.size, chunks=chunks,
                                       sha256=digest.hexdigest())


# --- 6.5: a feed that stops when its client does ----------------------------------

class LiveFeed(routeguide_pb2_grpc.RouteGuideServicer):
    """A correct answer to 6.5: one Event per call, set by that call's add_callback."""

    def __init__(self, features, pause: float = 0.2):
        self.features, self.pause = list(features), pause

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        ended = threading.Event()
        context.add_callback(ended.set)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature
                if ended.wait(self.pause):
                    return


class PollingFeed(LiveFeed):
    """Correct but different: short sleeps, checking context.is_active() in between."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        for feature in self.features:
            if not in_rectangle(feature.location, request):
                continue
            yield feature
            wake = time.monotonic() + self.pause
            while context.is_active() and time.monotonic() < wake:
                time.sleep(0.02)
            if not context.is_active():
                return


class YieldsIntoADeadCall(LiveFeed):
    """Its own Event, but it ignores what wait() says: after a cancel it goes on to the next
    feature (and grpcio drops the generator only at that yield)."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        ended = threading.Event()
        context.add_callback(ended.set)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature
                ended.wait(self.pause)


class PollsOncePerPause(LiveFeed):
    """Asks is_active() only after sleeping a whole pause."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature
                time.sleep(self.pause)
                if not context.is_active():
                    return


class DictOfEvents(LiveFeed):
    """Correct, written differently: one Event per call, kept in a dict on self by call."""

    def __init__(self, features, pause: float = 0.2):
        super().__init__(features, pause)
        self.ended: dict = {}
        self.lock = threading.Lock()

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        with self.lock:
            ended = self.ended[id(context)] = threading.Event()
        context.add_callback(ended.set)
        try:
            for feature in self.features:
                if not in_rectangle(feature.location, request):
                    continue
                if not context.is_active():
                    return
                yield feature
                ended.wait(self.pause)
        finally:
            with self.lock:
                self.ended.pop(id(context), None)


class UnsolvedFeed(LiveFeed):
    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        raise NotImplementedError("Exercise 6.5: not solved yet")
        yield  # a generator, as in the lesson


class EventOnTheServicer(LiveFeed):
    """The lesson's old demo: one Event for the servicer, set by whichever call ends first."""

    def __init__(self, features, pause: float = 0.2):
        super().__init__(features, pause)
        self.ended = threading.Event()

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        context.add_callback(self.ended.set)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature
                if self.ended.wait(self.pause):
                    return


class SharedEventKeepsGoing(EventOnTheServicer):
    """Shares the Event and ignores its answer: other calls lose their pauses."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        context.add_callback(self.ended.set)
        for feature in self.features:
            if in_rectangle(feature.location, request) and context.is_active():
                yield feature
                self.ended.wait(self.pause)


class EventPerCallOnSelf(LiveFeed):
    """Makes an Event per call but stores it on self: the next call replaces it."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        self.ended = threading.Event()
        context.add_callback(self.ended.set)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature
                if self.ended.wait(self.pause):
                    return


class SleepingFeed(LiveFeed):
    """Ignores cancellation: time.sleep cannot be woken."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature
                time.sleep(self.pause)


class NoPauseFeed(LiveFeed):
    """Forgets the pause: the feed is an ordinary listing."""

    def ListFeatures(self, request, context):
        require_rectangle(request, context)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature


class TotalsOnSelf(RouteGuide):
    """Running totals kept on the servicer: the second call adds to the first."""

    point_count = feature_count = 0
    total = 0.0

    def RecordRoute(self, request_iterator, context):
        previous, first_at, last_at = None, None, None
        for point in request_iterator:
            require_valid_point(point, context)
            last_at = time.monotonic()
            first_at = first_at or last_at
            self.point_count += 1
            if feature_at(self.features, point) is not None:
                self.feature_count += 1
            if previous is not None:
                self.total += distance_m(previous, point)
            previous = point
        return pb2.RouteSummary(
            point_count=self.point_count, feature_count=self.feature_count,
            distance=int(self.total), elapsed_time=int(last_at - first_at) if last_at else 0)


class ClockFromCallStart(RouteGuide):
    """elapsed_time from the start of the call, not from the first point."""

    def RecordRoute(self, request_iterator, context):
        start = time.monotonic()
        summary = super().RecordRoute(request_iterator, context)
        summary.elapsed_time = int(time.monotonic() - start)
        return summary


class ClockFromInit(RouteGuide):
    """The start time taken once, in __init__."""

    def __init__(self, features):
        super().__init__(features)
        self.start = time.monotonic()

    def RecordRoute(self, request_iterator, context):
        summary = super().RecordRoute(request_iterator, context)
        summary.elapsed_time = int(time.monotonic() - self.start)
        return summary


class RoundedElapsed(RouteGuide):
    def RecordRoute(self, request_iterator, context):
        first_at = last_at = None
        points = []
        for point in request_iterator:
            last_at = time.monotonic()
            first_at = first_at or last_at
            points.append(point)
        summary = super().RecordRoute(iter(points), context)
        summary.elapsed_time = round(last_at - first_at) if points else 0
        return summary


class NotesEmptiedPerCall(RouteGuide):
    """Notes on self, emptied when a call starts: two chats at once share them."""

    def RouteChat(self, request_iterator, context):
        self.notes = []
        for note in request_iterator:
            require_valid_point(note.location, context, "note location")
            for earlier in list(self.notes):
                if earlier.location == note.location:
                    yield earlier
            self.notes.append(note)


class NoRectangleFeed(LiveFeed):
    def ListFeatures(self, request, context):
        ended = threading.Event()
        context.add_callback(ended.set)
        for feature in self.features:
            yield feature
            if ended.wait(self.pause):
                return


class FixedWaitFeed(LiveFeed):
    def ListFeatures(self, request, context):
        ended = threading.Event()
        context.add_callback(ended.set)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature
                if ended.wait(1):
                    return


class ReturnsWhenPauseRunsOut(LiveFeed):
    def ListFeatures(self, request, context):
        ended = threading.Event()
        context.add_callback(ended.set)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature
                if not ended.wait(self.pause):
                    return


WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("6.2", "running totals on self", (TotalsOnSelf,), "not to self"),
    WrongAnswer("6.2", "the clock starts with the call", (ClockFromCallStart,),
                "start the clock at the first point"),
    WrongAnswer("6.2", "the start time taken in __init__", (ClockFromInit,),
                "start the clock at the first point"),
    WrongAnswer("6.2", "elapsed_time rounded, not rounded down", (RoundedElapsed,),
                "whole seconds, rounded down"),
    WrongAnswer("6.4", "notes on self, emptied when a call starts", (NotesEmptiedPerCall,),
                "instead of his own earlier note: each chat keeps its own notes"),
    WrongAnswer("6.5", "no rectangle filter", (NoRectangleFeed,),
                "yield only the features inside the rectangle"),
    WrongAnswer("6.5", "a hard-coded wait(1)", (FixedWaitFeed,), "not a fixed time"),
    WrongAnswer("6.5", "returns when the pause runs out", (ReturnsWhenPauseRunsOut,),
                "return only when this call has ended"),
    WrongAnswer("6.1", "assumes lo is the south-west corner", (OrderedCornersOnly,),
                "lo and hi swapped"),
    WrongAnswer("6.1", "leaves out features on the edge", (EdgesExcluded,),
                "exactly one feature's point"),
    WrongAnswer("6.1", "sorts the latitudes but not the longitudes", (LatitudesSortedOnly,),
                "for the same rectangle with lo and hi swapped"),
    WrongAnswer("6.1", "ignores the rectangle", (EveryFeature,), "a rectangle inside the area"),
    WrongAnswer("6.2", "no validation, every point a feature", (NoValidation,),
                "feature_count"),
    WrongAnswer("6.2", "never measures elapsed_time", (ElapsedAlwaysZero,), "elapsed_time"),
    WrongAnswer("6.2", "counts a feature visited twice once", (DistinctFeatures,),
                "count every visit"),
    WrongAnswer("6.2", "truncates every leg's distance", (TruncatesEachLeg,),
                "truncate once"),
    WrongAnswer("6.3", "takes a second info as a chunk", (InfoTwiceStore,),
                "info a second time"),
    WrongAnswer("6.3", "keeps every chunk in a list", (HoardingStore,), "memory"),
    WrongAnswer("6.3", "checks the size after the last chunk", (LateLimitStore,),
                "before refusing it"),
    WrongAnswer("6.3", "b''.join of the whole stream (seed 004)", (JoinEverything,),
                "before refusing it"),
    WrongAnswer("6.3", "INVALID_ARGUMENT for a large upload", (WrongCodeStore,),
                "expected RESOURCE_EXHAUSTED"),
    WrongAnswer("6.3", "refuses exactly max_bytes (>=)", (OffByOneStore,), "exactly max_bytes"),
    WrongAnswer("6.3", "running size on self", (RunningTotalOnSelf,), "exactly max_bytes"),
    WrongAnswer("6.4", "reads every note before replying", (BatchingChat,),
                "while the client is still sending"),
    WrongAnswer("6.4", "keeps the notes on self", (NotesOnTheServicer,),
                "not on self"),
    WrongAnswer("6.4", "replies newest first", (NewestFirstChat,), "expected ['a', 'b']"),
    WrongAnswer("6.4", "no validation of the note's location", (ChatWithoutValidation,),
                "longitude 190 degrees"),
    WrongAnswer("6.5", "one Event on the servicer, for every call", (EventOnTheServicer,),
                "cancelling one call ended another"),
    WrongAnswer("6.5", "a shared Event, other calls carry on unpaced", (SharedEventKeepsGoing,),
                "an Event on self is shared"),
    WrongAnswer("6.5", "an Event per call, stored on self", (EventPerCallOnSelf,),
                "not on self, where the next call replaces it"),
    WrongAnswer("6.5", "keeps looping after its call ended", (YieldsIntoADeadCall,),
                "yielded 1 more feature(s) after its client cancelled"),
    WrongAnswer("6.5", "asks is_active() once per whole pause", (PollsOncePerPause,),
                "ran on for"),
    WrongAnswer("6.5", "time.sleep between features, cancel ignored", (SleepingFeed,),
                "ran on for"),
    WrongAnswer("6.5", "no pause between features", (NoPauseFeed,), "wait self.pause"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("6.1", RouteGuide), ("6.1", ListAsAList), ("6.2", RouteGuide), ("6.3", FileStore),
    ("6.4", RouteGuide), ("6.5", LiveFeed), ("6.5", PollingFeed),
    ("6.5", DictOfEvents),
], ids=lambda value: getattr(value, "__name__", value))
def test_right_answers_pass(exercise_id: str, answer, capsys) -> None:
    passes(capsys, exercise_id, answer)


@pytest.mark.parametrize("exercise_id, answer", [
    ("6.1", Unsolved06), ("6.2", Unsolved06), ("6.3", UnsolvedStore), ("6.4", Unsolved06),
    ("6.5", UnsolvedFeed),
])
def test_unsolved_answers_say_not_solved(exercise_id: str, answer, capsys) -> None:
    assert "not solved yet" in fails(capsys, exercise_id, answer)


def test_a_chat_that_batches_its_replies_fails_quickly(capsys) -> None:
    start = time.monotonic()
    fails(capsys, "6.4", BatchingChat)
    assert time.monotonic() - start < 10  # bounded waits, not a hang


def test_the_feed_check_wants_the_class(capsys) -> None:
    assert "pass the class" in fails(capsys, "6.5", LiveFeed(make_features(count=3)))


# --- 6.6, the challenge: a conversation that ends cleanly ---------------------------------

import queue  # noqa: E402


def converse(target: str, notes: list, timeout: float) -> list:
    """Take turns: a note, its reply, the next note; then half-close and read to the end."""
    outbox: queue.Queue = queue.Queue()
    with grpc.insecure_channel(target) as channel:
        call = routeguide_pb2_grpc.RouteGuideStub(channel).RouteChat(iter(outbox.get, None),
                                                                     timeout=timeout)
        replies = []
        try:
            for note in notes:
                outbox.put(note)
                replies.append(next(call))
        finally:
            outbox.put(None)  # half-close, whatever happened
        replies += list(call)
        return replies


def converse_with_events(target: str, notes: list, timeout: float) -> list:
    """Correct too: the request generator waits for an Event the reading loop sets."""
    answered = threading.Event()

    def requests():
        for note in notes:
            answered.clear()
            yield note
            if not answered.wait(timeout):
                return

    with grpc.insecure_channel(target) as channel:
        replies = []
        for reply in routeguide_pb2_grpc.RouteGuideStub(channel).RouteChat(requests(),
                                                                          timeout=timeout):
            replies.append(reply)
            answered.set()
        return replies


def converse_then_cancel(target, notes, timeout):
    outbox = queue.Queue()
    with grpc.insecure_channel(target) as channel:
        call = routeguide_pb2_grpc.RouteGuideStub(channel).RouteChat(iter(outbox.get, None),
                                                                     timeout=timeout)
        replies = []
        for note in notes:
            outbox.put(note)
            replies.append(next(call))
        call.cancel()  # "done": the way many examples end a stream
        outbox.put(None)
        return replies


def converse_all_at_once(target, notes, timeout):
    with grpc.insecure_channel(target) as channel:
        return list(routeguide_pb2_grpc.RouteGuideStub(channel).RouteChat(iter(notes),
                                                                          timeout=timeout))


def converse_never_half_closes(target, notes, timeout):
    outbox = queue.Queue()
    with grpc.insecure_channel(target) as channel:
        call = routeguide_pb2_grpc.RouteGuideStub(channel).RouteChat(iter(outbox.get, None),
                                                                     timeout=timeout)
        replies = []
        for note in notes:
            outbox.put(note)
            replies.append(next(call))
        return replies + list(call)  # reads on, but never said it was done


def converse_stops_reading(target, notes, timeout):
    outbox = queue.Queue()
    with grpc.insecure_channel(target) as channel:
        call = routeguide_pb2_grpc.RouteGuideStub(channel).RouteChat(iter(outbox.get, None),
                                                                     timeout=timeout)
        replies = []
        for note in notes:
            outbox.put(note)
            replies.append(next(call))
        outbox.put(None)
        return replies  # one reply per note, and then the channel closes


def converse_swallows_errors(target, notes, timeout):
    try:
        return converse(target, notes, timeout)
    except grpc.RpcError:
        return []


def converse_without_deadline(target, notes, timeout):
    outbox = queue.Queue()
    with grpc.insecure_channel(target) as channel:
        call = routeguide_pb2_grpc.RouteGuideStub(channel).RouteChat(iter(outbox.get, None))
        replies = []
        try:
            for note in notes:
                outbox.put(note)
                replies.append(next(call))
        finally:
            outbox.put(None)
        return replies + list(call)


def converse_fixed_deadline(target, notes, timeout):
    return converse(target, notes, 10)


WRONG_ANSWERS += [  # collected with the list above: pytest reads it after the import
    WrongAnswer("6.6", "cancels once it has its replies", (converse_then_cancel,),
                "RST_STREAM CANCEL from the client"),
    WrongAnswer("6.6", "sends every note at once", (converse_all_at_once,),
                "went out before the reply to the note before it"),
    WrongAnswer("6.6", "never half-closes", (converse_never_half_closes,),
                "never saw END_STREAM from your side"),
    WrongAnswer("6.6", "stops reading after one reply per note", (converse_stops_reading,),
                "RST_STREAM CANCEL"),
    WrongAnswer("6.6", "swallows the server's error", (converse_swallows_errors,),
                "let the server's error reach the caller"),
    WrongAnswer("6.6", "no deadline", (converse_without_deadline,), "give the call a deadline"),
    WrongAnswer("6.6", "a fixed deadline, not the timeout given", (converse_fixed_deadline,),
                "the timeout you are given"),
]


@pytest.mark.parametrize("answer", [converse, converse_with_events],
                         ids=lambda answer: answer.__name__)
def test_right_6_6_answers_pass(answer, capsys) -> None:
    passes(capsys, "6.6", answer)
