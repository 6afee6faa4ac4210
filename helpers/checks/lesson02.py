"""Checks for lesson 02, Protocol Buffers."""

from __future__ import annotations

import ast
import inspect
import random
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Callable

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from helpers import protos
from helpers.checks.core import Mismatch, compare_with_reference, exercise, expect, expect_equal
from helpers.widgets import encode_varint

LESSON = "02_protocol_buffers"
person_pb2, _ = protos.load("person")
Person = person_pb2.Person

# Exercise 2.5's starting point; the lesson writes the same text to contacts_v2.proto.
CONTACT_V2 = """syntax = "proto3";
package evolution.v2;

message Contact {
  string name = 1;
  string email = 2;
  int32 age = 3;
  repeated string phones = 4;
}
"""


def compile_isolated(proto_text: str, file_name: str, message: str) -> type[Message]:
    """Compile `proto_text` into a private descriptor pool and return the class of `message`.

    A private pool never clashes with the protos this kernel already imported, so the
    same file name can be compiled again after every edit, without a kernel restart.
    """
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / file_name).write_text(proto_text)
        result = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={folder}",
             "--include_imports", "--descriptor_set_out=set.pb", file_name],
            capture_output=True, text=True, cwd=folder)
        if result.returncode != 0:
            raise Mismatch(f"protoc rejected the .proto: {result.stderr.strip()}")
        files = descriptor_pb2.FileDescriptorSet.FromString((Path(folder) / "set.pb").read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(message))
    except KeyError:
        raise Mismatch(f"the .proto has no message {message}") from None


@exercise(
    "2.1",
    "Run the protocol compiler",
    notebook=LESSON,
    hint="The cell above the exercise runs protoc on person.proto; generalize its command to "
    "any proto_file and out_dir, then look at result.returncode and result.stderr.",
    second_hint="protoc tells success or failure by its exit code; it may write warnings to "
    "stderr and still succeed. out_dir may already hold files: they are not yours to delete.",
)
def compile_proto(compile_proto: Callable[[Path, Path], list[str]]) -> str:
    with tempfile.TemporaryDirectory() as folder:
        source, out_dir = Path(folder) / "src", Path(folder) / "out"
        source.mkdir()
        out_dir.mkdir()
        (out_dir / "notes.txt").write_text("a file that was here before")
        proto = source / "pinger.proto"
        proto.write_text('syntax = "proto3";\npackage pinger;\nmessage Ping { string text = 1; }\n'
                         "service Pinger { rpc Send(Ping) returns (Ping); }\n")
        try:
            names = compile_proto(proto, out_dir)
        except NotImplementedError:
            raise
        except Exception as error:
            raise Mismatch(f"compile_proto raised {type(error).__name__} for a valid proto in "
                           f"another folder ({str(error).strip()[:200]}): is --proto_path the "
                           "proto file's own folder?") from None
        expected = ["notes.txt", "pinger_pb2.py", "pinger_pb2.pyi", "pinger_pb2_grpc.py"]
        expect(list(names or []) == sorted(names or []), f"compile_proto returned {names!r}; "
               "return the names sorted")
        expect("notes.txt" in [path.name for path in out_dir.iterdir()],
               "notes.txt, a file that was in out_dir before, is gone: compile into out_dir "
               "without emptying it")
        expect_equal(sorted(names or []), expected, "the files compile_proto returned (out_dir "
                     "held notes.txt before)")
        expect(list(names) == sorted(names), f"compile_proto returned {list(names)!r}; "
               "return the names sorted")
        expect_equal(sorted(path.name for path in out_dir.iterdir()), expected,
                     "the files in out_dir")
        expect("class PingerStub" in (out_dir / "pinger_pb2_grpc.py").read_text(),
               "pinger_pb2_grpc.py has no PingerStub: was --grpc_python_out given?")
        (source / "extra.proto").write_text('syntax = "proto3";\npackage extra;\n'
                                            "message Extra {}\n")
        warned = source / "warned.proto"
        warned.write_text('syntax = "proto3";\npackage warned;\nimport "extra.proto";\n'
                          "message Alone { string text = 1; }\n")
        try:
            compile_proto(warned, out_dir)
        except Exception as error:
            raise Mismatch(f"compile_proto raised {type(error).__name__} ({str(error).strip()[:160]}) "
                           "for a proto that compiles with a warning (an unused import): protoc "
                           "succeeded (exit code 0); a warning on stderr is not a failure") from None
        expect((out_dir / "warned_pb2.py").exists(), "warned.proto compiled with a warning, but "
               "warned_pb2.py is not in out_dir")
        broken = source / "broken.proto"
        broken.write_text('syntax = "proto3";\nmessage Broken { string text = ; }\n')
        try:
            compile_proto(broken, out_dir)
        except RuntimeError as error:
            expect("broken.proto:2:" in str(error),
                   f"for a broken .proto the RuntimeError says {str(error).strip()[:200]!r}; it "
                   "should carry protoc's own message (result.stderr), which names "
                   "broken.proto, the line and the problem")
            expect(not str(error).startswith(("b'", 'b"')) and "\\n" not in str(error),
                   f"the RuntimeError says {str(error).strip()[:120]}: that is bytes, not text. "
                   "Ask subprocess for text, or decode protoc's output, so the message reads "
                   "as protoc wrote it")
        except Exception as error:
            raise Mismatch(f"for a broken .proto compile_proto raised {type(error).__name__}"
                           f"({str(error).strip()[:160]}); raise RuntimeError with protoc's own "
                           "message (result.stderr), which says what is wrong and where") from None
        else:
            raise Mismatch("a broken .proto compiled without an error; check result.returncode")
    return ("3 files written next to what out_dir held and all returned; a warning is not an "
            "error; a broken proto raised RuntimeError with protoc's message")


# Field 111, varint 1: no Person has it. Bytes keep it as an unknown field; JSON cannot.
UNKNOWN_FIELD = b"\xf8\x06\x01"


def _people() -> list[Any]:
    return [
        Person(),
        Person(name="Ada", age=36, gender=Person.GENDER_FEMALE, hobbies=["math", "poetry"],
               address=Person.Address(street="12 St James Square", city="London")),
        Person(name="Łukasz Ñúñez 🐍", age=-5, gender=Person.GENDER_OTHER, hobbies=[""]),
        Person(address=Person.Address()),  # an empty address is still set
    ]


def _with_unknown_field() -> Any:
    """A Person written by a newer program: it carries a field this Person does not know."""
    return Person.FromString(Person(name="Lin", age=3).SerializeToString() + UNKNOWN_FIELD)


def _without_unknown_fields(person: Any) -> Any:
    copy = Person()
    copy.CopyFrom(person)
    copy.DiscardUnknownFields()
    return copy


@exercise(
    "2.2",
    "A nested Person, through bytes and JSON",
    notebook=LESSON,
    hint="The cells of \"Messages in Python\" build Ada with a nested Address, and show "
    "SerializeToString/FromString and json_format's two functions.",
    second_hint="A nested message is built from its own class, reached through the outer one; "
    "an enum value through the message class too. Each copy must really go through its format: "
    "one through bytes and back, the other through JSON text and back.",
)
def round_trip(make_person: Callable[[], Any], round_trip: Callable[[Any], tuple]) -> str:
    person = make_person()
    expected = Person(name="Grace Hopper", age=85, gender=Person.GENDER_FEMALE,
                      hobbies=["COBOL", "nanoseconds"],
                      address=Person.Address(street="1 Navy Way", city="Arlington"))
    expect(isinstance(person, Message) and person.DESCRIPTOR.full_name == "person.Person",
           f"make_person() returned {type(person).__name__}, expected a person_pb2.Person")
    for name in ("name", "age", "gender", "hobbies", "address"):
        expect_equal(_plain(person, name), _plain(expected, name), f"make_person().{name}")
    newer = _with_unknown_field()
    for original in [person, *_people(), newer]:
        copies = round_trip(original)
        expect(isinstance(copies, tuple) and len(copies) == 2,
               f"round_trip returned {copies!r}, expected a tuple (from_bytes, from_json)")
        for label, copy, how in zip(("from bytes", "from JSON"), copies,
                                    ("decode the bytes with Person.FromString",
                                     "parse the JSON text with json_format.Parse")):
            expect(isinstance(copy, Message) and copy.DESCRIPTOR.full_name == "person.Person",
                   f"the copy {label} is a {type(copy).__name__}, not a Person: {how}")
            expect(copy is not original, f"the copy {label} is the original object itself; "
                   "decode a new message from the bytes or the JSON text")
        from_bytes, from_json = copies
        expect(from_bytes == original, "the copy from bytes differs from the original:\n"
               f"{_describe(original)}\n{_describe(from_bytes)}")
        if original is newer:
            expect(from_json != original,
                   "the copy from JSON still has the unknown field 111 of a Person written by a "
                   "newer program; JSON cannot carry unknown fields, so that copy did not go "
                   "through JSON (json_format.MessageToJson, then json_format.Parse)")
            original = _without_unknown_fields(original)
        expect(from_json == original, "the copy from JSON differs from the original:\n"
               f"{_describe(original)}\n{_describe(from_json)}")
        expect(from_bytes.HasField("address") == original.HasField("address"),
               "the copy from bytes lost track of whether the address is set")
    return ("the Person is right; 6 people survived bytes and JSON, and JSON dropped the "
            "unknown field of a newer writer, as it must")


_VARINTS = [0, 1, 127, 128, 150, 300, 16383, 16384, 2**31 - 1, 2**32, 2**63, 2**64 - 1]


@exercise(
    "2.3",
    "Decode a varint by hand",
    notebook=LESSON,
    hint="Reread how 150 becomes 96 01: which group of 7 bits comes first, and which bit says "
    "that another byte follows?",
    second_hint="Each byte adds its low 7 bits 7 places further left than the previous one; the "
    "first byte whose high bit is 0 is the last. What if the data ends before that byte?",
)
def varint(decode: Callable[[bytes, int], tuple[int, int]]) -> str:
    for value in _VARINTS:
        data = encode_varint(value)
        expect_equal(decode(data, 0), (value, len(data)),
                     f"decode_varint({data.hex(' ')}, 0), the varint of {value},")
    data = b"\x08" + encode_varint(300) + b"\x2a"
    expect_equal(decode(data, 1), (300, 3), "decode_varint(08 ac 02 2a, 1), starting at byte 1,")
    expect_equal(decode(encode_varint(-1), 0), (2**64 - 1, 10),
                 "decode_varint of int32 -1 (ten bytes)")
    for data, what in [(b"\x96", "96 (one byte whose high bit says another follows)"),
                       (b"\x08\xac", "08 ac, from position 1"),
                       (b"\xff" * 4, "ff ff ff ff")]:
        start = 1 if data.startswith(b"\x08") else 0
        try:
            got = decode(data, start)
        except (IndexError, ValueError):
            continue
        raise Mismatch(f"decode_varint({what}) returned {got!r} for a varint cut short: raise "
                       "an error (IndexError or ValueError) instead of a partial value")
    draw = random.Random(23)
    for _ in range(200):
        value = draw.choice([draw.randrange(2**7), draw.randrange(2**14), draw.randrange(2**35),
                             draw.randrange(2**64)])
        prefix = bytes(draw.randrange(256) for _ in range(draw.randrange(4)))
        data = prefix + encode_varint(value) + bytes(draw.randrange(256) for _ in range(3))
        expect_equal(decode(data, len(prefix)), (value, len(prefix) + len(encode_varint(value))),
                     f"decode_varint({data.hex(' ')}, {len(prefix)})")
    return (f"{len(_VARINTS) + 2} chosen and 200 generated varints of 1 to 10 bytes, at any "
            "position; a varint cut short raises an error")


def size_quiz() -> dict[str, Any]:
    """Exercise 2.4's small messages, by label."""
    return {
        "a": Person(name="Ada"),
        "b": Person(age=36),
        "c": Person(age=150),
        "d": Person(name="Ada", age=36),
        "e": Person(hobbies=["go", "tea"]),
        "f": Person(address=Person.Address(city="Oslo")),
        "g": Person(age=0, gender=Person.GENDER_UNSPECIFIED),
        "h": Person(age=-1),
    }


@exercise(
    "2.4",
    "Predict the size",
    notebook=LESSON,
    hint="A message is only its fields, each a tag and a value; which fields are written at all, "
    "and how long is a varint of 150, or of -1?",
    second_hint="Each set field costs 1 tag byte (field numbers 1-15) plus its value: a varint "
    "is 1 byte up to 127, 2 bytes up to 16383, and 10 bytes for any negative int32; a string or "
    "a nested message costs 1 length byte plus its bytes. Fields equal to their default cost 0.",
)
def sizes(predictions: Callable[[], dict[str, int]]) -> str:
    guesses = predictions()
    computed = _calls_in(predictions)
    expect(not computed, f"predicted_sizes calls {computed}: the exercise is to predict the "
           "sizes, so write each one as a number, worked out by hand")
    quiz = size_quiz()
    expect(isinstance(guesses, dict) and set(guesses) == set(quiz),
           f"predicted_sizes() should return a dict with the keys {sorted(quiz)}, got {guesses!r}")
    wrong = [f"{label}: you said {guesses[label]}, it is {message.ByteSize()}"
             for label, message in quiz.items() if guesses[label] != message.ByteSize()]
    expect(not wrong, f"{len(wrong)} of {len(quiz)} predictions are off: " + "; ".join(wrong))
    return f"all {len(quiz)} predictions match SerializeToString()"


def _calls_in(function: Callable) -> str:
    """The first call in `function`'s source ('' if none, or if the source cannot be read)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return ""
    body = tree.body[0].body if tree.body and hasattr(tree.body[0], "body") else []
    for node in (inner for statement in body for inner in ast.walk(statement)):
        if isinstance(node, ast.Call):
            return ast.unparse(node.func) + "(...)"
    return ""


def _plain(message: Message, name: str) -> Any:
    """A field's value, with repeated fields as a plain list (comparable across classes)."""
    value = getattr(message, name)
    return list(value) if message.DESCRIPTOR.fields_by_name[name].is_repeated else value


def _field(cls: type[Message], name: str) -> FieldDescriptor | None:
    return cls.DESCRIPTOR.fields_by_name.get(name)


def _describe(message: Message) -> str:
    return json_format.MessageToJson(message, indent=None) or "{}"


@exercise(
    "2.5",
    "Evolve a message compatibly",
    notebook=LESSON,
    hint="Start from contacts_v2.proto's text; the cell just above the exercise shows what "
    "protoc says when a deleted field's number is reserved.",
    second_hint="What identifies a field on the wire, and what in JSON? Both must stay out of "
    "reach of future fields once age is gone; the new field needs a number nobody ever used.",
)
def evolution(contact_v3_proto: Callable[[], str]) -> str:
    text = contact_v3_proto()
    expect("package evolution.v3;" in text, "the .proto must say `package evolution.v3;`")
    old = compile_isolated(CONTACT_V2, "contacts_v2.proto", "evolution.v2.Contact")
    new = compile_isolated(text, "contacts_v3.proto", "evolution.v3.Contact")
    for name, number, repeated in (("name", 1, False), ("email", 2, False), ("phones", 4, True)):
        fd = _field(new, name)
        expect(fd is not None and fd.number == number and fd.type == FieldDescriptor.TYPE_STRING
               and fd.is_repeated == repeated,
               f"v3 must keep `{'repeated ' if repeated else ''}string {name} = {number};` "
               "unchanged: old writers and readers still use it")
    expect(_field(new, "age") is None, "v3 still has the field age; remove it")
    birth = _field(new, "birth_year")
    expect(birth is not None and birth.type == FieldDescriptor.TYPE_INT32 and not birth.is_repeated,
           "v3 needs a field `int32 birth_year`")
    expect(birth.number != 3, "birth_year reuses number 3, age's number: an old writer's age 36 "
           "would be read as the birth year 36. Give it a new number and reserve 3")
    reserved = new.DESCRIPTOR
    expect(any(start <= 3 < end for start, end in _reserved_ranges(reserved)),
           "number 3 is not reserved: write `reserved 3;` so nobody reuses it")
    expect("age" in _reserved_names(reserved),
           'the name "age" is not reserved: write `reserved "age";` (JSON and text use names)')

    written_by_old = old(name="Ada", email="ada@example.org", age=36, phones=["+44 20 0000"])
    read_by_new = new.FromString(written_by_old.SerializeToString())
    for name in ("name", "email", "phones"):
        expect_equal(_plain(read_by_new, name), _plain(written_by_old, name),
                     f"v3 reading v2's bytes, field {name},")
    expect_equal(read_by_new.birth_year, 0, "v3 reading v2's age 36, birth_year")

    written_by_new = new(name="Grace", birth_year=1906, phones=["+1 555 0100"])
    read_by_old = old.FromString(written_by_new.SerializeToString())
    expect_equal((read_by_old.name, read_by_old.age, list(read_by_old.phones)),
                 ("Grace", 0, ["+1 555 0100"]), "v2 reading v3's bytes (name, age, phones)")
    passed_on = new.FromString(read_by_old.SerializeToString())
    expect(passed_on == written_by_new,
           "v3 -> v2 -> v3 lost data: " + _describe(passed_on))
    return ("v3 compiles, reserves 3 and \"age\"; v2 and v3 read each other's bytes, "
            "and v2 passes birth_year on untouched")


def _reserved_ranges(descriptor: Any) -> list[tuple[int, int]]:
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return [(r.start, r.end) for r in proto.reserved_range]


def _reserved_names(descriptor: Any) -> list[str]:
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return list(proto.reserved_name)


# ---- 2.6: the challenge, a message's fields by hand ---------------------------------------


def _take(data: bytes, pos: int, size: int) -> tuple[bytes, int]:
    if pos + size > len(data):
        raise ValueError(f"the data ends {pos + size - len(data)} bytes too early")
    return data[pos:pos + size], pos + size


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("the data ends inside a varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        shift, pos = shift + 7, pos + 1
        if not byte & 0x80:
            return value, pos


def reference_fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Exercise 2.6 done: the top-level fields of a serialized message, in order."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _varint_at(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0 is not allowed")
        if wire_type == 0:
            value, pos = _varint_at(data, pos)
        elif wire_type == 1:
            value, pos = _take(data, pos, 8)
        elif wire_type == 2:
            size, pos = _varint_at(data, pos)
            value, pos = _take(data, pos, size)
        elif wire_type == 5:
            value, pos = _take(data, pos, 4)
        else:
            raise ValueError(f"wire type {wire_type} is not one this course reads")
        fields.append((number, wire_type, value))
    return fields


def _field_bytes(number: int, wire_type: int, value: Any) -> bytes:
    key = encode_varint(number << 3 | wire_type)
    if wire_type == 0:
        return key + encode_varint(value)
    if wire_type == 2:
        return key + encode_varint(len(value)) + value
    return key + value


_NUMBERS = st.one_of(st.integers(1, 15), st.integers(16, 2047), st.integers(2048, 2**29 - 1))
_FIELD = st.one_of(
    st.tuples(_NUMBERS, st.just(0), st.integers(0, 2**64 - 1)),
    st.tuples(_NUMBERS, st.just(1), st.binary(min_size=8, max_size=8)),
    st.tuples(_NUMBERS, st.just(2), st.binary(max_size=40)),
    st.tuples(_NUMBERS, st.just(5), st.binary(min_size=4, max_size=4)),
)
_PERSONS = st.builds(Person, name=st.text(max_size=12), age=st.integers(-(2**31), 2**31 - 1),
                     hobbies=st.lists(st.text(max_size=6), max_size=3))
_MESSAGES = st.one_of(
    st.builds(lambda person: person.SerializeToString(), _PERSONS),
    st.builds(lambda fields: b"".join(_field_bytes(*f) for f in fields), st.lists(_FIELD, max_size=5)),
)
_CUT = st.builds(lambda data, cut: data[:max(0, len(data) - cut)], _MESSAGES, st.integers(1, 6))
_WRONG_TYPE = st.builds(lambda number, wire_type: encode_varint(number << 3 | wire_type) + b"\x00",
                        _NUMBERS, st.sampled_from([3, 4, 6, 7]))
# Field number 0 is never valid, whatever its wire type and wherever it comes in the message.
_NUMBER_ZERO = st.builds(lambda before, wire_type, after: before + _field_bytes(
    0, wire_type, {0: 1, 1: bytes(8), 2: b"x", 5: bytes(4)}[wire_type]) + after,
    _MESSAGES, st.sampled_from([0, 1, 2, 5]), _MESSAGES)


def _same_or_both_refused(got: tuple, expected: tuple) -> bool:
    """Equal outcomes; for bad data, IndexError and ValueError both count as refusing it."""
    def refusal(name: str) -> bool:  # ValueError and its kind (WireFormatError, DecodeError)
        return name in ("IndexError", "ValueError") or name.endswith(("FormatError", "DecodeError"))

    if got[0] == expected[0] == "raised":
        return refusal(got[1]) and refusal(expected[1])
    return got == expected


@exercise(
    "2.6",
    "Challenge: the fields of a message, by hand",
    notebook=LESSON,
    hint="Every field starts with a key, which is a varint that holds two things; the wire "
    "type in it says how to find where the field's value ends.",
    second_hint="Field numbers above 15 need a key of more than one byte. Four wire types "
    "carry values you can read; the length of a length-delimited value is itself a varint; "
    "the data may end too early at any point.",
)
def fields_by_hand(fields_of: Callable[[bytes], list]) -> str:
    used = _names_in(fields_of) & {"parse_wire", "wire_text", "inspect_wire", "FromString",
                                   "ParseFromString", "widgets"}
    expect(not used, f"fields_of uses {sorted(used)}: the challenge is to walk the bytes "
           "yourself, not to let a parser do it")
    compared = compare_with_reference(
        fields_of, reference_fields, st.one_of(_MESSAGES, _CUT, _WRONG_TYPE, _NUMBER_ZERO),
        lambda data: f"fields_of({data.hex(' ')[:90]}{'...' if len(data) > 30 else ''})",
        examples=[b"", Person(name="Ada", age=36).SerializeToString(),
                  _field_bytes(16, 0, 1), _field_bytes(300, 2, b"hi"), _field_bytes(7, 1, bytes(8)),
                  _field_bytes(9, 5, b"\x01\x02\x03\x04"), _field_bytes(2, 0, 2**64 - 1),
                  _field_bytes(1, 2, b"abc")[:-1], b"\x96", b"\x0b\x00",
                  b"\x00\x01", _field_bytes(1, 0, 5) + _field_bytes(0, 2, b"hi")],
        max_examples=150, same=_same_or_both_refused)
    return (f"{compared} messages (persons, fields of every wire type and numbers up to 2**29-1, "
            "cut short, with a wire type that cannot be read or a field number 0) give the same "
            "fields as the reference, or are refused")


def _names_in(function: Callable) -> set[str]:
    """The names and attributes `function`'s source mentions (empty if it cannot be read)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return set()
    return ({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
            | {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)})
