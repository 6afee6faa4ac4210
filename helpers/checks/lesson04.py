"""Checks for lesson 04, route guide."""

from __future__ import annotations

import queue
from collections import Counter
from typing import Any, Callable, Iterator

import grpc

from helpers.checks.core import exercise, expect, expect_equal, expect_status, stub_for
from helpers.reference import Person, RouteGuide, route_guide_pb2 as pb2, sample_people

LESSON = "04_route_guide"


def _instance(servicer: Any, *args: Any) -> Any:
    """`servicer(*args)` for a class, the servicer itself for an instance."""
    return servicer(*args) if isinstance(servicer, type) else servicer


@exercise(
    "4.1",
    "GetPerson with NOT_FOUND",
    notebook=LESSON,
    hint="First `if not request.name:` call context.abort(grpc.StatusCode.INVALID_ARGUMENT, ...); "
    "then `if request.name not in self.people:` call "
    "context.abort(grpc.StatusCode.NOT_FOUND, f'no person named {request.name!r}'); "
    "otherwise return self.people[request.name].",
)
def get_person(servicer: Any) -> str:
    people = {**sample_people(), "Zed": Person(name="Zed", age=41, hobbies=["chess"])}
    with stub_for("route_guide", "RouteGuide", _instance(servicer, people)) as stub:
        for name in ["Alice", "Zed"]:
            got = stub.GetPerson(pb2.Name(name=name), timeout=5)
            expect_equal(got, people[name], f"GetPerson({name!r})")
        for name in ["Carol", "alice"]:
            expect_status(stub.GetPerson, pb2.Name(name=name), grpc.StatusCode.NOT_FOUND,
                          f"GetPerson({name!r})")
            try:
                stub.GetPerson(pb2.Name(name=name), timeout=5)
            except grpc.RpcError as error:
                expect(name in (error.details() or ""),
                       f"the NOT_FOUND message {error.details()!r} should name {name!r}")
        expect_status(stub.GetPerson, pb2.Name(name=""), grpc.StatusCode.INVALID_ARGUMENT,
                      "GetPerson('')")
    return "2 known names found, 2 unknown ones NOT_FOUND, an empty one INVALID_ARGUMENT"


def _one_by_one(stub: Any, name: str) -> pb2.PersonResult:
    """Send `name` on an open GetPeople stream and wait for its reply before closing."""
    outbox: queue.Queue = queue.Queue()

    def requests() -> Iterator[pb2.Name]:
        while (item := outbox.get()) is not None:
            yield pb2.Name(name=item)

    replies = stub.GetPeople(requests(), timeout=3)
    outbox.put(name)
    try:
        return next(replies)
    except grpc.RpcError as error:
        expect(error.code() != grpc.StatusCode.DEADLINE_EXCEEDED,
               f"GetPeople sent no reply to {name!r} while the client kept the stream open: "
               "yield each result inside the loop, as soon as its name arrives")
        raise
    finally:
        outbox.put(None)
        replies.cancel()


@exercise(
    "4.2",
    "GetPeople, one result per name",
    notebook=LESSON,
    hint="Loop `for request in request_iterator:`, build "
    "result = route_guide_pb2.PersonResult(requested_name=request.name), then either "
    "result.person.CopyFrom(self.people[request.name]) or result.error = '...', and "
    "`yield result` inside the loop.",
)
def get_people(servicer: Any) -> str:
    people = sample_people()
    names = ["Alice", "Carol", "", "Bob", "Alice"]
    with stub_for("route_guide", "RouteGuide", _instance(servicer)) as stub:
        results = list(stub.GetPeople(iter([pb2.Name(name=n) for n in names]), timeout=5))
        expect_equal([r.requested_name for r in results], names,
                     f"the requested_name of each result for the names {names}")
        for name, result in zip(names, results):
            if name in people:
                expect_equal(result.person, people[name], f"the result for {name!r}")
            else:
                expect(result.WhichOneof("outcome") == "error" and bool(result.error),
                       f"the result for {name!r} should set `error` (and not `person`)")
        expect_equal(list(stub.GetPeople(iter([]), timeout=5)), [], "an empty stream's results")
        reply = _one_by_one(stub, "Bob")
        expect_equal(reply.person, people["Bob"], "the reply to 'Bob' on an open stream")
    return "5 names got 5 results in order, errors for 2, and each reply came as its name arrived"


class _CountingRouteGuide(RouteGuide):
    """The reference route guide, counting calls and noting each call's deadline."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter = Counter()
        self.time_left: list[float] = []

    def GetPerson(self, request, context):
        self.calls["GetPerson"] += 1
        return super().GetPerson(request, context)

    def GetPeople(self, request_iterator, context):
        self.calls["GetPeople"] += 1
        self.time_left.append(context.time_remaining())
        yield from super().GetPeople(request_iterator, context)


@exercise(
    "4.3",
    "Stream names and collect the replies",
    notebook=LESSON,
    hint="requests = (route_guide_pb2.Name(name=n) for n in names); then "
    "`for result in stub.GetPeople(requests, timeout=5):` and use result.HasField('person') "
    "to put result.person in `found` or result.requested_name in `missing`.",
)
def lookup_people(lookup: Callable[..., tuple[dict, list[str]]]) -> str:
    people = sample_people()
    cases = [(["Alice", "Carol", "Bob", "Dave"], ["Alice", "Bob"], ["Carol", "Dave"]),
             (["Eve"], [], ["Eve"]), ([], [], [])]
    servicer = _CountingRouteGuide()
    with stub_for("route_guide", "RouteGuide", servicer) as stub:
        for names, found_names, missing_names in cases:
            got = lookup(stub, names)
            expect(isinstance(got, tuple) and len(got) == 2,
                   f"lookup_people(stub, {names}) returned {got!r}; expected a tuple (found, missing)")
            found, missing = got
            expect_equal(dict(found), {n: people[n] for n in found_names},
                         f"`found` for {names}")
            expect_equal(list(missing), missing_names, f"`missing` for {names}")
    expect_equal(servicer.calls["GetPerson"], 0, "the number of GetPerson calls")
    expect_equal(servicer.calls["GetPeople"], len(cases),
                 f"the number of GetPeople calls for {len(cases)} lookups")
    expect(all(left < 3600 for left in servicer.time_left),
           "a GetPeople call had no deadline: pass timeout= to stub.GetPeople")
    return f"{len(cases)} lookups, one GetPeople stream each, with a deadline and the right split"
