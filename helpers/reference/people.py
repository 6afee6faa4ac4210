"""The finished people directory of lesson 04: look people up by name.

Seed article 001 calls this service `RouteGuide`; it looks people up, so the
course calls it `PeopleDirectory` (lesson 06's `routeguide.RouteGuide` is the
classic route guide). `GetPerson` answers an unknown name with NOT_FOUND (not a
"Not Found" person); `GetPeople` answers every streamed name with one
`PersonResult`, so an unknown name is reported in its reply and the stream
carries on.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import grpc

from helpers import protos

person_pb2, _ = protos.load("person")
people_pb2, people_pb2_grpc = protos.load("people")

Person = person_pb2.Person


def sample_people() -> dict[str, Person]:
    """The two people of the tutorial lesson 04 follows, keyed by name."""
    return {
        "Alice": Person(
            name="Alice", age=30, gender=Person.GENDER_FEMALE, hobbies=["reading", "swimming"],
            address=Person.Address(street="123 Main St", city="New York"),
        ),
        "Bob": Person(
            name="Bob", age=25, gender=Person.GENDER_MALE, hobbies=["gaming", "cycling"],
            address=Person.Address(street="456 Elm St", city="Los Angeles"),
        ),
    }


def preview(text: str, limit: int = 40) -> str:
    """`text` quoted and cut to `limit` characters, for error messages: a status
    message travels in a header, and headers have a size limit (8 KiB by default)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def lookup(people: dict[str, Person], name: str) -> people_pb2.PersonResult:
    """One GetPeople reply: the person called `name`, or the reason there is none."""
    result = people_pb2.PersonResult(requested_name=name)
    if not name:
        result.error = "name is empty"
    elif name in people:
        result.person.CopyFrom(people[name])
    else:
        result.error = f"no person named {preview(name)}"
    return result


class PeopleDirectory(people_pb2_grpc.PeopleDirectoryServicer):
    """People by name: unary GetPerson, bidirectional-streaming GetPeople."""

    def __init__(self, people: dict[str, Person] | None = None) -> None:
        self.people = sample_people() if people is None else people

    def GetPerson(self, request, context):
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        if request.name not in self.people:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no person named {preview(request.name)}")
        return self.people[request.name]

    def GetPeople(
        self, request_iterator: Iterable[people_pb2.Name], context
    ) -> Iterator[people_pb2.PersonResult]:
        for request in request_iterator:
            yield lookup(self.people, request.name)
