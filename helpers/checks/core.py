"""The exercise checker behind `check("3.2", SafeCalculator)`.

Each exercise registers a function with `@exercise(...)`. `check` runs it and
shows one line: ✅ with what was verified, or ❌ with what went wrong and a hint.
A failed check raises `CheckFailed`, so "Run All" and nbval notice it.
"""

from __future__ import annotations

import html
import re
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
        if exercise_id is None:
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        else:
            line = f"⏭ This cell needs Exercise {exercise_id}, which is not solved yet."
            shell._showtraceback(etype, value, [line])

    shell.set_custom_exc((NotImplementedError, grpc.RpcError), handler)
