"""helpers.servers: loopback only, a free port, replace on re-run, stop at exit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from helpers import servers
from helpers.reference import Calculator, calculator_pb2, calculator_pb2_grpc

ADD = calculator_pb2_grpc.add_CalculatorServicer_to_server


def add(target: str, a: int, b: int) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        return stub.Add(calculator_pb2.AddRequest(a=a, b=b), timeout=5).result


def listening_addresses(port: int) -> list[str]:
    """Local addresses of sockets listening on `port`, read from /proc/net/tcp{,6}."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def test_serve_answers_on_127_0_0_1_with_a_free_port() -> None:
    with servers.serve(ADD, Calculator(), name="test-basic") as server:
        assert server.target == f"127.0.0.1:{server.port}"
        assert server.port > 0
        assert add(server.target, 2, 3) == 5


def test_servers_listen_on_loopback_only() -> None:
    with servers.serve(ADD, Calculator(), name="test-loopback") as server:
        addresses = listening_addresses(server.port)
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::ffff:127.0.0.1
    assert addresses and set(addresses) <= loopback, addresses  # never 0.0.0.0 or ::


def test_rerunning_with_the_same_name_replaces_the_old_server() -> None:
    first = servers.serve(ADD, Calculator(), name="test-rerun")
    second = servers.serve(ADD, Calculator(), name="test-rerun")
    try:
        assert servers.running()["test-rerun"] is second
        assert add(second.target, 1, 1) == 2
        assert listening_addresses(first.port) == []  # the old one is gone
    finally:
        second.stop()
    assert "test-rerun" not in servers.running()


def test_two_names_give_two_servers_on_different_ports() -> None:
    with servers.serve(ADD, Calculator(), name="test-a") as a, \
         servers.serve(ADD, Calculator(), name="test-b") as b:
        assert a.port != b.port
        assert add(a.target, 1, 2) == add(b.target, 1, 2) == 3


def test_options_and_setup_are_passed_through() -> None:
    calls = []
    with servers.serve(ADD, Calculator(), name="test-setup", setup=calls.append,
                       options=[("grpc.max_receive_message_length", 8)]) as server:
        assert len(calls) == 1  # setup got the grpc.Server before it started
        with grpc.insecure_channel(server.target) as channel:
            stub = calculator_pb2_grpc.CalculatorStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Add(calculator_pb2.AddRequest(a=2**30, b=2**30), timeout=5)
            # The request is 12 bytes, over the server's 8-byte limit.
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_interceptors_are_passed_through() -> None:
    seen = []

    class Record(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            seen.append(handler_call_details.method)
            return continuation(handler_call_details)

    with servers.serve(ADD, Calculator(), name="test-intercept", interceptors=[Record()]) as server:
        add(server.target, 1, 2)
    assert seen == ["/calculator.Calculator/Add"]


def test_stop_all_at_exit_stops_every_sync_server() -> None:
    server = servers.serve(ADD, Calculator(), name="test-atexit")
    servers._stop_all()
    assert servers.running() == {}
    assert listening_addresses(server.port) == []


def test_serve_aio_runs_on_the_event_loop_and_replaces_by_name() -> None:
    async def scenario() -> tuple[int, int]:
        first = await servers.serve_aio(ADD, Calculator(), name="test-aio")
        second = await servers.serve_aio(ADD, Calculator(), name="test-aio")
        async with grpc.aio.insecure_channel(second.target) as channel:
            stub = calculator_pb2_grpc.CalculatorStub(channel)
            reply = await stub.Add(calculator_pb2.AddRequest(a=4, b=5), timeout=5)
        old_listening = len(listening_addresses(first.port))
        await second.stop()
        return reply.result, old_listening

    result, old_listening = asyncio.run(scenario())
    assert result == 9
    assert old_listening == 0
    assert "test-aio" not in servers.running()
