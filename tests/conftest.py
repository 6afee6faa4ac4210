"""Shared test fixtures and paths."""

from __future__ import annotations

import os
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
    assert out.startswith(f"❌ Exercise {exercise_id} (") and "Hint: " in out
    return out
