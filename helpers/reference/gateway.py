"""A finished REST gateway (FastAPI) in front of the lesson 05 user service (lesson 11).

    app = make_app(server.target)        # routes: GET/POST /users, GET/PATCH/DELETE /users/{id}
    async with app.router.lifespan_context(app):   # opens the grpc.aio channel
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://gateway") as client:
            (await client.get("/users/1")).json()

Pieces a learner writes in lesson 11 can be swapped in through `make_app`'s
arguments (`rpc_error_handler`, `call_options`, `create_user`), so a check can run
the learner's piece inside an otherwise finished gateway.

- `http_status`: gRPC status code -> HTTP status, as google/rpc/code.proto maps them.
- `rpc_error_handler`: a failed call becomes an RFC 9457 problem document, with
  BadRequest field violations as `invalid-params`; a 500 never shows the server's
  message (it may hold internals).
- `call_options`: `X-Request-Id` travels as gRPC metadata and comes back as a
  response header; `X-Timeout-Ms` becomes the call's deadline (default 5 s).
- `RequestEdge`: the ASGI middleware in front of everything: it gives every request
  an id (refusing a malformed one), refuses bodies over 4 MiB with 413, puts the id
  on every response (errors included) and in the log, answers an uncaught
  exception with a 500 problem document, and cancels the gRPC call when the HTTP
  client goes away.
- every error, FastAPI's own 404, 405 and 422 included, is one format: an RFC 9457
  problem document (`problem`).
- `WatchedUserService`: the reference service, noting the metadata and deadline
  every call arrived with, so a test can see what really reached the server.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import uuid
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, AsyncIterator, Callable, Literal

import grpc
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from helpers.reference.users import UserService, UserStore, field_errors, users_pb2, users_pb2_grpc

# google/rpc/code.proto gives each code an "HTTP Mapping"; grpc-gateway's
# runtime.HTTPStatusFromCode follows it (older releases sent CANCELLED as 408).
STATUS_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,  # "Client Closed Request", a de facto code (nginx)
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

PROBLEM_JSON = "application/problem+json"
REQUEST_ID = "X-Request-Id"  # HTTP header; gRPC metadata keys are lower case: x-request-id
TIMEOUT_MS = "X-Timeout-Ms"  # HTTP header: the client's budget in milliseconds
DEFAULT_TIMEOUT, MAX_TIMEOUT = 5.0, 30.0  # seconds
MAX_BODY = 4 * 1024 * 1024  # bytes: gRPC's default limit for one received message
MAX_REQUEST_ID = 200  # characters
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
REQUEST_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_REQUEST_ID)  # visible ASCII
TIMEOUT_PATTERN = re.compile(r"[0-9]{1,5}")  # whole milliseconds, no sign, no exponent

log = logging.getLogger("gateway")


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status a gateway answers for a call that ended with `code`."""
    return STATUS_TO_HTTP.get(code, 500)


def reason_phrase(status: int) -> str:
    """"Not Found" for 404; Python's http module does not know 499."""
    return "Client Closed Request" if status == 499 else HTTPStatus(status).phrase


def problem(status: int, detail: str | None = None, **members: Any) -> JSONResponse:
    """An RFC 9457 problem document; `detail` is left out of a 5xx (it may hold internals)."""
    body: dict[str, Any] = {"type": "about:blank", "title": reason_phrase(status),
                            "status": status}
    if detail is not None and status < 500:
        body["detail"] = detail
    body.update(members)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def http_error_handler(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """FastAPI's and Starlette's own errors (404 no such route, 405, 400...) as problems."""
    response = problem(error.status_code, str(error.detail))
    response.headers.update(error.headers or {})
    return response


async def validation_error_handler(request: Request,
                                   error: RequestValidationError) -> JSONResponse:
    """A request that does not fit the route (path, query, body) as a 422 problem.

    Only where and why: FastAPI's own 422 also echoes the input, which can be
    infinity (`1e999`, which JSON cannot write: a 500) or a lone surrogate.
    """
    def printable(text: Any) -> str:  # a message may quote a lone surrogate
        return str(text).encode("utf-8", "backslashreplace").decode("utf-8")

    params = [{"name": printable(".".join(str(part) for part in item["loc"])),
               "reason": printable(item["msg"])} for item in error.errors()]
    return problem(422, "the request does not fit this route", **{"invalid-params": params})


def problem_document(error: grpc.RpcError) -> tuple[int, dict[str, Any]]:
    """(HTTP status, RFC 9457 problem document) for a failed call."""
    status = http_status(error.code())
    body: dict[str, Any] = {"type": "about:blank", "title": reason_phrase(status),
                            "status": status, "grpcStatus": error.code().name}
    if status < 500:  # a 5xx message may hold a stack trace, a path, a query: keep it inside
        body["detail"] = error.details() or ""
    violations = field_errors(error)
    if violations:
        body["invalid-params"] = [{"name": field, "reason": reason}
                                  for field, reason in violations.items()]
    return status, body


async def rpc_error_handler(request: Request, error: grpc.aio.AioRpcError) -> JSONResponse:
    """FastAPI exception handler: a failed gRPC call becomes a problem document."""
    status, body = problem_document(error)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def to_json(message: Message) -> dict[str, Any]:
    """The protobuf JSON mapping: lowerCamelCase, int64 as strings, enum names, RFC 3339."""
    return json_format.MessageToDict(message)


def user_stub(request: Request) -> users_pb2_grpc.UserServiceStub:
    """FastAPI dependency: the stub on the channel the lifespan opened."""
    return request.app.state.stub


CallOptions = dict[str, Any]  # keyword arguments for a stub call: metadata=..., timeout=...


def call_options(request: Request, response: Response) -> CallOptions:
    """FastAPI dependency: the request id and deadline to call gRPC with.

    `X-Timeout-Ms` is whole milliseconds from 1 to 30000; anything else is a 400.
    """
    request_id = request.headers.get(REQUEST_ID) or uuid.uuid4().hex
    response.headers[REQUEST_ID] = request_id
    timeout = DEFAULT_TIMEOUT
    if TIMEOUT_MS in request.headers:
        text = request.headers[TIMEOUT_MS]
        if not (TIMEOUT_PATTERN.fullmatch(text) and 1 <= int(text) <= MAX_TIMEOUT * 1000):
            raise HTTPException(400, f"{TIMEOUT_MS} must be a whole number of milliseconds "
                                     f"from 1 to {MAX_TIMEOUT * 1000:.0f}")
        timeout = int(text) / 1000
    return {"metadata": (("x-request-id", request_id),), "timeout": timeout}


def no_surrogates(text: str) -> str:
    """Refuse a lone surrogate (JSON allows "\\ud800"; UTF-8 and protobuf do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode: a lone surrogate") from None
    return text


Text = Annotated[str, AfterValidator(no_surrogates)]
UserId = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX)]  # an int64, or 422
PageSize = Annotated[int, Query(ge=INT32_MIN, le=INT32_MAX)]  # an int32, or 422


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled field is an error, not ignored

    name: Text
    email: Text


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")  # {"emial": ...} must not answer 200

    name: Text | None = None
    email: Text | None = None
    status: Literal["USER_STATUS_ACTIVE", "USER_STATUS_INACTIVE", "USER_STATUS_BANNED"] | None = None


async def create_user(new: NewUser, stub=Depends(user_stub),
                      options: CallOptions = Depends(call_options)) -> JSONResponse:
    """POST /users: 201 Created, with the new user's address in Location."""
    user = await stub.CreateUser(users_pb2.CreateUserRequest(name=new.name, email=new.email),
                                 **options)
    return JSONResponse(to_json(user), status_code=201, headers={"Location": f"/users/{user.id}"})


class RequestEdge:
    """ASGI middleware, outermost: what every request goes through, whatever the route.

    - a request id: the client's `X-Request-Id` if it is 1-200 visible ASCII
      characters (gRPC metadata takes no more), a 400 if it is not, a fresh one if
      there is none (added to the request's headers, so everything after sees it);
    - the id on every response, errors included (FastAPI drops headers a dependency
      set when an exception handler builds the reply), and one log line per request;
    - a body over 4 MiB is a 413, before any of it reaches the app;
    - an uncaught exception is answered with a 500 problem document (the server logs it);
    - a client that disconnects cancels the request's task, and with it the gRPC call.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = [(k, v) for k, v in scope["headers"] if k != b"x-request-id"]
        given = [v for k, v in scope["headers"] if k == b"x-request-id"]
        request_id = uuid.uuid4().hex
        refusal = None
        if given:
            text = given[0].decode("latin-1")
            if len(given) == 1 and REQUEST_ID_PATTERN.fullmatch(text):
                request_id = text
            else:
                refusal = problem(400, f"{REQUEST_ID} must be one value of 1 to "
                                       f"{MAX_REQUEST_ID} visible ASCII characters")
        scope = {**scope, "headers": headers + [(b"x-request-id", request_id.encode())]}
        scope.setdefault("state", {})["request_id"] = request_id
        outcome = _Outcome(request_id, scope["method"], scope.get("path", ""))
        send = outcome.wrap(send)
        try:
            if refusal is None:
                body, refusal = await _read_body(scope, receive)
            if refusal is not None:
                await refusal(scope, receive, send)
            else:
                await _run_until_disconnect(self.app, scope, body, receive, send, outcome)
        except Exception:
            if not outcome.started:
                await problem(500)(scope, receive, send)
            raise  # on to the server, which logs it (and to a test client, which raises it)
        finally:
            outcome.log()


@dataclass
class _Outcome:
    """What the middleware saw of one request's response."""

    request_id: str
    method: str
    path: str
    status: int | None = None
    started: bool = False
    cancelled: bool = False

    def wrap(self, send: Callable) -> Callable:
        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                self.started, self.status = True, message["status"]
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", self.request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)
        return send_with_id

    def log(self) -> None:
        status = 499 if self.cancelled else self.status
        log.info("%s %s %r -> %s", self.request_id, self.method, self.path, status)


async def _read_body(scope: dict, receive: Callable) -> tuple[bytes, JSONResponse | None]:
    """The whole request body, or a 413 problem if it is over MAX_BODY bytes."""
    too_large = problem(413, f"the body is over {MAX_BODY} bytes")
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            return b"", too_large
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError  # gone before the body arrived
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY:
            return b"", too_large
        if not message.get("more_body"):
            return b"".join(chunks), None


async def _run_until_disconnect(app: Any, scope: dict, body: bytes, receive: Callable,
                                send: Callable, outcome: _Outcome) -> None:
    """Run the app on the buffered body; cancel it if the client disconnects first."""
    gone = asyncio.Event()
    replayed = False

    async def replay() -> dict:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    serving = asyncio.ensure_future(app(scope, replay, send))
    watching = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({serving, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not serving.done():  # the client went away (or we are being cancelled)
            serving.cancel()
            outcome.cancelled = not outcome.started
            with suppress(asyncio.CancelledError):
                await serving
        watching.cancel()
        with suppress(asyncio.CancelledError):
            await watching
    if not serving.cancelled():
        serving.result()  # an exception from the app goes on to RequestEdge


def make_app(target: str, *, rpc_error_handler: Callable = rpc_error_handler,
             call_options: Callable = call_options,
             create_user: Callable | None = create_user,
             request_edge: bool = True, patch_route: bool = True) -> FastAPI:
    """A gateway to the user service at `target`. Swap in any piece to try your own.

    `request_edge=False` leaves out the `RequestEdge` middleware (a check does, to see
    what a learner's `call_options` does with request ids on its own);
    `patch_route=False` leaves out PATCH /users/{id}, for a learner's own.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A grpc.aio channel belongs to the event loop that made it: make it here,
        # on the loop that serves the requests, and close it on the way out.
        async with grpc.aio.insecure_channel(target) as channel:
            app.state.stub = users_pb2_grpc.UserServiceStub(channel)
            yield

    app = FastAPI(title="Users over REST", lifespan=lifespan)
    app.add_exception_handler(grpc.aio.AioRpcError, rpc_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    if request_edge:
        app.add_middleware(RequestEdge)
    options_dependency = Depends(call_options)

    @app.get("/users/{user_id}")
    async def get_user(user_id: UserId, stub=Depends(user_stub),
                       options: CallOptions = options_dependency):
        return to_json(await stub.GetUser(users_pb2.GetUserRequest(id=user_id), **options))

    @app.get("/users")
    async def list_users(page_size: PageSize = 0, page_token: str = "", stub=Depends(user_stub),
                         options: CallOptions = options_dependency):
        request = users_pb2.ListUsersRequest(page_size=page_size, page_token=page_token)
        return to_json(await stub.ListUsers(request, **options))

    if create_user is not None:
        app.post("/users", status_code=201)(create_user)

    async def update_user(user_id: UserId, patch: UserPatch, stub=Depends(user_stub),
                          options: CallOptions = options_dependency):
        request = users_pb2.UpdateUserRequest(id=user_id)
        changes = patch.model_dump(exclude_unset=True)
        for field, value in changes.items():
            if value is not None:
                setattr(request, field, users_pb2.UserStatus.Value(value)
                        if field == "status" else value)
        return to_json(await stub.UpdateUser(request, **options))

    if patch_route:
        app.patch("/users/{user_id}")(update_user)

    @app.delete("/users/{user_id}", status_code=204)
    async def delete_user(user_id: UserId, stub=Depends(user_stub),
                          options: CallOptions = options_dependency):
        await stub.DeleteUser(users_pb2.DeleteUserRequest(id=user_id), **options)
        return Response(status_code=204)

    return app


@dataclass
class Seen:
    """What one call brought to the server."""

    method: str
    metadata: dict[str, str]
    time_remaining: float | None  # seconds left of the deadline; None: no deadline


class WatchedUserService(UserService):
    """The reference user service, noting every call's metadata and deadline in `seen`.

    `delay` seconds of sleep before each call stand for a slow database; a call
    cancelled during that sleep ends it early and is noted in `cancelled`.
    """

    def __init__(self, store: UserStore | None = None, delay: float = 0.0) -> None:
        super().__init__(store)
        self.delay = delay
        self.seen: list[Seen] = []
        self.cancelled: list[str] = []  # methods whose call was cancelled during the delay
        self._lock = threading.Lock()

    def _note(self, method: str, context: grpc.ServicerContext) -> None:
        metadata = {key: value for key, value in context.invocation_metadata()
                    if isinstance(value, str)}
        with self._lock:
            self.seen.append(Seen(method, metadata, context.time_remaining()))
        if self.delay:
            ended = threading.Event()
            context.add_callback(ended.set)  # runs when the call ends, cancelled or not
            if ended.wait(self.delay):
                with self._lock:
                    self.cancelled.append(method)

    def GetUser(self, request, context):
        self._note("GetUser", context)
        return super().GetUser(request, context)

    def ListUsers(self, request, context):
        self._note("ListUsers", context)
        return super().ListUsers(request, context)

    def CreateUser(self, request, context):
        self._note("CreateUser", context)
        return super().CreateUser(request, context)

    def UpdateUser(self, request, context):
        self._note("UpdateUser", context)
        return super().UpdateUser(request, context)

    def DeleteUser(self, request, context):
        self._note("DeleteUser", context)
        return super().DeleteUser(request, context)


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[Any]:
    """An httpx client that talks to `app` in process (no network), lifespan included.

    httpx.ASGITransport does not run the app's lifespan, so this enters it first.
    """
    import httpx

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://gateway") as client:
            yield client

