"""Checks for lesson 01, RPC concepts: the hand-made JSON RPC."""

from __future__ import annotations

import socket
import time
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
    except (Mismatch, NotImplementedError):
        raise
    except Exception as error:
        raise Mismatch(f"{what} raised {type(error).__name__}({error}), expected RemoteError "
                       f"{code!r}: raise RemoteError(code, message) from the error reply") from None
    raise Mismatch(f"{what} returned {got!r}, expected RemoteError {code!r}")


def _gone_address() -> tuple[str, int]:
    """An address on 127.0.0.1 where nothing listens: connecting is refused at once."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[:2]


@exercise(
    "1.1",
    "The client stub",
    notebook=LESSON,
    hint="The cell \"The five steps\" does one call by hand; call() does the same with "
    "send_json and receive_json, then looks at the reply: a result, or an error to raise.",
    second_hint="with socket.create_connection(self.address) as sock: send_json(sock, "
    "{'method': method, 'params': params}); reply = receive_json(sock). Then: if 'error' in "
    "reply, raise RemoteError(reply['error']['code'], reply['error']['message']); else return "
    "reply['result'].",
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


def _call_directly(dispatch: Callable[[dict, dict], dict], request: dict, functions: dict,
                   shown: str) -> Any:
    try:
        return dispatch(request, functions)
    except Exception as error:
        raise Mismatch(f"dispatch({request!r}, {shown}) raised {type(error).__name__}({error}): "
                       "a dispatcher returns a reply dict, an error reply for a bad request, "
                       "and never raises") from None


@exercise(
    "1.2",
    "A dispatcher that answers bad requests",
    notebook=LESSON,
    hint="Test the request before calling anything: is the method a key of `functions`? Is "
    "params a list of numbers? What does calling a function with the wrong number of "
    "arguments raise?",
    second_hint="First `if method not in functions: return error_reply('METHOD_NOT_FOUND', "
    "...)`; then check isinstance(params, list) and that each one is an int or float, else "
    "error_reply('INVALID_PARAMS', ...); call functions[method](*params) inside "
    "try/except TypeError for the wrong number of arguments.",
)
def dispatcher(dispatch: Callable[[dict, dict], dict]) -> str:
    expect_equal(dispatch({"method": "add", "params": [2, 3]}, FUNCTIONS), {"result": 5},
                 "dispatch({'method': 'add', 'params': [2, 3]}, functions)")
    others = {"subtract": lambda a, b: a - b}
    shown = "functions={'subtract': ...}"
    expect_equal(_call_directly(dispatch, {"method": "subtract", "params": [5, 3]}, others, shown),
                 {"result": 2}, f"dispatch({{'method': 'subtract', 'params': [5, 3]}}, {shown}), "
                 "which must use the functions it is given,")
    reply = _call_directly(dispatch, {"method": "add", "params": [2, 3]}, others, shown)
    expect(isinstance(reply, dict) and reply.get("error", {}).get("code") == "METHOD_NOT_FOUND",
           f"dispatch({{'method': 'add', ...}}, {shown}) returned {reply!r}, expected a "
           "METHOD_NOT_FOUND error: 'add' is not in the functions it was given (use the "
           "`functions` argument, not a global dict)")
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
    return ("results for good calls, with the functions it was given; METHOD_NOT_FOUND for "
            "'power', INVALID_PARAMS for 6 bad params")


def _time_a_silent_call(stub_class: type, address: tuple[str, int], timeout: float) -> float:
    """Call add(2, 3) on a silent server; return how long the stub took to give up."""
    start = time.perf_counter()
    try:
        within(5, lambda: stub_class(address, timeout=timeout).add(2, 3),
               "pass timeout=self.timeout to socket.create_connection")
    except TimeoutError:
        raise Mismatch("a silent server made call() raise TimeoutError; catch it and raise "
                       "RemoteError('DEADLINE_EXCEEDED', ...) instead") from None
    except RemoteError as error:
        expect(error.code == "DEADLINE_EXCEEDED",
               f"a silent server gave RemoteError {error.code!r}, expected 'DEADLINE_EXCEEDED'")
        return time.perf_counter() - start
    raise Mismatch("a call to a silent server returned instead of raising "
                   "RemoteError('DEADLINE_EXCEEDED', ...)")


@exercise(
    "1.3",
    "A client that gives up in time",
    notebook=LESSON,
    hint="socket.create_connection takes a timeout; what does the socket raise when it runs "
    "out, and which error does the caller of a stub expect instead?",
    second_hint="Pass timeout=self.timeout to socket.create_connection, and wrap the send and "
    "receive in try/except TimeoutError (only that one: a refused connection is not a timeout): "
    "raise RemoteError('DEADLINE_EXCEEDED', f'no reply within {self.timeout} s').",
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
        for timeout in (0.3, 1.5):
            took = _time_a_silent_call(stub_class, silent.address, timeout)
            expect(0.8 * timeout <= took <= 1.3 * timeout + 0.5,
                   f"TimeoutStub(address, timeout={timeout}) gave up after {took:.1f} s against "
                   f"a silent server, expected about {timeout} s: use self.timeout, not a fixed "
                   "number")
    finally:
        silent.stop()  # any call still blocked gets ConnectionError and its thread ends
    gone = _gone_address()
    try:
        within(5, lambda: stub_class(gone, timeout=2).add(2, 3), "nothing listens there")
    except RemoteError as error:
        expect(error.code != "DEADLINE_EXCEEDED",
               "a refused connection (nothing listens at the address) came back as "
               "DEADLINE_EXCEEDED: catch only TimeoutError; a refused connection is not a timeout, "
               "and calling it one sends the caller looking for a slow server")
    except OSError:  # ConnectionRefusedError: the honest answer
        pass
    else:
        raise Mismatch("a call to an address where nothing listens returned instead of raising")
    return ("answers in time; DEADLINE_EXCEEDED after 0.3 s and 1.5 s, as asked, from a silent "
            "server; a refused connection is not called a timeout")
