"""The exercise checker behind `check("3.2", SafeCalculator)`.

Each exercise registers a function with `@exercise(...)`. `check` runs it and
shows one line: ✅ with what was verified, or ❌ with what went wrong and a hint.
A failed check raises `CheckFailed`, so "Run All" and nbval notice it.
"""

from __future__ import annotations

import html
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

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
def stub_for(proto: str, service: str, servicer: Any) -> Iterator[Any]:
    """Serve `servicer` (an instance or a class) on a fresh server; yield a stub for it."""
    pb2, pb2_grpc = protos.load(proto)
    if isinstance(servicer, type):
        servicer = servicer()
    add_to_server = getattr(pb2_grpc, f"add_{service}Servicer_to_server")
    with serve(add_to_server, servicer, name=f"check-{service}") as server:
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


def _display(ok: bool, lines: list[str], solution: str | None = None) -> None:
    """Show a ✅/❌ block as HTML in Jupyter (plain text elsewhere), with a link to the solution."""
    mark = "✅" if ok else "❌"
    if solution:
        lines = [*lines, f"Solution: solutions/{solution}.ipynb"]
    plain = "\n".join([f"{mark} {lines[0]}", *(f"   {line}" for line in lines[1:])])
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(plain)
        return
    details = [html.escape(line) for line in lines[1:]]
    if solution:  # notebooks run from lessons/ or solutions/, so this link works from both
        details[-1] = f'Solution: <a href="../solutions/{solution}.ipynb">solutions/{solution}.ipynb</a>'
    color = "#1a7f37" if ok else "#cf222e"
    rich = (
        f'<div style="border-left:4px solid {color};padding:2px 8px">'
        f"<b>{mark} {html.escape(lines[0])}</b>"
        + (f'<div style="margin-top:2px">{"<br>".join(details)}</div>' if details else "")
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
    except NotImplementedError:
        problem = "not solved yet (the code still raises NotImplementedError)"
    except grpc.RpcError as error:
        problem = f"a call failed with {describe_rpc_error(error)}"
    except Exception as error:  # the learner's code crashed: name it, no traceback
        problem = f"your code raised {type(error).__name__}: {error}"
    else:
        _display(True, [f"{heading}: {verified}"])
        return
    hints = [f"Hint: {ex.hint}"] + ([f"Second hint: {ex.second_hint}"] if ex.second_hint else [])
    _display(False, [f"{heading}: {problem}", *hints], solution=ex.notebook)
    raise CheckFailed(f"Exercise {ex.id} is not solved yet (see the ❌ message above)") from None
