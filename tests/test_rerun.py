"""Running a whole solution twice in one kernel works (servers replaced, nothing left over)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import SOLUTIONS
from nbclient import NotebookClient

SOLUTION_FILES = sorted(SOLUTIONS.glob("*.ipynb"))


def shown(cell: nbformat.NotebookNode) -> str:
    """What a failing cell displayed (a check's ❌ line says why), for the failure message."""
    return "".join(output.get("data", {}).get("text/plain", "") for output in cell.outputs)


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=[path.stem for path in SOLUTION_FILES])
def test_solution_runs_twice_in_one_kernel(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
    errors = [f"cell {index}: {output.ename}: {output.evalue}\n{shown(cell)}"
              for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
              for output in cell.outputs if output.output_type == "error"]
    assert not errors, "second run in the same kernel failed:\n" + "\n".join(errors)
