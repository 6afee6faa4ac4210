"""Where you stand in the course: `make progress`, or `helpers.progress()` in a notebook.

    python -m helpers.progress_report [03 04 ...] [--lessons FOLDER]

Runs your own notebooks in lessons/ headless, each in a fresh kernel as Run All
would (it reads the saved files and never changes them: save before you ask),
and reports every exercise as solved, failed or not started, then the next one
to do with its first hint. The last line is `solved K of N exercises`.

A cell that itself calls `progress(` is skipped when a lesson is run this way,
so a lesson may show the report without running itself forever.
"""

from __future__ import annotations

import argparse
import html
import multiprocessing
import os
import re
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers.build import EXERCISE_HEADING, LESSONS, anchor

CHECK_CALL = re.compile(r"""check\(\s*["'](\d+\.\d+)["']""")
MARKS = {"solved": "✅", "failed": "❌", "not started": "·"}


@dataclass
class Exercise:
    lesson: str  # the notebook's name without .ipynb, e.g. "03_calculator"
    id: str  # "3.2"
    title: str
    state: str  # "solved", "failed" or "not started"
    detail: str = ""  # what the check said, for a failed one


def cell_text(cell: nbformat.NotebookNode) -> str:
    """The plain text a code cell displayed, errors included (printed streams left out)."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type in ("display_data", "execute_result"):
            parts.append(output.data.get("text/plain", ""))
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "\n".join(parts)


def state_of(text: str) -> tuple[str, str]:
    """(state, detail) from what a check cell showed: its ✅ or ❌ line, else its error."""
    lines = [line for line in text.splitlines() if line.strip()]
    verdict = next((line for line in lines if line.startswith(("✅", "❌"))), None)
    if verdict is None:  # the cell failed before the check ran (e.g. a NameError)
        return "failed", lines[-1] if lines else "the check cell did not run"
    if verdict.startswith("✅"):
        return "solved", ""
    if "not solved yet" in verdict:
        return "not started", ""
    return "failed", verdict.split("): ", 1)[-1]


def run_lesson(path: Path) -> list[Exercise]:
    """Execute a copy of one lesson in a fresh kernel; return the state of its exercises."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [cell for cell in notebook.cells
                      if not (cell.cell_type == "code" and "progress(" in cell.source)]
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(stderr=subprocess.DEVNULL)  # the kernel's own log lines are not the report
    titles = {}
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            titles.update(EXERCISE_HEADING.findall(cell.source))
    exercises: dict[str, Exercise] = {}
    for cell in notebook.cells:
        found = CHECK_CALL.search(cell.source) if cell.cell_type == "code" else None
        if found and "check" in cell.metadata.get("tags", []):
            state, detail = state_of(cell_text(cell))
            exercise_id = found.group(1)
            exercises[exercise_id] = Exercise(path.stem, exercise_id,
                                              titles.get(exercise_id, ""), state, detail)
    return list(exercises.values())


def collect(lessons: Path = LESSONS, names: list[str] | None = None) -> list[Exercise]:
    """Run the lessons (all, or those whose name starts with one of `names`) side by side."""
    paths = [path for path in sorted(lessons.glob("*.ipynb"))
             if not names or any(path.name.startswith(name) for name in names)]
    # Fresh interpreters ("spawn"), never a fork of a kernel that has gRPC running.
    with ProcessPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return [exercise for found in pool.map(run_lesson, paths) for exercise in found]


def next_exercise(exercises: list[Exercise]) -> Exercise | None:
    return next((exercise for exercise in exercises if exercise.state != "solved"), None)


def report(exercises: list[Exercise]) -> str:
    """The plain-text report; its last line is `solved K of N exercises`."""
    from helpers.checks import EXERCISES

    lines = []
    for exercise in exercises:
        line = f"{exercise.lesson:22} {MARKS[exercise.state]} {exercise.id:5} {exercise.title}"
        if exercise.detail:
            line += f": {exercise.detail}"
        lines.append(line)
    upcoming = next_exercise(exercises)
    if upcoming:
        lines.append(f"Next: Exercise {upcoming.id} ({upcoming.title}) in "
                     f"lessons/{upcoming.lesson}.ipynb")
        if upcoming.id in EXERCISES:
            lines.append(f"  Hint: {EXERCISES[upcoming.id].hint}")
    solved = sum(exercise.state == "solved" for exercise in exercises)
    lines.append(f"solved {solved} of {len(exercises)} exercises")
    return "\n".join(lines)


def as_html(exercises: list[Exercise]) -> str:
    """A table with a link to each exercise in the learner's notebook."""
    rows = []
    for exercise in exercises:
        href = f"../lessons/{exercise.lesson}.ipynb#{anchor(exercise.id, exercise.title)}"
        rows.append(
            f"<tr><td>{html.escape(exercise.lesson)}</td><td>{MARKS[exercise.state]}</td>"
            f'<td><a href="{html.escape(href)}">{exercise.id} {html.escape(exercise.title)}</a>'
            f"</td><td>{html.escape(exercise.state)}</td>"
            f"<td>{html.escape(exercise.detail)}</td></tr>")
    solved = sum(exercise.state == "solved" for exercise in exercises)
    return ("<table><tr><th>lesson</th><th></th><th>exercise</th><th>state</th><th></th></tr>"
            + "".join(rows) + f"</table><p>solved {solved} of {len(exercises)} exercises</p>")


def progress(*names: str) -> None:
    """Show where you stand, as a table: all lessons, or those whose name starts with `names`."""
    from IPython.display import display

    exercises = collect(names=list(names) or None)
    display({"text/plain": report(exercises), "text/html": as_html(exercises)}, raw=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Which exercises in lessons/ are solved.")
    parser.add_argument("names", nargs="*", help="only lessons whose name starts with these")
    parser.add_argument("--lessons", type=Path, default=LESSONS, help="the lessons folder")
    args = parser.parse_args(argv)
    print(report(collect(args.lessons, args.names or None)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
