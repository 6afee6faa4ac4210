"""Checks of lessons 01 and 02: a correct answer passes, wrong and raising ones fail."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import jsonrpc
from helpers.checks.lesson01 import reference_dispatch
from helpers.checks.lesson02 import CONTACT_V2, Person, compile_isolated, size_quiz
from helpers.jsonrpc import RemoteError, error_reply, receive_json, send_json
from helpers.widgets import decode_varint as reference_varint

from conftest import SOLUTIONS, fails, passes




def unsolved(*args, **kwargs):
    raise NotImplementedError("not solved yet")


# ---- lesson 01: the transport -------------------------------------------------------------

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


# ---- lesson 01: the checks -----------------------------------------------------------------

class GoodStub:
    def __init__(self, address, timeout: float = 1.0):
        self.address, self.timeout = address, timeout

    def __getattr__(self, method):
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *params: self.call(method, list(params))

    def call(self, method, params):
        return jsonrpc.call(self.address, method, params, timeout=self.timeout)


class ErrorAsResult(GoodStub):
    def call(self, method, params):
        with socket.create_connection(self.address, timeout=self.timeout) as sock:
            send_json(sock, {"method": method, "params": params})
            return receive_json(sock).get("result")


class NoTimeout(GoodStub):
    def call(self, method, params):
        return jsonrpc.call(self.address, method, params, timeout=None)


class RawTimeout(GoodStub):
    def call(self, method, params):
        with socket.create_connection(self.address, timeout=self.timeout) as sock:
            send_json(sock, {"method": method, "params": params})
            reply = receive_json(sock)
        if "error" in reply:
            raise RemoteError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]


class UnsolvedStub(GoodStub):
    call = unsolved


def test_1_1_passes_for_a_working_stub(capsys) -> None:
    passes(capsys, "1.1", GoodStub)


def test_1_1_fails_when_errors_come_back_as_results(capsys) -> None:
    assert "expected RemoteError 'METHOD_NOT_FOUND'" in fails(capsys, "1.1", ErrorAsResult)


def test_1_1_fails_unsolved(capsys) -> None:
    assert "not solved yet" in fails(capsys, "1.1", UnsolvedStub)


def lazy_dispatch(request, functions):
    if request.get("method") not in functions:
        return error_reply("METHOD_NOT_FOUND", f"no method {request.get('method')!r}")
    try:
        return {"result": functions[request["method"]](*request["params"])}
    except TypeError as error:
        return error_reply("INVALID_PARAMS", str(error))


def test_1_2_passes_for_the_reference(capsys) -> None:
    passes(capsys, "1.2", reference_dispatch)


@pytest.mark.parametrize("dispatch, says", [
    (lambda request, functions: {"result": functions[request["method"]](*request["params"])},
     "raised RemoteError 'INTERNAL', expected 'METHOD_NOT_FOUND'"),
    (lazy_dispatch, "multiply with params ['ab', 3] returned 'ababab'"),
    (unsolved, "not solved yet"),
])
def test_1_2_fails_for_wrong_dispatchers(capsys, dispatch, says) -> None:
    assert says in fails(capsys, "1.2", dispatch)


def test_1_3_passes_for_a_stub_with_a_timeout(capsys) -> None:
    passes(capsys, "1.3", GoodStub)


def test_1_3_fails_without_a_timeout_and_does_not_hang(capsys) -> None:
    assert "still waiting after 5 s" in fails(capsys, "1.3", NoTimeout)


def test_1_3_fails_when_the_timeout_is_not_a_remote_error(capsys) -> None:
    assert "raise TimeoutError" in fails(capsys, "1.3", RawTimeout)


def test_1_3_fails_unsolved(capsys) -> None:
    assert "not solved yet" in fails(capsys, "1.3", UnsolvedStub)


# ---- lesson 02 -----------------------------------------------------------------------------

def good_compile(proto_file: Path, out_dir: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_file.parent}",
         f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}",
         str(proto_file)], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr)
    return sorted(path.name for path in out_dir.iterdir())


def no_pyi_compile(proto_file: Path, out_dir: Path) -> list[str]:
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_file.parent}",
                    f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", str(proto_file)])
    return sorted(path.name for path in out_dir.iterdir())


def test_2_1(capsys) -> None:
    passes(capsys, "2.1", good_compile)
    assert "pinger_pb2.pyi" in fails(capsys, "2.1", no_pyi_compile)
    fails(capsys, "2.1", unsolved)


def grace() -> Person:
    return Person(name="Grace Hopper", age=85, gender=Person.GENDER_FEMALE,
                  hobbies=["COBOL", "nanoseconds"],
                  address=Person.Address(street="1 Navy Way", city="Arlington"))


def good_round_trip(person):
    from google.protobuf import json_format
    return (Person.FromString(person.SerializeToString()),
            json_format.Parse(json_format.MessageToJson(person), Person()))


def test_2_2(capsys) -> None:
    passes(capsys, "2.2", grace, good_round_trip)
    assert "original object itself" in fails(capsys, "2.2", grace, lambda p: (p, p))
    assert "make_person().age" in fails(capsys, "2.2", lambda: Person(name="Grace Hopper"),
                                        good_round_trip)
    fails(capsys, "2.2", unsolved, good_round_trip)


def one_byte_only(data, pos=0):
    return data[pos] & 0x7F, pos + 1


def big_endian(data, pos=0):
    value = 0
    while True:
        byte = data[pos]
        value = value << 7 | (byte & 0x7F)
        pos += 1
        if not byte & 0x80:
            return value, pos


def test_2_3(capsys) -> None:
    passes(capsys, "2.3", reference_varint)
    assert "the varint of 128" in fails(capsys, "2.3", one_byte_only)
    fails(capsys, "2.3", big_endian)
    fails(capsys, "2.3", unsolved)


def test_2_4(capsys) -> None:
    right = {label: message.ByteSize() for label, message in size_quiz().items()}
    passes(capsys, "2.4", lambda: right)
    naive = dict(right, h=3)  # forgetting that a negative int32 takes 10 bytes
    assert "h: you said 3, it is 11" in fails(capsys, "2.4", lambda: naive)
    fails(capsys, "2.4", unsolved)


V3 = """syntax = "proto3";
package evolution.v3;
message Contact {
  reserved 3;
  reserved "age";
  string name = 1;
  string email = 2;
  repeated string phones = 4;
  int32 birth_year = %s;
}
"""


def test_2_5(capsys) -> None:
    passes(capsys, "2.5", lambda: V3 % 5)
    assert "protoc rejected" in fails(capsys, "2.5", lambda: V3 % 3)
    reused = V3.replace('  reserved 3;\n  reserved "age";\n', "") % 3
    assert "reuses number 3" in fails(capsys, "2.5", lambda: reused)
    no_name = V3.replace('  reserved "age";\n', "") % 5
    assert 'the name "age" is not reserved' in fails(capsys, "2.5", lambda: no_name)
    dropped = (V3 % 5).replace("  repeated string phones = 4;\n", "")
    assert "phones" in fails(capsys, "2.5", lambda: dropped)
    fails(capsys, "2.5", unsolved)


def test_compile_isolated_can_compile_the_same_file_name_twice() -> None:
    first = compile_isolated(CONTACT_V2, "contacts_v2.proto", "evolution.v2.Contact")
    second = compile_isolated(CONTACT_V2.replace("int32 age", "int64 age"), "contacts_v2.proto",
                              "evolution.v2.Contact")
    assert first(age=1).SerializeToString() == second(age=1).SerializeToString()


def test_the_lesson_writes_the_same_contact_v2_as_the_check() -> None:
    notebook = nbformat.read(SOLUTIONS / "02_protocol_buffers.ipynb", as_version=4)
    source = "\n".join(cell.source for cell in notebook.cells)
    fields = CONTACT_V2[CONTACT_V2.index("{") + 2:CONTACT_V2.index("}")]
    assert f'contact_proto("evolution.v2", """\\\n{fields}""")' in source
