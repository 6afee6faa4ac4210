"""The scripts in scripts/ leave no process behind, however they end.

- The pre-fork launcher: after a worker died, SIGTERM still stops the other workers and
  the launcher exits within the grace; a launcher killed with SIGKILL takes its workers
  with it (their parent watchdog).
- A script whose parent (a Jupyter kernel, here a stand-in) is killed with SIGKILL stops.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest

from helpers import processes
from helpers.reference import calculator_pb2, calculator_pb2_grpc

GRACE = 2.0


def alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie (a zombie runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def wait_gone(pids: list[int], seconds: float = 10) -> list[int]:
    """Wait until none of `pids` runs; return those still running after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def worker_pids(line: str) -> list[int]:
    """The pids in a pre-fork `listening on` line: `... 2 workers: [123, 456])`."""
    return json.loads(line.split("workers: ")[1].rstrip(")"))


def exit_codes(launcher: processes.Process) -> list[int]:
    """The workers' exit codes from the launcher's last line, `workers exited with [...]`."""
    line = launcher.wait_for("workers exited with ", 5)
    return sorted(json.loads(line.split("with ", 1)[1]))


def call_add(target: str) -> str:
    """Add(20, 22) on a fresh connection; return the pid that served it."""
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        reply, call = stub.Add.with_call(calculator_pb2.AddRequest(a=20, b=22), timeout=10)
    assert reply.result == 42
    return dict(call.trailing_metadata())["served-by"]


def test_sigterm_after_a_worker_died_stops_the_others_within_the_grace() -> None:
    with processes.start("calculator_server.py", "--workers", "2", "--grace", str(GRACE),
                         name="t-dead-worker") as launcher:
        dead, survivor = worker_pids(launcher.lines[0])
        os.kill(dead, signal.SIGKILL)
        launcher.wait_for(f"worker {dead} exited with code -9")
        assert call_add(launcher.target) == str(survivor)  # the other one still serves
        start = time.monotonic()
        launcher.signal(signal.SIGTERM)
        try:
            code = launcher.popen.wait(GRACE + 4)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the launcher still ran {GRACE + 4} s after SIGTERM:\n{launcher.output()}")
        took = time.monotonic() - start
        assert wait_gone([launcher.pid, survivor]) == [], "a process outlived the launcher"
    assert code == 1, "a worker died: the launcher's exit code says so"
    assert took < GRACE + 2, f"the launcher took {took:.1f} s for a grace of {GRACE} s"
    assert exit_codes(launcher) == [-9, 0]


def test_sigterm_stops_every_worker_and_exits_0() -> None:
    with processes.start("calculator_server.py", "--workers", "2", "--grace", str(GRACE),
                         name="t-clean") as launcher:
        pids = worker_pids(launcher.lines[0])
        code = launcher.stop()
    assert code == 0
    assert wait_gone([launcher.pid, *pids]) == []
    assert exit_codes(launcher) == [0, 0]


def test_sigkill_to_the_launcher_takes_its_workers_down() -> None:
    launcher = processes.start("calculator_server.py", "--workers", "2", name="t-sigkill")
    try:
        pids = worker_pids(launcher.lines[0])
        launcher.popen.kill()  # SIGKILL: no handler runs, nothing is forwarded
        launcher.popen.wait(5)
        left = wait_gone(pids, 10)
        assert left == [], f"workers {left} still ran 10 s after their launcher was killed"
    finally:
        launcher.stop()


KERNEL = """\
import json, sys
from helpers import processes
server = processes.start("calculator_server.py", *sys.argv[1:], name="orphan")
line = server.lines[0]
workers = json.loads(line.split("workers: ")[1].rstrip(")")) if "workers:" in line else []
print(json.dumps([server.pid, *workers]), flush=True)
sys.stdin.read()  # wait to be killed
"""


@pytest.mark.parametrize("args", [[], ["--kind", "aio"], ["--workers", "2"]],
                         ids=["sync", "aio", "prefork"])
def test_a_script_whose_kernel_is_killed_stops(args: list[str], tmp_path: Path) -> None:
    """A kernel stand-in starts a server with helpers.processes and is killed with SIGKILL."""
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent(KERNEL))
    kernel = subprocess.Popen([sys.executable, str(script), *args], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=processes.PROJECT_ROOT)
    try:
        assert kernel.stdout is not None
        pids = json.loads(kernel.stdout.readline())
        assert pids and all(alive(pid) for pid in pids)
    finally:
        kernel.kill()
        kernel.wait(5)
    left = wait_gone(pids, 10)
    for pid in left:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"{left} still ran 10 s after the kernel that started them was killed"


def test_all_lines_has_the_last_lines_of_a_process_that_exited(tmp_path: Path) -> None:
    script = tmp_path / "chatty.py"
    script.write_text("for i in range(2000):\n    print('line', i, flush=True)\n")
    process = processes.start(script, name="t-chatty", wait_for_port=False)
    try:
        process.popen.wait(30)
        lines = process.all_lines()
    finally:
        process.stop()
    assert len(lines) == 2000 and lines[-1] == "line 1999"
