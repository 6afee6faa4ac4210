"""Lesson 02, Protocol Buffers: the checks of exercises 2.1-2.5, and the lesson's helpers."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import SOLUTIONS, WrongAnswer, fails, passes, rejects
from google.protobuf import json_format, text_format

from helpers import protos
from helpers.checks.lesson02 import CONTACT_V2, Person, compile_isolated, size_quiz
from helpers.widgets import decode_varint as reference_varint


def unsolved(*args, **kwargs):
    raise NotImplementedError("not solved yet")


# ---- 2.1 ---------------------------------------------------------------------------------

def _protoc(proto_file: Path, out_dir: Path, *outputs: str, proto_path: Path | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_path or proto_file.parent}",
         *(f"--{kind}_out={out_dir}" for kind in outputs), str(proto_file)],
        capture_output=True, text=True, check=check)


ALL_OUTPUTS = ("python", "pyi", "grpc_python")


def good_compile(proto_file: Path, out_dir: Path) -> list[str]:
    result = _protoc(proto_file, out_dir, *ALL_OUTPUTS)
    if result.returncode:
        raise RuntimeError(result.stderr)
    return sorted(path.name for path in out_dir.iterdir())


def compile_with_glob(proto_file: Path, out_dir: Path) -> list[str]:
    """Correct too: no capture of stdout, names found with glob, stderr kept whole."""
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "--proto_path", str(proto_file.parent),
         "--python_out", str(out_dir), "--pyi_out", str(out_dir), "--grpc_python_out",
         str(out_dir), proto_file.name], cwd=proto_file.parent, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed:\n{result.stderr}")
    return sorted(p.name for p in out_dir.glob("*"))


def check_true(proto_file: Path, out_dir: Path) -> list[str]:
    _protoc(proto_file, out_dir, *ALL_OUTPUTS, check=True)
    return sorted(path.name for path in out_dir.iterdir())


def no_pyi(proto_file: Path, out_dir: Path) -> list[str]:
    _protoc(proto_file, out_dir, "python", "grpc_python")
    return sorted(path.name for path in out_dir.iterdir())


def stdout_message(proto_file: Path, out_dir: Path) -> list[str]:
    result = _protoc(proto_file, out_dir, *ALL_OUTPUTS)
    if result.returncode:
        raise RuntimeError(result.stdout)
    return sorted(path.name for path in out_dir.iterdir())


def ignores_returncode(proto_file: Path, out_dir: Path) -> list[str]:
    _protoc(proto_file, out_dir, *ALL_OUTPUTS)
    return sorted(path.name for path in out_dir.iterdir())


def course_proto_path(proto_file: Path, out_dir: Path) -> list[str]:
    """Copied from the cell above: --proto_path is the course's protos/ folder."""
    result = _protoc(proto_file, out_dir, *ALL_OUTPUTS, proto_path=protos.PROTO_DIR)
    if result.returncode:
        raise RuntimeError(result.stderr)
    return sorted(path.name for path in out_dir.iterdir())


def in_flag_order(proto_file: Path, out_dir: Path) -> list[str]:
    result = _protoc(proto_file, out_dir, *ALL_OUTPUTS)
    if result.returncode:
        raise RuntimeError(result.stderr)
    stem = proto_file.stem
    return [f"{stem}_pb2.py", f"{stem}_pb2_grpc.py", f"{stem}_pb2.pyi"]


def raises_on_stderr(proto_file: Path, out_dir: Path) -> list[str]:
    result = _protoc(proto_file, out_dir, *ALL_OUTPUTS)
    if result.returncode or result.stderr:
        raise RuntimeError(result.stderr)
    return sorted(path.name for path in out_dir.iterdir())


def empties_out_dir(proto_file: Path, out_dir: Path) -> list[str]:
    for old in out_dir.iterdir():
        old.unlink()
    return good_compile(proto_file, out_dir)


def bytes_message(proto_file: Path, out_dir: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_file.parent}",
         *(f"--{kind}_out={out_dir}" for kind in ALL_OUTPUTS), str(proto_file)],
        capture_output=True)
    if result.returncode:
        raise RuntimeError(result.stderr.strip())  # bytes: str() of it reads b'...'
    return sorted(path.name for path in out_dir.iterdir())


# ---- 2.2 ---------------------------------------------------------------------------------

def grace() -> Person:
    return Person(name="Grace Hopper", age=85, gender=Person.GENDER_FEMALE,
                  hobbies=["COBOL", "nanoseconds"],
                  address=Person.Address(street="1 Navy Way", city="Arlington"))


def grace_by_fields() -> Person:
    """Correct too: built field by field, the gender given by number."""
    person = Person()
    person.name = "Grace Hopper"
    person.age = 85
    person.gender = 2
    person.hobbies.extend(["COBOL", "nanoseconds"])
    person.address.street, person.address.city = "1 Navy Way", "Arlington"
    return person


def good_round_trip(person):
    return (Person.FromString(person.SerializeToString()),
            json_format.Parse(json_format.MessageToJson(person), Person()))


def dict_round_trip(person):
    """Correct too: ParseFromString into a new message, JSON through a dict."""
    from_bytes = Person()
    from_bytes.ParseFromString(person.SerializeToString())
    return from_bytes, json_format.ParseDict(json_format.MessageToDict(person), Person())


def grace_without_age() -> Person:
    return Person(name="Grace Hopper", gender=Person.GENDER_FEMALE,
                  hobbies=["COBOL", "nanoseconds"],
                  address=Person.Address(street="1 Navy Way", city="Arlington"))


def grace_hobbies_as_one() -> Person:
    person = grace()
    del person.hobbies[:]
    person.hobbies.append("COBOL, nanoseconds")
    return person


def bytes_and_text(person):
    return person.SerializeToString(), json_format.MessageToJson(person)


def two_deep_copies(person):
    return copy.deepcopy(person), copy.deepcopy(person)


def bytes_twice(person):
    data = person.SerializeToString()
    return Person.FromString(data), Person.FromString(data)


# ---- 2.3 ---------------------------------------------------------------------------------

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


def from_the_start(data, pos=0):
    return reference_varint(data, 0)


def length_not_position(data, pos=0):
    value, end = reference_varint(data, pos)
    return value, end - pos


def truncated_silently(data, pos=0):
    value, shift = 0, 0
    for byte in data[pos:]:
        value |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
        if not byte & 0x80:
            break
    return value, pos


def iterative_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """Correct too: collect the 7-bit groups first, then combine them in reverse."""
    groups = []
    while True:
        groups.append(data[pos] & 0x7F)
        pos += 1
        if data[pos - 1] < 0x80:
            break
    value = 0
    for group in reversed(groups):
        value = value * 128 + group
    return value, pos


# ---- 2.4 ---------------------------------------------------------------------------------

RIGHT_SIZES = {label: message.ByteSize() for label, message in size_quiz().items()}


def by_byte_size() -> dict[str, int]:
    return {label: message.ByteSize() for label, message in size_quiz().items()}


def by_serializing() -> dict[str, int]:
    return {label: len(message.SerializeToString()) for label, message in size_quiz().items()}


def written_by_hand() -> dict[str, int]:
    """Correct: numbers worked out by hand."""
    return {"a": 5, "b": 2, "c": 3, "d": 7, "e": 9, "f": 8, "g": 0, "h": 11}


# ---- 2.5 ---------------------------------------------------------------------------------

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
V3_REUSED_AND_RESERVED = V3 % 3
V3_REUSED = V3.replace('  reserved 3;\n  reserved "age";\n', "") % 3
V3_NO_NAME = V3.replace('  reserved "age";\n', "") % 5
V3_NO_PHONES = (V3 % 5).replace("  repeated string phones = 4;\n", "")
V3_KEEPS_AGE = (V3 % 5).replace('  reserved 3;\n  reserved "age";\n', "  int32 age = 3;\n")
V3_SINGLE_PHONE = (V3 % 5).replace("repeated string phones", "string phones")
V3_OTHER_STYLE = """syntax = "proto3";

package evolution.v3;

message Contact {
  string name = 1;
  string email = 2;
  reserved 3, 15 to 17;
  reserved "age", "nickname";
  repeated string phones = 4;
  optional int32 birth_year = 18;
}
"""



# ---- 2.6 ---------------------------------------------------------------------------------

def fields_of(data):
    fields, pos = [], 0
    while pos < len(data):
        key, pos = reference_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire_type == 0:
            value, pos = reference_varint(data, pos)
        elif wire_type in (1, 2, 5):
            size = {1: 8, 5: 4}.get(wire_type)
            if size is None:
                size, pos = reference_varint(data, pos)
            if pos + size > len(data):
                raise ValueError("the data ends too early")
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire_type}")
        fields.append((number, wire_type, value))
    return fields


def _walk(data, *, one_byte_key=False, fixed_as_varint=False, check_length=True):
    fields, pos = [], 0
    while pos < len(data):
        if one_byte_key:
            key, pos = data[pos], pos + 1
        else:
            key, pos = reference_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0 or (fixed_as_varint and wire_type in (1, 5)):
            value, pos = reference_varint(data, pos)
        elif wire_type in (1, 2, 5):
            size = {1: 8, 5: 4}.get(wire_type)
            if size is None:
                size, pos = reference_varint(data, pos)
            if check_length and pos + size > len(data):
                raise ValueError("the data ends too early")
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire_type}")
        fields.append((number, wire_type, value))
    return fields


def fields_number_and_type_swapped(data):
    return [(wire_type, number, value) for number, wire_type, value in fields_of(data)]


def fields_with_one_byte_keys(data):
    return _walk(data, one_byte_key=True)


def fields_sliced_silently(data):
    return _walk(data, check_length=False)


def fields_fixed_as_varints(data):
    return _walk(data, fixed_as_varint=True)


def fields_by_the_inspector(data):
    from helpers.widgets import parse_wire

    return [(f.number, f.wire_type, f.value) for f in parse_wire(data)]


WRONG_ANSWERS = [
    WrongAnswer("2.6", "number and wire type swapped", (fields_number_and_type_swapped,),
                says="the reference gives [(1, 2, b'Ada'), (2, 0, 36)]"),
    WrongAnswer("2.6", "keys read as one byte (fields above 15 break)",
                (fields_with_one_byte_keys,), says="fields_of(80 01 01)"),
    WrongAnswer("2.6", "a value cut short sliced silently", (fields_sliced_silently,),
                says="the reference gives an exception (ValueError)"),
    WrongAnswer("2.6", "fixed 32/64-bit values read as varints", (fields_fixed_as_varints,),
                says="fields_of(39 00 00 00 00 00 00 00 00)"),
    WrongAnswer("2.6", "hands the bytes to the course's wire inspector", (fields_by_the_inspector,),
                says="not to let a parser do it"),
    WrongAnswer("2.6", "field number 0 accepted", (_walk,), says="fields_of(00 01)"),
    WrongAnswer("2.1", "raises whenever protoc writes to stderr", (raises_on_stderr,),
                says="a warning on stderr is not a failure"),
    WrongAnswer("2.1", "empties out_dir first", (empties_out_dir,),
                says="compile into out_dir without emptying it"),
    WrongAnswer("2.3", "a varint cut short decoded silently", (truncated_silently,),
                says="for a varint cut short"),
    WrongAnswer("2.4", "ByteSize() instead of a prediction", (by_byte_size,),
                says="predicted_sizes calls"),
    WrongAnswer("2.4", "len(SerializeToString()) instead of a prediction", (by_serializing,),
                says="predicted_sizes calls"),
    WrongAnswer("2.1", "subprocess.run(..., check=True): CalledProcessError, not protoc's message",
                (check_true,), says="raised CalledProcessError"),
    WrongAnswer("2.1", "forgets --pyi_out", (no_pyi,), says="pinger_pb2.pyi"),
    WrongAnswer("2.1", "raises RuntimeError(result.stdout), which is empty", (stdout_message,),
                says="it should carry protoc's own message (result.stderr)"),
    WrongAnswer("2.1", "protoc's message left as bytes", (bytes_message,), says="that is bytes, not text"),
    WrongAnswer("2.1", "ignores the return code", (ignores_returncode,),
                says="a broken .proto compiled without an error"),
    WrongAnswer("2.1", "copies --proto_path=protos/ from the cell above", (course_proto_path,),
                says="is --proto_path the proto file's own folder?"),
    WrongAnswer("2.1", "returns the names unsorted, in the order of the options", (in_flag_order,),
                says="return the names sorted"),
    WrongAnswer("2.2", "returns the original twice instead of copies",
                (grace, lambda person: (person, person)), says="original object itself"),
    WrongAnswer("2.2", "make_person forgets the age", (grace_without_age, good_round_trip),
                says="make_person().age"),
    WrongAnswer("2.2", "hobbies as one string", (grace_hobbies_as_one, good_round_trip),
                says="make_person().hobbies"),
    WrongAnswer("2.2", "returns the bytes and the JSON text, not messages", (grace, bytes_and_text),
                says="the copy from bytes is a bytes, not a Person"),
    WrongAnswer("2.2", "copy.deepcopy twice: nothing goes through bytes or JSON",
                (grace, two_deep_copies), says="that copy did not go through JSON"),
    WrongAnswer("2.2", "both copies decoded from bytes", (grace, bytes_twice),
                says="that copy did not go through JSON"),
    WrongAnswer("2.3", "reads one byte only", (one_byte_only,), says="the varint of 128"),
    WrongAnswer("2.3", "most significant group first", (big_endian,), says="the varint of 128"),
    WrongAnswer("2.3", "ignores pos, always starts at byte 0", (from_the_start,),
                says="starting at byte 1"),
    WrongAnswer("2.3", "returns the varint's length instead of the next position",
                (length_not_position,), says="starting at byte 1"),
    WrongAnswer("2.4", "a negative int32 in 3 bytes, not 11",
                (lambda: dict(RIGHT_SIZES, h=3),), says="h: you said 3, it is 11"),
    WrongAnswer("2.4", "counts fields set to their default", (lambda: dict(RIGHT_SIZES, g=4),),
                says="g: you said 4, it is 0"),
    WrongAnswer("2.4", "forgets the nested message's own tag and length",
                (lambda: dict(RIGHT_SIZES, f=6),), says="f: you said 6, it is 8"),
    WrongAnswer("2.5", "reserves 3 and reuses it", (lambda: V3_REUSED_AND_RESERVED,),
                says="protoc rejected"),
    WrongAnswer("2.5", "reuses number 3 for birth_year", (lambda: V3_REUSED,),
                says="reuses number 3"),
    WrongAnswer("2.5", "reserves the number but not the name", (lambda: V3_NO_NAME,),
                says='the name "age" is not reserved'),
    WrongAnswer("2.5", "drops phones", (lambda: V3_NO_PHONES,), says="phones"),
    WrongAnswer("2.5", "keeps age beside birth_year", (lambda: V3_KEEPS_AGE,),
                says="v3 still has the field age"),
    WrongAnswer("2.5", "phones no longer repeated", (lambda: V3_SINGLE_PHONE,),
                says="repeated string phones = 4"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("2.1", (good_compile,)), ("2.1", (compile_with_glob,)),
    ("2.2", (grace, good_round_trip)), ("2.2", (grace_by_fields, dict_round_trip)),
    ("2.3", (reference_varint,)), ("2.3", (iterative_varint,)),
    ("2.4", (lambda: RIGHT_SIZES,)), ("2.4", (written_by_hand,)), ("2.6", (fields_of,)),
    ("2.5", (lambda: V3 % 5,)), ("2.5", (lambda: V3_OTHER_STYLE,)),
], ids=lambda value: value if isinstance(value, str) else value[-1].__name__)
def test_correct_answers_pass(exercise_id, answer, capsys) -> None:
    passes(capsys, exercise_id, *answer)


@pytest.mark.parametrize("exercise_id, answer", [
    ("2.1", (unsolved,)), ("2.2", (unsolved, good_round_trip)), ("2.2", (grace, unsolved)),
    ("2.3", (unsolved,)), ("2.4", (unsolved,)), ("2.5", (unsolved,)), ("2.6", (unsolved,)),
])
def test_unsolved_answers_fail(exercise_id, answer, capsys) -> None:
    assert "not solved yet" in fails(capsys, exercise_id, *answer)


# ---- the lesson's facts and helpers ------------------------------------------------------

def test_json_refuses_unknown_fields_and_drops_them_when_writing() -> None:
    """The JSON column of lesson 02's evolution table."""
    with pytest.raises(json_format.ParseError, match='no field named "phones"'):
        json_format.Parse('{"name": "Ada", "phones": ["1"]}', Person())
    parsed = json_format.Parse('{"name": "Ada", "phones": ["1"]}', Person(),
                               ignore_unknown_fields=True)
    assert parsed == Person(name="Ada")
    newer = Person.FromString(Person(name="Ada").SerializeToString() + b"\xf8\x06\x01")
    assert newer.SerializeToString().endswith(b"\xf8\x06\x01")  # binary keeps it
    assert json_format.MessageToJson(newer, indent=None) == '{"name": "Ada"}'  # JSON drops it
    assert text_format.MessageToString(newer) == 'name: "Ada"\n'


def test_an_unset_wrapper_reads_as_an_empty_wrapper_not_none() -> None:
    profile_pb2, _ = protos.load("profile")
    profile = profile_pb2.Profile()
    assert profile.age is not None and profile.age.value == 0
    assert not profile.HasField("age")


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
