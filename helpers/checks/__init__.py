"""Exercise checks, one module per lesson. Use `check("3.2", SafeCalculator)`."""

from helpers.checks.core import EXERCISES, CheckFailed, check

# Importing a lesson's module registers its exercises.
from helpers.checks import (  # noqa: E402, F401
    lesson00,
    lesson01,
    lesson02,
    lesson03,
    lesson04,
    lesson05,
    lesson06,
    lesson07,
    lesson08,
    lesson09,
    lesson10,
    lesson11,
    lesson12,
    lesson13,
)

__all__ = ["EXERCISES", "CheckFailed", "check"]
