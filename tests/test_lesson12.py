"""Lesson 12: helpers.processes leaves nothing behind; the scripts shut down cleanly;
the checks pass right answers and reject the mistakes learners make.

No test here asserts a timing: the numbers the lesson measures are shown, not tested.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time

import grpc
import pytest
from conftest import WrongAnswer, passes, rejects
from opentelemetry import propagate

from helpers import processes, telemetry
from helpers.reference import calculator_pb2, calculator_pb2_grpc

from grpc_health.v1 import health_pb2

# --- helpers.processes ------------------------------------------------------------------


def gone(pid: int) -> bool:
    """True once no process `pid` exists (a zombie not yet reaped counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_gone(pids: list[int], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def worker_pids(line: str) -> list[int]:
    """The pids in a pre-fork `listening on` line: `... 2 workers: [123, 456])`."""
    return json.loads(line.split("workers: ")[1].rstrip(")"))


def test_a_failing_block_still_stops_the_server_and_its_workers() -> None:
    pids: list[int] = []
    with pytest.raises(ZeroDivisionError):
        with processes.start("calculator_server.py", "--workers", "2", name="t-fail") as server:
            pids = [server.pid, *worker_pids(server.lines[0])]
            assert len(pids) == 3 and not any(gone(pid) for pid in pids)
            1 / 0  # a cell that fails half-way
    assert wait_gone(pids), "a process outlived the block that started it"
    assert "t-fail" not in processes.running()


def test_starting_the_same_name_again_replaces_the_old_process() -> None:
    first = processes.start("calculator_server.py", name="t-same")
    second = processes.start("calculator_server.py", name="t-same")
    try:
        assert first.returncode == 0  # stopped gracefully before the second one started
        assert second.returncode is None and second.port != 0
    finally:
        second.stop()
    assert wait_gone([first.pid, second.pid])


def test_stop_all_stops_everything_even_a_process_that_ignores_sigterm() -> None:
    stubborn = processes.start("calculator_server.py", "--no-graceful", name="t-stubborn")
    stubborn.signal(signal.SIGSTOP)  # it can no longer act on SIGTERM
    other = processes.start("calculator_server.py", name="t-other")
    processes.stop_all(timeout=1)
    assert wait_gone([stubborn.pid, other.pid])
    assert processes.running() == {}


def test_a_script_that_dies_before_its_port_is_reported_with_its_output(tmp_path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("print('about to fail', flush=True)\nraise SystemExit(3)\n")
    with pytest.raises(RuntimeError, match="exited with code 3"):
        processes.start(script, name="t-broken")
    assert "t-broken" not in processes.running()


# --- the scripts --------------------------------------------------------------------------


def call_add(target: str, timeout: float = 10) -> tuple[int, str]:
    with grpc.insecure_channel(target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        reply, call = stub.Add.with_call(calculator_pb2.AddRequest(a=20, b=22), timeout=timeout)
    return reply.result, dict(call.trailing_metadata())["served-by"]


@pytest.mark.parametrize("args", [[], ["--kind", "aio"], ["--workers", "2"]],
                         ids=["sync", "aio", "prefork"])
def test_sigterm_lets_a_call_in_flight_finish_and_exits_0(args: list[str]) -> None:
    import threading

    with processes.start("calculator_server.py", "--delay-ms", "800", *args, name="t-sig") as server:
        results: list = []
        caller = threading.Thread(target=lambda: results.append(call_add(server.target)))
        caller.start()
        time.sleep(0.3)  # the call is now waiting in the handler
        code = server.stop()
        caller.join(10)
    assert code == 0
    assert results and results[0][0] == 42
    assert any("NOT_SERVING" in line for line in server.lines)


def test_without_a_handler_sigterm_kills_the_call_in_flight() -> None:
    with processes.start("calculator_server.py", "--delay-ms", "2000", "--no-graceful",
                         name="t-nohandler") as server:
        with grpc.insecure_channel(server.target) as channel:
            stub = calculator_pb2_grpc.CalculatorStub(channel)
            future = stub.Add.future(calculator_pb2.AddRequest(a=1, b=2), timeout=10)
            time.sleep(0.3)
            code = server.stop()
            with pytest.raises(grpc.RpcError) as error:
                future.result()
    assert code == -signal.SIGTERM
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_load_generator_reports_walls_latencies_and_pids() -> None:
    with processes.start("calculator_server.py", "--workers", "2", name="t-load") as server:
        load = processes.start("load.py", server.target, "--calls", "40", "--repeats", "2",
                               "--warmup", "5", "--channels", "4", "--concurrency", "4",
                               wait_for_port=False, name="t-loadgen")
        assert load.popen.wait(60) == 0
        load.stop()
    result = json.loads(load.lines[-1])
    assert len(result["walls"]) == 2 and [len(x) for x in result["latencies"]] == [40, 40]
    assert set(result["pids"]) <= {str(pid) for pid in worker_pids(server.lines[0])}


def test_the_trace_tree_shows_one_tree_per_trace() -> None:
    exporter = telemetry.span_exporter()
    tracer = telemetry.tracer_provider().get_tracer("test")
    with tracer.start_as_current_span("outer"):
        with tracer.start_as_current_span("inner"):
            pass
    with tracer.start_as_current_span("alone"):
        pass
    spans = exporter.get_finished_spans()
    assert telemetry.tree(spans) == ("trace 1:\nouter (INTERNAL)\n└─ inner (INTERNAL)\n"
                                     "trace 2:\nalone (INTERNAL)")
    assert len(telemetry.trace_ids(spans)) == 2
    assert telemetry.span_exporter() is exporter and not exporter.get_finished_spans()


# --- reference answers (the notebook's solutions) and correct variants ---------------------


def run_until_sigterm(server, health, grace):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        server.stop(grace)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 0


def run_until_sigterm_with_an_event(server, health, grace):
    import threading

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    stopping.wait()
    health.enter_graceful_shutdown()
    server.stop(grace=grace).wait()
    return 0


def run_until_sigterm_with_a_drain_pause(server, health, grace):
    """NOT_SERVING, a pause for load balancers to notice, then stop; SIGINT too."""
    def on_signal(signum, frame):
        health.enter_graceful_shutdown()
        time.sleep(0.2)
        server.stop(grace)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    server.wait_for_termination()
    return 0


def prefork(n, serve_worker):
    import multiprocessing
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=serve_worker, args=(port,)) for _ in range(n)]
    for worker in workers:
        worker.start()
    return port, workers


def prefork_with_spawn(n, serve_worker):
    """The "spawn" start method: each worker is a fresh interpreter (serve_worker must be
    importable, as it is in a script)."""
    import multiprocessing
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=serve_worker, args=(port,)) for _ in range(n)]
    for worker in workers:
        worker.start()
    return port, workers


def shut_down_cleanly(server, health, grace, drain, provider):
    import threading

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    stopping.wait()
    health.enter_graceful_shutdown()
    time.sleep(drain)
    server.stop(grace).wait()
    provider.shutdown()
    return 0


def shut_down_cleanly_in_the_handler(server, health, grace, drain, provider):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        time.sleep(drain)
        server.stop(grace)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    provider.force_flush()
    return 0


def no_drain(server, health, grace, drain, provider):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        server.stop(grace)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    provider.shutdown()
    return 0


def flushes_before_stopping(server, health, grace, drain, provider):
    def on_sigterm(signum, frame):
        provider.shutdown()  # "flush first, while everything still works"
        health.enter_graceful_shutdown()
        time.sleep(drain)
        server.stop(grace)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 0


def never_flushes(server, health, grace, drain, provider):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        time.sleep(drain)
        server.stop(grace)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 0


def flushes_before_the_calls_end(server, health, grace, drain, provider):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        time.sleep(drain)
        server.stop(grace)
        provider.shutdown()

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 0


def hard_codes_the_drain(server, health, grace, drain, provider):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        time.sleep(2)
        server.stop(grace)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    provider.shutdown()
    return 0


def drains_after_stopping(server, health, grace, drain, provider):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        server.stop(grace)
        time.sleep(drain)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    provider.shutdown()
    return 0


def benchmark(run_batch, repeats=5, warmup=1):
    for _ in range(warmup):
        run_batch()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        latencies = run_batch()
        rates.append(len(latencies) / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def benchmark_from_walls(run_batch, repeats=5, warmup=1):
    for _ in range(warmup):
        run_batch()
    measured = []
    for _ in range(repeats):
        start = time.monotonic()
        count = len(run_batch())
        measured.append(count / (time.monotonic() - start))
    measured.sort()
    return measured[len(measured) // 2], measured[0], measured[-1]


def add_on_backend(stub, a, b):
    carrier = {}
    propagate.inject(carrier)
    reply = stub.Add(calculator_pb2.AddRequest(a=a, b=b), metadata=list(carrier.items()),
                     timeout=5)
    return reply.result


def add_on_backend_in_a_client_span(stub, a, b):
    """A CLIENT span of its own, from the global tracer provider (the notebook's)."""
    from opentelemetry import trace

    tracer = trace.get_tracer("frontend")
    with tracer.start_as_current_span("call Add", kind=trace.SpanKind.CLIENT):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return stub.Add(calculator_pb2.AddRequest(a=a, b=b), metadata=tuple(carrier.items()),
                        timeout=3).result


def add_on_backend_with_tuples(stub, a, b):
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    reply, _ = stub.Add.with_call(calculator_pb2.AddRequest(a=a, b=b),
                                  metadata=tuple(carrier.items()), timeout=5)
    return reply.result


@pytest.mark.parametrize("exercise, answer", [
    ("12.1", run_until_sigterm), ("12.1", run_until_sigterm_with_an_event),
    ("12.1", run_until_sigterm_with_a_drain_pause),
    ("12.2", prefork), ("12.2", prefork_with_spawn),
    ("12.3", benchmark), ("12.3", benchmark_from_walls),
    ("12.4", add_on_backend), ("12.4", add_on_backend_with_tuples),
    ("12.4", add_on_backend_in_a_client_span),
    ("12.5", shut_down_cleanly), ("12.5", shut_down_cleanly_in_the_handler),
], ids=lambda x: getattr(x, "__name__", x))
def test_right_answers_pass(capsys, exercise: str, answer) -> None:
    passes(capsys, exercise, answer)


# --- wrong answers ------------------------------------------------------------------------

def stops_without_grace(server, health, grace):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        server.stop(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 0


def no_handler(server, health, grace):
    server.wait_for_termination()
    return 0


def exits_non_zero(server, health, grace):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        server.stop(grace)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 1


def forgets_health(server, health, grace):
    signal.signal(signal.SIGTERM, lambda signum, frame: server.stop(grace))
    server.wait_for_termination()
    return 0


def hard_codes_grace(server, health, grace):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        server.stop(10)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 0


def calculator_only_not_serving(server, health, grace):
    def on_sigterm(signum, frame):
        health.set("calculator.Calculator", health_pb2.HealthCheckResponse.NOT_SERVING)
        server.stop(grace)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 0


def exits_in_the_handler(server, health, grace):
    def on_sigterm(signum, frame):
        health.enter_graceful_shutdown()
        server.stop(grace).wait()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 0


def stops_before_health(server, health, grace):
    def on_sigterm(signum, frame):
        server.stop(grace)
        health.enter_graceful_shutdown()

    signal.signal(signal.SIGTERM, on_sigterm)
    server.wait_for_termination()
    return 0


def returns_without_waiting(server, health, grace):
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    while not stopping:
        time.sleep(0.05)
    health.enter_graceful_shutdown()
    server.stop(grace)
    return 0


def reserves_without_reuseport(n, serve_worker):
    import multiprocessing
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    workers = [multiprocessing.get_context("fork").Process(target=serve_worker, args=(port,))
               for _ in range(n)]
    for worker in workers:
        worker.start()
    return port, workers


def forks_after_making_a_channel(n, serve_worker):
    import multiprocessing
    import socket

    import grpc

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as probe:  # "is the port free?"
        probe.close()
    workers = [multiprocessing.get_context("fork").Process(target=serve_worker, args=(port,))
               for _ in range(n)]
    for worker in workers:
        worker.start()
    return port, workers


def closes_the_socket_before_forking(n, serve_worker):
    import multiprocessing
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workers = [multiprocessing.get_context("fork").Process(target=serve_worker, args=(port,))
               for _ in range(n)]
    for worker in workers:
        worker.start()
    return port, workers


def listens_on_the_reserved_port(n, serve_worker):
    import multiprocessing
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    workers = [multiprocessing.get_context("fork").Process(target=serve_worker, args=(port,))
               for _ in range(n)]
    for worker in workers:
        worker.start()
    return port, workers


def waits_for_the_workers(n, serve_worker):
    import multiprocessing
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    workers = [multiprocessing.get_context("fork").Process(target=serve_worker, args=(port,))
               for _ in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return port, workers


def serves_in_the_launcher(n, serve_worker):
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    for _ in range(n):
        serve_worker(port)
    return port, []


def uses_threads(n, serve_worker):
    import socket
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    workers = [threading.Thread(target=serve_worker, args=(port,), daemon=True) for _ in range(n)]
    for worker in workers:
        worker.start()
    return port, workers


def ignores_n(n, serve_worker):
    import multiprocessing
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    worker = multiprocessing.get_context("fork").Process(target=serve_worker, args=(port,))
    worker.start()
    return port, [worker]


def from_sum_of_latencies(run_batch, repeats=5, warmup=1):
    for _ in range(warmup):
        run_batch()
    rates = []
    for _ in range(repeats):
        latencies = run_batch()
        rates.append(len(latencies) / sum(latencies))  # seed 004's formula
    return statistics.median(rates), min(rates), max(rates)


def with_the_mean(run_batch, repeats=5, warmup=1):
    for _ in range(warmup):
        run_batch()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        latencies = run_batch()
        rates.append(len(latencies) / (time.perf_counter() - start))
    return statistics.mean(rates), min(rates), max(rates)


def without_warmup(run_batch, repeats=5, warmup=1):
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        latencies = run_batch()
        rates.append(len(latencies) / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def measures_the_warmup_too(run_batch, repeats=5, warmup=1):
    rates = []
    for _ in range(warmup + repeats):
        start = time.perf_counter()
        latencies = run_batch()
        rates.append(len(latencies) / (time.perf_counter() - start))
    return statistics.median(rates[warmup:]), min(rates), max(rates)


def no_metadata(stub, a, b):
    return stub.Add(calculator_pb2.AddRequest(a=a, b=b), timeout=5).result


def pasted_traceparent(stub, a, b):
    metadata = [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    return stub.Add(calculator_pb2.AddRequest(a=a, b=b), metadata=metadata, timeout=5).result


def computes_locally(stub, a, b):
    return a + b


_CACHED: dict[str, str] = {}


def caches_the_traceparent(stub, a, b):
    if not _CACHED:
        propagate.inject(_CACHED)  # "computed once, it is the same header every time"
    return stub.Add(calculator_pb2.AddRequest(a=a, b=b), metadata=list(_CACHED.items()),
                    timeout=5).result


def swallows_the_error(stub, a, b):
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    try:
        return stub.Add(calculator_pb2.AddRequest(a=a, b=b), metadata=list(carrier.items()),
                        timeout=5).result
    except grpc.RpcError:
        return 0


def six_seconds(stub, a, b):
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return stub.Add(calculator_pb2.AddRequest(a=a, b=b), metadata=list(carrier.items()),
                    timeout=6).result


def no_deadline(stub, a, b):
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return stub.Add(calculator_pb2.AddRequest(a=a, b=b), metadata=list(carrier.items())).result


def from_the_longest_latency(run_batch, repeats=5, warmup=1):
    for _ in range(warmup):
        run_batch()
    rates = []
    for _ in range(repeats):
        latencies = run_batch()
        rates.append(len(latencies) / max(latencies))  # "the batch lasts as long as its slowest call"
    return statistics.median(rates), min(rates), max(rates)


def from_the_mean_latency(run_batch, repeats=5, warmup=1):
    for _ in range(warmup):
        run_batch()
    rates = []
    for _ in range(repeats):
        latencies = run_batch()
        rates.append(len(latencies) / statistics.mean(latencies))
    return statistics.median(rates), min(rates), max(rates)


def assumes_ten_calls(run_batch, repeats=5, warmup=1):
    for _ in range(warmup):
        run_batch()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_batch()
        rates.append(10 / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def hard_codes_five_repeats(run_batch, repeats=5, warmup=1):
    for _ in range(warmup):
        run_batch()
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        latencies = run_batch()
        rates.append(len(latencies) / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def keeps_rates_between_runs(run_batch, repeats=5, warmup=1, rates=[]):  # noqa: B006
    for _ in range(warmup):
        run_batch()
    for _ in range(repeats):
        start = time.perf_counter()
        latencies = run_batch()
        rates.append(len(latencies) / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def low_median_high(run_batch, repeats=5, warmup=1):
    for _ in range(warmup):
        run_batch()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        latencies = run_batch()
        rates.append(len(latencies) / (time.perf_counter() - start))
    return min(rates), statistics.median(rates), max(rates)


WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("12.1", "stop(0) on SIGTERM", (stops_without_grace,), "the call in flight was cut off"),
    WrongAnswer("12.1", "no SIGTERM handler", (no_handler,), "killed by SIGTERM"),
    WrongAnswer("12.1", "exits non-zero", (exits_non_zero,), "your function returned 1, expected 0"),
    WrongAnswer("12.1", "health left SERVING", (forgets_health,), "health still said SERVING"),
    WrongAnswer("12.1", "hard-codes the grace", (hard_codes_grace,), "not with the grace passed in"),
    WrongAnswer("12.1", "NOT_SERVING for calculator.Calculator only", (calculator_only_not_serving,),
                "health still said SERVING for ''"),
    WrongAnswer("12.1", "sys.exit() in the signal handler", (exits_in_the_handler,),
                "sys.exit() (or an exception) in the signal handler"),
    WrongAnswer("12.1", "stop(grace) before NOT_SERVING", (stops_before_health,),
                "health still said SERVING"),
    WrongAnswer("12.1", "returns without waiting for the server", (returns_without_waiting,),
                "returned while the call in flight was still running"),
    WrongAnswer("12.2", "binds without SO_REUSEPORT", (reserves_without_reuseport,),
                "needs SO_REUSEPORT"),
    WrongAnswer("12.2", "opens and closes a channel before forking", (forks_after_making_a_channel,),
                "the launcher created gRPC objects (grpc.insecure_channel)"),
    WrongAnswer("12.2", "threads instead of processes", (uses_threads,),
                "inside the launcher's own process"),
    WrongAnswer("12.2", "ignores n", (ignores_n,), "1 worker process(es) served, expected n = 3"),
    WrongAnswer("12.2", "closes the reserving socket before forking",
                (closes_the_socket_before_forking,), "the reserving socket was closed"),
    WrongAnswer("12.2", "listens on the reserved port", (listens_on_the_reserved_port,),
                "bind it, never listen"),
    WrongAnswer("12.2", "joins the workers before returning", (waits_for_the_workers,),
                "did not return within 10 s: a hang"),
    WrongAnswer("12.2", "serves in the launcher itself", (serves_in_the_launcher,),
                "inside the launcher's own process"),
    WrongAnswer("12.3", "throughput from the sum of latencies", (from_sum_of_latencies,),
                "sum of latencies"),
    WrongAnswer("12.3", "mean instead of median", (with_the_mean,), "the mean of the repeats"),
    WrongAnswer("12.3", "no warm-up", (without_warmup,), "run_batch was called 5 times"),
    WrongAnswer("12.3", "warm-up counted in the spread", (measures_the_warmup_too,),
                "is a warm-up batch"),
    WrongAnswer("12.3", "throughput from the longest latency", (from_the_longest_latency,),
                "the longest latency"),
    WrongAnswer("12.3", "throughput from the mean latency", (from_the_mean_latency,),
                "the mean latency"),
    WrongAnswer("12.3", "assumes 10 calls per batch", (assumes_ten_calls,), "10 calls per batch"),
    WrongAnswer("12.3", "hard-codes 5 repeats", (hard_codes_five_repeats,),
                "with repeats=3, warmup=0: run_batch was called 5 times"),
    WrongAnswer("12.3", "keeps its rates between runs", (keeps_rates_between_runs,),
                "with repeats=3, warmup=0: the median"),
    WrongAnswer("12.3", "(low, median, high)", (low_median_high,), "not in the order"),
    WrongAnswer("12.4", "a traceparent computed once and cached", (caches_the_traceparent,),
                "computed once and reused"),
    WrongAnswer("12.4", "swallows the backend's error", (swallows_the_error,),
                "let the failed call's error reach the caller"),
    WrongAnswer("12.4", "no deadline on the backend call", (no_deadline,),
                "give every call a deadline"),
    WrongAnswer("12.4", "a deadline of 6 s, one more than the statement's 5", (six_seconds,),
                "the call must give up within 5 s"),
    WrongAnswer("12.5", "no drain pause", (no_drain,), "pause for `drain` seconds"),
    WrongAnswer("12.5", "flushes before stopping", (flushes_before_stopping,),
                "it ended after the flush"),
    WrongAnswer("12.5", "never flushes (a worker runs no atexit hook)", (never_flushes,),
                "never reached the exporter"),
    WrongAnswer("12.5", "flushes before the calls in flight end", (flushes_before_the_calls_end,),
                "it ended after the flush"),
    WrongAnswer("12.5", "hard-codes a 2 s drain", (hard_codes_the_drain,), "use the argument"),
    WrongAnswer("12.5", "drains after stopping", (drains_after_stopping,),
                "pause for `drain` seconds"),
    WrongAnswer("12.4", "no trace context in the metadata", (no_metadata,), "separate trace"),
    WrongAnswer("12.4", "a traceparent pasted from an output", (pasted_traceparent,),
                "separate trace"),
    WrongAnswer("12.4", "computes locally instead of calling", (computes_locally,),
                "the backend got 0 calls"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


def test_no_check_leaves_a_process_behind() -> None:
    assert processes.running() == {}


def test_a_kernel_that_ends_after_a_failing_cell_leaves_no_process_behind() -> None:
    """In a notebook: a server started in a `with` block whose cell fails, and one started
    without a block, are both gone once the kernel has shut down."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import helpers\nfrom helpers import processes\n"
            "kept = processes.start('calculator_server.py', '--workers', '2', name='kept')\n"
            "print('pids', kept.pid, kept.lines[0].split('workers: ')[1].rstrip(')'))"),
        nbformat.v4.new_code_cell(
            "with processes.start('calculator_server.py', name='failing') as failing:\n"
            "    print('pid', failing.pid)\n"
            "    1 / 0"),
        nbformat.v4.new_code_cell("print('pid', failing.pid, failing.returncode)"),
    ]
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True)
    client.execute()  # starts a kernel, runs the cells, shuts the kernel down
    first = notebook.cells[0].outputs[0].text.split()
    pids = [int(first[1]), *json.loads(" ".join(first[2:]))]
    assert notebook.cells[1].outputs[-1].ename == "ZeroDivisionError"
    failing_pid, code = notebook.cells[2].outputs[0].text.split()[1:]
    assert code == "0"  # stopped (gracefully) as the failing cell left its block
    assert wait_gone([*pids, int(failing_pid)]), "a process outlived the kernel"
