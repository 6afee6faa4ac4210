"""A benchmark server in a process of its own, so that client and server share no GIL.

Lesson 07 times sync and grpc.aio servers from a notebook. With the server in the
notebook's own process, the client's work and the server's compete for one GIL and
(for aio) one event loop, and the numbers measure that contest. Here the server runs
in a child process:

    with bench_server.start("aio") as server:            # or start("sync", workers=10)
        async with grpc.aio.insecure_channel(server.target) as channel: ...
        print(bench_server.threads_and_rss(server.pid))  # (threads, resident MB) on Linux

The child serves lesson 03's Calculator and lesson 06's route guide:
- `Add` waits 10 ms (I/O: `time.sleep` in a worker thread, `await asyncio.sleep` on the loop);
- `Multiply` computes for 10 ms of CPU time (a busy loop);
- `ListFeatures` sends one feature, then waits until the call ends: a parked stream.

It listens on 127.0.0.1, port 0, and prints `PORT <n>` once it is serving. It stops when
its stdin closes (so it never outlives the notebook) or on `stop()`. Run it by hand with
`python -m helpers.bench_server sync 10` or `python -m helpers.bench_server aio`.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import subprocess
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass

WORK = 0.010  # seconds of I/O or CPU per call


def burn_cpu(seconds: float) -> None:
    """Keep the processor busy until this thread has used `seconds` of CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


# --- the child process ---------------------------------------------------------------

def _servicers(mode: str):
    from helpers.reference import calculator_pb2, calculator_pb2_grpc
    from helpers.reference.routeguide import make_features, routeguide_pb2_grpc

    feature = make_features(count=1)[0]

    if mode == "sync":
        class Calculator(calculator_pb2_grpc.CalculatorServicer):
            def Add(self, request, context):
                time.sleep(WORK)
                return calculator_pb2.AddReply(result=request.a + request.b)

            def Multiply(self, request, context):
                burn_cpu(WORK)
                return calculator_pb2.MultiplyReply(result=request.a * request.b)

        class Guide(routeguide_pb2_grpc.RouteGuideServicer):
            def ListFeatures(self, request, context):
                ended = threading.Event()
                context.add_callback(ended.set)
                yield feature
                ended.wait(600)  # parked: holds this thread until the call ends
    else:
        class Calculator(calculator_pb2_grpc.CalculatorServicer):
            async def Add(self, request, context):
                await asyncio.sleep(WORK)
                return calculator_pb2.AddReply(result=request.a + request.b)

            async def Multiply(self, request, context):
                burn_cpu(WORK)  # CPU work blocks the loop, as it would in a real handler
                return calculator_pb2.MultiplyReply(result=request.a * request.b)

        class Guide(routeguide_pb2_grpc.RouteGuideServicer):
            async def ListFeatures(self, request, context):
                yield feature
                await asyncio.sleep(600)  # parked: a cancel raises CancelledError here

    def add_all(server) -> None:
        calculator_pb2_grpc.add_CalculatorServicer_to_server(Calculator(), server)
        routeguide_pb2_grpc.add_RouteGuideServicer_to_server(Guide(), server)

    return add_all


def _serve_sync(workers: int) -> None:
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    _servicers("sync")(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop(None).wait()


async def _serve_aio() -> None:
    import grpc

    server = grpc.aio.server()
    _servicers("aio")(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await server.stop(None)


def main(argv: list[str]) -> None:
    import helpers  # noqa: F401  (quiet gRPC logging)

    mode = argv[0] if argv else "aio"
    if mode == "sync":
        _serve_sync(int(argv[1]) if len(argv) > 1 else 10)
    elif mode == "aio":
        asyncio.run(_serve_aio())
    else:
        raise SystemExit(f"usage: python -m helpers.bench_server sync WORKERS | aio (got {mode!r})")


# --- the notebook's side ---------------------------------------------------------------

@dataclass
class BenchServer:
    """A server running in a child process; `target` is what a channel connects to."""

    name: str
    mode: str
    workers: int | None
    process: subprocess.Popen
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """Close the child's stdin (it stops its server and exits); kill it if it lingers."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if _running.get(self.name) is self:
            del _running[self.name]

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_running: dict[str, BenchServer] = {}


def start(mode: str, workers: int = 10, name: str | None = None) -> BenchServer:
    """Start a "sync" (with `workers` threads) or "aio" server in a child process."""
    name = name or f"bench-{mode}"
    if name in _running:
        _running[name].stop()
    args = [sys.executable, "-m", "helpers.bench_server", mode]
    if mode == "sync":
        args.append(str(workers))
    env = {**os.environ, "GRPC_VERBOSITY": os.environ.get("GRPC_VERBOSITY", "NONE")}
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env)
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        process.wait()
        raise RuntimeError(f"the {mode} benchmark server did not start (it said {line!r})")
    server = BenchServer(name, mode, workers if mode == "sync" else None, process,
                         int(line.split()[1]))
    _running[name] = server
    return server


def threads_and_rss(pid: int) -> tuple[int, float] | None:
    """(number of threads, resident memory in MB) of process `pid`; None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except OSError:
        return None
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


@atexit.register
def _stop_all() -> None:
    for server in list(_running.values()):
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
