"""Small timing helpers: run many async calls, then read latency percentiles and throughput.

    result = await run_concurrently(lambda i: stub.Add(request, timeout=5), 100)
    print(table([result]))

Two numbers describe a run, and they are not the same thing:
- *latency*: how long one call took, from just before it was sent to its reply;
- *throughput*: calls completed per second of wall-clock time, `count / wall`.
With 10 calls in flight at once, dividing by the *sum* of the latencies would
undercount throughput by about 10x: the calls overlap, their times do not add up.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

Call = Callable[[int], Awaitable[Any]]  # called with the index of the call, 0..n-1


@dataclass
class Result:
    """The latencies of `count` calls (seconds) and the wall time the whole run took."""

    label: str
    latencies: list[float]
    wall: float
    group: str = ""

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        """Calls per second of wall-clock time."""
        return self.count / self.wall if self.wall > 0 else math.inf

    def percentile(self, p: float) -> float:
        return percentile(self.latencies, p)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), interpolating between the two nearest ranks.

    Same definition as numpy's default: p=50 of [1, 2, 3, 4] is 2.5.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"p must be within 0 and 100, got {p}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    below = math.floor(rank)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


async def _timed(call: Call, index: int) -> float:
    start = time.perf_counter()
    await call(index)
    return time.perf_counter() - start


async def run_sequentially(call: Call, n: int, label: str = "sequential",
                           group: str = "") -> Result:
    """Await `call(0)`, then `call(1)`, ... one at a time."""
    start = time.perf_counter()
    latencies = [await _timed(call, index) for index in range(n)]
    return Result(label, latencies, time.perf_counter() - start, group)


async def run_concurrently(call: Call, n: int, label: str = "concurrent", group: str = "",
                           limit: int | None = None) -> Result:
    """Start all `n` calls at once with asyncio.gather (at most `limit` in flight, if given)."""
    gate = asyncio.Semaphore(limit) if limit else None

    async def one(index: int) -> float:
        if gate is None:
            return await _timed(call, index)
        async with gate:  # latency counts from when the call may start, not queue time
            return await _timed(call, index)

    start = time.perf_counter()
    latencies = await asyncio.gather(*(one(index) for index in range(n)))
    return Result(label, list(latencies), time.perf_counter() - start, group)


TAIL_SAMPLES = 100  # p95 and p99 are shown only for runs of at least this many calls


def _tail(r: Result, p: float) -> str:
    """A tail percentile in ms, or "-" when too few calls stand behind it."""
    return f"{r.percentile(p) * 1000:.1f}" if r.count >= TAIL_SAMPLES else "-"


def _format(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def table(results: Sequence[Result]) -> str:
    """A plain-text table: calls, wall time, throughput and latency percentiles.

    p95 and p99 show "-" for runs of fewer than TAIL_SAMPLES calls: the 99th percentile
    of 20 calls is just the slowest call.
    """
    header = ("", "calls", "wall ms", "calls/s", "p50 ms", "p95 ms", "p99 ms")
    rows = [header]
    for r in results:
        name = f"{r.group} · {r.label}" if r.group else r.label
        rows.append((name, str(r.count), f"{r.wall * 1000:.0f}", f"{r.throughput:.0f}",
                     f"{r.percentile(50) * 1000:.1f}", _tail(r, 95), _tail(r, 99)))
    return _format(rows)


def median_run(runs: Sequence[Result]) -> Result:
    """The run with the median wall time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r.wall)[(len(runs) - 1) // 2]


def repeated_table(runs: dict[tuple[str, str], list[Result]]) -> str:
    """One row per case, `runs[group, label]` being repeated runs of it.

    Shows the median wall time and its spread (fastest-slowest run), and the median
    run's throughput, p50 and p99 (p99 only when a run has at least TAIL_SAMPLES calls).
    """
    header = ("", "runs", "calls", "wall ms (median)", "spread ms", "calls/s", "p50 ms", "p99 ms")
    rows = [header]
    for (group, label), repeats in runs.items():
        middle = median_run(repeats)
        walls = [r.wall * 1000 for r in repeats]
        rows.append((f"{group} · {label}", str(len(repeats)), str(middle.count),
                     f"{middle.wall * 1000:.0f}", f"{min(walls):.0f}-{max(walls):.0f}",
                     f"{middle.throughput:.0f}", f"{middle.percentile(50) * 1000:.1f}",
                     _tail(middle, 99)))
    return _format(rows)


def plot(results: Sequence[Result], title: str = "wall time per run"):
    """A bar chart of wall time: one group of bars per `group`, one bar per `label`.

    Returns a matplotlib Figure; as the last line of a cell, Jupyter draws it.
    """
    from matplotlib.figure import Figure

    groups = list(dict.fromkeys(r.group for r in results))
    labels = list(dict.fromkeys(r.label for r in results))
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        xs, heights = [], []
        for i, group in enumerate(groups):
            for r in results:
                if r.group == group and r.label == label:
                    xs.append(i + (j - (len(labels) - 1) / 2) * width)
                    heights.append(r.wall * 1000)
        bars = ax.bar(xs, heights, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("wall time (ms)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
