"""How `pytest --nbval` runs the course (the whole suite, from the project root).

pyproject.toml's [tool.pytest.ini_options] holds the options (paths, nbval's,
workers); this plugin adds what options cannot say:

- tests/browser and tests/hub run only when named (`make test-browser`,
  `make test-hub`, or their path): they need Chromium and Node.
- Each notebook runs whole in one worker (its cells share one kernel), the
  slowest files first so that the workers finish together. Tests that time
  things share one worker per lesson (TIMING), and the few that time a call
  against a fixed sleep run with no other test beside them (ALONE).
- One nbval execution per notebook serves two more tests, so no notebook runs
  more often than its tests need:
  - `lessons/NN.ipynb::every check fails until solved`: nbval's run of the
    unsolved lesson, judged as tests/test_unsolved.py says (each `check` cell
    raised CheckFailed, no untagged cell raised).
  - `solutions/NN.ipynb::runs twice in one kernel`: after nbval's run, every
    cell again in the same kernel, with no error (tests/test_rerun.py).
- No test run writes the learner's progress records (helpers/progress_report.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
TESTS = ROOT / "tests"
ONLY_WHEN_NAMED = [TESTS / "browser", TESTS / "hub"]

# Tests that time things, by lesson: those of one lesson share a worker, one after another,
# so two runs of the same measurement (12.2's pre-fork workers, 07's benchmark, 10's keepalive
# and shutdown timelines) never compete with each other. They go out first: they are the longest.
TIMING = {
    name: f"timing-{lesson}" for lesson in ("07", "10", "12") for name in (
        f"solutions/{lesson}_", f"lessons/{lesson}_", f"tests/test_lesson{lesson}.py")
}

# Tests that time a call against a fixed sleep: each runs alone, every other worker waiting.
ALONE = (
    "tests/test_lesson12.py::test_sigterm_lets_a_call_in_flight_finish_and_exits_0",
    "tests/test_lesson12.py::test_without_a_handler_sigterm_kills_the_call_in_flight",
)

# Single tests that run pytest or notebooks themselves: they go out with the first notebooks.
SLOW = ("tests/test_suite.py", "tests/test_progress.py", "tests/test_workflow.py")

# The workers of one run share a folder of locks (workers inherit the controller's variable).
os.environ.setdefault("COURSE_SUITE_LOCKS", tempfile.mkdtemp(prefix="course-suite-"))

# Checks run by the suite must not write the learner's progress (every kernel inherits this).
os.environ["COURSE_PROGRESS_FILE"] = os.path.join(tempfile.mkdtemp(prefix="course-progress-"),
                                                  "progress.jsonl")
sys.path.insert(0, str(TESTS))  # the tests' own modules (pytest adds it too, for tests/conftest.py)


def named(path: Path, config: pytest.Config) -> bool:
    """Whether the command line names `path` or something inside it."""
    for arg in config.invocation_params.args:
        candidate = Path(config.invocation_params.dir, str(arg).split("::")[0]).resolve()
        if candidate == path or path in candidate.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    for folder in ONLY_WHEN_NAMED:
        if collection_path == folder and not named(folder, config):
            return True
    return None


def relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- one run, several tests


def cell_outputs(item: pytest.Item) -> list:
    """What an nbval cell showed when it ran (errors included), or [] if it did not run."""
    return list(getattr(item, "test_outputs", None) or [])


class UnsolvedLesson(pytest.Item):
    """nbval's run of this lesson: every check cell of an unsolved exercise failed with
    CheckFailed, and no untagged cell raised (tests/test_unsolved.py). In a learner's
    copy, the check of an exercise they solved must pass instead."""

    def runtest(self) -> None:
        import nbformat
        from test_unsolved import unsolved_problems

        cells = cells_of(self.parent)
        not_run = [item.name for item in cells if item.test_outputs is None]
        assert not not_run, f"nbval did not run {', '.join(not_run)}: run the whole notebook"
        notebook = nbformat.read(self.path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        for cell, item in zip(code, cells, strict=True):
            cell.outputs = cell_outputs(item)
        checks, problems = unsolved_problems(notebook)
        assert checks > 0, f"{self.path.name} has no check cells"
        assert not problems, "\n".join(problems)

    def reportinfo(self):
        return self.path, None, f"{relative(self.path)}: every check fails until solved"


class SecondRun(pytest.Item):
    """After nbval's run, every cell once more in the same kernel: no cell raises."""

    def runtest(self) -> None:
        from test_rerun import run_again

        cells = cells_of(self.parent)
        not_run = [item.name for item in cells if item.test_outputs is None]
        assert not not_run, f"nbval did not run {', '.join(not_run)}: run the whole notebook"
        first = [f"cell {item.cell_num}: {error.ename}: {error.evalue}" for item in cells
                 for error in cell_outputs(item) if error.output_type == "error"]
        assert not first, "the first run failed:\n" + "\n".join(first)
        kernel = self.parent.kernel
        assert kernel is not None and kernel.is_alive(), "the notebook's kernel is gone"
        errors = run_again(kernel.kc, [item.cell.source for item in cells])
        assert not errors, "second run in the same kernel failed:\n" + "\n".join(errors)

    def reportinfo(self):
        return self.path, None, f"{relative(self.path)}: runs twice in one kernel"


def cells_of(notebook: pytest.Collector) -> list:
    """The nbval cell items of this notebook file, in order."""
    from nbval.plugin import IPyNbCell

    return [item for item in notebook.session.items
            if isinstance(item, IPyNbCell) and item.parent is notebook]


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """Add the unsolved / run-twice test after each lesson's / solution's cells."""
    report = yield
    from nbval.plugin import IPyNbFile

    if isinstance(collector, IPyNbFile) and report.passed:
        folder = collector.path.parent
        if folder == ROOT / "lessons":
            report.result.append(UnsolvedLesson.from_parent(
                collector, name="every check fails until solved"))
        elif folder == ROOT / "solutions":
            report.result.append(SecondRun.from_parent(collector, name="runs twice in one kernel"))
    return report


def start_kernel_again_if_it_died(setup):
    """nbval's setup, once more if the kernel died or stayed silent while starting.

    Seen twice in full runs on a machine loaded far past its cores (load 16 on 2): a
    kernel died before it answered, and every cell of its notebook errored. The
    notebook's own code had not run yet, so starting again proves nothing less.
    """

    def setup_twice(self) -> None:
        try:
            setup(self)
        except RuntimeError as error:
            print(f"{self.path.name}: the kernel did not start ({error}); starting another")
            setup(self)

    return setup_twice


def pytest_configure(config: pytest.Config) -> None:
    from nbval.plugin import IPyNbFile

    if not hasattr(IPyNbFile.setup, "__wrapped_once__"):
        IPyNbFile.setup = start_kernel_again_if_it_died(IPyNbFile.setup)
        IPyNbFile.setup.__wrapped_once__ = True


# ---------------------------------------------------------------- workers


def alone(item: pytest.Item | None) -> bool:
    return item is not None and item.nodeid.split("@")[0].startswith(ALONE)


class Room:
    """Every test of a run holds the room shared, an ALONE test holds it alone.

    A test that wants it alone first takes the gate, so no new test enters while it
    waits for the running ones to end (fcntl locks on two files, one per run).
    """

    def __init__(self, folder: str) -> None:
        self.gate = open(os.path.join(folder, "gate"), "a")
        self.room = open(os.path.join(folder, "room"), "a")
        self.alone = False

    def enter(self, alone: bool) -> None:
        import fcntl

        if self.alone:  # still held from the test before: ALONE tests run back to back
            return
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        except BaseException:  # a timeout while waiting must not leave the gate shut
            fcntl.flock(self.gate, fcntl.LOCK_UN)
            raise
        if not alone:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
        self.alone = alone

    def leave(self, next_alone: bool) -> None:
        import fcntl

        if self.alone and next_alone:
            return
        fcntl.flock(self.room, fcntl.LOCK_UN)
        if self.alone:
            self.alone = False
            fcntl.flock(self.gate, fcntl.LOCK_UN)


ROOM = pytest.StashKey[Room]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """With workers, ALONE tests run while no other test runs."""
    if not hasattr(item.config, "workerinput"):  # no workers: one test at a time anyway
        return (yield)
    if ROOM not in item.config.stash:
        item.config.stash[ROOM] = Room(os.environ["COURSE_SUITE_LOCKS"])
    room = item.config.stash[ROOM]
    room.enter(alone(item))
    try:
        return (yield)
    finally:
        room.leave(alone(nextitem))


def group_of(item: pytest.Item) -> str | None:
    """The xdist group: each notebook whole in one worker; timed tests by lesson."""
    path = relative(item.path)
    for start, group in TIMING.items():
        if path.startswith(start):
            return group
    if item.path.suffix == ".ipynb":
        return path
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each notebook in one worker; send the longest units out first."""
    for item in items:
        group = group_of(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    order: dict[str | None, int] = {group: 0 for group in TIMING.values()}
    for item in items:  # then notebooks: solutions (each runs twice) before lessons
        if item.path.suffix == ".ipynb":
            order.setdefault(group_of(item), 1 if item.path.parent.name == "solutions" else 2)
    def rank(item: pytest.Item) -> tuple[int, int]:
        if relative(item.path).startswith(SLOW):
            return 1, 0
        return order.get(group_of(item), 3), 0 if alone(item) else 1  # ALONE first in a group

    items.sort(key=rank)  # a stable sort: the cells of a notebook keep their order
