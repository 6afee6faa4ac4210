"""Checks for lesson 13, testing gRPC services: they judge the learner's TESTS.

Each check runs the learner's test against correct implementations (the test must pass)
and against broken ones (the test must fail), like mutation testing. A test that passes
on a broken implementation missed that bug; one that fails on a correct one is wrong too.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import pytest

from helpers.checks.core import NOT_SOLVED, Mismatch, exercise, expect
from helpers.reference import Calculator, calculator_pb2 as pb2
from helpers.reference.contracts import file_descriptor

LESSON = "13_testing"
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED
Implementation = tuple[str, Any]  # (what it does, the object handed to the learner's test)


def _short(error: BaseException) -> str:
    """One line for an exception raised by the learner's test."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def _run(test: Callable[[Any], Any], argument: Any, seconds: float, against: str
         ) -> tuple[BaseException | None, float]:
    """Run test(argument) in a thread; (what it raised or None, seconds it took).

    A test still running after `seconds` fails the check: its waits need a bound.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            test(argument)
        except BaseException as error:  # the learner's test failed: that is a verdict
            outcome["error"] = error

    start = time.perf_counter()
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    took = time.perf_counter() - start
    expect(not worker.is_alive(),
           f"your test was still running after {seconds:.0f} s against {against}: give every "
           "wait in a test a bound (a timeout on each call, `event.wait(seconds)`)")
    return outcome.get("error"), took


def _judge(test: Callable[[Any], Any], what: str, correct: list[Implementation],
           broken: list[Implementation], seconds: float = 10) -> float:
    """The learner's test must pass on every correct `what` and fail on every broken one.

    Returns the longest time one run of the test took.
    """
    expect(callable(test), f"expected your test function, got {test!r}")
    longest = 0.0  # on correct implementations: a broken one may keep a test waiting longer
    for description, implementation in correct:
        error, took = _run(test, implementation, seconds, f"a correct {what} ({description})")
        longest = max(longest, took)
        if isinstance(error, NotImplementedError):
            raise error  # still the placeholder: the check says "not solved yet"
        if error is not None:
            raise Mismatch(f"your test fails on a correct {what} ({description}) with "
                           f"{_short(error)}")
    for description, implementation in broken:
        error, _ = _run(test, implementation, seconds, f"a broken {what} that {description}")
        if error is None:
            raise Mismatch(f"your test passed on a broken {what} that {description}: "
                           "add an assertion that catches it")
    return longest


@contextlib.contextmanager
def _watching_grpc() -> Iterator[dict[str, list]]:
    """Record every server and channel made while inside, with the addresses servers bind."""
    seen: dict[str, list] = {"servers": [], "addresses": [], "channels": []}
    real_server, real_aio_server = grpc.server, grpc.aio.server
    real_channel = grpc.insecure_channel

    def recording(make: Callable) -> Callable:
        def make_server(*args: Any, **kwargs: Any) -> Any:
            server = make(*args, **kwargs)
            seen["servers"].append(server)
            for name in ("add_insecure_port", "add_secure_port"):
                bind = getattr(server, name)

                def add_port(address: str, *rest: Any, _bind: Callable = bind) -> int:
                    seen["addresses"].append(address)
                    return _bind(address, *rest)

                setattr(server, name, add_port)
            return server
        return make_server

    def channel(*args: Any, **kwargs: Any) -> grpc.Channel:
        made = real_channel(*args, **kwargs)
        seen["channels"].append(made)
        return made

    grpc.server, grpc.aio.server = recording(real_server), recording(real_aio_server)
    grpc.insecure_channel = channel
    try:
        yield seen
    finally:
        grpc.server, grpc.aio.server = real_server, real_aio_server
        grpc.insecure_channel = real_channel


def _still_running(server: Any) -> bool:
    state = getattr(server, "_state", None)  # a sync grpc server's state: STARTED until stopped
    return state is not None and getattr(state.stage, "name", "") == "STARTED"


def _is_open(channel: grpc.Channel) -> bool:
    """True unless the channel was closed (a closed channel refuses every call)."""
    try:
        channel.unary_unary("/lesson13.Probe/Probe")(b"", timeout=0.2)
    except ValueError:
        return False
    except grpc.RpcError:
        return True
    return True


# ---- 13.1: unit tests for a servicer method -------------------------------------------------

class _AbortDivide(Calculator):
    """Correct: the reference calculator ends a zero divisor with abort()."""


class _SetCodeDivide(Calculator):
    """Correct too: set_code/set_details and return, instead of abort()."""

    def Divide(self, request, context):
        if request.b == 0:
            context.set_code(INVALID_ARGUMENT)
            context.set_details("b must not be zero")
            return pb2.DivideReply()
        return pb2.DivideReply(result=request.a / request.b)


def _divide(compute: Callable[[int, int], float], code: grpc.StatusCode | None = INVALID_ARGUMENT,
            details: str = "cannot divide by zero") -> type:
    """A calculator whose Divide computes `compute(a, b)` and answers a zero divisor with `code`
    (None: no check at all, the division crashes)."""

    class Broken(Calculator):
        def Divide(self, request, context):
            if request.b == 0 and code is not None:
                context.abort(code, details)
            return pb2.DivideReply(result=compute(request.a, request.b))

    return Broken


BROKEN_DIVIDES: list[Implementation] = [
    ("rounds down (a // b)", _divide(lambda a, b: a // b)()),
    ("divides b by a", _divide(lambda a, b: b / a if a else 0.0)()),
    ("crashes on a zero divisor (the client gets UNKNOWN)", _divide(lambda a, b: a / b, None)()),
    ("answers FAILED_PRECONDITION for a zero divisor",
     _divide(lambda a, b: a / b, grpc.StatusCode.FAILED_PRECONDITION)()),
    ("aborts with an empty message", _divide(lambda a, b: a / b, details="")()),
    ("returns 0 for a zero divisor", _divide(lambda a, b: a / b if b else 0.0, code=None)()),
]


@exercise(
    "13.1",
    "Pin Divide down with unit tests",
    notebook=LESSON,
    hint="List what a client can observe from Divide: the result for numbers that do not divide "
    "evenly, the status code and the message for a zero divisor. Assert each one.",
    second_hint="A servicer can end a call in two ways (abort, or set_code and return): your test "
    "should accept both and look at the code and the details, not at how they were set. A "
    "right answer is part of the contract too.",
)
def unit_tests(test_divide: Callable[[Any], None]) -> str:
    with _watching_grpc() as seen:
        _judge(test_divide, "Divide",
               [("ends a zero divisor with abort()", _AbortDivide()),
                ("ends a zero divisor with set_code() and set_details(), then returns",
                 _SetCodeDivide())],
               BROKEN_DIVIDES)
    expect(not seen["servers"] and not seen["channels"],
           "your test started a server or opened a channel: this one is a unit test, so call "
           "the servicer's method directly with a fake context (or grpc_testing)")
    return (f"your test passes on 2 correct Divides and catches all {len(BROKEN_DIVIDES)} broken "
            "ones, with no network")


# ---- 13.2: fixtures ----------------------------------------------------------------------------

class _CountingCalculator(Calculator):
    """The reference calculator, counting the calls that reach it."""

    def __init__(self) -> None:
        self.calls = 0

    def Add(self, request, context):
        self.calls += 1
        return super().Add(request, context)

    def Subtract(self, request, context):
        self.calls += 1
        return super().Subtract(request, context)


HIDDEN_TESTS = '''
from helpers.reference import calculator_pb2 as pb2


def test_add(calculator):
    assert calculator.Add(pb2.AddRequest(a=2, b=3), timeout=5).result == 5


def test_failing_on_purpose(calculator):
    calculator.Add(pb2.AddRequest(a=1, b=1), timeout=5)
    assert False, "this test fails on purpose: the fixtures must still clean up"


def test_subtract(calculator):
    assert calculator.Subtract(pb2.SubtractRequest(a=2, b=3), timeout=5).result == -1
'''
HIDDEN_NAMES = ["test_add", "test_failing_on_purpose", "test_subtract"]


class _Outcomes:
    """A pytest plugin that keeps each test's outcome and its failure, by phase."""

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}  # "test_add (setup)": the failure's last line
        self.text: dict[str, str] = {}  # the whole failure report
        self.passed: set[str] = set()

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.failed["collecting the tests"] = str(report.longrepr).strip().splitlines()[-1]
            self.text["collecting the tests"] = str(report.longrepr)

    def pytest_runtest_logreport(self, report: Any) -> None:
        name = report.nodeid.split("::")[-1]
        if report.failed:
            lines = [line for line in str(report.longrepr).splitlines() if line.strip()]
            self.failed[f"{name} ({report.when})"] = lines[-1].strip() if lines else "failed"
            self.text[f"{name} ({report.when})"] = str(report.longrepr)
        elif report.when == "call" and report.passed:
            self.passed.add(name)


def run_pytest_with(fixtures: dict[str, Any], tests: str) -> _Outcomes:
    """Run the `tests` module text under pytest, in this process, with `fixtures` available."""
    plugin = types.ModuleType("lesson13_fixtures")
    for name, fixture in fixtures.items():
        setattr(plugin, name, fixture)  # as the hidden tests ask for it
        setattr(plugin, getattr(fixture, "name", name), fixture)  # as the learner's others do
    outcomes = _Outcomes()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, f"test_hidden_{uuid.uuid4().hex}.py")  # a new module each run
        path.write_text(tests)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            pytest.main([str(path), "-q", "-p", "no:cacheprovider", "--capture=sys",
                         "-p", "no:unraisableexception",  # its gc.collect() calls are slow
                         "-o", "asyncio_default_fixture_loop_scope=function",
                         "-W", "ignore::pytest.PytestAssertRewriteWarning",
                         "--rootdir", folder, "-c", os.devnull, "--timeout=30",
                         "--import-mode=importlib"],
                        plugins=[plugin, outcomes])
    return outcomes


def _module_servicer(servicer: Any) -> Any:
    @pytest.fixture(scope="module", name="servicer")
    def servicer_fixture() -> Any:
        return servicer

    return servicer_fixture


def _is_loopback_port_0(address: str) -> bool:
    return address.startswith("unix:") or address in ("127.0.0.1:0", "localhost:0", "[::1]:0")


@exercise(
    "13.2",
    "Fixtures that always clean up",
    notebook=LESSON,
    hint="A fixture that yields runs the code after its yield once the tests that used it are "
    "done, passed or failed. Which fixture owns the server, which one the channel, and what "
    "scope does each need?",
    second_hint="Which fixture should live as long as the module, and which as long as one "
    "test? Whatever a fixture starts before its yield, it ends after it, whether the test "
    "passed or not.",
)
def fixtures(calculator_server: Any, calculator: Any) -> str:
    for name, value in (("calculator_server", calculator_server), ("calculator", calculator)):
        expect(callable(value), f"expected your fixture {name}, got {value!r}")
    servicer = _CountingCalculator()
    with _watching_grpc() as seen:
        outcomes = run_pytest_with({"servicer": _module_servicer(servicer),
                                    "calculator_server": calculator_server,
                                    "calculator": calculator}, HIDDEN_TESTS)
    for phase, problem in outcomes.failed.items():
        unsolved = NOT_SOLVED.search(outcomes.text[phase])
        if unsolved:
            raise NotImplementedError(unsolved.group(0))
        if phase != "test_failing_on_purpose (call)":
            raise Mismatch(f"with your fixtures, {phase} failed: {problem}")
    expect("test_failing_on_purpose (call)" in outcomes.failed,
           "test_failing_on_purpose did not fail as it should")
    expect(outcomes.passed == {"test_add", "test_subtract"},
           f"only {sorted(outcomes.passed)} passed, expected test_add and test_subtract")
    expect(servicer.calls >= 3,
           "the tests' calls never reached the object the `servicer` fixture gives: serve that "
           "object (take `servicer` as an argument of calculator_server)")
    servers = seen["servers"]
    expect(len(servers) == 1,
           f"3 tests in one module started {len(servers)} servers; calculator_server should "
           "start one per module (scope='module')" if servers else
           "your fixtures started no gRPC server")
    for address in seen["addresses"]:
        expect(_is_loopback_port_0(address),
               f"your server bound {address!r}: bind 127.0.0.1:0 (helpers.servers.serve does), "
               "so the system picks a free port and nothing outside this machine can connect")
    expect(not any(_still_running(server) for server in servers),
           "the server was still running after the tests: stop it after the fixture's yield")
    channels = seen["channels"]
    expect(len(channels) >= len(HIDDEN_NAMES),
           f"3 tests opened {len(channels)} channel(s): give each test a channel of its own "
           "(the `calculator` fixture with the default, function scope)")
    open_channels = sum(_is_open(channel) for channel in channels)
    expect(open_channels == 0,
           f"{open_channels} of {len(channels)} channels were still open after the tests: close "
           "each one after its test (a `with` block around the yield)")
    return ("3 tests got 1 loopback server on a free port and a channel each; after them, a "
            "failing one included, the server was stopped and every channel closed")


# ---- 13.3: client code against a fake that fails on demand -------------------------------------

def add_with_retry(stub: Any, a: int, b: int, attempts: int = 3, timeout: float = 5.0) -> int:
    """The lesson's client: retries UNAVAILABLE, up to `attempts` calls in all; other errors raise."""
    for attempt in range(1, attempts + 1):
        try:
            return stub.Add(pb2.AddRequest(a=a, b=b), timeout=timeout).result
        except grpc.RpcError as error:
            if error.code() != UNAVAILABLE or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _retry_while(stub: Any, a: int, b: int, attempts: int = 3, timeout: float = 5.0) -> int:
    """Correct too: a while loop with a short pause between attempts."""
    left = attempts
    while True:
        left -= 1
        try:
            return stub.Add(pb2.AddRequest(a=a, b=b), timeout=timeout).result
        except grpc.RpcError as error:
            if error.code() != UNAVAILABLE or left == 0:
                raise
            time.sleep(0.01)


def _never_retries(stub, a, b, attempts=3, timeout=5.0):
    return stub.Add(pb2.AddRequest(a=a, b=b), timeout=timeout).result


def _retries_every_error(stub, a, b, attempts=3, timeout=5.0):
    for attempt in range(1, attempts + 1):
        try:
            return stub.Add(pb2.AddRequest(a=a, b=b), timeout=timeout).result
        except grpc.RpcError:
            if attempt == attempts:
                raise


def _one_attempt_too_many(stub, a, b, attempts=3, timeout=5.0):
    return add_with_retry(stub, a, b, attempts + 1, timeout)


def _swallows_the_last_error(stub, a, b, attempts=3, timeout=5.0):
    try:
        return add_with_retry(stub, a, b, attempts, timeout)
    except grpc.RpcError as error:
        if error.code() == UNAVAILABLE:
            return 0
        raise


def _one_attempt_too_few(stub, a, b, attempts=3, timeout=5.0):
    return add_with_retry(stub, a, b, attempts - 1, timeout)


def _forgets_to_return_the_retry(stub, a, b, attempts=3, timeout=5.0):
    try:
        return stub.Add(pb2.AddRequest(a=a, b=b), timeout=timeout).result
    except grpc.RpcError as error:
        if error.code() != UNAVAILABLE or attempts == 1:
            raise
        _forgets_to_return_the_retry(stub, a, b, attempts - 1, timeout)  # no `return`: None


@exercise(
    "13.3",
    "Test the retries with a fake that fails on demand",
    notebook=LESSON,
    hint="A fake servicer that answers from a script (UNAVAILABLE, UNAVAILABLE, then OK) shows "
    "what the client did; count the calls that reached it. Which scripts tell a right client "
    "from each wrong one?",
    second_hint="Three scripts: two UNAVAILABLE then OK (result right, 3 calls); UNAVAILABLE "
    "three times (raises UNAVAILABLE after exactly 3 calls); INVALID_ARGUMENT (raises it after "
    "1 call).",
)
def client_retries(test_add_with_retry: Callable[[Any], None]) -> str:
    broken = [
        ("never retries", _never_retries),
        ("retries every error, INVALID_ARGUMENT included", _retries_every_error),
        ("makes one call too many (4 instead of 3)", _one_attempt_too_many),
        ("makes one call too few (2 instead of 3)", _one_attempt_too_few),
        ("returns 0 instead of raising when every attempt was UNAVAILABLE",
         _swallows_the_last_error),
        ("retries by calling itself but forgets `return`: None after a retried call succeeds",
         _forgets_to_return_the_retry),
    ]
    with _watching_grpc() as seen:
        _judge(test_add_with_retry, "add_with_retry",
               [("a for loop", add_with_retry), ("a while loop with a pause", _retry_while)],
               broken)
    expect(not any(_still_running(server) for server in seen["servers"]),
           "your test left a server running: stop it (a `with serve(...)` block, or a fixture)")
    return (f"your test passes on 2 correct clients and catches all {len(broken)} broken ones "
            "(no retry, retrying INVALID_ARGUMENT, too many or too few calls, a swallowed error, "
            "a retried answer lost)")


# ---- 13.4: deadlines without slow tests --------------------------------------------------------

def add_or_none(stub: Any, a: int, b: int, timeout: float) -> int | None:
    """The lesson's client: a + b, or None when the server has not answered within `timeout`."""
    try:
        return stub.Add(pb2.AddRequest(a=a, b=b), timeout=timeout).result
    except grpc.RpcError as error:
        if error.code() == DEADLINE_EXCEEDED:
            return None
        raise


def _future_or_none(stub, a, b, timeout):
    """Correct too: a future, and its exception checked."""
    call = stub.Add.future(pb2.AddRequest(a=a, b=b), timeout=timeout)
    try:
        return call.result().result
    except grpc.FutureTimeoutError:
        return None
    except grpc.RpcError:
        if call.code() == DEADLINE_EXCEEDED:
            return None
        raise


def _no_deadline(stub, a, b, timeout):
    try:
        return stub.Add(pb2.AddRequest(a=a, b=b)).result
    except grpc.RpcError as error:
        if error.code() == DEADLINE_EXCEEDED:
            return None
        raise


def _fixed_deadline(stub, a, b, timeout):
    return add_or_none(stub, a, b, 1.0)


def _milliseconds(stub, a, b, timeout):
    return add_or_none(stub, a, b, timeout * 1000)


def _none_for_every_error(stub, a, b, timeout):
    try:
        return stub.Add(pb2.AddRequest(a=a, b=b), timeout=timeout).result
    except grpc.RpcError:
        return None


def _gives_up_without_calling(stub, a, b, timeout):
    if timeout < 1:
        return None
    return add_or_none(stub, a, b, timeout)


def _returns_the_reply(stub, a, b, timeout):
    try:
        return stub.Add(pb2.AddRequest(a=a, b=b), timeout=timeout)  # the AddReply, not .result
    except grpc.RpcError as error:
        if error.code() == DEADLINE_EXCEEDED:
            return None
        raise


def _late_start(stub, a, b, timeout):
    """A correct client on a loaded machine: it starts 0.3 s late."""
    time.sleep(0.3)
    return add_or_none(stub, a, b, timeout)


@contextlib.contextmanager
def slower_sleeps(factor: float = 4) -> Iterator[None]:
    """Every time.sleep lasts `factor` times longer, as a fake's would on a loaded machine."""
    real_sleep = time.sleep
    time.sleep = lambda seconds: real_sleep(seconds * factor)
    try:
        yield
    finally:
        time.sleep = real_sleep


REPLY_DELAY = 0.2  # seconds: how late every reply leaves a server on the "slow machine"


class _LateReplies(grpc.ServerInterceptor):
    """Every unary call's reply (or error) leaves the server `seconds` after the method ends."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def intercept_service(self, continuation: Callable, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler.unary_unary

        def late(request: Any, context: Any) -> Any:
            try:
                return method(request, context)
            finally:
                threading.Event().wait(self.seconds)  # not time.sleep: slower_sleeps patches it

        return grpc.unary_unary_rpc_method_handler(
            late, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


@contextlib.contextmanager
def late_replies(seconds: float = REPLY_DELAY) -> Iterator[None]:
    """Every sync server made inside answers `seconds` late, as on a loaded machine: a call
    that must succeed needs a deadline of seconds, not of nothing."""
    make = grpc.server

    def server(*args: Any, **kwargs: Any) -> Any:
        kwargs["interceptors"] = [_LateReplies(seconds), *(kwargs.get("interceptors") or ())]
        return make(*args, **kwargs)

    grpc.server = server
    try:
        yield
    finally:
        grpc.server = make


@exercise(
    "13.4",
    "A deadline test that is fast and never flaky",
    notebook=LESSON,
    hint="A fake Add that waits on a threading.Event (with a bound) instead of sleeping is "
    "stuck for exactly as long as the test wants. What can the fake record that proves the "
    "client sent the deadline it was given?",
    second_hint="Let the fake server tell you what it saw (its deadline, and that the call "
    "ended) through objects a test can wait on with a timeout, not through sleeps. gRPC may "
    "round a deadline up a little.",
)
def deadline_tests(test_add_or_none: Callable[[Any], None]) -> str:
    correct = [("a blocking call", add_or_none), ("a future", _future_or_none)]
    broken = [
        ("sends no deadline (waits for as long as the server takes)", _no_deadline),
        ("ignores its timeout and always waits 1 s", _fixed_deadline),
        ("passes milliseconds where gRPC wants seconds", _milliseconds),
        ("answers None for every error, not only DEADLINE_EXCEEDED", _none_for_every_error),
        ("gives up at once for short timeouts, without calling the server",
         _gives_up_without_calling),
        ("returns the reply message instead of its result", _returns_the_reply),
    ]
    with _watching_grpc() as seen:
        longest = _judge(test_add_or_none, "add_or_none", correct, [], seconds=15)
        expect(longest < 2.5,
               f"one run of your test took {longest:.1f} s: wait on events, not sleeps, and make "
               "the stuck server's deadline a fraction of a second")
        with slower_sleeps(), late_replies():
            error, _ = _run(test_add_or_none, _late_start, 30,
                            "a correct add_or_none on a slow machine")
        expect(error is None,
               f"your test failed ({_short(error) if error else ''}) on a correct add_or_none on "
               "a slow machine (the call started 0.3 s late, every sleep took 4 times longer, "
               f"every reply left the server {REPLY_DELAY} s late): wait on events instead of "
               "sleeping, give every call that must be answered a deadline of seconds, and "
               "assert what the server saw (the deadline it got, that the call ended) instead "
               "of wall-clock time")
        _judge(test_add_or_none, "add_or_none", [], broken, seconds=15)
    expect(not any(_still_running(server) for server in seen["servers"]),
           "your test left a server running: stop it (a `with serve(...)` block, or a fixture)")
    return (f"your test passes on 2 correct clients (and on a slow machine), catches all "
            f"{len(broken)} broken ones, and its slowest run took {longest:.2f} s")


# ---- 13.5: a contract test on the descriptor ---------------------------------------------------

V1 = """syntax = "proto3";
package shop;
message Item { Money price = 4; }
message Money { int64 cents = 1; string currency = 2; }
message Order {
  int64 id = 1;
  string customer = 2;
  repeated Item items = 3;
  string note = 4;
  reserved 9 to 11;
}
message Coupon { string code = 1; }
"""
ORDER = """  int64 id = 1;
  string customer = 2;
  repeated Item items = 3;
  string note = 4;
  reserved 9 to 11;"""


def _order(old: str, new: str) -> str:
    """V1 with a change inside message Order."""
    assert old in ORDER
    return V1.replace(ORDER, ORDER.replace(old, new))


SAFE_CHANGES: list[tuple[str, str]] = [
    ("nothing changed", V1),
    ("a field added with a new number", _order("string note = 4;", "string note = 4;\n  bool gift = 5;")),
    ("a message added", V1 + "message Refund { int64 order_id = 1; }\n"),
    ("`note` removed with its number reserved", _order("string note = 4;", "reserved 4;")),
    ("`note` removed, its number inside a reserved range",
     _order("string note = 4;\n  reserved 9 to 11;", "reserved 4 to 11;")),
]
BREAKING_CHANGES: list[tuple[str, str]] = [
    ("`note` removed without reserving 4", _order("string note = 4;", "")),
    ("`note` renumbered from 4 to 5, with 4 reserved",
     _order("string note = 4;", "string note = 5;\n  reserved 4;")),
    ("`customer` changed from string to int64", _order("string customer", "int64 customer")),
    ("`items` changed from repeated to single", _order("repeated Item items", "Item items")),
    ("`note`'s number 4 reused by a new field `coupon`", _order("string note", "string coupon")),
    ("Item.price changed from Money to int64 (in a message other than Order)",
     V1.replace("Money price = 4", "int64 price = 4")),
    ("Item.price changed from Money to Coupon (both message types)",
     V1.replace("Money price = 4", "Coupon price = 4")),
    ("`items` and `note` removed with only 3 reserved (a reserved_range's end is exclusive)",
     _order("repeated Item items = 3;\n  string note = 4;", "reserved 3;")),
    ("the message Coupon removed", V1.replace("message Coupon { string code = 1; }\n", "")),
]


@exercise(
    "13.5",
    "A contract test that catches breaking changes",
    notebook=LESSON,
    hint="Go through every message of the old file and every field in it, by number and by "
    "name; lesson 02's table of schema changes says which differences break old readers.",
    second_hint="For each old field look up the new field with the same number: missing and "
    "not reserved, another name, another type or type_name, another label are breaking. Also "
    "look it up by name: a different number is breaking. A reserved_range's end is exclusive.",
)
def contract(breaking_changes: Callable[[Any, Any], list[str]]) -> str:
    expect(callable(breaking_changes), f"expected your function, got {breaking_changes!r}")
    old = file_descriptor(V1)
    for what, text in SAFE_CHANGES:
        found = breaking_changes(old, file_descriptor(text))
        expect(isinstance(found, list), f"breaking_changes returned {found!r}, expected a list "
               "of problems (an empty list when the change is safe)")
        expect(found == [], f"breaking_changes flagged a safe change ({what}): {found!r}")
    for what, text in BREAKING_CHANGES:
        found = breaking_changes(old, file_descriptor(text))
        expect(isinstance(found, list) and found and all(isinstance(p, str) for p in found),
               f"breaking_changes missed a breaking change: {what} (it returned {found!r})")
    return (f"{len(SAFE_CHANGES)} safe changes pass and {len(BREAKING_CHANGES)} breaking ones are "
            "caught, renumbered fields, type and label changes and reused numbers included")


