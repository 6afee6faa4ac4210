"""Checks for lesson 04, the people directory."""

from __future__ import annotations

import queue
import time
from collections import Counter
from typing import Any, Callable, Iterator

import grpc
from hypothesis import strategies as st

from helpers.checks.core import (
    Mismatch,
    abort_after,
    compare_with_reference,
    describe_rpc_error,
    exercise,
    expect,
    expect_equal,
    expect_error_status,
    stub_for,
    within,
)
from helpers.reference import PeopleDirectory, Person, people_pb2 as pb2, sample_people
from helpers.reference import people_pb2_grpc
from helpers.reference.people import lookup
from helpers.servers import serve
from helpers.wiretap import CLIENT, wiretap

LESSON = "04_people_directory"
TIMEOUT = 5  # seconds: the deadline of the calls a check makes


def _instance(servicer: Any, people: dict[str, Person]) -> Any:
    """An instance of the learner's servicer class, serving `people`."""
    expect(isinstance(servicer, type),
           "pass the class itself, not an instance: the check gives it people of its own")
    return servicer(people)


def _people() -> dict[str, Person]:
    """The seed's two people and one the learner's code cannot know in advance."""
    return {**sample_people(), "Zed": Person(name="Zed", age=41, hobbies=["chess"])}


def _crowd() -> dict[str, Person]:
    """People whose names are prefixes of each other and differ only in case."""
    names = ["Ann", "Anna", "anna", "Annabel", "Bob", "Zed", "Zed Jr"]
    return {name: Person(name=name, age=20 + i) for i, name in enumerate(names)}


def _lookups() -> Any:
    """Names to look up in `_crowd()`: stored ones, their prefixes, case changes, extensions."""
    stored = list(_crowd())
    variants = [name[:cut] for name in stored for cut in range(len(name))]
    variants += [name.upper() for name in stored] + [name.swapcase() for name in stored]
    variants += [name + suffix for name in stored for suffix in (" ", "s", "x")]
    variants += [" " + name for name in stored]
    return st.sampled_from(stored + variants + ["", "Carol", "ann a"])


def _person_outcome(stub: Any) -> Callable[[str], Any]:
    """name -> the Person GetPerson returned (a failed call raises its RpcError)."""
    return lambda name: stub.GetPerson(pb2.Name(name=name), timeout=TIMEOUT)


def _get_person(stub: Any, name: str) -> tuple[Any, grpc.RpcError | None]:
    try:
        return stub.GetPerson(pb2.Name(name=name), timeout=TIMEOUT), None
    except grpc.RpcError as error:
        return None, error


@exercise(
    "4.1",
    "GetPerson with NOT_FOUND",
    notebook=LESSON,
    hint="Look the name up in self.people. A missing name is an error of the call, not a "
    "reply: end the call with context.abort and a status code. An empty name is a different "
    "mistake (the caller's), with its own code.",
    second_hint="A name matches only when it is exactly a stored name: not a prefix of one, not "
    "the same letters in another case. Test the empty name before looking anything up.",
)
def get_person(servicer: Any) -> str:
    people = _people()
    with stub_for("people", "PeopleDirectory", _instance(servicer, people)) as stub:
        for name in ["Alice", "Zed"]:
            got, error = _get_person(stub, name)
            expect(error is None,
                   f"GetPerson({name!r}) ended with {describe_rpc_error(error)} although the "
                   f"servicer was given a person named {name!r}: look names up in self.people"
                   if error is not None else "")
            expect_equal(got, people[name], f"GetPerson({name!r})")
        for name in ["Carol", "alice"]:
            got, error = _get_person(stub, name)
            if error is None:
                raise Mismatch(
                    f"GetPerson({name!r}) succeeded with a person named {got.name!r} although "
                    "nobody has that name: a made-up reply is a sentinel; end the call with "
                    "NOT_FOUND instead")
            if error.code() in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
                raise Mismatch(
                    f"GetPerson({name!r}) ended with {describe_rpc_error(error)}: an unknown "
                    "name must end the call on purpose, with context.abort and NOT_FOUND")
            expect_error_status(error, grpc.StatusCode.NOT_FOUND, f"GetPerson({name!r})")
            expect(name in (error.details() or ""),
                   f"the NOT_FOUND message {error.details()!r} should name {name!r}")
        _, error = _get_person(stub, "")
        expect_error_status(error, grpc.StatusCode.INVALID_ARGUMENT, "GetPerson('') (an empty name)")
    crowd = _crowd()
    with stub_for("people", "PeopleDirectory", _instance(servicer, crowd)) as yours:
        with stub_for("people", "PeopleDirectory", PeopleDirectory(crowd),
                      name="check-reference") as reference:
            compared = compare_with_reference(
                _person_outcome(yours), _person_outcome(reference), _lookups(),
                lambda name: f"GetPerson({name!r}) among the people {sorted(crowd)}",
                examples=["Ann", "Anna", "anna", "An", "ANN", "Zed", "Zed Jr"], max_examples=30)
    return (f"known names found, unknown ones NOT_FOUND naming the name, an empty one "
            f"INVALID_ARGUMENT, and {compared} lookups among names that are prefixes or case "
            "variants of each other agree with the reference")


def _one_by_one(stub: Any, name: str) -> pb2.PersonResult:
    """Send `name` on an open GetPeople stream and wait for its reply; then half-close
    the request side and read the stream to its end, which must be OK."""
    outbox: queue.Queue = queue.Queue()

    def requests() -> Iterator[pb2.Name]:
        while (item := outbox.get()) is not None:
            yield pb2.Name(name=item)

    replies = stub.GetPeople(requests(), timeout=3)
    outbox.put(name)
    try:
        reply = next(replies)
    except grpc.RpcError as error:
        expect(error.code() != grpc.StatusCode.DEADLINE_EXCEEDED,
               f"GetPeople sent no reply to {name!r} while the client kept the stream open: "
               "yield each result inside the loop, as soon as its name arrives, instead of "
               "reading every name first")
        raise
    finally:
        outbox.put(None)  # no more names: the request side half-closes
    rest = list(replies)
    expect_equal(rest, [], f"the replies after the only name, {name!r}")
    expect_equal(replies.code(), grpc.StatusCode.OK, "the status of a stream read to its end")
    return reply


@exercise(
    "4.2",
    "GetPeople, one result per name",
    notebook=LESSON,
    hint="A generator: loop over request_iterator and yield one PersonResult per name, inside "
    "the loop. An unknown or empty name gets a result too, with its `error` set, and the loop "
    "carries on.",
    second_hint="A oneof field is set by assigning it (error) or by copying into it (person, a "
    "message field cannot be assigned). Names match exactly, as in 4.1.",
)
def get_people(servicer: Any) -> str:
    people = _people()
    names = ["Alice", "Carol", "", "Zed", "Alice"]
    with stub_for("people", "PeopleDirectory", _instance(servicer, people)) as stub:
        try:
            results = list(stub.GetPeople(iter([pb2.Name(name=n) for n in names]),
                                          timeout=TIMEOUT))
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise Mismatch(
                    f"GetPeople({names}) ended the whole stream with {describe_rpc_error(error)}: "
                    "a name nobody has is not the end of the conversation; answer it with a "
                    "PersonResult whose `error` is set, and go on to the next name") from None
            if "not an iterator" in (error.details() or ""):
                raise Mismatch(
                    f"GetPeople returned something that is not an iterator ({error.details()}): "
                    "make it a generator that yields each result inside the loop") from None
            raise
        expect_equal([r.requested_name for r in results], names,
                     f"the requested_name of each result for the names {names} (one result "
                     "per name, in order, unknown ones included)")
        for name, result in zip(names, results):
            if name in people:
                expect(result.WhichOneof("outcome") == "person",
                       f"the result for {name!r} should set `person`, but has "
                       f"{result.WhichOneof('outcome')!r}")
                expect_equal(result.person, people[name],
                             f"the person in the result for {name!r} (from self.people)")
            else:
                expect(result.WhichOneof("outcome") == "error" and bool(result.error),
                       f"the result for {name!r} should set `error` to a reason (and not "
                       f"`person`), but has {result.WhichOneof('outcome')!r}")
        expect_equal(list(stub.GetPeople(iter([]), timeout=TIMEOUT)), [],
                     "an empty stream's results")
        reply = _one_by_one(stub, "Bob")
        expect_equal(reply.person, people["Bob"], "the reply to 'Bob' on an open stream")
    crowd = _crowd()

    def results(stub: Any) -> Callable[[list[str]], list[tuple]]:
        def call(names: list[str]) -> list[tuple]:
            replies = stub.GetPeople(iter([pb2.Name(name=n) for n in names]), timeout=TIMEOUT)
            return [(r.requested_name, r.WhichOneof("outcome"),
                     r.person if r.HasField("person") else None) for r in replies]
        return call

    with stub_for("people", "PeopleDirectory", _instance(servicer, crowd)) as yours:
        with stub_for("people", "PeopleDirectory", PeopleDirectory(crowd),
                      name="check-reference") as reference:
            compared = compare_with_reference(
                results(yours), results(reference), st.lists(_lookups(), max_size=6),
                lambda names: f"GetPeople({names}) among the people {sorted(crowd)}",
                examples=[["Ann", "An", "anna", "Anna"]], max_examples=20)
    return ("5 names got 5 results in order (2 of them errors), each reply came as its name "
            f"arrived, the stream ended OK, and {compared} streams of look-alike names agree "
            "with the reference")


class _CountingDirectory(PeopleDirectory):
    """The reference directory, counting calls and noting each stream's deadline."""

    def __init__(self, people: dict[str, Person]) -> None:
        super().__init__(people)
        self.calls: Counter = Counter()
        self.time_left: list[float] = []

    def GetPerson(self, request, context):
        self.calls["GetPerson"] += 1
        return super().GetPerson(request, context)

    def GetPeople(self, request_iterator, context):
        self.calls["GetPeople"] += 1
        self.time_left.append(context.time_remaining())
        time.sleep(0.05)  # a call without a real deadline (timeout=0) cannot pass by luck
        yield from super().GetPeople(request_iterator, context)


class _FailingDirectory(PeopleDirectory):
    """The reference directory, whose GetPeople stream fails after two replies."""

    def GetPeople(self, request_iterator, context):
        yield from abort_after(super().GetPeople(request_iterator, context), 2, context)


@exercise(
    "4.3",
    "Stream names and collect the replies",
    notebook=LESSON,
    hint="One stub.GetPeople call with an iterator of Name messages (and a timeout=); iterate "
    "over what it returns. Each result says which name it answers, and HasField tells "
    "whether it holds a person.",
    second_hint="The requests can be a generator expression over `names`. A result whose "
    "`person` is not set is a missing name; a call that fails is not: it is the caller's "
    "problem, so don't catch its error.",
)
def lookup_people(lookup: Callable[..., tuple[dict, list[str]]]) -> str:
    people = _people()
    cases = [(["Alice", "Carol", "Zed", "Dave"], ["Alice", "Zed"], ["Carol", "Dave"]),
             (["Zoe", "Bob", "Carol"], ["Bob"], ["Zoe", "Carol"]),
             (["Eve"], [], ["Eve"]), ([], [], [])]
    servicer = _CountingDirectory(people)
    with stub_for("people", "PeopleDirectory", servicer) as stub:
        for names, found_names, missing_names in cases:
            before = Counter(servicer.calls)
            try:
                got = lookup(stub, list(names))
            except grpc.RpcError as error:
                if "iterating requests" in (error.details() or ""):
                    raise Mismatch(
                        f"GetPeople failed with {describe_rpc_error(error)}: the requests must "
                        "be an iterator (a generator, or iter() of a list), not a list") from None
                raise
            calls = servicer.calls - before
            expect(calls["GetPerson"] == 0,
                   f"lookup_people(stub, {names}) made {calls['GetPerson']} GetPerson calls: "
                   "use one GetPeople stream instead of one call per name")
            if names:
                expect(calls["GetPeople"] == 1,
                       f"lookup_people(stub, {names}) made {calls['GetPeople']} GetPeople calls; "
                       "expected 1: send every name on one stream"
                       + (" (it looked the names up without calling the server)"
                          if calls["GetPeople"] == 0 else ""))
            expect(isinstance(got, tuple) and len(got) == 2,
                   f"lookup_people(stub, {names}) returned {got!r}; expected a tuple (found, missing)")
            found, missing = got
            expect(isinstance(found, dict), f"`found` should be a dict, got {type(found).__name__}")
            expect_equal(sorted(found), sorted(found_names),
                         f"the names in `found` for {names}")
            for name, person in found.items():
                expect(isinstance(person, Person),
                       f"found[{name!r}] is a {type(person).__name__}; expected the Person "
                       "inside the result (result.person)")
                expect_equal(person, people[name], f"found[{name!r}]")
            expect_equal(list(missing), missing_names,
                         f"`missing` for {names} (the names that got an error, in the order sent)")
    expect(servicer.time_left and all(left < 3600 for left in servicer.time_left),
           "a GetPeople call had no deadline: pass timeout= to stub.GetPeople")
    with stub_for("people", "PeopleDirectory", _FailingDirectory(people),
                  name="check-failing") as stub:
        names = ["Alice", "Bob", "Zed", "Carol"]
        try:
            got = lookup(stub, names)
        except grpc.RpcError as error:
            expect(error.code() == grpc.StatusCode.UNAVAILABLE,
                   f"a stream failing midway raised {describe_rpc_error(error)}, expected the "
                   "stream's own UNAVAILABLE")
        else:
            raise Mismatch(f"when the GetPeople stream failed after 2 replies, lookup_people "
                           f"returned {got!r}: a failed call is not a list of missing names; "
                           "let its RpcError reach the caller")
    return (f"{len(cases)} lookups, one GetPeople stream each (with a deadline), found and "
            "missing split right, in order; a stream failing midway raised its error")


class _PacedDirectory(PeopleDirectory):
    """The reference directory, answering each name after 50 ms and noting what it received.

    The pause lets a client that sends every name at once do so before the first reply."""

    def __init__(self, people: dict[str, Person]) -> None:
        super().__init__(people)
        self.received: list[str] = []
        self.time_left: list[float | None] = []

    def GetPeople(self, request_iterator, context):
        self.time_left.append(context.time_remaining())
        for request in request_iterator:
            self.received.append(request.name)
            time.sleep(0.05)
            yield lookup(self.people, request.name)


def _sent_ahead(call: Any) -> int | None:
    """The first request (1-based) that left the client before the reply to the one before it."""
    sent = answered = 0
    for frame in call.frames:
        if frame.type != "DATA":
            continue
        for _ in frame.messages:
            if frame.direction == CLIENT:
                sent += 1
                if sent >= 2 and answered < sent - 1:
                    return sent
            else:
                answered += 1
    return None


@exercise(
    "4.4",
    "Challenge: one name at a time, until one is missing",
    notebook=LESSON,
    hint="The request iterator is pulled by gRPC whenever it likes: to hold the next name back "
    "until its turn, the iterator must wait for something your loop over the replies gives it.",
    second_hint="A queue.Queue between the reply loop and a generator works: the generator "
    "yields what it takes from the queue and ends when it takes a sentinel. Ending the "
    "generator is how the client closes its side.",
)
def one_at_a_time(ask: Callable[..., list]) -> str:
    people = _people()
    cases = [(["Alice", "Bob", "Nobody", "Zed"], ["Alice", "Bob"]),
             (["Zed", "Alice", "Bob"], ["Zed", "Alice", "Bob"]),
             (["Carol", "Alice"], [])]
    for names, expected in cases:
        servicer = _PacedDirectory(people)
        with serve(people_pb2_grpc.add_PeopleDirectoryServicer_to_server, servicer,
                   name="check-4.4") as server, wiretap(server.target) as tap:
            with grpc.insecure_channel(tap.target) as channel:
                stub = people_pb2_grpc.PeopleDirectoryStub(channel)
                got = within(10, lambda: ask(stub, list(names), 5),
                             "every name waits for the reply before it, and the stream ends")
            tap.wait_for(lambda: any(call.reset or call.trailers for call in tap.calls()),
                         timeout=10)  # a busy machine may pass the last frame on late
            calls = [call for call in tap.calls() if call.path.endswith("/GetPeople")]
        what = f"ask_until_missing(stub, {names}, timeout=5)"
        expect(len(calls) == 1, f"{what} made {len(calls)} GetPeople calls; expected one stream")
        call = calls[0]
        ahead = _sent_ahead(call)
        expect(ahead is None, f"{what}: the wire shows name {ahead} leaving the client before the "
               f"reply to name {ahead and ahead - 1} had arrived: send one name, wait for its "
               "reply, then send the next")
        stop = names[len(expected)] if len(expected) < len(names) else None
        expect(servicer.received == names[:len(expected) + (1 if stop else 0)],
               f"{what}: the server received {servicer.received}"
               + (f"; nothing may follow {stop!r}, the first name nobody has" if stop else ""))
        expect(isinstance(got, list) and [p.name for p in got] == expected,
               f"{what} returned {[getattr(p, 'name', p) for p in got] if isinstance(got, list) else got!r}, "
               f"expected the Persons {expected}, in order")
        expect(call.reset is None, f"{what} ended the call with a cancel (RST_STREAM "
               f"{call.reset}): close the request side and read the stream to its end instead")
        expect(call.half_closed and call.status == grpc.StatusCode.OK,
               f"{what}: the call ended {call.end}, expected the client to close its side "
               "(END_STREAM) and the stream to end OK")
        expect(all(left is not None and left < 3600 for left in servicer.time_left),
               f"{what} opened the stream without a deadline: pass timeout=")
    return (f"{len(cases)} streams, read off the wire: each name left only after the reply to "
            "the one before, nothing after the first missing name, Persons returned in order, "
            "the client closed its side and the stream ended OK (no cancel), with a deadline")
