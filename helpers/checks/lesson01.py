"""Checks for lesson 01, RPC concepts: the hand-made JSON RPC, and a call read off the wire."""

from __future__ import annotations

import math
import random
import socket
import threading
import time
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterator

import grpc

from helpers import jsonrpc
from helpers.checks.core import Mismatch, exercise, expect, expect_equal, within
from helpers.jsonrpc import RemoteError, error_reply
from helpers.servers import serve
from helpers.wiretap import Call, wiretap

LESSON = "01_rpc_concepts"
FUNCTIONS = {"add": lambda a, b: a + b, "multiply": lambda a, b: a * b}
# For the checks of the stubs: a reply of about 14 kB, and a function with a bug of its own.
STUB_FUNCTIONS = {**FUNCTIONS, "count": lambda n: list(range(int(n))), "divide": lambda a, b: a / b}


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
    except Exception as error:  # the function's own failure: the server's fault, not the client's
        return error_reply("INTERNAL", f"{method} failed: {type(error).__name__}")


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
    second_hint="A reply can be longer than one recv() returns: the helpers above read a whole "
    "line. An error reply carries its own code; pass on whatever code the server chose.",
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
    _expect_codes_and_long_replies(stub_class, lambda address: stub_class(address))
    return ("add, multiply, a 14 kB reply, and errors with the server's own codes behaved like "
            "local calls over a real socket")


def _expect_codes_and_long_replies(stub_class: type, make: Callable[[Any], Any]) -> None:
    """A long reply arrives whole; each error reply keeps the code the server chose."""
    with jsonrpc.serve_json(partial(reference_dispatch, functions=STUB_FUNCTIONS),
                            name="check-1.x-long") as server:
        calc = make(server.address)
        try:
            got = within(5, lambda: calc.count(3000), "read the reply up to its newline")
        except ValueError as error:
            raise Mismatch(f"a reply of about 14 kB could not be decoded ({error}): one recv() "
                           "returns whatever has arrived, at most its buffer size; read up to "
                           "the newline (receive_json does)") from None
        expect(got == list(range(3000)), "stub.count(3000), a reply of about 14 kB, came back "
               f"wrong ({len(got) if isinstance(got, list) else got!r}): read the whole line")
        expect_remote_error(lambda: within(5, lambda: calc.add("2", 3), "the server answers"),
                             "INVALID_PARAMS", "stub.add('2', 3), which the server refuses "
                             "with INVALID_PARAMS,")
        expect_remote_error(lambda: within(5, lambda: calc.divide(1, 0), "the server answers"),
                             "INTERNAL", "stub.divide(1, 0), which fails inside the server "
                             "with INTERNAL,")


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
    second_hint="Every parameter must be a number, not just the first; and in Python True is an "
    "int. A function that fails by itself is the server's problem, not the caller's: only a "
    "wrong number of arguments is the caller's.",
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
        for params in (["2", 3], ["ab", 3], [3, "ab"], [1], [1, 2, 3], 5, [None, 1],
                       [True, 2], [2, False]):
            method = "multiply" if "ab" in str(params) else "add"
            expect_remote_error(lambda: remote(method, params), "INVALID_PARAMS",
                                 f"{method} with params {params!r}")
    broken = {"divide": lambda a, b: a / b}
    reply = _call_directly(dispatch, {"method": "divide", "params": [1, 0]}, broken,
                           "functions={'divide': lambda a, b: a / b}")
    code = reply.get("error", {}).get("code") if isinstance(reply, dict) else None
    expect(code == "INTERNAL", f"dispatch({{'method': 'divide', 'params': [1, 0]}}, ...) returned "
           f"{reply!r}: the request was well formed and the function itself failed "
           "(ZeroDivisionError), so that is the server's fault: INTERNAL, not the caller's "
           "INVALID_PARAMS")
    draw = random.Random(12)
    values = [0, 1, -2, 2.5, True, False, None, "3", [], {}, 10**20]
    for _ in range(150):
        request = {"method": draw.choice(["add", "multiply", "power", "Add", ""]),
                   "params": draw.choice([[draw.choice(values) for _ in range(draw.randrange(4))],
                                          draw.choice(values)])}
        if draw.random() < 0.1:
            del request["params"]
        got = _call_directly(dispatch, request, FUNCTIONS, "functions")
        expected = reference_dispatch(request)
        shape = (lambda reply: ("error", reply["error"]["code"]) if "error" in reply
                 else ("result", reply.get("result")))
        expect(isinstance(got, dict) and ("error" in got or "result" in got)
               and shape(got) == shape(expected),
               f"dispatch({request!r}, functions) returned {got!r}, expected "
               f"{shape(expected)[0]} {shape(expected)[1]!r}")
    return ("results for good calls, with the functions it was given; METHOD_NOT_FOUND for "
            "'power', INVALID_PARAMS for 9 bad params (booleans and a bad second one included), "
            "INTERNAL for a function that fails; 150 generated requests agree with the reference")


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
    second_hint="The timeout must already be in force while connecting (a server whose queue "
    "is full never completes the connection), and it belongs to this socket only, not to "
    "every socket of the process. Only a timeout is a DEADLINE_EXCEEDED.",
)
def timeout_stub(stub_class: type) -> str:
    with _default_timeout_kept():
        return _timeout_stub(stub_class)


@contextmanager
def _default_timeout_kept() -> Iterator[None]:
    """Fail if the learner's code changed the process-wide socket timeout; restore it anyway."""
    before = socket.getdefaulttimeout()
    try:
        yield
    finally:
        changed = socket.getdefaulttimeout()
        socket.setdefaulttimeout(before)
        if changed != before:  # replaces whatever that change broke on the way
            raise Mismatch(f"after your calls, socket.getdefaulttimeout() is {changed!r}: "
                           "setdefaulttimeout changes every socket the process opens from then "
                           "on; give the timeout to this connection only")


def _timeout_stub(stub_class: type) -> str:
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
    with _full_backlog() as address:
        took = _time_a_silent_call(stub_class, address, 0.5)
        expect(took <= 2, f"against a server whose queue is full the stub gave up after "
               f"{took:.1f} s, expected about 0.5 s")
    _expect_codes_and_long_replies(stub_class, lambda address: stub_class(address, timeout=2))
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
            "server and from one whose queue is full; the process-wide default untouched; a long "
            "reply and the server's own error codes; a refused connection is not a timeout")


@contextmanager
def _full_backlog() -> Iterator[tuple[str, int]]:
    """An address whose listening queue is full: a new connection is never completed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()[:2]
    waiting = []
    try:
        for _ in range(8):  # never accepted: they fill the queue
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.connect(address)
            except BlockingIOError:
                pass
            waiting.append(sock)
        time.sleep(0.1)
        yield address
    finally:
        for sock in waiting:
            sock.close()
        listener.close()


# ---- 1.4: reading a capture ------------------------------------------------------------------

SECONDS_PER_UNIT = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
UNIT_NAMES = {"H": "hours", "M": "minutes", "S": "seconds", "m": "milliseconds",
              "u": "microseconds", "n": "nanoseconds"}


def reference_deadline_of(call: Call) -> float | None:
    """Exercise 1.4, finished: the grpc-timeout header in seconds, None without one."""
    value = call.request_headers.get("grpc-timeout")
    if value is None:
        return None
    return int(value[:-1]) * SECONDS_PER_UNIT[value[-1]]


def _a_call(timeout: str | None) -> Call:
    """A captured call as tap.calls() gives it, with `timeout` as its grpc-timeout header."""
    headers = {":method": "POST", ":path": "/calculator.Calculator/Add",
               "content-type": "application/grpc", "te": "trailers"}
    if timeout is not None:
        headers["grpc-timeout"] = timeout
    return Call(connection=1, stream=1, request_headers=headers)


def _why(value: str, got: Any) -> str:
    """What a wrong reading of the header `value` most likely did."""
    number, unit = int(value[:-1]), value[-1]
    if got is None:
        return ("the call has a deadline: read it from call.request_headers, the headers the "
                "client sent")
    if isinstance(got, str):
        return "return a number of seconds, not the header's text"
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return "return a number of seconds (a float)"
    swapped = {"M": "m", "m": "M"}.get(unit)
    if swapped and math.isclose(got, number * SECONDS_PER_UNIT[swapped], rel_tol=1e-6):
        return (f"'{unit}' means {UNIT_NAMES[unit]} and '{swapped}' {UNIT_NAMES[swapped]}: "
                "the case of the unit letter matters")
    if math.isclose(got, number, rel_tol=1e-6):
        return "the last letter is a unit: convert the number to seconds"
    if math.isclose(got, number / 1000, rel_tol=1e-6):
        return (f"the unit is the last letter ('{unit}', {UNIT_NAMES[unit]}), not always "
                "milliseconds")
    return f"{number} {UNIT_NAMES[unit]} is {number * SECONDS_PER_UNIT[unit]!r} s"


def _expect_reading(deadline_of: Callable[[Call], Any], call: Call, where: str) -> None:
    value = call.request_headers.get("grpc-timeout")
    try:
        got = deadline_of(call)
    except (Mismatch, NotImplementedError):
        raise
    except Exception as error:
        what = f"grpc-timeout {value!r}" if value is not None else "no grpc-timeout header"
        raise Mismatch(f"{where} ({what}): deadline_of raised {type(error).__name__}({error})"
                       + ("; a call without a deadline has no grpc-timeout header: return None"
                          if value is None else "")) from None
    expected = reference_deadline_of(call)
    if expected is None:
        expect(got is None, f"{where} had no grpc-timeout header (no deadline): deadline_of "
                            f"returned {got!r}, expected None")
        return
    right = (isinstance(got, (int, float)) and not isinstance(got, bool)
             and math.isclose(got, expected, rel_tol=1e-9))
    expect(right, f"{where}, grpc-timeout {value!r}: deadline_of returned {got!r}, expected "
                  f"{expected!r} s: {_why(value, got)}")


def _captured_calls(timeouts: list[float | None]) -> list[Call]:
    """Real calls with these timeouts, through a wiretap; their captured Calls."""
    from helpers.reference import Calculator, calculator_pb2, calculator_pb2_grpc

    with serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, Calculator(),
               name="check-1.4") as server:
        with wiretap(server.target) as tap, grpc.insecure_channel(tap.target) as channel:
            stub = calculator_pb2_grpc.CalculatorStub(channel)
            for timeout in timeouts:
                stub.Add(calculator_pb2.AddRequest(a=1, b=2), timeout=timeout)
            calls = tap.calls()
    expect(len(calls) == len(timeouts), "the check's own calls were not all captured (a bug in "
                                         "the check: please report it)")
    return calls


@exercise(
    "1.4",
    "Read the deadline off the wire",
    notebook=LESSON,
    hint="Print call.request_headers for a few calls of the capture above: which header is "
    "missing when there is no timeout? What do its last letter and the digits before it mean?",
    second_hint="A call without a deadline has no such header at all. The value splits into a "
    "number and a one-letter unit, and upper and lower case are different units (M and m).",
)
def deadline_reader(deadline_of: Callable[[Call], Any]) -> str:
    boundaries = [f"{number}{unit}" for unit in "SmMHun" for number in (1, 99999999)]
    for value in boundaries:
        _expect_reading(deadline_of, _a_call(value), "a call")
    _expect_reading(deadline_of, _a_call(None), "a call made without a timeout")
    timeouts = [0.25, 59.9, 120, 10**6, 10**7, None]
    for timeout, call in zip(timeouts, _captured_calls(timeouts)):
        expected = reference_deadline_of(call)
        if timeout is not None:  # grpcio sends the time left, rounded up to a short form
            expect(expected is not None and timeout - 1 < expected <= timeout * 1.02 + 0.01,
                   f"a bug in the check: timeout={timeout} travelled as {expected} s")
        _expect_reading(deadline_of, call, f"a real call made with timeout={timeout}")
    rng = random.Random(14)
    generated = [f"{rng.randint(1, 10**rng.randint(1, 8) - 1)}{rng.choice('HMSmun')}"
                 for _ in range(200)]
    for value in generated:
        _expect_reading(deadline_of, _a_call(value), "a call")
    return (f"{len(timeouts)} real calls (m, S, M and H units, and no deadline) and "
            f"{len(boundaries) + len(generated)} headers with every unit read right")


# ---- 1.5: one connection for many calls ---------------------------------------------------------


class _WatchedServer:
    """A JSON-lines server that counts the connections it accepts and the requests it runs.

    Besides the functions of STUB_FUNCTIONS it knows two methods of its own: `late(value,
    delay)` answers after `delay` seconds, and `vanish()` runs, then hangs up without a
    reply (the reply is lost: did it run or not?). `hang_up()` closes every open connection.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self.connections = 0
        self.ran: list[str] = []
        self.late_sent = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # stop() closed the listener
                return
            with self._lock:
                self.connections += 1
                self._open.add(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            while True:
                request = jsonrpc.receive_json(connection)
                method, params = request.get("method"), request.get("params", [])
                with self._lock:
                    self.ran.append(method)
                if method == "late":
                    time.sleep(params[1])
                    try:
                        jsonrpc.send_json(connection, {"result": params[0]})
                    finally:
                        self.late_sent.set()
                elif method == "vanish":
                    return
                else:
                    jsonrpc.send_json(connection, reference_dispatch(request, STUB_FUNCTIONS))
        except (OSError, ValueError):  # the client left, or hang_up()/stop() closed it
            pass
        finally:
            self._close(connection)

    def _close(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        connection.close()

    def hang_up(self) -> None:
        """Close every open connection, as a restarting server would."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            self._close(connection)

    def runs(self, method: str) -> int:
        with self._lock:
            return self.ran.count(method)

    def stop(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self.hang_up()


def _outcome(function: Callable[[], Any], advice: str = "every wait needs self.timeout") -> Any:
    """What one call did: its value, ("RemoteError", code), or the exception it raised."""
    try:
        return within(5, function, advice)
    except RemoteError as error:
        return ("RemoteError", error.code)
    except (Mismatch, NotImplementedError):
        raise
    except Exception as error:
        return error


def _said(outcome: Any) -> str:
    if isinstance(outcome, BaseException):
        return f"{type(outcome).__name__}({outcome})"
    if isinstance(outcome, tuple) and outcome[:1] == ("RemoteError",):
        return f"RemoteError {outcome[1]!r}"
    return f"returned {outcome!r}"


@exercise(
    "1.5",
    "Challenge: one connection for many calls",
    notebook=LESSON,
    hint="For each way a call can end (a result, an error reply, a timeout, the server hanging "
    "up), ask: is the connection still in a known state afterwards, ready for the next request?",
    second_hint="After an error reply the next byte on the connection starts the next reply. "
    "After a timeout, the late reply may still come, and nothing in it says which call it "
    "answers. After the server hangs up, nobody knows whether the request ran.",
)
def keep_alive_stub(stub_class: type) -> str:
    with _default_timeout_kept():
        return _keep_alive_stub(stub_class)


def _keep_alive_stub(stub_class: type) -> str:
    stubs: list[Any] = []
    servers = [_WatchedServer(), _WatchedServer()]

    def make(address: tuple[str, int], timeout: float) -> Any:
        stubs.append(stub_class(address, timeout=timeout))
        return stubs[-1]

    try:
        said = [_one_connection(make, servers[0]), _generated_calls(make),
                _two_servers(make, servers), _no_stale_reply(make, servers[1]),
                _hang_ups(make, servers[0]), _timeouts(stub_class)]
    finally:
        for stub in stubs:
            try:
                stub.close()
            except Exception:  # the check's clean-up: the verdict is already made
                pass
        for server in servers:
            server.stop()
    return "; ".join(said)


def _one_connection(make: Callable[..., Any], server: _WatchedServer) -> str:
    calc = make(server.address, 2)
    for method, params, expected in [("add", [2, 3], 5), ("multiply", [6, 7], 42)]:
        expect_equal(_outcome(lambda: getattr(calc, method)(*params)), expected,
                     f"stub.{method}{tuple(params)}")
    expect(server.connections == 1, f"two calls opened {server.connections} connections: keep "
           "the stub's connection in self.sock and send every call over it")
    for method, params, code in [("power", [2, 8], "METHOD_NOT_FOUND"),
                                 ("add", ["2", 3], "INVALID_PARAMS"),
                                 ("divide", [1, 0], "INTERNAL")]:
        got = _outcome(lambda: getattr(calc, method)(*params))
        expect(got == ("RemoteError", code), f"stub.{method}{tuple(params)}, which the server "
               f"answers with the error {code}, {_said(got)}: raise RemoteError with the "
               "server's code")
    expect(server.connections == 1, f"after error replies the stub opened a new connection "
           f"({server.connections} in all): an error reply is a whole reply like any other, "
           "and the connection is still good")
    got = _outcome(lambda: calc.count(3000), "read the reply up to its newline")
    if isinstance(got, ValueError):
        raise Mismatch(f"a reply of about 14 kB could not be decoded ({got}): one recv() returns "
                       "whatever has arrived; read up to the newline (receive_json does)")
    expect(got == list(range(3000)), "stub.count(3000), a reply of about 14 kB, "
           f"{_said(got) if not isinstance(got, list) else f'came back with {len(got)} items'}: "
           "read the whole line")
    expect_equal(_outcome(lambda: calc.add(1, 1)), 2, "stub.add(1, 1) after all that")
    expect(server.connections == 1, f"{server.connections} connections for 7 calls")
    return "7 calls, error replies and a 14 kB reply among them, on one connection"


def _generated_calls(make: Callable[..., Any]) -> str:
    """Sequences of calls on one stub: the same results as the server's own dispatcher."""
    from hypothesis import strategies as st

    from helpers.checks.core import compare_with_reference

    numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e3, 1e3, allow_nan=False))
    one_call = st.one_of(
        st.tuples(st.sampled_from(["add", "multiply", "divide"]), st.lists(numbers, min_size=2,
                                                                           max_size=2)),
        st.tuples(st.sampled_from(["add", "power", "multiply"]), st.lists(
            st.one_of(numbers, st.text(max_size=3), st.booleans()), max_size=3)))
    server = _WatchedServer()
    calc = make(server.address, 2)

    def learner(calls: list) -> list:
        return [_outcome(lambda: calc.call(method, params)) for method, params in calls]

    def expected(calls: list) -> list:
        replies = [reference_dispatch({"method": m, "params": p}, STUB_FUNCTIONS) for m, p in calls]
        return [("RemoteError", r["error"]["code"]) if "error" in r else r["result"]
                for r in replies]

    try:
        count = compare_with_reference(
            learner, expected, st.lists(one_call, min_size=1, max_size=5),
            lambda calls: "the calls " + ", ".join(f"{m}{tuple(p)}" for m, p in calls)
            + " on one stub", max_examples=30,
            same=lambda got, want: got[0] == want[0] and [_said(x) for x in got[1]]
            == [_said(x) for x in want[1]])
        expect(server.connections > 0, f"{count} sequences of calls on a new stub never "
               "reached its server: each stub has its own connection, to its own address")
        expect(server.connections == 1, f"{count} sequences of calls on one stub opened "
               f"{server.connections} connections: one is enough")
    finally:
        server.stop()
    return f"{count} generated sequences of calls agree with the server's dispatcher, on one connection"


def _two_servers(make: Callable[..., Any], servers: list[_WatchedServer]) -> str:
    before = [server.runs("multiply") for server in servers]
    first, second = make(servers[0].address, 2), make(servers[1].address, 2)
    for calc, server, a in [(first, servers[0], 3), (second, servers[1], 4), (first, servers[0], 5)]:
        expect_equal(_outcome(lambda: calc.multiply(a, 10)), a * 10, f"stub.multiply({a}, 10)")
    got = [server.runs("multiply") - count for server, count in zip(servers, before)]
    expect(got == [2, 1], f"two stubs for two servers: the servers ran {got} of the calls meant "
           "for them ([2, 1]): each stub has its own connection, to its own address")
    return "two stubs, two servers, each its own connection"


def _no_stale_reply(make: Callable[..., Any], server: _WatchedServer) -> str:
    calc = make(server.address, 0.5)
    expect_equal(_outcome(lambda: calc.add(1, 2)), 3, "stub.add(1, 2)")
    server.late_sent.clear()
    got = _outcome(lambda: calc.call("late", [111, 1.2]))
    expect(got == ("RemoteError", "DEADLINE_EXCEEDED"), f"a call the server answers after 1.2 s, "
           f"with timeout=0.5, {_said(got)}: expected RemoteError 'DEADLINE_EXCEEDED'")
    expect(server.late_sent.wait(5), "the check's server never sent its late reply (a bug in the "
           "check: please report it)")
    time.sleep(0.1)  # the late reply is on its way, or already waiting in the old connection
    got = _outcome(lambda: calc.add(2, 3))
    expect(got != 111, "stub.add(2, 3) returned 111: that is the late reply to the call that had "
           "given up. After a timeout the connection still carries that reply, and nothing in it "
           "says which call it answers")
    expect(got == 5, f"stub.add(2, 3), the call after a timeout, {_said(got)}: expected 5")
    return "no late reply taken for a later call's"


def _hang_ups(make: Callable[..., Any], server: _WatchedServer) -> str:
    calc = make(server.address, 2)
    expect_equal(_outcome(lambda: calc.add(1, 2)), 3, "stub.add(1, 2)")
    before = server.runs("vanish")
    got = _outcome(lambda: calc.call("vanish", []))
    time.sleep(0.2)
    ran = server.runs("vanish") - before
    expect(ran == 1, f"a call during which the server hung up ran {ran} times on the server: it "
           "may have run (here it did), so it must never be sent again")
    if got == ("RemoteError", "DEADLINE_EXCEEDED"):
        raise Mismatch("a call during which the server hung up raised RemoteError "
                       "'DEADLINE_EXCEEDED': a broken connection is not a timeout; let the "
                       "ConnectionError through")
    expect(isinstance(got, ConnectionError), f"a call during which the server hung up "
           f"{_said(got)}: expected ConnectionError (or a subclass)")
    got = _outcome(lambda: calc.add(2, 2))
    expect(got == 4, f"stub.add(2, 2), the call after the server hung up, {_said(got)}: the old "
           "connection is gone; the next call needs a new one")
    server.hang_up()  # between calls this time
    time.sleep(0.1)
    got = _outcome(lambda: calc.add(5, 5))
    if isinstance(got, ConnectionError):
        got = _outcome(lambda: calc.add(5, 5))
        expect(got == 10, f"after the server hung up between calls, a first call raised "
               f"ConnectionError and the next {_said(got)}: expected 10, on a new connection")
    expect(got == 10, f"stub.add(5, 5) after the server hung up between calls {_said(got)}: "
           "expected 10, or a ConnectionError and then 10")
    return ("a call the server hung up on raised ConnectionError and was not sent again; the "
            "next one worked")


def _timeouts(stub_class: type) -> str:
    silent = jsonrpc.serve_json(lambda request: None, name="check-1.5-silent")
    try:
        for timeout in (0.3, 1.2):
            took = _time_a_silent_call(stub_class, silent.address, timeout)
            expect(0.8 * timeout <= took <= 1.3 * timeout + 0.5,
                   f"KeepAliveStub(address, timeout={timeout}) gave up after {took:.1f} s "
                   f"against a silent server, expected about {timeout} s")
    finally:
        silent.stop()
    with _full_backlog() as address:
        took = _time_a_silent_call(stub_class, address, 0.5)
        expect(took <= 2, f"against a server whose queue is full the stub gave up after "
               f"{took:.1f} s, expected about 0.5 s: connecting needs the timeout too")
    got = _outcome(lambda: stub_class(_gone_address(), timeout=2).add(2, 3))
    expect(got != ("RemoteError", "DEADLINE_EXCEEDED"), "a refused connection (nothing listens "
           "at the address) came back as DEADLINE_EXCEEDED: a refused connection is not a timeout")
    expect(isinstance(got, OSError), f"a call to an address where nothing listens {_said(got)}: "
           "expected the ConnectionRefusedError")
    return ("DEADLINE_EXCEEDED after 0.3 s and 1.2 s, also while connecting; a refused "
            "connection is not a timeout")
