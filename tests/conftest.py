"""Shared test fixtures and paths."""

from __future__ import annotations

import os
from pathlib import Path

# Same as importing helpers would do; set here too so every test process is quiet.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = PROJECT_ROOT / "solutions"
LESSONS = PROJECT_ROOT / "lessons"
