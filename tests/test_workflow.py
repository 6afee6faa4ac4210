"""The CI workflow a fork uses as it is: valid, and running exactly the README's commands."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "test.yml"


def readme_commands() -> list[str]:
    """The commands in the README's "Testing and CI" section (its ```bash blocks)."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("## Testing and CI", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def workflow_commands() -> list[str]:
    """Every `run:` command of the workflow, in order."""
    return [line.split("run:", 1)[1].strip() for line in WORKFLOW.read_text().splitlines()
            if line.strip().startswith(("run:", "- run:"))]


def test_the_workflow_passes_github_actions_schema() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    result = subprocess.run([checker, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_runs_the_readmes_commands() -> None:
    assert set(workflow_commands()) == set(readme_commands()), (workflow_commands(),
                                                                readme_commands())
    assert {"make test", "make test-browser", "make test-hub"} <= set(workflow_commands())


def test_the_workflow_tests_the_oldest_and_newest_python_of_the_lock() -> None:
    text = WORKFLOW.read_text()
    assert re.search(r'python: \["3\.11", "3\.\d+"\]', text)
    oldest = re.search(r'requires-python = ">=(3\.\d+)"',
                       (PROJECT_ROOT / "pyproject.toml").read_text()).group(1)
    assert f'"{oldest}"' in text


def test_ci_run_runs_the_readmes_make_commands() -> None:
    """.ci/run (this project's own CI) runs the same make targets as the workflow."""
    ci = (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
    assert [line for line in ci if line.startswith("make ")] == \
        [command for command in workflow_commands() if command.startswith("make ")]
