"""Compile the course's .proto files and import the generated modules.

`load("calculator")` runs protoc on `protos/` (once per version of the files),
puts the output folder on `sys.path` and returns `(calculator_pb2,
calculator_pb2_grpc)`. The output lives in `.proto_cache/<hash>/` inside the
project; the hash covers every .proto file, so an edit means a fresh compile.

"The project" is the course folder the kernel runs in: on a shared machine
(JupyterHub) every learner has a copy of the course, and their notebooks use
their own `protos/` and cache, even when `helpers` is installed from elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

def find_project_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding `protos/` and `helpers/`.

    Falls back to the folder this package was installed from.
    """
    for folder in (start, *start.parents):
        if (folder / "protos").is_dir() and (folder / "helpers").is_dir():
            return folder
    return Path(__file__).resolve().parent.parent


PROJECT_ROOT = find_project_root(Path.cwd().resolve())
PROTO_DIR = PROJECT_ROOT / "protos"
CACHE_DIR = PROJECT_ROOT / ".proto_cache"


class ProtoError(Exception):
    """protoc rejected a .proto file, or a changed file needs a kernel restart."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback from inside helpers.
        return [f"ProtoError: {self}"]


def proto_files() -> list[Path]:
    """Every .proto file of the course, sorted by name."""
    return sorted(PROTO_DIR.glob("*.proto"))


def fingerprint() -> str:
    """A short hash of the names and contents of all .proto files."""
    digest = hashlib.sha256()
    for path in proto_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def compile_protos(out_dir: Path, proto_dir: Path = PROTO_DIR) -> None:
    """Run protoc on every .proto in `proto_dir`, writing _pb2, _pb2_grpc and .pyi files."""
    files = [path.name for path in sorted(proto_dir.glob("*.proto"))]
    command = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"--proto_path={proto_dir}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=proto_dir)
    if result.returncode != 0:
        raise ProtoError(result.stderr.strip() or result.stdout.strip())


def generated_dir() -> Path:
    """The cache folder for the current .proto files, compiled if it is not there yet."""
    target = CACHE_DIR / fingerprint()
    if not target.exists():
        CACHE_DIR.mkdir(exist_ok=True)
        # Compile into a scratch folder, then rename: two kernels compiling at
        # once never see a half-written folder.
        scratch = Path(tempfile.mkdtemp(dir=CACHE_DIR, prefix="tmp-"))
        compile_protos(scratch)
        try:
            os.rename(scratch, target)
        except OSError:  # another process finished first; its copy is the same
            subprocess.run(["rm", "-rf", str(scratch)], check=False)
    return target


def load(name: str) -> tuple[ModuleType, ModuleType]:
    """Return `(NAME_pb2, NAME_pb2_grpc)` for `protos/NAME.proto`."""
    if not (PROTO_DIR / f"{name}.proto").exists():
        known = ", ".join(path.stem for path in proto_files())
        raise ProtoError(f"there is no protos/{name}.proto (known: {known})")
    folder = generated_dir()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    modules = []
    for module_name in (f"{name}_pb2", f"{name}_pb2_grpc"):
        module = sys.modules.get(module_name)
        if module is not None and Path(module.__file__).parent != folder:
            raise ProtoError(
                f"the .proto files changed after this kernel imported {module_name}. "
                "Restart the kernel (Kernel > Restart Kernel) and run the notebook again."
            )
        modules.append(importlib.import_module(module_name))
    return modules[0], modules[1]
