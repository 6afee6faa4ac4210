"""The suite's own machinery: what a bare `pytest --nbval` collects, and the tests that the
root conftest.py adds after each notebook's cells really catch what they claim to."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from conftest import LESSONS, PROJECT_ROOT, SOLUTIONS

PYTEST = [sys.executable, "-m", "pytest"]


def collected(*args: str, cwd: Path = PROJECT_ROOT) -> list[str]:
    result = subprocess.run([*PYTEST, "--collect-only", "-q", "-n", "0", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_bare_pytest_nbval_collects_the_whole_suite_and_nothing_else() -> None:
    ids = collected("--nbval")
    files = {test_id.split("::")[0] for test_id in ids}
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        assert f"solutions/{path.name}::runs twice in one kernel" in ids
    for path in sorted(LESSONS.glob("*.ipynb")):
        assert f"lessons/{path.name}::every check fails until solved" in ids
    tests = {f"tests/{path.name}" for path in (PROJECT_ROOT / "tests").glob("test_*.py")}
    assert tests <= files
    assert not [name for name in files if name.startswith(("tests/browser", "tests/hub"))]
    assert len(ids) == len(set(ids))


def test_browser_and_hub_tests_run_when_named() -> None:
    """Named, they are collected (or, without Chromium, fail to be, saying so)."""
    for folder in ("tests/browser", "tests/hub"):
        result = subprocess.run([*PYTEST, "--collect-only", "-q", "-n", "0", folder],
                                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
        assert f"{folder}/test_" in result.stdout, result.stdout[-2000:]


def test_the_news_prompt_is_off_in_make_lab(monkeypatch) -> None:
    """JupyterLab reads the committed .jupyter/config/labconfig defaults (make lab's config dir)."""
    from jupyterlab_server.settings_utils import _get_overrides

    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(PROJECT_ROOT / ".jupyter" / "config"))
    overrides, error = _get_overrides("/nonexistent")  # what JupyterLab's settings API applies
    settings = overrides["@jupyterlab/apputils-extension:notification"]
    assert not error
    assert settings["fetchNews"] == "false" and settings["checkForUpdates"] is False


def notebook(*cells: nbformat.NotebookNode) -> str:
    book = nbformat.v4.new_notebook(cells=list(cells))
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return nbformat.writes(book)


def test_the_added_tests_catch_a_passing_check_and_a_second_run_that_fails(tmp_path) -> None:
    """A copy of the suite's machinery on two tiny notebooks that are wrong."""
    shutil.copy(PROJECT_ROOT / "conftest.py", tmp_path)
    (tmp_path / "tests").mkdir()
    for name in ("test_unsolved.py", "test_rerun.py"):
        shutil.copy(PROJECT_ROOT / "tests" / name, tmp_path / "tests")
    for folder in ("lessons", "solutions"):
        (tmp_path / folder).mkdir()
    tagged = {"tags": ["check", "raises-exception"]}
    (tmp_path / "lessons" / "broken.ipynb").write_text(notebook(
        nbformat.v4.new_code_cell("print('ok')", metadata=tagged)))
    (tmp_path / "solutions" / "once.ipynb").write_text(notebook(
        nbformat.v4.new_code_cell("assert 'seen' not in globals(), 'ran before'\nseen = 1")))
    result = subprocess.run(
        [*PYTEST, "--nbval", "--nbval-current-env", "-p", "no:cacheprovider", "-n", "0", "-rfE",
         "lessons", "solutions"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    summary = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert len(summary) == 2, result.stdout[-3000:]
    assert any("lessons/broken.ipynb::every check fails until solved" in line for line in summary)
    assert any("solutions/once.ipynb::runs twice in one kernel" in line for line in summary)
    assert "passed on an unsolved exercise" in result.stdout
    assert "second run in the same kernel failed" in result.stdout
    assert "2 passed" in result.stdout  # the cells themselves (the real suite shows good ones)
