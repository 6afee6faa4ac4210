"""A lint of the course: pins, README map, exercises, checks, hints, safety rules."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from conftest import LESSONS, PROJECT_ROOT, SOLUTIONS

from helpers.build import EXERCISE_HEADING
from helpers.checks import EXERCISES

SOLUTION_FILES = sorted(SOLUTIONS.glob("*.ipynb"))
CHECK_CALL = re.compile(r"""check\(\s*["'](\d+\.\d+)["']""")


def notebooks() -> list:
    return sorted(SOLUTIONS.glob("*.ipynb")) + sorted(LESSONS.glob("*.ipynb"))


def code_cells(path):
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def test_readme_course_map_lists_exactly_the_lessons() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    mapped = re.findall(r"^\| \[[^\]]+\]\(lessons/([^)]+\.ipynb)\) \|", readme, re.MULTILINE)
    assert mapped == [path.name for path in sorted(LESSONS.glob("*.ipynb"))]
    assert mapped == [path.name for path in SOLUTION_FILES]


def test_readme_and_each_lesson_give_the_same_time() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    for path in SOLUTION_FILES:
        listed = re.search(rf"\(lessons/{re.escape(path.name)}\).*\| (\d+) \|$", readme, re.MULTILINE)
        said = re.search(r"about (\d+) minutes", path.read_text())
        assert listed and said and listed.group(1) == said.group(1), (path.name, listed, said)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_notebook_uses_python3_kernel(path) -> None:
    metadata = nbformat.read(path, as_version=4).metadata
    assert metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=lambda p: p.stem)
def test_every_exercise_has_a_check_and_a_hint(path) -> None:
    notebook = nbformat.read(path, as_version=4)
    headings = [exercise_id for cell in notebook.cells if cell.cell_type == "markdown"
                for exercise_id, _title in EXERCISE_HEADING.findall(cell.source)]
    checked = [exercise_id for cell in notebook.cells
               if "check" in cell.metadata.get("tags", [])
               for exercise_id in CHECK_CALL.findall(cell.source)]
    registered = sorted(ex.id for ex in EXERCISES.values() if ex.notebook == path.stem)
    assert headings, f"{path.name} has no exercises"
    assert sorted(headings) == sorted(checked) == registered
    assert len(set(headings)) == len(headings), "an exercise id is used twice"
    lesson_number = str(int(path.name[:2]))
    assert all(exercise_id.split(".")[0] == lesson_number for exercise_id in headings)
    for exercise_id in headings:
        assert len(EXERCISES[exercise_id].hint) > 20, f"exercise {exercise_id} needs a real hint"


def test_every_registered_exercise_belongs_to_a_notebook() -> None:
    stems = {path.stem for path in SOLUTION_FILES}
    assert {ex.notebook for ex in EXERCISES.values()} <= stems


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=lambda p: p.stem)
def test_solutions_were_run_and_every_check_passed(path) -> None:
    for cell in code_cells(path):
        assert cell.execution_count is not None, f"not run: {cell.source[:60]!r}"
        assert not [o for o in cell.outputs if o.output_type == "error"
                    and "raises-exception" not in cell.metadata.get("tags", [])], cell.source[:60]
        if "check" in cell.metadata.get("tags", []):
            text = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
            assert text.startswith("✅"), f"check did not pass: {cell.source!r}"


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=lambda p: p.stem)
def test_lesson_shape(path) -> None:
    text = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells
                     if cell.cell_type == "markdown")
    assert re.match(rf"# {path.name[:2]} · ", text), "title must be '# NN · Title'"
    for heading in ["**You will learn**", "**Prerequisites:**", "**Time:**", "## Key points",
                    "## Next"]:
        assert heading in text, f"missing {heading}"


FORBIDDEN_IN_CODE = {
    "a wildcard bind": re.compile(r"\[::\]|0\.0\.0\.0"),
    "a fixed port": re.compile(r"(localhost|127\.0\.0\.1):\d{2,5}\b"),
    "sys.path.insert": re.compile(r"sys\.path\.(insert|append)"),
}


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_fixed_ports_wildcard_binds_or_path_hacks_in_notebooks(path) -> None:
    # Markdown too, for addresses: prose can describe a wildcard bind without spelling out one
    # to copy. Prose may name sys.path.insert, to explain why the course never uses it.
    for cell in nbformat.read(path, as_version=4).cells:
        for what, pattern in FORBIDDEN_IN_CODE.items():
            if cell.cell_type == "code" or what != "sys.path.insert":
                assert not pattern.search(cell.source), f"{what} in: {cell.source[:80]!r}"


def test_first_code_cell_imports_helpers_before_grpc() -> None:
    for path in SOLUTION_FILES:
        first = code_cells(path)[0].source
        assert first.lstrip().startswith("import helpers"), path.name


def test_no_fixed_ports_or_wildcard_binds_in_helpers() -> None:
    for path in sorted((PROJECT_ROOT / "helpers").rglob("*.py")):
        text = path.read_text()
        for what, pattern in FORBIDDEN_IN_CODE.items():
            if what != "sys.path.insert":  # helpers.protos puts the generated code on sys.path
                assert not pattern.search(text), f"{what} in {path.name}"


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=lambda p: p.stem)
def test_saved_outputs_do_not_depend_on_where_the_project_lives(path) -> None:
    """An absolute path in a compared output fails on every other machine."""
    for cell in code_cells(path):
        if cell.source.startswith("# NBVAL_IGNORE_OUTPUT"):
            continue
        assert str(PROJECT_ROOT) not in json.dumps(cell.outputs), cell.source[:60]


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=lambda p: p.stem)
def test_nbval_markers_stand_alone_on_their_line(path) -> None:
    """nbval ignores `# NBVAL_IGNORE_OUTPUT some words`: the marker must be alone."""
    for cell in code_cells(path):
        for line in cell.source.splitlines():
            if "NBVAL_" in line:
                assert re.fullmatch(r"# NBVAL_[A-Z_]+", line.strip()), line


LOCAL_LINK = re.compile(r"\]\(([^)#\s]+\.(?:ipynb|proto|md))(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_links_to_course_files_point_to_files_that_exist(path) -> None:
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            for target in LOCAL_LINK.findall(cell.source):
                if "://" not in target:
                    assert (path.parent / target).exists(), f"broken link to {target}"


def wrong_answers_per_exercise() -> dict[str, int]:
    """How many wrong answers tests/test_lessonNN.py hold for each exercise."""
    import importlib
    from collections import Counter

    counts: Counter = Counter()
    for path in sorted(PROJECT_ROOT.glob("tests/test_lesson[0-9][0-9].py")):
        module = importlib.import_module(path.stem)
        counts.update(wrong.exercise for wrong in module.WRONG_ANSWERS)
    return {exercise_id: counts[exercise_id] for exercise_id in EXERCISES}


def test_every_exercise_has_at_least_two_wrong_answers_in_its_lessons_tests() -> None:
    counts = wrong_answers_per_exercise()
    too_few = {exercise_id: n for exercise_id, n in counts.items() if n < 2}
    assert not too_few, f"exercises with fewer than two wrong answers in the tests: {too_few}"
    print(f"\nwrong answers: {sum(counts.values())} for {len(counts)} exercises, "
          f"at least {min(counts.values())} each")
