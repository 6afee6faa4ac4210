"""See what a protobuf message looks like on the wire (lesson 02).

    print(wire_text(person))   # a stable plain-text table, one row per field
    inspect_wire(person)       # the same as an interactive view in JupyterLab

Every field on the wire is a *tag* (a varint holding `field_number << 3 | wire_type`)
followed by a value whose shape the wire type gives:

    0 VARINT  a varint             (int32, int64, uint*, sint*, bool, enum)
    1 I64     8 bytes, little-endian (fixed64, sfixed64, double)
    2 LEN     a varint length, then that many bytes
              (string, bytes, nested messages, packed repeated numbers)
    5 I32     4 bytes, little-endian (fixed32, sfixed32, float)

With the message's descriptor (given automatically when you pass a message), rows
show field names and decoded values; with bare bytes they show numbers and raw
values. Bytes that are not a valid message raise `WireFormatError`.
"""

from __future__ import annotations

import html
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

WIRE_TYPES = {0: "VARINT", 1: "I64", 2: "LEN", 5: "I32"}
_MAX_VARINT_BYTES = 10
_PREVIEW_BYTES = 8  # bytes shown per row before "…"

F = FieldDescriptor
_VARINT_TYPES = {F.TYPE_INT32, F.TYPE_INT64, F.TYPE_UINT32, F.TYPE_UINT64,
                 F.TYPE_SINT32, F.TYPE_SINT64, F.TYPE_BOOL, F.TYPE_ENUM}
_I64_FORMATS = {F.TYPE_FIXED64: "<Q", F.TYPE_SFIXED64: "<q", F.TYPE_DOUBLE: "<d"}
_I32_FORMATS = {F.TYPE_FIXED32: "<I", F.TYPE_SFIXED32: "<i", F.TYPE_FLOAT: "<f"}


class WireFormatError(ValueError):
    """The bytes are not a valid protobuf message."""


def encode_varint(value: int) -> bytes:
    """Encode an int as a varint: 7 bits per byte, least significant group first,
    high bit set on every byte but the last. Negative ints take 10 bytes (two's complement)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        low7, value = value & 0x7F, value >> 7
        if value:
            out.append(low7 | 0x80)
        else:
            out.append(low7)
            return bytes(out)


def decode_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """Decode the varint starting at `data[pos]`; return `(value, position after it)`."""
    value = shift = 0
    for index in range(pos, min(pos + _MAX_VARINT_BYTES, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index + 1
    if len(data) - pos >= _MAX_VARINT_BYTES:
        raise WireFormatError(f"at byte {pos}: a varint longer than {_MAX_VARINT_BYTES} bytes")
    raise WireFormatError(f"at byte {pos}: the data ends in the middle of a varint")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


@dataclass
class WireField:
    """One field as found on the wire, with the bytes it occupies."""

    offset: int  # where its tag starts, counted from the start of the outermost message
    raw: bytes  # tag, length (for LEN) and value
    field_number: int
    wire_type: int
    name: str  # "" without a schema, "?" for a number the schema does not know
    value: str  # the value, readable
    children: list[WireField] = field(default_factory=list)  # a nested message's fields

    @property
    def wire_type_name(self) -> str:
        return WIRE_TYPES[self.wire_type]


def _varint_value(number: int, fd: FieldDescriptor | None) -> str:
    if fd is None:
        return str(number)
    if fd.type == F.TYPE_BOOL:
        return str(bool(number))
    if fd.type == F.TYPE_ENUM:
        known = fd.enum_type.values_by_number.get(_signed64(number))
        return f"{known.name} ({known.number})" if known else f"{_signed64(number)} (not in enum)"
    if fd.type in (F.TYPE_SINT32, F.TYPE_SINT64):
        return f"{_zigzag(number)} (zigzag {number})"
    if fd.type in (F.TYPE_INT32, F.TYPE_INT64):
        return str(_signed64(number))
    return str(number)


def _fixed_value(payload: bytes, fd: FieldDescriptor | None) -> str:
    formats = _I64_FORMATS if len(payload) == 8 else _I32_FORMATS
    fmt = formats.get(fd.type) if fd is not None else None
    return repr(struct.unpack(fmt, payload)[0]) if fmt else f"0x{payload[::-1].hex()}"


def _len_value(payload: bytes, fd: FieldDescriptor | None, offset: int) -> tuple[str, list]:
    """Describe a LEN payload; nested messages come back as child fields."""
    if fd is not None and fd.type == F.TYPE_STRING:
        try:
            return json.dumps(payload.decode("utf-8"), ensure_ascii=False), []
        except UnicodeDecodeError:
            raise WireFormatError(f"at byte {offset}: field {fd.name} is not valid UTF-8") from None
    if fd is not None and fd.type in (F.TYPE_MESSAGE, F.TYPE_GROUP):
        children = _parse(payload, fd.message_type, offset)
        return f"{fd.message_type.name}, {len(payload)} bytes", children
    if fd is not None and fd.is_repeated and fd.type in _VARINT_TYPES:  # packed
        values, pos = [], 0
        while pos < len(payload):
            number, pos = decode_varint(payload, pos)
            values.append(_varint_value(number, fd))
        return f"packed [{', '.join(values)}]", []
    if fd is not None and fd.is_repeated and fd.type in (_I64_FORMATS.keys() | _I32_FORMATS.keys()):
        width = 8 if fd.type in _I64_FORMATS else 4
        values = [_fixed_value(payload[i:i + width], fd) for i in range(0, len(payload), width)]
        return f"packed [{', '.join(values)}]", []
    preview = payload[:_PREVIEW_BYTES * 2]
    text = f"{len(payload)} bytes"
    if preview.isascii() and preview.decode().isprintable():
        text += f': b"{preview.decode()}"' + ("…" if len(payload) > len(preview) else "")
    return text, []


def _parse(data: bytes, descriptor: Descriptor | None, base: int = 0) -> list[WireField]:
    fields, pos = [], 0
    while pos < len(data):
        start = pos
        key, pos = decode_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        where = f"at byte {base + start}"
        if wire_type not in WIRE_TYPES:
            kind = "a group (deprecated)" if wire_type in (3, 4) else "invalid"
            raise WireFormatError(f"{where}: wire type {wire_type} is {kind}; "
                                  "these bytes are not a protobuf message (or not this one)")
        if number == 0:
            raise WireFormatError(f"{where}: field number 0 is not allowed")
        fd = descriptor.fields_by_number.get(number) if descriptor is not None else None
        name = fd.name if fd is not None else ("?" if descriptor is not None else "")
        children: list[WireField] = []
        if wire_type == 0:
            number_value, pos = decode_varint(data, pos)
            value = _varint_value(number_value, fd)
        elif wire_type == 2:
            length, pos = decode_varint(data, pos)
            if pos + length > len(data):
                raise WireFormatError(f"{where}: field {number} says {length} bytes follow, "
                                      f"but only {len(data) - pos} do")
            value, children = _len_value(data[pos:pos + length], fd, base + pos)
            pos += length
        else:
            width = 8 if wire_type == 1 else 4
            if pos + width > len(data):
                raise WireFormatError(f"{where}: field {number} needs {width} bytes, "
                                      f"only {len(data) - pos} left")
            value = _fixed_value(data[pos:pos + width], fd)
            pos += width
        fields.append(WireField(base + start, data[start:pos], number, wire_type, name, value,
                                children))
    return fields


def parse_wire(data: bytes | Message, descriptor: Descriptor | None = None) -> list[WireField]:
    """Split serialized bytes (or a message, serialized first) into annotated fields."""
    if isinstance(data, Message):
        descriptor = descriptor or data.DESCRIPTOR
        data = data.SerializeToString()
    return _parse(bytes(data), descriptor)


def _rows(fields: list[WireField], depth: int = 0) -> list[tuple[int, WireField]]:
    rows = []
    for item in fields:
        rows.append((depth, item))
        rows.extend(_rows(item.children, depth + 1))
    return rows


def _shown_bytes(item: WireField) -> bytes:
    """A nested message's row shows only its tag and length; its fields have their own rows."""
    if item.children:
        return item.raw[:len(item.raw) - sum(len(child.raw) for child in item.children)]
    return item.raw


def _hex(raw: bytes) -> str:
    shown = raw[:_PREVIEW_BYTES].hex(" ")
    return shown + (" …" if len(raw) > _PREVIEW_BYTES else "")


def wire_text(data: bytes | Message, descriptor: Descriptor | None = None) -> str:
    """A plain-text table of the fields on the wire: offset, bytes, field, wire type, value."""
    fields = parse_wire(data, descriptor)
    total = len(data.SerializeToString()) if isinstance(data, Message) else len(data)
    lines = [f"{'offset':>6}  {'bytes':<27} {'field':<20} {'wire type':<9}  value"]
    for depth, item in _rows(fields):
        label = f"{'  ' * depth}{item.field_number} {item.name}".rstrip()
        lines.append(f"{item.offset:>6}  {'  ' * depth + _hex(_shown_bytes(item)):<27} "
                     f"{label:<20} {item.wire_type_name:<9}  {item.value}")
    lines.append(f"{total} bytes in total")
    return "\n".join(lines)


_COLORS = ["#ddf4ff", "#fff8c5", "#dafbe1", "#ffebe9", "#fbefff", "#fff1e5"]


def _html_dump(data: bytes, rows: list[tuple[int, WireField]], selected: int | None) -> str:
    """Every byte in hex, colored by the top-level field it belongs to; the selected row boxed."""
    owner = {}
    for index, (depth, item) in enumerate(rows):
        if depth == 0:
            for pos in range(item.offset, item.offset + len(item.raw)):
                owner[pos] = index
    box = range(0, 0)
    if selected is not None:
        item = rows[selected][1]
        box = range(item.offset, item.offset + len(item.raw))
    cells = []
    for pos, byte in enumerate(data):
        color = _COLORS[owner.get(pos, 0) % len(_COLORS)]
        border = "outline:2px solid #cf222e;" if pos in box else ""
        cells.append(f'<span style="background:{color};{border}padding:1px 2px">{byte:02x}</span>')
    return f'<div style="font-family:monospace;line-height:1.9">{" ".join(cells)}</div>'


def inspect_wire(data: bytes | Message, descriptor: Descriptor | None = None) -> Any:
    """An interactive view in JupyterLab: pick a field, see its bytes boxed in the hex dump.

    Outside a widget-capable frontend (nbval, a terminal, GitHub) it shows `wire_text`.
    """
    text = wire_text(data, descriptor)
    raw = data.SerializeToString() if isinstance(data, Message) else bytes(data)
    rows = _rows(parse_wire(data, descriptor))
    try:
        import ipywidgets
    except ImportError:  # no widgets: the text alone
        return _Text(text)

    class WireView(ipywidgets.VBox):
        def __repr__(self) -> str:
            return text

        def _repr_mimebundle_(self, **kwargs: Any) -> dict:
            bundle = super()._repr_mimebundle_(**kwargs) or {}
            bundle["text/plain"] = text  # the full table, not ipywidgets' 110-character cut
            return bundle

    labels = [(f"{'  ' * depth}{item.field_number} {item.name} = {item.value}", index)
              for index, (depth, item) in enumerate(rows)]
    picker = ipywidgets.Select(options=labels, value=None, rows=min(len(labels), 10) or 1,
                               layout=ipywidgets.Layout(width="100%"))
    dump = ipywidgets.HTML(_html_dump(raw, rows, None))
    table = ipywidgets.HTML(f"<pre>{html.escape(text)}</pre>")
    picker.observe(lambda change: setattr(dump, "value", _html_dump(raw, rows, change["new"])),
                   names="value")
    return WireView([dump, picker, table])


@dataclass
class _Text:
    text: str

    def __repr__(self) -> str:
        return self.text
