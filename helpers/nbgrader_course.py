"""Export the course as an nbgrader course, for teachers who grade a class.

    python -m helpers.build --nbgrader DIR          # every lesson
    python -m helpers.build --nbgrader DIR 03 04    # only these (prefixes)

writes DIR/nbgrader_config.py (a copy of teacher/nbgrader_config.py) and, for
each solution notebook NN_topic.ipynb, DIR/source/psNN/NN_topic.ipynb with
nbgrader's cell metadata:

- a code cell holding `### BEGIN SOLUTION` ... `### END SOLUTION` is a solution
  cell (nbgrader replaces the region with its own placeholder in the release);
- a cell tagged `check` is an autograded test cell worth the exercise's points
  (POINTS in the config), locked so a student's edits are undone when grading;
- every other cell is read-only (locked), and carries no points: a failing
  `needs-exercise` cell costs nothing, only check cells are graded.

Cells tagged `solution-only` are dropped and outputs cleared, as in lessons/;
`check` and `needs-exercise` cells get the `raises-exception` tag so Run All
carries on past them. Exercise headings get no link to solutions/: students
of a graded course do not have it. solutions/ and lessons/ are not touched.
"""

from __future__ import annotations

import ast
import copy
import re
import shutil
from pathlib import Path

import nbformat

from helpers import build

CONFIG = build.PROJECT_ROOT / "teacher" / "nbgrader_config.py"
CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d+\.\d+)["']""")


def read_points(config: Path | None = None) -> tuple[int, dict[str, int]]:
    """(DEFAULT_POINTS, POINTS) from the config file, read without running it."""
    config = config or CONFIG
    values: dict[str, object] = {"DEFAULT_POINTS": 1, "POINTS": {}}
    for node in ast.parse(config.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            name = getattr(node.targets[0], "id", None)
            if name in values:
                values[name] = ast.literal_eval(node.value)
    return values["DEFAULT_POINTS"], values["POINTS"]  # type: ignore[return-value]


def grader_metadata(grade_id: str, *, solution: bool = False, grade: bool = False,
                    points: int = 0) -> dict:
    """nbgrader's metadata for one cell (schema 3). Graded and read-only cells are locked."""
    metadata = {"grade": grade, "grade_id": grade_id, "locked": not solution,
                "schema_version": 3, "solution": solution, "task": False}
    if grade:
        metadata["points"] = points
    return metadata


def unique(grade_id: str, used: set[str]) -> str:
    """`grade_id`, or `grade_id-2`, `-3`... if a cell of this notebook already has it."""
    candidate, number = grade_id, 1
    while candidate in used:
        number += 1
        candidate = f"{grade_id}-{number}"
    used.add(candidate)
    return candidate


def assignment_name(notebook_name: str) -> str:
    """`03_calculator.ipynb` is assignment `ps03`."""
    return "ps" + notebook_name.split("_", 1)[0]


def grader_notebook(solution: nbformat.NotebookNode, default_points: int = 1,
                    points: dict[str, int] | None = None) -> nbformat.NotebookNode:
    """The nbgrader source version of one solution notebook."""
    points = points or {}
    notebook = copy.deepcopy(solution)
    notebook.metadata = {key: notebook.metadata[key] for key in ("kernelspec", "language_info")
                         if key in notebook.metadata}
    cells = []
    used: set[str] = set()
    exercise_id = "?"
    for index, cell in enumerate(notebook.cells):
        tags = list(cell.metadata.get("tags", []))
        if "solution-only" in tags:
            continue
        cell.metadata.pop("execution", None)  # timings of the solution's last run
        if cell.cell_type == "markdown":
            headings = build.EXERCISE_HEADING.findall(cell.source)
            if headings:
                exercise_id = headings[-1][0]
        cell_id = exercise_id.replace(".", "_")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if build.RAISING_TAGS & set(tags) and "raises-exception" not in tags:
                tags.append("raises-exception")
            called = CHECK_CALL.search(cell.source)
            if any(line.strip() == build.BEGIN for line in cell.source.split("\n")):
                meta = grader_metadata(unique(f"exercise-{cell_id}", used), solution=True)
            elif "check" in tags:
                checked = called.group(1) if called else exercise_id
                meta = grader_metadata(unique(f"check-{checked.replace('.', '_')}", used), grade=True,
                                       points=points.get(checked, default_points))
            else:
                meta = grader_metadata(f"cell-{index}")
        else:
            meta = grader_metadata(f"cell-{index}")
        if tags:
            cell.metadata["tags"] = tags
        cell.metadata["nbgrader"] = meta
        cells.append(cell)
    notebook.cells = cells
    return notebook


def export(directory: Path, names: list[str] = (), config: Path | None = None) -> list[Path]:
    """Write the nbgrader course into `directory`; return the notebooks written."""
    config = config or CONFIG
    default_points, points = read_points(config)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config, directory / "nbgrader_config.py")
    written = []
    for path in sorted(build.SOLUTIONS.glob("*.ipynb")):
        if names and not any(path.name.startswith(name) for name in names):
            continue
        target = directory / "source" / assignment_name(path.name) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        solution = nbformat.read(path, as_version=4)
        target.write_text(build.render(grader_notebook(solution, default_points, points)))
        written.append(target)
    return written
