"""Checks for lesson 01, RPC concepts: the hand-made JSON RPC."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from helpers import jsonrpc
from helpers.checks.core import Mismatch, exercise, expect, expect_equal, within
from helpers.jsonrpc import RemoteError, error_reply

LESSON = "01_rpc_concepts"
FUNCTIONS = {"add": lambda a, b: a + b, "multiply": lambda a, b: a * b}


def reference_dispatch(request: dict, functions: dict = FUNCTIONS) -> dict:
    """The dispatcher of exercise 1.2, finished."""
    method = request.get("method")
    if method not in functions:
        return error_reply("METHOD_NOT_FOUND", f"no method named {method!r}")
    params = request.get("params", [])
    if not isinstance(params, list) or not all(
        isinstance(p, (int, float)) and not isinstance(p, bool) for p in params
    ):
        return error_reply("INVALID_PARAMS", f"{method} takes numbers, got {params!r}")
    try:
        return {"result": functions[method](*params)}
    except TypeError:
        return error_reply("INVALID_PARAMS", f"{method} takes 2 numbers, got {len(params)}")


def expect_remote_error(function: Callable[[], Any], code: str, what: str) -> RemoteError:
    """Fail unless `function()` raises RemoteError with `code` and a message."""
    try:
        got = function()
    except RemoteError as error:
        expect(error.code == code, f"{what} raised RemoteError {error.code!r}, expected {code!r}")
        expect(bool(error.message), f"{what} raised RemoteError {code!r} without a message")
        return error
    raise Mismatch(f"{what} returned {got!r}, expected RemoteError {code!r}")


@exercise(
    "1.1",
    "The client stub",
    notebook=LESSON,
    hint="with socket.create_connection(self.address) as sock: send_json(sock, {'method': method, "
    "'params': params}); reply = receive_json(sock). Then: if 'error' in reply, raise "
    "RemoteError(reply['error']['code'], reply['error']['message']); else return reply['result'].",
)
def stub(stub_class: type) -> str:
    with jsonrpc.serve_json(reference_dispatch, name="check-1.1") as server:
        calc = stub_class(server.address)
        advice = "send_json adds the newline the server waits for; use receive_json for the reply"
        for method, params, expected in [("add", [2, 3], 5), ("multiply", [6, 7], 42),
                                         ("add", [0.5, 0.25], 0.75)]:
            got = within(5, lambda: getattr(calc, method)(*params), advice)
            expect_equal(got, expected, f"stub.{method}{tuple(params)}")
        expect_remote_error(lambda: within(5, lambda: calc.power(2, 8), advice),
                             "METHOD_NOT_FOUND", "stub.power(2, 8), a method the server lacks,")
    return "add, multiply and an unknown method behaved like local calls over a real socket"


@exercise(
    "1.2",
    "A dispatcher that answers bad requests",
    notebook=LESSON,
    hint="First `if method not in functions: return error_reply('METHOD_NOT_FOUND', ...)`; then "
    "check isinstance(params, list) and that each one is an int or float, else "
    "error_reply('INVALID_PARAMS', ...); call functions[method](*params) inside "
    "try/except TypeError for the wrong number of arguments.",
)
def dispatcher(dispatch: Callable[[dict, dict], dict]) -> str:
    expect_equal(dispatch({"method": "add", "params": [2, 3]}, FUNCTIONS), {"result": 5},
                 "dispatch({'method': 'add', 'params': [2, 3]}, functions)")
    with jsonrpc.serve_json(partial(dispatch, functions=FUNCTIONS), name="check-1.2") as server:
        def remote(method: str, params: Any) -> Any:
            return jsonrpc.call(server.address, method, params, timeout=5)

        expect_equal(remote("add", [2, 3]), 5, "add(2, 3)")
        expect_equal(remote("multiply", [6, 7]), 42, "multiply(6, 7)")
        error = expect_remote_error(lambda: remote("power", [2, 8]), "METHOD_NOT_FOUND",
                                     "a call to 'power', which does not exist,")
        expect("power" in error.message,
               f"the METHOD_NOT_FOUND message {error.message!r} should name the method 'power'")
        for params in (["2", 3], ["ab", 3], [1], [1, 2, 3], 5, [None, 1]):
            method = "multiply" if params == ["ab", 3] else "add"
            expect_remote_error(lambda: remote(method, params), "INVALID_PARAMS",
                                 f"{method} with params {params!r}")
    return "results for good calls, METHOD_NOT_FOUND for 'power', INVALID_PARAMS for 6 bad params"


@exercise(
    "1.3",
    "A client that gives up in time",
    notebook=LESSON,
    hint="Pass timeout=self.timeout to socket.create_connection, and wrap the send and receive "
    "in try/except TimeoutError: raise RemoteError('DEADLINE_EXCEEDED', f'no reply within "
    "{self.timeout} s').",
)
def timeout_stub(stub_class: type) -> str:
    silent = jsonrpc.serve_json(lambda request: None, name="check-1.3-silent")
    try:
        with jsonrpc.serve_json(reference_dispatch, name="check-1.3") as server:
            got = within(5, lambda: stub_class(server.address, timeout=2).add(2, 3),
                         "the server here answers at once; does call() send the request?")
            expect_equal(got, 5, "TimeoutStub(address, timeout=2).add(2, 3)")
            expect_remote_error(lambda: within(5, lambda: stub_class(server.address, 2).power(1),
                                                "the server here answers at once"),
                                 "METHOD_NOT_FOUND", "a call to an unknown method")
        try:
            within(5, lambda: stub_class(silent.address, timeout=0.3).add(2, 3),
                   "pass timeout=self.timeout to socket.create_connection")
        except TimeoutError:
            expect(False, "a silent server made call() raise TimeoutError; catch it and raise "
                   "RemoteError('DEADLINE_EXCEEDED', ...) instead")
        except RemoteError as error:
            expect(error.code == "DEADLINE_EXCEEDED",
                   f"a silent server gave RemoteError {error.code!r}, expected 'DEADLINE_EXCEEDED'")
        else:
            expect(False, "a call to a silent server returned instead of raising")
    finally:
        silent.stop()  # any call still blocked gets ConnectionError and its thread ends
    return "answers in time, and RemoteError DEADLINE_EXCEEDED from a silent server after 0.3 s"
