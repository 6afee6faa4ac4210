"""A small grpcurl in Python, built on server reflection.

A server with reflection enabled answers questions about itself: which
services it has, and the .proto descriptors of their messages. With those, a
client can call any unary method by name with a JSON request, without the
.proto file or generated code, as the `grpcurl` command-line tool does:

    list_services(target)                       # grpcurl -plaintext HOST list
    describe(target, "users.UserService")       # grpcurl -plaintext HOST describe users.UserService
    call(target, "users.UserService/GetUser", '{"id": 1}')
                                                # grpcurl -plaintext -d '{"id": 1}' HOST users.UserService/GetUser
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

REFLECTION_TIMEOUT = 5.0  # seconds each question to the reflection service may take


class _Timeout(grpc.StreamStreamClientInterceptor):
    """Give every call on a channel a deadline (the reflection client sets none)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(client_call_details._replace(timeout=self.seconds), request_iterator)


def reflection(channel: grpc.Channel) -> tuple[ProtoReflectionDescriptorDatabase,
                                                descriptor_pool.DescriptorPool]:
    """A database that asks the server's reflection service (each question bounded by
    REFLECTION_TIMEOUT), and a descriptor pool that fetches what it needs from it."""
    database = ProtoReflectionDescriptorDatabase(
        grpc.intercept_channel(channel, _Timeout(REFLECTION_TIMEOUT)))
    return database, descriptor_pool.DescriptorPool(database)


def signature(method: MethodDescriptor) -> str:
    """The method as a .proto line, e.g. `rpc GetUser(users.GetUserRequest) returns (users.User)`."""
    request = ("stream " if method.client_streaming else "") + method.input_type.full_name
    reply = ("stream " if method.server_streaming else "") + method.output_type.full_name
    return f"rpc {method.name}({request}) returns ({reply})"


def list_services(target: str) -> list[str]:
    """The full names of the services the server at `target` offers, sorted."""
    with grpc.insecure_channel(target) as channel:
        database, _ = reflection(channel)
        return sorted(database.get_services())


def describe(target: str, service: str) -> list[str]:
    """One line per method of `service`, e.g. `rpc GetUser(users.GetUserRequest) returns (users.User)`."""
    with grpc.insecure_channel(target) as channel:
        _, pool = reflection(channel)
        return [signature(method) for method in pool.FindServiceByName(service).methods]


def call(target: str, method: str, request_json: str = "{}", timeout: float = 5.0) -> str:
    """Call the unary `method` ("package.Service/Method") with a JSON request; return the JSON reply.

    Raises grpc.RpcError when the call fails, KeyError when the server does not
    know the service or method, ValueError for a streaming method or bad JSON.
    """
    service_name, _, method_name = method.partition("/")
    with grpc.insecure_channel(target) as channel:
        _, pool = reflection(channel)
        found = pool.FindServiceByName(service_name).methods_by_name.get(method_name)
        if found is None:
            raise KeyError(f"{service_name} has no method {method_name!r}")
        if found.client_streaming or found.server_streaming:
            raise ValueError(f"{method} is a streaming method; call() handles unary methods only")
        request_class = message_factory.GetMessageClass(found.input_type)
        reply_class = message_factory.GetMessageClass(found.output_type)
        request = json_format.Parse(request_json, request_class())
        rpc = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=reply_class.FromString,
        )
        return json_format.MessageToJson(rpc(request, timeout=timeout))
