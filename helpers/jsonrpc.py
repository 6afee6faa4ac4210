"""A hand-made RPC over a socket, for lesson 01: what gRPC automates, done by hand.

The protocol is one JSON object per line, in both directions:

    request:  {"method": "add", "params": [2, 3]}
    reply:    {"result": 5}
    or:       {"error": {"code": "METHOD_NOT_FOUND", "message": "no method named 'power'"}}

`serve_json(handle)` starts a server on 127.0.0.1 with a free port (port 0) in a
background thread. `handle(request) -> reply` is called for every request; when
it returns None the server sends nothing (a silent server, for the timeout demo).
"""

from __future__ import annotations

import atexit
import json
import socket
import threading
from typing import Any, Callable

Handle = Callable[[dict], "dict | None"]


def send_json(sock: socket.socket, message: Any) -> None:
    """Serialize `message` as one line of JSON and send all of it."""
    sock.sendall(json.dumps(message).encode() + b"\n")


def receive_json(sock: socket.socket) -> Any:
    """Read bytes up to the next newline and decode them as JSON.

    Raises ConnectionError if the peer closes the connection first; a timeout set
    on the socket (`sock.settimeout`) raises TimeoutError.
    """
    chunks = []
    while True:
        chunk = sock.recv(1)  # one byte at a time: slow, but never reads past the line
        if not chunk:
            raise ConnectionError("the connection closed before a whole message arrived")
        if chunk == b"\n":
            return json.loads(b"".join(chunks))
        chunks.append(chunk)


def error_reply(code: str, message: str) -> dict:
    """The reply for a failed call: `{"error": {"code": ..., "message": ...}}`."""
    return {"error": {"code": code, "message": message}}


class JsonServer:
    """A running JSON-lines server: `address` is `("127.0.0.1", port)`."""

    def __init__(self, handle: Handle, name: str) -> None:
        self.name = name
        self._handle = handle
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the listening socket was closed by stop()
                return
            with self._lock:
                if self._stopped:
                    connection.close()
                    return
                self._connections.add(connection)
            threading.Thread(target=self._serve_connection, args=(connection,), daemon=True).start()

    def _serve_connection(self, connection: socket.socket) -> None:
        """Answer requests on one connection until the client closes it."""
        try:
            while True:
                try:
                    request = receive_json(connection)
                except json.JSONDecodeError as error:
                    send_json(connection, error_reply("PARSE_ERROR", f"not JSON: {error}"))
                    continue
                try:
                    reply = self._handle(request)
                except Exception as error:  # a bug in the handler: say so, keep serving
                    reply = error_reply("INTERNAL", f"the server raised {type(error).__name__}: {error}")
                if reply is not None:
                    send_json(connection, reply)
        except OSError:  # ConnectionError included: the client left, or stop() closed it
            pass
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()

    def stop(self) -> None:
        """Stop accepting, close every open connection (clients waiting get ConnectionError)."""
        with self._lock:
            self._stopped = True
            connections = list(self._connections)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._listener.close()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if _running.get(self.name) is self:
            del _running[self.name]

    def __enter__(self) -> JsonServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_running: dict[str, JsonServer] = {}


def serve_json(handle: Handle, name: str = "json-rpc") -> JsonServer:
    """Start a JSON-lines server on 127.0.0.1 (free port); a running one named `name` stops first."""
    previous = _running.get(name)
    if previous is not None:
        previous.stop()
    server = JsonServer(handle, name)
    _running[name] = server
    return server


def running() -> list[str]:
    """Names of the JSON servers this process started and has not stopped."""
    return sorted(_running)


@atexit.register
def _stop_all() -> None:
    for server in list(_running.values()):
        server.stop()


class RemoteError(Exception):
    """A call that reached the server and came back as an error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def call(address: tuple[str, int], method: str, params: list, timeout: float = 5.0) -> Any:
    """The reference client: one call on a fresh connection, with a timeout."""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            send_json(sock, {"method": method, "params": params})
            reply = receive_json(sock)
    except TimeoutError:
        raise RemoteError("DEADLINE_EXCEEDED", f"no reply within {timeout} s") from None
    if "error" in reply:
        raise RemoteError(reply["error"]["code"], reply["error"]["message"])
    return reply["result"]
