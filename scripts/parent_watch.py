"""A parent watchdog for the scripts: when the process that started this one dies, stop too.

    from parent_watch import watch_parent
    watch_parent()   # first thing in the script (and in every forked worker)

Why: a process whose parent is killed with SIGKILL (a Jupyter kernel, a pre-fork launcher)
gets no signal at all; it is adopted by PID 1 (or a "subreaper") and goes on serving,
holding its port, forever. The watchdog is a thread that checks every `interval` seconds
whether the parent is still the one it started with; once it is not, it sends this process
SIGTERM, so the process shuts down the way it always does (gracefully, if it handles SIGTERM).

Linux offers the same in one system call, `prctl(PR_SET_PDEATHSIG, SIGTERM)`, but that
signal comes when the parent's *thread* that started the child ends, not the process (a
child started from a notebook's worker thread would be stopped too early), and other
systems lack it. Polling `os.getppid()` works everywhere and costs nothing.
"""

from __future__ import annotations

import os
import signal
import threading
import time


def watch_parent(parent: int | None = None, interval: float = 0.25) -> threading.Thread:
    """Start a daemon thread that sends this process SIGTERM once its parent has died.

    `parent`: the pid the parent had before it started this process (a forked worker knows
    it; it covers a parent that died before this call). Default: the parent now.
    """
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
