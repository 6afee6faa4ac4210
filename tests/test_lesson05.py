"""Checks of lesson 05, the user service, and helpers/grpcurl.py: reference and
correct-but-different answers pass; plausible wrong answers fail with a message
that names the mistake."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Any, Iterator

import grpc
import pytest
from conftest import WrongAnswer, fails, passes, rejects
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from helpers import grpcurl
from helpers.reference import (
    EmailTaken,
    PeopleDirectory,
    UserService,
    UserStore,
    field_errors,
    people_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)
from helpers.reference.users import (
    DEFAULT_PAGE_SIZE,
    EMAIL_PATTERN,
    MAX_PAGE_SIZE,
    FieldViolation,
    decode_page_token,
    encode_page_token,
    reject,
)
from helpers.servers import serve

User = users_pb2.User


# 5.1 the store --------------------------------------------------------------------------


class UnlockedStore(UserStore):
    """The reference store with its lock taken away."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = nullcontext()


class NewLockEachCall(UserStore):
    """`with threading.Lock():` makes a new lock per call, which nobody else waits for."""

    def create(self, name: str, email: str) -> User:
        with threading.Lock():
            if self._email_in_use(email):
                raise EmailTaken(email)
            user = User(id=self._next_id, name=name, email=email)
            self._users[user.id] = user
            self._next_id += 1
            return User.FromString(user.SerializeToString())


class CounterOnlyLock(UserStore):
    """Locks the id counter and insert, but checks the email outside the lock."""

    def create(self, name: str, email: str) -> User:
        if self._email_in_use(email):
            raise EmailTaken(email)
        with self._lock:
            user = User(id=self._next_id, name=name, email=email)
            self._users[user.id] = user
            self._next_id += 1
            copy = User()
            copy.CopyFrom(user)
            return copy


class ReturnsTheStoredUser(UserStore):
    """Locks the whole create, but hands out the object behind the lock."""

    def create(self, name: str, email: str) -> User:
        with self._lock:
            if self._email_in_use(email):
                raise EmailTaken(email)
            user = User(id=self._next_id, name=name, email=email)
            self._users[user.id] = user
            self._next_id += 1
            return user


class ReentrantStoreWithSerializedCopies(UserStore):
    """Correct, written differently: an RLock, and copies made by serializing."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    def create(self, name: str, email: str) -> User:
        with self._lock:
            if self._email_in_use(email):
                raise EmailTaken(email)
            user = User(id=self._next_id, name=name, email=email)
            self._users[user.id] = user
            self._next_id += 1
            return User.FromString(user.SerializeToString())


class OwnLockForCreate(UserStore):
    """A lock of create's own: creates exclude each other, but not get/page/update."""

    def __init__(self) -> None:
        super().__init__()
        self._create_lock = threading.Lock()

    def create(self, name: str, email: str) -> User:
        with self._create_lock:
            if self._email_in_use(email):
                raise EmailTaken(email)
            user = User(id=self._next_id, name=name, email=email)
            self._users[user.id] = user
            self._next_id += 1
            return User.FromString(user.SerializeToString())


class AcquireWithoutFinally(UserStore):
    """acquire() and release() by hand: an EmailTaken leaves the lock held forever."""

    def create(self, name: str, email: str) -> User:
        self._lock.acquire()
        if self._email_in_use(email):
            raise EmailTaken(email)
        user = User(id=self._next_id, name=name, email=email)
        self._users[user.id] = user
        self._next_id += 1
        copy = User.FromString(user.SerializeToString())
        self._lock.release()
        return copy


class UnsolvedStore(UserStore):
    def create(self, name: str, email: str) -> User:
        raise NotImplementedError("Exercise 5.1: not solved yet")


# 5.2 CreateUser -------------------------------------------------------------------------


def _create_or_exists(service: UserService, name: str, email: str, context: Any) -> User:
    try:
        return service.store.create(name, email)
    except EmailTaken:
        context.abort(grpc.StatusCode.ALREADY_EXISTS, "that email is already in use")


class PlainAbort(UserService):
    def CreateUser(self, request, context):
        if not request.name.strip() or not EMAIL_PATTERN.fullmatch(request.email):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad name or email")
        return super().CreateUser(request, context)


class DuplicateAsInvalid(UserService):
    """Validates well, but calls a taken email INVALID_ARGUMENT."""

    def CreateUser(self, request, context):
        try:
            return self.store.create(request.name.strip(), request.email) \
                if not self._problems(request) else super().CreateUser(request, context)
        except EmailTaken:
            reject(context, [FieldViolation(field="email", description="already in use")])

    @staticmethod
    def _problems(request) -> bool:
        name = request.name.strip()
        return not name or len(name) > 100 or not EMAIL_PATTERN.fullmatch(request.email)


class StopsAtFirstProblem(UserService):
    def CreateUser(self, request, context):
        name = request.name.strip()
        if not name or len(name) > 100:
            reject(context, [FieldViolation(field="name", description="must not be empty")])
        if not EMAIL_PATTERN.fullmatch(request.email):
            reject(context, [FieldViolation(field="email", description="must be an email")])
        return _create_or_exists(self, name, request.email, context)


def _violations(name: str, email: str, max_length: int | None = 100,
                email_ok=lambda email: bool(EMAIL_PATTERN.fullmatch(email))) -> list:
    violations = []
    if not name.strip():
        violations.append(FieldViolation(field="name", description="must not be empty"))
    elif max_length is not None and len(name.strip()) > max_length:
        violations.append(FieldViolation(field="name", description="too long"))
    if not email_ok(email):
        violations.append(FieldViolation(field="email", description="must look like an email"))
    return violations


class NoStrip(UserService):
    def CreateUser(self, request, context):
        if violations := _violations(request.name, request.email):
            reject(context, violations)
        return _create_or_exists(self, request.name, request.email, context)


class NoLengthLimit(UserService):
    def CreateUser(self, request, context):
        if violations := _violations(request.name, request.email, max_length=None):
            reject(context, violations)
        return _create_or_exists(self, request.name.strip(), request.email, context)


class AtSignOnly(UserService):
    def CreateUser(self, request, context):
        if violations := _violations(request.name, request.email, email_ok=lambda e: "@" in e):
            reject(context, violations)
        return _create_or_exists(self, request.name.strip(), request.email, context)


class MatchNotFullmatch(UserService):
    def CreateUser(self, request, context):
        if violations := _violations(request.name, request.email,
                                     email_ok=lambda e: bool(EMAIL_PATTERN.match(e))):
            reject(context, violations)
        return _create_or_exists(self, request.name.strip(), request.email, context)


class EmailTakenUncaught(UserService):
    def CreateUser(self, request, context):
        if violations := _violations(request.name, request.email):
            reject(context, violations)
        return self.store.create(request.name.strip(), request.email)


class PreCheckOnly(UserService):
    """Looks for the email before creating, and never expects the store to refuse it."""

    def CreateUser(self, request, context):
        if violations := _violations(request.name, request.email):
            reject(context, violations)
        users, _ = self.store.page(0, 10_000)
        if any(user.email == request.email for user in users):
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "that email is already in use")
        return self.store.create(request.name.strip(), request.email)


class LengthBeforeStrip(UserService):
    """Measures the name before stripping its spaces."""

    def CreateUser(self, request, context):
        violations = _violations(request.name, request.email)
        if len(request.name) > 100 and not any(v.field == "name" for v in violations):
            violations.append(FieldViolation(field="name", description="too long"))
        if violations:
            reject(context, violations)
        return _create_or_exists(self, request.name.strip(), request.email, context)


class UnsolvedService(UserService):
    def CreateUser(self, request, context):
        raise NotImplementedError("Exercise 5.2: not solved yet")

    def ListUsers(self, request, context):
        raise NotImplementedError("Exercise 5.3: not solved yet")


# 5.3 ListUsers --------------------------------------------------------------------------


def _list(service: UserService, request, context, *, clamp: bool = True,
          negative_ok: bool = False, bad_token_ok: bool = False, all_at_once: bool = True,
          default: bool = True):
    """ListUsers with one rule switched off at a time."""
    violations = []
    if request.page_size < 0 and not negative_ok:
        violations.append(FieldViolation(field="page_size", description="must not be negative"))
        if not all_at_once:
            reject(context, violations)
    after_id = 0
    if request.page_token:
        try:
            after_id = decode_page_token(request.page_token)
        except ValueError:
            if not bad_token_ok:
                violations.append(FieldViolation(field="page_token", description="bad token"))
    if violations:
        reject(context, violations)
    size = max(request.page_size, 0) or (DEFAULT_PAGE_SIZE if default else 0)
    if clamp:
        size = min(size, MAX_PAGE_SIZE)
    users, more = service.store.page(after_id, size)
    token = encode_page_token(users[-1].id) if more else ""
    return users_pb2.ListUsersResponse(users=users, next_page_token=token)


class OffsetTokens(UserService):
    """Tokens that count users to skip: a delete on an earlier page shifts the next one."""

    def ListUsers(self, request, context):
        offset = int(request.page_token or 0)
        size = min(request.page_size or 10, MAX_PAGE_SIZE)
        users, _ = self.store.page(0, 10_000)
        page = users[offset:offset + size]
        more = offset + size < len(users)
        return users_pb2.ListUsersResponse(users=page,
                                           next_page_token=str(offset + size) if more else "")


class AfterIdPlusSize(UserService):
    """A token of after_id + size: right until a user is deleted ahead of the walk."""

    def ListUsers(self, request, context):
        after_id = decode_page_token(request.page_token) if request.page_token else 0
        if request.page_size < 0:
            reject(context, [FieldViolation(field="page_size", description="must not be negative")])
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        users, more = self.store.page(after_id, size)
        token = encode_page_token(after_id + size) if more else ""
        return users_pb2.ListUsersResponse(users=users, next_page_token=token)


class RefusesLargePageSize(UserService):
    """The old rule: a page_size above the maximum is INVALID_ARGUMENT."""

    def ListUsers(self, request, context):
        if request.page_size > MAX_PAGE_SIZE:
            reject(context, [FieldViolation(field="page_size", description="at most 100")])
        return _list(self, request, context)


class ClampsNegativeToo(UserService):
    def ListUsers(self, request, context):
        return _list(self, request, context, negative_ok=True)


class NoMaximum(UserService):
    def ListUsers(self, request, context):
        return _list(self, request, context, clamp=False)


class BadTokenStartsOver(UserService):
    def ListUsers(self, request, context):
        return _list(self, request, context, bad_token_ok=True)


class RejectsOneAtATime(UserService):
    def ListUsers(self, request, context):
        return _list(self, request, context, all_at_once=False)


class NoDefaultForZero(UserService):
    def ListUsers(self, request, context):
        return _list(self, request, context, default=False)


# 5.4 field_errors -----------------------------------------------------------------------


def errors_without_none_check(error: grpc.RpcError) -> dict[str, str]:
    found = {}
    for detail in rpc_status.from_call(error).details:  # crashes when there are no details
        bad_request = error_details_pb2.BadRequest()
        detail.Unpack(bad_request)
        found.update({v.field: v.description for v in bad_request.field_violations})
    return found


def first_detail_only(error: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    if status is None or not status.details:
        return {}
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    return {v.field: v.description for v in bad_request.field_violations}


def first_bad_request_only(error: grpc.RpcError) -> dict[str, str]:
    """Skips other details, but stops at the first BadRequest."""
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            return {v.field: v.description for v in bad_request.field_violations}
    return {}


def parses_the_message(error: grpc.RpcError) -> dict[str, str]:
    parts = [part.split(": ", 1) for part in (error.details() or "").split("; ")]
    return {part[0]: part[1] for part in parts if len(part) == 2}


def returns_a_list(error: grpc.RpcError) -> list:
    status = rpc_status.from_call(error)
    violations = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend((v.field, v.description) for v in bad_request.field_violations)
    return violations


def unpack_returns_false_for_other_types(error: grpc.RpcError) -> dict[str, str]:
    """Correct, written differently: Unpack returns False (and fills nothing) for a RetryInfo."""
    status = rpc_status.from_call(error)
    found: dict[str, str] = {}
    for detail in [] if status is None else status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found


def unsolved_field_errors(error: grpc.RpcError) -> dict[str, str]:
    raise NotImplementedError("Exercise 5.4: not solved yet")


WHOLE_CREATE = "hold self._lock for the whole create"

WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("5.1", "a lock of create's own, not self._lock", (OwnLockForCreate,),
                "without holding self._lock"),
    WrongAnswer("5.1", "acquire()/release() without try/finally", (AcquireWithoutFinally,),
                "self._lock was still held"),
    WrongAnswer("5.2", "a duplicate pre-check, EmailTaken not handled", (PreCheckOnly,),
                "a check before create() cannot see a create racing it"),
    WrongAnswer("5.2", "the length measured before stripping", (LengthBeforeStrip,),
                "the reference gives ('created'"),
    WrongAnswer("5.3", "a token of after_id + size", (AfterIdPlusSize,),
                "user 15 was deleted after page 1"),
    WrongAnswer("5.4", "stops at the first BadRequest", (first_bad_request_only,),
                "not only the first one"),
    WrongAnswer("5.1", "no lock at all", (UnlockedStore,), WHOLE_CREATE),
    WrongAnswer("5.1", "`with threading.Lock():` (a new lock per call)", (NewLockEachCall,),
                WHOLE_CREATE),
    WrongAnswer("5.1", "checks the email outside the lock", (CounterOnlyLock,), WHOLE_CREATE),
    WrongAnswer("5.1", "returns the stored user, not a copy", (ReturnsTheStoredUser,),
                "return a copy"),
    WrongAnswer("5.1", "passes an instance", (UserStore(),), "pass the class SafeUserStore"),
    WrongAnswer("5.2", "INVALID_ARGUMENT without a BadRequest detail", (PlainAbort,),
                "without a BadRequest detail"),
    WrongAnswer("5.2", "a taken email as INVALID_ARGUMENT", (DuplicateAsInvalid,),
                "expected ALREADY_EXISTS"),
    WrongAnswer("5.2", "rejects at the first problem only", (StopsAtFirstProblem,),
                "the fields rejected by CreateUser('', 'nope')"),
    WrongAnswer("5.2", "does not strip the name", (NoStrip,), "returned (id, name, email)"),
    WrongAnswer("5.2", "no length limit on the name", (NoLengthLimit,),
                "CreateUser('xxxxxxxxxxxx', 'bo@example.com') succeeded"),
    WrongAnswer("5.2", "an email only needs an @", (AtSignOnly,),
                "CreateUser('Bo', 'bo@example') succeeded"),
    WrongAnswer("5.2", "EMAIL_PATTERN.match instead of fullmatch", (MatchNotFullmatch,),
                "'bo@example.com and more') succeeded"),
    WrongAnswer("5.2", "EmailTaken not caught", (EmailTakenUncaught,),
                "a duplicate email ended with UNKNOWN"),
    WrongAnswer("5.3", "offset tokens", (OffsetTokens,), "after user 3 (on page 1) was deleted"),
    WrongAnswer("5.3", "refuses a page_size above the maximum", (RefusesLargePageSize,),
                "is clamped to 100 (AIP-158), not refused"),
    WrongAnswer("5.3", "clamps a negative page_size instead of refusing it", (ClampsNegativeToo,),
                "ListUsers(page_size=-1, page_token='') succeeded, expected INVALID_ARGUMENT"),
    WrongAnswer("5.3", "no maximum page size", (NoMaximum,), "the page lengths for page_size=101"),
    WrongAnswer("5.3", "a bad token silently starts over", (BadTokenStartsOver,),
                "page_token='garbage') succeeded, expected INVALID_ARGUMENT"),
    WrongAnswer("5.3", "rejects one violation at a time", (RejectsOneAtATime,),
                "the fields rejected by ListUsers(page_size=-5, page_token='after:3')"),
    WrongAnswer("5.3", "page_size 0 is not the default", (NoDefaultForZero,),
                "ListUsers(page_size=0) for page 1 ended with UNKNOWN"),
    WrongAnswer("5.4", "assumes every error has details", (errors_without_none_check,),
                "AttributeError"),
    WrongAnswer("5.4", "reads only the first detail", (first_detail_only,),
                "look at every detail"),
    WrongAnswer("5.4", "parses the message text", (parses_the_message,),
                "not the message text"),
    WrongAnswer("5.4", "returns a list of pairs", (returns_a_list,),
                "field_errors for CreateUser('', 'nope'): expected"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys: Any) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("5.1", UserStore), ("5.1", ReentrantStoreWithSerializedCopies),
    ("5.2", UserService), ("5.3", UserService),
    ("5.4", field_errors), ("5.4", unpack_returns_false_for_other_types),
], ids=lambda value: getattr(value, "__name__", str(value)))
def test_correct_answers_pass(exercise_id: str, answer: Any, capsys: Any) -> None:
    passes(capsys, exercise_id, answer)


@pytest.mark.parametrize("exercise_id, answer", [
    ("5.1", UnsolvedStore), ("5.2", UnsolvedService), ("5.3", UnsolvedService),
    ("5.4", unsolved_field_errors)])
def test_unsolved_exercises_fail(exercise_id: str, answer: Any, capsys: Any) -> None:
    assert "not solved yet" in fails(capsys, exercise_id, answer)


def test_every_exercise_has_two_wrong_answers() -> None:
    from collections import Counter

    counts = Counter(wrong.exercise for wrong in WRONG_ANSWERS)
    assert all(counts[exercise_id] >= 2 for exercise_id in ["5.1", "5.2", "5.3", "5.4", "5.5"]), \
        counts


# The reference service beyond the exercises ----------------------------------------------


@pytest.fixture()
def user_stub() -> Iterator[Any]:
    service = UserService()
    service.store.create("Ada", "ada@example.com")
    service.store.create("Grace", "grace@example.com")
    with serve(users_pb2_grpc.add_UserServiceServicer_to_server, service, name="users-test") as server:
        with grpc.insecure_channel(server.target) as channel:
            yield users_pb2_grpc.UserServiceStub(channel)


@pytest.mark.parametrize("fields, rejected", [
    ({"name": "   "}, {"name"}), ({"name": "x" * 101}, {"name"}), ({"email": "ada@example"}, {"email"}),
    ({"email": "ada@example.com x"}, {"email"}), ({"status": 0}, {"status"}), ({"status": 7}, {"status"}),
    ({"name": "", "email": "nope", "status": -1}, {"name", "email", "status"}),
])
def test_update_user_validates_like_create_user(user_stub: Any, fields: dict, rejected: set) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        user_stub.UpdateUser(users_pb2.UpdateUserRequest(id=1, **fields), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_errors(caught.value)) == rejected


def test_update_user_strips_the_name_and_refuses_a_taken_email(user_stub: Any) -> None:
    user = user_stub.UpdateUser(users_pb2.UpdateUserRequest(id=1, name="  Ada L.  "), timeout=5)
    assert user.name == "Ada L."
    with pytest.raises(grpc.RpcError) as caught:
        user_stub.UpdateUser(users_pb2.UpdateUserRequest(id=1, email="grace@example.com"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_the_reference_store_hands_out_copies() -> None:
    store = UserStore()
    created = store.create("Ada", "ada@example.com")
    for handed_out in [created, store.get(1), store.page(0, 10)[0][0],
                       store.update(1, status=users_pb2.USER_STATUS_BANNED)]:
        handed_out.name = "Mallory"
    assert store.get(1).name == "Ada"


def test_the_reference_store_is_safe_under_threads() -> None:
    store = UserStore()
    threads = [threading.Thread(target=lambda i=i: store.create(f"u{i}", f"u{i}@example.com"))
               for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    users, more = store.page(0, 500)
    assert [user.id for user in users] == list(range(1, 201)) and not more


# helpers/grpcurl.py ------------------------------------------------------------------


@pytest.fixture(scope="module")
def reflective_server() -> Iterator[Any]:
    """The reference user service and people directory on one server, with reflection."""

    def setup(server: grpc.Server) -> None:
        people_pb2_grpc.add_PeopleDirectoryServicer_to_server(PeopleDirectory(), server)
        reflection.enable_server_reflection(
            ["users.UserService", "people.PeopleDirectory", reflection.SERVICE_NAME], server)

    service = UserService()
    service.store.create("Ada", "ada@example.com")
    with serve(users_pb2_grpc.add_UserServiceServicer_to_server, service, name="grpcurl-test",
               setup=setup) as server:
        yield server


def test_grpcurl_lists_and_describes(reflective_server: Any) -> None:
    assert grpcurl.list_services(reflective_server.target) == [
        "grpc.reflection.v1alpha.ServerReflection", "people.PeopleDirectory", "users.UserService"]
    assert grpcurl.describe(reflective_server.target, "people.PeopleDirectory") == [
        "rpc GetPerson(people.Name) returns (person.Person)",
        "rpc GetPeople(stream people.Name) returns (stream people.PersonResult)",
    ]


def test_grpcurl_calls_by_name_with_json(reflective_server: Any) -> None:
    reply = grpcurl.call(reflective_server.target, "users.UserService/GetUser", '{"id": 1}')
    assert '"name": "Ada"' in reply and '"id": "1"' in reply
    person = grpcurl.call(reflective_server.target, "people.PeopleDirectory/GetPerson", '{"name": "Bob"}')
    assert '"city": "Los Angeles"' in person


def test_grpcurl_errors(reflective_server: Any) -> None:
    target = reflective_server.target
    with pytest.raises(grpc.RpcError) as caught:
        grpcurl.call(target, "users.UserService/GetUser", '{"id": 99}')
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(KeyError):
        grpcurl.call(target, "users.UserService/Nope")
    with pytest.raises(ValueError, match="streaming"):
        grpcurl.call(target, "people.PeopleDirectory/GetPeople")




# 5.5 the challenge: BatchCreateUsers, all or none ------------------------------------------

from collections import Counter  # noqa: E402

from helpers.reference.users import MAX_NAME_LENGTH, batch_violations  # noqa: E402


def _new_user(store: UserStore, name: str, email: str) -> User:
    """Insert without any check (the caller holds the lock when it should)."""
    user = User(id=store._next_id, name=name, email=email, status=users_pb2.USER_STATUS_ACTIVE)
    store._users[user.id] = user
    store._next_id += 1
    return User.FromString(user.SerializeToString())


class LoopOfCreatesStore(UserStore):
    """Each user created on its own: the users before a taken email stay behind."""

    def create_many(self, entries):
        return [self.create(name, email) for name, email in entries]


class CheckThenInsertStore(UserStore):
    """Checks every email under the lock, lets go, then inserts under the lock again."""

    def create_many(self, entries):
        emails = [email for _, email in entries]
        with self._lock:
            if any(self._email_in_use(e) or emails.count(e) > 1 for e in emails):
                raise EmailTaken(emails[0])
        with self._lock:
            return [_new_user(self, name, email) for name, email in entries]


class RollbackStore(UserStore):
    """Creates one by one and deletes them again when an email is taken: ids are used up."""

    def create_many(self, entries):
        created = []
        try:
            for name, email in entries:
                created.append(self.create(name, email))
        except EmailTaken:
            for user in created:
                self.delete(user.id)
            raise
        return created


class OwnBatchLockStore(UserStore):
    """A lock for batches only: CreateUser and the other methods never wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self._batch_lock = threading.Lock()

    def create_many(self, entries):
        emails = [email for _, email in entries]
        with self._batch_lock:
            if any(self._email_in_use(e) or emails.count(e) > 1 for e in emails):
                raise EmailTaken(emails[0])
            return [_new_user(self, name, email) for name, email in entries]


class StoredUsersStore(UserStore):
    """All or none under one hold, but hands out the users that live in the store."""

    def create_many(self, entries):
        emails = [email for _, email in entries]
        with self._lock:
            if any(self._email_in_use(e) or emails.count(e) > 1 for e in emails):
                raise EmailTaken(emails[0])
            created = [_new_user(self, name, email) for name, email in entries]
            return [self._users[user.id] for user in created]


class AcquireWithoutFinallyBatch(UserStore):
    def create_many(self, entries):
        self._lock.acquire()
        emails = [email for _, email in entries]
        if any(self._email_in_use(e) or emails.count(e) > 1 for e in emails):
            raise EmailTaken(emails[0])
        users = [_new_user(self, name, email) for name, email in entries]
        self._lock.release()
        return users


class RepeatsAllowedStore(UserStore):
    """Checks the stored emails only: a repeat inside the batch is stored twice."""

    def create_many(self, entries):
        with self._lock:
            if any(self._email_in_use(email) for _, email in entries):
                raise EmailTaken(entries[0][1])
            return [_new_user(self, name, email) for name, email in entries]


class ReentrantBatchStore(UserStore):
    """Correct, written differently: an RLock, so create() can be called while holding it."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    def create_many(self, entries):
        with self._lock:
            counts = Counter(email for _, email in entries)
            for email, count in counts.items():
                if count > 1 or self._email_in_use(email):
                    raise EmailTaken(email)
            return [self.create(name, email) for name, email in entries]


def _batch_or_abort(service: UserService, request, context, violations) -> Any:
    if violations:
        reject(context, violations)
    try:
        users = service.store.create_many([(e.name.strip(), e.email) for e in request.requests])
    except EmailTaken:
        context.abort(grpc.StatusCode.ALREADY_EXISTS, "an email is already in use")
    return users_pb2.BatchCreateUsersResponse(users=users)


class BareFieldNames(UserService):
    """Every violation, but named `name` / `email`: the client cannot tell which entry."""

    def BatchCreateUsers(self, request, context):
        violations = [FieldViolation(field=v.field.split(".")[-1], description=v.description)
                      for v in batch_violations(request.requests)]
        return _batch_or_abort(self, request, context, violations)


class StopsAtFirstBadEntry(UserService):
    def BatchCreateUsers(self, request, context):
        violations = batch_violations(request.requests)
        if violations:
            first = violations[0].field.split(".")[0]
            violations = [v for v in violations if v.field.split(".")[0] == first]
        return _batch_or_abort(self, request, context, violations)


class RepeatAsAlreadyExists(UserService):
    """Leaves repeats inside the batch to the store: ALREADY_EXISTS for a mistake in the request."""

    def BatchCreateUsers(self, request, context):
        violations = [v for v in batch_violations(request.requests)
                      if not v.description.startswith("repeats")]
        return _batch_or_abort(self, request, context, violations)


class EmptyBatchIsFine(UserService):
    def BatchCreateUsers(self, request, context):
        violations = [v for v in batch_violations(request.requests) if v.field != "requests"]
        return _batch_or_abort(self, request, context, violations)


class TakenAsInvalid(UserService):
    def BatchCreateUsers(self, request, context):
        if violations := batch_violations(request.requests):
            reject(context, violations)
        try:
            users = self.store.create_many([(e.name.strip(), e.email) for e in request.requests])
        except EmailTaken:
            reject(context, [FieldViolation(field="requests", description="an email is taken")])
        return users_pb2.BatchCreateUsersResponse(users=users)


class TakenUncaught(UserService):
    def BatchCreateUsers(self, request, context):
        if violations := batch_violations(request.requests):
            reject(context, violations)
        users = self.store.create_many([(e.name.strip(), e.email) for e in request.requests])
        return users_pb2.BatchCreateUsersResponse(users=users)


class BatchNoStrip(UserService):
    def BatchCreateUsers(self, request, context):
        if violations := batch_violations(request.requests):
            reject(context, violations)
        try:
            users = self.store.create_many([(e.name, e.email) for e in request.requests])
        except EmailTaken:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "an email is already in use")
        return users_pb2.BatchCreateUsersResponse(users=users)


class TwoViolationsForARepeatedBadEmail(UserService):
    """A malformed email that repeats gets two violations of the same field."""

    def BatchCreateUsers(self, request, context):
        violations = batch_violations(request.requests)
        seen: set[str] = set()
        for index, entry in enumerate(request.requests):
            if entry.email in seen and not EMAIL_PATTERN.fullmatch(entry.email):
                violations.append(FieldViolation(field=f"requests[{index}].email",
                                                 description="repeats an earlier email"))
            seen.add(entry.email)
        return _batch_or_abort(self, request, context, violations)


class PreCheckThenCreateEach(UserService):
    """Looks for taken emails first, then creates the users one by one with create()."""

    def BatchCreateUsers(self, request, context):
        if violations := batch_violations(request.requests):
            reject(context, violations)
        stored, _ = self.store.page(0, 10_000)
        if {u.email for u in stored} & {e.email for e in request.requests}:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "an email is already in use")
        try:
            users = [self.store.create(e.name.strip(), e.email) for e in request.requests]
        except EmailTaken:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "an email is already in use")
        return users_pb2.BatchCreateUsersResponse(users=users)


class CounterService(UserService):
    """Correct, written differently: a Counter for repeats, rules written out again."""

    def BatchCreateUsers(self, request, context):
        entries = list(request.requests)
        violations = [] if entries else [FieldViolation(field="requests", description="empty")]
        seen: Counter = Counter()
        for index, entry in enumerate(entries):
            place, name = f"requests[{index}]", entry.name.strip()
            if not name or len(name) > MAX_NAME_LENGTH:
                violations.append(FieldViolation(field=f"{place}.name", description="bad name"))
            seen[entry.email] += 1
            if seen[entry.email] > 1 or not EMAIL_PATTERN.fullmatch(entry.email):
                violations.append(FieldViolation(field=f"{place}.email", description="bad email"))
        return _batch_or_abort(self, request, context, violations)


class UnsolvedBatchStore(UserStore):
    def create_many(self, entries):
        raise NotImplementedError("Exercise 5.5: not solved yet")


class UnsolvedBatchService(UserService):
    def BatchCreateUsers(self, request, context):
        raise NotImplementedError("Exercise 5.5: not solved yet")


BATCH_WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("5.5", "a loop of create(): the users before a taken email stay",
                (LoopOfCreatesStore, UserService), "a batch is all or none"),
    WrongAnswer("5.5", "checks under the lock, lets go, inserts under it again",
                (CheckThenInsertStore, UserService), "let go of self._lock between"),
    WrongAnswer("5.5", "creates one by one and rolls back: ids used up",
                (RollbackStore, UserService), "its next id included"),
    WrongAnswer("5.5", "a lock of its own for batches", (OwnBatchLockStore, UserService),
                "without holding self._lock"),
    WrongAnswer("5.5", "hands out the stored users", (StoredUsersStore, UserService),
                "hand out copies"),
    WrongAnswer("5.5", "acquire() without try/finally", (AcquireWithoutFinallyBatch, UserService),
                "self._lock was still held"),
    WrongAnswer("5.5", "the store lets a repeat inside the batch through",
                (RepeatsAllowedStore, UserService), "an email twice in the batch, did not raise"),
    WrongAnswer("5.5", "fields named without their place in the batch",
                (UserStore, BareFieldNames), "name each bad field by its place"),
    WrongAnswer("5.5", "stops at the first bad entry", (UserStore, StopsAtFirstBadEntry),
                "report them all in one BadRequest"),
    WrongAnswer("5.5", "a repeat inside the batch as ALREADY_EXISTS",
                (UserStore, RepeatAsAlreadyExists), "an email repeated within one batch"),
    WrongAnswer("5.5", "an empty batch accepted", (UserStore, EmptyBatchIsFine),
                "an empty batch is a bad request"),
    WrongAnswer("5.5", "a taken email as INVALID_ARGUMENT", (UserStore, TakenAsInvalid),
                "an email another user has is ALREADY_EXISTS"),
    WrongAnswer("5.5", "EmailTaken not caught", (UserStore, TakenUncaught),
                "yours gives status UNKNOWN"),
    WrongAnswer("5.5", "names not stripped", (UserStore, BatchNoStrip), "names stripped"),
    WrongAnswer("5.5", "two violations for one repeated bad email",
                (UserStore, TwoViolationsForARepeatedBadEmail), "one violation per bad field"),
    WrongAnswer("5.5", "looks for taken emails, then create() one by one",
                (UserStore, PreCheckThenCreateEach), "the one place that decides under the lock"),
    WrongAnswer("5.5", "passes instances", (UserStore(), UserService()), "pass the two classes"),
]


# One list per lesson: test_wrong_answers_are_rejected (above) runs them, tests/test_course.py
# counts them. pytest reads the list when it collects the tests, after this line has run.
WRONG_ANSWERS.extend(BATCH_WRONG_ANSWERS)


@pytest.mark.parametrize("store, service", [
    (UserStore, UserService), (ReentrantBatchStore, UserService), (UserStore, CounterService),
    (ReentrantBatchStore, CounterService)], ids=lambda value: value.__name__)
def test_correct_batches_pass(store: type, service: type, capsys: Any) -> None:
    passes(capsys, "5.5", store, service)


@pytest.mark.parametrize("store, service", [(UnsolvedBatchStore, UserService),
                                            (UserStore, UnsolvedBatchService)],
                         ids=["store", "service"])
def test_unsolved_batch_fails(store: type, service: type, capsys: Any) -> None:
    assert "not solved yet" in fails(capsys, "5.5", store, service)
