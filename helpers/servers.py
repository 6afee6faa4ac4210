"""In-process gRPC servers for notebooks: one call to start, one to stop.

    server = serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, Calculator())
    with grpc.insecure_channel(server.target) as channel: ...
    server.stop()

Servers listen on 127.0.0.1 with a port picked by the operating system (port 0),
so two notebooks never fight over a port. Starting a server with the name of one
that is still running stops the old one first, so re-running a cell is safe.
Every server still running is stopped when the Python process exits.
"""

from __future__ import annotations

import atexit
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import grpc

AddToServer = Callable[[Any, Any], None]  # e.g. add_CalculatorServicer_to_server
Setup = Callable[[Any], None]  # called with the server before it starts
Options = Sequence[tuple[str, Any]]


@dataclass
class Server:
    """A running sync server: `target` is what a channel connects to."""

    name: str
    port: int
    grpc_server: grpc.Server

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace: float | None = None) -> None:
        """Stop the server; with `grace`, let calls in flight finish for that many seconds."""
        self.grpc_server.stop(grace).wait()
        if _running.get(self.name) is self:
            del _running[self.name]

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class AioServer:
    """A running grpc.aio server; stop it with `await server.stop()`."""

    name: str
    port: int
    grpc_server: grpc.aio.Server

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        await self.grpc_server.stop(grace)
        if _running.get(self.name) is self:
            del _running[self.name]

    async def __aenter__(self) -> AioServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


_running: dict[str, Server | AioServer] = {}


def _add_and_bind(
    grpc_server: grpc.Server | grpc.aio.Server,
    add_to_server: AddToServer,
    servicer: Any,
    setup: Setup | None,
    credentials: grpc.ServerCredentials | None,
) -> int:
    """Register the service(s), bind 127.0.0.1 on a free port, and return the port."""
    add_to_server(servicer, grpc_server)
    if setup is not None:
        setup(grpc_server)
    address = "127.0.0.1:0"
    if credentials is None:
        port = grpc_server.add_insecure_port(address)
    else:
        port = grpc_server.add_secure_port(address, credentials)
    if port == 0:
        raise RuntimeError("gRPC could not bind a port on 127.0.0.1")
    return port


def _name_of(servicer: Any, name: str | None) -> str:
    return name or type(servicer).__name__


def serve(
    add_to_server: AddToServer,
    servicer: Any,
    *,
    name: str | None = None,
    setup: Setup | None = None,
    interceptors: Iterable[grpc.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    options: Options = (),
    max_workers: int = 10,
    maximum_concurrent_rpcs: int | None = None,
) -> Server:
    """Start a sync gRPC server for `servicer` and return it once it is listening.

    `name` defaults to the servicer's class name; a running server with the same
    name is stopped first. `setup(server)` can add more services (health,
    reflection) before the server starts.
    """
    name = _name_of(servicer, name)
    previous = _running.get(name)
    if isinstance(previous, Server):
        previous.stop()
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=list(interceptors),
        options=list(options),
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    port = _add_and_bind(grpc_server, add_to_server, servicer, setup, credentials)
    grpc_server.start()
    server = Server(name=name, port=port, grpc_server=grpc_server)
    _running[name] = server
    return server


async def serve_aio(
    add_to_server: AddToServer,
    servicer: Any,
    *,
    name: str | None = None,
    setup: Setup | None = None,
    interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    options: Options = (),
    maximum_concurrent_rpcs: int | None = None,
) -> AioServer:
    """Start a grpc.aio server on the running event loop (use `await` in a notebook)."""
    name = _name_of(servicer, name)
    previous = _running.get(name)
    if isinstance(previous, AioServer):
        await previous.stop()
    grpc_server = grpc.aio.server(
        interceptors=list(interceptors),
        options=list(options),
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    port = _add_and_bind(grpc_server, add_to_server, servicer, setup, credentials)
    await grpc_server.start()
    server = AioServer(name=name, port=port, grpc_server=grpc_server)
    _running[name] = server
    return server


def running() -> dict[str, Server | AioServer]:
    """The servers this process started and has not stopped yet, by name."""
    return dict(_running)


@atexit.register
def _stop_all() -> None:
    for server in list(_running.values()):
        if isinstance(server, Server):
            server.stop()
    # grpc.aio servers belong to an event loop that is gone at exit;
    # the process ending closes their sockets.
    _running.clear()
