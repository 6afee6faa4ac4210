"""The reference servicers answer bad input with a deliberate status code.

For every method of the calculator, people directory and user service, a few hundred
generated requests (empty, huge, negative, out-of-range, unknown enum values,
unknown fields, garbage page tokens) must each end with OK or a deliberate
status code with a message: never UNKNOWN (an uncaught exception) or INTERNAL.
"""

from __future__ import annotations

import base64
from typing import Any, Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.reference import (
    Calculator,
    PeopleDirectory,
    UserService,
    calculator_pb2 as calc,
    calculator_pb2_grpc as calc_grpc,
    people_pb2 as people,
    people_pb2_grpc as people_grpc,
    users_pb2 as users,
    users_pb2_grpc as users_grpc,
)
from helpers.servers import serve

EXAMPLES = 250
fuzz = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)
BUGS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
SMALL_OR_ANY_ID = st.one_of(st.integers(-3, 40), INT64)
HUGE_TEXT = st.builds(lambda char, n: char * n, st.characters(), st.integers(1_000, 200_000))
TEXT = st.one_of(st.just(""), st.just("   "), st.text(max_size=40), HUGE_TEXT)
EMAIL = st.one_of(TEXT, st.emails(), st.builds("{}@{}".format, st.text(max_size=20),
                                               st.text(max_size=20)))
UNKNOWN_FIELD = b"\xf8\x06\x01"  # field 111, varint 1: no message here has it


def with_unknown_field(message: Any, add: bool) -> Any:
    """`message`, or a copy parsed from its bytes plus a field its schema does not know."""
    return type(message).FromString(message.SerializeToString() + UNKNOWN_FIELD) if add else message


def expect_deliberate(rpc: Any, request: Any) -> None:
    """Call `rpc`; it must succeed or fail with a deliberate code and a message."""
    try:
        rpc(request, timeout=10)
    except grpc.RpcError as error:
        assert error.code() not in BUGS, f"{error.code().name}: {error.details()}"
        assert error.details(), f"{error.code().name} without a message"
        # A status message travels in a header; echoing a huge input into it makes the
        # client drop the call with RESOURCE_EXHAUSTED ("metadata size exceeds ...").
        assert error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()[:200]
        assert len(error.details()) <= 1000, f"a {len(error.details())}-character message"


@pytest.fixture(scope="module")
def calculator() -> Iterator[Any]:
    with serve(calc_grpc.add_CalculatorServicer_to_server, Calculator(), name="fuzz-calc") as server:
        with grpc.insecure_channel(server.target) as channel:
            yield calc_grpc.CalculatorStub(channel)


@pytest.fixture(scope="module")
def people_directory() -> Iterator[Any]:
    with serve(people_grpc.add_PeopleDirectoryServicer_to_server, PeopleDirectory(),
               name="fuzz-people") as server:
        with grpc.insecure_channel(server.target) as channel:
            yield people_grpc.PeopleDirectoryStub(channel)


@pytest.fixture(scope="module")
def user_server() -> Iterator[Any]:
    service = UserService()
    for i in range(25):
        service.store.create(f"user {i}", f"user{i}@example.com")
    with serve(users_grpc.add_UserServiceServicer_to_server, service, name="fuzz-users") as server:
        yield server


@pytest.fixture(scope="module")
def user_service(user_server: Any) -> Iterator[Any]:
    with grpc.insecure_channel(user_server.target) as channel:
        yield users_grpc.UserServiceStub(channel)


@pytest.mark.parametrize("method", ["Add", "Subtract", "Multiply", "Divide"])
def test_calculator(calculator: Any, method: str) -> None:
    request_class = getattr(calc, f"{method}Request")

    @fuzz
    @given(a=INT32, b=st.one_of(st.just(0), INT32), unknown=st.booleans())
    def run(a: int, b: int, unknown: bool) -> None:
        expect_deliberate(getattr(calculator, method),
                          with_unknown_field(request_class(a=a, b=b), unknown))

    run()


@fuzz
@given(name=TEXT, unknown=st.booleans())
def test_get_person(people_directory: Any, name: str, unknown: bool) -> None:
    expect_deliberate(people_directory.GetPerson,
                      with_unknown_field(people.Name(name=name), unknown))


@fuzz
@given(names=st.lists(st.one_of(TEXT, st.sampled_from(["Alice", "Bob"])), max_size=8))
def test_get_people(people_directory: Any, names: list[str]) -> None:
    replies = list(people_directory.GetPeople(iter([people.Name(name=n) for n in names]),
                                              timeout=10))
    assert [reply.requested_name for reply in replies] == names
    for reply in replies:
        assert reply.WhichOneof("outcome") in ("person", "error")


@fuzz
@given(user_id=SMALL_OR_ANY_ID, unknown=st.booleans())
def test_get_user(user_service: Any, user_id: int, unknown: bool) -> None:
    expect_deliberate(user_service.GetUser,
                      with_unknown_field(users.GetUserRequest(id=user_id), unknown))


PAGE_TOKEN = st.one_of(
    st.just(""),
    TEXT,
    st.builds(lambda raw: base64.urlsafe_b64encode(raw).decode(), st.binary(max_size=30)),
    st.builds(lambda n: base64.urlsafe_b64encode(f"after:{n}".encode()).decode(),
              st.one_of(st.integers(-5, 40), INT64, st.integers(2**63, 2**80))),
)


@fuzz
@given(page_size=st.one_of(st.integers(-2, 120), INT32), page_token=PAGE_TOKEN)
def test_list_users(user_service: Any, page_size: int, page_token: str) -> None:
    expect_deliberate(user_service.ListUsers,
                      users.ListUsersRequest(page_size=page_size, page_token=page_token))


@fuzz
@given(name=TEXT, email=EMAIL, unknown=st.booleans())
def test_create_user(user_service: Any, name: str, email: str, unknown: bool) -> None:
    request = users.CreateUserRequest(name=name, email=email)
    expect_deliberate(user_service.CreateUser, with_unknown_field(request, unknown))


@fuzz
@given(user_id=SMALL_OR_ANY_ID, name=st.none() | TEXT, email=st.none() | EMAIL,
       status=st.none() | st.integers(-1, 5) | INT32)
def test_update_user(user_service: Any, user_id: int, name: str | None, email: str | None,
                     status: int | None) -> None:
    fields = {"name": name, "email": email, "status": status}
    request = users.UpdateUserRequest(
        id=user_id, **{key: value for key, value in fields.items() if value is not None})
    expect_deliberate(user_service.UpdateUser, request)


@fuzz
@given(user_id=SMALL_OR_ANY_ID)
def test_delete_user(user_service: Any, user_id: int) -> None:
    expect_deliberate(user_service.DeleteUser, users.DeleteUserRequest(id=user_id))


def test_undecodable_bytes_are_refused_by_grpcio_before_the_servicer(user_server: Any) -> None:
    """Bytes that are not a valid message never reach a servicer: grpcio itself
    answers INTERNAL ("Exception deserializing request!"). No servicer code runs,
    so this is the one INTERNAL these services give; it is grpcio's, by design."""
    with grpc.insecure_channel(user_server.target) as channel:
        raw = channel.unary_unary("/users.UserService/GetUser")  # sends bytes as they are
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\xff\xff\xff", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
