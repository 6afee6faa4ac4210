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
- `WatchedUserService`: the reference service, noting the metadata and deadline
  every call arrived with, so a test can see what really reached the server.
"""

from __future__ import annotations

import math
import threading
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, AsyncIterator, Callable, Literal

import grpc
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import BaseModel

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


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status a gateway answers for a call that ended with `code`."""
    return STATUS_TO_HTTP.get(code, 500)


def reason_phrase(status: int) -> str:
    """"Not Found" for 404; Python's http module does not know 499."""
    return "Client Closed Request" if status == 499 else HTTPStatus(status).phrase


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
    """FastAPI dependency: the request id and deadline to call gRPC with."""
    request_id = request.headers.get(REQUEST_ID) or uuid.uuid4().hex
    response.headers[REQUEST_ID] = request_id
    timeout = DEFAULT_TIMEOUT
    if TIMEOUT_MS in request.headers:
        try:
            timeout = float(request.headers[TIMEOUT_MS]) / 1000
        except ValueError:
            timeout = math.nan
        if not 0 < timeout <= MAX_TIMEOUT:
            raise HTTPException(400, f"{TIMEOUT_MS} must be a number of milliseconds "
                                     f"between 1 and {MAX_TIMEOUT * 1000:.0f}")
    return {"metadata": (("x-request-id", request_id),), "timeout": timeout}


class NewUser(BaseModel):
    name: str
    email: str


class UserPatch(BaseModel):
    name: str | None = None
    email: str | None = None
    status: Literal["USER_STATUS_ACTIVE", "USER_STATUS_INACTIVE", "USER_STATUS_BANNED"] | None = None


async def create_user(new: NewUser, stub=Depends(user_stub),
                      options: CallOptions = Depends(call_options)) -> JSONResponse:
    """POST /users: 201 Created, with the new user's address in Location."""
    user = await stub.CreateUser(users_pb2.CreateUserRequest(name=new.name, email=new.email),
                                 **options)
    return JSONResponse(to_json(user), status_code=201, headers={"Location": f"/users/{user.id}"})


def make_app(target: str, *, rpc_error_handler: Callable = rpc_error_handler,
             call_options: Callable = call_options,
             create_user: Callable | None = create_user) -> FastAPI:
    """A gateway to the user service at `target`. Swap in any piece to try your own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A grpc.aio channel belongs to the event loop that made it: make it here,
        # on the loop that serves the requests, and close it on the way out.
        async with grpc.aio.insecure_channel(target) as channel:
            app.state.stub = users_pb2_grpc.UserServiceStub(channel)
            yield

    app = FastAPI(title="Users over REST", lifespan=lifespan)
    app.add_exception_handler(grpc.aio.AioRpcError, rpc_error_handler)
    options_dependency = Depends(call_options)

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, stub=Depends(user_stub),
                       options: CallOptions = options_dependency):
        return to_json(await stub.GetUser(users_pb2.GetUserRequest(id=user_id), **options))

    @app.get("/users")
    async def list_users(page_size: int = 0, page_token: str = "", stub=Depends(user_stub),
                         options: CallOptions = options_dependency):
        request = users_pb2.ListUsersRequest(page_size=page_size, page_token=page_token)
        return to_json(await stub.ListUsers(request, **options))

    if create_user is not None:
        app.post("/users", status_code=201)(create_user)

    @app.patch("/users/{user_id}")
    async def update_user(user_id: int, patch: UserPatch, stub=Depends(user_stub),
                          options: CallOptions = options_dependency):
        request = users_pb2.UpdateUserRequest(id=user_id)
        changes = patch.model_dump(exclude_unset=True)
        for field, value in changes.items():
            if value is not None:
                setattr(request, field, users_pb2.UserStatus.Value(value)
                        if field == "status" else value)
        return to_json(await stub.UpdateUser(request, **options))

    @app.delete("/users/{user_id}", status_code=204)
    async def delete_user(user_id: int, stub=Depends(user_stub),
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

    `delay` seconds of sleep before each call stand for a slow database.
    """

    def __init__(self, store: UserStore | None = None, delay: float = 0.0) -> None:
        super().__init__(store)
        self.delay = delay
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    def _note(self, method: str, context: grpc.ServicerContext) -> None:
        metadata = {key: value for key, value in context.invocation_metadata()
                    if isinstance(value, str)}
        with self._lock:
            self.seen.append(Seen(method, metadata, context.time_remaining()))
        if self.delay:
            threading.Event().wait(self.delay)

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

