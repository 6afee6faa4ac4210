"""Where you stand in the course: `make progress`, or `helpers.progress()` in a notebook.

    python -m helpers.progress_report [03 04 ...] [--lessons FOLDER] [--rerun]

Every `check(...)` you run records what it said, and which code your kernel
had run, in a small file in the project (.progress.jsonl, never committed).
The report reads your saved notebooks in lessons/ and those records, and shows
each exercise as:

  ✅ solved       its check passed on the code now saved in the exercise's cell
  ❌ failed       its check failed on that code (with what it said)
  ✎ changed      checked, but not on the code now saved: run its check again
  ? not checked  you wrote code, but have not run its check yet
  · not started  the cell still holds `raise NotImplementedError(...)`

then the next one to do with its first hint. The last line is `solved K of N exercises`.
It takes a fraction of a second. Save your notebook before you ask.

How a ✅ stays honest: a record keeps a fingerprint (hash) of every cell the
kernel ran before the check, in the order they last ran. An exercise counts as
checked only if its cell, exactly as now saved, is among them and every cell
that ran after it is a cell saved in the notebook too. So code that was edited
after the check, or never saved, or an unsaved cell run after it, gives
"changed", never a ✅ that belongs to other code.

`--rerun` (`make progress RERUN=1`) does it the slow way instead: it runs your
notebooks headless, each in a fresh kernel as Run All would (it never changes
them), and reports what their check cells showed. A cell that itself calls
`progress(` is skipped then, so a lesson may show the report without running
itself forever.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import html
import json
import multiprocessing
import os
import re
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from helpers.protos import PROJECT_ROOT  # this copy of the course, found from the current folder

# As in helpers.build (tests/test_progress.py keeps them equal). Not imported from there:
# it imports nbformat, which alone takes longer than the whole report.
EXERCISE_HEADING = re.compile(r"^###\s+Exercise\s+(\d+\.\d+):\s*(.+?)\s*$", re.MULTILINE)


def anchor(exercise_id: str, title: str) -> str:
    """The id JupyterLab gives the heading `### Exercise N.M: title`."""
    return f"Exercise-{exercise_id}:-{title}".replace(" ", "-")

CHECK_CALL = re.compile(r"""check\(\s*["'](\d+\.\d+)["']""")
MARKS = {"solved": "✅", "failed": "❌", "changed": "✎", "not checked": "?", "not started": "·"}
DETAILS = {"changed": "changed since its last check: run the check again",
           "not checked": "not checked yet: run its check cell"}
# Where check() writes its records; the test suite points it elsewhere, "" turns it off.
RECORDS = os.environ.get("COURSE_PROGRESS_FILE", str(PROJECT_ROOT / ".progress.jsonl"))
KEEP = 500  # fingerprints per record: the cells run most recently
LESSONS = PROJECT_ROOT / "lessons"


@dataclass
class Exercise:
    lesson: str  # the notebook's name without .ipynb, e.g. "03_calculator"
    id: str  # "3.2"
    title: str
    state: str  # a key of MARKS: "solved", "failed", "changed", "not checked", "not started"
    detail: str = ""  # what the check said, for a failed one


def cell_text(cell: dict) -> str:
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


# ------------------------------------------------------------ what check() records


def fingerprint(source: str) -> str:
    """A short hash of a cell's code (surrounding blank space ignored)."""
    return hashlib.sha256(source.strip().encode()).hexdigest()[:16]


def record(exercise_id: str, problem: str | None) -> None:
    """Called by check(): note its verdict and the cells this kernel ran before it.

    `problem` is None when the check passed. Outside IPython (a check called from
    plain Python) nothing is recorded. Never raises: progress must not break a check.
    """
    try:
        from IPython import get_ipython

        shell = get_ipython()
        records = os.environ.get("COURSE_PROGRESS_FILE", RECORDS)
        if shell is None or not records:
            return
        order: dict[str, None] = {}  # each cell once, in the order it last ran
        for source in shell.history_manager.input_hist_raw[1:-1]:  # [-1]: this check's own cell
            key = fingerprint(source)
            order.pop(key, None)
            order[key] = None
        line = json.dumps({"exercise": exercise_id, "passed": problem is None,
                           "detail": problem or "", "ran": list(order)[-KEEP:],
                           "time": round(time.time())})
        with open(records, "a", encoding="utf-8") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # kernels of several notebooks may write at once
            file.write(line + "\n")
    except Exception:
        pass


def read_records(path: str | None = None) -> dict[str, list[dict]]:
    """Every record, newest first, by exercise id."""
    path = path if path is not None else os.environ.get("COURSE_PROGRESS_FILE", RECORDS)
    by_exercise: dict[str, list[dict]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines() if path else []
    except FileNotFoundError:
        lines = []
    for line in reversed(lines):
        try:
            entry = json.loads(line)
            by_exercise.setdefault(entry["exercise"], []).append(entry)
        except (ValueError, KeyError, TypeError):  # a line cut short: skip it
            continue
    return by_exercise


def checked_this_code(entry: dict, exercise_cells: list[str], saved: set[str]) -> bool:
    """Did this record's check run on the exercise's code as now saved?

    True if every exercise cell, as saved, ran in that kernel, and every cell
    that ran after the first of them is saved in the notebook too.
    """
    ran = entry.get("ran", [])
    position = {key: index for index, key in enumerate(ran)}
    if not exercise_cells or any(cell not in position for cell in exercise_cells):
        return False
    first = min(position[cell] for cell in exercise_cells)
    return all(key in saved for key in ran[first + 1:])


def source_of(cell: dict) -> str:
    """A cell's code (a notebook file may keep it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def exercises_of(notebook: dict) -> list[tuple[str, str, list[str]]]:
    """(id, title, sources of its code cells) for each exercise: the cells between
    its `### Exercise N.M` heading and its check cell."""
    found, current = [], None
    for cell in notebook["cells"]:
        source = source_of(cell)
        if cell["cell_type"] == "markdown":
            for exercise_id, title in EXERCISE_HEADING.findall(source):
                current = (exercise_id, title, [])
        elif current is not None and cell["cell_type"] == "code":
            check = CHECK_CALL.search(source)
            if check and "check" in cell.get("metadata", {}).get("tags", []):
                if check.group(1) == current[0]:
                    found.append(current)
                current = None
            else:
                current[2].append(source)
    return found


def read_lesson(path: Path, records: dict[str, list[dict]]) -> list[Exercise]:
    """The state of each exercise in a saved lesson, from check()'s records."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    saved = {fingerprint(source_of(cell)) for cell in notebook["cells"]
             if cell["cell_type"] == "code"}
    exercises = []
    for exercise_id, title, sources in exercises_of(notebook):
        placeholder = f"Exercise {exercise_id}: not solved yet"
        cells = [fingerprint(source) for source in sources]
        if any(placeholder in source for source in sources):
            state, detail = "not started", ""
        elif not records.get(exercise_id):
            state, detail = "not checked", DETAILS["not checked"]
        else:
            entry = next((entry for entry in records[exercise_id]
                          if checked_this_code(entry, cells, saved)), None)
            if entry is None:
                state, detail = "changed", DETAILS["changed"]
            elif entry["passed"]:
                state, detail = "solved", ""
            else:
                state, detail = "failed", entry.get("detail", "")
        exercises.append(Exercise(path.stem, exercise_id, title, state, detail))
    return exercises


# ------------------------------------------------------------ --rerun: run the lessons


def run_lesson(path: Path) -> list[Exercise]:
    """Execute a copy of one lesson in a fresh kernel; return the state of its exercises."""
    import nbformat
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


def collect(lessons: Path = LESSONS, names: list[str] | None = None,
            rerun: bool = False) -> list[Exercise]:
    """The exercises of the lessons (all, or those whose name starts with one of `names`).

    From check()'s records; with `rerun`, by running the lessons side by side.
    """
    paths = [path for path in sorted(lessons.glob("*.ipynb"))
             if not names or any(path.name.startswith(name) for name in names)]
    if not rerun:
        records = read_records()
        return [exercise for path in paths for exercise in read_lesson(path, records)]
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


def progress(*names: str, rerun: bool = False) -> None:
    """Show where you stand, as a table: all lessons, or those whose name starts with `names`.

    `rerun=True` runs your saved lessons headless first (slow) instead of reading the records.
    """
    from IPython.display import display

    exercises = collect(names=list(names) or None, rerun=rerun)
    display({"text/plain": report(exercises), "text/html": as_html(exercises)}, raw=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Which exercises in lessons/ are solved.")
    parser.add_argument("names", nargs="*", help="only lessons whose name starts with these")
    parser.add_argument("--lessons", type=Path, default=LESSONS, help="the lessons folder")
    parser.add_argument("--rerun", action="store_true",
                        help="run the saved lessons headless (slow) instead of reading the records")
    args = parser.parse_args(argv)
    print(report(collect(args.lessons, args.names or None, rerun=args.rerun)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
