"""Checks of lessons 04 and 05, and helpers/grpcurl.py.

Each check passes on the reference answer and fails with CheckFailed on a
plausible wrong answer and on an unsolved (raising) one.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Any, Iterator

import grpc
import pytest
from conftest import fails, passes
from grpc_reflection.v1alpha import reflection

from helpers import grpcurl
from helpers.reference import (
    EmailTaken,
    RouteGuide,
    UserService,
    UserStore,
    field_errors,
    person_pb2,
    route_guide_pb2,
    route_guide_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)
from helpers.servers import serve




# Lesson 04 ---------------------------------------------------------------------------


class SentinelRouteGuide(RouteGuide):
    def GetPerson(self, request, context):
        return self.people.get(request.name, person_pb2.Person(name="Not Found"))


class NoEmptyCheck(RouteGuide):
    def GetPerson(self, request, context):
        if request.name not in self.people:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no person named {request.name!r}")
        return self.people[request.name]


class SkippingRouteGuide(RouteGuide):
    def GetPeople(self, request_iterator, context):
        for request in request_iterator:
            if request.name in self.people:
                yield route_guide_pb2.PersonResult(requested_name=request.name,
                                                   person=self.people[request.name])


class ReadsEverythingFirst(RouteGuide):
    def GetPeople(self, request_iterator, context):
        names = list(request_iterator)
        yield from super().GetPeople(iter(names), context)


class UnsolvedRouteGuide(RouteGuide):
    def GetPerson(self, request, context):
        raise NotImplementedError("Exercise 4.1: not solved yet")

    def GetPeople(self, request_iterator, context):
        raise NotImplementedError("Exercise 4.2: not solved yet")


def test_lesson04_reference_answers_pass(capsys: Any) -> None:
    passes(capsys, "4.1", RouteGuide)
    passes(capsys, "4.2", RouteGuide)


def test_the_not_found_sentinel_fails(capsys: Any) -> None:
    assert "GetPerson('Carol') succeeded, expected it to fail with NOT_FOUND" in fails(
        capsys, "4.1", SentinelRouteGuide)


def test_an_empty_name_must_be_invalid_argument(capsys: Any) -> None:
    assert "GetPerson('') ended with NOT_FOUND" in fails(capsys, "4.1", NoEmptyCheck)


def test_skipping_unknown_names_fails(capsys: Any) -> None:
    assert "requested_name of each result" in fails(capsys, "4.2", SkippingRouteGuide)


def test_a_stream_that_answers_only_at_the_end_fails(capsys: Any) -> None:
    assert "as soon as its name arrives" in fails(capsys, "4.2", ReadsEverythingFirst)


@pytest.mark.parametrize("exercise_id", ["4.1", "4.2"])
def test_unsolved_route_guide_fails(capsys: Any, exercise_id: str) -> None:
    assert "not solved yet" in fails(capsys, exercise_id, UnsolvedRouteGuide)


def lookup_people(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found, missing = {}, []
    requests = (route_guide_pb2.Name(name=name) for name in names)
    for result in stub.GetPeople(requests, timeout=5):
        if result.HasField("person"):
            found[result.requested_name] = result.person
        else:
            missing.append(result.requested_name)
    return found, missing


def one_call_per_name(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found, missing = {}, []
    for name in names:
        try:
            found[name] = stub.GetPerson(route_guide_pb2.Name(name=name), timeout=5)
        except grpc.RpcError:
            missing.append(name)
    return found, missing


def without_deadline(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    results = stub.GetPeople(iter([route_guide_pb2.Name(name=n) for n in names]))
    results = list(results)
    return ({r.requested_name: r.person for r in results if r.HasField("person")},
            [r.requested_name for r in results if not r.HasField("person")])


def unsolved_lookup(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    raise NotImplementedError("Exercise 4.3: not solved yet")


def test_lookup_people(capsys: Any) -> None:
    passes(capsys, "4.3", lookup_people)
    assert "the number of GetPerson calls" in fails(capsys, "4.3", one_call_per_name)
    assert "pass timeout=" in fails(capsys, "4.3", without_deadline)
    assert "not solved yet" in fails(capsys, "4.3", unsolved_lookup)


# Lesson 05 ---------------------------------------------------------------------------


class UnlockedStore(UserStore):
    """The reference store with its lock taken away."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = nullcontext()


class CounterOnlyLock(UserStore):
    """Locks the id counter and insert, but checks the email outside the lock."""

    def create(self, name: str, email: str):
        if self._email_in_use(email):
            raise EmailTaken(email)
        with self._lock:
            user = users_pb2.User(id=self._next_id, name=name, email=email)
            self._users[user.id] = user
            self._next_id += 1
            return user


class UnsolvedStore(UserStore):
    def create(self, name: str, email: str):
        raise NotImplementedError("Exercise 5.1: not solved yet")


def test_safe_store(capsys: Any) -> None:
    passes(capsys, "5.1", UserStore)
    assert "concurrent creates" in fails(capsys, "5.1", UnlockedStore)
    fails(capsys, "5.1", CounterOnlyLock)  # raced emails, or a dict changed while read
    assert "not solved yet" in fails(capsys, "5.1", UnsolvedStore)


class PlainAbort(UserService):
    def CreateUser(self, request, context):
        if not request.name.strip() or "@" not in request.email:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad name or email")
        return super().CreateUser(request, context)


class DuplicateAsInvalid(UserService):
    """Validates well, but calls a taken email INVALID_ARGUMENT."""

    def CreateUser(self, request, context):
        try:
            return super().CreateUser(request, context)
        except Exception:
            if context.code() == grpc.StatusCode.ALREADY_EXISTS:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "email taken")
            raise


class UnsolvedService(UserService):
    def CreateUser(self, request, context):
        raise NotImplementedError("Exercise 5.2: not solved yet")

    def ListUsers(self, request, context):
        raise NotImplementedError("Exercise 5.3: not solved yet")


def test_validation(capsys: Any) -> None:
    passes(capsys, "5.2", UserService)
    assert "without a BadRequest detail" in fails(capsys, "5.2", PlainAbort)
    assert "ended with INVALID_ARGUMENT, expected ALREADY_EXISTS" in fails(
        capsys, "5.2", DuplicateAsInvalid)
    assert "not solved yet" in fails(capsys, "5.2", UnsolvedService)


class OffsetTokens(UserService):
    """Tokens that count users to skip: a delete on an earlier page shifts the next one."""

    def ListUsers(self, request, context):
        offset = int(request.page_token or 0)
        size = request.page_size or 10
        users, _ = self.store.page(0, 10_000)
        page = users[offset:offset + size]
        more = offset + size < len(users)
        return users_pb2.ListUsersResponse(users=page,
                                           next_page_token=str(offset + size) if more else "")


class ClampsPageSize(UserService):
    """Quietly clamps a bad page_size instead of rejecting it."""

    def ListUsers(self, request, context):
        request.page_size = min(max(request.page_size, 0), 100)
        return super().ListUsers(request, context)


def test_pagination(capsys: Any) -> None:
    passes(capsys, "5.3", UserService)
    assert "after user 3 (on page 1) was deleted" in fails(capsys, "5.3", OffsetTokens)
    assert "page_size=-1" in fails(capsys, "5.3", ClampsPageSize)
    assert "not solved yet" in fails(capsys, "5.3", UnsolvedService)


def errors_without_none_check(error: grpc.RpcError) -> dict[str, str]:
    from grpc_status import rpc_status
    from google.rpc import error_details_pb2

    found = {}
    for detail in rpc_status.from_call(error).details:  # crashes when there are no details
        bad_request = error_details_pb2.BadRequest()
        detail.Unpack(bad_request)
        found.update({v.field: v.description for v in bad_request.field_violations})
    return found


def unsolved_field_errors(error: grpc.RpcError) -> dict[str, str]:
    raise NotImplementedError("Exercise 5.4: not solved yet")


def test_field_errors(capsys: Any) -> None:
    passes(capsys, "5.4", field_errors)
    assert "AttributeError" in fails(capsys, "5.4", errors_without_none_check)
    assert "not solved yet" in fails(capsys, "5.4", unsolved_field_errors)


# helpers/grpcurl.py ------------------------------------------------------------------


@pytest.fixture(scope="module")
def reflective_server() -> Iterator[Any]:
    """The reference user service and route guide on one server, with reflection."""

    def setup(server: grpc.Server) -> None:
        route_guide_pb2_grpc.add_RouteGuideServicer_to_server(RouteGuide(), server)
        reflection.enable_server_reflection(
            ["users.UserService", "guide.RouteGuide", reflection.SERVICE_NAME], server)

    service = UserService()
    service.store.create("Ada", "ada@example.com")
    with serve(users_pb2_grpc.add_UserServiceServicer_to_server, service, name="grpcurl-test",
               setup=setup) as server:
        yield server


def test_grpcurl_lists_and_describes(reflective_server: Any) -> None:
    assert grpcurl.list_services(reflective_server.target) == [
        "grpc.reflection.v1alpha.ServerReflection", "guide.RouteGuide", "users.UserService"]
    assert grpcurl.describe(reflective_server.target, "guide.RouteGuide") == [
        "rpc GetPerson(guide.Name) returns (person.Person)",
        "rpc GetPeople(stream guide.Name) returns (stream guide.PersonResult)",
    ]


def test_grpcurl_calls_by_name_with_json(reflective_server: Any) -> None:
    reply = grpcurl.call(reflective_server.target, "users.UserService/GetUser", '{"id": 1}')
    assert '"name": "Ada"' in reply and '"id": "1"' in reply
    person = grpcurl.call(reflective_server.target, "guide.RouteGuide/GetPerson", '{"name": "Bob"}')
    assert '"city": "Los Angeles"' in person


def test_grpcurl_errors(reflective_server: Any) -> None:
    target = reflective_server.target
    with pytest.raises(grpc.RpcError) as caught:
        grpcurl.call(target, "users.UserService/GetUser", '{"id": 99}')
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(KeyError):
        grpcurl.call(target, "users.UserService/Nope")
    with pytest.raises(ValueError, match="streaming"):
        grpcurl.call(target, "guide.RouteGuide/GetPeople")


def test_reference_store_is_safe_under_threads() -> None:
    store = UserStore()
    threads = [threading.Thread(target=lambda i=i: store.create(f"u{i}", f"u{i}@example.com"))
               for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    users, more = store.page(0, 500)
    assert [user.id for user in users] == list(range(1, 201)) and not more
