"""Watch real gRPC calls on the wire: a loopback relay that decodes the HTTP/2 frames.

    with wiretap(server.target) as tap:
        with grpc.insecure_channel(tap.target) as channel:
            stub.GetFeature(point, timeout=5)
    tap.show()                   # one line per call
    tap.show(frames=True)        # every frame; stream=1 keeps one call's frames
    tap.calls()[0].status        # the same, as data: grpc.StatusCode.OK

The relay listens on 127.0.0.1 (a port from the OS) and forwards every byte
unchanged, both ways, for any number of connections (sync or grpc.aio channels).
It decodes a copy with hyperframe (frames) and hpack (headers; one decoder per
direction, because HPACK's tables are stateful). Each DATA payload is split into
gRPC's length-prefixed messages, which are decoded with the request and reply
types of the method on `:path` when they can be found (the generated `_pb2`
modules register their services in protobuf's default pool).

What cannot be decoded is recorded as an error entry, and the bytes still pass.
Through TLS there is nothing to decode: the tap shows only how many bytes passed.
"""

from __future__ import annotations

import base64
import gzip
import html
import selectors
import socket
import threading
import time
import urllib.parse
import zlib
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, Callable, Iterable

import grpc
import hpack
from google.protobuf import descriptor_pool, message_factory, text_format
from hyperframe import frame as h2

CLIENT = "client→server"
SERVER = "server→client"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

FRAME_TYPES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
               5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE",
               9: "CONTINUATION", 10: "ALTSVC"}
ERROR_CODES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
SETTINGS = {1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS",
            4: "INITIAL_WINDOW_SIZE", 5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE",
            8: "ENABLE_CONNECT_PROTOCOL"}
STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


def error_code_name(code: int) -> str:
    """HTTP/2's name for an RST_STREAM or GOAWAY error code: 8 -> 'CANCEL'."""
    return ERROR_CODES[code] if 0 <= code < len(ERROR_CODES) else f"0x{code:x}"


# ---- what the tap records ------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """One gRPC message from a DATA payload: its 5-byte prefix and the bytes that followed."""

    direction: str
    compressed: bool  # the prefix's first byte: 1 when the bytes are compressed
    length: int  # the prefix's 4-byte length
    data: bytes  # the bytes on the wire (compressed when `compressed`)
    decoded: Any = None  # the protobuf message, when its type was found and it parsed

    def __str__(self) -> str:
        flag = "compressed" if self.compressed else "uncompressed"
        shown = f"{self.length} B {flag}"
        if self.decoded is not None:
            text = text_format.MessageToString(self.decoded, as_utf8=True, as_one_line=True)
            shown += f": {type(self.decoded).__name__} {{{_short(text, 90)}}}"
        return shown


@dataclass(frozen=True)
class Frame:
    """One HTTP/2 frame as it passed (or an entry for what could not be decoded)."""

    time: float  # seconds since the tap's first frame
    direction: str  # CLIENT or SERVER
    connection: int  # 1 for the first connection through the tap, 2 for the next...
    stream: int  # 0 for the connection itself; a call's stream id otherwise
    type: str  # "HEADERS", "DATA", ..., "TLS" for encrypted bytes, "ERROR" for undecodable
    flags: tuple[str, ...] = ()  # e.g. ("END_STREAM",); ACK on SETTINGS and PING
    length: int = 0  # payload bytes
    headers: tuple[tuple[str, str], ...] = ()  # decoded header block (HEADERS, CONTINUATION)
    messages: tuple[Message, ...] = ()  # gRPC messages completed by this DATA frame
    detail: str = ""  # RST_STREAM/GOAWAY error code, SETTINGS values, WINDOW_UPDATE increment
    error: str = ""  # why this frame (or its content) could not be decoded

    def __str__(self) -> str:
        flags = f" [{' '.join(self.flags)}]" if self.flags else ""
        line = f"{self.direction}  stream {self.stream}  {self.type}{flags}"
        if self.type == "DATA":
            line += f"  {self.length} B"
        for extra in (self.detail, self.error and f"error: {self.error}"):
            if extra:
                line += f"  {extra}"
        lines = [line] + [f"    {name}: {_short(value, 100)}" for name, value in self.headers]
        lines += [f"    message {message}" for message in self.messages]
        return "\n".join(lines)


@dataclass
class Call:
    """One stream of one connection: what a single gRPC call sent and received."""

    connection: int
    stream: int
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    requests: list[Message] = field(default_factory=list)
    replies: list[Message] = field(default_factory=list)
    half_closed: bool = False  # the client sent END_STREAM: no more requests
    trailers_only: bool = False  # the server answered with one HEADERS frame: the trailers
    reset: str | None = None  # the RST_STREAM error code name, e.g. "CANCEL"
    reset_by: str | None = None  # CLIENT or SERVER
    frames: list[Frame] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The method called: '/package.Service/Method'."""
        return self.request_headers.get(":path", "")

    @property
    def status(self) -> grpc.StatusCode | None:
        """The status from the trailers' grpc-status, None when none arrived."""
        value = self.trailers.get("grpc-status")
        return STATUS_CODES.get(int(value)) if value and value.isdigit() else None

    @property
    def message(self) -> str:
        """The trailers' grpc-message, percent-decoded."""
        return urllib.parse.unquote(self.trailers.get("grpc-message", ""))

    @property
    def status_details(self) -> Any:
        """The trailers' grpc-status-details-bin (a rich error) as a google.rpc.Status, or None."""
        value = self.trailers.get("grpc-status-details-bin")
        if value is None:
            return None
        from google.rpc import status_pb2

        return status_pb2.Status.FromString(binary_value(value))

    @property
    def end(self) -> str:
        """How the call ended: its status (and message), a reset, or 'no status yet'."""
        if self.status is not None:
            end = self.status.name + (f" {self.message!r}" if self.message else "")
            return end + (" (trailers only)" if self.trailers_only else "")
        if self.reset:
            return f"RST_STREAM {self.reset} from the {_side(self.reset_by)}"
        return "no status yet"

    def __str__(self) -> str:
        return (f"stream {self.stream}  {self.path or '?'}  → {_count(self.requests)}  "
                f"← {_count(self.replies)}  {self.end}")


def _side(direction: str | None) -> str:
    return "client" if direction == CLIENT else "server"


def _count(messages: list[Message]) -> str:
    total = sum(message.length for message in messages)
    return f"{len(messages)} message{'s' * (len(messages) != 1)} ({total} B)"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def calls_of(frames: Iterable[Frame]) -> list[Call]:
    """Group frames into calls, one per (connection, stream), in the order they started."""
    calls: dict[tuple[int, int], Call] = {}
    for frame in frames:
        if frame.stream == 0 or frame.type in ("TLS", "ERROR"):
            continue
        call = calls.setdefault((frame.connection, frame.stream),
                                Call(frame.connection, frame.stream))
        call.frames.append(frame)
        headers: dict[str, str] = {}
        for name, value in frame.headers:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if frame.direction == CLIENT:
            call.request_headers = call.request_headers or headers
            call.requests += frame.messages
            call.half_closed |= "END_STREAM" in frame.flags
        else:
            if headers and "grpc-status" not in headers and not call.response_headers:
                call.response_headers = headers
            elif headers:
                call.trailers = headers
                call.trailers_only = not call.response_headers
            call.replies += frame.messages
        if frame.type == "RST_STREAM":
            call.reset, call.reset_by = frame.detail, frame.direction
    return list(calls.values())


# ---- decoding ------------------------------------------------------------------------------

class MethodTypes:
    """Finds a method's request and reply classes from its path, in modules or the default pool."""

    def __init__(self, modules: Iterable[ModuleType] = ()) -> None:
        self.modules = list(modules)
        self._found: dict[str, tuple[type, type] | None] = {}

    def __call__(self, path: str) -> tuple[type, type] | None:
        if path not in self._found:
            self._found[path] = self._find(path)
        return self._found[path]

    def _find(self, path: str) -> tuple[type, type] | None:
        service_name, _, method_name = path.lstrip("/").rpartition("/")
        services = [service for module in self.modules
                    for service in module.DESCRIPTOR.services_by_name.values()]
        try:
            services.append(descriptor_pool.Default().FindServiceByName(service_name))
        except KeyError:
            pass
        for service in services:
            method = service.methods_by_name.get(method_name)
            if service.full_name == service_name and method is not None:
                return (message_factory.GetMessageClass(method.input_type),
                        message_factory.GetMessageClass(method.output_type))
        return None


TRUE_BINARY = "(binary) "


def _header(name: bytes, value: bytes) -> tuple[str, str]:
    """A header as text. A `-bin` value is base64 text, or, when both peers announced support
    (SETTINGS 0xfe03), raw bytes after a 0 byte: shown as '(binary) ' and their hex."""
    if name.endswith(b"-bin") and value.startswith(b"\x00"):
        return name.decode("ascii", "replace"), TRUE_BINARY + value[1:].hex(" ")
    return name.decode("ascii", "replace"), value.decode("utf-8", "replace")


def binary_value(value: str) -> bytes:
    """The bytes of a `-bin` header value as Call and Frame show it (either form)."""
    if value.startswith(TRUE_BINARY):
        return bytes.fromhex(value[len(TRUE_BINARY):])
    return base64.b64decode(value + "=" * (-len(value) % 4))


@dataclass
class _Stream:
    """What decoding one stream needs to remember between frames."""

    path: str = ""
    encoding: dict[str, str] = field(default_factory=dict)  # grpc-encoding per direction
    header_block: dict[str, bytes] = field(default_factory=dict)  # until END_HEADERS
    pending: dict[str, bytearray] = field(default_factory=dict)  # message bytes so far


class Decoder:
    """Decodes the bytes of one connection, both directions, into Frames.

    `feed(direction, data)` takes the bytes as they pass and returns the frames
    they completed. It never raises: what it cannot decode becomes an ERROR frame,
    and a direction whose frame boundaries are lost stops being decoded.
    """

    def __init__(self, connection: int = 1, method_types: MethodTypes | None = None) -> None:
        self.connection = connection
        self.method_types = method_types or MethodTypes()
        self.now = 0.0  # the time given to feed(), stamped on its frames
        self.mode = "start"  # then "h2", "tls" or "unknown" once the client's first bytes came
        self.buffers = {CLIENT: bytearray(), SERVER: bytearray()}
        self.hpack = {CLIENT: hpack.Decoder(), SERVER: hpack.Decoder()}
        for decoder in self.hpack.values():
            decoder.max_header_list_size = 1 << 24
        self.lost = {CLIENT: False, SERVER: False}  # frame boundaries lost: stop decoding
        self.hpack_broken = {CLIENT: False, SERVER: False}
        self.streams: dict[int, _Stream] = {}

    def feed(self, direction: str, data: bytes, now: float = 0.0) -> list[Frame]:
        """Decode `data`, which went in `direction` at time `now`; return the frames it ended."""
        self.now = now
        try:
            return self._feed(direction, data)
        except Exception as error:  # noqa: BLE001 (a decoder bug must never stop the relay)
            self.lost[direction] = True
            return [self._entry(direction, "ERROR", error=f"decoder failed: {error!r}")]

    def _entry(self, direction: str, type_: str, stream: int = 0, **fields: Any) -> Frame:
        return Frame(self.now, direction, self.connection, stream, type_, **fields)

    def _feed(self, direction: str, data: bytes) -> list[Frame]:
        if self.mode == "tls":
            return [self._entry(direction, "TLS", length=len(data),
                                detail=f"{len(data)} bytes, encrypted")]
        if self.lost[direction]:
            return []
        self.buffers[direction] += data
        frames: list[Frame] = []
        if self.mode == "start":
            frames += self._read_preface()
        if self.mode == "h2":
            for side in (CLIENT, SERVER):  # the server may have spoken before the preface came
                while not self.lost[side] and (frame := self._next_frame(side)) is not None:
                    frames.append(frame)
        return frames

    def _read_preface(self) -> list[Frame]:
        start = bytes(self.buffers[CLIENT][: len(PREFACE)])
        if start[:1] == b"\x16":  # a TLS record: handshake
            self.mode = "tls"
            frames = []
            for side in (CLIENT, SERVER):
                if self.buffers[side]:
                    frames += self._feed(side, bytes(self.buffers[side]))
                    self.buffers[side].clear()
            return frames
        if PREFACE.startswith(start) and len(start) < len(PREFACE):
            return []  # not all of the preface has arrived yet
        if start == PREFACE:
            self.mode = "h2"
            del self.buffers[CLIENT][: len(PREFACE)]
            return []
        self.mode = "unknown"
        self.lost = {CLIENT: True, SERVER: True}
        return [self._entry(CLIENT, "ERROR", length=len(self.buffers[CLIENT]),
                            error=f"not HTTP/2: the client's first bytes are {start[:12]!r}, "
                                  "not the connection preface")]

    def _next_frame(self, direction: str) -> Frame | None:
        buffer = self.buffers[direction]
        if len(buffer) < 9:
            return None
        try:
            frame, length = h2.Frame.parse_frame_header(memoryview(bytes(buffer[:9])))
        except Exception as error:  # noqa: BLE001
            self.lost[direction] = True
            return self._entry(direction, "ERROR", error=f"not an HTTP/2 frame header "
                               f"({buffer[:9].hex(' ')}): {error}; decoding stops here")
        if len(buffer) < 9 + length:
            return None
        body = bytes(buffer[9: 9 + length])
        del buffer[: 9 + length]
        kind = FRAME_TYPES.get(frame.type, f"UNKNOWN(0x{frame.type:x})")
        try:
            frame.parse_body(memoryview(body))
            return self._describe(direction, frame, kind, length)
        except Exception as error:  # noqa: BLE001
            return self._entry(direction, kind, frame.stream_id, length=length,
                               error=f"cannot decode this {kind} frame: {error}")

    def _describe(self, direction: str, frame: h2.Frame, kind: str, length: int) -> Frame:
        flags = tuple(flag.name for flag in frame.defined_flags if flag.name in frame.flags)
        fields: dict[str, Any] = {"flags": flags, "length": length}
        stream = self.streams.setdefault(frame.stream_id, _Stream()) if frame.stream_id else None
        if isinstance(frame, (h2.HeadersFrame, h2.ContinuationFrame)) and stream is not None:
            block = stream.header_block.pop(direction, b"") + frame.data
            if "END_HEADERS" in frame.flags:
                fields.update(self._headers(direction, stream, block))
            else:
                stream.header_block[direction] = block
        elif isinstance(frame, h2.DataFrame) and stream is not None:
            fields.update(self._messages(direction, stream, frame.data))
        elif isinstance(frame, h2.RstStreamFrame):
            fields["detail"] = error_code_name(frame.error_code)
        elif isinstance(frame, h2.GoAwayFrame):
            debug = frame.additional_data.decode("utf-8", "replace")
            fields["detail"] = (f"{error_code_name(frame.error_code)} last stream "
                                f"{frame.last_stream_id}" + (f" {debug!r}" if debug else ""))
        elif isinstance(frame, h2.WindowUpdateFrame):
            fields["detail"] = f"+{frame.window_increment}"
        elif isinstance(frame, h2.SettingsFrame):
            fields["detail"] = " ".join(f"{SETTINGS.get(key, f'0x{key:x}')}={value}"
                                        for key, value in frame.settings.items())
            if 1 in frame.settings:  # the peer's table size limits the other direction's encoder
                other = SERVER if direction == CLIENT else CLIENT
                self.hpack[other].max_allowed_table_size = frame.settings[1]
        elif isinstance(frame, h2.PingFrame):
            fields["detail"] = f"data {frame.opaque_data.hex()}"
        return self._entry(direction, kind, frame.stream_id, **fields)

    def _headers(self, direction: str, stream: _Stream, block: bytes) -> dict[str, Any]:
        if self.hpack_broken[direction]:
            return {"error": "headers not decoded: an earlier header block failed (HPACK "
                             "tables are shared by all the headers of a direction)"}
        try:
            headers = tuple(_header(name, value)
                            for name, value in self.hpack[direction].decode(block, raw=True))
        except Exception as error:  # noqa: BLE001
            self.hpack_broken[direction] = True
            return {"error": f"cannot decode the header block: {error!r}"}
        for name, value in headers:
            if name == ":path":
                stream.path = value
            elif name == "grpc-encoding":
                stream.encoding[direction] = value
        return {"headers": headers}

    def _messages(self, direction: str, stream: _Stream, data: bytes) -> dict[str, Any]:
        pending = stream.pending.setdefault(direction, bytearray())
        pending += data
        messages = []
        while len(pending) >= 5 and len(pending) >= 5 + int.from_bytes(pending[1:5], "big"):
            length = int.from_bytes(pending[1:5], "big")
            compressed, body = pending[0] == 1, bytes(pending[5: 5 + length])
            del pending[: 5 + length]
            messages.append(Message(direction, compressed, length, body,
                                    self._decode(direction, stream, compressed, body)))
        return {"messages": tuple(messages)}

    def _decode(self, direction: str, stream: _Stream, compressed: bool, body: bytes) -> Any:
        types = self.method_types(stream.path) if stream.path else None
        if types is None:
            return None
        try:
            if compressed:
                encoding = stream.encoding.get(direction, "")
                body = gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body)
            return types[direction == SERVER].FromString(body)
        except Exception:  # noqa: BLE001 (not this type, or not decompressible: keep it raw)
            return None


# ---- the relay -----------------------------------------------------------------------------

@dataclass
class _Pipe:
    """One direction of one connection: bytes read from `source` wait in `out` for `sink`."""

    direction: str
    source: socket.socket
    sink: socket.socket
    out: bytearray = field(default_factory=bytearray)
    eof: bool = False  # source said it will send nothing more
    shut: bool = False  # and that was passed on to sink


@dataclass
class _Link:
    """One connection through the tap: the client's socket and ours to the server."""

    number: int
    decoder: Decoder
    pipes: list[_Pipe]


class Wiretap:
    """A loopback relay in front of `target` that records the HTTP/2 frames passing through.

    Use `wiretap(target)`; connect channels to `tap.target`.
    """

    def __init__(self, target: str, modules: Iterable[ModuleType] = (),
                 decode: bool = True) -> None:
        host, port = target.rsplit(":", 1)
        self.upstream = (host.strip("[]"), int(port))
        self.method_types = MethodTypes(modules)
        self.decode = decode  # False: only count connections and bytes
        self.connections = 0  # how many connections came through
        self.up = self.down = 0  # bytes forwarded client→server and server→client
        self._frames: list[Frame] = []
        self._start: float | None = None
        self._last_activity = time.monotonic()
        self._changed = threading.Condition()
        self._selector = selectors.DefaultSelector()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self._port: int = self._listener.getsockname()[1]
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._links: dict[socket.socket, _Link] = {}
        self._handed: list[tuple[socket.socket, socket.socket]] = []  # from relay(), to link
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="wiretap", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The relay's port on 127.0.0.1, picked by the OS."""
        return self._port

    @property
    def target(self) -> str:
        """Where channels connect: '127.0.0.1:PORT'."""
        return f"127.0.0.1:{self._port}"

    # ---- reading what passed

    @property
    def frames(self) -> list[Frame]:
        """Every frame so far, in the order the tap saw them."""
        with self._changed:
            return list(self._frames)

    def calls(self) -> list[Call]:
        """One Call per stream so far.

        The tap decodes bytes before passing them on, so whatever a client or server has
        received is already here. What was sent after it (a client's RST_STREAM after a
        cancel) may still be on its way: `wait_for` or `wait_idle` wait for it.
        """
        return calls_of(self.frames)

    def wait_idle(self, timeout: float = 2.0, quiet: float = 0.05) -> bool:
        """Wait until no bytes have passed for `quiet` seconds, at most `timeout`; True if so."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = time.monotonic()
                idle_at = self._last_activity + quiet
                if now >= idle_at:
                    return True
                if now >= deadline:
                    return False
                self._changed.wait(min(idle_at, deadline) - now)

    def wait_for(self, condition: Callable[[], Any], timeout: float = 2.0) -> bool:
        """Wait until `condition()` is true, at most `timeout` seconds; True if it became so.

        `tap.wait_for(lambda: tap.calls()[-1].reset)` waits for a cancelled call's RST_STREAM.
        """
        deadline = time.monotonic() + timeout
        with self._changed:  # a re-entrant lock: condition() may read tap.frames
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def reset(self) -> None:
        """Forget the frames and byte counts so far (connections stay open)."""
        with self._changed:
            self._frames.clear()
            self._start = None
            self.up = self.down = 0

    def show(self, stream: int | None = None, frames: bool = False,
             connection: int | None = None, types: Iterable[str] | None = None) -> None:
        """Display the capture: a timeline (HTML) and one line per call (plain text).

        `frames=True` lists every frame in the text instead. `stream`, `connection` and
        `types` (e.g. ["HEADERS", "DATA"]) keep only the frames of that stream id,
        connection number and frame types. The text has no times, so it is the same
        on every run for the same calls; the timeline has them.
        """
        self.wait_idle()
        view = WiretapView(self.frames, stream=stream, frames=frames, connection=connection,
                           types=types)
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            print(view.text())
            return
        if get_ipython() is None:
            print(view.text())
        else:
            display(view)

    # ---- the relay thread

    def _record(self, link: _Link, direction: str, data: bytes) -> None:
        with self._changed:
            now = time.monotonic()
            if self._start is None:
                self._start = now
            if direction == CLIENT:
                self.up += len(data)
            else:
                self.down += len(data)
            frames = link.decoder.feed(direction, data, now - self._start) if self.decode else []
            for frame in frames:
                last = self._frames[-1] if self._frames else None
                if (frame.type == "TLS" and last is not None and last.type == "TLS"
                        and (last.connection, last.direction) == (frame.connection, direction)):
                    length = last.length + frame.length  # one entry per turn of the handshake
                    frame = replace(last, length=length, detail=f"{length} bytes, encrypted")
                    self._frames.pop()
                self._frames.append(frame)
            self._last_activity = now
            self._changed.notify_all()

    def _note(self, text: str) -> None:
        with self._changed:
            now = time.monotonic()
            self._start = self._start or now
            self._frames.append(Frame(now - self._start, CLIENT, self.connections, 0, "ERROR",
                                      error=text))
            self._last_activity = now
            self._changed.notify_all()

    def _run(self) -> None:
        try:
            while not self._closing:
                for key, events in self._selector.select():
                    sock = key.fileobj
                    if sock is self._listener:
                        self._accept()
                    elif sock is self._wake_reader:
                        self._wake_reader.recv(64)
                        self._link_handed()
                    elif sock in self._links:  # it may have been closed by an earlier event
                        self._serve(self._links[sock], sock, events)  # type: ignore[arg-type]
        finally:
            for link in {id(link): link for link in self._links.values()}.values():
                self._drop(link)
            with self._changed:
                self._closing = True
                for pair in self._handed:
                    for sock in pair:
                        sock.close()
                self._handed.clear()
            for sock in (self._listener, self._wake_reader, self._wake_writer):
                sock.close()
            self._selector.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except BlockingIOError:
                return
            self.connections += 1
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError as error:
                client.close()
                self._note(f"connection {self.connections}: cannot reach {self.upstream}: {error}")
                continue
            self._link(client, server)

    def relay(self, client: socket.socket, server: socket.socket) -> None:
        """Relay and record the bytes between two connected sockets, a client's and one to
        its server, like a connection the tap accepted itself. Safe from any thread.

        The hook for a relay that picks its server per connection (an HTTP CONNECT proxy).
        """
        with self._changed:
            if self._closing:
                client.close()
                server.close()
                return
            self._handed.append((client, server))
        try:
            self._wake_writer.send(b"x")
        except OSError:  # closed meanwhile: close() closes what was handed
            pass

    def _link_handed(self) -> None:
        with self._changed:
            handed, self._handed = self._handed, []
        for client, server in handed:
            self._link(client, server)

    def _link(self, client: socket.socket, server: socket.socket) -> None:
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        decoder = Decoder(self.connections, self.method_types)
        link = _Link(self.connections, decoder,
                     [_Pipe(CLIENT, client, server), _Pipe(SERVER, server, client)])
        self._links[client] = self._links[server] = link
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(server, selectors.EVENT_READ)

    def _serve(self, link: _Link, sock: socket.socket, events: int) -> None:
        try:
            for pipe in link.pipes:
                if pipe.source is sock and events & selectors.EVENT_READ:
                    data = sock.recv(1 << 18)
                    if data:
                        self._record(link, pipe.direction, data)
                        pipe.out += data
                    else:
                        pipe.eof = True
                if pipe.sink is sock or pipe.source is sock:
                    self._flush(pipe)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # a reset connection: close both sides
            self._drop(link)
            return
        if all(pipe.shut for pipe in link.pipes):
            self._drop(link)
            return
        self._watch(link)

    def _flush(self, pipe: _Pipe) -> None:
        if pipe.out:
            sent = pipe.sink.send(pipe.out)
            del pipe.out[:sent]
        if pipe.eof and not pipe.out and not pipe.shut:
            pipe.sink.shutdown(socket.SHUT_WR)
            pipe.shut = True

    def _watch(self, link: _Link) -> None:
        """Read from a source only when its bytes have been passed on (backpressure),
        and not at all once it has ended; write only when there is something to write."""
        for sock in (link.pipes[0].source, link.pipes[1].source):
            events = 0
            for pipe in link.pipes:
                if pipe.source is sock and not pipe.eof and not pipe.out:
                    events |= selectors.EVENT_READ
                if pipe.sink is sock and pipe.out:
                    events |= selectors.EVENT_WRITE
            watched = sock in self._selector.get_map()
            if events and watched:
                self._selector.modify(sock, events)
            elif events:
                self._selector.register(sock, events)
            elif watched:  # a half-closed side with nothing to send: no busy loop on its EOF
                self._selector.unregister(sock)

    def _drop(self, link: _Link) -> None:
        for pipe in link.pipes:
            sock = pipe.source
            self._links.pop(sock, None)
            if sock.fileno() != -1 and sock in self._selector.get_map():
                self._selector.unregister(sock)
            sock.close()

    # ---- lifetime

    def close(self) -> None:
        """Stop relaying: close every connection and the listening socket, end the thread."""
        if not self._closing:
            self._closing = True
            try:
                self._wake_writer.send(b"x")
            except OSError:
                pass
        self._thread.join(10)

    def __enter__(self) -> Wiretap:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def wiretap(target: str, modules: Iterable[ModuleType] = (), decode: bool = True) -> Wiretap:
    """Start a relay in front of the server at `target`; connect channels to `tap.target`.

    `modules`: generated `_pb2` modules whose messages to decode (those already
    imported are usually found anyway, in protobuf's default descriptor pool).
    `decode=False` only counts: `tap.connections`, `tap.up` and `tap.down` (bytes).
    """
    return Wiretap(target, modules, decode)


# ---- showing a capture ---------------------------------------------------------------------

_LABEL_CHARS = 88  # what fits between the lanes at 11 px monospace (about 6.6 px a character)
_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]
_MAX_DRAWN = 300


class WiretapView:
    """A capture to display: text/plain (stable: no times) and text/html (a timeline + the text).

    Hover over an arrow of the timeline to see the whole frame.
    """

    def __init__(self, captured: list[Frame], stream: int | None = None, frames: bool = False,
                 connection: int | None = None, types: Iterable[str] | None = None) -> None:
        self.show_frames = frames
        kept = None if types is None else set(types)
        self.frames = [f for f in captured
                       if (stream is None or f.stream == stream)
                       and (connection is None or f.connection == connection)
                       and (kept is None or f.type in kept)]
        self.several = len({f.connection for f in captured}) > 1

    def _prefix(self, connection: int) -> str:
        return f"connection {connection}  " if self.several else ""

    def text(self) -> str:
        calls = calls_of(self.frames)
        lines = [f"{self._prefix(call.connection)}{call}" for call in calls]
        other = [f for f in self.frames if f.stream == 0 or f.type in ("TLS", "ERROR")]
        if self.show_frames:
            lines = [f"{self._prefix(f.connection)}{f}" for f in self.frames]
        else:
            tls = [f for f in other if f.type == "TLS"]
            if tls:
                lines.append(f"TLS: {sum(f.length for f in tls)} bytes, encrypted: "
                             "nothing to decode")
            lines += [f"{self._prefix(f.connection)}{f}" for f in other if f.type == "ERROR"]
        return "\n".join(lines) or "no frames captured"

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text())

    def _repr_html_(self) -> str:
        """The timeline, then the same text as text/plain (JupyterLab shows only this one)."""
        return (f"<div class='wiretap'>{timeline_svg(self.frames)}"
                f"<pre>{html.escape(self.text())}</pre></div>")


def _label(frame: Frame) -> str:
    label = frame.type + (f" [{' '.join(frame.flags)}]" if frame.flags else "")
    headers = dict(frame.headers)
    for name in (":path", ":status", "grpc-timeout", "grpc-status", "grpc-message"):
        if name in headers:
            label += f" {name}: {_short(headers[name], 40)}"
    if frame.messages:
        label += " " + ", ".join(f"{m.length} B message" for m in frame.messages)
    elif frame.type == "DATA":
        label += f" {frame.length} B"
    return label + (f" {frame.detail}" if frame.detail and frame.type != "TLS" else "") + (
        " (not decoded)" if frame.error else "")


def timeline_svg(frames: list[Frame]) -> str:
    """An SVG sequence diagram: client lane left, server lane right, an arrow per frame.

    A label longer than the space between the lanes is cut with '…'; hovering over its
    arrow shows the whole frame.
    """
    drawn = frames[:_MAX_DRAWN]
    left, right, top, step, width = 100, 700, 30, 26, 800
    height = top + step * len(drawn) + 20
    parts = [f"<svg class='wiretap-timeline' xmlns='http://www.w3.org/2000/svg' "
             f"width='{width}' height='{height}' "
             "font-family='monospace' font-size='11'>",
             f"<text x='{left}' y='15' text-anchor='middle' font-weight='bold'>client</text>",
             f"<text x='{right}' y='15' text-anchor='middle' font-weight='bold'>server</text>",
             f"<line x1='{left}' y1='20' x2='{left}' y2='{height}' stroke='#999'/>",
             f"<line x1='{right}' y1='20' x2='{right}' y2='{height}' stroke='#999'/>"]
    for row, frame in enumerate(drawn):
        y = top + step * row + 14
        start, end = (left, right) if frame.direction == CLIENT else (right, left)
        colour = "#888" if frame.stream == 0 else _COLOURS[frame.stream // 2 % len(_COLOURS)]
        if frame.error or frame.type == "ERROR":
            colour = "#e00"
        tip = html.escape(str(frame), quote=True)
        label = f"stream {frame.stream}: {_label(frame)}"
        head = end - 6 if end > start else end + 6
        parts.append(
            f"<g><title>{tip}</title>"
            f"<text x='4' y='{y + 3}' fill='#666'>+{frame.time * 1000:.1f} ms</text>"
            f"<line x1='{start}' y1='{y}' x2='{end}' y2='{y}' stroke='{colour}' "
            f"stroke-width='1.5'/><polygon points='{end},{y} {head},{y - 4} {head},{y + 4}' "
            f"fill='{colour}'/><text x='{(left + right) // 2}' y='{y - 4}' text-anchor='middle' "
            f"fill='{colour}'>{html.escape(_short(label, _LABEL_CHARS))}</text></g>")
    if len(frames) > len(drawn):
        parts.append(f"<text x='{left}' y='{height - 4}'>… and {len(frames) - len(drawn)} "
                     "more frames</text>")
    return "".join(parts) + "</svg>"
