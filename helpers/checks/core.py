"""The exercise checker behind `check("3.2", SafeCalculator)`.

Each exercise registers a function with `@exercise(...)`. `check` runs it and
shows one line: ✅ with what was verified, or ❌ with what went wrong and a hint.
A failed check raises `CheckFailed`, so "Run All" and nbval notice it.
"""

from __future__ import annotations

import html
import re
import socket
import threading
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import grpc

from helpers import protos
from helpers.servers import serve


@dataclass
class Exercise:
    id: str
    title: str
    hint: str  # a nudge: where to look, not the answer
    notebook: str  # the solution notebook, e.g. "03_calculator"
    run: Callable[..., str]  # returns what was verified; raises Mismatch if wrong
    second_hint: str = ""  # closer to the answer, for a learner still stuck after the first


EXERCISES: dict[str, Exercise] = {}


def exercise(id: str, title: str, notebook: str, hint: str, second_hint: str = "") -> Callable:
    """Register the decorated function as the check of exercise `id`.

    `hint` nudges (where to look); `second_hint`, if given, comes closer to the answer.
    """

    def register(run: Callable[..., str]) -> Callable[..., str]:
        EXERCISES[id] = Exercise(id, title, hint, notebook, run, second_hint)
        return run

    return register


# What an exercise's placeholder raises: `raise NotImplementedError("Exercise 3.2: not solved yet")`.
NOT_SOLVED = re.compile(r"Exercise (\d+\.\d+): not solved yet")


def unsolved_exercise(error: BaseException | str) -> str | None:
    """The id of the unsolved exercise behind `error` ("3.2"), or None.

    Finds the placeholder's message in a NotImplementedError, in the details of
    an RPC error (a servicer that still raises it), or in a check's message.
    """
    if isinstance(error, grpc.RpcError):
        details = getattr(error, "details", None)  # RPC errors from calls have details()
        text = (details() if callable(details) else str(error)) or ""
    elif isinstance(error, (NotImplementedError, str)):
        text = str(error)
    else:
        return None
    match = NOT_SOLVED.search(text)
    return match.group(1) if match else None


# nbgrader's placeholder, `raise NotImplementedError()`, has no message. In a check's message
# it reads: raised by the learner's function; by a sync servicer (grpc's details
# "Exception calling application: " and "Exception iterating responses: "); by an aio one.
NBGRADER_PLACEHOLDER = re.compile(
    r"raised NotImplementedError: ?$|the servicer raised an exception \(\)"
    r"|(Exception (calling application|iterating responses)"
    r"|Unexpected <class 'NotImplementedError'>): ?(\)|$)")


def raised_nbgrader_placeholder(error: BaseException) -> bool:
    """True if `error` is nbgrader's placeholder, raised here or by a servicer called here."""
    if isinstance(error, grpc.RpcError) and callable(getattr(error, "details", None)):
        return bool(NBGRADER_PLACEHOLDER.search(error.details() or ""))
    return isinstance(error, NotImplementedError) and not str(error)


class Mismatch(Exception):
    """The learner's code ran but gave the wrong answer."""


class CheckFailed(AssertionError):
    """Raised by `check` when an exercise is not solved."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a long traceback.
        return [f"CheckFailed: {self}"]


def expect(condition: bool, message: str) -> None:
    """Fail the check with `message` unless `condition` holds."""
    if not condition:
        raise Mismatch(message)


def expect_equal(got: Any, expected: Any, what: str) -> None:
    expect(got == expected, f"{what}: expected {expected!r}, got {got!r}")


def within(seconds: float, function: Callable[[], Any], advice: str) -> Any:
    """Run `function` in a thread; fail the check if it has not returned after `seconds`."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # handed back to the checker below
            outcome["error"] = error

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    expect(not worker.is_alive(), f"the call was still waiting after {seconds:.0f} s: {advice}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def describe_rpc_error(error: grpc.RpcError) -> str:
    """`StatusCode.X: details`, the way a failed call reads in a check message."""
    code, details = error.code(), error.details()
    prefix = "Exception calling application: "
    if code == grpc.StatusCode.UNKNOWN and details and details.startswith(prefix):
        return f"UNKNOWN, because the servicer raised an exception ({details[len(prefix):]})"
    return f"{code.name} ({details})" if details else code.name


@contextmanager
def stub_for(proto: str, service: str, servicer: Any, name: str = "") -> Iterator[Any]:
    """Serve `servicer` (an instance or a class) on a fresh server; yield a stub for it.

    Servers with the same `name` replace each other: give a second one a name of its own.
    """
    pb2, pb2_grpc = protos.load(proto)
    if isinstance(servicer, type):
        servicer = servicer()
    add_to_server = getattr(pb2_grpc, f"add_{service}Servicer_to_server")
    with serve(add_to_server, servicer, name=name or f"check-{service}") as server:
        with grpc.insecure_channel(server.target) as channel:
            yield getattr(pb2_grpc, f"{service}Stub")(channel)


def expect_error_status(error: grpc.RpcError | None, expected: grpc.StatusCode,
                        what: str) -> None:
    """Fail unless a call ended with `error` of code `expected` and a message (None: it worked)."""
    if error is None:
        raise Mismatch(f"{what} succeeded, expected it to fail with {expected.name}")
    expect(error.code() == expected,
           f"{what} ended with {describe_rpc_error(error)}, expected {expected.name}")
    expect(bool(error.details()), f"{what} gave {expected.name} but no message (details)")


def expect_status(rpc: Callable, request: Any, expected: grpc.StatusCode, what: str) -> None:
    """Call a unary RPC; fail unless it ends with `expected` and a non-empty message."""
    try:
        rpc(request, timeout=5)
    except grpc.RpcError as error:
        expect_error_status(error, expected, what)
        return
    expect_error_status(None, expected, what)


# ---- Standard adversarial scenarios ------------------------------------------------------
# Small, reusable situations a check puts the learner's code in, so that it holds against
# mistakes nobody listed: a server that never answers, one that is down, two servers, the
# same code called at once. Every wait here has a timeout: a check always ends.


@contextmanager
def stuck_server(max_wait: float = 30.0, deadlines: list | None = None) -> Iterator[str]:
    """Yield the target of a gRPC server that accepts every call and never answers.

    Any method of any service is accepted and then left waiting (until the `with` ends,
    or `max_wait` seconds). A call without a deadline would wait with it: run the
    learner's code through `within(...)` and expect DEADLINE_EXCEEDED. Each call's
    `time_remaining()` (None: no deadline) is appended to `deadlines` if given.
    """
    release = threading.Event()

    def hang(request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        if deadlines is not None:
            deadlines.append(context.time_remaining())
        release.wait(max_wait)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the stuck server was released")
        yield b""  # never reached: makes this a generator, as a stream handler must be

    class AnyMethod(grpc.GenericRpcHandler):
        def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
            return grpc.stream_stream_rpc_method_handler(hang)  # suits every kind of method

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((AnyMethod(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        release.set()
        server.stop(0).wait(5)


_RESERVED: list[socket.socket] = []  # bound, never listening: ports no server can get


def down_target() -> str:
    """A loopback target where nothing listens: connecting is refused at once.

    The port stays bound (not listening) for the life of the process. A freed port could go
    to a server started later, and grpcio shares connections between channels to the same
    target: that server's clients would then inherit the refused connection's back-off.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    _RESERVED.append(probe)
    return f"127.0.0.1:{probe.getsockname()[1]}"


def expect_gives_up(function: Callable[[], Any], seconds: float, what: str) -> BaseException | None:
    """Run `function` against a stuck or down server: it must end by itself within `seconds`.

    Returns what it raised (None if it returned). A call without a deadline fails the check.
    """
    try:
        within(seconds, function, f"{what} waited on a server that never answers: give every "
               "call a deadline (timeout=)")
    except Mismatch:
        raise
    except BaseException as error:  # handed back: the caller decides what is right
        return error
    return None


@dataclass
class Outcome:
    """What one call of the learner's code did: returned `value`, or raised `error`."""

    value: Any = None
    error: BaseException | None = None


def concurrently(function: Callable[[int], Any], times: int, seconds: float = 20.0,
                 what: str = "your code") -> list[Outcome]:
    """Call `function(i)` for i in range(times), all at once from threads started together.

    Returns each call's Outcome in order. Fails the check if any is still running after
    `seconds` (a deadlock, or a lock never released).
    """
    barrier = threading.Barrier(times)
    outcomes = [Outcome() for _ in range(times)]

    def run(index: int) -> None:
        try:
            barrier.wait(seconds)
            outcomes[index].value = function(index)
        except BaseException as error:  # recorded, judged by the check
            outcomes[index].error = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds)
    stuck = sum(thread.is_alive() for thread in threads)
    expect(stuck == 0, f"{stuck} of {times} concurrent calls of {what} were still running after "
           f"{seconds:.0f} s: a lock never released, or calls waiting on each other")
    return outcomes


@contextmanager
def two_servers(add_to_server: Callable[[Any, Any], None],
                make_servicer: Callable[[], Any]) -> Iterator[tuple[Any, Any]]:
    """Yield two running servers with servicers of their own, for "uses the target it was given"."""
    with serve(add_to_server, make_servicer(), name="check-first") as first:
        with serve(add_to_server, make_servicer(), name="check-second") as second:
            yield first, second


def abort_after(items: Iterable[Any], count: int, context: grpc.ServicerContext,
                code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
                details: str = "the stream failed midway") -> Iterator[Any]:
    """Yield the first `count` items, then end the stream with `code`: a stream failing midway."""
    for index, item in enumerate(items):
        if index == count:
            break
        yield item
    context.abort(code, details)


# ---- Compare with the reference on generated inputs ---------------------------------------


def outcome_of(function: Callable[[Any], Any], argument: Any) -> tuple[str, Any]:
    """('ok', value), ('status', code name) for a failed call, or ('raised', type name)."""
    try:
        return "ok", function(argument)
    except (Mismatch, NotImplementedError):  # the check found the mistake; or not solved yet
        raise
    except grpc.RpcError as error:
        if unsolved_exercise(error) or raised_nbgrader_placeholder(error):
            raise  # a servicer still raising its placeholder: "not solved yet", not a mismatch
        return "status", error.code().name if hasattr(error, "code") else type(error).__name__
    except Exception as error:  # the learner's code crashed; compared like any outcome
        return "raised", type(error).__name__


def compare_with_reference(learner: Callable[[Any], Any], reference: Callable[[Any], Any],
                           inputs: Any, describe: Callable[[Any], str], *,
                           examples: Sequence[Any] = (), max_examples: int = 40,
                           same: Callable[[tuple, tuple], bool] | None = None) -> int:
    """Run `learner` and `reference` on each of `examples` (boundaries), then on inputs drawn by
    the hypothesis strategy `inputs`; fail on the first input where their outcomes differ.

    Outcomes are compared with `outcome_of` (a value, a status code, or an exception type),
    with `same(got, expected)` if given. Draws are derandomized: the same inputs every run,
    so a check's verdict never depends on luck. Returns how many inputs were compared.
    """
    from hypothesis import HealthCheck, Phase, given, settings

    agree = same or (lambda got, expected: got == expected)

    def one(argument: Any) -> None:
        expected, got = outcome_of(reference, argument), outcome_of(learner, argument)
        if not agree(got, expected):
            raise Mismatch(f"{describe(argument)}: the reference gives {_shown(expected)}, "
                           f"yours gives {_shown(got)}")

    for argument in examples:
        one(argument)

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(inputs)
    def drawn(argument: Any) -> None:
        one(argument)

    drawn()
    return len(examples) + max_examples


def _shown(outcome: tuple[str, Any]) -> str:
    kind, value = outcome
    if kind == "ok":
        return repr(value)
    return f"status {value}" if kind == "status" else f"an exception ({value})"


def _display(ok: bool, headline: str, hints: list[tuple[str, str]] = (),
             solution: str | None = None) -> None:
    """Show a ✅/❌ line as HTML in Jupyter (plain text elsewhere).

    Each hint is (label, text). In JupyterLab a hint stays folded until the
    learner clicks it; the plain-text form (nbval, terminals, GitHub) shows it.
    """
    mark = "✅" if ok else "❌"
    lines = [f"{mark} {headline}", *(f"   {label}: {text}" for label, text in hints)]
    if solution:
        lines.append(f"   Solution: solutions/{solution}.ipynb")
    plain = "\n".join(lines)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(plain)
        return
    folded = [f'<details class="course-hint"><summary>{html.escape(label)}</summary>'
              f"<div>{html.escape(text)}</div></details>" for label, text in hints]
    if solution:  # notebooks run from lessons/ or solutions/, so this link works from both
        folded.append(f'<div>Solution: <a href="../solutions/{solution}.ipynb">'
                      f"solutions/{solution}.ipynb</a></div>")
    color = "#1a7f37" if ok else "#cf222e"
    rich = (
        f'<div style="border-left:4px solid {color};padding:2px 8px">'
        f"<b>{mark} {html.escape(headline)}</b>"
        + (f'<div style="margin-top:2px">{"".join(folded)}</div>' if folded else "")
        + "</div>"
    )
    display({"text/plain": plain, "text/html": rich}, raw=True)


def check(exercise_id: str, *args: Any, **kwargs: Any) -> None:
    """Check exercise `exercise_id` with the learner's code passed as arguments."""
    if exercise_id not in EXERCISES:
        raise KeyError(f"there is no exercise {exercise_id!r}")
    ex = EXERCISES[exercise_id]
    heading = f"Exercise {ex.id} ({ex.title})"
    try:
        verified = ex.run(*args, **kwargs)
    except Mismatch as wrong:
        problem = str(wrong)
    except grpc.RpcError as error:
        problem = f"a call failed with {describe_rpc_error(error)}"
    except Exception as error:  # the learner's code crashed: name it, no traceback
        problem = f"your code raised {type(error).__name__}: {error}"
    else:
        problem = None
    from helpers.progress_report import record  # make progress: the verdict, on which code

    record(ex.id, problem)
    if problem is None:
        _display(True, f"{heading}: {verified}")
        return
    unsolved = unsolved_exercise(problem)
    if unsolved is None and NBGRADER_PLACEHOLDER.search(problem):
        unsolved = ex.id  # nbgrader's placeholder names no exercise: take it as this one
    if unsolved == ex.id:  # untouched: say where to write, and no hint before a try
        _display(False, f"{heading}: not solved yet. Write your code in place of "
                 "`raise NotImplementedError(...)` in the exercise's cell, run it, then this one.")
    elif unsolved:
        _display(False, f"{heading}: this check needs Exercise {unsolved}, which is not "
                 "solved yet. Solve that one first.")
    else:
        hints = [("Hint", ex.hint)] + ([("Another hint", ex.second_hint)] if ex.second_hint else [])
        _display(False, f"{heading}: {problem}", hints, solution=ex.notebook)
    raise CheckFailed(f"Exercise {ex.id} is not solved yet (see the ❌ message above)") from None


def quiet_unsolved_cells(shell: Any) -> None:
    """In IPython, show one line instead of a traceback when a cell fails only because
    an exercise is not solved yet; every other error keeps its normal traceback."""

    def handler(shell: Any, etype: type, value: BaseException, tb: Any,
                tb_offset: int | None = None) -> None:
        exercise_id = unsolved_exercise(value)
        if exercise_id is None and not raised_nbgrader_placeholder(value):
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        else:
            needs = f"Exercise {exercise_id}" if exercise_id else "an exercise above"
            line = f"⏭ This cell needs {needs}, which is not solved yet."
            shell._showtraceback(etype, value, [line])

    shell.set_custom_exc((NotImplementedError, grpc.RpcError), handler)
