"""The unsolved test: run each lesson as a learner first sees it.

Every `check` cell must fail with CheckFailed (a check that passes on an
unsolved exercise is broken), and no cell outside `check` / `needs-exercise`
may raise. nbval's `raises-exception` tag only allows an error; this test
requires one.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import LESSONS
from nbclient import NotebookClient

LESSON_FILES = sorted(LESSONS.glob("*.ipynb"))


def run_notebook(path: Path) -> nbformat.NotebookNode:
    """Execute a copy of the notebook in a fresh kernel, carrying on past errors."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return notebook


def is_short_form(error: nbformat.NotebookNode) -> bool:
    """The one line a cell shows when it fails only because an exercise is unsolved."""
    return len(error.traceback) == 1 and error.traceback[0].startswith("⏭ This cell needs Exercise")


def unsolved_problems(notebook: nbformat.NotebookNode) -> tuple[int, list[str]]:
    """Return (number of check cells, list of problems) for an executed lesson."""
    checks, problems = 0, []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        errors = [output for output in cell.outputs if output.output_type == "error"]
        first_line = cell.source.splitlines()[0] if cell.source else ""
        if "check" in tags:
            checks += 1
            if not errors:
                problems.append(f"cell {index} ({first_line}) passed on an unsolved exercise")
            elif errors[0].ename != "CheckFailed":
                problems.append(f"cell {index} ({first_line}) crashed with {errors[0].ename}: "
                                f"{errors[0].evalue} instead of failing its check")
        elif errors and "needs-exercise" not in tags:
            problems.append(f"untagged cell {index} ({first_line}) raised "
                            f"{errors[0].ename}: {errors[0].evalue}")
        elif errors and not is_short_form(errors[0]):
            problems.append(f"needs-exercise cell {index} ({first_line}) showed a traceback "
                            f"({errors[0].ename}: {errors[0].evalue}) instead of the one-line ⏭")
    return checks, problems


@pytest.mark.parametrize("path", LESSON_FILES, ids=[path.stem for path in LESSON_FILES])
def test_every_check_fails_until_solved(path: Path) -> None:
    checks, problems = unsolved_problems(run_notebook(path))
    assert checks > 0, f"{path.name} has no check cells"
    assert not problems, "\n".join(problems)


def test_the_unsolved_test_catches_a_check_that_passes() -> None:
    """A check cell with no error, and an untagged cell that raises, are both reported."""
    notebook = nbformat.v4.new_notebook()
    passing_check = nbformat.v4.new_code_cell("print('ok')", metadata={"tags": ["check"]})
    passing_check.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ok\n")]
    raising = nbformat.v4.new_code_cell("1/0")
    raising.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError",
                                              evalue="division by zero", traceback=[])]
    noisy = nbformat.v4.new_code_cell("stub.Add(...)", metadata={"tags": ["needs-exercise"]})
    noisy.outputs = [nbformat.v4.new_output("error", ename="_InactiveRpcError", evalue="...",
                                            traceback=["Traceback", "...", "details"])]
    notebook.cells = [passing_check, raising, noisy]
    checks, problems = unsolved_problems(notebook)
    assert checks == 1
    assert len(problems) == 3
