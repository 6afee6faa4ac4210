"""The finished user service of lesson 05: CRUD with validation and page tokens.

- `UserStore` keeps users in memory behind one lock, so it is safe behind a
  server's thread pool.
- `UserService` answers bad input with INVALID_ARGUMENT plus google.rpc.BadRequest
  field violations (`reject`), an unknown id with NOT_FOUND and an email already
  in use with ALREADY_EXISTS. UpdateUser applies CreateUser's rules to each field
  it changes (and refuses enum numbers that are not a real status); ListUsers
  clamps a page size above the maximum and refuses a negative one (AIP-158);
  BatchCreateUsers creates several users all or none (AIP-233).
- `field_errors` reads those field violations back on the client.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, empty_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from helpers import protos
from helpers.reference.people import preview

users_pb2, users_pb2_grpc = protos.load("users")

User = users_pb2.User
FieldViolation = error_details_pb2.BadRequest.FieldViolation

EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_NAME_LENGTH = 100
MAX_EMAIL_LENGTH = 254
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 10, 100
SETTABLE_STATUSES = {users_pb2.USER_STATUS_ACTIVE, users_pb2.USER_STATUS_INACTIVE,
                     users_pb2.USER_STATUS_BANNED}


class EmailTaken(Exception):
    """Another user already has this email address."""


class UserStore:
    """Users in memory. One lock guards the dict and the id counter, so a
    check-then-act sequence (is the email free? then insert) is atomic.
    Every method returns copies: no reference to the locked state leaves the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[int, User] = {}
        self._next_id = 1

    def _email_in_use(self, email: str, except_id: int = 0) -> bool:
        return any(user.email == email and user.id != except_id for user in self._users.values())

    def create(self, name: str, email: str) -> User:
        """Add a user with the next id; raise EmailTaken if the email is in use."""
        with self._lock:
            if self._email_in_use(email):
                raise EmailTaken(email)
            user = User(id=self._next_id, name=name, email=email,
                        status=users_pb2.USER_STATUS_ACTIVE)
            user.created_at.GetCurrentTime()
            self._users[user.id] = user
            self._next_id += 1
            return _copy(user)

    def get(self, user_id: int) -> User | None:
        """A copy of the user, or None."""
        with self._lock:
            user = self._users.get(user_id)
            return None if user is None else _copy(user)

    def page(self, after_id: int, limit: int) -> tuple[list[User], bool]:
        """Up to `limit` users with an id above `after_id`, in id order, and
        whether more users follow them."""
        with self._lock:
            ids = sorted(user_id for user_id in self._users if user_id > after_id)
            return [_copy(self._users[i]) for i in ids[:limit]], len(ids) > limit

    def update(self, user_id: int, name: str | None = None, email: str | None = None,
               status: int | None = None) -> User | None:
        """Change the fields that are not None; None if there is no such user."""
        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                return None
            if email is not None and self._email_in_use(email, except_id=user_id):
                raise EmailTaken(email)
            if name is not None:
                user.name = name
            if email is not None:
                user.email = email
            if status is not None:
                user.status = status
            return _copy(user)

    def create_many(self, entries: list[tuple[str, str]]) -> list[User]:
        """A user for each (name, email), in order, with consecutive ids; all or none:
        EmailTaken, and nothing stored, if an email is in use or appears twice in `entries`."""
        with self._lock:  # one hold for the checks and every insert: nobody slips in between
            emails = [email for _, email in entries]
            for email in emails:
                if self._email_in_use(email) or emails.count(email) > 1:
                    raise EmailTaken(email)
            users = []
            for name, email in entries:
                user = User(id=self._next_id, name=name, email=email,
                            status=users_pb2.USER_STATUS_ACTIVE)
                user.created_at.GetCurrentTime()
                self._users[user.id] = user
                self._next_id += 1
                users.append(_copy(user))
            return users

    def delete(self, user_id: int) -> bool:
        """Remove the user; False if there was none."""
        with self._lock:
            return self._users.pop(user_id, None) is not None

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)


def _copy(user: User) -> User:
    """A copy, so a caller changing it cannot change the store behind the lock."""
    copy = User()
    copy.CopyFrom(user)
    return copy


def encode_page_token(last_id: int) -> str:
    """An opaque token meaning "the page after the user with id `last_id`"."""
    return base64.urlsafe_b64encode(f"after:{last_id}".encode()).decode()


def decode_page_token(token: str) -> int:
    """The id inside a token from `encode_page_token`; ValueError for anything else."""
    try:
        text = base64.b64decode(token, altchars=b"-_", validate=True).decode("ascii")
    except (ValueError, UnicodeError) as error:  # binascii.Error is a ValueError
        raise ValueError(f"not a page token: {token[:40]!r}") from error
    match = re.fullmatch(r"after:(\d{1,18})", text)
    if match is None:
        raise ValueError(f"not a page token: {token[:40]!r}")
    return int(match.group(1))


def name_and_email_violations(name: str | None, email: str | None) -> list[FieldViolation]:
    """Problems with a new name and email (None: the field is not being set)."""
    violations = []
    if name is not None:
        if not name.strip():
            violations.append(FieldViolation(field="name", description="must not be empty"))
        elif len(name.strip()) > MAX_NAME_LENGTH:
            violations.append(FieldViolation(
                field="name", description=f"must be at most {MAX_NAME_LENGTH} characters"))
    if email is not None:
        if len(email) > MAX_EMAIL_LENGTH:
            violations.append(FieldViolation(
                field="email", description=f"must be at most {MAX_EMAIL_LENGTH} characters"))
        elif not EMAIL_PATTERN.fullmatch(email):
            violations.append(FieldViolation(
                field="email", description="must look like name@example.com"))
    return violations


def batch_violations(requests: list) -> list[FieldViolation]:
    """Problems with a batch of CreateUserRequests, each named by its place: requests[2].email.
    An email that an earlier entry of the batch has is a problem of the later entry."""
    if not requests:
        return [FieldViolation(field="requests", description="must not be empty")]
    violations, first_seen = [], {}
    for index, entry in enumerate(requests):
        for violation in name_and_email_violations(entry.name, entry.email):
            violations.append(FieldViolation(field=f"requests[{index}].{violation.field}",
                                             description=violation.description))
        if entry.email in first_seen and not any(
                v.field == f"requests[{index}].email" for v in violations):
            violations.append(FieldViolation(
                field=f"requests[{index}].email",
                description=f"repeats requests[{first_seen[entry.email]}].email"))
        first_seen.setdefault(entry.email, index)
    return violations


def reject(context: grpc.ServicerContext, violations: list[FieldViolation]) -> NoReturn:
    """End the call with INVALID_ARGUMENT and a google.rpc.BadRequest detail.

    The message repeats the violations, so a client that does not read
    details still learns what was wrong.
    """
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=violations))
    message = "; ".join(f"{v.field}: {v.description}" for v in violations)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status always raises")  # for type checkers


def field_errors(error: grpc.RpcError) -> dict[str, str]:
    """{field: description} from a failed call's BadRequest detail; {} if it has none."""
    status = rpc_status.from_call(error)
    found: dict[str, str] = {}
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for violation in bad_request.field_violations:
                found[violation.field] = violation.description
    return found


class UserService(users_pb2_grpc.UserServiceServicer):
    """The lesson 05 user service, finished."""

    def __init__(self, store: UserStore | None = None) -> None:
        self.store = UserStore() if store is None else store

    def _existing(self, user_id: int, context: grpc.ServicerContext) -> User:
        if user_id <= 0:
            reject(context, [FieldViolation(field="id", description="must be a positive number")])
        user = self.store.get(user_id)
        if user is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no user with id {user_id}")
        return user

    def GetUser(self, request, context):
        return self._existing(request.id, context)

    def ListUsers(self, request, context):
        violations = []
        if request.page_size < 0:
            violations.append(FieldViolation(field="page_size", description="must not be negative"))
        after_id = 0
        if request.page_token:
            try:
                after_id = decode_page_token(request.page_token)
            except ValueError:
                violations.append(FieldViolation(
                    field="page_token", description="must be a next_page_token from ListUsers"))
        if violations:
            reject(context, violations)
        # AIP-158: 0 means the default; a size above the maximum is clamped, not refused.
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        users, more = self.store.page(after_id, size)
        token = encode_page_token(users[-1].id) if more else ""
        return users_pb2.ListUsersResponse(users=users, next_page_token=token)

    def CreateUser(self, request, context):
        violations = name_and_email_violations(request.name, request.email)
        if violations:
            reject(context, violations)
        try:
            return self.store.create(request.name.strip(), request.email)
        except EmailTaken:
            context.abort(grpc.StatusCode.ALREADY_EXISTS,
                          f"email {preview(request.email)} is already in use")

    def UpdateUser(self, request, context):
        self._existing(request.id, context)
        name = request.name if request.HasField("name") else None
        email = request.email if request.HasField("email") else None
        status = request.status if request.HasField("status") else None
        violations = name_and_email_violations(name, email)
        if status is not None and status not in SETTABLE_STATUSES:
            violations.append(FieldViolation(
                field="status", description="must be ACTIVE, INACTIVE or BANNED"))
        if violations:
            reject(context, violations)
        try:
            user = self.store.update(request.id, name and name.strip(), email, status)
        except EmailTaken:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"email {preview(email)} is already in use")
        if user is None:  # deleted since _existing looked
            context.abort(grpc.StatusCode.NOT_FOUND, f"no user with id {request.id}")
        return user

    def DeleteUser(self, request, context):
        self._existing(request.id, context)
        if not self.store.delete(request.id):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no user with id {request.id}")
        return empty_pb2.Empty()

    def BatchCreateUsers(self, request, context):
        violations = batch_violations(request.requests)
        if violations:
            reject(context, violations)
        try:
            users = self.store.create_many([(entry.name.strip(), entry.email)
                                            for entry in request.requests])
        except EmailTaken as taken:
            context.abort(grpc.StatusCode.ALREADY_EXISTS,
                          f"email {preview(str(taken))} is already in use")
        return users_pb2.BatchCreateUsersResponse(users=users)
