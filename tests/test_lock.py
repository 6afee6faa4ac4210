"""The locked environment: one lock file, every install from it, nothing unpinned."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata

from conftest import PROJECT_ROOT
from packaging.markers import Marker
from packaging.utils import canonicalize_name

LOCK = PROJECT_ROOT / "requirements.lock"
# What `python -m venv` and the editable install add beside the lock.
NOT_IN_LOCK = {"pip", "grpc-course"}


def pyproject_pins() -> dict[str, str]:
    """The exact pins of pyproject.toml, extras included: {name: version}."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    return {canonicalize_name(name): version
            for name, version in (requirement.split("==") for requirement in requirements)}


def lock_entries() -> list[tuple[str, str, str]]:
    """(name, version, marker) for every package in the lock; marker is "" when unconditional."""
    entries = []
    for match in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+?)(?: ; (.+?))? \\$",
                             LOCK.read_text(), re.MULTILINE):
        name, version, marker = match.groups()
        entries.append((canonicalize_name(name), version, marker or ""))
    return entries


def test_every_lock_entry_has_hashes() -> None:
    text = LOCK.read_text()
    packages = re.findall(r"^[A-Za-z0-9_.-]+==", text, re.MULTILINE)
    assert len(packages) == len(lock_entries()) > 100
    for block in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 3)[-1]):
        if "==" in block.splitlines()[0]:
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_every_pin_of_pyproject_is_in_the_lock_at_the_same_version() -> None:
    locked = {(name, version) for name, version, _ in lock_entries()}
    for name, version in pyproject_pins().items():
        assert (name, version) in locked, f"{name}=={version} is pinned but not locked"


def test_this_environment_holds_exactly_what_the_lock_lists() -> None:
    """Run in the venv `make install` made: no package missing, none extra, none at another version."""
    wanted = {(name, version) for name, version, marker in lock_entries()
              if not marker or Marker(marker).evaluate()}
    installed = {(canonicalize_name(dist.metadata["Name"]), dist.version)
                 for dist in metadata.distributions(path=sys.path)
                 if "_vendor" not in str(getattr(dist, "_path", ""))}  # setuptools' vendored copies
    installed = {(name, version) for name, version in installed if name not in NOT_IN_LOCK}
    assert installed - wanted == set(), "installed but not in the lock (or at another version)"
    assert wanted - installed == set(), "in the lock but not installed"


def test_grpc_packages_share_one_release_line_and_protobuf_is_below_8() -> None:
    """All grpcio* packages come from one release (1.85.x); grpcio-channelz has no 1.85.1."""
    pins = pyproject_pins()
    grpc_lines = {pins[name].rsplit(".", 1)[0] for name in pins if name.startswith("grpcio")}
    assert len(grpc_lines) == 1, pins
    assert int(pins["protobuf"].split(".")[0]) < 8


def test_conda_and_binder_install_from_the_same_lock() -> None:
    environment = (PROJECT_ROOT / "environment.yml").read_text()
    assert re.search(r"^\s+- -r requirements\.lock$", environment, re.MULTILINE)
    assert not re.search(r"==", environment), "pins belong in the lock, not in environment.yml"
    post_build = (PROJECT_ROOT / "postBuild").read_text()
    assert "pip install --no-deps --no-build-isolation -e ." in post_build
