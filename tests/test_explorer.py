"""helpers/explorer.py: the request explorer, without a browser.

The plain functions (form_for, request_from, call) and the Explorer's widgets
are driven from Python against the reference user service (reflection and
health on, as in lesson 05) and lesson 06's route guide.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any, Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, text_format, timestamp_pb2
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import helpers
from helpers import grpcurl
from helpers.explorer import (
    BadInput,
    CallResult,
    Explorer,
    type_name,
    call,
    explore,
    form_for,
    request_from,
)
from helpers.reference import UserService, users_pb2_grpc
from helpers.reference.routeguide import (
    RouteGuide,
    in_rectangle,
    make_features,
    routeguide_pb2,
    routeguide_pb2_grpc,
)
from helpers.servers import serve

SLOW_ID = 42  # GetUser of this id sleeps, to let a deadline expire
USER_SERVICES = ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                 "users.UserService"]


class SlowUserService(UserService):
    def GetUser(self, request, context):
        if request.id == SLOW_ID:
            time.sleep(3)
        return super().GetUser(request, context)


@pytest.fixture(scope="module")
def users() -> Iterator[str]:
    """The reference user service with Ada as user 1, health and reflection: its target."""

    def setup(server: grpc.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
        reflection.enable_server_reflection(USER_SERVICES, server)

    service = SlowUserService()
    service.store.create("Ada", "ada@example.com")
    with serve(users_pb2_grpc.add_UserServiceServicer_to_server, service, name="explorer-users",
               setup=setup) as server:
        yield server.target


@pytest.fixture(scope="module")
def guide() -> Iterator[str]:
    """Lesson 06's route guide with reflection: its target."""

    def setup(server: grpc.Server) -> None:
        reflection.enable_server_reflection(["routeguide.RouteGuide", reflection.SERVICE_NAME],
                                            server)

    with serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, RouteGuide(),
               name="explorer-guide", setup=setup) as server:
        yield server.target


def method_of(explorer: Explorer, service: str, method: str) -> Explorer:
    """Pick a method in the explorer's drop-downs, as a learner would."""
    explorer.service.value = service
    explorer.method.value = method
    return explorer


# Every kind of field -------------------------------------------------------------------

SINK_PROTO = """
name: "explorer_sink.proto" package: "sink" syntax: "proto3"
dependency: "google/protobuf/timestamp.proto"
enum_type { name: "Color" value { name: "COLOR_UNSPECIFIED" number: 0 } value { name: "RED" number: 1 } }
message_type { name: "Inner" field { name: "x" number: 1 type: TYPE_INT32 label: LABEL_OPTIONAL } }
message_type {
  name: "Sink"
  field { name: "text" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
  field { name: "small" number: 2 type: TYPE_INT32 label: LABEL_OPTIONAL }
  field { name: "big" number: 3 type: TYPE_INT64 label: LABEL_OPTIONAL }
  field { name: "ratio" number: 4 type: TYPE_DOUBLE label: LABEL_OPTIONAL }
  field { name: "flag" number: 5 type: TYPE_BOOL label: LABEL_OPTIONAL }
  field { name: "color" number: 6 type: TYPE_ENUM type_name: ".sink.Color" label: LABEL_OPTIONAL }
  field { name: "inner" number: 7 type: TYPE_MESSAGE type_name: ".sink.Inner" label: LABEL_OPTIONAL }
  field { name: "numbers" number: 8 type: TYPE_INT32 label: LABEL_REPEATED }
  field { name: "inners" number: 9 type: TYPE_MESSAGE type_name: ".sink.Inner" label: LABEL_REPEATED }
  field { name: "counts" number: 10 type: TYPE_MESSAGE type_name: ".sink.Sink.CountsEntry" label: LABEL_REPEATED }
  field { name: "maybe" number: 11 type: TYPE_INT32 label: LABEL_OPTIONAL proto3_optional: true oneof_index: 0 }
  field { name: "when" number: 12 type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp" label: LABEL_OPTIONAL }
  field { name: "again" number: 13 type: TYPE_MESSAGE type_name: ".sink.Sink" label: LABEL_OPTIONAL }
  field { name: "names" number: 14 type: TYPE_STRING label: LABEL_REPEATED }
  nested_type {
    name: "CountsEntry" options { map_entry: true }
    field { name: "key" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
    field { name: "value" number: 2 type: TYPE_INT32 label: LABEL_OPTIONAL }
  }
  oneof_decl { name: "_maybe" }
}
"""


@pytest.fixture(scope="module")
def sink() -> Any:
    """A message descriptor with a field of every kind the form handles."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(text_format.Parse(SINK_PROTO, descriptor_pb2.FileDescriptorProto()))
    return pool.FindMessageTypeByName("sink.Sink")


def test_form_has_an_input_per_field_type(sink: Any) -> None:
    form = form_for(sink)
    kinds = {name: type(item.input).__name__ for name, item in form.fields.items()}
    assert kinds == {
        "text": "Text", "small": "IntText", "big": "Text", "ratio": "FloatText",
        "flag": "Checkbox", "color": "Dropdown", "inner": "VBox", "numbers": "Textarea",
        "inners": "Textarea", "counts": "Textarea", "maybe": "Text", "when": "Textarea",
        "again": "Textarea", "names": "Textarea",
    }
    assert form.fields["color"].input.options == ("COLOR_UNSPECIFIED", "RED")
    assert list(form.fields["inner"].nested.fields) == ["x"]
    types = {name: type_name(item.descriptor) for name, item in form.fields.items()}
    assert (types["big"], types["color"], types["numbers"], types["counts"], types["maybe"],
            types["when"]) == ("int64", "sink.Color", "repeated int32", "map<string, int32>",
                               "optional int32", "google.protobuf.Timestamp")
    # An empty form is the empty message: nothing the learner left alone is sent.
    assert request_from(form).ByteSize() == 0


def test_form_fills_every_field_type(sink: Any) -> None:
    form = form_for(sink)
    values = {"text": "hi", "small": -7, "big": "9007199254740993", "ratio": 2.5, "flag": True,
              "color": "RED", "numbers": "1\n2\n\n3", "inners": '[{"x": 1}, {"x": 2}]',
              "counts": '{"a": 1}', "maybe": "0", "when": "2025-01-01T00:00:00Z",
              "names": "Ada Lovelace\n 42 "}
    for name, value in values.items():
        form.fields[name].input.value = value
    form.fields["inner"].nested.fields["x"].input.value = 3
    request = request_from(form)
    assert (request.text, request.small, request.big, request.ratio, request.flag) == (
        "hi", -7, 2**53 + 1, 2.5, True)  # 2**53 + 1: a 64-bit integer kept exact
    assert request.color == 1 and request.inner.x == 3
    assert list(request.numbers) == [1, 2, 3] and [i.x for i in request.inners] == [1, 2]
    assert dict(request.counts) == {"a": 1} and request.when.seconds == 1735689600
    assert list(request.names) == ["Ada Lovelace", "42"]
    # `optional`: "0" is sent as set; left empty it is not set at all.
    assert request.HasField("maybe") and request.maybe == 0
    form.fields["maybe"].input.value = ""
    assert not request_from(form).HasField("maybe")


def test_bad_input_in_lists_and_json(sink: Any) -> None:
    cases = [("big", "twelve"), ("numbers", "1\nx"), ("counts", "{not json"), ("inners", '{"x": 1}')]
    for field, value in cases:
        form = form_for(sink)
        form.fields[field].input.value = value
        with pytest.raises(BadInput, match=field):
            request_from(form)


# Against the user service ---------------------------------------------------------------


def test_plain_text_lists_services_without_the_port(users: str) -> None:
    explorer = explore(users)
    text = ("Request explorer for a server with 3 services: " + ", ".join(USER_SERVICES)
            + " (open in JupyterLab to use it)")
    assert repr(explorer) == text
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == text and users.split(":")[1] not in text
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert helpers.explore is explore


def test_unary_call_from_the_form(users: str) -> None:
    explorer = method_of(explore(users), "users.UserService", "GetUser")
    assert "rpc GetUser(users.GetUserRequest) returns (users.User)" in explorer.signature.value
    explorer.form.fields["id"].input.value = "1"
    explorer.send.click()
    result = explorer.result
    assert result.code == "OK" and result.details == ""
    reply = json.loads(result.replies[0])
    assert (reply["id"], reply["name"], reply["status"]) == ("1", "Ada", "USER_STATUS_ACTIVE")
    assert "✅ OK" in explorer.status.value and "&quot;Ada&quot;" in explorer.output.value
    assert "trailing metadata" in explorer.output.value


def test_failing_calls_show_status_and_details(users: str) -> None:
    explorer = method_of(explore(users), "users.UserService", "GetUser")
    explorer.form.fields["id"].input.value = "99"
    explorer.send.click()
    assert (explorer.result.code, explorer.result.details) == ("NOT_FOUND", "no user with id 99")
    assert "❌ NOT_FOUND: no user with id 99" in explorer.status.value

    method_of(explorer, "users.UserService", "CreateUser")
    explorer.form.fields["name"].input.value = "Bob"
    explorer.form.fields["email"].input.value = "not-an-email"
    explorer.send.click()
    result = explorer.result
    assert result.code == "INVALID_ARGUMENT" and "email" in result.details and not result.replies
    # The rich error detail (google.rpc.BadRequest) is decoded from the trailing metadata.
    details = dict(result.trailing_metadata)["grpc-status-details-bin"]
    assert '"fieldViolations": [{"field": "email"' in details


def test_health_check_through_the_explorer(users: str) -> None:
    explorer = method_of(explore(users), "grpc.health.v1.Health", "Check")
    explorer.send.click()
    assert explorer.result.code == "OK" and "SERVING" in explorer.result.replies[0]


def test_partial_update_sends_only_the_fields_set(users: str) -> None:
    explorer = method_of(explore(users), "users.UserService", "UpdateUser")
    fields = explorer.form.fields
    assert fields["status"].input.value == "(not set)"
    fields["id"].input.value = "1"
    fields["status"].input.value = "USER_STATUS_INACTIVE"
    explorer.send.click()
    reply = json.loads(explorer.result.replies[0])
    assert explorer.result.code == "OK"
    assert (reply["name"], reply["status"]) == ("Ada", "USER_STATUS_INACTIVE")


def test_an_expired_deadline(users: str) -> None:
    explorer = method_of(explore(users), "users.UserService", "GetUser")
    explorer.form.fields["id"].input.value = str(SLOW_ID)
    explorer.deadline.value = 0.3
    explorer.send.click()
    assert explorer.result.code == "DEADLINE_EXCEEDED"
    assert 0.3 <= explorer.result.seconds < 2.9  # the call ended at the deadline, not the reply
    assert "❌ DEADLINE_EXCEEDED" in explorer.status.value


def test_bad_input_is_a_status_line_not_a_traceback(users: str) -> None:
    explorer = method_of(explore(users), "users.UserService", "GetUser")
    explorer.form.fields["id"].input.value = "one"
    explorer.send.click()
    assert explorer.result is None
    assert "bad input" in explorer.status.value and "id" in explorer.status.value
    explorer.form.fields["id"].input.value = "1"
    explorer.deadline.value = 0
    explorer.send.click()
    assert "deadline must be more than 0" in explorer.status.value


# Against the route guide -----------------------------------------------------------------


def test_server_streaming_lists_every_message(guide: str) -> None:
    explorer = method_of(explore(guide), "routeguide.RouteGuide", "ListFeatures")
    corners = {"lo": (400_000_000, -750_000_000), "hi": (401_000_000, -740_000_000)}
    for corner, (lat, lng) in corners.items():
        explorer.form.fields[corner].nested.fields["latitude"].input.value = lat
        explorer.form.fields[corner].nested.fields["longitude"].input.value = lng
    explorer.send.click()
    rectangle = routeguide_pb2.Rectangle(lo=routeguide_pb2.Point(latitude=400_000_000,
                                                                  longitude=-750_000_000),
                                         hi=routeguide_pb2.Point(latitude=401_000_000,
                                                                  longitude=-740_000_000))
    expected = [f.name for f in make_features() if in_rectangle(f.location, rectangle)]
    assert explorer.result.code == "OK" and len(expected) > 3
    assert [json.loads(reply)["name"] for reply in explorer.result.replies] == expected
    assert all("\n" not in reply for reply in explorer.result.replies)  # one line per message


def test_server_streaming_error_is_a_status(guide: str) -> None:
    explorer = method_of(explore(guide), "routeguide.RouteGuide", "ListFeatures")
    explorer.send.click()  # no corners
    assert explorer.result.code == "INVALID_ARGUMENT"
    assert explorer.result.details == "the rectangle has no lo corner"


@pytest.mark.parametrize("method, kind", [("RecordRoute", "client-streaming"),
                                          ("RouteChat", "bidirectional-streaming")])
def test_client_streaming_is_not_supported(guide: str, method: str, kind: str) -> None:
    explorer = method_of(explore(guide), "routeguide.RouteGuide", method)
    assert explorer.send.disabled and explorer.form is None
    assert f"{method} is a {kind} method" in explorer.form_box.children[0].value
    explorer.send.click()  # disabled in the page; from Python it still says why
    assert "pick a unary or server-streaming method" in explorer.status.value
    descriptor = explorer.chosen()
    with pytest.raises(ValueError, match="unary and server-streaming calls only"):
        call(guide, descriptor, routeguide_pb2.Point(), timeout=1)


# Servers that cannot be explored ------------------------------------------------------------


def test_no_server_at_the_target(guide: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{probe.getsockname()[1]}"
    explorer = explore(target)
    assert repr(explorer) == "Request explorer: no server answers at this address (UNAVAILABLE)"
    assert "❌" in explorer.status.value
    # call() on a target that went away reports UNAVAILABLE as a result, not an exception.
    method = method_of(explore(guide), "routeguide.RouteGuide", "GetFeature").chosen()
    assert call(target, method, routeguide_pb2.Point(), timeout=2).code == "UNAVAILABLE"


def test_server_without_reflection() -> None:
    with serve(users_pb2_grpc.add_UserServiceServicer_to_server, UserService(),
               name="explorer-no-reflection") as server:
        explorer = explore(server.target)
    assert repr(explorer) == ("Request explorer: the server has no reflection service "
                              "(add it with reflection.enable_server_reflection)")


def test_a_server_that_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket that accepts connections but speaks no HTTP/2: reflection gives up in time."""
    monkeypatch.setattr(grpcurl, "REFLECTION_TIMEOUT", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        explorer = explore(f"127.0.0.1:{silent.getsockname()[1]}")
    assert time.monotonic() - start < 10
    assert repr(explorer) == ("Request explorer: the server did not answer within 0.5 s "
                              "(DEADLINE_EXCEEDED)")


def test_result_text_caps_long_streams() -> None:
    result = CallResult("OK", "", replies=[f'{{"n": {n}}}' for n in range(250)])
    text = result.text()
    assert text.startswith("250 replies:\n{\"n\": 0}") and "... and 150 more" in text
    assert '{"n": 99}' in text and '{"n": 100}' not in text
    assert text.endswith("initial metadata:\n  (none)\ntrailing metadata:\n  (none)")
