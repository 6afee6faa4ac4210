"""Small services and tools for lesson 10 (production): the last hop of a call chain,
a worker that names itself, an HTTP CONNECT proxy (a wiretap that picks its server per
connection), and a server restarted on a port the operating system picked earlier.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent import futures
from contextlib import contextmanager
from typing import Any, Iterator

import grpc

from helpers import protos
from helpers.servers import AddToServer, Server, Setup, _running
from helpers.wiretap import Wiretap

production_pb2, production_pb2_grpc = protos.load("production")


def seen(context: grpc.ServicerContext, service: str) -> Any:
    """What `service` sees of its deadline right now, as a `Seen` message."""
    remaining = context.time_remaining()
    has_deadline = remaining is not None and remaining < 1e9  # no deadline: about 9.2e18 s
    return production_pb2.Seen(service=service, has_deadline=has_deadline,
                               remaining_s=remaining if has_deadline else 0.0)


class LastHop(production_pb2_grpc.ChainServicer):
    """The end of a chain. It records, on the server side, what each call saw:

    - `deadlines`: the absolute deadline of each call on `time.monotonic()`'s clock
      (None when the call had no deadline);
    - `cancelled`: set when a call ended before the work was done (cancelled or
      past its deadline): `context.add_callback` woke it up.
    """

    def __init__(self, name: str = "last") -> None:
        self.name = name
        self.deadlines: list[float | None] = []
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def Relay(self, request, context):
        now = time.monotonic()
        mine = seen(context, self.name)
        with self._lock:
            self.calls += 1
            self.deadlines.append(now + mine.remaining_s if mine.has_deadline else None)
        ended = threading.Event()
        if not context.add_callback(ended.set):  # False: the call is already over
            ended.set()
        self.started.set()
        if request.work_ms and ended.wait(request.work_ms / 1000):
            self.cancelled.set()  # the call ended while we were still working
            return production_pb2.Trace()
        return production_pb2.Trace(seen=[mine])


class Worker(production_pb2_grpc.WorkerServicer):
    """Answers `Work` with its own name after `work_ms`; counts calls; `Echo` sends data back.

    With `fail=True` every call answers UNAVAILABLE (a sick but running server).
    """

    def __init__(self, name: str = "worker", fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.calls = 0
        self.finished = 0
        self._lock = threading.Lock()

    def Work(self, request, context):
        with self._lock:
            self.calls += 1
        if self.fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} is unwell")
        if request.work_ms:
            time.sleep(request.work_ms / 1000)
        with self._lock:
            self.finished += 1
        return production_pb2.WorkReply(server=self.name, payload=bytes(request.reply_bytes))

    def Echo(self, request, context):
        with self._lock:
            self.calls += 1
        return request


def serve_on(port: int, add_to_server: AddToServer, servicer: Any, *, name: str,
             setup: Setup | None = None, options=(), max_workers: int = 10) -> Server:
    """Start a server on 127.0.0.1:`port`, a port an earlier server got from the OS.

    Used to show a client that waits for a server which (re)starts later.
    """
    previous = _running.get(name)
    if isinstance(previous, Server):
        previous.stop()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                              options=list(options))
    add_to_server(servicer, grpc_server)
    if setup is not None:
        setup(grpc_server)
    if grpc_server.add_insecure_port(f"127.0.0.1:{port}") != port:
        raise RuntimeError(f"port {port} is taken again")
    grpc_server.start()
    server = Server(name=name, port=port, grpc_server=grpc_server)
    _running[name] = server
    return server


@contextmanager
def passing_errors_on(context: grpc.ServicerContext) -> Iterator[None]:
    """End this call with the status of a failed outgoing call, instead of UNKNOWN."""
    try:
        yield
    except grpc.RpcError as error:
        context.abort(error.code(), f"next hop: {error.details()}")
    except grpc.FutureCancelledError:
        context.abort(grpc.StatusCode.CANCELLED, "the outgoing call was cancelled")


def free_port() -> int:
    """A port the OS considers free right now (bind to port 0, read it, let it go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ConnectProxy(Wiretap):
    """An HTTP proxy on 127.0.0.1 that serves CONNECT only and notes each request line.

    gRPC reaches a server through an HTTP proxy with `CONNECT host:port`; `seen` lists
    those lines, so you can tell whether a channel went through the proxy. Once a tunnel
    is open, its bytes go through the wiretap like any other connection (`up`, `down`,
    and the frames with `decode=True`).
    """

    def __init__(self, decode: bool = False) -> None:
        self.seen: list[str] = []
        super().__init__("127.0.0.1:0", decode=decode)  # no fixed server: each CONNECT names one

    @property
    def url(self) -> str:
        return f"http://{self.target}"

    def _accept(self) -> None:  # the relay's thread: read each request line in a thread of its own
        while True:
            try:
                client, _ = self._listener.accept()
            except BlockingIOError:
                return
            self.connections += 1
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        client.setblocking(True)
        client.settimeout(5)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 8192 and (chunk := client.recv(1024)):
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.seen.append(line)
            method, _, rest = line.partition(" ")
            if method != "CONNECT":
                raise ValueError("CONNECT only")
            host, port = rest.split(" ", 1)[0].rsplit(":", 1)
            server = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        except (OSError, ValueError):
            try:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            except OSError:
                pass
            client.close()
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.relay(client, server)
