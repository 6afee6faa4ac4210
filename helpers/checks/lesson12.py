"""Checks for lesson 12, running it for real.

Exercises 12.1 and 12.2 are about processes, so their checks run your function
for real in a fresh Python process: the check writes a small script with your
function's source in it (from `inspect.getsource`), starts it with
helpers.processes, and watches what it prints and how it exits. Your function
must therefore be self-contained: the names the script provides are listed in
each exercise.
"""

from __future__ import annotations

import inspect
import itertools
import json
import signal
import statistics
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable

import grpc
from opentelemetry.instrumentation.grpc import server_interceptor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from helpers import processes
from helpers.checks.core import NOT_SOLVED, Mismatch, describe_rpc_error, exercise, expect
from helpers.reference import Calculator, calculator_pb2, calculator_pb2_grpc
from helpers.servers import serve

LESSON = "12_running_for_real"
PROTOS = str(processes.PROJECT_ROOT / "protos")
_ids = itertools.count(1)


def _source_of(function: Callable) -> str:
    expect(callable(function), f"expected a function, got {type(function).__name__}")
    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        raise Mismatch("could not read the function's source: define it with `def` in a cell")


def _script(body: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="grpc-course-12-"))
    path = folder / f"check_{next(_ids)}.py"
    path.write_text(body)
    return path


def _failure(process_output: str) -> Exception:
    """What to report when the script with the learner's code ended too early."""
    unsolved = NOT_SOLVED.search(process_output)
    if unsolved:  # the placeholder: check() then says "not solved yet", with no hint
        return NotImplementedError(unsolved.group(0))
    errors = [line for line in process_output.splitlines() if "Error" in line or "Exception" in line]
    last = errors[-1].strip() if errors else "no error message"
    return Mismatch(f"the process running your function ended early ({last})")


def _start(script: Path, name: str) -> processes.Process:
    """Start the check's script; turn a crash of the learner's code into a short message."""
    try:
        return processes.start(script, name=name)
    except (RuntimeError, TimeoutError) as error:
        raise _failure(str(error)) from None


def _plain_channel(target: str, options: list | None = None) -> grpc.Channel:
    """A channel without OpenTelemetry's client instrumentation, even if it is switched on."""
    make = getattr(grpc.insecure_channel, "__wrapped__", grpc.insecure_channel)
    return make(target, options=options or [])


# --- 12.1 ------------------------------------------------------------------------------

SIGTERM_SCRIPT = """\
import json, os, signal, sys, threading, time
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
import grpc
from concurrent import futures
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
sys.path += [{protos!r}, {scripts!r}]  # the .proto files; scripts/parent_watch.py
from parent_watch import watch_parent
calculator_pb2, calculator_pb2_grpc = grpc.protos_and_services("calculator.proto")
watch_parent()  # the check's process died: stop too

GRACE = {grace!r}
DELAY = {delay!r}
SERVING = health_pb2.HealthCheckResponse.SERVING


def say(line):
    os.write(1, (line + "\\n").encode())


class SlowCalculator(calculator_pb2_grpc.CalculatorServicer):
    def Add(self, request, context):
        deadline = time.monotonic() + 3  # give the main thread time to install its handler
        while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and time.monotonic() < deadline:
            time.sleep(0.01)
        say("call started")
        time.sleep(DELAY)
        say("call finished")
        return calculator_pb2.AddReply(result=request.a + request.b)


class WatchedHealth(health.HealthServicer):
    \"\"\"The real health service; remembers what each service was last set to.\"\"\"
    def __init__(self):
        self.statuses = {{}}
        super().__init__()
    def set(self, service, status):
        self.statuses[service] = status
        super().set(service, status)


class WatchedServer:
    \"\"\"The real server; prints the grace it is stopped with and what health said then.\"\"\"
    def __init__(self, server, health):
        self._server, self._health = server, health
    def stop(self, grace=None):
        serving = sorted(name for name, status in self._health.statuses.items() if status == SERVING)
        say(f"stop grace={{grace!r}} serving={{json.dumps(serving)}}")
        return self._server.stop(grace)
    def __getattr__(self, name):
        return getattr(self._server, name)


{source}

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
calculator_pb2_grpc.add_CalculatorServicer_to_server(SlowCalculator(), server)
health_servicer = WatchedHealth()
health_servicer.set("", SERVING)  # the whole server: what a Kubernetes gRPC probe asks
health_servicer.set("calculator.Calculator", SERVING)
health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
port = server.add_insecure_port("127.0.0.1:" + "0")
server.start()
say(f"listening on 127.0.0.1:{{port}}")
code = {name}(WatchedServer(server, health_servicer), health_servicer, GRACE)
say(f"returned {{code!r}}")
sys.exit(code)
"""

GRACE_121 = 3.25  # an unusual value: a hard-coded grace will not match it
DELAY_121 = 0.6  # the call in flight needs this long; well within the grace
WAIT_121 = GRACE_121 + 6  # how long the check waits for the process to end after SIGTERM


@exercise(
    "12.1",
    "Graceful shutdown on SIGTERM",
    notebook=LESSON,
    hint="Look at what Python does with SIGTERM by default, and at which thread runs a signal "
    "handler: the handler should start the shutdown, and the main thread should see it end.",
    second_hint="The health servicer has a method made for this moment (it covers every service, "
    "the empty name too). The server's stop does not block; wait_for_termination does.",
)
def check_graceful_shutdown(run_until_sigterm: Callable) -> str:
    source = _source_of(run_until_sigterm)
    script = _script(SIGTERM_SCRIPT.format(protos=PROTOS, scripts=str(processes.SCRIPTS),
                                           grace=GRACE_121, delay=DELAY_121, source=source,
                                           name=run_until_sigterm.__name__))
    outcome: dict[str, Any] = {}
    with _start(script, name="check-12.1") as server:
        def call() -> None:
            with _plain_channel(server.target) as channel:
                stub = calculator_pb2_grpc.CalculatorStub(channel)
                try:
                    outcome["reply"] = stub.Add(calculator_pb2.AddRequest(a=20, b=22), timeout=20)
                except grpc.RpcError as error:
                    outcome["error"] = error

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        try:
            server.wait_for("call started", 15)
        except (RuntimeError, TimeoutError):
            raise _failure(server.output()) from None
        server.signal(signal.SIGTERM)
        try:
            server.popen.wait(WAIT_121)
        except Exception:
            raise Mismatch(f"the server process was still running {WAIT_121:.2f} s after SIGTERM "
                           f"(the grace is {GRACE_121} s): a hang. Does the handler stop the "
                           "server, and does the main thread then return?")
        caller.join(10)
        code, lines = server.returncode, list(server.lines)
    expect(code != -signal.SIGTERM, "the server was killed by SIGTERM (exit code -15): no handler "
           "caught the signal, so the call in flight died with the process")
    returned = [line for line in lines if line.startswith("returned ")]
    if not returned and any(line.startswith("Traceback") for line in lines):
        raise _failure("\n".join(lines))  # the learner's function raised
    stops = [line for line in lines if line.startswith("stop grace=")]
    expect(bool(stops), "server.stop(...) was never called after SIGTERM")
    grace, serving = stops[0].removeprefix("stop grace=").split(" serving=")
    still = json.loads(serving)
    expect(not still, f"health still said SERVING for {', '.join(map(repr, still))} when the server "
           "stopped" + (" (the empty name is the whole server: what a Kubernetes probe asks by "
                        "default)" if "" in still else "")
           + ": every service must say NOT_SERVING first, so load balancers stop sending calls")
    expect(bool(returned), f"the process ended (exit code {code}) without your function returning: "
           "sys.exit() (or an exception) in the signal handler ends the main thread in the middle "
           "of its wait; let the handler only start the shutdown, and return from the function")
    error = outcome.get("error")
    expect(error is None, f"the call in flight was cut off ({describe_rpc_error(error)})"
           if error else "")
    expect("reply" in outcome and outcome["reply"].result == 42,
           "the call in flight got no reply")
    expect(grace in (repr(GRACE_121), repr(int(GRACE_121))) or grace == str(GRACE_121),
           f"the server was stopped with grace={grace}, not with the grace passed in "
           f"({GRACE_121}): use the argument")
    expect("call finished" in lines and lines.index(returned[0]) > lines.index("call finished"),
           "your function returned while the call in flight was still running: wait until the "
           "server has terminated, then return")
    expect(code == 0, f"the server exited with code {code} (your function {returned[0]}), "
           "expected 0: a clean shutdown")
    return (f"SIGTERM: health NOT_SERVING for every service (\"\" too), stop(grace={GRACE_121}), "
            "the call in flight finished (20 + 22 = 42), your function returned 0 after it")


# --- 12.2 ------------------------------------------------------------------------------

PREFORK_SCRIPT = """\
import gc, json, multiprocessing, multiprocessing.process, os, signal, socket, sys, threading, time
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
import grpc
import grpc.aio
from concurrent import futures
sys.path += [{protos!r}, {scripts!r}]  # the .proto files; scripts/parent_watch.py
from parent_watch import watch_parent
calculator_pb2, calculator_pb2_grpc = grpc.protos_and_services("calculator.proto")

# The launcher's pid: a spawned worker imports this file again, and must not take its own.
LAUNCHER = int(os.environ.setdefault("GRPC_COURSE_LAUNCHER", str(os.getpid())))


def say(line):
    \"\"\"One line, one write: lines of several processes and threads never mix.\"\"\"
    os.write(1, (line + "\\n").encode())


MADE = []  # the gRPC objects the launcher created, even if it closed them again


def recorded(module, name):
    make = getattr(module, name)

    def record(*args, **kwargs):
        if os.getpid() == LAUNCHER:
            MADE.append(module.__name__ + "." + name)
        return make(*args, **kwargs)
    setattr(module, name, record)


for module, name in [(grpc, "server"), (grpc, "insecure_channel"), (grpc, "secure_channel"),
                     (grpc.aio, "server"), (grpc.aio, "insecure_channel"), (grpc.aio, "secure_channel")]:
    recorded(module, name)


def sockets():
    \"\"\"The TCP sockets open in this process: [host, port, listening].\"\"\"
    found = []
    for o in gc.get_objects():
        if isinstance(o, socket.socket) and o.fileno() != -1 and o.type == socket.SOCK_STREAM:
            try:
                host, port = o.getsockname()[:2]
                listening = o.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            except OSError:
                continue
            found.append([host, port, bool(listening)])
    return found


def before_a_worker():
    if os.getpid() == LAUNCHER:
        say("new process " + json.dumps({{"made": MADE, "sockets": sockets()}}))


os.register_at_fork(before=before_a_worker)  # os.fork, and the "fork" start method
_start = multiprocessing.process.BaseProcess.start


def start(self):
    if getattr(self, "_start_method", None) != "fork":  # "spawn", "forkserver"
        before_a_worker()
    return _start(self)


multiprocessing.process.BaseProcess.start = start


class PidCalculator(calculator_pb2_grpc.CalculatorServicer):
    def Add(self, request, context):
        context.set_trailing_metadata((("served-by", str(os.getpid())),))
        return calculator_pb2.AddReply(result=request.a + request.b)


def serve_worker(port):
    \"\"\"Serve the calculator on 127.0.0.1:port in this process until SIGTERM.\"\"\"
    pid = os.getpid()
    if pid == LAUNCHER:
        say(f"worker inside the launcher {{pid}}")
        return
    watch_parent(LAUNCHER)  # the launcher died: stop too
    gc.collect()
    inherited = sorted({{type(o).__name__ for o in gc.get_objects()
                        if isinstance(o, (grpc.Server, grpc.Channel))}})
    if inherited:
        say(f"worker {{pid}} inherited {{inherited}}")
        os._exit(3)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.so_reuseport", 1)])
    calculator_pb2_grpc.add_CalculatorServicer_to_server(PidCalculator(), server)
    try:
        bound = server.add_insecure_port(f"127.0.0.1:{{port}}")
    except RuntimeError:
        say(f"worker {{pid}} could not bind port {{port}}")
        os._exit(4)
    server.start()
    say(f"worker {{pid}} serving port {{bound}}")
    signal.signal(signal.SIGTERM, lambda signum, frame: server.stop(1))
    server.wait_for_termination()


{source}

if __name__ == "__main__":
    watch_parent()  # the check's process died: stop too
    say("calling prefork")
    port, workers = {name}({n}, serve_worker)
    say(f"prefork returned port {{port}} and {{len(workers)}} workers")
    say(f"listening on 127.0.0.1:{{port}}")

    def forward(signum, frame):
        for worker in workers:
            if hasattr(worker, "terminate") and worker.is_alive():
                worker.terminate()

    signal.signal(signal.SIGTERM, forward)
    for worker in workers:
        worker.join()
    say("all workers stopped")
    sys.exit(0)
"""

WORKERS_122 = 3
CHANNELS_122 = 24  # a chance of 3 * (1/3)**24 that they all land on one worker


def _launcher_lines(server: processes.Process, seconds: float) -> list[str]:
    """Wait until the launcher returned and every worker said whether it serves.

    Ends early on a line that already decides the check, or if the launcher exited.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.returncode is None:
        lines = list(server.lines)
        if any("inside the launcher" in line or "inherited" in line or "could not bind" in line
               for line in lines):
            break
        returned = next((line for line in lines if line.startswith("prefork returned")), None)
        if returned and len([line for line in lines if line.startswith("worker ")]) >= WORKERS_122:
            break
        time.sleep(0.05)
    time.sleep(0.1)  # lines written at the same moment
    return list(server.lines)


@exercise(
    "12.2",
    "A pre-fork launcher",
    notebook=LESSON,
    hint="Follow gRPC's multiprocessing example (grpc/grpc, examples/python/multiprocessing): "
    "what does the launcher hold, in which state, while the workers start, and what must it "
    "never create?",
    second_hint="Two sockets may share a port only if every one of them asks for it (a socket "
    "option), and a socket that listens takes a share of the connections itself. multiprocessing "
    "gives you processes; the launcher returns once they are started.",
)
def check_prefork(prefork: Callable) -> str:
    source = _source_of(prefork)
    script = _script(PREFORK_SCRIPT.format(protos=PROTOS, scripts=str(processes.SCRIPTS),
                                           source=source, name=prefork.__name__, n=WORKERS_122))
    server = processes.start(script, name="check-12.2", wait_for_port=False)
    with server:
        lines = _launcher_lines(server, 25)
        text = "\n".join(lines)
        if not any(line.startswith("prefork returned") for line in lines):
            if server.returncode is not None:
                raise _failure(text)
            inside = any("inside the launcher" in line for line in lines)
            raise Mismatch("serve_worker ran inside the launcher's own process, which then "
                           "served instead of returning: start each worker as a process" if inside
                           else "prefork(3, serve_worker) did not return within 25 s: a hang. "
                           "It must return once the workers are started, not wait for them")
        returned = next(line for line in lines if line.startswith("prefork returned"))
        port = int(returned.split()[3])
        starts = [json.loads(line.removeprefix("new process ")) for line in lines
                  if line.startswith("new process ")]
        made = sorted({name for start in starts for name in start["made"]})
        expect(not made, f"the launcher created gRPC objects ({', '.join(made)}) before starting "
               "the workers, even if it closed them again: gRPC's threads and state do not "
               "survive a fork; create none in the launcher")
        inherited = [line for line in lines if "inherited" in line]
        expect(not inherited, f"a worker inherited gRPC objects from the launcher ({inherited[0]}"
               "): the launcher created a server or channel before forking" if inherited else "")
        inside = [line for line in lines if "inside the launcher" in line]
        expect(not inside, "serve_worker ran inside the launcher's own process (threads share "
               "one GIL): start each worker as a process")
        expect(bool(starts), "the launcher started no process")
        held = [[s for s in start["sockets"] if s[1] == port] for start in starts]
        expect(all(held), f"nothing in the launcher held port {port} while it started the workers: "
               "the reserving socket was closed (or never bound to that port) before forking, so "
               "another program could take the port; keep it open until they have started")
        listening = [s for group in held for s in group if s[2]]
        expect(not listening, "the launcher's socket listens on the port: the kernel hands it a "
               "share of the connections, and nobody accepts them (those calls hang); bind it, "
               "never listen")
        wildcard = [s for group in held for s in group if s[0] != "127.0.0.1"]
        expect(not wildcard, f"the reserving socket is bound to {wildcard[0][0] if wildcard else ''}"
               ": bind 127.0.0.1 (loopback) only")
        unbound = [line for line in lines if "could not bind" in line]
        expect(not unbound, "the workers could not bind the port the launcher reserved: the "
               "reserving socket needs SO_REUSEPORT too" if unbound else "")
        serving = {line.split()[1]: int(line.split()[-1]) for line in lines
                   if line.startswith("worker ") and " serving port " in line}
        expect(len(serving) == WORKERS_122,
               f"{len(serving)} worker process(es) served, expected n = {WORKERS_122}")
        elsewhere = sorted(p for p in serving.values() if p != port)
        expect(not elsewhere, f"workers served port(s) {elsewhere}, not the port prefork returned "
               f"({port}): pass every worker the reserved port")
        server.port = port
        pids = set()
        for _ in range(CHANNELS_122):
            with _plain_channel(server.target, [("grpc.use_local_subchannel_pool", 1)]) as channel:
                stub = calculator_pb2_grpc.CalculatorStub(channel)
                _, call = stub.Add.with_call(calculator_pb2.AddRequest(a=1, b=2), timeout=5,
                                             wait_for_ready=True)
                pids.add(dict(call.trailing_metadata())["served-by"])
        expect(str(server.pid) not in pids, "calls were answered by the launcher process itself")
        expect(pids <= set(serving), f"calls were served by {sorted(pids)}, not by the workers")
        expect(len(pids) >= 2, f"{CHANNELS_122} connections all went to one worker process")
        code = server.stop(timeout=10)
    expect(code == 0, f"the launcher exited with code {code} after SIGTERM, expected 0")
    return (f"{WORKERS_122} worker processes served the port the launcher held (bound, not "
            f"listening) and created no gRPC object for; {CHANNELS_122} connections reached "
            f"{len(pids)} of them; SIGTERM stopped them all")


# --- 12.3 ------------------------------------------------------------------------------

CALLS_PER_BATCH = 10


class FakeLoad:
    """Batches of 10 calls in flight, with known wall times: slow warm-ups, one fast repeat."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.batches = 0
        self.walls: list[float] = []  # wall time of every batch, as measured here

    def __call__(self) -> list[float]:
        index, self.batches = self.batches, self.batches + 1
        if index < self.warmup:
            seconds = 0.25  # cold: connections, caches
        elif index == self.warmup + 1:
            seconds = 0.01  # one lucky repeat
        else:
            seconds = 0.05
        start = time.perf_counter()
        time.sleep(seconds)
        self.walls.append(time.perf_counter() - start)
        return [seconds] * CALLS_PER_BATCH  # 10 calls in flight at once, each took `seconds`


def _near(got: float, expected: float, tolerance: float) -> bool:
    return abs(got - expected) <= tolerance * expected


@exercise(
    "12.3",
    "A benchmark with warm-up and repeats",
    notebook=LESSON,
    hint="Time each batch yourself with time.perf_counter() around run_batch(): calls per second "
    "is the number of calls divided by that wall time. Leave out the warm-up batches.",
    second_hint="Run `warmup` batches and ignore them; then for each of `repeats` batches, "
    "rates.append(len(latencies) / wall); return statistics.median(rates), min(rates), max(rates).",
)
def check_benchmark(benchmark: Callable) -> str:
    warmup, repeats = 2, 5
    load = FakeLoad(warmup)
    result = benchmark(load, repeats=repeats, warmup=warmup)
    expect(isinstance(result, tuple) and len(result) == 3,
           f"return (median, low, high), got {result!r}")
    median, low, high = (float(x) for x in result)
    expect(load.batches == warmup + repeats,
           f"run_batch was called {load.batches} times, expected {warmup} warm-up + {repeats} "
           "measured batches")
    rates = [CALLS_PER_BATCH / wall for wall in load.walls[warmup:]]
    from_latencies = CALLS_PER_BATCH / (CALLS_PER_BATCH * 0.05)
    expect(not _near(median, from_latencies, 0.3),
           f"median {median:.0f} calls/s is what the sum of latencies gives: 10 calls in flight "
           "overlap, so divide by the batch's wall time instead")
    expect(not _near(median, statistics.mean(rates), 0.1) or _near(median, statistics.median(rates), 0.1),
           f"{median:.0f} calls/s is the mean of the repeats; one lucky repeat pulls it up: "
           "report the median")
    expect(_near(median, statistics.median(rates), 0.15),
           f"median {median:.0f} calls/s, expected about {statistics.median(rates):.0f} "
           "(the median of the measured batches' calls / wall time)")
    with_warmup = [CALLS_PER_BATCH / wall for wall in load.walls]
    expect(not (low < 0.7 * min(rates) and _near(low, min(with_warmup), 0.3)),
           f"low {low:.0f} calls/s is a warm-up batch: leave the warm-up out of the numbers")
    expect(_near(low, min(rates), 0.15) and _near(high, max(rates), 0.3),
           f"spread {low:.0f}..{high:.0f} calls/s, expected the slowest and fastest measured "
           f"batch, about {min(rates):.0f}..{max(rates):.0f}")
    return (f"{warmup} warm-up batches left out; the median, lowest and highest calls/s of "
            f"{repeats} repeats, from wall time")


# --- 12.4 ------------------------------------------------------------------------------

class _Backend(Calculator):
    def __init__(self) -> None:
        self.calls = 0

    def Add(self, request, context):
        self.calls += 1
        return super().Add(request, context)


class _Frontend(calculator_pb2_grpc.CalculatorServicer):
    """Subtract(a, b) is the backend's Add(a, -b), through the learner's function."""

    def __init__(self, backend_target: str, add_on_backend: Callable) -> None:
        self.channel = _plain_channel(backend_target)
        self.backend = calculator_pb2_grpc.CalculatorStub(self.channel)
        self.add_on_backend = add_on_backend

    def Subtract(self, request, context):
        return calculator_pb2.SubtractReply(
            result=self.add_on_backend(self.backend, request.a, -request.b))


@exercise(
    "12.4",
    "A trace that links two services",
    notebook=LESSON,
    hint="The backend only sees what travels with the call. OpenTelemetry's propagate module can "
    "write the current trace context into a dict, and gRPC metadata can carry it.",
    second_hint="carrier = {}; propagate.inject(carrier); reply = stub.Add(calculator_pb2."
    "AddRequest(a=a, b=b), metadata=list(carrier.items()), timeout=5); return reply.result",
)
def check_linked_trace(add_on_backend: Callable) -> str:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = [server_interceptor(tracer_provider=provider)]
    backend = _Backend()
    add = calculator_pb2_grpc.add_CalculatorServicer_to_server
    with serve(add, backend, name="check-12.4-backend", interceptors=traced) as back:
        frontend = _Frontend(back.target, add_on_backend)
        try:
            with serve(add, frontend, name="check-12.4-frontend", interceptors=traced) as front:
                with _plain_channel(front.target) as channel:
                    stub = calculator_pb2_grpc.CalculatorStub(channel)
                    reply = stub.Subtract(calculator_pb2.SubtractRequest(a=50, b=8), timeout=10)
        finally:
            frontend.channel.close()
    expect(reply.result == 42, f"Subtract(50, 8) answered {reply.result}, expected 42")
    expect(backend.calls == 1, f"the backend got {backend.calls} calls, expected 1: call it "
           "through the stub")
    spans = exporter.get_finished_spans()
    servers = {span.name.rsplit("/", 1)[-1]: span for span in spans if span.kind == SpanKind.SERVER}
    front_span, back_span = servers.get("Subtract"), servers.get("Add")
    expect(front_span is not None and back_span is not None,
           f"expected a server span for each service, got {sorted(servers)}")
    expect(back_span.context.trace_id == front_span.context.trace_id,
           "the backend's span is in a separate trace: the trace context did not travel "
           "with the call (put it in the call's metadata)")
    by_id = {span.context.span_id: span for span in spans}
    parent = back_span.parent.span_id if back_span.parent else None
    while parent is not None and parent != front_span.context.span_id:
        parent = by_id[parent].parent.span_id if parent in by_id and by_id[parent].parent else None
    expect(parent == front_span.context.span_id,
           "the backend's span is in the right trace but not under the frontend's span")
    return "Subtract → Add: the backend's server span is a child of the frontend's, one trace"
