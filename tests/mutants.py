"""Mutation testing of every exercise's official solution: does its check notice a small change?

For each exercise, the code between `### BEGIN SOLUTION` and `### END SOLUTION` in its cell of
`solutions/NN_*.ipynb` is changed one small way at a time (a mutant). Each mutant replaces the
exercise cell in a live kernel and the check cell runs: the mutant is *killed* when the check fails
or hangs (a cell over --timeout seconds: the kernel is replaced and the notebook replayed), and
*survives* when the check passes twice (a mutant killed only on its second run counts as killed,
and the report names it: its check depends on timing and should be made sure). After each mutant the official cell and its check run again,
and must pass. A survivor is equivalent (same behaviour) or a hole in the check;
`tests/mutants_survivors.toml` lists each one with its reason or the change that kills it.
An exercise fails below 90% killed, unless all its survivors are listed as equivalent.

    python tests/mutants.py [--lesson 03] [--exercise 3.2] [--max-per-exercise K] [--workers N]
    make mutants                                         # every exercise, as CI runs it
    make mutants MUTANTS_ARGS="--max-per-exercise 8"     # a seeded sample, for a quick look
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import random
import re
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
SURVIVORS_FILE = ROOT / "tests" / "mutants_survivors.toml"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CHECK_CALL = re.compile(r'check\(\s*"(\d+\.\d+)"')
FLOOR = 0.90
# The checks run here must not write the learner's progress records (helpers/progress_report.py).
os.environ.setdefault("COURSE_PROGRESS_FILE", os.path.join(
    tempfile.mkdtemp(prefix="course-mutants-"), "progress.jsonl"))
FLIPS: dict[type, type] = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                           ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot,
                           ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
                           ast.And: ast.Or, ast.Or: ast.And}


# ---------------------------------------------------------------- the mutator

def solution_lines(source: str) -> set[int]:
    """Line numbers (1-based) strictly inside the cell's BEGIN/END SOLUTION regions."""
    lines, inside = set(), False
    for number, line in enumerate(source.split("\n"), start=1):
        if line.strip() in (BEGIN, END):
            inside = line.strip() == BEGIN
        elif inside:
            lines.add(number)
    return lines


def short(node: ast.AST | list[ast.stmt]) -> str:
    """One line of source for a node (or statements), cut at 60 characters."""
    text = " ".join(ast.unparse(node).split()) if not isinstance(node, list) else (
        "; ".join(" ".join(ast.unparse(n).split()) for n in node))
    return text if len(text) <= 60 else text[:57] + "..."


Change = Callable[[], "ast.AST | list[ast.stmt]"]


class Mutator(ast.NodeTransformer):
    """Walks a cell's tree; with `target=None` lists mutation sites, else applies site `target`."""

    def __init__(self, region: set[int], target: int | None = None) -> None:
        self.region, self.target, self.sites, self.count = region, target, [], 0

    def visit(self, node: ast.AST):  # type: ignore[override]
        node = self.generic_visit(node)  # children first: site numbers are the same every walk
        if hasattr(node, "lineno") and all(
                n in self.region for n in range(node.lineno, node.end_lineno + 1)):
            for label, change in candidates(node):
                index, self.count = self.count, self.count + 1
                if self.target is None:  # the same change twice on a line: "#2" tells them apart
                    label = f"L{node.lineno}: {label}"
                    same = sum(site.split(" #")[0] == label for site in self.sites)
                    self.sites.append(f"{label} #{same + 1}" if same else label)
                elif index == self.target:
                    return change()
        return node


def candidates(node: ast.AST) -> Iterator[tuple[str, Change]]:
    """The mutations of one node: (what changes, a function that changes it and returns the result)."""
    def set_attr(name: str, value: object, result: object = node) -> Change:
        return lambda: (setattr(node, name, value), result)[1]

    def set_item(items: list, i: int, value: object) -> Change:
        return lambda: (items.__setitem__(i, value), node)[1]

    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in FLIPS:
                yield (f"{short(node)}  ({type(op).__name__} -> {FLIPS[type(op)].__name__})",
                       set_item(node.ops, i, FLIPS[type(op)]()))
    if isinstance(node, ast.BoolOp):
        yield f"{short(node)}  (and <-> or)", set_attr("op", FLIPS[type(node.op)]())
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield f"{node.value} -> {not node.value}", lambda: ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        for new in dict.fromkeys([node.value + 1, node.value - 1, 0 if node.value else 1]):
            yield f"{node.value!r} -> {new!r}", lambda new=new: ast.Constant(new)
    if isinstance(node, ast.Call):
        for i in range(len(node.args) - 1):
            if not any(isinstance(a, ast.Starred) for a in node.args[i:i + 2]):
                swapped = node.args[:i] + [node.args[i + 1], node.args[i]] + node.args[i + 2:]
                yield f"{short(node)}  (swap arguments {i + 1} and {i + 2})", set_attr("args", swapped)
        for i, keyword in enumerate(node.keywords):
            if keyword.arg == "timeout":
                yield (f"{short(node)}  (remove timeout=)",
                       set_attr("keywords", node.keywords[:i] + node.keywords[i + 1:]))
    if isinstance(node, ast.Await):
        yield f"{short(node)}  (remove await)", lambda: node.value
    if isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        yield f"{short(node)}  (-> return None)", set_attr("value", ast.Constant(None))
    if isinstance(node, (ast.If, ast.While)):
        yield (f"{type(node).__name__.lower()} {short(node.test)}  (negate the condition)",
               set_attr("test", ast.UnaryOp(ast.Not(), node.test)))
    if isinstance(node, (ast.Try, ast.TryStar)):
        for i, handler in enumerate(node.handlers):
            rest = node.handlers[:i] + node.handlers[i + 1:]
            result = node if rest or node.finalbody else node.body + node.orelse
            yield (f"except {short(handler.type) if handler.type else ''}  (drop the except clause)",
                   set_attr("handlers", rest, result))
        if node.finalbody:
            result = node if node.handlers else node.body + node.orelse
            yield (f"finally: {short(node.finalbody)}  (drop the finally body)",
                   set_attr("finalbody", [], result))
    if isinstance(node, (ast.With, ast.AsyncWith)) and all(i.optional_vars is None for i in node.items):
        yield f"with {short(node.items[0].context_expr)}:  (its body without the with)", lambda: node.body
    if isinstance(node, ast.stmt) and not isinstance(node, ast.Pass) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
        yield f"{short(node)}  (-> pass)", ast.Pass


def parse(source: str) -> ast.Module:
    """A cell's tree (top-level await allowed, as in a notebook)."""
    return compile(source, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def split_header(source: str) -> tuple[str, str]:
    """(the cell's leading magics and comments, the rest with those lines left blank).

    A cell magic (`%%ipytest`) is not Python, and a comment under it may configure it
    (`# ipytest: run_in_thread=True`): both are kept as they are, in front of each mutant.
    Blank lines keep the line numbers of the rest.
    """
    lines = source.split("\n")
    count = 0
    while count < len(lines) and (lines[count].startswith("%") or not lines[count].strip()
                                  or lines[count].lstrip().startswith("#")):
        count += 1
    header = [line for line in lines[:count] if line.startswith("%") or line.strip()]
    if not any(line.startswith("%") for line in header):
        return "", source
    return "\n".join(header) + "\n", "\n" * count + "\n".join(lines[count:])


def mutants(source: str) -> list[tuple[str, str]]:
    """Every distinct (description, mutated source) of a cell's solution regions."""
    header, source = split_header(source)
    region, tree = solution_lines(source), parse(source)
    lister = Mutator(region)
    lister.visit(copy.deepcopy(tree))
    original, seen, found = ast.unparse(tree), set(), []
    for index, label in enumerate(lister.sites):
        mutated = Mutator(region, index).visit(copy.deepcopy(tree))
        text = ast.unparse(ast.fix_missing_locations(mutated))
        if text != original and text not in seen:
            seen.add(text)
            found.append((label, header + text))
    return found


def sample(items: list, k: int | None, seed: str) -> list:
    """At most k items, the same ones every run (seeded by `seed`), in their original order."""
    if k is None or len(items) <= k:
        return items
    keep = set(random.Random(seed).sample(range(len(items)), k))
    return [item for i, item in enumerate(items) if i in keep]


# ---------------------------------------------------------------- running the checks

@dataclass
class Exercise:
    """One exercise: its id, the index of its cell and of its check cell in the notebook."""
    id: str
    cell: int
    check: int


@dataclass
class Result:
    """What one exercise's mutants did to its check."""
    exercise: str
    total: int = 0
    killed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # how mutants were killed: error -> count
    killed_by: dict[str, str] = field(default_factory=dict)  # mutation -> the error that killed it
    survivors: list[str] = field(default_factory=list)
    sometimes: list[str] = field(default_factory=list)  # survived once, killed on the second run
    problems: list[str] = field(default_factory=list)  # the official solution failing its check
    seconds: float = 0.0


def exercises(notebook) -> list[Exercise]:
    """The exercises of a solution notebook: each cell with a solution, and the check after it."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and BEGIN in cell.source:
            check = next(i for i in range(index + 1, len(notebook.cells))
                         if "check" in notebook.cells[i].metadata.get("tags", []))
            found.append(Exercise(CHECK_CALL.search(notebook.cells[check].source).group(1), index, check))
    return found


class Kernel:
    """A notebook's kernel that runs cells one by one and can be replaced after a hang."""

    def __init__(self, path: Path, timeout: int) -> None:
        import nbformat
        self.path, self.timeout = path, timeout
        self.notebook = nbformat.read(path, as_version=4)
        self.client = None
        self.start()

    def start(self) -> None:
        from nbclient import NotebookClient
        self.client = NotebookClient(self.notebook, timeout=self.timeout, kernel_name="python3",
                                     allow_errors=True, interrupt_on_timeout=False,
                                     resources={"metadata": {"path": str(self.path.parent)}})
        self.client.km = self.client.create_kernel_manager()
        self.client.start_new_kernel()
        self.client.start_new_kernel_client()

    def stop(self) -> None:
        self.client._cleanup_kernel()

    def run(self, index: int, source: str | None = None) -> str | None:
        """Run cell `index` (with `source` instead of its own); return its error name, or None."""
        cell = copy.deepcopy(self.notebook.cells[index])
        if source is not None:
            cell.source = source
        try:
            self.client.execute_cell(cell, index)
        except Exception as error:  # CellTimeoutError, DeadKernelError: the check hung or died
            return f"hung ({type(error).__name__})"
        errors = [output.ename for output in cell.outputs if output.output_type == "error"]
        return errors[0] if errors else None

    def restart(self, upto: int) -> None:
        """A fresh kernel with the notebook's cells before `upto` run again."""
        self.stop()
        self.start()
        for index in range(upto):
            if self.notebook.cells[index].cell_type == "code":
                self.run(index)


def try_mutant(kernel: Kernel, exercise: Exercise, source: str) -> str | None:
    """Run the mutated cell and the cells up to its check; return why it was killed, or None."""
    for index in range(exercise.cell, exercise.check + 1):
        if kernel.notebook.cells[index].cell_type != "code":
            continue
        error = kernel.run(index, source if index == exercise.cell else None)
        if error and error.startswith("hung"):
            kernel.restart(exercise.cell)
            return error
        if error:
            return error
    return None


def run_notebook(path: Path, wanted: set[str] | None, k: int | None, timeout: int) -> list[Result]:
    """Execute one solution notebook in order, trying every (sampled) mutant of its exercises."""
    kernel, listed = Kernel(path, timeout), equivalents()
    todo = [e for e in exercises(kernel.notebook) if wanted is None or e.id in wanted]
    results, done = [], 0
    try:
        for exercise in todo:
            for index in range(done, exercise.cell):
                if kernel.notebook.cells[index].cell_type == "code":
                    kernel.run(index)
            started, result = time.monotonic(), Result(exercise.id)
            original = kernel.notebook.cells[exercise.cell].source
            if error := try_mutant(kernel, exercise, original):
                result.problems.append(f"the official solution fails its own check ({error})")
            equivalent = {label for label, note in listed.get(exercise.id, {}).items()
                          if note.get("equivalent")}
            for label, source in sample(mutants(original), k, seed=exercise.id):
                result.total += 1
                for attempt in (1, 2):  # a survivor gets a second run: is it killed only sometimes?
                    reason = try_mutant(kernel, exercise, source)
                    if reason and try_mutant(kernel, exercise, original):  # a mess left behind
                        kernel.restart(exercise.cell)
                        if error := try_mutant(kernel, exercise, original):
                            result.problems.append(f"after mutant {label!r}: the solution fails ({error})")
                    if reason or label in equivalent:  # a listed equivalent needs no second run
                        break
                if reason:
                    result.killed += 1
                    result.reasons[reason] = result.reasons.get(reason, 0) + 1
                    result.killed_by[label] = reason
                    if attempt == 2:
                        result.sometimes.append(label)
                else:
                    result.survivors.append(label)
            if error := try_mutant(kernel, exercise, original):  # later cells use the official one
                result.problems.append(f"after its mutants: the solution fails ({error})")
            result.seconds = time.monotonic() - started
            print(f"  {exercise.id}: {result.killed}/{result.total} killed in {result.seconds:.0f}s",
                  file=sys.stderr, flush=True)
            results.append(result)
            done = exercise.check + 1
    finally:
        kernel.stop()
    return results


# ---------------------------------------------------------------- the report

def equivalents(path: Path = SURVIVORS_FILE) -> dict[str, dict[str, dict]]:
    """The survivors file: exercise id -> mutation label -> {equivalent, reason or kill}."""
    if not path.exists():
        return {}
    table = tomllib.loads(path.read_text())
    return {ex: {s["mutation"]: s for s in entries} for ex, entries in table.get("exercise", {}).items()}


def verdict(result: Result, listed: dict[str, dict], floor: float = FLOOR) -> tuple[bool, str]:
    """(passes, why): at or above the floor, or every survivor listed as equivalent; never a problem."""
    score = result.killed / result.total if result.total else 1.0
    if result.problems:
        return False, "solution fails its check"
    if score >= floor:
        return True, ""
    unexplained = [s for s in result.survivors if not listed.get(s, {}).get("equivalent")]
    return (not unexplained, f"below {floor:.0%}" + (" (survivors all equivalent)" if not unexplained else ""))


def notebooks(lessons: list[str] | None, wanted: set[str] | None) -> list[Path]:
    """The solution notebooks to run (lessons "03" or "3", exercises "3.2"), biggest first."""
    numbers = {int(n) for n in lessons or []} | {int(e.split(".")[0]) for e in wanted or []}
    paths = [p for p in SOLUTIONS.glob("*.ipynb") if not numbers or int(p.name[:2]) in numbers]
    return sorted(paths, key=lambda p: -p.stat().st_size)  # the biggest take longest: start them first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lesson", action="append", help="only this lesson (e.g. 03 or 3)")
    parser.add_argument("--exercise", action="append", help="only this exercise (e.g. 3.2)")
    parser.add_argument("--max-per-exercise", type=int, help="a seeded sample of at most K mutants")
    parser.add_argument("--workers", type=int, default=2, help="notebooks run at the same time")
    parser.add_argument("--timeout", type=int, default=60, help="seconds a cell may run")
    parser.add_argument("--verbose", action="store_true", help="list the killed mutants too")
    args = parser.parse_args(argv)
    for name in ("CONFIG", "DATA", "RUNTIME"):
        os.environ.setdefault(f"JUPYTER_{name}_DIR", str(ROOT / ".jupyter" / name.lower()))
    os.environ.setdefault("IPYTHONDIR", str(ROOT / ".jupyter" / "ipython"))
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    wanted = set(args.exercise) if args.exercise else None
    paths = notebooks(args.lesson, wanted)
    started, listed = time.monotonic(), equivalents()
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = {pool.submit(run_notebook, p, wanted, args.max_per_exercise, args.timeout): p for p in paths}
        for job in as_completed(jobs):  # progress, on stderr
            print(f"{jobs[job].name} done after {time.monotonic() - started:.0f}s", file=sys.stderr)
        results = sorted((r for job in jobs for r in job.result()),
                         key=lambda r: tuple(map(int, r.exercise.split("."))))
    failed = 0
    print(f"{'exercise':>8} {'mutants':>7} {'killed':>6} {'score':>6} {'w/o eq.':>7} {'time':>6}")
    for r in results:
        ok, why = verdict(r, listed.get(r.exercise, {}))
        failed += not ok
        equivalent = sum(bool(listed.get(r.exercise, {}).get(s, {}).get("equivalent")) for s in r.survivors)
        score = f"{r.killed / r.total:.0%}" if r.total else "-"
        plain = f"{r.killed / (r.total - equivalent):.0%}" if r.total > equivalent else "-"
        print(f"{r.exercise:>8} {r.total:>7} {r.killed:>6} {score:>6} {plain:>7} {r.seconds:>5.0f}s"
              f"  {'ok' if ok else 'FAIL'} {why}  killed by: "
              + ", ".join(f"{name} {count}" for name, count in sorted(r.reasons.items())))
        for problem in r.problems:
            print(f"         ! {problem}")
        for label, reason in r.killed_by.items() if args.verbose else ():
            print(f"         killed   [{reason}] {label}")
        for label in r.sometimes:  # counted as killed, but its check depends on timing: make it sure
            print(f"         killed only on a second run (timing-dependent) {label}")
        for label in r.survivors:
            note = listed.get(r.exercise, {}).get(label, {})
            tag = "equivalent" if note.get("equivalent") else ("listed" if note else "NEW")
            print(f"         survived [{tag}] {label}")
    total, killed = sum(r.total for r in results), sum(r.killed for r in results)
    print(f"all: {killed}/{total} killed ({killed / max(total, 1):.0%}) in "
          f"{time.monotonic() - started:.0f}s; {failed} exercise(s) below the floor")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
