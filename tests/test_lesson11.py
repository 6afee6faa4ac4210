"""Lesson 11, a REST gateway: the reference gateway, and the checks on right and wrong answers."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from conftest import WrongAnswer, fails, passes, rejects
from http import HTTPStatus

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from helpers.reference import gateway
from helpers.reference.gateway import (
    NewUser,
    WatchedUserService,
    asgi_client,
    call_options,
    field_errors,
    http_status,
    make_app,
    problem_document,
    rpc_error_handler,
    to_json,
    user_stub,
)
from helpers.reference.users import users_pb2, users_pb2_grpc
from helpers.servers import serve

# --- the reference gateway ------------------------------------------------------------


def run(coroutine_function):
    return asyncio.run(coroutine_function())


@pytest.fixture
def watched():
    service = WatchedUserService()
    server = serve(users_pb2_grpc.add_UserServiceServicer_to_server, service,
                   name="test-gateway")
    yield service, make_app(server.target)
    server.stop()


def test_crud_through_the_gateway(watched) -> None:
    service, app = watched

    async def crud() -> None:
        async with asgi_client(app) as client:
            created = await client.post("/users", json={"name": "Ada", "email": "a@example.com"})
            assert created.status_code == 201 and created.headers["location"] == "/users/1"
            assert created.json()["id"] == "1" and created.json()["status"] == "USER_STATUS_ACTIVE"
            patched = await client.patch("/users/1", json={"status": "USER_STATUS_BANNED"})
            assert patched.json()["status"] == "USER_STATUS_BANNED"
            assert patched.json()["name"] == "Ada"  # untouched by a partial update
            listed = await client.get("/users", params={"page_size": 5})
            assert [u["id"] for u in listed.json()["users"]] == ["1"]
            assert (await client.delete("/users/1")).status_code == 204
            missing = await client.get("/users/1")
            assert missing.status_code == 404 and missing.json()["detail"] == "no user with id 1"
            bad = await client.patch("/users/1", json={"status": "USER_STATUS_UNSPECIFIED"})
            assert bad.status_code == 422  # FastAPI's own validation: not a settable status
            timeout = await client.get("/users/1", headers={"X-Timeout-Ms": "soon"})
            assert timeout.status_code == 400

    run(crud)
    assert [s.method for s in service.seen] == [
        "CreateUser", "UpdateUser", "ListUsers", "DeleteUser", "GetUser"]


def test_a_slow_backend_becomes_504_and_the_deadline_is_the_header(watched) -> None:
    service, app = watched
    service.store.create("Ada", "a@example.com")
    service.delay = 0.3

    async def slow() -> None:
        async with asgi_client(app) as client:
            response = await client.get("/users/1", headers={"X-Timeout-Ms": "100"})
            assert response.status_code == 504
            assert response.json()["grpcStatus"] == "DEADLINE_EXCEEDED"

    run(slow)
    assert 0 < service.seen[-1].time_remaining <= 0.11


def test_problem_document_of_every_code_hides_5xx_details() -> None:
    class Failed(grpc.RpcError):
        def __init__(self, code):
            self._code = code

        def code(self):
            return self._code

        def details(self):
            return "secret internals"

        def trailing_metadata(self):
            return ()

    for code in grpc.StatusCode:
        status, body = problem_document(Failed(code))
        assert status == body["status"] == http_status(code)
        assert ("detail" in body) == (status < 500)
        assert body["title"]
    assert problem_document(Failed(grpc.StatusCode.CANCELLED))[1]["title"] == "Client Closed Request"


def test_the_openapi_document_lists_the_routes(watched) -> None:
    _, app = watched
    paths = app.openapi()["paths"]
    assert sorted(paths) == ["/users", "/users/{user_id}"]
    assert sorted(paths["/users/{user_id}"]) == ["delete", "get", "patch"]
    assert "201" in paths["/users"]["post"]["responses"]


# --- answers that must pass -------------------------------------------------------------


def add_create_route(app: FastAPI) -> None:
    @app.post("/users", status_code=201)
    async def create_user(new: NewUser, response: Response, stub=Depends(user_stub)):
        user = await stub.CreateUser(
            users_pb2.CreateUserRequest(name=new.name, email=new.email), timeout=5)
        response.headers["Location"] = f"/users/{user.id}"
        return to_json(user)


def add_create_route_with_a_response_and_url_for(app: FastAPI) -> None:
    """Different but right: returns a JSONResponse, and an absolute Location from url_for."""

    @app.post("/users")
    async def create_user(new: NewUser, request: Request, stub=Depends(user_stub),
                          options=Depends(call_options)):
        user = await stub.CreateUser(
            users_pb2.CreateUserRequest(name=new.name, email=new.email), **options)
        location = str(request.url_for("get_user", user_id=str(user.id)))
        return JSONResponse(to_json(user), status_code=201, headers={"Location": location})


def call_options_with_header_parameters(
        response: Response, x_request_id: str | None = Header(None),
        x_timeout_ms: int | None = Header(None, ge=1, le=30000)) -> dict:
    """Different but right: FastAPI's Header parameters (a bad budget is its 422), 10 s default."""
    request_id = x_request_id or str(uuid.uuid4())
    response.headers["x-request-id"] = request_id
    timeout = 10.0 if x_timeout_ms is None else x_timeout_ms / 1000
    return {"metadata": [("x-request-id", request_id)], "timeout": timeout}


RIGHT_ANSWERS = [
    ("11.1", http_status),
    ("11.1", lambda code: {"OK": 200, "CANCELLED": 499, "INVALID_ARGUMENT": 400,
                           "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
                           "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401,
                           "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400,
                           "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501,
                           "UNAVAILABLE": 503}.get(code.name, 500)),
    ("11.2", rpc_error_handler),
    ("11.3", add_create_route),
    ("11.3", add_create_route_with_a_response_and_url_for),
    ("11.4", call_options),
    ("11.4", call_options_with_header_parameters),
]


@pytest.mark.parametrize("exercise_id, answer", RIGHT_ANSWERS,
                         ids=[f"{e}-{i}" for i, (e, _) in enumerate(RIGHT_ANSWERS)])
def test_right_answers_pass(exercise_id, answer, capsys) -> None:
    passes(capsys, exercise_id, answer)


def unsolved(*args, **kwargs):
    raise NotImplementedError("Exercise 11.x: not solved yet")


async def unsolved_handler(request, error):
    raise NotImplementedError("Exercise 11.2: not solved yet")


def unsolved_options(request: Request, response: Response) -> dict:
    raise NotImplementedError("Exercise 11.4: not solved yet")


@pytest.mark.parametrize("exercise_id, answer", [
    ("11.1", unsolved), ("11.2", unsolved_handler), ("11.3", unsolved),
    ("11.4", unsolved_options)])
def test_unsolved_exercises_say_so(exercise_id, answer, capsys) -> None:
    assert "not solved yet" in fails(capsys, exercise_id, answer)


# --- wrong answers ----------------------------------------------------------------------

LISTED_ONLY = {"INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
               "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429,
               "CANCELLED": 499, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503,
               "DEADLINE_EXCEEDED": 504, "OK": 200}


def with_status(**changes: int):
    return lambda code: changes.get(code.name, http_status(code))


async def handler_without_violations(request, error):
    status, body = problem_document(error)
    body.pop("invalid-params", None)
    return JSONResponse(body, status_code=status, media_type=gateway.PROBLEM_JSON)


async def handler_that_leaks(request, error):
    status, body = problem_document(error)
    body["detail"] = error.details()
    return JSONResponse(body, status_code=status, media_type=gateway.PROBLEM_JSON)


async def handler_answering_200(request, error):
    status, body = problem_document(error)
    return JSONResponse(body, media_type=gateway.PROBLEM_JSON)


async def handler_with_plain_json(request, error):
    status, body = problem_document(error)
    return JSONResponse(body, status_code=status)


async def handler_everything_500(request, error):
    body = {"type": "about:blank", "title": "Internal Server Error", "status": 500}
    return JSONResponse(body, status_code=500, media_type=gateway.PROBLEM_JSON)


def create_answering_200(app: FastAPI) -> None:
    @app.post("/users")
    async def create_user(new: NewUser, response: Response, stub=Depends(user_stub)):
        user = await stub.CreateUser(
            users_pb2.CreateUserRequest(name=new.name, email=new.email), timeout=5)
        response.headers["Location"] = f"/users/{user.id}"
        return to_json(user)


def create_without_location(app: FastAPI) -> None:
    @app.post("/users", status_code=201)
    async def create_user(new: NewUser, stub=Depends(user_stub)):
        user = await stub.CreateUser(
            users_pb2.CreateUserRequest(name=new.name, email=new.email), timeout=5)
        return to_json(user)


def create_with_a_hand_made_dict(app: FastAPI) -> None:
    @app.post("/users", status_code=201)
    async def create_user(new: NewUser, response: Response, stub=Depends(user_stub)):
        user = await stub.CreateUser(
            users_pb2.CreateUserRequest(name=new.name, email=new.email), timeout=5)
        response.headers["Location"] = f"/users/{user.id}"
        return {"id": user.id, "name": user.name, "email": user.email}


def create_without_deadline(app: FastAPI) -> None:
    @app.post("/users", status_code=201)
    async def create_user(new: NewUser, response: Response, stub=Depends(user_stub)):
        user = await stub.CreateUser(users_pb2.CreateUserRequest(name=new.name, email=new.email))
        response.headers["Location"] = f"/users/{user.id}"
        return to_json(user)


def create_at_a_fixed_location(app: FastAPI) -> None:
    @app.post("/users", status_code=201)
    async def create_user(new: NewUser, response: Response, stub=Depends(user_stub)):
        user = await stub.CreateUser(
            users_pb2.CreateUserRequest(name=new.name, email=new.email), timeout=5)
        response.headers["Location"] = "/users/1"
        return to_json(user)


def table_without_default(code):
    return {grpc.StatusCode[name]: http_status(grpc.StatusCode[name])
            for name in grpc.StatusCode.__members__}[code]


async def handler_with_httpstatus_499(request, error):
    status, body = problem_document(error)
    body["title"] = HTTPStatus(status).phrase  # ValueError: 499 is not a valid HTTPStatus
    return JSONResponse(body, status_code=status, media_type=gateway.PROBLEM_JSON)


async def handler_with_str_error(request, error):
    status, body = problem_document(error)
    if status < 500:
        body["detail"] = str(error)
    return JSONResponse(body, status_code=status, media_type=gateway.PROBLEM_JSON)


async def handler_without_title(request, error):
    status, body = problem_document(error)
    body.pop("title")
    return JSONResponse(body, status_code=status, media_type=gateway.PROBLEM_JSON)


def create_answering_400_for_every_failure(app: FastAPI) -> None:
    @app.post("/users", status_code=201)
    async def create_user(new: NewUser, response: Response, stub=Depends(user_stub)):
        try:
            user = await stub.CreateUser(
                users_pb2.CreateUserRequest(name=new.name, email=new.email), timeout=5)
        except grpc.RpcError as error:
            return JSONResponse({"detail": error.details()}, status_code=400)
        response.headers["Location"] = f"/users/{user.id}"
        return to_json(user)


def options_with_whole_seconds(request: Request, response: Response) -> dict:
    options = call_options(request, response)
    if "X-Timeout-Ms" in request.headers:
        options["timeout"] = int(request.headers["X-Timeout-Ms"]) // 1000
    return options


def options_with_float_unchecked(request: Request, response: Response) -> dict:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    response.headers["X-Request-Id"] = request_id
    timeout = float(request.headers.get("X-Timeout-Ms", 5000)) / 1000
    return {"metadata": (("x-request-id", request_id),), "timeout": timeout}


def options_bounded(low: int, high: int):
    """Digits only, but with the range [low, high]: one end is off."""
    def options(request: Request, response: Response) -> dict:
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        response.headers["X-Request-Id"] = request_id
        text = request.headers.get("X-Timeout-Ms", "5000")
        if not (text.isdigit() and low <= int(text) <= high):
            raise HTTPException(400, "X-Timeout-Ms: whole milliseconds")
        return {"metadata": (("x-request-id", request_id),), "timeout": int(text) / 1000}
    return options


def options_with_seconds(request: Request, response: Response) -> dict:
    options = call_options(request, response)
    if "X-Timeout-Ms" in request.headers:
        options["timeout"] = float(request.headers["X-Timeout-Ms"])  # milliseconds as seconds
    return options


def options_without_request_id(request: Request, response: Response) -> dict:
    options = call_options(request, response)
    return {"timeout": options["timeout"]}


def options_not_echoed(request: Request, response: Response) -> dict:
    options = call_options(request, Response())  # sets the header on a throw-away response
    return options


def options_without_default_deadline(request: Request, response: Response) -> dict:
    options = call_options(request, response)
    if "X-Timeout-Ms" not in request.headers:
        options["timeout"] = None
    return options


def options_with_one_id_for_all(request: Request, response: Response) -> dict:
    request_id = request.headers.get("X-Request-Id", "gateway")
    response.headers["X-Request-Id"] = request_id
    timeout = float(request.headers.get("X-Timeout-Ms", 5000)) / 1000
    return {"metadata": (("x-request-id", request_id),), "timeout": timeout}


async def handler_without_detail_for_499(request, error):
    status, body = problem_document(error)
    if status >= 499:  # "4xx" read as "up to 498"
        body.pop("detail", None)
    return JSONResponse(body, status_code=status, media_type=gateway.PROBLEM_JSON)


def create_with_timeout_0(app: FastAPI) -> None:
    @app.post("/users", status_code=201)
    async def create_user(new: NewUser, response: Response, stub=Depends(user_stub)):
        user = await stub.CreateUser(
            users_pb2.CreateUserRequest(name=new.name, email=new.email), timeout=0)
        response.headers["Location"] = f"/users/{user.id}"
        return to_json(user)


def options_in_tenths(request: Request, response: Response) -> dict:
    options = call_options(request, response)
    options["timeout"] = round(options["timeout"], 1)  # 1999 ms becomes 2.0 s
    return options


# --- 11.5: a partial update -----------------------------------------------------------

from typing import Annotated  # noqa: E402

from fastapi import Path  # noqa: E402
from pydantic import AfterValidator, BaseModel, ConfigDict  # noqa: E402


def valid_unicode(text: str) -> str:
    text.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
    return text


Text = Annotated[str, AfterValidator(valid_unicode)]
Int64 = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]


class Patch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = None
    email: Text | None = None


class LaxPatch(BaseModel):
    name: Text | None = None
    email: Text | None = None


class PlainPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    email: str | None = None


def patch_route(model=Patch, id_type=Int64, options_dependency=call_options, fill=False,
                catch=False):
    def add_patch_route(app: FastAPI) -> None:
        async def update_user(user_id, patch, stub=Depends(user_stub),
                              options=Depends(options_dependency)):
            if fill:
                request = users_pb2.UpdateUserRequest(id=user_id, name=patch.name or "",
                                                      email=patch.email or "")
            else:
                request = users_pb2.UpdateUserRequest(id=user_id,
                                                      **patch.model_dump(exclude_unset=True))
            if catch:
                try:
                    return to_json(await stub.UpdateUser(request, **options))
                except grpc.RpcError as error:
                    return JSONResponse({"detail": error.details()}, status_code=400,
                                        media_type=gateway.PROBLEM_JSON)
            return to_json(await stub.UpdateUser(request, **options))

        # this file's `from __future__ import annotations` would leave them as strings
        update_user.__annotations__ = {"user_id": id_type, "patch": model}
        app.patch("/users/{user_id}")(update_user)
    return add_patch_route


def fixed_options(request: Request, response: Response) -> dict:
    return {"timeout": 5}


WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("11.5", "exclusive id bounds: int64's two ends refused",
                (patch_route(id_type=Annotated[int, Path(gt=-(2**63), lt=2**63 - 1)]),),
                "PATCH /users/-9223372036854775808 answered 422 without calling UpdateUser"),
    WrongAnswer("11.2", "no detail for 499", (handler_without_detail_for_499,),
                "499 is below 500"),
    WrongAnswer("11.3", "timeout=0 on CreateUser", (create_with_timeout_0,),
                "CreateUser ran out of time"),
    WrongAnswer("11.4", "the budget rounded to tenths of a second", (options_in_tenths,),
                "the call got timeout=2.0, expected exactly 1.999"),
    WrongAnswer("11.5", "unknown fields ignored (no extra='forbid')", (patch_route(LaxPatch),),
                "refuse unknown fields"),
    WrongAnswer("11.5", "a plain int id: 2**63 crashes protobuf", (patch_route(id_type=int),),
                "your route raised ValueError"),
    WrongAnswer("11.5", "plain str fields: a lone surrogate crashes", (patch_route(PlainPatch),),
                "your route raised"),
    WrongAnswer("11.5", "every field set, missing ones as empty strings",
                (patch_route(fill=True),), "PATCH /users/1 {'name': ...}"),
    WrongAnswer("11.5", "its own timeout=5, no request id or budget",
                (patch_route(options_dependency=fixed_options),), "without the request's deadline"),
    WrongAnswer("11.5", "catches failed calls and answers 400", (patch_route(catch=True),),
                "PATCH /users/999 (no such user)"),
    WrongAnswer("11.1", "maps every error to 500", (lambda code: 200 if code.name == "OK" else 500,),
                "500 blames the server for a client's mistake"),
    WrongAnswer("11.1", "NOT_FOUND to 400", (with_status(NOT_FOUND=400),),
                "NOT_FOUND -> 400, expected 404"),
    WrongAnswer("11.1", "CANCELLED to 408 as older grpc-gateway did",
                (with_status(CANCELLED=408),), "CANCELLED -> 408, expected 499"),
    WrongAnswer("11.1", "RESOURCE_EXHAUSTED to 403", (with_status(RESOURCE_EXHAUSTED=403),),
                "429 Too Many Requests"),
    WrongAnswer("11.1", "only the ten common codes, the rest 500",
                (lambda code: LISTED_ONLY.get(code.name, 500),), "FAILED_PRECONDITION -> 500"),
    WrongAnswer("11.1", "a dict without a default: KeyError on a new code",
                (table_without_default,), "your function raised KeyError"),
    WrongAnswer("11.1", "400 for a code outside its table",
                (lambda code: http_status(code) if isinstance(code, grpc.StatusCode) else 400,),
                "answered 400: an unexpected code is the server side's failure"),
    WrongAnswer("11.2", "HTTPStatus(499) for CANCELLED", (handler_with_httpstatus_499,),
                "http.HTTPStatus has no 499"),
    WrongAnswer("11.2", "detail=str(error), gRPC's debug string", (handler_with_str_error,),
                "is str(error), gRPC's debug text"),
    WrongAnswer("11.2", "no title", (handler_without_title,), 'the body has no "title"'),
    WrongAnswer("11.2", "drops the field violations", (handler_without_violations,),
                "field violations (field_errors(error)) were dropped"),
    WrongAnswer("11.2", "shows the exception text in a 500", (handler_that_leaks,),
                "must not leak internals"),
    WrongAnswer("11.2", "forgets status_code, answers 200", (handler_answering_200,),
                "answered HTTP 200, expected 400"),
    WrongAnswer("11.2", "application/json instead of problem+json", (handler_with_plain_json,),
                "a problem document is application/problem+json"),
    WrongAnswer("11.2", "every error a 500", (handler_everything_500,),
                "answered HTTP 500, expected 400"),
    WrongAnswer("11.3", "answers 200 instead of 201", (create_answering_200,),
                "answered 200, expected 201 Created"),
    WrongAnswer("11.3", "no Location header", (create_without_location,), "no Location header"),
    WrongAnswer("11.3", "Location hard-coded to the first user", (create_at_a_fixed_location,),
                "path of the Location header"),
    WrongAnswer("11.3", "builds the body by hand: int id", (create_with_a_hand_made_dict,),
                "writes int64"),
    WrongAnswer("11.3", "no deadline on CreateUser", (create_without_deadline,),
                "without a deadline"),
    WrongAnswer("11.3", "catches every failed call and answers 400",
                (create_answering_400_for_every_failure,), "expected 409 Conflict"),
    WrongAnswer("11.4", "int(ms) // 1000: 1500 ms becomes 1 s", (options_with_whole_seconds,),
                "are milliseconds lost on the way?"),
    WrongAnswer("11.4", "float() of the header, unchecked", (options_with_float_unchecked,),
                "X-Timeout-Ms: 'soon' made your code raise ValueError"),
    WrongAnswer("11.4", "accepts 0 ms (no lower bound)", (options_bounded(0, 30000),),
                "X-Timeout-Ms: '0' answered"),
    WrongAnswer("11.4", "accepts 30001 ms (no upper bound)", (options_bounded(1, 10**12),),
                "X-Timeout-Ms: '30001' answered 200"),
    WrongAnswer("11.4", "refuses 30000 ms (an exclusive upper bound)", (options_bounded(1, 29999),),
                "X-Timeout-Ms: 30000 answered 400"),
    WrongAnswer("11.4", "uses X-Timeout-Ms as seconds", (options_with_seconds,),
                "the header is in milliseconds"),
    WrongAnswer("11.4", "does not forward the request id", (options_without_request_id,),
                "in the call's metadata: forward it"),
    WrongAnswer("11.4", "does not echo the request id", (options_not_echoed,),
                "set it on the response"),
    WrongAnswer("11.4", "no deadline without the header", (options_without_default_deadline,),
                "use a default of a few seconds"),
    WrongAnswer("11.4", "one fixed id for requests without one", (options_with_one_id_for_all,),
                "make a fresh id per request"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


def test_field_errors_is_the_reference_one() -> None:
    from helpers.reference.users import field_errors as users_field_errors

    assert field_errors is users_field_errors


def test_a_right_partial_update_passes(capsys) -> None:
    passes(capsys, "11.5", patch_route())
