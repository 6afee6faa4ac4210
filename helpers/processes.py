"""Run a Python script as its own process, as you would in a second terminal.

    with processes.start("scripts/calculator_server.py", "--delay-ms", "500") as server:
        server.target            # "127.0.0.1:PORT", read from the line the script printed
        ...
    # leaving the block sends SIGTERM and waits: the server shuts down as in production

A server script reports its port by printing one line, `listening on 127.0.0.1:PORT`
(with `print(..., flush=True)`: one write per line, so lines of several processes
sharing the output never mix)
(it binds port 0, so the operating system picks a free port). Everything the script
prints is kept in `.lines`.

No process is left behind: leaving the `with` block stops it (also when the block
raises), starting a process with the name of one still running stops the old one
first, and every process still running is stopped when Python exits. Each script
runs in its own process group, so workers it forks are stopped with it. And if this
Python process is killed outright (a kernel killed with SIGKILL runs no exit code), the
course's scripts stop by themselves: each watches its parent (scripts/parent_watch.py).
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = PROJECT_ROOT / "scripts"
LISTENING = re.compile(r"listening on (127\.0\.0\.1:(\d+))")


@dataclass
class Process:
    """A script running in a process of its own."""

    name: str
    popen: subprocess.Popen
    lines: list[str] = field(default_factory=list)  # everything it printed so far
    port: int = 0  # from its `listening on` line; 0 if it printed none
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False  # the process closed its stdout (it has exited)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        """None while it runs; its exit code once it has exited (-15: killed by SIGTERM)."""
        return self.popen.poll()

    def _read(self) -> None:
        """Runs in a thread: collect the lines the process prints until it closes stdout."""
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 20) -> str:
        """Wait until the process prints a line containing `text`; return that line."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if text in line:
                        return line
                seen = len(self.lines)
                if self._closed:
                    raise RuntimeError(f"{self.name} exited with code {self.popen.wait()} "
                                       f"before printing {text!r}:\n{self.output(tail=15)}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name} did not print {text!r} within {timeout} s:\n"
                                       f"{self.output(tail=15)}")
                self._changed.wait(min(left, 0.1))

    def all_lines(self, timeout: float = 5) -> list[str]:
        """Every line, once the process has closed its output (after it exited, the last lines
        may still be on their way through the pipe); what arrived if that takes `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._closed and time.monotonic() < deadline:
                self._changed.wait(0.1)
            return list(self.lines)

    def output(self, tail: int | None = None) -> str:
        """What the process printed (the last `tail` lines, if given)."""
        lines = self.lines if tail is None else self.lines[-tail:]
        return "\n".join(lines)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal to the process (not to workers it forked)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then wait up to `timeout` s (SIGKILL after that); return the exit code.

        Anything left in its process group (workers it forked) is killed too.
        """
        try:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        finally:
            _kill_group(self.pid)
            if _running.get(self.name) is self:
                del _running[self.name]
        for thread in threading.enumerate():
            if thread.name == f"read-{self.pid}":
                thread.join(2)
        return self.popen.returncode

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_running: dict[str, Process] = {}


def _kill_group(pid: int) -> None:
    """SIGKILL whatever is left in the process group that `pid` leads."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # nothing left


def start(script: str | Path, *args: str, name: str | None = None,
          env: dict[str, str] | None = None, wait_for_port: bool = True,
          timeout: float = 30) -> Process:
    """Run `python script *args` in a new process; return once it printed its port.

    `script` is a path, or a file name in the project's `scripts/` folder. `env`
    adds environment variables. With `wait_for_port=False`, return at once.
    A process still running under the same `name` (default: the script's name)
    is stopped first, so re-running a notebook cell is safe.
    """
    path = Path(script)
    if not path.is_absolute() and not path.exists():
        path = SCRIPTS / path
    name = name or path.stem
    previous = _running.get(name)
    if previous is not None:
        previous.stop()
    popen = subprocess.Popen(
        [sys.executable, str(path), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})}, cwd=PROJECT_ROOT,
        start_new_session=True,  # its own process group: stop() can reach its workers
    )
    process = Process(name=name, popen=popen)
    _running[name] = process
    threading.Thread(target=process._read, name=f"read-{popen.pid}", daemon=True).start()
    if wait_for_port:
        try:
            line = process.wait_for("listening on ", timeout)
        except BaseException:
            process.stop()
            raise
        match = LISTENING.search(line)
        if match is None:
            process.stop()
            raise RuntimeError(f"{name} printed {line!r}; expected 'listening on 127.0.0.1:PORT'")
        process.port = int(match.group(2))
    return process


def run(script: str | Path, *args: str, name: str | None = None,
        env: dict[str, str] | None = None, timeout: float = 120) -> Process:
    """Run a script to its end, like subprocess.run; return the finished Process and its lines."""
    process = start(script, *args, name=name, env=env, wait_for_port=False)
    try:
        process.popen.wait(timeout)
    finally:
        process.stop()  # waits for the last lines; kills it if it overran `timeout`
    return process


def running() -> dict[str, Process]:
    """The processes started here and not stopped yet, by name."""
    return dict(_running)


def stop_all(timeout: float = 15) -> None:
    """Stop every process started here that is still running (SIGKILL after `timeout` s)."""
    for process in list(_running.values()):
        process.stop(timeout)


atexit.register(stop_all)
