"""Shared test fixtures and paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Same as importing helpers would do; set here too so every test process is quiet.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = PROJECT_ROOT / "solutions"
LESSONS = PROJECT_ROOT / "lessons"


def passes(capsys: Any, exercise_id: str, *answer: Any) -> None:
    """Run a check that must pass."""
    from helpers import check

    check(exercise_id, *answer)
    assert capsys.readouterr().out.startswith(f"✅ Exercise {exercise_id} (")


def fails(capsys: Any, exercise_id: str, *answer: Any) -> str:
    """Run a check that must fail; return what it printed."""
    from helpers import check
    from helpers.checks import CheckFailed

    with pytest.raises(CheckFailed):
        check(exercise_id, *answer)
    out = capsys.readouterr().out
    assert out.startswith(f"❌ Exercise {exercise_id} (")
    assert "Hint: " in out or "not solved yet" in out, "a wrong answer gets a hint"
    return out


@dataclass
class WrongAnswer:
    """A plausible wrong solution to an exercise, and what its ❌ message must say.

    Each tests/test_lessonNN.py lists its lesson's wrong answers in WRONG_ANSWERS
    (at least two per exercise; tests/test_course.py counts them) and runs them
    all with `rejects`.
    """

    exercise: str  # "3.4"
    mistake: str  # what the learner did, e.g. "hard-codes timeout=4"
    answer: tuple  # the arguments passed to check(exercise, *answer)
    says: str  # a fragment the ❌ message must contain: it names the mistake

    def __str__(self) -> str:
        return f"{self.exercise}: {self.mistake}"


def rejects(capsys: Any, wrong: WrongAnswer) -> None:
    """The check must fail on `wrong` with a message that contains `wrong.says`."""
    out = fails(capsys, wrong.exercise, *wrong.answer)
    assert wrong.says in out, f"the ❌ message does not name the mistake ({wrong.says!r}):\n{out}"
