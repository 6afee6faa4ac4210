"""The reference REST gateway under malformed requests: never a 5xx, never a hang.

A seeded generator (the same 300 requests every run) mixes the bad inputs a
gateway meets on the internet: ids outside int64, page sizes outside int32, lone
surrogates, `1e999`, invalid UTF-8, unknown fields, control and non-ASCII bytes
and 8 KB in X-Request-Id, malformed X-Timeout-Ms, bodies over 4 MiB, unknown
routes and methods. Every response must be below 500, an RFC 9457 problem
document when it is an error, and carry an X-Request-Id.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time

import httpx
import pytest

from helpers.reference.gateway import MAX_BODY, PROBLEM_JSON, WatchedUserService, asgi_client, make_app
from helpers.reference.users import users_pb2_grpc
from helpers.servers import serve

SEED = 20261129
REQUESTS = 300

NUMBERS = ["1", "0", "-1", "2", str(2**63 - 1), str(2**63), str(-(2**63)), str(-(2**63) - 1),
           str(2**31), str(-(2**31) - 1), "99999999999999999999999", "1e999", "1.5", "NaN",
           "abc", "%00", "%F0%9F%98%80", "0x10", " 1", "１"]
STRINGS = ["Ada", "", " ", "a@example.com", "\ud800", "x\udfffy", "\x00", "é" * 50,
           "\u202e", "a" * 10_000, "😀"]
JSON_VALUES = [None, True, 1e999, -1e999, 2**64, 1.5, [], {}, "USER_STATUS_BANNED", "SLEEPING"]
REQUEST_IDS = [b"ok-1", b"", b"caf\xe9", b"a\x01b", b"tab\tin", b"a" * 201, b"a" * 9000,
               b"\xff\xfe", b"with space", b"\x7f"]
TIMEOUTS = [b"1", b"30000", b"0", b"-5", b"30001", b"1e-320", b"1.5", b"soon", b"", b" 100",
            b"NaN", b"99999999999999999999"]


def random_json(rng: random.Random) -> bytes:
    """A body that is sometimes valid JSON of the right shape, often not."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice([b"", b"{", b"\xff\xfe{}", b"[1,2", b"null", b"nan", b"{\"name\": NaN}"])
    if kind == 1:
        return b'{"name": 1e999, "email": "x@example.com"}'
    fields = {}
    for name in rng.sample(["name", "email", "status", "emial", "id", "extra"], rng.randint(0, 4)):
        fields[name] = rng.choice(STRINGS + JSON_VALUES)
    text = json.dumps(fields, allow_nan=True)  # lone surrogates as \ud800 escapes
    return text.encode()


def random_request(rng: random.Random) -> tuple[str, str, list[tuple[bytes, bytes]], bytes]:
    method = rng.choice(["GET", "GET", "POST", "POST", "PATCH", "PATCH", "DELETE", "PUT", "HEAD"])
    number = rng.choice(NUMBERS)
    path = rng.choice([f"/users/{number}", "/users", f"/users?page_size={number}", "/users/1",
                       f"/users?page_token={rng.choice(['', 'abc', '%FF', '-1', number])}",
                       "/nope", f"/users/{number}/extra", "/users/"])
    headers: list[tuple[bytes, bytes]] = []
    if rng.random() < 0.2:  # most requests carry a good id or none: the rest gets tested too
        headers.append((b"x-request-id", rng.choice(REQUEST_IDS)))
    if rng.random() < 0.1:  # the same header twice
        headers += [(b"x-request-id", b"one"), (b"x-request-id", b"two")]
    if rng.random() < 0.2:
        headers.append((b"x-timeout-ms", rng.choice(TIMEOUTS)))
    body = b""
    if method in ("POST", "PATCH") or rng.random() < 0.1:
        body = random_json(rng)
        headers.append((b"content-type", rng.choice([b"application/json", b"application/json",
                                                     b"text/plain", b"application/x-www-form-urlencoded"])))
    return method, path, headers, body


@pytest.fixture(scope="module")
def gateway():
    service = WatchedUserService()
    server = serve(users_pb2_grpc.add_UserServiceServicer_to_server, service, name="fuzz")
    for number in range(5):
        service.store.create(f"User {number}", f"user{number}@example.com")
    yield service, make_app(server.target)
    server.stop()


def check_response(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:200]}"
    assert response.headers.get("x-request-id"), f"{what}: no X-Request-Id in the response"
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert response.headers["content-type"].startswith(PROBLEM_JSON), what
        body = response.json()
        assert {"type", "title", "status"} <= set(body), f"{what}: {body}"
        assert body["status"] == response.status_code, f"{what}: {body}"


def test_malformed_requests_get_a_4xx_problem_document_and_the_request_id(gateway) -> None:
    service, app = gateway
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}

    async def fuzz() -> None:
        async with asgi_client(app) as client:
            for number in range(REQUESTS):
                method, path, headers, body = random_request(rng)
                what = f"#{number} {method} {path} {headers} {body[:80]!r}"
                request = client.build_request(method, path, content=body)
                request.headers = httpx.Headers(list(request.headers.raw) + headers)
                response = await asyncio.wait_for(client.send(request), 10)
                check_response(response, what)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    asyncio.run(fuzz())
    print(sorted(statuses.items()))
    assert sum(statuses.values()) == REQUESTS
    assert sum(n for status, n in statuses.items() if status >= 400) > REQUESTS / 2, statuses


def test_a_body_over_4_mib_is_413_not_429(gateway) -> None:
    service, app = gateway

    async def large() -> None:
        async with asgi_client(app) as client:
            name = "a" * (MAX_BODY + 1)
            response = await client.post("/users", json={"name": name, "email": "a@b.c"})
            check_response(response, "a 4 MiB body")
            assert response.status_code == 413
            response = await client.get("/users/1", headers={"X-Request-Id": "a" * 8193})
            check_response(response, "an 8 KB X-Request-Id")
            assert response.status_code == 400

    asyncio.run(large())


def test_a_client_that_disconnects_cancels_the_grpc_call() -> None:
    import uvicorn

    service = WatchedUserService(delay=3.0)
    server = serve(users_pb2_grpc.add_UserServiceServicer_to_server, service, name="fuzz-gone")
    user = service.store.create("Ada", "a@example.com")
    web = uvicorn.Server(uvicorn.Config(make_app(server.target), host="127.0.0.1", port=0,
                                        log_level="warning"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not web.started and time.monotonic() < deadline:
            time.sleep(0.01)
        port = web.servers[0].sockets[0].getsockname()[1]
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"http://127.0.0.1:{port}/users/{user.id}", timeout=0.3)
        deadline = time.monotonic() + 2.5
        while not service.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        assert service.cancelled == ["GetUser"], "the backend ran its full 3 s"
        assert time.monotonic() - started < 2.8
    finally:
        web.should_exit = True
        thread.join(10)
        server.stop()
