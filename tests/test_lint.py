"""The course's Python code has no unused or undefined names (ruff, rules in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from conftest import PROJECT_ROOT


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "helpers", "tests", "benchmarks",
                             "scripts"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
