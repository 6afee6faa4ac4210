"""Lesson 03's calculator as a server process: `python scripts/calculator_server.py [options]`.

It listens on 127.0.0.1 on a port the operating system picks and prints one line,
`listening on 127.0.0.1:PORT`, for you (or helpers.processes) to read. Then it
serves until it receives SIGTERM (what `kill PID`, systemd, Docker and Kubernetes
send) or SIGINT (Ctrl-C), and shuts down gracefully: health turns NOT_SERVING,
calls in flight get `--grace` seconds to finish, and the exit code is 0.

Options:
  --kind sync|aio   a thread-pool server (default) or a grpc.aio server
  --workers N       pre-fork N worker processes that share the port (sync only; default 1)
  --cpu-ms X        every call first burns X ms of CPU time (a CPU-bound handler)
  --delay-ms Y      every call first waits Y ms (a slow call, to watch a graceful shutdown)
  --grace S         seconds the calls in flight get on SIGTERM (default 5)
  --no-graceful     install no SIGTERM handler: SIGTERM kills the process, as by default

Whatever the way this process was started, it stops (as on SIGTERM) when the process
that started it dies, even by SIGKILL: see scripts/parent_watch.py. So does every worker
when its launcher dies.

Every reply carries the pid of the process that served it, in the trailing
metadata `served-by`. The server also offers health and reflection.

Try it in two terminals:
  python scripts/calculator_server.py --delay-ms 3000      # prints its port, serves
  python scripts/calculator_client.py 127.0.0.1:PORT       # 20 + 22 = 42
and press Ctrl-C in the first terminal while the client waits.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Callable

os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # before importing grpc: it is read at import

import grpc  # noqa: E402  (importing grpc creates no gRPC object: forking later is safe)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection  # noqa: E402
from parent_watch import watch_parent  # noqa: E402  (scripts/parent_watch.py, next to this file)


# The calculator's messages and stubs, generated from protos/calculator.proto at start-up
# (grpc.protos_and_services finds .proto files on sys.path). No import of the course's
# helpers: a script should start fast and stand on its own.
sys.path.append(str(Path(__file__).resolve().parent.parent / "protos"))
calculator_pb2, calculator_pb2_grpc = grpc.protos_and_services("calculator.proto")

ADDRESS = "127.0.0.1"


def burn_cpu(seconds: float) -> None:
    """Keep this thread busy until it has used `seconds` of CPU time (not wall time)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


INT32 = range(-(2**31), 2**31)


class WorkingCalculator(calculator_pb2_grpc.CalculatorServicer):
    """The calculator's Add (the other methods answer UNIMPLEMENTED), with a fixed amount
    of CPU work or waiting in every call."""

    def __init__(self, cpu: float = 0.0, delay: float = 0.0):
        self.cpu, self.delay = cpu, delay

    def Add(self, request, context):
        if self.delay:
            print("call started", flush=True)
            time.sleep(self.delay)
        if self.cpu:
            burn_cpu(self.cpu)
        context.set_trailing_metadata((("served-by", str(os.getpid())),))
        if request.a + request.b not in INT32:
            context.abort(grpc.StatusCode.OUT_OF_RANGE, "the sum does not fit in int32")
        return calculator_pb2.AddReply(result=request.a + request.b)


class AsyncWorkingCalculator(calculator_pb2_grpc.CalculatorServicer):
    """The same Add for grpc.aio (CPU work blocks the event loop, as it would for real)."""

    def __init__(self, cpu: float = 0.0, delay: float = 0.0):
        self.cpu, self.delay = cpu, delay

    async def Add(self, request, context):
        if self.delay:
            print("call started", flush=True)
            await asyncio.sleep(self.delay)
        if self.cpu:
            burn_cpu(self.cpu)
        context.set_trailing_metadata((("served-by", str(os.getpid())),))
        if request.a + request.b not in INT32:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, "the sum does not fit in int32")
        return calculator_pb2.AddReply(result=request.a + request.b)


SERVICE_NAMES = (
    calculator_pb2.DESCRIPTOR.services_by_name["Calculator"].full_name,
    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    reflection.SERVICE_NAME,
)


def make_server(args: argparse.Namespace, port: int = 0) -> tuple[grpc.Server, health.HealthServicer, int]:
    """A started sync server on 127.0.0.1:`port` (0: a free one) with health and reflection."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10),
                         options=[("grpc.so_reuseport", 1)])
    calculator_pb2_grpc.add_CalculatorServicer_to_server(
        WorkingCalculator(args.cpu_ms / 1000, args.delay_ms / 1000), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(SERVICE_NAMES, server)
    port = server.add_insecure_port(f"{ADDRESS}:{port}")
    server.start()
    return server, health_servicer, port


def run_until_sigterm(server: grpc.Server, health_servicer: health.HealthServicer,
                      grace: float, announce: Callable[[], None] = lambda: None) -> int:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; return the exit code.

    `announce()` runs once the handlers are in place (a SIGTERM that came earlier would kill).
    """

    def shut_down(signum: int, frame: object) -> None:
        print(f"{signal.Signals(signum).name}: health NOT_SERVING, "
              f"stopping with {grace} s of grace", flush=True)
        health_servicer.enter_graceful_shutdown()  # load balancers stop sending new calls
        server.stop(grace)  # refuse new calls; calls in flight get `grace` seconds

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    announce()
    server.wait_for_termination()  # returns once the server has stopped
    print("stopped", flush=True)
    return 0


def serve(args: argparse.Namespace) -> int:
    server, health_servicer, port = make_server(args)

    def announce() -> None:
        print(f"listening on {ADDRESS}:{port} (pid {os.getpid()})", flush=True)

    if args.no_graceful:
        announce()
        server.wait_for_termination()  # SIGTERM's default action kills the process here
        return 0
    return run_until_sigterm(server, health_servicer, args.grace, announce)


async def serve_aio(args: argparse.Namespace) -> int:
    server = grpc.aio.server()
    calculator_pb2_grpc.add_CalculatorServicer_to_server(
        AsyncWorkingCalculator(args.cpu_ms / 1000, args.delay_ms / 1000), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(SERVICE_NAMES, server)
    port = server.add_insecure_port(f"{ADDRESS}:0")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"listening on {ADDRESS}:{port} (pid {os.getpid()}, grpc.aio)", flush=True)
    await stopping.wait()
    print(f"SIGTERM: health NOT_SERVING, stopping with {args.grace} s of grace", flush=True)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(args.grace)
    print("stopped", flush=True)
    return 0


# --- pre-fork: N worker processes, one port ------------------------------------------

def reserve_port() -> socket.socket:
    """Bind (but do not listen on) a free port with SO_REUSEPORT, so workers can bind it too."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((ADDRESS, 0))
    return sock


def worker(args: argparse.Namespace, port: int, ready: multiprocessing.Queue, launcher: int) -> None:
    """One worker process: its own gRPC server on the shared port, created after the fork."""
    watch_parent(launcher)  # the launcher died, even by SIGKILL: shut down too
    server, health_servicer, _ = make_server(args, port)
    sys.exit(run_until_sigterm(server, health_servicer, args.grace,
                               announce=lambda: ready.put(os.getpid())))


def serve_prefork(args: argparse.Namespace) -> int:
    """Start N workers before any gRPC object exists in this process; on SIGTERM, stop them.

    A worker that dies is reported and not replaced; the others keep serving. On SIGTERM
    (or SIGINT) every live worker gets SIGTERM and `--grace` seconds (plus one to exit);
    one still running after that is killed. The exit code is 0 only if every worker exited 0.
    """
    stopping = threading.Event()
    with reserve_port() as sock:
        port = sock.getsockname()[1]
        context = multiprocessing.get_context("fork")  # a worker is a copy of this process
        ready = context.Queue()
        workers = [context.Process(target=worker, args=(args, port, ready, os.getpid()))
                   for _ in range(args.workers)]
        for process in workers:
            process.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: stopping.set())
        pids: list[int] = []
        deadline = time.monotonic() + 30
        while (len(pids) < len(workers) and not stopping.is_set() and time.monotonic() < deadline
               and all(process.exitcode is None for process in workers)):
            try:
                pids.append(ready.get(timeout=0.1))
            except queue.Empty:
                pass
        if len(pids) == len(workers):
            print(f"listening on {ADDRESS}:{port} (pid {os.getpid()}, "
                  f"{len(pids)} workers: {sorted(pids)})", flush=True)
        else:
            print(f"only {len(pids)} of {len(workers)} workers started", flush=True)
            stopping.set()
        reported: set[int] = set()
        while not stopping.wait(0.1):  # wakes for SIGTERM, or to look at the workers
            for process in workers:
                if process.exitcode is not None and process.pid not in reported:
                    reported.add(process.pid)  # exitcode reaps it: its pid is no longer ours
                    print(f"worker {process.pid} exited with code {process.exitcode}", flush=True)
            if len(reported) == len(workers):
                break
    # Never os.kill a pid we reaped already: the system may have given it to another process.
    # terminate() and kill() skip a worker that has exited.
    for process in workers:
        process.terminate()
    deadline = time.monotonic() + args.grace + 1
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in workers:
        if process.exitcode is None:
            print(f"worker {process.pid} still running after the grace: SIGKILL", flush=True)
            process.kill()
            process.join(5)
    codes = [process.exitcode for process in workers]
    print(f"workers exited with {codes}", flush=True)
    return 0 if all(code == 0 for code in codes) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["sync", "aio"], default="sync")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cpu-ms", type=float, default=0.0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--no-graceful", action="store_true")
    args = parser.parse_args()
    watch_parent()  # whoever started this process died, even by SIGKILL: shut down too
    if args.kind == "aio":
        return asyncio.run(serve_aio(args))
    if args.workers > 1:
        return serve_prefork(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
