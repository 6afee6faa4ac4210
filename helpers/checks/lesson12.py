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
from helpers.checks.core import (
    NOT_SOLVED,
    Mismatch,
    describe_rpc_error,
    exercise,
    expect,
    expect_gives_up,
    stuck_server,
    within,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

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


def _call_in_flight(server: processes.Process) -> tuple[threading.Thread, dict[str, Any]]:
    """Start Add(20, 22) on the script's server from a thread; return once the server has it.

    The thread puts the call's "reply" or "error" into the dict it returns."""
    outcome: dict[str, Any] = {}

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
    return caller, outcome


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
    with _start(script, name="check-12.1") as server:
        caller, outcome = _call_in_flight(server)
        server.signal(signal.SIGTERM)
        try:
            server.popen.wait(WAIT_121)
        except Exception:
            raise Mismatch(f"the server process was still running {WAIT_121:.2f} s after SIGTERM "
                           f"(the grace is {GRACE_121} s): a hang. Does the handler stop the "
                           "server, and does the main thread then return?")
        caller.join(10)
        code, lines = server.returncode, server.all_lines()
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
    expect(returned[0] == "returned 0", f"your function {returned[0]}, expected 0 (the exit "
           "code for a clean shutdown)")
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


RETURN_122 = 10  # seconds prefork may take to return once called


def _launcher_lines(server: processes.Process) -> list[str]:
    """Wait until the launcher returned and every worker it returned said whether it serves.

    Ends early on a line that already decides the check, or if the launcher exited; waits
    RETURN_122 s for prefork to return once called, then 20 s for the workers.
    """
    deadline = time.monotonic() + 30  # the script starting: imports, the .proto compiled
    called = returned = False
    while time.monotonic() < deadline and server.returncode is None:
        lines = list(server.lines)
        if any("inside the launcher" in line or "inherited" in line or "could not bind" in line
               for line in lines):
            break
        if not called and "calling prefork" in lines:
            called, deadline = True, time.monotonic() + RETURN_122
        back = next((line for line in lines if line.startswith("prefork returned")), None)
        if back and not returned:
            returned, deadline = True, time.monotonic() + 20
        if back and len([line for line in lines if line.startswith("worker ")]) >= int(back.split()[5]):
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
        lines = _launcher_lines(server)
        text = "\n".join(lines)
        if not any(line.startswith("prefork returned") for line in lines):
            if server.returncode is not None:
                raise _failure(text)
            inside = any("inside the launcher" in line for line in lines)
            raise Mismatch("serve_worker ran inside the launcher's own process, which then "
                           "served instead of returning: start each worker as a process" if inside
                           else f"prefork(3, serve_worker) did not return within {RETURN_122} s:"
                           " a hang. It must return once the workers are started, not wait for "
                           "them")
        returned = next(line for line in lines if line.startswith("prefork returned"))
        port = int(returned.split()[3])
        expect(port >= 1024, f"prefork returned port {port}: let the system pick a free port "
               "(bind port 0), never a fixed one")
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
            f"listening) and created no gRPC object for; {CHANNELS_122} connections were spread "
            "over them; SIGTERM stopped them all")


# --- 12.3 ------------------------------------------------------------------------------

# Each measured batch: (calls, wall seconds). Calls per batch vary, and one batch is lucky,
# so the median, the mean, the lowest and the highest rate all differ.
PLAN_123 = [(12, 0.10), (10, 0.04), (8, 0.11), (10, 0.09), (14, 0.12)]
PLAN_123_AGAIN = [(9, 0.06), (11, 0.13), (10, 0.045)]  # a second run, with other numbers
WARMUP_WALL = 0.25  # a cold batch: connections, caches


class FakeLoad:
    """Batches with known wall times; each call's latency is well below its batch's wall
    time (calls overlap, and none spans the whole batch), so latencies say nothing of it."""

    def __init__(self, warmup: int, plan: list[tuple[int, float]]):
        self.warmup, self.plan = warmup, plan
        self.walls: list[float] = []  # wall time of every batch, as measured here
        self.sizes: list[int] = []  # calls in every batch
        self.latencies: list[list[float]] = []  # what every batch returned

    def __call__(self) -> list[float]:
        index = len(self.walls)
        if index < self.warmup:
            calls, seconds = 10, WARMUP_WALL
        else:
            calls, seconds = self.plan[(index - self.warmup) % len(self.plan)]
        start = time.perf_counter()
        time.sleep(seconds)
        wall = time.perf_counter() - start  # on a busy machine, longer than planned
        self.walls.append(wall)
        self.sizes.append(calls)
        self.latencies.append([wall * (0.2 + 0.5 * i / calls) for i in range(calls)])
        return list(self.latencies[-1])


def _near(got: float, expected: float, tolerance: float) -> bool:
    return abs(got - expected) <= tolerance * abs(expected)


def _benchmark_once(benchmark: Callable, plan: list[tuple[int, float]], warmup: int) -> list[float]:
    """Run the learner's benchmark on a fake load; return the true rates of the repeats."""
    repeats = len(plan)
    load = FakeLoad(warmup, plan)
    result = within(30, lambda: benchmark(load, repeats=repeats, warmup=warmup),
                    "your benchmark is still running after 30 s")
    expect(isinstance(result, tuple) and len(result) == 3,
           f"return (median, low, high), got {result!r}")
    median, low, high = (float(x) for x in result)
    expect(low <= median <= high, f"({median:.0f}, {low:.0f}, {high:.0f}) is not in the order "
           "(median, low, high)")
    batches = len(load.walls)
    expect(batches == warmup + repeats,
           f"with repeats={repeats}, warmup={warmup}: run_batch was called {batches} times, "
           f"expected {warmup} warm-up + {repeats} measured batches")
    measured = list(zip(load.sizes[warmup:], load.walls[warmup:]))
    rates = [calls / wall for calls, wall in measured]
    latencies = load.latencies[warmup:]  # made from the measured walls: the same ratios under load
    wrong = {
        "the sum of latencies": [len(lat) / sum(lat) for lat in latencies],
        "the longest latency": [len(lat) / max(lat) for lat in latencies],
        "the mean latency": [len(lat) / statistics.mean(lat) for lat in latencies],
        "10 calls per batch": [10 / wall for _, wall in measured],
    }
    right = statistics.median(rates)
    for formula, values in wrong.items():
        if _near(statistics.median(values), right, 0.08):
            continue  # on this run the formula happens to give the right figure: no verdict
        expect(not _near(median, statistics.median(values), 0.08),
               f"median {median:.0f} calls/s is what {formula} gives: calls in flight overlap and "
               "no latency spans the whole batch; divide each batch's number of calls by its wall "
               "time, measured around run_batch()")
    expect(not (_near(median, statistics.mean(rates), 0.05)
                and not _near(median, statistics.median(rates), 0.05)),
           f"{median:.0f} calls/s is the mean of the repeats; one lucky repeat pulls it up: "
           "report the median")
    expect(_near(median, statistics.median(rates), 0.08),
           f"median {median:.0f} calls/s, expected about {statistics.median(rates):.0f} "
           f"(with repeats={repeats}, warmup={warmup}: the median of the measured batches' "
           "calls / wall time)")
    all_rates = [calls / wall for calls, wall in zip(load.sizes, load.walls)]
    expect(not (warmup and low < 0.7 * min(rates) and _near(low, min(all_rates), 0.15)),
           f"low {low:.0f} calls/s is a warm-up batch: leave the warm-up out of the numbers")
    expect(_near(low, min(rates), 0.1) and _near(high, max(rates), 0.15),
           f"spread {low:.0f}..{high:.0f} calls/s, expected the slowest and fastest measured "
           f"batch, about {min(rates):.0f}..{max(rates):.0f}")
    return rates


@exercise(
    "12.3",
    "A benchmark with warm-up and repeats",
    notebook=LESSON,
    hint="Which of the numbers you have says how long a batch took, when several calls of it "
    "were in flight at the same time? Not the latencies.",
    second_hint="A clock read just before and just after run_batch() gives the batch's wall time; "
    "the statistics module has the middle value of a list. The warm-up batches run but are "
    "never measured.",
)
def check_benchmark(benchmark: Callable) -> str:
    _benchmark_once(benchmark, PLAN_123, warmup=2)
    first = [calls / wall for calls, wall in PLAN_123]  # as planned (measured ones vary a little)
    _benchmark_once(benchmark, PLAN_123_AGAIN, warmup=0)  # other arguments; no state kept
    return (f"with (repeats=5, warmup=2) and (repeats=3, warmup=0): warm-up left out; median "
            f"about {statistics.median(first):.0f} calls/s, low..high about {min(first):.0f}.."
            f"{max(first):.0f}, from each batch's calls / wall time (latencies overlap)")


# --- 12.4 ------------------------------------------------------------------------------

class _Backend(Calculator):
    def __init__(self) -> None:
        self.calls = 0

    def Add(self, request, context):
        self.calls += 1
        time.sleep(0.1)  # a real backend takes a moment: a deadline of 0 s does not reach it
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


DEADLINE_124 = 5.0  # the statement: the backend call gives up within 5 s


@exercise(
    "12.4",
    "A trace that links two services",
    notebook=LESSON,
    hint="The backend only sees what travels with the call. Which OpenTelemetry module moves "
    "a context in and out of headers, and where does a gRPC call carry headers?",
    second_hint="The trace context to send is the one current while this call is made (it "
    "changes with every request); metadata is a sequence of (key, value) pairs.",
)
def check_linked_trace(add_on_backend: Callable) -> str:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = [server_interceptor(tracer_provider=provider)]
    backend = _Backend()
    add = calculator_pb2_grpc.add_CalculatorServicer_to_server
    requests = [(50, 8), (7, -5)]
    with serve(add, backend, name="check-12.4-backend", interceptors=traced) as back:
        frontend = _Frontend(back.target, add_on_backend)
        try:
            with serve(add, frontend, name="check-12.4-frontend", interceptors=traced) as front:
                with _plain_channel(front.target) as channel:
                    stub = calculator_pb2_grpc.CalculatorStub(channel)
                    results = [stub.Subtract(calculator_pb2.SubtractRequest(a=a, b=b), timeout=10).result
                               for a, b in requests]
        finally:
            frontend.channel.close()
    for (a, b), result in zip(requests, results):
        expect(result == a - b, f"Subtract({a}, {b}) answered {result}, expected {a - b}: the "
               f"backend's Add({a}, {-b}) through your function")
    expect(backend.calls == len(requests), f"the backend got {backend.calls} calls for "
           f"{len(requests)} requests, expected one each: call it through the stub")
    spans = exporter.get_finished_spans()
    fronts = sorted((s for s in spans if s.kind == SpanKind.SERVER and s.name.endswith("/Subtract")),
                    key=lambda s: s.start_time or 0)
    backs = sorted((s for s in spans if s.kind == SpanKind.SERVER and s.name.endswith("/Add")),
                   key=lambda s: s.start_time or 0)
    expect(len(fronts) == len(backs) == len(requests),
           f"expected a server span per call of each service, got {len(fronts)} and {len(backs)}")
    by_id = {span.context.span_id: span for span in spans}
    own_spans = 0
    for index, (front_span, back_span) in enumerate(zip(fronts, backs)):
        which = "first" if index == 0 else "second"
        reused = [f for f in fronts if f is not front_span
                  and f.context.trace_id == back_span.context.trace_id]
        expect(not reused, f"the {which} call's backend span is in another request's trace: the "
               "trace context was computed once and reused; send the one current at each call")
        expect(back_span.context.trace_id == front_span.context.trace_id,
               f"the backend's span ({which} call) is in a separate trace: the trace context did "
               "not travel with the call (put it in the call's metadata)")
        parent = back_span.parent.span_id if back_span.parent else None
        while parent in by_id and parent != front_span.context.span_id:
            above = by_id[parent].parent
            parent = above.span_id if above else None
        if parent is not None and parent not in by_id:
            own_spans += 1  # a span of yours (another tracer provider), in the same trace
            continue
        expect(parent == front_span.context.span_id,
               f"the backend's span ({which} call) is in the right trace but not under the "
               "frontend's span")
    deadlines: list[float | None] = []
    with stuck_server(deadlines=deadlines) as target:
        with _plain_channel(target) as channel:
            stuck = calculator_pb2_grpc.CalculatorStub(channel)
            error = expect_gives_up(lambda: add_on_backend(stuck, 1, 2), DEADLINE_124 + 3,
                                    "add_on_backend")
    given = deadlines[0] if deadlines else None
    if given is not None:  # None (no deadline): expect_gives_up has refused it already
        # gRPC may round a deadline up by about 1% on the way (lesson 13 measures it)
        expect(given <= DEADLINE_124 * 1.02,
               f"the backend saw a deadline of {given:.1f} s: the call must give up within "
               f"{DEADLINE_124:.0f} s (timeout=)")
    expect(error is not None, "add_on_backend returned when the backend never answered: let the "
           "failed call's error reach the caller (the frontend then fails the request)")
    expect(isinstance(error, grpc.RpcError)
           and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED,
           f"against a backend that never answers, add_on_backend raised {error!r}, expected the "
           "call's DEADLINE_EXCEEDED")
    via = f" (through {own_spans} span(s) of your own)" if own_spans else ""
    return (f"two requests, two traces: each backend Add span is under its own frontend "
            f"Subtract span{via}; a backend that never answers gives DEADLINE_EXCEEDED")


# --- 12.5 (challenge) ---------------------------------------------------------------------

CLEAN_SCRIPT = """\
import json, os, signal, sys, threading, time
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
import grpc
from concurrent import futures
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import server_interceptor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
sys.path += [{protos!r}, {scripts!r}]  # the .proto files; scripts/parent_watch.py
from parent_watch import watch_parent
calculator_pb2, calculator_pb2_grpc = grpc.protos_and_services("calculator.proto")
watch_parent()  # the check's process died: stop too

GRACE, DRAIN, DELAY = {grace!r}, {drain!r}, {delay!r}
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def say(line):
    os.write(1, (line + "\\n").encode())


class PrintingExporter(SpanExporter):
    \"\"\"Stands for an OTLP exporter: what it exports reached the collector.\"\"\"
    def export(self, spans):
        for span in spans:
            say(f"exported span {{span.name}}")
        return SpanExportResult.SUCCESS
    def shutdown(self):
        pass


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
    def __init__(self):
        self.statuses, self.not_serving_at = {{}}, None
        super().__init__()
    def set(self, service, status):
        self.statuses[service] = status
        if status == NOT_SERVING and self.not_serving_at is None:
            self.not_serving_at = time.monotonic()
        super().set(service, status)


class WatchedServer:
    def __init__(self, server, health):
        self._server, self._health = server, health
    def stop(self, grace=None):
        serving = sorted(name for name, status in self._health.statuses.items() if status == SERVING)
        since = (None if self._health.not_serving_at is None
                 else round(time.monotonic() - self._health.not_serving_at, 3))
        say(f"stop grace={{grace!r}} serving={{json.dumps(serving)}} after={{since!r}}")
        return self._server.stop(grace)
    def __getattr__(self, name):
        return getattr(self._server, name)


{source}

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(PrintingExporter(), schedule_delay_millis=600000))
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                     interceptors=[server_interceptor(tracer_provider=provider)])
calculator_pb2_grpc.add_CalculatorServicer_to_server(SlowCalculator(), server)
health_servicer = WatchedHealth()
health_servicer.set("", SERVING)
health_servicer.set("calculator.Calculator", SERVING)
health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
port = server.add_insecure_port("127.0.0.1:" + "0")
server.start()
say(f"listening on 127.0.0.1:{{port}}")
code = {name}(WatchedServer(server, health_servicer), health_servicer, GRACE, DRAIN, provider)
say(f"returned {{code!r}}")
os._exit(code)  # as a multiprocessing worker ends: no atexit hook runs, nothing flushes itself
"""

GRACE_125 = 2.5
DRAIN_125 = 0.8  # a load balancer's probe period, shortened
DELAY_125 = 1.6  # the call in flight: longer than the drain, shorter than drain + grace


def _probe_until_not_serving(probe: Any, seconds: float) -> str:
    """Ask health every 50 ms for up to `seconds`; return the first answer that is not SERVING
    (a status name, or the error code of a refused call), or "SERVING"."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            status = probe.Check(health_pb2.HealthCheckRequest(), timeout=2).status
            answer = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        except grpc.RpcError as error:
            return error.code().name
        if answer != "SERVING" or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


@exercise(
    "12.5",
    "Challenge: a shutdown that loses nothing",
    notebook=LESSON,
    hint="Three things can be lost at shutdown: traffic a load balancer still sends, calls in "
    "flight, and telemetry still in a buffer. Each step protects one of them; what does each "
    "step need to have finished before it runs?",
    second_hint="A probe must still reach the server after NOT_SERVING, so the server must not "
    "refuse calls yet. A span is exported only once its call has ended, and a TracerProvider "
    "has a method that exports what is buffered and closes it.",
)
def check_clean_shutdown(shut_down_cleanly: Callable) -> str:
    source = _source_of(shut_down_cleanly)
    script = _script(CLEAN_SCRIPT.format(protos=PROTOS, scripts=str(processes.SCRIPTS),
                                         grace=GRACE_125, drain=DRAIN_125, delay=DELAY_125,
                                         source=source, name=shut_down_cleanly.__name__))
    with _start(script, name="check-12.5") as server:
        caller, outcome = _call_in_flight(server)
        with _plain_channel(server.target) as probe_channel:
            probe = health_pb2_grpc.HealthStub(probe_channel)
            before = probe.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            expect(before == health_pb2.HealthCheckResponse.SERVING, "health said "
                   f"{health_pb2.HealthCheckResponse.ServingStatus.Name(before)} before any "
                   "SIGTERM: serve until SIGTERM comes, then shut down")
            server.signal(signal.SIGTERM)
            probed = _probe_until_not_serving(probe, DRAIN_125 * 0.7)  # a load balancer's probes
        wait = DRAIN_125 + GRACE_125 + 6
        try:
            server.popen.wait(wait)
        except Exception:
            raise Mismatch(f"the server process was still running {wait:.1f} s after SIGTERM: a "
                           "hang. Does every step end, and does your function return?")
        caller.join(10)
        code, lines = server.returncode, server.all_lines()
    expect(code != -signal.SIGTERM, "the server was killed by SIGTERM (exit code -15): no handler")
    returned = [line for line in lines if line.startswith("returned ")]
    if not returned and any(line.startswith("Traceback") for line in lines):
        raise _failure("\n".join(lines))
    stops = [line for line in lines if line.startswith("stop grace=")]
    expect(bool(stops), "server.stop(...) was never called after SIGTERM")
    grace, rest = stops[0].removeprefix("stop grace=").split(" serving=")
    serving, after = rest.split(" after=")
    expect(not json.loads(serving), f"health still said SERVING for {serving} when the server "
           "stopped: every service NOT_SERVING first")
    expect(probed == "NOT_SERVING", f"health probes during the {DRAIN_125} s after SIGTERM got "
           f"{probed}, never NOT_SERVING: the server stopped at once, so load balancers learn "
           "nothing; pause for `drain` seconds between NOT_SERVING and stop")
    waited = float(after)
    expect(waited < DRAIN_125 + 1.0, f"the server stopped {waited:.1f} s after NOT_SERVING; the "
           f"drain passed in was {DRAIN_125} s: use the argument")
    expect(waited >= DRAIN_125 * 0.9, f"the server stopped {waited:.2f} s after NOT_SERVING, "
           f"before the drain of {DRAIN_125} s was over: pause for `drain` seconds between "
           "NOT_SERVING and stop")
    error = outcome.get("error")
    expect(error is None, f"the call in flight was cut off ({describe_rpc_error(error)})"
           if error else "")
    expect(grace in (repr(GRACE_125), str(GRACE_125)),
           f"the server was stopped with grace={grace}, not the grace passed in ({GRACE_125})")
    exported = [line for line in lines if line.startswith("exported span ")]
    expect(any(line.endswith("/Add") for line in exported),
           "the span of the call in flight never reached the exporter: it was still in the "
           "BatchSpanProcessor's buffer (or not yet ended) when the process exited; flush the "
           "provider after the server has stopped" if not exported else
           "the spans before SIGTERM were exported but not the call in flight's: it ended after "
           "the flush; flush once the server has stopped")
    expect(bool(returned), "the process ended without your function returning: sys.exit() in "
           "the signal handler?")
    expect(returned[0] == "returned 0", f"your function {returned[0]}, expected 0")
    expect(code == 0, f"the server exited with code {code}, expected 0")
    return (f"SIGTERM: NOT_SERVING (a probe during the drain saw it), stop after {DRAIN_125} s of "
            f"drain with grace={GRACE_125}, the call in flight finished, its span was exported "
            "before exit, exit code 0")
