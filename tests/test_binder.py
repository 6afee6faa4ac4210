"""Binder: repo2docker's own detection of what it would build from this repository.

No Docker is needed: `--no-build --debug` prints the Dockerfile repo2docker would use.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_ROOT


def test_repo2docker_builds_from_environment_yml_and_runs_post_build() -> None:
    repo2docker = Path(sys.executable).parent / "jupyter-repo2docker"
    result = subprocess.run([str(repo2docker), "--no-build", "--debug", "--user-id", "1000",
                             "--user-name", "jovyan", str(PROJECT_ROOT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dockerfile = result.stdout + result.stderr
    assert "Building conda environment for python=3.11" in dockerfile
    assert 'env update -p ${NB_PYTHON_PREFIX} --file "environment.yml"' in dockerfile
    assert "RUN ./postBuild" in dockerfile
