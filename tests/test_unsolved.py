"""The unsolved test: run each lesson as a learner first sees it.

Every `check` cell must fail with CheckFailed (a check that passes on an
unsolved exercise is broken), and no cell outside `check` / `needs-exercise`
may raise. nbval's `raises-exception` tag only allows an error; this test
requires one.

The test itself is `lessons/NN.ipynb::every check fails until solved`, added by
the project's conftest.py after nbval's cells: it judges nbval's own run of the
lesson with `unsolved_problems` below, so each lesson runs once, not twice.

In a learner's copy, an exercise whose cell no longer holds the placeholder is
solved: its check must pass instead. So `pytest --nbval lessons` in a learner's
own CI proves their solved exercises pass and the rest still fail.
"""

from __future__ import annotations

import nbformat

from helpers.progress_report import CHECK_CALL, exercises_of


def is_short_form(error: nbformat.NotebookNode) -> bool:
    """The one line a cell shows when it fails only because an exercise is unsolved."""
    return len(error.traceback) == 1 and error.traceback[0].startswith("⏭ This cell needs Exercise")


def unsolved_problems(notebook: nbformat.NotebookNode) -> tuple[int, list[str]]:
    """Return (number of check cells, list of problems) for an executed lesson."""
    solved = {exercise_id for exercise_id, _, sources in exercises_of(notebook)
              if not any(f"Exercise {exercise_id}: not solved yet" in source for source in sources)}
    checks, problems = 0, []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        errors = [output for output in cell.outputs if output.output_type == "error"]
        first_line = cell.source.splitlines()[0] if cell.source else ""
        checked = CHECK_CALL.search(cell.source)
        if "check" in tags and checked and checked.group(1) in solved:
            checks += 1
            if errors:
                problems.append(f"cell {index} ({first_line}): Exercise {checked.group(1)} is "
                                f"solved but its check failed: {errors[0].ename}: "
                                f"{errors[0].evalue}")
        elif "check" in tags:
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


def test_a_solved_exercise_must_pass_its_check() -> None:
    """In a learner's copy: the solved exercise's check must pass, the unsolved one must fail."""
    def exercise(exercise_id: str, code: str, error: str | None) -> list:
        heading = nbformat.v4.new_markdown_cell(f"### Exercise {exercise_id}: title")
        check = nbformat.v4.new_code_cell(f'check("{exercise_id}", f)',
                                          metadata={"tags": ["check"]})
        if error:
            check.outputs = [nbformat.v4.new_output("error", ename=error, evalue="...",
                                                    traceback=[])]
        return [heading, nbformat.v4.new_code_cell(code), check]

    placeholder = 'raise NotImplementedError("Exercise {}: not solved yet")'
    notebook = nbformat.v4.new_notebook()
    notebook.cells = (exercise("1.1", "def f(): return 1", None)
                      + exercise("1.2", "def f(): return 2", "CheckFailed")
                      + exercise("1.3", placeholder.format("1.3"), "CheckFailed")
                      + exercise("1.4", placeholder.format("1.4"), None))
    checks, problems = unsolved_problems(notebook)
    assert checks == 4
    assert len(problems) == 2
    assert "Exercise 1.2 is solved but its check failed: CheckFailed" in problems[0]
    assert "passed on an unsolved exercise" in problems[1]
