"""Lesson 01, RPC concepts: the hand-made JSON RPC and the checks of exercises 1.1-1.4."""

from __future__ import annotations

import json
import socket

import pytest
from conftest import WrongAnswer, fails, passes, rejects

from helpers import jsonrpc
from helpers.checks.lesson01 import FUNCTIONS, reference_deadline_of, reference_dispatch
from helpers.jsonrpc import RemoteError, error_reply, receive_json, send_json


def unsolved(*args, **kwargs):
    raise NotImplementedError("not solved yet")


# ---- the transport -----------------------------------------------------------------------

def test_the_json_server_answers_and_reports_handler_crashes() -> None:
    with jsonrpc.serve_json(reference_dispatch, name="test-json") as server:
        assert server.address[0] == "127.0.0.1" and server.address[1] > 0
        assert jsonrpc.call(server.address, "add", [2, 3]) == 5
        with pytest.raises(RemoteError) as caught:
            jsonrpc.call(server.address, "nope", [])
        assert caught.value.code == "METHOD_NOT_FOUND"
    with jsonrpc.serve_json(lambda request: 1 / 0, name="test-json") as server:
        with pytest.raises(RemoteError, match="INTERNAL: the server raised ZeroDivisionError"):
            jsonrpc.call(server.address, "add", [1, 2])
    assert "test-json" not in jsonrpc.running()


def test_a_silent_server_times_out_and_stop_releases_waiting_clients() -> None:
    with jsonrpc.serve_json(lambda request: None, name="test-silent") as server:
        with pytest.raises(RemoteError, match="DEADLINE_EXCEEDED"):
            jsonrpc.call(server.address, "add", [1, 2], timeout=0.2)
        sock = socket.create_connection(server.address, timeout=5)
        send_json(sock, {"method": "add", "params": [1]})
    with sock, pytest.raises(ConnectionError):
        receive_json(sock)  # the server stopped: the connection closes instead of hanging


def test_a_server_with_the_same_name_replaces_the_old_one() -> None:
    first = jsonrpc.serve_json(reference_dispatch, name="test-replace")
    second = jsonrpc.serve_json(reference_dispatch, name="test-replace")
    with pytest.raises(OSError):
        socket.create_connection(first.address, timeout=1).close()
    second.stop()


# ---- 1.1 and 1.3: stubs ------------------------------------------------------------------

class GoodStub:
    """The solution of 1.1 and 1.3 (the reference client does both)."""

    def __init__(self, address, timeout: float = 1.0):
        self.address, self.timeout = address, timeout

    def __getattr__(self, method):
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *params: self.call(method, list(params))

    def call(self, method, params):
        return jsonrpc.call(self.address, method, params, timeout=self.timeout)


class SettimeoutStub(GoodStub):
    """Correct too: the timeout set with sock.settimeout, the reply read through a file."""

    def call(self, method, params):
        try:
            sock = socket.create_connection(self.address, timeout=self.timeout)
        except socket.timeout:
            raise RemoteError("DEADLINE_EXCEEDED", f"waited {self.timeout} s") from None
        try:
            sock.settimeout(self.timeout)
            send_json(sock, {"method": method, "params": params})
            reply = receive_json(sock)
        except socket.timeout:
            raise RemoteError("DEADLINE_EXCEEDED", f"waited {self.timeout} s") from None
        finally:
            sock.close()
        if reply.get("error"):
            raise RemoteError(**reply["error"])
        return reply["result"]


def _raw_call(stub, method, params, timeout=None):
    with socket.create_connection(stub.address, timeout=timeout) as sock:
        send_json(sock, {"method": method, "params": params})
        return receive_json(sock)


class ErrorAsResult(GoodStub):
    def call(self, method, params):
        return _raw_call(self, method, params, self.timeout).get("result")


class WholeReply(GoodStub):
    def call(self, method, params):
        return _raw_call(self, method, params, self.timeout)


class RuntimeErrorStub(GoodStub):
    def call(self, method, params):
        reply = _raw_call(self, method, params, self.timeout)
        if "error" in reply:
            raise RuntimeError(reply["error"]["message"])
        return reply["result"]


class SwappedArguments(GoodStub):
    def call(self, method, params):
        reply = _raw_call(self, method, params, self.timeout)
        if "error" in reply:
            raise RemoteError(reply["error"]["message"], reply["error"]["code"])
        return reply["result"]


class NoTimeout(GoodStub):
    def call(self, method, params):
        return jsonrpc.call(self.address, method, params, timeout=None)


class RawTimeout(GoodStub):
    def call(self, method, params):
        reply = _raw_call(self, method, params, self.timeout)
        if "error" in reply:
            raise RemoteError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]


class HardCodedTimeout(GoodStub):
    def call(self, method, params):
        return jsonrpc.call(self.address, method, params, timeout=1.0)


class BroadOSError(GoodStub):
    def call(self, method, params):
        try:
            reply = _raw_call(self, method, params, self.timeout)
        except OSError:  # TimeoutError is an OSError, but so is ConnectionRefusedError
            raise RemoteError("DEADLINE_EXCEEDED", f"no reply within {self.timeout} s") from None
        if "error" in reply:
            raise RemoteError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]


class SwallowsTimeout(GoodStub):
    def call(self, method, params):
        try:
            return GoodStub.call(self, method, params)
        except RemoteError as error:
            if error.code == "DEADLINE_EXCEEDED":
                return None
            raise


# ---- 1.2: dispatchers --------------------------------------------------------------------

def naive_dispatch(request, functions):
    return {"result": functions[request["method"]](*request["params"])}


def no_type_check(request, functions):
    if request.get("method") not in functions:
        return error_reply("METHOD_NOT_FOUND", f"no method {request.get('method')!r}")
    try:
        return {"result": functions[request["method"]](*request["params"])}
    except TypeError as error:
        return error_reply("INVALID_PARAMS", str(error))


def _numbers(params) -> bool:
    return isinstance(params, list) and all(
        isinstance(p, (int, float)) and not isinstance(p, bool) for p in params)


def grpc_code_names(request, functions):
    method, params = request.get("method"), request.get("params")
    if method not in functions:
        return error_reply("UNIMPLEMENTED", f"no method named {method!r}")
    if not _numbers(params):
        return error_reply("INVALID_ARGUMENT", f"{method} takes numbers")
    try:
        return {"result": functions[method](*params)}
    except TypeError:
        return error_reply("INVALID_ARGUMENT", "wrong number of numbers")


def no_arity_check(request, functions):
    method, params = request.get("method"), request.get("params")
    if method not in functions:
        return error_reply("METHOD_NOT_FOUND", f"no method named {method!r}")
    if not _numbers(params):
        return error_reply("INVALID_PARAMS", f"{method} takes numbers, got {params!r}")
    return {"result": functions[method](*params)}


def global_functions(request, functions):
    """Looks methods up in the notebook's FUNCTIONS, not in the `functions` it is given."""
    return reference_dispatch(request, FUNCTIONS)


def unnamed_method(request, functions):
    if request.get("method") not in functions:
        return error_reply("METHOD_NOT_FOUND", "unknown method")
    return reference_dispatch(request, functions)


def strict_types_dispatch(request, functions):
    """Correct too: type() instead of isinstance, so bools are refused as a side effect."""
    method = request.get("method")
    if method not in functions:
        return error_reply("METHOD_NOT_FOUND", f"{method} is not a method here")
    params = request.get("params")
    if type(params) is not list or any(type(p) not in (int, float) for p in params):
        return error_reply("INVALID_PARAMS", "params must be a list of numbers")
    if len(params) != 2:
        return error_reply("INVALID_PARAMS", f"expected 2 params, got {len(params)}")
    try:
        return {"result": functions[method](*params)}
    except Exception as error:
        return error_reply("INTERNAL", f"{method} failed: {error}")



class OneRecvStub(GoodStub):
    """Reads the reply with one recv(4096): a longer reply arrives in pieces."""

    def call(self, method, params):
        try:
            with socket.create_connection(self.address, timeout=self.timeout) as sock:
                send_json(sock, {"method": method, "params": params})
                reply = json.loads(sock.recv(4096))
        except TimeoutError:
            raise RemoteError("DEADLINE_EXCEEDED", f"no reply within {self.timeout} s") from None
        if "error" in reply:
            raise RemoteError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]


class AlwaysMethodNotFound(GoodStub):
    def call(self, method, params):
        reply = _raw_call(self, method, params, timeout=self.timeout)
        if "error" in reply:
            raise RemoteError("METHOD_NOT_FOUND", reply["error"]["message"])
        return reply["result"]


class DefaultTimeoutStub(GoodStub):
    """socket.setdefaulttimeout: every socket of the process gets the timeout."""

    def call(self, method, params):
        socket.setdefaulttimeout(self.timeout)
        try:
            reply = _raw_call(self, method, params)
        except TimeoutError:
            raise RemoteError("DEADLINE_EXCEEDED", f"no reply within {self.timeout} s") from None
        if "error" in reply:
            raise RemoteError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]


class TimeoutAfterConnecting(GoodStub):
    """settimeout only once connected: a connection that never completes waits for ever."""

    def call(self, method, params):
        try:
            with socket.create_connection(self.address) as sock:
                sock.settimeout(self.timeout)
                send_json(sock, {"method": method, "params": params})
                reply = receive_json(sock)
        except TimeoutError:
            raise RemoteError("DEADLINE_EXCEEDED", f"no reply within {self.timeout} s") from None
        if "error" in reply:
            raise RemoteError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]


def bools_are_numbers(request, functions):
    method, params = request.get("method"), request.get("params", [])
    if method not in functions:
        return error_reply("METHOD_NOT_FOUND", f"no method named {method!r}")
    if not isinstance(params, list) or not all(isinstance(p, (int, float)) for p in params):
        return error_reply("INVALID_PARAMS", f"{method} takes numbers")
    try:
        return {"result": functions[method](*params)}
    except TypeError:
        return error_reply("INVALID_PARAMS", "wrong number of params")


def first_param_only(request, functions):
    method, params = request.get("method"), request.get("params", [])
    if method not in functions:
        return error_reply("METHOD_NOT_FOUND", f"no method named {method!r}")
    if not isinstance(params, list) or (params and not _numbers(params[:1])):
        return error_reply("INVALID_PARAMS", f"{method} takes numbers")
    try:
        return {"result": functions[method](*params)}
    except TypeError:
        return error_reply("INVALID_PARAMS", "wrong number of params")


def blames_the_client(request, functions):
    method, params = request.get("method"), request.get("params", [])
    if method not in functions:
        return error_reply("METHOD_NOT_FOUND", f"no method named {method!r}")
    if not _numbers(params):
        return error_reply("INVALID_PARAMS", f"{method} takes numbers")
    try:
        return {"result": functions[method](*params)}
    except Exception as error:
        return error_reply("INVALID_PARAMS", str(error))

# ---- 1.5: one connection for many calls ---------------------------------------------------

class KeepAlive(GoodStub):
    """The solution of 1.5."""

    def __init__(self, address, timeout: float = 1.0):
        super().__init__(address, timeout)
        self.sock = None

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _connect(self):
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=self.timeout)
        return self.sock

    @staticmethod
    def _result(reply):
        if "error" in reply:
            raise RemoteError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]

    def call(self, method, params):
        try:
            sock = self._connect()
            send_json(sock, {"method": method, "params": params})
            reply = receive_json(sock)
        except TimeoutError:
            self.close()
            raise RemoteError("DEADLINE_EXCEEDED", f"no reply within {self.timeout} s") from None
        except OSError:
            self.close()
            raise
        return self._result(reply)


class KeepAliveWithAFile(KeepAlive):
    """Correct too: connect by hand with settimeout, read replies through one file per connection."""

    def close(self):
        if self.sock is not None:
            self.reader.close()
            super().close()

    def call(self, method, params):
        try:
            if self.sock is None:
                sock = socket.socket()
                sock.settimeout(self.timeout)
                try:
                    sock.connect(self.address)
                except BaseException:
                    sock.close()
                    raise
                self.sock, self.reader = sock, sock.makefile("rb")
            self.sock.sendall(json.dumps({"method": method, "params": params}).encode() + b"\n")
            line = self.reader.readline()
            if not line.endswith(b"\n"):
                raise ConnectionError("the server hung up before replying")
        except socket.timeout:
            self.close()
            raise RemoteError("DEADLINE_EXCEEDED", f"waited {self.timeout} s") from None
        except ConnectionError:
            self.close()
            raise
        return self._result(json.loads(line))


class ConnectionPerCall(KeepAlive):
    def call(self, method, params):
        return jsonrpc.call(self.address, method, params, timeout=self.timeout)


class KeepsItAfterATimeout(KeepAlive):
    def call(self, method, params):
        try:
            sock = self._connect()
            send_json(sock, {"method": method, "params": params})
            reply = receive_json(sock)
        except TimeoutError:  # the connection is kept: its late reply is still on the way
            raise RemoteError("DEADLINE_EXCEEDED", f"no reply within {self.timeout} s") from None
        except OSError:
            self.close()
            raise
        return self._result(reply)


class SendsItAgain(KeepAlive):
    """Reconnects and sends the same request again when the connection breaks."""

    def call(self, method, params):
        try:
            return KeepAlive.call(self, method, params)
        except ConnectionError:
            return KeepAlive.call(self, method, params)


class BrokenIsATimeout(KeepAlive):
    def call(self, method, params):
        try:
            return KeepAlive.call(self, method, params)
        except OSError:
            raise RemoteError("DEADLINE_EXCEEDED", "the call failed") from None


class NeverReconnects(KeepAlive):
    def call(self, method, params):
        try:
            sock = self._connect()
            send_json(sock, {"method": method, "params": params})
            reply = receive_json(sock)
        except TimeoutError:
            self.close()
            raise RemoteError("DEADLINE_EXCEEDED", f"no reply within {self.timeout} s") from None
        return self._result(reply)


class ClosesAfterAnError(KeepAlive):
    """Takes an error reply for a broken connection and starts a new one."""

    def call(self, method, params):
        try:
            return KeepAlive.call(self, method, params)
        except RemoteError:
            self.close()
            raise


class OneRecvKeepAlive(KeepAlive):
    def call(self, method, params):
        try:
            sock = self._connect()
            send_json(sock, {"method": method, "params": params})
            reply = json.loads(sock.recv(4096))
        except TimeoutError:
            self.close()
            raise RemoteError("DEADLINE_EXCEEDED", f"no reply within {self.timeout} s") from None
        except OSError:
            self.close()
            raise
        return self._result(reply)


class ConnectsWithoutATimeout(KeepAlive):
    def _connect(self):
        if self.sock is None:
            self.sock = socket.create_connection(self.address)
            self.sock.settimeout(self.timeout)
        return self.sock


_shared: dict = {}


class OneConnectionForAll(KeepAlive):
    """Keeps the connection in a global: every stub, whatever its address, uses the first one."""

    def _connect(self):
        if _shared.get("sock") is None:
            _shared["sock"] = socket.create_connection(self.address, timeout=self.timeout)
        self.sock = _shared["sock"]
        return self.sock

    def close(self):
        _shared.pop("sock", None)
        super().close()


# ---- 1.4: reading the deadline off the wire -----------------------------------------------

UNITS = {"H": 3600, "M": 60, "S": 1, "m": 0.001, "u": 1e-6, "n": 1e-9}


def float_digits(call):
    """Correct too: float() on the digits, a different table, headers read with .get."""
    value = call.request_headers.get("grpc-timeout", "")
    if not value:
        return None
    return float(value[:-1]) * UNITS[value[-1]]


def divmod_style(call):
    """Correct too: nanoseconds first, then seconds."""
    if "grpc-timeout" not in call.request_headers:
        return None
    value = call.request_headers["grpc-timeout"]
    nanos = {"H": 3600 * 10**9, "M": 60 * 10**9, "S": 10**9, "m": 10**6, "u": 1000, "n": 1}
    return int(value[:-1]) * nanos[value[-1]] / 1e9


def minutes_and_millis_swapped(call):
    value = call.request_headers.get("grpc-timeout")
    if value is None:
        return None
    return int(value[:-1]) * {**UNITS, "M": 0.001, "m": 60}[value[-1]]


def case_blind(call):
    """Lower-cases the unit first: 'M' (minutes) becomes 'm' (milliseconds)."""
    value = call.request_headers.get("grpc-timeout")
    if value is None:
        return None
    return int(value[:-1]) * {"h": 3600, "m": 0.001, "s": 1, "u": 1e-6, "n": 1e-9}[
        value[-1].lower()]


def ignores_the_unit(call):
    value = call.request_headers.get("grpc-timeout")
    return None if value is None else float(value[:-1])


def always_milliseconds(call):
    value = call.request_headers.get("grpc-timeout")
    return None if value is None else int(value[:-1]) / 1000


def header_text(call):
    return call.request_headers.get("grpc-timeout")


def no_deadline_crashes(call):
    value = call.request_headers["grpc-timeout"]
    return int(value[:-1]) * UNITS[value[-1]]


def no_nanoseconds(call):
    value = call.request_headers.get("grpc-timeout")
    if value is None:
        return None
    return int(value[:-1]) * {"H": 3600, "M": 60, "S": 1, "m": 0.001, "u": 1e-6}[value[-1]]


def reads_the_trailers(call):
    value = call.trailers.get("grpc-timeout")
    return None if value is None else int(value[:-1]) * UNITS[value[-1]]


def zero_without_deadline(call):
    value = call.request_headers.get("grpc-timeout")
    return 0.0 if value is None else int(value[:-1]) * UNITS[value[-1]]


WRONG_ANSWERS = [
    WrongAnswer("1.5", "a new connection for every call", (ConnectionPerCall,),
                says="two calls opened 2 connections"),
    WrongAnswer("1.5", "keeps the connection after a timeout", (KeepsItAfterATimeout,),
                says="that is the late reply to the call that had given up"),
    WrongAnswer("1.5", "sends the request again when the connection breaks", (SendsItAgain,),
                says="it must never be sent again"),
    WrongAnswer("1.5", "a broken connection reported as DEADLINE_EXCEEDED", (BrokenIsATimeout,),
                says="a broken connection is not a timeout"),
    WrongAnswer("1.5", "keeps the broken connection", (NeverReconnects,),
                says="the next call needs a new one"),
    WrongAnswer("1.5", "starts a new connection after an error reply", (ClosesAfterAnError,),
                says="an error reply is a whole reply like any other"),
    WrongAnswer("1.5", "one recv(4096) for the reply", (OneRecvKeepAlive,),
                says="a reply of about 14 kB could not be decoded"),
    WrongAnswer("1.5", "the timeout set only after connecting", (ConnectsWithoutATimeout,),
                says="still waiting after 5 s"),
    WrongAnswer("1.5", "one connection in a global, shared by every stub", (OneConnectionForAll,),
                says="each stub has its own connection, to its own address"),
    WrongAnswer("1.1", "one recv(4096) for the reply", (OneRecvStub,),
                says="one recv() returns whatever has arrived"),
    WrongAnswer("1.1", "every error raised as METHOD_NOT_FOUND", (AlwaysMethodNotFound,),
                says="raised RemoteError 'METHOD_NOT_FOUND', expected 'INVALID_PARAMS'"),
    WrongAnswer("1.3", "socket.setdefaulttimeout: process-wide", (DefaultTimeoutStub,),
                says="setdefaulttimeout changes every socket"),
    WrongAnswer("1.3", "settimeout only after connecting", (TimeoutAfterConnecting,),
                says="still waiting after 5 s"),
    WrongAnswer("1.3", "one recv(4096) for the reply", (OneRecvStub,),
                says="one recv() returns whatever has arrived"),
    WrongAnswer("1.2", "True accepted as a number", (bools_are_numbers,),
                says="add with params [True, 2]"),
    WrongAnswer("1.2", "only the first param type-checked", (first_param_only,),
                says="multiply with params [3, 'ab']"),
    WrongAnswer("1.2", "except Exception: the function's own failure blamed on the client",
                (blames_the_client,), says="INTERNAL, not the caller's"),
    WrongAnswer("1.1", "returns reply.get('result'), so errors come back as None", (ErrorAsResult,),
                says="returned None, expected RemoteError 'METHOD_NOT_FOUND'"),
    WrongAnswer("1.1", "returns the whole reply dict", (WholeReply,), says="got {'result': 5}"),
    WrongAnswer("1.1", "raises RuntimeError instead of RemoteError", (RuntimeErrorStub,),
                says="raised RuntimeError(no method named 'power'), expected RemoteError"),
    WrongAnswer("1.1", "passes code and message to RemoteError the wrong way round",
                (SwappedArguments,), says="expected 'METHOD_NOT_FOUND'"),
    WrongAnswer("1.2", "no validation: a bad method crashes the dispatcher", (naive_dispatch,),
                says="raised KeyError('add'): a dispatcher returns a reply dict"),
    WrongAnswer("1.2", "no type check: multiply('ab', 3) returns 'ababab'", (no_type_check,),
                says="multiply with params ['ab', 3] returned 'ababab'"),
    WrongAnswer("1.2", "uses gRPC's code names instead of the protocol's", (grpc_code_names,),
                says="expected a METHOD_NOT_FOUND error"),
    WrongAnswer("1.2", "forgets the wrong number of params, which ends as INTERNAL",
                (no_arity_check,), says="add with params [1] raised RemoteError 'INTERNAL'"),
    WrongAnswer("1.2", "ignores `functions`, uses the global FUNCTIONS", (global_functions,),
                says="which must use the functions it is given"),
    WrongAnswer("1.2", "METHOD_NOT_FOUND without naming the method", (unnamed_method,),
                says="should name the method 'power'"),
    WrongAnswer("1.3", "hard-codes timeout=1.0 instead of self.timeout", (HardCodedTimeout,),
                says="expected about 0.3 s: use self.timeout"),
    WrongAnswer("1.3", "except OSError: a refused connection becomes DEADLINE_EXCEEDED",
                (BroadOSError,), says="a refused connection (nothing listens at the address) "
                "came back as DEADLINE_EXCEEDED"),
    WrongAnswer("1.3", "lets TimeoutError out instead of RemoteError", (RawTimeout,),
                says="raise TimeoutError"),
    WrongAnswer("1.3", "returns None when the time is up", (SwallowsTimeout,),
                says="returned instead of raising"),
    WrongAnswer("1.3", "no timeout at all: waits for ever", (NoTimeout,),
                says="still waiting after 5 s"),
    WrongAnswer("1.4", "'M' read as milliseconds and 'm' as minutes",
                (minutes_and_millis_swapped,), says="the case of the unit letter matters"),
    WrongAnswer("1.4", "lower-cases the unit, so minutes become milliseconds", (case_blind,),
                says="'M' means minutes and 'm' milliseconds"),
    WrongAnswer("1.4", "ignores the unit letter", (ignores_the_unit,),
                says="the last letter is a unit"),
    WrongAnswer("1.4", "reads every value as milliseconds", (always_milliseconds,),
                says="not always milliseconds"),
    WrongAnswer("1.4", "returns the header's text", (header_text,),
                says="not the header's text"),
    WrongAnswer("1.4", "crashes on a call without a deadline", (no_deadline_crashes,),
                says="a call without a deadline has no grpc-timeout header: return None"),
    WrongAnswer("1.4", "returns 0 for a call without a deadline", (zero_without_deadline,),
                says="returned 0.0, expected None"),
    WrongAnswer("1.4", "forgets nanoseconds", (no_nanoseconds,), says="KeyError('n')"),
    WrongAnswer("1.4", "looks in the trailers, which never carry the deadline",
                (reads_the_trailers,), says="read it from call.request_headers"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("1.1", GoodStub), ("1.1", SettimeoutStub),
    ("1.2", reference_dispatch), ("1.2", strict_types_dispatch),
    ("1.3", GoodStub), ("1.3", SettimeoutStub),
    ("1.4", reference_deadline_of), ("1.4", float_digits), ("1.4", divmod_style),
    ("1.5", KeepAlive), ("1.5", KeepAliveWithAFile),
], ids=lambda value: getattr(value, "__name__", value))
def test_correct_answers_pass(exercise_id, answer, capsys) -> None:
    passes(capsys, exercise_id, answer)


@pytest.mark.parametrize("exercise_id", ["1.1", "1.3", "1.5"])
def test_unsolved_stubs_fail(exercise_id, capsys) -> None:
    class UnsolvedStub(KeepAlive):
        call = unsolved

    assert "not solved yet" in fails(capsys, exercise_id, UnsolvedStub)


def test_unsolved_dispatcher_fails(capsys) -> None:
    assert "not solved yet" in fails(capsys, "1.2", unsolved)


def test_unsolved_deadline_reader_fails(capsys) -> None:
    assert "not solved yet" in fails(capsys, "1.4", unsolved)
