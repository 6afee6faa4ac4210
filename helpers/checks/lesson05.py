"""Checks for lesson 05, user service."""

from __future__ import annotations

import sys
import threading
from concurrent import futures
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from hypothesis import strategies as st

from helpers.checks.core import (
    Mismatch,
    _shown,
    compare_with_reference,
    concurrently,
    describe_rpc_error,
    exercise,
    expect,
    expect_equal,
    outcome_of,
    stub_for,
    within,
)
from helpers.reference import EmailTaken, UserService, UserStore, field_errors, users_pb2 as pb2
from helpers.reference.users import MAX_PAGE_SIZE

LESSON = "05_user_service"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
WHOLE_CREATE = "hold self._lock for the whole create, the email check included"


@contextmanager
def _switch_often() -> Iterator[None]:
    """Switch threads every microsecond, so that a missing lock shows up at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _concurrent_creates(store: Any, count: int) -> list[int]:
    """`count` creates (and some page reads) from 16 threads; the ids handed out."""
    with _switch_often(), futures.ThreadPoolExecutor(max_workers=16) as pool:
        creates = [pool.submit(store.create, f"user {i}", f"user{i}@example.com")
                   for i in range(count)]
        reads = [pool.submit(store.page, 0, 2 * count) for _ in range(50)]
        errors = [call.exception() for call in creates + reads if call.exception() is not None]
    expect(not errors, f"{len(errors)} of {count} concurrent creates and 50 page reads raised, "
           f"e.g. {type(errors[0]).__name__}: {errors[0]}; {WHOLE_CREATE}" if errors else "")
    return [call.result().id for call in creates]


def _same_email_race(store_class: type, threads: int = 20) -> int:
    """How many of `threads` simultaneous creates with one email succeed."""
    store = store_class()
    for i in range(200):
        store.create(f"earlier {i}", f"earlier{i}@example.com")
    start = threading.Barrier(threads)
    outcomes: list[str] = []

    def create() -> None:
        start.wait()
        try:
            store.create("twin", "twin@example.com")
            outcomes.append("created")
        except Exception as error:
            outcomes.append(type(error).__name__)

    with _switch_often():
        workers = [threading.Thread(target=create) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return outcomes.count("created")


def _hands_out_copies(store_class: type) -> None:
    """Changing what create() returned must not change the stored user."""
    store = store_class()
    user = store.create("Ada", "ada@example.com")
    user.name, user.email = "Mallory", "mallory@example.com"
    kept = store.get(user.id)
    expect((kept.name, kept.email) == ("Ada", "ada@example.com"),
           "changing the user that create() returned changed the stored user too: create "
           "hands out the object behind the lock, which a reply would then serialize outside "
           "the lock; return a copy (copy_of, or users_pb2.User() and CopyFrom) made under the lock")


class _OwnedLock:
    """A Lock that knows which thread holds it (to see whether a write happened under it),
    and counts its holds (to see whether two writes happened under one hold)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant, like the RLock a correct store may use
        self.owner: int | None = None
        self.depth = 0
        self.holds = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking, timeout):
            if self.depth == 0:
                self.holds += 1
            self.owner, self.depth = threading.get_ident(), self.depth + 1
            return True
        return False

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.owner = None
        self._lock.release()

    def locked(self) -> bool:
        return self.owner is not None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class _GuardedUsers(dict):
    """The store's users dict, noting every access made without the store's lock held."""

    def __init__(self, lock: _OwnedLock) -> None:
        super().__init__()
        self.lock = lock
        self.unguarded: list[str] = []
        self.accesses: list[tuple[str, int | None]] = []  # (what, which hold of the lock, or None)

    def _note(self, what: str) -> None:
        held = self.lock.owner == threading.get_ident()
        if not held:
            self.unguarded.append(what)
        self.accesses.append((what, self.lock.holds if held else None))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._note("stored a user")
        super().__setitem__(key, value)

    def values(self) -> Any:
        self._note("read the users (the email check)")
        return super().values()


def _expect_create_under_the_lock(store_class: type) -> None:
    """Every read and write of create() happens while self._lock itself is held."""
    store = store_class()
    if not (hasattr(store, "_lock") and isinstance(getattr(store, "_users", None), dict)):
        return  # a different design: the concurrency tests judge it
    store._lock = _OwnedLock()
    store._users = _GuardedUsers(store._lock)
    store.create("Ada", "ada@example.com")
    unguarded = store._users.unguarded
    expect(not unguarded, f"create {unguarded[0]} without holding self._lock: a lock of its own "
           "(or a new Lock per call) does not keep out get, page and update, which hold "
           "self._lock; " + WHOLE_CREATE if unguarded else "")


def _expect_lock_released_after_error(store_class: type) -> None:
    """create() raising EmailTaken must not leave the lock held."""
    store = store_class()
    store.create("Ada", "ada@example.com")
    try:
        store.create("Ada again", "ada@example.com")
    except EmailTaken:
        pass
    else:
        raise Mismatch("a second create with the same email succeeded; the store must raise "
                       "EmailTaken")
    within(3, lambda: store.get(1),
           "after create raised EmailTaken, self._lock was still held and get() waited for it: "
           "release the lock on every path out (`with self._lock:` does it; acquire() needs "
           "try/finally)")


@exercise(
    "5.1",
    "A store that is safe behind a thread pool",
    notebook=LESSON,
    hint="Two rules: the email check, the new id and the insert happen as one step under "
    "self._lock; and nothing the lock guards leaves it, so hand out a copy of the new user.",
    second_hint="Look at how the other methods of SafeUserStore do it: which lock, and what they "
    "return. The lock must be released even when the unsafe create raises.",
)
def safe_store(store_class: Any) -> str:
    expect(isinstance(store_class, type), "pass the class SafeUserStore itself, not an instance")
    store_class().create("probe", "probe@example.com")  # raises if not solved yet
    _hands_out_copies(store_class)
    _expect_lock_released_after_error(store_class)
    _expect_create_under_the_lock(store_class)
    store, count = store_class(), 1000
    ids = _concurrent_creates(store, count)
    expect(sorted(ids) == list(range(1, count + 1)),
           f"{count} concurrent creates handed out {len(set(ids))} distinct ids; "
           f"expected 1 to {count}, each once: {WHOLE_CREATE}")
    stored, _ = store.page(0, 2 * count)
    expect_equal(len(stored), count, f"the number of users stored after {count} creates")
    for round_number in range(5):
        created = _same_email_race(store_class)
        expect(created == 1, f"20 threads created the same email at once and {created} succeeded "
               f"(expected exactly 1): {WHOLE_CREATE}")
    return (f"{count} concurrent creates got distinct ids 1..{count}; duplicate emails refused; "
            "create reads and writes under self._lock, releases it when it raises, and hands "
            "out a copy")


def _rejected_fields(rpc: Callable, request: Any, what: str) -> set[str]:
    """Call `rpc`; it must fail with INVALID_ARGUMENT and a BadRequest; return the fields."""
    try:
        rpc(request, timeout=5)
    except grpc.RpcError as error:
        expect(error.code() == INVALID,
               f"{what} ended with {describe_rpc_error(error)}, expected INVALID_ARGUMENT")
        fields = field_errors(error)
        expect(bool(fields), f"{what} gave INVALID_ARGUMENT without a BadRequest detail: "
               "call reject(context, violations)")
        return set(fields)
    raise Mismatch(f"{what} succeeded, expected INVALID_ARGUMENT")


def _create(name: str, email: str) -> pb2.CreateUserRequest:
    return pb2.CreateUserRequest(name=name, email=email)


@exercise(
    "5.2",
    "Validate with the right codes",
    notebook=LESSON,
    hint="Check every field before touching the store and collect all the problems, so one "
    "reply names them all; a duplicate email is found by the store (EmailTaken), and it is not "
    "a bad argument.",
    second_hint="The whole email must match, not its beginning; the name's length counts after "
    "the spaces around it are gone. Only the store knows for sure whether an email is taken, "
    "at the moment it inserts: a look before create() can be out of date.",
)
def validation(service_class: Any) -> str:
    with stub_for("users", "UserService", service_class(UserStore())) as stub:
        user = stub.CreateUser(_create("  Ada  ", "ada@example.com"), timeout=5)
        expect_equal((user.id, user.name, user.email), (1, "Ada", "ada@example.com"),
                     "CreateUser('  Ada  ', 'ada@example.com') returned (id, name, email)")
        expect(user.created_at.seconds > 0, "the created user has no created_at")
        long_name = "x" * 101
        cases = [(("", "bo@example.com"), {"name"}), (("   ", "bo@example.com"), {"name"}),
                 ((long_name, "bo@example.com"), {"name"}), (("Bo", "not-an-email"), {"email"}),
                 (("Bo", "bo@example"), {"email"}), (("Bo", "bo @example.com"), {"email"}),
                 (("Bo", "bo@example.com and more"), {"email"}),
                 (("", "nope"), {"name", "email"})]
        for (name, email), fields in cases:
            what = f"CreateUser({name[:12]!r}, {email!r})"
            expect_equal(_rejected_fields(stub.CreateUser, _create(name, email), what), fields,
                         f"the fields rejected by {what}")
        stub.CreateUser(_create("x" * 100, "long@example.com"), timeout=5)
        try:
            stub.CreateUser(_create("Ada again", "ada@example.com"), timeout=5)
        except grpc.RpcError as error:
            expect(error.code() == grpc.StatusCode.ALREADY_EXISTS,
                   f"a duplicate email ended with {describe_rpc_error(error)}, expected "
                   "ALREADY_EXISTS")
        else:
            raise Mismatch("CreateUser with an email already in use succeeded")
    with stub_for("users", "UserService", service_class(_RaceLostStore())) as stub:
        try:
            stub.CreateUser(_create("Twin", _RaceLostStore.TAKEN), timeout=5)
        except grpc.RpcError as error:
            expect(error.code() == grpc.StatusCode.ALREADY_EXISTS,
                   f"CreateUser for an email that another call took a moment earlier ended with "
                   f"{describe_rpc_error(error)}, expected ALREADY_EXISTS: a check before "
                   "create() cannot see a create racing it; handle the store's EmailTaken")
        else:
            raise Mismatch("CreateUser succeeded although the store raised EmailTaken")
    compared = _compare_creates(service_class)
    return (f"valid users created; {len(cases)} bad requests got their field violations; "
            "a duplicate email got ALREADY_EXISTS, even when it lost a race; "
            f"{compared} generated requests agree with the reference")


class _RaceLostStore(UserStore):
    """A store where TAKEN looks free to every reader, but create() finds it taken: the
    moment right after another call created it."""

    TAKEN = "twin@example.com"

    def create(self, name: str, email: str) -> pb2.User:
        if email == self.TAKEN:
            raise EmailTaken(email)
        return super().create(name, email)


_NAMES = st.one_of(st.sampled_from(["", " ", "Ada", "  Ada  ", "x" * 100, " " + "x" * 100 + " ",
                                    "x" * 101, "\tBo\n"]), st.text(max_size=8))
_EMAILS = st.one_of(st.sampled_from(["ada@example.com", "ada@example", "@example.com",
                                     "a@b.c", "a b@c.d", "a@b.c and more", " a@b.c", "a@@b.c",
                                     "", "bo@example.com"]), st.text(max_size=10))


def _create_outcome(stub: Any) -> Callable[[tuple[str, str]], Any]:
    """(name, email) -> (name, email) created, or the sorted fields of a rejection."""
    def call(request: tuple[str, str]) -> Any:
        try:
            user = stub.CreateUser(_create(*request), timeout=5)
        except grpc.RpcError as error:
            if error.code() == INVALID:
                return ("rejected", sorted(field_errors(error)))
            raise
        return ("created", user.name, user.email)
    return call


def _compare_creates(service_class: type) -> int:
    with stub_for("users", "UserService", service_class(UserStore())) as yours:
        with stub_for("users", "UserService", UserService(UserStore()),
                      name="check-reference") as reference:
            return compare_with_reference(
                _create_outcome(yours), _create_outcome(reference), st.tuples(_NAMES, _EMAILS),
                lambda request: f"CreateUser(name={request[0]!r}, email={request[1]!r})",
                examples=[(" " + "x" * 100 + " ", "edge@example.com"), ("Bo", "bo@example.co.uk"),
                          ("\u00a0Bo", "bo2@example.com")], max_examples=40)


def _walk(stub: Any, page_size: int, store: UserStore | None = None,
          delete: int = 3) -> list[list[int]]:
    """The ids of each page; with `store`, delete user `delete` after the first page."""
    pages, request = [], pb2.ListUsersRequest(page_size=page_size)
    while len(pages) < 20:
        try:
            reply = stub.ListUsers(request, timeout=5)
        except grpc.RpcError as error:
            raise Mismatch(f"ListUsers(page_size={page_size}) for page {len(pages) + 1} ended with "
                           f"{describe_rpc_error(error)}") from None
        pages.append([user.id for user in reply.users])
        if not reply.next_page_token:
            return pages
        if store is not None and len(pages) == 1:
            store.delete(delete)
        request.page_token = reply.next_page_token
    raise Mismatch(f"ListUsers(page_size={page_size}) still had a next_page_token after 20 pages")


@exercise(
    "5.3",
    "Pagination with tokens",
    notebook=LESSON,
    hint="Validate both fields first and reject their violations together. A page size of 0 "
    "means the default and one above the maximum is clamped (AIP-158); only a negative one is "
    "refused. The token remembers the last id of the page, not how many users to skip.",
    second_hint="A token must still be right when users are deleted while a client walks the "
    "pages: so it cannot be a count or an offset. What does the last page look like, and "
    "what does its token hold?",
)
def pagination(service_class: Any) -> str:
    store = UserStore()
    for i in range(1, 26):
        store.create(f"user {i}", f"user{i}@example.com")
    with stub_for("users", "UserService", service_class(store)) as stub:
        ids = list(range(1, 26))
        expect_equal(_walk(stub, 10), [ids[:10], ids[10:20], ids[20:]],
                     "the ids on each page of 10 (25 users)")
        expect_equal(_walk(stub, 0), [ids[:10], ids[10:20], ids[20:]],
                     "the pages for page_size 0 (the default, 10)")
        expect_equal(_walk(stub, 25), [ids], "the pages for page_size 25 (exactly all users)")
        expect_equal(_walk(stub, 10, store=store)[1][0], 11,
                     "the first id on page 2 after user 3 (on page 1) was deleted; a token "
                     "should remember the last id seen, not an offset: so")
        seen = [user_id for page in _walk(stub, 10, store=store, delete=15) for user_id in page]
        expect(len(seen) == len(set(seen)),
               f"user 15 was deleted after page 1 of a walk, and the walk then showed "
               f"{sorted(i for i in set(seen) if seen.count(i) > 1)} twice: a token should "
               "remember the last id seen, not an offset or a count")
        for request, fields in [
            (pb2.ListUsersRequest(page_size=-1), {"page_size"}),
            (pb2.ListUsersRequest(page_token="garbage"), {"page_token"}),
            (pb2.ListUsersRequest(page_size=-5, page_token="after:3"), {"page_size", "page_token"}),
        ]:
            what = f"ListUsers(page_size={request.page_size}, page_token={request.page_token!r})"
            expect_equal(_rejected_fields(stub.ListUsers, request, what), fields,
                         f"the fields rejected by {what}")
    many = UserStore()
    for i in range(1, MAX_PAGE_SIZE + 31):
        many.create(f"user {i}", f"user{i}@example.com")
    with stub_for("users", "UserService", service_class(many)) as stub:
        for page_size in [MAX_PAGE_SIZE + 1, 500]:
            try:
                pages = _walk(stub, page_size)
            except Mismatch as mismatch:
                raise Mismatch(f"{mismatch}: a page_size above {MAX_PAGE_SIZE} is clamped to "
                               f"{MAX_PAGE_SIZE} (AIP-158), not refused") from None
            expect_equal([len(page) for page in pages], [MAX_PAGE_SIZE, 30],
                         f"the page lengths for page_size={page_size} ({MAX_PAGE_SIZE + 30} "
                         f"users; a size above {MAX_PAGE_SIZE} is clamped to {MAX_PAGE_SIZE})")
    return ("pages of 10, 0 (default) and 25 are right, tokens survive a delete, sizes above "
            f"{MAX_PAGE_SIZE} clamped, negative sizes and bad tokens rejected together")


class _ServiceWithMixedDetails(UserService):
    """GetUser(7) fails with a RetryInfo, then a BadRequest; GetUser(8) with two BadRequests
    and a RetryInfo between them."""

    def GetUser(self, request, context):
        if request.id not in (7, 8):
            return super().GetUser(request, context)
        retry, bad, more = any_pb2.Any(), any_pb2.Any(), any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1)))
        bad.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="id", description="7 is reserved")]))
        more.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="name", description="too short"),
            error_details_pb2.BadRequest.FieldViolation(field="email", description="no @")]))
        details = [retry, bad] if request.id == 7 else [bad, retry, more]
        status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="the request was refused",
                                   details=details)
        context.abort_with_status(rpc_status.to_status(status))


def _error_of(rpc: Callable, request: Any) -> grpc.RpcError:
    try:
        rpc(request, timeout=5)
    except grpc.RpcError as error:
        return error
    raise AssertionError("the check expected this call to fail")


@exercise(
    "5.4",
    "Read the field violations",
    notebook=LESSON,
    hint="The violations travel in the status details, not in the message text. An error "
    "may have no details at all, and a status may carry details of other types before the "
    "BadRequest.",
    second_hint="The status can be missing (no details at all). Each detail is an Any: ask it "
    "its type before unpacking, and don't stop at the first BadRequest: a status may carry "
    "more than one.",
)
def read_field_errors(learner_field_errors: Callable[[grpc.RpcError], dict[str, str]]) -> str:
    with stub_for("users", "UserService", _ServiceWithMixedDetails()) as stub:
        cases = [
            ("CreateUser('', 'nope')", stub.CreateUser, _create("", "nope"),
             {"name": "must not be empty", "email": "must look like name@example.com"}, ""),
            ("ListUsers(page_size=-5, page_token='x')", stub.ListUsers,
             pb2.ListUsersRequest(page_size=-5, page_token="x"),
             {"page_size": "must not be negative",
              "page_token": "must be a next_page_token from ListUsers"}, ""),
            ("GetUser(999), a NOT_FOUND without details", stub.GetUser,
             pb2.GetUserRequest(id=999), {}, ": an error without details gives {}"),
            ("GetUser(7), with a RetryInfo before its BadRequest and a message that names no "
             "field", stub.GetUser, pb2.GetUserRequest(id=7), {"id": "7 is reserved"},
             ": read the violations from the BadRequest detail (not the message text), and look "
             "at every detail, not only the first"),
            ("GetUser(8), with two BadRequest details and a RetryInfo between them", stub.GetUser,
             pb2.GetUserRequest(id=8),
             {"id": "7 is reserved", "name": "too short", "email": "no @"},
             ": collect the violations of every BadRequest detail, not only the first one"),
        ]
        for what, rpc, request, expected, advice in cases:
            got = learner_field_errors(_error_of(rpc, request))
            expect(got == expected,
                   f"field_errors for {what}: expected {expected!r}, got {got!r}{advice}")
    return f"{len(cases)} errors read: violations found, other details skipped, no details gives {{}}"


# ---- 5.5 (the challenge): many users at once, all or none ------------------------------------

ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS
ALL_OR_NONE = ("hold self._lock once, for the email checks and every insert of the batch, so "
               "that no other call slips in between")
_SEEDED = [("Ada", "ada@example.com"), ("Grace", "grace@example.com")]  # ids 1 and 2


def _seeded(store_class: type) -> Any:
    """A new store of `store_class` holding Ada (id 1) and Grace (id 2)."""
    store = store_class()
    for name, email in _SEEDED:
        store.create(name, email)
    return store


def _held(store: Any) -> list[tuple[int, str, str]]:
    users, _ = store.page(0, 10_000)
    return [(user.id, user.name, user.email) for user in users]


def _create_many(store: Any, entries: list[tuple[str, str]]) -> Any:
    return within(5, lambda: store.create_many(entries),
                  f"create_many({entries!r}) never returned: does it take self._lock while it "
                  "already holds it? A threading.Lock is not re-entrant, and create() takes it")


def _expect_store_refuses(store_class: type, entries: list[tuple[str, str]], why: str) -> None:
    """create_many(entries) must raise EmailTaken and leave the store exactly as it was."""
    store = _seeded(store_class)
    try:
        _create_many(store, entries)
    except EmailTaken:
        pass
    else:
        raise Mismatch(f"create_many({entries!r}), with {why}, did not raise EmailTaken")
    within(3, lambda: store.get(1), f"after create_many raised EmailTaken ({why}), self._lock "
           "was still held and get() waited for it: release it on every way out")
    left = [user for user in _held(store) if user[0] > len(_SEEDED)]
    expect(not left, f"create_many({entries!r}) raised EmailTaken ({why}) but left {left} "
           "behind: a batch is all or none, so check every email before storing any user")
    next_id = store.create("Next", "next@example.com").id
    expect(next_id == len(_SEEDED) + 1, f"after a refused batch ({why}) the next user got id "
           f"{next_id}, not {len(_SEEDED) + 1}: a refused batch leaves the store as it was, its "
           "next id included")


def _expect_one_hold(store_class: type) -> None:
    """Every read and write of one create_many happens under a single hold of self._lock."""
    store = _seeded(store_class)
    if not (hasattr(store, "_lock") and isinstance(getattr(store, "_users", None), dict)):
        return  # a different design: the concurrent calls judge it
    users = dict(store._users)
    store._lock = _OwnedLock()
    store._users = _GuardedUsers(store._lock)
    dict.update(store._users, users)
    store.create_many([("Bo", "bo@example.com"), ("Cy", "cy@example.com")])
    accesses = store._users.accesses
    outside = [what for what, hold in accesses if hold is None]
    expect(not outside, f"create_many {outside[0] if outside else ''} without holding "
           f"self._lock: get, page and the other methods take self._lock, so a lock of its own "
           f"keeps nobody out; {ALL_OR_NONE}")
    holds = [hold for _, hold in accesses]
    if len(set(holds)) > 1:
        first = accesses[0][0]
        later = next(what for what, hold in accesses if hold != holds[0])
        raise Mismatch(f"create_many let go of self._lock between \"{first}\" and \"{later}\": "
                       "another call can take an email or an id in that gap; " + ALL_OR_NONE)


def _expect_batch_store(store_class: type) -> None:
    store = _seeded(store_class)
    entries = [("Bo", "bo@example.com"), ("Cy", "cy@example.com"), ("Di", "di@example.com")]
    users = _create_many(store, entries)
    expect(isinstance(users, list) and all(isinstance(user, pb2.User) for user in users),
           f"create_many returned {type(users).__name__}, expected a list of users")
    expect_equal([(user.id, user.name, user.email) for user in users],
                 [(3, "Bo", "bo@example.com"), (4, "Cy", "cy@example.com"),
                  (5, "Di", "di@example.com")],
                 "create_many of three users on a store holding ids 1 and 2 returned (id, name, "
                 "email)")
    users[0].name = "Mallory"
    expect(store.get(3).name == "Bo", "changing a user that create_many returned changed the "
           "stored user too: hand out copies made under the lock, as the other methods do")
    _expect_store_refuses(store_class, [("Bo", "bo@example.com"), ("Cy", "ada@example.com")],
                          "an email already in use")
    _expect_store_refuses(store_class, [("Bo", "bo@example.com"), ("Cy", "cy@example.com"),
                                        ("Bo again", "bo@example.com")],
                          "an email twice in the batch")
    _expect_one_hold(store_class)


def _batch(entries: list[tuple[str, str]]) -> Any:
    return pb2.BatchCreateUsersRequest(requests=[_create(name, email) for name, email in entries])


def _violation_fields(error: grpc.RpcError) -> list[str]:
    """The field of every violation in the BadRequest details, repeats kept, sorted."""
    status = rpc_status.from_call(error)
    fields = []
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields += [violation.field for violation in bad_request.field_violations]
    return sorted(fields)


def _batch_outcome(stub: Any, service: Any) -> Callable[[list[tuple[str, str]]], Any]:
    """entries -> what the call answered (users created, fields rejected, or a status code),
    and what the store holds afterwards. The store is a new seeded one for each batch."""
    store_class = type(service.store)

    def call(entries: list[tuple[str, str]]) -> Any:
        service.store = _seeded(store_class)
        try:
            reply = stub.BatchCreateUsers(_batch(entries), timeout=5)
        except grpc.RpcError as error:
            if error.code() == INVALID:
                return ("rejected", _violation_fields(error), _held(service.store))
            if error.code() == ALREADY_EXISTS:
                return ("ALREADY_EXISTS", _held(service.store))
            raise
        return ("created", [(user.id, user.name, user.email) for user in reply.users],
                _held(service.store))
    return call


# (entries, what the reference answers, advice when the learner's answer differs)
_BATCH_CASES: list[tuple[list[tuple[str, str]], str]] = [
    ([("  Bo  ", "bo@example.com"), ("Cy", "cy@example.com"), ("x" * 100, "long@example.com")],
     "create every user of a valid batch, names stripped, ids in request order"),
    ([], "an empty batch is a bad request: a violation of the field `requests`"),
    ([("", "bo@example.com"), ("Cy", "cy@example"), ("Di", "di@example.com")],
     "name each bad field by its place in the batch (requests[1].email), report them all in "
     "one BadRequest, and create nobody"),
    ([("Bo", "bo@example.com"), ("Cy", "bo@example.com")],
     "an email repeated within one batch is a mistake in the request itself (INVALID_ARGUMENT, "
     "a violation of the later entry's email), not a clash with a stored user"),
    ([("Bo", "bo@example"), ("Cy", "bo@example")],
     "one violation per bad field: a malformed email that repeats is still one problem of that "
     "field"),
    ([("Bo", "bo@example.com"), ("Cy", "ada@example.com")],
     "an email another user has is ALREADY_EXISTS, and the batch is refused whole: Bo is not "
     "created either"),
    ([("", "nope"), ("Cy", "ada@example.com")],
     "bad fields come first: a batch with a bad field is INVALID_ARGUMENT even if an email is "
     "also taken"),
    ([("x" * 101, "bo@example.com"), (" " + "x" * 100 + " ", "cy@example.com")],
     "a name is at most MAX_NAME_LENGTH characters once its spaces are stripped"),
]

_BATCH_EMAILS = st.one_of(st.sampled_from(["ada@example.com", "bo@example.com", "cy@example.com",
                                           "bo@example", "a b@c.d", "x@y.z", ""]),
                          st.text(max_size=6))


def _describe_batch(entries: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"({name[:12]!r}, {email!r})" for name, email in entries)
    return f"BatchCreateUsers([{shown}]) on a store holding Ada (ada@example.com) and Grace"


def _expect_race_lost(store_class: type, service_class: type) -> None:
    """The store refuses the batch although the service's own look found every email free."""

    def taken_meanwhile(self: Any, entries: list) -> Any:
        raise EmailTaken(entries[-1][1])

    racing = type("RaceLostStore", (store_class,), {"create_many": taken_meanwhile})
    with stub_for("users", "UserService", service_class(racing()), name="check-batch-race") as stub:
        try:
            stub.BatchCreateUsers(_batch([("Bo", "bo@example.com")]), timeout=5)
        except grpc.RpcError as error:
            expect(error.code() == ALREADY_EXISTS,
                   f"a batch whose email another call took a moment earlier ended with "
                   f"{describe_rpc_error(error)}, expected ALREADY_EXISTS: only create_many knows "
                   "for sure, so handle its EmailTaken")
            return
    raise Mismatch("BatchCreateUsers succeeded although create_many raised EmailTaken: store "
                   "the batch with create_many, the one place that decides under the lock")


def _expect_races(stub: Any, service: Any, store_class: type) -> None:
    """Batches and single creates sent at once, through the server."""

    def send(entries: list[tuple[str, str]]) -> Any:
        try:
            return [user.id for user in stub.BatchCreateUsers(_batch(entries), timeout=10).users]
        except grpc.RpcError as error:
            return error.code()

    for round_number in range(3):
        service.store = _seeded(store_class)
        batches = [[(f"A{i}", f"a{i}@example.com"), (f"S{i}", "shared@example.com"),
                    (f"C{i}", f"c{i}@example.com")] for i in range(8)]
        with _switch_often():
            outcomes = concurrently(lambda i: send(batches[i]), 8, what="BatchCreateUsers")
        answers = [outcome.value for outcome in outcomes]
        won = [i for i, answer in enumerate(answers) if isinstance(answer, list)]
        expect(len(won) == 1 and all(answer == ALREADY_EXISTS for answer in answers
                                      if not isinstance(answer, list)),
               f"8 batches sharing one email were sent at once: {len(won)} succeeded, the others "
               f"got {sorted({getattr(a, 'name', '?') for a in answers if not isinstance(a, list)})};"
               f" expected exactly 1 success and ALREADY_EXISTS for the rest: {ALL_OR_NONE}")
        winner = batches[won[0]]
        expect_equal([entry[1:] for entry in _held(service.store)[len(_SEEDED):]],
                     [(name, email) for name, email in winner],
                     "the (name, email) of the users stored after 8 racing batches (only the "
                     "winner's, in order; a refused batch leaves nothing behind)")
    service.store = _seeded(store_class)
    batches = [[(f"U{i}.{j}", f"u{i}.{j}@example.com") for j in range(4)] for i in range(8)]
    with _switch_often():
        outcomes = concurrently(lambda i: send(batches[i]), 8, what="BatchCreateUsers")
    for i, outcome in enumerate(outcomes):
        ids = outcome.value
        expect(isinstance(ids, list), f"one of 8 valid batches sent at once ended with "
               f"{getattr(ids, 'name', ids)}")
        expect(len(ids) == 4 and ids == list(range(ids[0], ids[0] + 4)),
               f"8 batches of 4 sent at once: one got ids {ids}, not 4 consecutive ids: another "
               f"call slipped in between; {ALL_OR_NONE}")
    walked, request = [], pb2.ListUsersRequest(page_size=10)
    for _ in range(10):
        page = stub.ListUsers(request, timeout=5)
        walked += [(user.id, user.email) for user in page.users]
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    expected = sorted((user_id, f"u{i}.{j}@example.com") for i, outcome in enumerate(outcomes)
                      for j, user_id in enumerate(outcome.value))
    expect_equal(walked[len(_SEEDED):], expected,
                 "the users ListUsers walks through after 8 batches of 4 sent at once")
    service.store = _seeded(store_class)

    def single_or_batch(i: int) -> Any:
        if i % 2:
            return send([(f"B{i}", f"b{i}@example.com"), (f"T{i}", "twin@example.com")])
        try:
            return [stub.CreateUser(_create(f"T{i}", "twin@example.com"), timeout=10).id]
        except grpc.RpcError as error:
            return error.code()

    with _switch_often():
        answers = [outcome.value for outcome in concurrently(single_or_batch, 8,
                                                             what="CreateUser and BatchCreateUsers")]
    won = [answer for answer in answers if isinstance(answer, list)]
    expect(len(won) == 1, f"4 CreateUser and 4 BatchCreateUsers with one email, sent at once: "
           f"{len(won)} succeeded (expected exactly 1): {ALL_OR_NONE}")
    twins = [user for user in _held(service.store) if user[2] == "twin@example.com"]
    expect(len(twins) == 1, f"after CreateUser and BatchCreateUsers raced for one email, the "
           f"store holds it {len(twins)} times: {ALL_OR_NONE}")


@exercise(
    "5.5",
    "Many users at once, all or none",
    notebook=LESSON,
    hint="Two halves, each with its own job. The service judges the request on its own (every "
    "field of every entry, and what the entries say about each other) before it touches the "
    "store. The store alone can say whether an email is free, and only while nobody else can "
    "change the answer.",
    second_hint="Ask, for each rule, at which moment it can be decided and by whom: a repeat "
    "inside the batch is known from the request; a clash with a stored user only under the "
    "lock, and the inserts must happen under that same hold. The unlocked create() of "
    "UnsafeUserStore is still there to call while you hold the lock.",
)
def batch_create(store_class: Any, service_class: Any) -> str:
    expect(isinstance(store_class, type) and isinstance(service_class, type),
           "pass the two classes, BatchUserStore and BatchUserService, not instances")
    _seeded(store_class).create_many([("probe", "probe@example.com")])  # raises if not solved yet
    _expect_batch_store(store_class)
    service = service_class(_seeded(store_class))
    with stub_for("users", "UserService", service) as stub:
        reference = UserService(UserStore())
        with stub_for("users", "UserService", reference, name="check-reference") as reference_stub:
            yours, theirs = _batch_outcome(stub, service), _batch_outcome(reference_stub, reference)
            for entries, advice in _BATCH_CASES:
                got, expected = outcome_of(yours, entries), outcome_of(theirs, entries)
                if got != expected:
                    raise Mismatch(f"{_describe_batch(entries)}: the reference gives "
                                   f"{_shown(expected)}, yours gives {_shown(got)}: {advice}")
            compared = compare_with_reference(
                yours, theirs, st.lists(st.tuples(_NAMES, _BATCH_EMAILS), max_size=4),
                _describe_batch, max_examples=40)
        _expect_race_lost(store_class, service_class)
        _expect_races(stub, service, store_class)
    return (f"{len(_BATCH_CASES) + compared} batches agree with the reference (all or none, every "
            "bad field named by its place, ALREADY_EXISTS for a taken email); racing batches and "
            "creates: exactly one winner, consecutive ids, nothing left behind; create_many holds "
            "self._lock once and hands out copies")
