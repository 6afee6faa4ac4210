"""A request explorer for any gRPC server with reflection on (grpcui, in a notebook).

    explore(server.target)    # in JupyterLab: pick a method, fill the form, Send

It asks the server's reflection service for its services and message
descriptors (as helpers/grpcurl.py does), builds a form from the request
message's descriptor, and shows the reply as JSON with the status, the
metadata and the time taken. Unary and server-streaming methods only.

The parts are plain functions, usable without a browser:

    services = load_services(target)                    # {"users.UserService": ServiceDescriptor}
    method = services["users.UserService"].methods_by_name["GetUser"]
    form = form_for(method.input_type)                  # one input per field
    form.fields["id"].input.value = "1"
    result = call(target, method, request_from(form), timeout=5)
    result.code, result.replies                         # "OK", ['{"id": "1", ...}']

The form, field by field: strings, bytes (base64) and 64-bit integers in a text
box; other integers and floats in number boxes; bools as a checkbox; enums as a
drop-down of value names; a nested message as an indented box of its own
fields; repeated scalars one value per line; repeated messages, maps and
well-known types (Timestamp, Duration, ...) as their JSON. A field with
presence (`optional`, or in a `oneof`) can be left "(not set)". Fields left at
their default (0, "", false, the first enum value) are not sent, which is the
same thing on the wire; a nested message is sent when one of its fields is set.

The explorer makes blocking calls from the kernel. A grpc.aio server started in
the same kernel cannot answer them (lesson 07): explore a sync server, or an aio
server running in another process.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2  # noqa: F401 (error details decode as JSON)

from helpers import grpcurl
from helpers.grpcurl import reflection, signature

F = FieldDescriptor
NOT_SET = "(not set)"
MAX_DEPTH = 3  # nested message boxes deeper than this are edited as JSON
MAX_SHOWN = 100  # replies of a stream shown in the widget (the result keeps them all)
_TYPE_NAMES = {value: name[5:].lower() for name, value in vars(F).items()
               if name.startswith("TYPE_")}  # F.TYPE_INT64 -> "int64"
_INT32 = {F.TYPE_INT32, F.TYPE_UINT32, F.TYPE_SINT32, F.TYPE_FIXED32, F.TYPE_SFIXED32}
_FLOAT = {F.TYPE_FLOAT, F.TYPE_DOUBLE}


class BadInput(ValueError):
    """What the learner typed does not make a valid request."""


# Talking to the server ----------------------------------------------------------------


def load_services(target: str) -> dict[str, ServiceDescriptor]:
    """The services of the server at `target` by full name, their descriptors fetched
    through reflection. Raises grpc.RpcError (UNIMPLEMENTED: no reflection)."""
    with grpc.insecure_channel(target) as channel:
        database, pool = reflection(channel)
        return {name: pool.FindServiceByName(name) for name in sorted(database.get_services())}


def why_not_loaded(error: Exception) -> str:
    """A sentence for a failure of `load_services`."""
    code = error.code() if isinstance(error, grpc.RpcError) else None
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return "the server has no reflection service (add it with reflection.enable_server_reflection)"
    if code == grpc.StatusCode.UNAVAILABLE:
        return "no server answers at this address (UNAVAILABLE)"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the server did not answer within {grpcurl.REFLECTION_TIMEOUT:g} s (DEADLINE_EXCEEDED)"
    if code is not None:
        return f"reflection failed with {code.name}: {error.details()}"
    return f"reflection failed: {type(error).__name__}: {error}"


@dataclass
class CallResult:
    """What one call gave back; `replies` holds one JSON text per reply message."""

    code: str  # a grpc.StatusCode name: "OK", "NOT_FOUND", ...
    details: str
    replies: list[str] = field(default_factory=list)
    initial_metadata: list[tuple[str, str]] = field(default_factory=list)
    trailing_metadata: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """One line: the status code, its details, and the time taken."""
        details = f": {self.details}" if self.details else ""
        return f"{self.code}{details} ({self.seconds * 1000:.1f} ms)"

    def text(self) -> str:
        """The replies and metadata as plain text."""
        def lines(pairs: list[tuple[str, str]]) -> str:
            return "\n".join(f"  {key}: {value}" for key, value in pairs) or "  (none)"
        count = {0: "no reply", 1: "1 reply:"}.get(len(self.replies), f"{len(self.replies)} replies:")
        shown = "".join("\n" + reply for reply in self.replies[:MAX_SHOWN])
        if len(self.replies) > MAX_SHOWN:
            shown += f"\n... and {len(self.replies) - MAX_SHOWN} more"
        return (count + shown + "\n\n"
                f"initial metadata:\n{lines(self.initial_metadata)}\n"
                f"trailing metadata:\n{lines(self.trailing_metadata)}")


def _readable(metadata: Any) -> list[tuple[str, str]]:
    """Metadata as (key, text) pairs; the rich error status decoded, other binary values sized."""
    pairs = []
    for key, value in metadata or ():
        if key == "grpc-status-details-bin":  # a google.rpc.Status, as lesson 05 sends
            try:
                value = _json(status_pb2.Status.FromString(value), indent=None)
            except DecodeError:
                value = f"<{len(value)} bytes, not a google.rpc.Status>"
        elif isinstance(value, bytes):
            value = f"<{len(value)} bytes>"
        pairs.append((key, value))
    return pairs


def _json(message: Message, indent: int | None = 2) -> str:
    try:
        return json_format.MessageToJson(message, indent=indent)
    except (TypeError, json_format.Error):  # e.g. an Any of a type nobody described
        return str(message)


def call(target: str, method: MethodDescriptor, request: Message, timeout: float) -> CallResult:
    """Send `request` to a unary or server-streaming `method`; never raises grpc.RpcError."""
    if method.client_streaming:
        raise ValueError(not_supported(method))
    reply_class = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    options = dict(request_serializer=type(request).SerializeToString,
                   response_deserializer=reply_class.FromString)
    replies: list[Message] = []
    start = time.perf_counter()
    with grpc.insecure_channel(target) as channel:
        try:
            if method.server_streaming:
                outcome = channel.unary_stream(path, **options)(request, timeout=timeout)
                replies.extend(outcome)  # stops at the end of the stream or raises
            else:
                reply, outcome = channel.unary_unary(path, **options).with_call(request,
                                                                               timeout=timeout)
                replies.append(reply)
        except grpc.RpcError as error:  # the error is the finished call: code, details, metadata
            outcome = error
        seconds = time.perf_counter() - start
        indent = None if method.server_streaming else 2  # a stream: one line per message
        return CallResult(code=outcome.code().name, details=outcome.details() or "",
                          replies=[_json(reply, indent) for reply in replies],
                          initial_metadata=_readable(outcome.initial_metadata()),
                          trailing_metadata=_readable(outcome.trailing_metadata()),
                          seconds=seconds)


def not_supported(method: MethodDescriptor) -> str:
    kind = "bidirectional-streaming" if method.server_streaming else "client-streaming"
    return (f"{method.name} is a {kind} method: the explorer sends unary and server-streaming "
            "calls only. Call it from Python with a stub (lesson 06).")


# The form ---------------------------------------------------------------------------------


@dataclass
class FieldInput:
    """One field of a form: the widget the learner fills and how to read it."""

    descriptor: FieldDescriptor
    input: Any  # an ipywidgets input, or the box of a nested form
    read: Callable[[], Any]  # the value for json_format.ParseDict; None when left empty
    nested: Form | None = None


@dataclass
class Form:
    """Inputs for a message's fields, by field name, and the widget showing them."""

    descriptor: Descriptor
    fields: dict[str, FieldInput]
    widget: Any


def _scalar(fd: FieldDescriptor, text: str) -> Any:
    """The value of one typed-in scalar, as json_format.ParseDict takes it."""
    if fd.type == F.TYPE_BOOL:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() == "true"
    if fd.type in _FLOAT:
        return float(text)
    return text  # strings, bytes (base64), enum names; integers as text keep 64 bits exact


def _json_value(text: str) -> Any:
    """JSON, or the bare text when it is not JSON (a Timestamp like 2025-01-01T00:00:00Z)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _is_json_field(fd: FieldDescriptor, path: tuple[str, ...]) -> bool:
    """Repeated messages, maps, well-known types and deep or recursive messages: edited as JSON.

    `path` holds the full names of the messages whose forms contain this field."""
    if fd.type != F.TYPE_MESSAGE:
        return False
    message = fd.message_type
    return (fd.is_repeated or message.full_name.startswith("google.protobuf.")
            or len(path) >= MAX_DEPTH or message.full_name in path)


def _input_for(fd: FieldDescriptor, path: tuple[str, ...]) -> FieldInput:
    """The input for one field; see the module docstring for which widget each type gets."""
    import ipywidgets as w

    wide = w.Layout(width="24em")
    if _is_json_field(fd, path):
        box = w.Textarea(placeholder="JSON", rows=2, layout=wide)
        return FieldInput(fd, box, lambda: _json_value(box.value) if box.value.strip() else None)
    if fd.type == F.TYPE_MESSAGE:
        nested = form_for(fd.message_type, path)
        nested.widget.layout = w.Layout(margin="0 0 0 2em", border_left="2px solid #ddd",
                                        padding="0 0 0 0.5em")
        return FieldInput(fd, nested.widget, lambda: _values(nested) or None, nested)
    if fd.is_repeated:
        box = w.Textarea(placeholder="one value per line", rows=2, layout=wide)
        return FieldInput(fd, box, lambda: [_scalar(fd, line.strip())
                                            for line in box.value.splitlines() if line.strip()])
    optional = fd.has_presence  # `optional` fields and oneof members can be left unset
    if fd.type == F.TYPE_ENUM or (fd.type == F.TYPE_BOOL and optional):
        names = [value.name for value in fd.enum_type.values] if fd.type == F.TYPE_ENUM \
            else ["false", "true"]
        menu = w.Dropdown(options=[NOT_SET, *names] if optional else names, layout=wide)
        unset = NOT_SET if optional else names[0]  # without presence the first value is the default
        return FieldInput(fd, menu, lambda: None if menu.value == unset else _scalar(fd, menu.value))
    if fd.type == F.TYPE_BOOL:
        tick = w.Checkbox(value=False, indent=False)
        return FieldInput(fd, tick, lambda: tick.value or None)
    if not optional and fd.type in _INT32 | _FLOAT:
        number = (w.IntText if fd.type in _INT32 else w.FloatText)(value=0, layout=wide)
        return FieldInput(fd, number, lambda: number.value or None)
    text = w.Text(placeholder=NOT_SET if optional else "", layout=wide)
    return FieldInput(fd, text, lambda: _scalar(fd, text.value) if text.value != "" else None)


def type_name(fd: FieldDescriptor) -> str:
    """The field's type as the .proto spells it: `int64`, `optional string`, `map<string, int32>`."""
    if fd.type == F.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
        key, value = fd.message_type.fields
        return f"map<{type_name(key)}, {type_name(value)}>"
    kind = (fd.message_type.full_name if fd.type == F.TYPE_MESSAGE else
            fd.enum_type.full_name if fd.type == F.TYPE_ENUM else _TYPE_NAMES[fd.type])
    if fd.is_repeated:
        return f"repeated {kind}"
    return f"optional {kind}" if fd.has_presence and fd.type != F.TYPE_MESSAGE else kind


def form_for(descriptor: Descriptor, path: tuple[str, ...] = ()) -> Form:
    """A form with one row per field of `descriptor`: name, input, type.

    `path`: the messages this form is nested in (outermost first), to stop recursion."""
    import ipywidgets as w

    fields, rows = {}, []
    path = (*path, descriptor.full_name)
    for fd in descriptor.fields:
        item = _input_for(fd, path)
        fields[fd.name] = item
        label = w.Label(fd.name, layout=w.Layout(width="10em"))
        kind = w.HTML(f"<span style='color:#777'>{html.escape(type_name(fd))}</span>")
        row = w.VBox([w.HBox([label, kind]), item.input]) if item.nested else \
            w.HBox([label, item.input, kind])
        row.add_class(f"explorer-field-{fd.name}")
        rows.append(row)
    if not rows:
        rows.append(w.HTML(f"<i>{html.escape(descriptor.name)} has no fields</i>"))
    return Form(descriptor, fields, w.VBox(rows))


def _values(form: Form) -> dict[str, Any]:
    """The fields the learner filled in, as a dict for json_format.ParseDict."""
    values = {}
    for name, item in form.fields.items():
        try:
            value = item.read()
        except (ValueError, TypeError) as error:
            raise BadInput(f"{name}: {error}") from None
        if value is not None and value != []:
            values[name] = value
    return values


def request_from(form: Form) -> Message:
    """The request message the form describes; BadInput when a value does not fit its field."""
    values = _values(form)
    try:
        return json_format.ParseDict(values, message_factory.GetMessageClass(form.descriptor)())
    except json_format.ParseError as error:
        raise BadInput(str(error)) from None


# The widget -------------------------------------------------------------------------------


class Explorer:
    """The explorer's widgets; shown as a widget in JupyterLab, as one line of text elsewhere."""

    def __init__(self, target: str) -> None:
        import ipywidgets as w

        self.target = target
        self.status = w.HTML()  # one line: what happened last
        self.output = w.HTML()  # replies and metadata
        self.status.add_class("explorer-status")
        self.output.add_class("explorer-output")
        self.result: CallResult | None = None
        self.form: Form | None = None
        try:
            self.services = load_services(target)
        except Exception as error:  # noqa: BLE001 (any failure is shown, never raised)
            self.services = {}
            self.summary = f"Request explorer: {why_not_loaded(error)}"
            self._show("❌", self.summary)
            self.widget = w.VBox([self.status])
            return
        names = ", ".join(self.services)
        self.summary = (f"Request explorer for a server with {len(self.services)} services: "
                        f"{names} (open in JupyterLab to use it)")
        first = next((name for name in self.services if not name.startswith("grpc.")),
                     next(iter(self.services), None))
        self.service = w.Dropdown(options=list(self.services), value=first, description="service")
        self.method = w.Dropdown(description="method")
        self.signature = w.HTML()
        self.form_box = w.VBox()
        self.deadline = w.FloatText(value=5.0, description="deadline (s)",
                                    style={"description_width": "initial"})
        self.send = w.Button(description="Send", button_style="primary")
        self.service.observe(lambda _: self._pick_service(), names="value")
        self.method.observe(lambda _: self._pick_method(), names="value")
        self.send.on_click(lambda _: self._send())
        self._pick_service()
        self.widget = w.VBox([self.service, self.method, self.signature, self.form_box,
                              w.HBox([self.deadline, self.send]), self.status, self.output])
        self.widget.add_class("explorer")

    def chosen(self) -> MethodDescriptor | None:
        service = self.services.get(self.service.value)
        return service.methods_by_name.get(self.method.value) if service else None

    def _pick_service(self) -> None:
        service = self.services.get(self.service.value)
        names = [method.name for method in service.methods] if service else []
        self.method.options = names
        self.method.value = names[0] if names else None
        self._pick_method()

    def _pick_method(self) -> None:
        import ipywidgets as w

        method = self.chosen()
        self.form, self.output.value = None, ""
        self._show("", "")
        if method is None:
            self.signature.value, self.form_box.children = "", ()
            return
        self.signature.value = f"<code>{html.escape(signature(method))}</code>"
        if method.client_streaming:
            self.form_box.children = (w.HTML(f"<i>{html.escape(not_supported(method))}</i>"),)
            self.send.disabled = True
            return
        self.form = form_for(method.input_type)
        self.form_box.children = (self.form.widget,)
        self.send.disabled = False

    def _show(self, mark: str, text: str) -> None:
        self.status.value = f"<b>{mark} {html.escape(text)}</b>" if text else ""

    def _send(self) -> None:
        """The Send button: every failure ends as a status line, never a traceback."""
        method, self.result, self.output.value = self.chosen(), None, ""
        try:
            if method is None or self.form is None:
                raise BadInput("pick a unary or server-streaming method first")
            if not self.deadline.value > 0:
                raise BadInput("the deadline must be more than 0 seconds")
            request = request_from(self.form)
        except BadInput as error:
            self._show("❌", f"bad input: {error}")
            return
        self._show("⏳", "sending…")
        try:
            self.result = call(self.target, method, request, self.deadline.value)
        except Exception as error:  # noqa: BLE001
            self._show("❌", f"the call failed: {type(error).__name__}: {error}")
            return
        self._show("✅" if self.result.code == "OK" else "❌", self.result.status)
        self.output.value = f"<pre>{html.escape(self.result.text())}</pre>"

    def __repr__(self) -> str:
        return self.summary

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = self.summary  # stable for nbval: no port, no timing
        return bundle


def explore(target: str) -> Explorer:
    """A request explorer for the server at `target` (which must have reflection on)."""
    return Explorer(target)
