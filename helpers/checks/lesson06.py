"""Checks for lesson 06, streaming.

Every call a check makes has a deadline, so a servicer that hangs fails the
check within seconds instead of hanging the notebook.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import tracemalloc
from collections import abc
from typing import Any, Callable, Iterator

import grpc
from hypothesis import strategies as st

from helpers import protos
from helpers.checks.core import (
    Mismatch, compare_with_reference, describe_rpc_error, exercise, expect, expect_equal,
    expect_error_status, stub_for, within,
)
from helpers.reference.routeguide import (
    AREA, RouteGuide as ReferenceGuide, distance_m, make_features, routeguide_pb2 as pb2,
    routeguide_pb2_grpc,
)

LESSON = "06_streaming"
files_pb2, _ = protos.load("files")
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
TIMEOUT = 5  # seconds: the deadline of every call a check makes



def _guide(servicer: Any, features: list) -> Any:
    """The learner's route guide over `features` (a class is built with them)."""
    return servicer(features) if isinstance(servicer, type) else servicer


def _point(lat: int, lng: int) -> Any:
    return pb2.Point(latitude=lat, longitude=lng)


def _expect_stream_status(call: Any, expected: grpc.StatusCode, what: str) -> None:
    """Run a call (streaming or not) to its end; fail unless it ends with `expected`."""
    try:
        result = call()
        if isinstance(result, abc.Iterator):
            list(result)
    except grpc.RpcError as error:
        expect_error_status(error, expected, what)
        return
    expect_error_status(None, expected, what)


@exercise(
    "6.1",
    "ListFeatures within a rectangle",
    notebook=LESSON,
    hint="A server-streaming servicer is a generator: each `yield` sends one message. Which "
    "corner is south-west is not given, and a feature on an edge is inside.",
    second_hint="Work out the rectangle's south, north, west and east edges from both corners "
    "first; then a feature is inside when both of its coordinates lie between their edges, "
    "edges themselves included.",
)
def list_features(servicer: Any) -> str:
    features = make_features(count=60, seed=61)
    guide = _guide(servicer, features)
    reference = ReferenceGuide(guide.features)
    lo, hi = _point(402_000_000, -748_000_000), _point(407_000_000, -742_000_000)
    one = guide.features[0].location
    rectangles = {
        "a rectangle inside the area": pb2.Rectangle(lo=lo, hi=hi),
        "the same rectangle with lo and hi swapped": pb2.Rectangle(lo=hi, hi=lo),
        "a rectangle with lo at the north-west corner": pb2.Rectangle(
            lo=_point(hi.latitude, lo.longitude), hi=_point(lo.latitude, hi.longitude)),
        "a rectangle that is exactly one feature's point": pb2.Rectangle(lo=one, hi=one),
        "the whole area": AREA,
        "a rectangle with no features": pb2.Rectangle(lo=_point(0, 0), hi=_point(10, 10)),
    }
    with stub_for("routeguide", "RouteGuide", guide) as stub:
        for what, rectangle in rectangles.items():
            got = sorted(f.name for f in stub.ListFeatures(rectangle, timeout=TIMEOUT))
            expected = sorted(f.name for f in reference.ListFeatures(rectangle, None))
            expect(got == expected, f"for {what}, expected {len(expected)} features, "
                   f"got {len(got)}" + (f" (e.g. {got[:2]})" if got else ""))
        _expect_stream_status(
            lambda: stub.ListFeatures(pb2.Rectangle(lo=lo), timeout=TIMEOUT),
            INVALID_ARGUMENT, "ListFeatures with no hi corner")
        # Corners drawn on features' own coordinates (and one unit off), so edges get tested.
        lats = sorted({f.location.latitude for f in guide.features})
        lngs = sorted({f.location.longitude for f in guide.features})
        coordinate = st.tuples(st.sampled_from(lats), st.sampled_from([-1, 0, 0, 1]))
        corner = st.builds(lambda lat, lng: _point(lat[0] + lat[1], lng[0] + lng[1]),
                           coordinate, st.tuples(st.sampled_from(lngs),
                                                 st.sampled_from([-1, 0, 0, 1])))
        compared = compare_with_reference(
            lambda r: sorted(f.name for f in stub.ListFeatures(r, timeout=TIMEOUT)),
            lambda r: sorted(f.name for f in reference.ListFeatures(r, None)),
            st.builds(lambda lo, hi: pb2.Rectangle(lo=lo, hi=hi), corner, corner),
            lambda r: (f"the names in the rectangle from ({r.lo.latitude}, {r.lo.longitude}) "
                       f"to ({r.hi.latitude}, {r.hi.longitude})"), max_examples=40)
    return (f"{len(rectangles)} rectangles streamed the right features; a missing corner is "
            f"refused; {compared} rectangles with corners on features' edges agree with the "
            "reference")


@exercise(
    "6.2",
    "RecordRoute's summary",
    notebook=LESSON,
    hint="A `for` loop over request_iterator sees each point as it arrives. What must you "
    "remember from one point to the next, and where does that memory belong: to the call, or "
    "to the servicer that serves every call?",
    second_hint="The clock starts when the first point arrives, not when the call or the "
    "servicer begins; the distance is summed as floats and cut to whole metres once.",
)
def record_route(servicer: Any) -> str:
    features = make_features(count=40, seed=62)
    guide = _guide(servicer, features)
    route = [f.location for f in guide.features[:5]] + [_point(403_000_000, -741_234_567)]
    route.append(route[0])  # back to the start: a point may be visited twice
    distance = sum(distance_m(a, b) for a, b in zip(route, route[1:]))
    expected = (len(route), 6, int(distance))
    with stub_for("routeguide", "RouteGuide", guide) as stub:
        summary = stub.RecordRoute(_slowly(route, pause_before_first=1.0, pause_before_last=1.6),
                                   timeout=TIMEOUT)
        expect_equal(summary.point_count, len(route), "point_count for a 7-point route")
        expect_equal(summary.feature_count, 6, "feature_count (6 of the 7 points are features, "
                     "one of them visited twice: count every visit)")
        expect(abs(summary.distance - int(distance)) <= 1,
               f"distance: expected {int(distance)} m, got {summary.distance}"
               + (" (add the legs as floats and truncate once, at the end)"
                  if 0 < int(distance) - summary.distance <= len(route) else ""))
        expect(summary.elapsed_time == 1,
               f"elapsed_time: the first point came 1.0 s after the call began and the last "
               f"1.6 s after the first, so 1 whole second from the first point to the last; "
               f"got {summary.elapsed_time}"
               + (": start the clock at the first point, not at the start of the call (or of "
                  "the servicer)" if summary.elapsed_time >= 2 else "")
               + (": whole seconds, rounded down" if summary.elapsed_time == 2 else ""))
        for attempt in ("again", "a third time"):
            quick = stub.RecordRoute(iter(route), timeout=TIMEOUT)
            got = (quick.point_count, quick.feature_count, quick.distance)
            expect(got == expected and quick.elapsed_time == 0,
                   f"the same 7-point route sent {attempt}, at once, got (point_count, "
                   f"feature_count, distance, elapsed_time) {got + (quick.elapsed_time,)}, "
                   f"expected {expected + (0,)}: a call's totals and clock belong to the call "
                   "(local variables), not to self")
        empty = stub.RecordRoute(iter([]), timeout=TIMEOUT)
        expect_equal((empty.point_count, empty.feature_count, empty.distance, empty.elapsed_time),
                     (0, 0, 0, 0), "(point_count, feature_count, distance, elapsed_time) for a "
                     "route with no points")
        bad = [route[0], _point(95 * 10**7, 0)]
        _expect_stream_status(lambda: stub.RecordRoute(iter(bad), timeout=TIMEOUT),
                              INVALID_ARGUMENT, "RecordRoute with a latitude of 95 degrees")
    return ("a slow 7-point route (elapsed 1 s from its first point to its last), the same route "
            "twice more without pauses, an empty route and an invalid point got the right summaries")


def _slowly(points: list, pause_before_first: float, pause_before_last: float) -> Iterator[Any]:
    """The points of a route, with pauses before the first and the last one."""
    time.sleep(pause_before_first)
    yield from points[:-1]
    time.sleep(pause_before_last)
    yield points[-1]


def _upload_requests(name: str | None, data: bytes, size: int,
                     pulled: list[int] | None = None) -> Iterator[Any]:
    """UploadRequest messages: the info first (unless name is None), then chunks of `size`."""
    if name is not None:
        yield files_pb2.UploadRequest(info=files_pb2.FileInfo(name=name))
    for start in range(0, len(data), size):
        if pulled is not None:
            pulled[0] += 1
        yield files_pb2.UploadRequest(chunk=data[start:start + size])


def _endless_chunks(count: int, size: int, pulled: list[int]) -> Iterator[Any]:
    yield files_pb2.UploadRequest(info=files_pb2.FileInfo(name="huge.bin"))
    chunk = bytes(size)
    for _ in range(count):
        pulled[0] += 1
        yield files_pb2.UploadRequest(chunk=chunk)


def _peak_traced_bytes(run: Any) -> int:
    """Run `run()` and return the peak of memory Python allocated meanwhile (tracemalloc)."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()


@exercise(
    "6.3",
    "The upload limit",
    notebook=LESSON,
    hint="Decide about the size while the chunks arrive, not after the last one, and let each "
    "chunk go once it is counted and hashed.",
    second_hint="Exactly max_bytes is allowed; the first byte more is not. A chunk that has been "
    "counted and fed to the hash is not needed any more; and each upload starts from 0.",
)
def upload_limit(servicer: Any) -> str:
    limit = 200_000
    store = servicer(max_bytes=limit) if isinstance(servicer, type) else servicer
    limit = getattr(store, "max_bytes", limit)
    data = bytes(range(256)) * (150_000 // 256)
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
    with stub_for("files", "FileStore", store) as stub:
        summary = stub.Upload(_upload_requests("a.bin", data, 16_384), timeout=TIMEOUT)
        expected = ("a.bin", len(data), 10, hashlib.sha256(data).hexdigest())
        expect_equal((summary.name, summary.size, summary.chunks, summary.sha256), expected,
                     "(name, size, chunks, sha256) for a 10-chunk upload")
        exact = bytes(limit)
        try:
            summary = stub.Upload(_upload_requests("edge.bin", exact, 50_000), timeout=TIMEOUT)
        except grpc.RpcError as error:
            raise Mismatch(
                f"an upload of exactly max_bytes, after a smaller one, was refused with "
                f"{describe_rpc_error(error)}: a file of max_bytes is allowed, only more is "
                "refused; and each upload counts its own size from 0 (not on self)") from None
        expect_equal(summary.size, limit, "size of an upload of exactly max_bytes (allowed)")
        _expect_stream_status(
            lambda: stub.Upload(_upload_requests("big.bin", bytes(limit + 1), 50_000),
                                timeout=TIMEOUT),
            exhausted, "an upload one byte over max_bytes")
        _expect_stream_status(
            lambda: stub.Upload(_upload_requests(None, data, 16_384), timeout=TIMEOUT),
            INVALID_ARGUMENT, "an upload whose first message is a chunk, not info")
        twice = [*_upload_requests("a.bin", data[:100], 50), *_upload_requests("b.bin", b"", 1)]
        _expect_stream_status(lambda: stub.Upload(iter(twice), timeout=TIMEOUT),
                              INVALID_ARGUMENT, "an upload that sends info a second time")
        # A 64 MB upload against a 200 KB limit: refused while it is still arriving?
        pulled = [0]
        _expect_stream_status(
            lambda: stub.Upload(_endless_chunks(4000, 16_384, pulled), timeout=TIMEOUT),
            exhausted, "a 64 MB upload")
        expect(pulled[0] < 2000, f"the server read all {pulled[0]} chunks of a 64 MB upload "
               "before refusing it: check the size as each chunk arrives")
        # 2 MB under a 4 MB limit: does the server keep the chunks?
        big_store = servicer(max_bytes=4_000_000) if isinstance(servicer, type) else store
        two_mb = bytes(2_000_000)
        with stub_for("files", "FileStore", big_store) as big_stub:
            peak = _peak_traced_bytes(lambda: big_stub.Upload(
                _upload_requests("two-mb.bin", two_mb, 16_384), timeout=TIMEOUT))
        expect(peak < 1_000_000, f"uploading 2 MB raised Python's memory use by {peak:,} bytes: "
               "keep a running size and hash, not the chunks")
    return ("size, chunk count and sha256 are right; an upload over the limit gets "
            "RESOURCE_EXHAUSTED while it is arriving; memory stays flat")


class _Chat:
    """A RouteChat call driven one note at a time, with bounded waits for replies."""

    def __init__(self, stub: Any) -> None:
        self.outbox: queue.Queue = queue.Queue()
        self.inbox: queue.Queue = queue.Queue()
        self.call = stub.RouteChat(iter(self.outbox.get, None), timeout=TIMEOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            for reply in self.call:
                self.inbox.put(reply)
        except grpc.RpcError as error:
            self.inbox.put(error)
        self.inbox.put(None)  # end of the reply stream

    def send(self, note: Any) -> None:
        self.outbox.put(note)

    def receive(self, wait: float, what: str, end_ok: bool = False) -> Any:
        """The next reply (None at the end of the stream if `end_ok`); fail after `wait` s."""
        try:
            reply = self.inbox.get(timeout=wait)
        except queue.Empty:
            raise Mismatch(f"no reply within {wait:.0f} s {what}: the server must yield "
                           "replies while the client is still sending") from None
        if isinstance(reply, grpc.RpcError):
            raise reply
        expect(reply is not None or end_ok, f"the reply stream ended early, {what}")
        return reply

    def close(self) -> list:
        """Close our side; return the replies still to come (bounded wait)."""
        self.outbox.put(None)
        rest = []
        while (reply := self.receive(TIMEOUT, "after the client closed its stream",
                                     end_ok=True)) is not None:
            rest.append(reply)
        return rest

    def abandon(self) -> None:
        self.outbox.put(None)
        self.call.cancel()


@exercise(
    "6.4",
    "A chat that interleaves",
    notebook=LESSON,
    hint="Reply inside the loop over request_iterator, as soon as a reply is known; the notes "
    "you remember belong to this call only.",
    second_hint="Two chats can run at the same time on one servicer: whatever a chat "
    "remembers must be made inside RouteChat, not kept on self (not even emptied per call).",
)
def route_chat(servicer: Any) -> str:
    guide = _guide(servicer, make_features(count=20, seed=64))
    here, there = _point(404_000_000, -745_000_000), _point(405_000_000, -746_000_000)
    notes = [pb2.RouteNote(location=p, message=m)
             for p, m in [(here, "a"), (here, "b"), (there, "x"), (here, "c")]]
    with stub_for("routeguide", "RouteGuide", guide) as stub:
        chat = _Chat(stub)
        try:
            chat.send(notes[0])
            chat.send(notes[1])
            got = chat.receive(2, "after the 2nd note at the same place")
            expect_equal(got.message, "a", "the reply to the 2nd note at the same place")
            chat.send(notes[2])
            chat.send(notes[3])
            got = [chat.receive(2, "after the 3rd note at the same place").message
                   for _ in range(2)]
            expect_equal(got, ["a", "b"], "the replies to the 3rd note at the same place")
            rest = chat.close()
            expect(not rest, f"unexpected replies after the last note: "
                   f"{[r.message for r in rest]}")
        finally:
            chat.abandon()
        # A second chat starts with no notes: notes belong to the call, not to the servicer.
        second = _Chat(stub)
        try:
            second.send(pb2.RouteNote(location=here, message="new"))
            second.send(pb2.RouteNote(location=here, message="new again"))
            got = second.receive(2, "after the 2nd note of a second chat")
            expect(got.message == "new", f"a second chat got {got.message!r} from the first "
                   "chat: keep the notes in a list made inside RouteChat (one per call), "
                   "not on self")
            second.close()
        finally:
            second.abandon()
        # Two chats at the same time: Alice's notes must never reach Bob, nor the reverse.
        alice, bob = _Chat(stub), _Chat(stub)
        try:
            alice.send(pb2.RouteNote(location=here, message="alice 1"))
            time.sleep(0.1)  # alice's note is remembered before bob says anything
            bob.send(pb2.RouteNote(location=here, message="bob 1"))
            time.sleep(0.1)
            alice.send(pb2.RouteNote(location=here, message="alice 2"))
            got = alice.receive(2, "to Alice's 2nd note while Bob chatted at the same place")
            expect(got.message == "alice 1", f"in two chats at once, Alice got {got.message!r} "
                   "instead of her own earlier note: each chat keeps its own notes, made inside "
                   "RouteChat, not on self (not even emptied when a call starts)")
            bob.send(pb2.RouteNote(location=here, message="bob 2"))
            got = bob.receive(2, "to Bob's 2nd note while Alice chatted at the same place")
            expect(got.message == "bob 1", f"in two chats at once, Bob got {got.message!r} "
                   "instead of his own earlier note: each chat keeps its own notes")
            alice.close()
            bob.close()
        finally:
            alice.abandon()
            bob.abandon()
        bad = pb2.RouteNote(location=_point(0, 190 * 10**7), message="?")
        _expect_stream_status(lambda: stub.RouteChat(iter([bad]), timeout=TIMEOUT),
                              INVALID_ARGUMENT, "a note at longitude 190 degrees")
    return ("replies came back while the client was still sending, in order; two chats at "
            "once each kept their own notes; bad input is refused")


FEED_PAUSE = 0.6  # seconds between two features of the feed in check 6.5


def _watch_ends(guide: Any, ends: dict[str, float],
                yields: dict[str, list[float]] | None = None) -> None:
    """Record when each ListFeatures generator of `guide` finishes, and when it yields each
    feature (in `yields`), by the call's name."""
    original = guide.ListFeatures

    def watched(request: Any, context: Any) -> Iterator[Any]:
        name = dict(context.invocation_metadata()).get("call", "?")
        try:
            for feature in original(request, context):
                if yields is not None:
                    yields.setdefault(name, []).append(time.monotonic())
                yield feature
        finally:
            ends[name] = time.monotonic()

    guide.ListFeatures = watched  # read by add_RouteGuideServicer_to_server


def _read_feed(call: Any, got: list, outcome: dict) -> None:
    try:
        for feature in call:
            got.append((time.monotonic(), feature.name))
        outcome["code"] = call.code()
    except grpc.RpcError as error:
        outcome["code"] = error.code()


@exercise(
    "6.5",
    "A feed that stops when its client does",
    notebook=LESSON,
    hint="A pause that nothing can interrupt cannot notice that its call ended. And one servicer "
    "object serves every call: whatever your handler keeps on self, every call shares.",
    second_hint="The context of a call can tell you when that call ends (a callback) or whether "
    "it is still on (a question you can ask between short waits). After the wait, tell apart "
    "'the pause is over' from 'the call is over': only one of them means carry on.",
)
def live_feed(servicer: Any) -> str:
    expect(isinstance(servicer, type), "pass the class (it is built with features and pause), "
           "not an instance")
    features = make_features(count=3, seed=65)
    guide = servicer(features, pause=FEED_PAUSE)
    ends: dict[str, float] = {}
    yields: dict[str, list[float]] = {}
    _watch_ends(guide, ends, yields)
    with stub_for("routeguide", "RouteGuide", guide) as stub:
        # The first call starts; the second starts once the first is waiting; the first
        # gets its second feature (so it has waited again since the second call began),
        # and then its client cancels it.
        first = stub.ListFeatures(AREA, timeout=TIMEOUT, metadata=[("call", "first")])
        _next_feature(first, 1)
        second = stub.ListFeatures(AREA, timeout=TIMEOUT, metadata=[("call", "second")])
        got: list = []
        outcome: dict = {}
        reader = threading.Thread(target=_read_feed, args=(second, got, outcome), daemon=True)
        reader.start()
        deadline = time.monotonic() + 2
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        expect(bool(got), "the second call received no feature within 2 s")
        _next_feature(first, 2)
        time.sleep(FEED_PAUSE / 6)  # the first call's generator is now in its pause
        cancelled_at = time.monotonic()
        first.cancel()
        reader.join(TIMEOUT + 1)
        stopped = time.monotonic()
        while "first" not in ends and time.monotonic() < stopped + 2 * FEED_PAUSE:
            time.sleep(0.01)
    names = [name for _, name in got]
    expect(outcome.get("code") == grpc.StatusCode.OK and len(names) == len(features),
           f"a call still running when another one was cancelled got {len(names)} of "
           f"{len(features)} features and ended with "
           f"{getattr(outcome.get('code'), 'name', 'no status')}: cancelling one call ended "
           "another. Keep the call's Event inside ListFeatures (one per call), not on self")
    expect_equal(names, [f.name for f in features], "the features of the feed, in order")
    took = got[-1][0] - got[0][0]
    least = (len(features) - 1) * FEED_PAUSE * 0.8
    expect(took >= least, f"the {len(features)} features came in {took:.2f} s, not about "
           f"{(len(features) - 1) * FEED_PAUSE:.1f} s: wait self.pause between features in "
           "every call (did another call's cancel wake this one? an Event on self is shared)")
    expect("first" in ends, "the cancelled call's generator did not finish within "
           f"{2 * FEED_PAUSE:.1f} s of the cancel")
    late = ends["first"] - cancelled_at
    expect(late < FEED_PAUSE / 2, f"the cancelled call's generator ran on for {late:.2f} s "
           f"after the client cancelled (at once means within {FEED_PAUSE / 2:.1f} s; the pause "
           f"is {FEED_PAUSE:.1f} s): a wait that nothing interrupts cannot notice the end of the "
           "call; wait on something that this call's end wakes (kept in the handler, not on "
           "self, where the next call replaces it), or check it in short steps")
    after = [at for at in yields.get("first", []) if at > cancelled_at]
    expect(not after, f"the cancelled call's generator yielded {len(after)} more feature(s) "
           "after its client cancelled: when the call has ended, return before the next "
           "feature, not after it")
    most = (len(features) - 1) * FEED_PAUSE * 1.25 + 0.25
    expect(took <= most, f"the {len(features)} features came in {took:.2f} s, not about "
           f"{(len(features) - 1) * FEED_PAUSE:.1f} s: wait self.pause between features, not a "
           "fixed time")
    _expect_deadline_ends(servicer, features)
    _expect_only_inside(servicer, features)
    return ("the cancelled call's generator ended at once and yielded nothing more; the other "
            "call carried on and got every feature, paced by self.pause, ending with OK; a call "
            "whose deadline passed ended at once too; only features inside the rectangle came")


def _expect_deadline_ends(servicer: Any, features: list) -> None:
    """A feed whose deadline passes during a pause finishes within FEED_PAUSE / 2 of it."""
    guide = servicer(features, pause=FEED_PAUSE)
    ends: dict[str, float] = {}
    _watch_ends(guide, ends)
    timeout = 1.3 * FEED_PAUSE  # during the pause after the second feature
    with stub_for("routeguide", "RouteGuide", guide, name="check-feed-deadline") as stub:
        started = time.monotonic()
        call = stub.ListFeatures(AREA, timeout=timeout, metadata=[("call", "deadline")])
        outcome: dict = {}
        _read_feed(call, [], outcome)
        waited_until = time.monotonic() + 2 * FEED_PAUSE
        while "deadline" not in ends and time.monotonic() < waited_until:
            time.sleep(0.01)
    expect(outcome.get("code") == grpc.StatusCode.DEADLINE_EXCEEDED,
           f"a feed of {len(features)} features with a deadline of {timeout:.2f} s ended with "
           f"{getattr(outcome.get('code'), 'name', 'no status')}, expected DEADLINE_EXCEEDED: "
           "wait self.pause after each feature")
    expect("deadline" in ends, "the generator of a call whose deadline passed did not finish "
           f"within {2 * FEED_PAUSE:.1f} s of it")
    late = ends["deadline"] - (started + timeout)
    expect(late < FEED_PAUSE / 2, f"the generator of a call whose deadline passed ran on for "
           f"{late:.2f} s after it: a deadline ends a call like a cancel does, and the feed "
           f"must notice within {FEED_PAUSE / 2:.1f} s")


def _next_feature(call: Any, number: int) -> Any:
    """The next feature of a feed the check is still reading."""
    try:
        return next(call)
    except StopIteration:
        raise Mismatch(f"the feed ended after {number - 1} feature(s) while its client was still "
                       "reading, with more features to come: return only when this call has "
                       "ended, not when a pause runs out") from None


def _expect_only_inside(servicer: Any, features: list) -> None:
    """A feed over a small rectangle streams only the features inside it (edges included)."""
    guide = servicer(features, pause=0.01)
    corner = features[1].location
    rectangle = pb2.Rectangle(lo=corner, hi=_point(corner.latitude + 5_000_000,
                                                   corner.longitude + 5_000_000))
    expected = sorted(f.name for f in ReferenceGuide(features).ListFeatures(rectangle, None))
    with stub_for("routeguide", "RouteGuide", guide, name="check-feed-rectangle") as stub:
        got = sorted(f.name for f in stub.ListFeatures(rectangle, timeout=TIMEOUT))
    expect(got == expected, f"a feed over a small rectangle streamed {got}, expected "
           f"{expected}: yield only the features inside the rectangle")


# ---- 6.6 (the challenge): a conversation that ends cleanly ----------------------------------

FAIL_WORD = "fail"  # a note with this message makes the check's server end the call with an error
REPLY_PAUSE = 0.1  # seconds the check's server takes to answer each note


class _Listener(routeguide_pb2_grpc.RouteGuideServicer):
    """RouteChat for 6.6: answers each note (after REPLY_PAUSE) with 'heard <message>'; once the
    client half-closes, says 'bye after N notes' and ends with OK, or, if a note said 'fail',
    ends the call with FAILED_PRECONDITION."""

    def RouteChat(self, request_iterator: Iterator[Any], context: grpc.ServicerContext
                  ) -> Iterator[Any]:
        count, failing = 0, False
        for note in request_iterator:
            count += 1
            failing |= note.message == FAIL_WORD
            time.sleep(REPLY_PAUSE)
            yield pb2.RouteNote(location=note.location, message=f"heard {note.message}")
        if failing:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"a note said {FAIL_WORD!r}")
        yield pb2.RouteNote(message=f"bye after {count} notes")


def _notes(*messages: str) -> list:
    return [pb2.RouteNote(location=_point(400_000_000 + i, -740_000_000), message=message)
            for i, message in enumerate(messages)]


def _chat_call(tap: Any) -> Any:
    """The RouteChat call in `tap`'s capture, once its last frames have arrived."""
    tap.wait_idle(timeout=3, quiet=0.2)
    calls = [call for call in tap.calls() if call.path.endswith("/RouteChat")]
    expect(len(calls) == 1, f"the tap saw {len(calls)} RouteChat calls; make one call to the "
                            "target you are given")
    return calls[0]


def _turns_taken(call: Any) -> str | None:
    """The first note that left before the reply to the note before it; None if none did."""
    notes = replies = 0
    for frame in call.frames:  # in the order the tap passed them on: cause before effect
        for message in frame.messages:
            if not frame.direction.startswith("client"):
                replies += 1
                continue
            if notes > replies:
                return message.decoded.message if message.decoded is not None else "?"
            notes += 1
    return None


def _talk(converse: Callable[..., Any], messages: tuple[str, ...], timeout: float
          ) -> tuple[Any, BaseException | None, Any]:
    """Run `converse` through a tap in front of a _Listener: (returned, raised, the call)."""
    from helpers.servers import serve
    from helpers.wiretap import wiretap

    with serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, _Listener(),
               name="check-6.6") as server, wiretap(server.target) as tap:
        returned = raised = None
        try:
            returned = within(timeout + 3,
                              lambda: converse(tap.target, _notes(*messages), timeout),
                              "converse is still running long after its deadline: give the "
                              "call a deadline (timeout=)")
        except (Mismatch, NotImplementedError):
            raise
        except Exception as error:  # judged by the caller
            raised = error
        return returned, raised, _chat_call(tap)


def _raised(error: BaseException) -> str:
    return describe_rpc_error(error) if isinstance(error, grpc.RpcError) else repr(error)


def _texts(replies: Any) -> Any:
    try:
        return [reply.message for reply in replies]
    except (TypeError, AttributeError):
        return replies


@exercise(
    "6.6",
    "A conversation that ends cleanly",
    notebook=LESSON,
    hint="Three things decide how a stream ends: who sends the last message, who says 'nothing "
    "more from me', and who reads until the server has said everything. Run your function "
    "through a tap and read the last frames of its stream.",
    second_hint="A request iterator that has handed out its last note and returns is the "
    "client's END_STREAM. For turn-taking, the iterator must not hand out the next note before "
    "the reply to the previous one was read; and a call you stop reading before its status is "
    "cancelled when its channel closes.",
)
def conversation(converse: Callable[..., Any]) -> str:
    from helpers.checks.core import stuck_server

    messages = ("hello", "how are you", "goodbye")
    expected = [f"heard {m}" for m in messages] + [f"bye after {len(messages)} notes"]
    returned, raised, call = _talk(converse, messages, TIMEOUT)
    what = f"converse(target, {len(messages)} notes, timeout={TIMEOUT})"
    deadline_hit = (isinstance(raised, grpc.RpcError)
                    and raised.code() == grpc.StatusCode.DEADLINE_EXCEEDED)
    never_closed = not call.half_closed and (deadline_hit or not call.reset)
    expect(not never_closed,
           f"{what}: the server never saw END_STREAM from your side, so it kept waiting for "
           "more notes" + (" until the deadline" if deadline_hit else "")
           + ": after the last note, let the request iterator end (half-close)")
    if call.reset:
        side = "client" if call.reset_by.startswith("client") else "server"
        raise Mismatch(f"{what}: the tap saw RST_STREAM {call.reset} from the {side} on your "
                       "call: it was cancelled, not ended. Read the call to its end instead of "
                       "cancelling it (or closing its channel before the end)")
    if raised is not None:
        raise Mismatch(f"{what} raised {_raised(raised)}")
    texts = _texts(returned)
    expect(isinstance(texts, list) and all(isinstance(t, str) for t in texts),
           f"{what} returned {returned!r}: return a list of the RouteNote replies")
    early = _turns_taken(call)
    expect(early is None,
           f"{what}: the note {early!r} went out before the reply to the note before it had "
           "arrived (the tap shows the order): take turns, one note per reply")
    expect(texts[-1:] == expected[-1:] or texts != expected[:-1],
           f"{what} returned {texts!r}: the server's last reply, {expected[-1]!r}, sent after "
           "your last note, is missing: read the call to its end")
    expect_equal(texts, expected, f"{what}, the replies,")
    expect(call.status == grpc.StatusCode.OK, f"{what}: the call ended with {call.end}")

    returned, raised, call = _talk(converse, (), TIMEOUT)
    expect(raised is None and _texts(returned) == ["bye after 0 notes"],
           "converse(target, [], ...) with no notes must half-close at once and return the "
           "server's one reply ['bye after 0 notes']; it "
           + (f"returned {_texts(returned)!r}" if raised is None else
              f"raised {_raised(raised)}"))

    returned, raised, call = _talk(converse, ("hello", FAIL_WORD, "more"), TIMEOUT)
    expect(raised is not None,
           f"the server ended a conversation with FAILED_PRECONDITION, but converse returned "
           f"{_texts(returned)!r}: let the server's error reach the caller")
    expect(isinstance(raised, grpc.RpcError)
           and raised.code() == grpc.StatusCode.FAILED_PRECONDITION,
           "the server ended a conversation with FAILED_PRECONDITION; converse raised "
           + _raised(raised)
           + ": read to the end, and let the server's own status through")

    with stuck_server() as stuck:
        start = time.monotonic()
        try:
            within(3.0, lambda: converse(stuck, _notes("anyone there?"), 1.0),
                   "converse(target, notes, timeout=1.0) waited on a server that never "
                   "answers: give the call a deadline, the timeout you are given (timeout=)")
            stuck_raised = None
        except (Mismatch, NotImplementedError):
            raise
        except Exception as error:  # judged below
            stuck_raised = error
        waited = time.monotonic() - start
    expect(isinstance(stuck_raised, grpc.RpcError)
           and stuck_raised.code() == grpc.StatusCode.DEADLINE_EXCEEDED,
           "against a server that never answers, converse(target, notes, timeout=1.0) "
           + ("returned" if stuck_raised is None else
              f"raised {_raised(stuck_raised)}")
           + ": it should raise DEADLINE_EXCEEDED once the timeout it was given has passed")
    expect(waited <= 2.0, f"converse(..., timeout=1.0) waited {waited:.1f} s on a server that "
                          "never answers: use the timeout you are given")
    return ("each note waited for the reply to the one before; the tap shows END_STREAM from "
            "the client, no RST_STREAM and OK; the reply sent after the last note arrived; an "
            "error came through as FAILED_PRECONDITION; a silent server was given up after "
            f"{waited:.1f} s")
