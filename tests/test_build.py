"""The builder: solutions/ in, learner notebooks out."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers import build

SOLVED_CODE = """class Greeter:
    def greet(self, name):
        \"\"\"Say hello.\"\"\"
        ### BEGIN SOLUTION
        message = f"hello {name}"
        return message
        ### END SOLUTION

    def other(self):
        return 1"""

LEARNER_CODE = """class Greeter:
    def greet(self, name):
        \"\"\"Say hello.\"\"\"
        raise NotImplementedError("Exercise 9.1: not solved yet")

    def other(self):
        return 1"""


def fixture_notebook() -> nbformat.NotebookNode:
    notebook = new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "widgets": {"state": "dropped in lessons"},
    })
    solved = new_code_cell(SOLVED_CODE, execution_count=3)
    solved.outputs = [new_output("stream", name="stdout", text="done\n")]
    notebook.cells = [
        new_markdown_cell("### Exercise 9.1: Say hello\n\nWrite greet."),
        solved,
        new_code_cell('check("9.1", Greeter)', metadata={"tags": ["check"]}, execution_count=4),
        new_code_cell("print(Greeter().greet('x'))", metadata={"tags": ["needs-exercise"]}),
        new_markdown_cell("Teacher's note", metadata={"tags": ["solution-only"]}),
        new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION",
                      metadata={"tags": ["needs-exercise"]}),
    ]
    return notebook


def test_builder_replaces_solutions_keeping_indentation_and_clears_outputs() -> None:
    lesson = build.build_notebook(fixture_notebook(), "09_demo.ipynb")
    sources = [cell.source for cell in lesson.cells]
    assert sources[1] == LEARNER_CODE
    assert sources[5] == 'raise NotImplementedError("Exercise 9.1: not solved yet")'
    assert "Teacher's note" not in sources
    assert all(cell.get("outputs", []) == [] for cell in lesson.cells)
    assert all(cell.get("execution_count") is None for cell in lesson.cells)
    assert lesson.metadata == {"kernelspec": fixture_notebook().metadata.kernelspec}


def test_builder_tags_check_and_needs_exercise_cells() -> None:
    lesson = build.build_notebook(fixture_notebook(), "09_demo.ipynb")
    tags = [cell.metadata.get("tags", []) for cell in lesson.cells]
    assert tags[1] == []
    assert tags[2] == ["check", "raises-exception"]
    assert tags[4] == ["needs-exercise", "raises-exception"]


def test_builder_links_each_exercise_to_its_solution_after_its_check() -> None:
    lesson = build.build_notebook(fixture_notebook(), "09_demo.ipynb")
    link = "(../solutions/09_demo.ipynb#Exercise-9.1:-Say-hello)"
    assert link not in lesson.cells[0].source, "the solution link must not come before the task"
    assert lesson.cells[3].cell_type == "markdown" and link in lesson.cells[3].source


def test_builder_output_round_trips_exactly(tmp_path) -> None:
    lesson = build.build_notebook(fixture_notebook(), "09_demo.ipynb")
    text = build.render(lesson)
    path = tmp_path / "09_demo.ipynb"
    path.write_text(text)
    assert build.render(nbformat.read(path, as_version=4)) == text
    nbformat.validate(nbformat.read(path, as_version=4))


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1",
    "x = 1\n### END SOLUTION",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
])
def test_unbalanced_markers_are_an_error(source: str) -> None:
    with pytest.raises(ValueError):
        build.strip_solutions(source, "9.1")


def test_check_mode_fails_when_lessons_differ(tmp_path, monkeypatch, capsys) -> None:
    solutions, lessons = tmp_path / "solutions", tmp_path / "lessons"
    solutions.mkdir()
    (solutions / "09_demo.ipynb").write_text(build.render(fixture_notebook()))
    monkeypatch.setattr(build, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(build, "SOLUTIONS", solutions)
    monkeypatch.setattr(build, "LESSONS", lessons)

    assert build.main(["--check"]) == 1  # nothing built yet
    assert build.main([]) == 0
    assert build.main(["--check"]) == 0
    (lessons / "09_demo.ipynb").write_text((lessons / "09_demo.ipynb").read_text() + " ")
    assert build.main(["--check"]) == 1  # edited by hand
    (lessons / "99_orphan.ipynb").write_text("{}")
    assert build.main([]) == 0
    assert not (lessons / "99_orphan.ipynb").exists()  # a lesson without a solution goes
    assert "is not what `make lessons` writes" in capsys.readouterr().err


def test_nbgrader_export_marks_solution_check_and_read_only_cells() -> None:
    from helpers.nbgrader_course import grader_notebook

    source = grader_notebook(fixture_notebook(), default_points=1, points={"9.1": 3})
    meta = [cell.metadata.get("nbgrader") for cell in source.cells]
    common = {"schema_version": 3, "task": False}
    assert meta[0] == {**common, "grade": False, "grade_id": "cell-0", "locked": True,
                       "solution": False}
    assert meta[1] == {**common, "grade": False, "grade_id": "exercise-9_1", "locked": False,
                       "solution": True}
    assert meta[2] == {**common, "grade": True, "grade_id": "check-9_1", "locked": True,
                       "points": 3, "solution": False}
    assert meta[3] == {**common, "grade": False, "grade_id": "cell-3", "locked": True,
                       "solution": False}  # needs-exercise: read-only, worth nothing
    assert meta[4]["solution"] and meta[4]["grade_id"] == "exercise-9_1-2"
    assert len(source.cells) == 5  # the solution-only cell is gone
    assert source.cells[1].source == SOLVED_CODE  # nbgrader replaces the region itself
    assert "../solutions/" not in source.cells[0].source  # students of a graded course lack it
    assert [cell.metadata.get("tags", []) for cell in source.cells][2:4] == [
        ["check", "raises-exception"], ["needs-exercise", "raises-exception"]]
    assert all(cell.get("outputs", []) == [] for cell in source.cells)


def test_nbgrader_export_passes_nbgraders_own_validation() -> None:
    pytest.importorskip("nbgrader")
    from nbgrader.nbgraderformat import MetadataValidator

    from helpers.nbgrader_course import grader_notebook

    MetadataValidator().validate_nb(grader_notebook(fixture_notebook()))


def test_lessons_carry_no_nbgrader_metadata() -> None:
    lesson = build.build_notebook(fixture_notebook(), "09_demo.ipynb")
    assert not any("nbgrader" in cell.metadata for cell in lesson.cells)


def test_nbgrader_export_writes_a_course_and_leaves_lessons_alone(tmp_path, monkeypatch) -> None:
    from helpers import nbgrader_course

    solutions, lessons = tmp_path / "solutions", tmp_path / "lessons"
    solutions.mkdir()
    (solutions / "09_demo.ipynb").write_text(build.render(fixture_notebook()))
    (solutions / "10_other.ipynb").write_text(build.render(fixture_notebook()))
    monkeypatch.setattr(build, "SOLUTIONS", solutions)
    monkeypatch.setattr(build, "LESSONS", lessons)
    config = tmp_path / "nbgrader_config.py"
    config.write_text('c = get_config()\nDEFAULT_POINTS = 2\nPOINTS = {"9.1": 5}\n')
    monkeypatch.setattr(nbgrader_course, "CONFIG", config)

    assert build.main(["--nbgrader", str(tmp_path / "course"), "09"]) == 0
    course = tmp_path / "course"
    assert sorted(str(path.relative_to(course)) for path in course.rglob("*.*")) == [
        "nbgrader_config.py", "source/ps09/09_demo.ipynb"]
    assert (course / "nbgrader_config.py").read_text() == config.read_text()
    exported = nbformat.read(course / "source/ps09/09_demo.ipynb", as_version=4)
    assert exported.cells[2].metadata.nbgrader.points == 5
    assert not lessons.exists()
