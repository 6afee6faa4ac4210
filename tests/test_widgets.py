"""The wire-format inspector: known messages decode to known annotations; junk gives a clear error."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from helpers import protos
from helpers.widgets import (
    WireFormatError,
    decode_varint,
    encode_varint,
    inspect_wire,
    parse_wire,
    wire_text,
)

person_pb2, _ = protos.load("person")
profile_pb2, _ = protos.load("profile")
Person = person_pb2.Person


def rows(fields, depth=0):
    """(depth, number, wire type, name, value) for every field, nested ones included."""
    out = []
    for item in fields:
        out.append((depth, item.field_number, item.wire_type_name, item.name, item.value))
        out.extend(rows(item.children, depth + 1))
    return out


@pytest.mark.parametrize("value, encoded", [
    (0, "00"), (1, "01"), (127, "7f"), (128, "80 01"), (150, "96 01"), (300, "ac 02"),
    (2**64 - 1, "ff ff ff ff ff ff ff ff ff 01"), (-1, "ff ff ff ff ff ff ff ff ff 01"),
])
def test_varints_known_values(value: int, encoded: str) -> None:
    assert encode_varint(value).hex(" ") == encoded
    assert decode_varint(bytes.fromhex(encoded)) == (value % 2**64, len(bytes.fromhex(encoded)))


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_round_trip(value: int) -> None:
    data = b"\x01" + encode_varint(value)
    assert decode_varint(data, 1) == (value, len(data))


def test_a_person_decodes_to_known_annotations_with_a_nested_message() -> None:
    person = Person(name="Ada", age=150, gender=Person.GENDER_FEMALE,
                    address=Person.Address(city="Oslo"))
    assert rows(parse_wire(person)) == [
        (0, 1, "LEN", "name", '"Ada"'),
        (0, 2, "VARINT", "age", "150"),  # a two-byte varint: 96 01
        (0, 3, "VARINT", "gender", "GENDER_FEMALE (2)"),
        (0, 5, "LEN", "address", "Address, 6 bytes"),
        (1, 2, "LEN", "city", '"Oslo"'),
    ]
    fields = parse_wire(person)
    assert fields[1].raw.hex(" ") == "10 96 01"
    assert fields[3].children[0].offset == 12  # offsets count from the outer message


def test_packed_repeated_map_and_well_known_types() -> None:
    profile = profile_pb2.Profile(badges=[3, 270, 86942], labels={"k": "v"}, karma=-2)
    profile.created_at.seconds = 1
    assert rows(parse_wire(profile)) == [
        (0, 2, "LEN", "labels", "LabelsEntry, 6 bytes"),
        (1, 1, "LEN", "key", '"k"'),
        (1, 2, "LEN", "value", '"v"'),
        (0, 5, "VARINT", "karma", "-2"),
        (0, 8, "LEN", "badges", "packed [3, 270, 86942]"),
        (0, 9, "LEN", "created_at", "Timestamp, 2 bytes"),
        (1, 1, "VARINT", "seconds", "1"),
    ]


def test_without_a_schema_fields_are_numbers_and_raw_values() -> None:
    data = Person(name="Ada", age=36).SerializeToString()
    assert rows(parse_wire(data)) == [(0, 1, "LEN", "", '3 bytes: b"Ada"'), (0, 2, "VARINT", "", "36")]


def test_fields_the_schema_does_not_know_are_marked() -> None:
    data = Person(name="Ada").SerializeToString() + b"\x30\x07"  # field 6, varint 7
    assert rows(parse_wire(data, Person.DESCRIPTOR))[-1] == (0, 6, "VARINT", "?", "7")


def test_the_text_is_stable_and_has_a_total() -> None:
    text = wire_text(Person(name="Ada", age=36))
    assert text.splitlines()[1].split() == ["0", "0a", "03", "41", "64", "61", "1", "name", "LEN",
                                            '"Ada"']
    assert text.endswith("7 bytes in total")
    assert text == wire_text(Person(name="Ada", age=36))


def test_the_view_shows_the_whole_table_as_plain_text() -> None:
    person = Person(name="Ada", hobbies=["x" * 40] * 5)
    view = inspect_wire(person)
    assert repr(view) == wire_text(person)
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"] == wire_text(person)  # not cut at 110 characters


@pytest.mark.parametrize("junk, message", [
    (b"\x0a\x05Ad", "field 1 says 5 bytes follow, but only 2 do"),
    (b"\x96", "ends in the middle of a varint"),
    (b"\x0b", "wire type 3 is a group"),
    (b"\x0f", "wire type 7 is invalid"),
    (b"\x00\x01", "field number 0"),
    (b"\x09\x01\x02", "needs 8 bytes"),
    (b"\xff" * 11, "longer than 10 bytes"),
])
def test_bytes_that_are_not_a_message_give_a_clear_error(junk: bytes, message: str) -> None:
    with pytest.raises(WireFormatError, match=message):
        wire_text(junk)


def test_invalid_utf8_in_a_string_field_is_an_error() -> None:
    with pytest.raises(WireFormatError, match="not valid UTF-8"):
        wire_text(b"\x0a\x01\xff", Person.DESCRIPTOR)


@given(st.binary(max_size=40))
def test_any_bytes_either_parse_or_raise_wire_format_error(data: bytes) -> None:
    try:
        wire_text(data, Person.DESCRIPTOR)
    except WireFormatError:
        pass
