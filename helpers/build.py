"""Build the learner's notebooks in lessons/ from the solved ones in solutions/.

    python -m helpers.build            # write lessons/
    python -m helpers.build --check    # fail if lessons/ is not what would be written
    python -m helpers.build --execute  # re-run solutions/ in place (refresh outputs) first
    python -m helpers.build --execute 03  # ... only the solutions whose name starts with 03
    python -m helpers.build --nbgrader DIR [03 04]  # export an nbgrader course (helpers.nbgrader_course)

For each solution notebook:
- code between `### BEGIN SOLUTION` and `### END SOLUTION` becomes
  `raise NotImplementedError("Exercise N.M: not solved yet")` at the same indentation
  (N.M is the latest `### Exercise N.M` heading above the cell);
- cells tagged `solution-only` are dropped;
- outputs and execution counts are cleared;
- cells tagged `check` or `needs-exercise` get the `raises-exception` tag, so
  JupyterLab's Run All and nbval carry on past them;
- each exercise's check cell is followed by a link to the same exercise in the solution
  notebook (after the task, not before it).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = PROJECT_ROOT / "solutions"
LESSONS = PROJECT_ROOT / "lessons"

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE_HEADING = re.compile(r"^###\s+Exercise\s+(\d+\.\d+):\s*(.+?)\s*$", re.MULTILINE)
RAISING_TAGS = {"check", "needs-exercise"}


def strip_solutions(source: str, exercise_id: str) -> str:
    """Replace each BEGIN/END SOLUTION block with a NotImplementedError at its indentation."""
    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN} in exercise {exercise_id}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("Exercise {exercise_id}: not solved yet")')
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN} in exercise {exercise_id}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END} in exercise {exercise_id}")
    return "\n".join(out)


def anchor(exercise_id: str, title: str) -> str:
    """The id JupyterLab gives the heading `### Exercise N.M: title`."""
    return f"Exercise-{exercise_id}:-{title}".replace(" ", "-")


def solution_link(exercise_id: str, title: str, solution_name: str) -> nbformat.NotebookNode:
    """The markdown cell that follows an exercise's check: a link to the same exercise solved.

    It comes after the task and its check, not before: try first, compare after.
    """
    href = f"../solutions/{solution_name}#{anchor(exercise_id, title)}"
    cell = nbformat.v4.new_markdown_cell(
        f"*Solved it, or stuck after a real try? Compare with [the solution]({href}).*")
    cell.id = f"solution-link-{exercise_id.replace('.', '-')}"
    return cell


def build_notebook(solution: nbformat.NotebookNode, solution_name: str,
                   solved: frozenset[str] = frozenset()) -> nbformat.NotebookNode:
    """Return the learner's copy of one solution notebook.

    Exercises listed in `solved` keep their solution code (tests use this to
    make a partly solved copy, as a learner's would be).
    """
    lesson = copy.deepcopy(solution)
    lesson.metadata = {key: lesson.metadata[key] for key in ("kernelspec", "language_info")
                       if key in lesson.metadata}
    cells = []
    exercise_id, title = "?", ""
    for cell in lesson.cells:
        cell.metadata.pop("execution", None)  # when the solution last ran: noise for a learner
        tags = list(cell.metadata.get("tags", []))
        if cell.cell_type == "markdown":
            headings = EXERCISE_HEADING.findall(cell.source)
            if headings:
                exercise_id, title = headings[-1]
        if "solution-only" in tags:
            continue
        if cell.cell_type == "code":
            if exercise_id in solved:
                cell.source = "\n".join(line for line in cell.source.split("\n")
                                        if line.strip() not in (BEGIN, END))
            else:
                cell.source = strip_solutions(cell.source, exercise_id)
            cell.outputs = []
            cell.execution_count = None
            if RAISING_TAGS & set(tags) and "raises-exception" not in tags:
                tags.append("raises-exception")
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)
        if "check" in tags:
            cells.append(solution_link(exercise_id, title, solution_name))
    lesson.cells = cells
    return lesson


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def expected_lessons() -> dict[Path, str]:
    """What lessons/ should hold: file path to file text."""
    result = {}
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        result[LESSONS / path.name] = render(build_notebook(solution, path.name))
    return result


def execute_solutions(names: list[str], timeout: int = 600) -> None:
    """Run solution notebooks (all, or those whose name starts with one of `names`)
    top to bottom in a fresh kernel and save them with their outputs."""
    from nbclient import NotebookClient

    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        if names and not any(path.name.startswith(name) for name in names):
            continue
        print(f"executing {path.relative_to(PROJECT_ROOT)}")
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(notebook, timeout=timeout, kernel_name="python3", store_widget_state=False,
                       record_timing=False, resources={"metadata": {"path": str(SOLUTIONS)}}).execute()
        path.write_text(render(notebook))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument("--execute", action="store_true", help="re-run solutions/ first")
    parser.add_argument("--nbgrader", metavar="DIR", type=Path,
                        help="only export an nbgrader course into DIR (see teacher/README.md)")
    parser.add_argument("names", nargs="*",
                        help="with --execute or --nbgrader: only these notebooks (prefixes)")
    args = parser.parse_args(argv)
    if args.execute:
        execute_solutions(args.names)
    if args.nbgrader:
        from helpers.nbgrader_course import export

        written = export(args.nbgrader, args.names)
        print(f"wrote {len(written)} notebooks to {args.nbgrader / 'source'}")
        return 0
    expected = expected_lessons()
    present = set(LESSONS.glob("*.ipynb"))
    stale = sorted(present - set(expected))
    if args.check:
        problems = [f"{p.relative_to(PROJECT_ROOT)} has no solution notebook" for p in stale]
        problems += [f"{p.relative_to(PROJECT_ROOT)} is not what `make lessons` writes"
                     for p, text in expected.items()
                     if not p.exists() or p.read_text() != text]
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("Run `make lessons` and commit the result.", file=sys.stderr)
            return 1
        print(f"lessons/ matches solutions/ ({len(expected)} notebooks)")
        return 0
    LESSONS.mkdir(exist_ok=True)
    for path in stale:
        path.unlink()
    for path, text in expected.items():
        path.write_text(text)
    print(f"wrote {len(expected)} notebooks to lessons/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
