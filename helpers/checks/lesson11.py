"""Checks for lesson 11, a REST gateway.

Each check builds the finished gateway of `helpers.reference.gateway` with the
learner's piece swapped in, puts it in front of a real user service on a real
gRPC server, and sends HTTP requests to it with httpx (in process, through
ASGITransport). What reached the server is read from the servicer itself: the
users in its store, the metadata and the deadline each call arrived with.

A check is called while the notebook's event loop is busy running the cell, so
the async part runs on a fresh loop in a thread of its own (`within`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable
from urllib.parse import urlparse

import grpc

from helpers.checks.core import exercise, expect, expect_equal, within
from helpers.reference.gateway import (
    PROBLEM_JSON,
    STATUS_TO_HTTP,
    WatchedUserService,
    asgi_client,
    make_app,
)
from helpers.reference.users import users_pb2_grpc
from helpers.servers import serve

LESSON = "11_rest_gateway"
SECRET = "password=hunter2 at /srv/users.sqlite"  # what a 500 must never show


def _run(make_coroutine: Callable[[], Any], seconds: float = 20) -> Any:
    """Run `make_coroutine()` on a new event loop in a new thread; fail after `seconds`."""
    return within(seconds, lambda: asyncio.run(make_coroutine()),
                  "a call without a deadline? pass timeout= to every stub call")


def _gateway(servicer: WatchedUserService, name: str, **pieces: Any):
    """A server for `servicer` and a gateway app in front of it."""
    server = serve(users_pb2_grpc.add_UserServiceServicer_to_server, servicer,
                   name=f"check-gateway-{name}")
    return server, make_app(server.target, **pieces)


# --- 11.1 ---------------------------------------------------------------------------

WHY = {
    grpc.StatusCode.INVALID_ARGUMENT: "the client sent something wrong: a 4xx, not a 5xx",
    grpc.StatusCode.NOT_FOUND: "the resource is not there: 404 Not Found",
    grpc.StatusCode.ALREADY_EXISTS: "a conflict with what exists: 409 Conflict",
    grpc.StatusCode.UNAUTHENTICATED: "no or bad credentials: 401 Unauthorized",
    grpc.StatusCode.PERMISSION_DENIED: "known caller, not allowed: 403 Forbidden",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "a quota or rate limit: 429 Too Many Requests, "
                                        "so clients back off",
    grpc.StatusCode.CANCELLED: "the caller went away: 499 Client Closed Request "
                               "(408 means the server stopped waiting for the request)",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the backend ran out of time: 504 Gateway Timeout",
    grpc.StatusCode.UNIMPLEMENTED: "the method does not exist: 501 Not Implemented",
    grpc.StatusCode.UNAVAILABLE: "the backend is down, try again later: "
                                 "503 Service Unavailable",
    grpc.StatusCode.OK: "success is 200",
}


class FutureCode:
    """Stands for a status code a later gRPC release may add: it is in no table."""

    name = "SOMETHING_NEW"
    value = (17, "something new")

    def __repr__(self) -> str:
        return "a code your table does not know (a newer gRPC's, say)"


@exercise(
    "11.1",
    "gRPC status to HTTP status",
    notebook=LESSON,
    hint="The comments printed from google/rpc/code.proto above name an HTTP status for each "
    "gRPC code. For each, ask: must the client change something (4xx), or did the server "
    "side fail (5xx)?",
    second_hint="Three codes share 400 and two share 409; CANCELLED has a status Python's "
    "http module does not know. And the function must still answer for a code that is in "
    "none of your tables, without raising.",
)
def status_mapping(http_status: Callable[[grpc.StatusCode], int]) -> str:
    wrong = []
    for code, expected in STATUS_TO_HTTP.items():
        got = http_status(code)
        if got != expected:
            wrong.append((code, got, expected))
    if wrong:
        code, got, expected = wrong[0]
        reason = WHY.get(code, f"google/rpc/code.proto maps it to {expected}")
        if got == 500 and expected < 500:
            reason = f"500 blames the server for a client's mistake; {reason}"
        raise_message = (f"{code.name} -> {got!r}, expected {expected}: {reason}"
                         + (f" ({len(wrong)} codes wrong in all)" if len(wrong) > 1 else ""))
        expect(False, raise_message)
    future = FutureCode()
    try:
        got = http_status(future)  # type: ignore[arg-type]
    except Exception as error:  # noqa: BLE001 - any exception is the mistake
        expect(False, f"for {future!r} your function raised {type(error).__name__}: {error}; "
               "a gateway must answer something, and something unexpected is a 500")
    expect(got == 500, f"for {future!r} your function answered {got!r}: an unexpected code "
           "is the server side's failure, 500, not a client's mistake")
    return (f"all {len(STATUS_TO_HTTP)} gRPC codes map to the HTTP status google/rpc/code.proto "
            "gives, and a code in no table gets 500")


# --- 11.2 ---------------------------------------------------------------------------

class LeakyUserService(WatchedUserService):
    """Fails like a real backend sometimes does: id 13 crashes, id 14 reports INTERNAL,
    id 15 reports CANCELLED (as a backend does whose own caller went away)."""

    def GetUser(self, request, context):
        if request.id == 15:
            context.abort(grpc.StatusCode.CANCELLED, "the caller went away")
        if request.id == 13:
            raise RuntimeError(f"database is locked ({SECRET})")
        if request.id == 14:
            context.abort(grpc.StatusCode.INTERNAL, f"cannot open {SECRET}")
        return super().GetUser(request, context)


@exercise(
    "11.2",
    "Failed calls as problem documents",
    notebook=LESSON,
    hint="Start from your http_status; RFC 9457 names the members type, title, status and "
    "detail. Which parts of `error` may a stranger on the internet read, and which status "
    "has no phrase in Python's http module?",
    second_hint="str(error) is gRPC's debug text, not the server's message: the message is "
    "error.details(). The field violations come from lesson 05's field_errors; the media "
    "type is not application/json.",
)
def problem_bodies(handler: Callable) -> str:
    service = LeakyUserService()
    server, app = _gateway(service, "problems", rpc_error_handler=handler)

    async def run() -> None:
        async with asgi_client(app) as client:
            taken = {"name": "Ada", "email": "ada@example.com"}
            expect_equal((await client.post("/users", json=taken)).status_code, 201,
                         "creating a first user through the gateway")
            cases = [
                ("POST /users with an empty name and a bad email", 400,
                 lambda: client.post("/users", json={"name": " ", "email": "ada-at-example"})),
                ("GET /users/999 (no such user)", 404, lambda: client.get("/users/999")),
                ("POST /users with an email in use", 409,
                 lambda: client.post("/users", json=taken)),
                ("GET /users/13 (the servicer crashes)", 500, lambda: client.get("/users/13")),
                ("GET /users/14 (the servicer reports INTERNAL)", 500,
                 lambda: client.get("/users/14")),
                ("GET /users/15 (the backend answers CANCELLED)", 499,
                 lambda: client.get("/users/15")),
            ]
            for what, status, send in cases:
                try:
                    response = await send()
                except Exception as error:  # noqa: BLE001 - the handler itself failed
                    if isinstance(error, NotImplementedError):
                        raise
                    expect(False, f"{what}: your handler raised {type(error).__name__}: "
                           f"{error}" + (" (http.HTTPStatus has no 499: name its title, "
                                         "Client Closed Request, yourself)"
                                         if status == 499 else ""))
                expect(response.status_code == status,
                       f"{what} answered HTTP {response.status_code}, expected {status}: "
                       "pass status_code= to JSONResponse, from your http_status")
                expect(response.headers.get("content-type", "").startswith(PROBLEM_JSON),
                       f"{what} answered content-type {response.headers.get('content-type')!r}"
                       f": a problem document is {PROBLEM_JSON} (media_type=)")
                body = response.json()
                expect(isinstance(body, dict) and body.get("status") == status,
                       f"{what}: the body's \"status\" member should repeat the HTTP status "
                       f"{status}, got {body.get('status') if isinstance(body, dict) else body!r}")
                expect(bool(body.get("title")), f"{what}: the body has no \"title\"")
                text = json.dumps(body)
                if status == 500:
                    expect(SECRET not in text and "database is locked" not in text,
                           f"{what}: the body shows the server's message ({text[:120]}...): "
                           "a 500 must not leak internals, leave out detail")
                elif status == 404:
                    detail = str(body.get("detail"))
                    expect("debug_error_string" not in detail and "<AioRpcError" not in detail,
                           f"{what}: \"detail\" is str(error), gRPC's debug text "
                           f"({detail[:60]}...): the server's message is error.details()")
                    expect_equal(detail, "no user with id 999",
                                 f"{what}: \"detail\" (the server's message for a 4xx)")
                elif status == 499:
                    expect_equal(body.get("title"), "Client Closed Request",
                                 f"{what}: the title of 499")
                    expect_equal(body.get("detail"), "the caller went away",
                                 f"{what}: \"detail\" (499 is below 500: the server's "
                                 "message, word for word)")
                if status == 400:
                    params = body.get("invalid-params")
                    expect(isinstance(params, list) and params,
                           f"{what}: no \"invalid-params\" list: the BadRequest field "
                           "violations (field_errors(error)) were dropped")
                    got = {p.get("name"): p.get("reason") for p in params if isinstance(p, dict)}
                    expect_equal(sorted(got), ["email", "name"],
                                 f"{what}: names in \"invalid-params\"")
                    expect(all(got.values()), f"{what}: every invalid param needs a \"reason\"")

    try:
        _run(run)
    finally:
        server.stop()
    return ("400 with invalid-params, 404 and 409 with the server's detail, two 500s "
            "that leak nothing, 499 Client Closed Request for CANCELLED, all as "
            "application/problem+json")


# --- 11.3 ---------------------------------------------------------------------------

CREATE_TAKES = 0.3  # seconds: a deadline of 0 (or a few milliseconds) cannot be met


class SlowCreateUserService(WatchedUserService):
    """CreateUser takes CREATE_TAKES seconds, as a real database's insert may."""

    def CreateUser(self, request, context):
        time.sleep(CREATE_TAKES)
        return super().CreateUser(request, context)


@exercise(
    "11.3",
    "A create route: 201 Created and Location",
    notebook=LESSON,
    hint="HTTP says a POST that creates something answers 201 Created and names the new "
    "resource in a Location header; the body is the new user in the protobuf JSON mapping. "
    "Which piece of the app already turns a failed call into the right status?",
    second_hint="A route's decorator can set its success status; a `response: Response` "
    "parameter lets a route add a header. Do not catch the failed call yourself: the app's "
    "exception handler knows 409 from 400.",
)
def create_route(add_create_route: Callable) -> str:
    service = SlowCreateUserService()
    server, app = _gateway(service, "create", create_user=None)
    add_create_route(app)
    people = [("Grace Hopper", "grace@example.com"), ("Alan Turing", "alan@example.com")]

    async def run() -> None:
        async with asgi_client(app) as client:
            for name, email in people:
                response = await client.post("/users", json={"name": name, "email": email})
                what = f"POST /users for {name}"
                expect(response.status_code != 405, f"{what} answered 405: "
                       "add_create_route(app) added no POST /users route")
                expect(response.status_code != 504,
                       f"{what} answered 504: CreateUser ran out of time. The check's service "
                       f"takes {CREATE_TAKES} s to create a user: give the call a deadline of a "
                       "few seconds (timeout=5)")
                expect(response.status_code == 201,
                       f"{what} answered {response.status_code}, expected 201 Created: a POST "
                       "that creates answers 201 (status_code=201)")
                stored = [u for u in service.store.page(0, 100)[0] if u.email == email]
                expect(len(stored) == 1, f"{what}: the user service has no user {email}")
                user = stored[0]
                location = response.headers.get("location")
                expect(location is not None, f"{what}: no Location header: name the new "
                       "user's address, /users/{id}")
                expect_equal(urlparse(location).path, f"/users/{user.id}",
                             f"{what}: path of the Location header")
                body = response.json()
                expect(body.get("id") == str(user.id),
                       f"{what}: body id is {body.get('id')!r}, the JSON mapping writes "
                       f"int64 {user.id} as the string {str(user.id)!r}: use to_json(user)")
                expect("createdAt" in body, f"{what}: the body has no createdAt "
                       f"(keys {sorted(body)}): use to_json(user), lowerCamelCase")
                again = await client.get(location)
                expect_equal(again.json().get("email") if again.status_code == 200 else
                             again.status_code, email, f"GET {location} (the Location)")
            response = await client.post("/users", json={"name": "", "email": "x"})
            expect_equal(response.status_code, 400, "POST /users with an empty name "
                         "(let the RpcError propagate to the gateway's handler)")
            name, email = people[0]
            response = await client.post("/users", json={"name": name, "email": email})
            expect(response.status_code == 409, f"POST /users with an e-mail in use answered "
                   f"{response.status_code}, expected 409 Conflict: let the failed call reach "
                   "the app's handler instead of answering one status for every failure")
    try:
        _run(run)
    finally:
        server.stop()
    creates = [s for s in service.seen if s.method == "CreateUser"]
    expect(creates and all(s.time_remaining is not None and s.time_remaining < 60
                           for s in creates),
           "CreateUser reached the server without a deadline: pass timeout= to the stub call")
    return ("2 users created through the gateway: 201, Location /users/{id} that GETs "
            f"the user, JSON with id as a string; the server saw a deadline, and a create "
            f"that took {CREATE_TAKES} s met it")


# --- 11.4 ---------------------------------------------------------------------------

MALFORMED_TIMEOUTS = ["soon", "1e-320", "0", "-5", "30001", "1.5", "nan", "99999999999"]


class RecordingStub:
    """Stands in for the gateway's stub: notes the keyword arguments of every call, then
    makes it. What `timeout=` the call got, exactly, before any clock ran."""

    def __init__(self, stub: Any) -> None:
        self.stub, self.calls = stub, []

    def __getattr__(self, method: str) -> Callable:
        def call(request: Any, **options: Any) -> Any:
            self.calls.append(options)
            return getattr(self.stub, method)(request, **options)
        return call


@exercise(
    "11.4",
    "Request id and deadline carried across",
    notebook=LESSON,
    hint="The dependency reads two request headers and sets one response header. What "
    "unit is X-Timeout-Ms in, and what unit does a stub's timeout= take? Which header "
    "values must never become a deadline?",
    second_hint="Integer division loses the milliseconds; float() accepts '1e-320', 'nan' "
    "and '1.5'. Check the text is digits and the number is in range on both ends, then "
    "raise FastAPI's HTTPException(400, ...) for the rest.",
)
def carried_across(call_options: Callable) -> str:
    service = WatchedUserService()
    server, app = _gateway(service, "carried", call_options=call_options, request_edge=False)
    user = service.store.create("Ada", "ada@example.com")

    async def get(headers: dict[str, str]) -> tuple[Any, Any]:
        before = len(service.seen)
        response = await client_box[0].get(f"/users/{user.id}", headers=headers)
        expect(response.status_code == 200, f"GET /users/{user.id} with headers {headers} "
               f"answered {response.status_code}: {response.text[:100]}")
        expect(len(service.seen) == before + 1, "the request did not reach the user service")
        return response, service.seen[-1]

    client_box: list[Any] = []
    saw: list[str] = []

    async def run() -> None:
        async with asgi_client(app) as client:
            client_box.append(client)
            stub = app.state.stub = RecordingStub(app.state.stub)

            def timeout_given(seconds: float, why: str) -> None:
                given = stub.calls[-1].get("timeout")
                expect(isinstance(given, (int, float)) and abs(given - seconds) < 1e-9,
                       f"{why}, the call got timeout={given!r}, expected exactly {seconds}")

            for request_id, milliseconds in (("req-7f3a", 1999), ("req-c41d", 4000)):
                headers = {"X-Request-Id": request_id, "X-Timeout-Ms": str(milliseconds)}
                response, seen = await get(headers)
                sent = seen.metadata.get("x-request-id")
                expect(sent == request_id, f"with X-Request-Id: {request_id}, the server saw "
                       f"x-request-id {sent!r} in the call's metadata: forward it")
                echoed = response.headers.get("x-request-id")
                expect(echoed == request_id, f"the response's X-Request-Id is {echoed!r}, "
                       f"expected {request_id!r}: set it on the response, so the caller can "
                       "match logs")
                budget = milliseconds / 1000
                left = seen.time_remaining
                expect(left is not None, f"with X-Timeout-Ms: {milliseconds} the server saw "
                       "no deadline: pass timeout=")
                expect(left < budget * 10 or left < 0.05,
                       f"with X-Timeout-Ms: {milliseconds} the server had {left:.0f} s left: "
                       f"the header is in milliseconds, so the timeout is {budget} s")
                # A busy machine may take a while to pass the call on: allow 0.75 s for that,
                # which still tells 1999 ms from the 1 s that whole seconds would make of it.
                expect(max(budget * 0.6, budget - 0.75) < left <= budget + 0.05,
                       f"with X-Timeout-Ms: {milliseconds} the server had {left:.3f} s left, "
                       f"expected just under {budget} s (are milliseconds lost on the way?)")
                timeout_given(budget, f"with X-Timeout-Ms: {milliseconds} (milliseconds, "
                              "and a stub's timeout= is in seconds)")
                saw.append(f"{request_id!r} with {left:.2f} s left for {milliseconds} ms")
            ids = []
            for _ in range(2):
                response, seen = await get({})
                left = seen.time_remaining
                expect(left is not None and left <= 60, "without X-Timeout-Ms the call "
                       f"reached the server with {'no' if left is None else f'{left:.0f} s of'}"
                       " deadline: use a default of a few seconds")
                sent = seen.metadata.get("x-request-id")
                expect(bool(sent), "without X-Request-Id the server saw no x-request-id: "
                       "make one up (uuid.uuid4().hex)")
                expect_equal(response.headers.get("x-request-id"), sent,
                             "the response's X-Request-Id without one in the request (the "
                             "id the server saw)")
                ids.append(sent)
            expect(ids[0] != ids[1], f"two requests without X-Request-Id both got {ids[0]!r}:"
                   " make a fresh id per request")
            saw.append(f"fresh ids and {left:.1f} s left without the headers")
            for text in MALFORMED_TIMEOUTS:
                before = len(service.seen)
                try:
                    response = await client.get(f"/users/{user.id}",
                                                headers={"X-Timeout-Ms": text})
                except NotImplementedError:
                    raise
                except Exception as error:  # noqa: BLE001 - the learner's code crashed
                    expect(False, f"X-Timeout-Ms: {text!r} made your code raise "
                           f"{type(error).__name__}: {error}, a 500 for the client: answer "
                           "400 (raise HTTPException(400, ...)) for a malformed budget")
                expect(response.status_code in (400, 422),
                       f"X-Timeout-Ms: {text!r} answered {response.status_code}"
                       + (f", and the server saw a call with "
                          f"{service.seen[-1].time_remaining} s left"
                          if len(service.seen) > before else "")
                       + ": only whole milliseconds from 1 to 30000 are a budget; answer 400 "
                       "(raise HTTPException(400, ...)) for anything else")
                expect(len(service.seen) == before, f"X-Timeout-Ms: {text!r} was refused, "
                       "but only after calling the user service")
            for text in ("1", "30000"):
                response = await client.get(f"/users/{user.id}", headers={"X-Timeout-Ms": text})
                expect(response.status_code not in (400, 422),
                       f"X-Timeout-Ms: {text} answered {response.status_code}: it is a valid "
                       "budget (1 to 30000 ms, both ends included)")
                timeout_given(int(text) / 1000, f"with X-Timeout-Ms: {text}")

    try:
        _run(run)
    finally:
        server.stop()
    return ("the server saw " + "; ".join(saw) + f"; ids echoed back; "
            f"{len(MALFORMED_TIMEOUTS)} malformed X-Timeout-Ms refused before any call")


# --- 11.5 (challenge) -------------------------------------------------------------------

@exercise(
    "11.5",
    "Challenge: a partial update over REST",
    notebook=LESSON,
    hint="Four things can go wrong between the JSON body and UpdateUser: a field the client "
    "did not send, a field nobody knows, a number protobuf cannot hold, and a call with "
    "nothing carried across. Which part of FastAPI or pydantic rules out each?",
    second_hint="pydantic can tell a field that was sent from one left at its default, and "
    "can refuse fields it does not declare; FastAPI's Path() takes bounds; the app already "
    "has a dependency for the call's metadata and deadline, and a handler for failed calls.",
)
def partial_update(add_patch_route: Callable) -> str:
    service = WatchedUserService()
    server, app = _gateway(service, "patch", patch_route=False)
    add_patch_route(app)
    ada = service.store.create("Ada Lovelace", "ada@example.com")
    service.store.create("Grace Hopper", "grace@example.com")
    said: list[str] = []

    async def run() -> None:
        async with asgi_client(app) as client:
            async def patch(path: str, body: Any, headers: dict | None = None) -> Any:
                try:
                    # json.dumps escapes a lone surrogate as \ud800, as a browser would
                    return await client.patch(path, content=json.dumps(body).encode(), headers={
                        "content-type": "application/json", **(headers or {})})
                except NotImplementedError:
                    raise
                except Exception as error:  # noqa: BLE001 - the learner's route crashed
                    expect(False, f"PATCH {path} {body}: your route raised "
                           f"{type(error).__name__}: {error}, a 500 for the client")

            response = await patch(f"/users/{ada.id}", {"name": "Ada King"},
                                   {"X-Request-Id": "patch-1", "X-Timeout-Ms": "2000"})
            expect(response.status_code != 405, "PATCH /users/{id} answered 405: "
                   "add_patch_route(app) added no PATCH route")
            expect_equal(response.status_code, 200, f"PATCH /users/{ada.id} {{'name': ...}}")
            stored = service.store.get(ada.id)
            expect(stored.email == "ada@example.com",
                   f"a PATCH with only a name changed the e-mail to {stored.email!r}: set only "
                   "the fields the client sent (a partial update)")
            expect_equal(stored.name, "Ada King", "the name after the PATCH")
            expect_equal(response.json().get("name"), "Ada King",
                         "the reply's name (the updated user, to_json)")
            seen = [s for s in service.seen if s.method == "UpdateUser"][-1]
            expect(seen.time_remaining is not None and seen.time_remaining <= 2.05,
                   "UpdateUser reached the server without the request's deadline: call it "
                   "with the app's call options (Depends(call_options))")
            expect_equal(seen.metadata.get("x-request-id"), "patch-1",
                         "the x-request-id UpdateUser carried (the app's call options)")
            said.append(f"a name-only PATCH left the e-mail alone; the server saw "
                        f"x-request-id patch-1 and {seen.time_remaining:.1f} s left")

            calls = len(service.seen)
            for path, body, what in [
                (f"/users/{ada.id}", {"emial": "ada@example.org"}, "a misspelled field"),
                (f"/users/{2**63}", {"name": "Big"}, "an id beyond int64"),
                (f"/users/{-(2**63) - 1}", {"name": "Small"}, "an id below int64"),
                (f"/users/{ada.id}", {"name": "\ud800"}, "a lone surrogate"),
            ]:
                response = await patch(path, body)
                expect(400 <= response.status_code < 500,
                       f"PATCH {path[:30]} with {what} answered {response.status_code}: it is "
                       "the client's mistake, a 4xx"
                       + (" (200 means the misspelled field was silently ignored: refuse "
                          "unknown fields)" if response.status_code == 200 else ""))
                expect(response.headers.get("content-type", "").startswith(PROBLEM_JSON),
                       f"PATCH with {what}: not a problem document")
            expect(len(service.seen) == calls, "a request refused by the gateway still called "
                   "UpdateUser")
            said.append("a misspelled field, ids beyond int64 both ways and a lone surrogate "
                        "refused with a 4xx, before any call")

            response = await patch("/users/999", {"name": "Nobody"})
            expect_equal(response.status_code, 404, "PATCH /users/999 (no such user): let the "
                         "failed call reach the app's handler")
            for edge, status in ((-(2**63), 400), (2**63 - 1, 404)):
                calls = len(service.seen)
                response = await patch(f"/users/{edge}", {"name": "Nobody"})
                expect(len(service.seen) > calls,
                       f"PATCH /users/{edge} answered {response.status_code} without calling "
                       "UpdateUser: that id is one of int64's two ends, so it is the service's "
                       "to judge (are the bounds of the id one off?)")
                expect_equal(response.status_code, status,
                             f"PATCH /users/{edge} (the service's answer: "
                             + ("an id below 1" if status == 400 else "no such user") + ")")
            response = await patch(f"/users/{ada.id}", {"email": "grace@example.com"})
            expect_equal(response.status_code, 409, "PATCH with an e-mail in use")
            said.append("ids -2**63 and 2**63-1 reached the service; its 400, 404 and 409 kept")

    try:
        _run(run)
    finally:
        server.stop()
    return "; ".join(said)
