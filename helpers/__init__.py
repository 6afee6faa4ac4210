"""Shared helpers for the gRPC course notebooks.

Import this package before `grpc`: it quiets gRPC's C-level logging
(GRPC_VERBOSITY=NONE) unless you have set that variable yourself.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from helpers import protos  # noqa: E402

# hypothesis (used by checks and lesson 13) keeps a cache folder: in this copy of the course
# (gitignored), not in lessons/.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(protos.PROJECT_ROOT / ".hypothesis"))
from helpers.checks import check  # noqa: E402
from helpers.explorer import explore  # noqa: E402
from helpers.servers import serve, serve_aio  # noqa: E402

__all__ = ["check", "explore", "progress", "protos", "serve", "serve_aio"]


def progress(*lessons: str, rerun: bool = False) -> None:
    """Show which exercises of your lessons/ are solved, as a table (`make progress` prints it).

    From what your checks recorded, compared with your saved notebooks (save first).
    `progress("03", "04")` looks at those lessons only; `rerun=True` runs them headless instead.
    """
    from helpers.progress_report import progress as show

    show(*lessons, rerun=rerun)


def _in_ipython() -> None:
    """In a notebook, a cell that fails only because an exercise is unsolved shows one line."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        from helpers.checks.core import quiet_unsolved_cells

        quiet_unsolved_cells(shell)


_in_ipython()
