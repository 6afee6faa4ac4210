"""helpers.bench: percentiles, throughput from wall time, runners, table and plot.

No test asserts a measured time: the runners are checked by what they count.
"""

from __future__ import annotations

import asyncio
import statistics

import pytest
from hypothesis import given, settings, strategies as st

from helpers import bench


def test_percentile_interpolates_like_numpy() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert bench.percentile(values, 0) == 1.0
    assert bench.percentile(values, 50) == 2.5
    assert bench.percentile(values, 100) == 4.0
    assert bench.percentile(list(range(101)), 99) == 99
    assert bench.percentile([7.0], 99) == 7.0


@settings(deadline=None)  # the suite keeps 2 cores busy: a 200 ms deadline per example is luck
@given(st.lists(st.floats(0, 1e6), min_size=2, max_size=50))
def test_percentile_agrees_with_statistics_quantiles(values: list[float]) -> None:
    # statistics.quantiles(method="inclusive") uses the same interpolation.
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for p in (1, 50, 95, 99):
        assert bench.percentile(values, p) == pytest.approx(cuts[p - 1], rel=1e-9, abs=1e-9)


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_lies_within_the_values(values: list[float], p: float) -> None:
    assert min(values) <= bench.percentile(values, p) <= max(values)


def test_percentile_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        bench.percentile([], 50)
    with pytest.raises(ValueError):
        bench.percentile([1.0], 101)


def test_throughput_divides_by_wall_time_not_the_sum_of_latencies() -> None:
    # 10 calls of 1 s each, all in flight together: 1 s of wall time.
    result = bench.Result("together", [1.0] * 10, wall=1.0)
    assert result.throughput == 10
    assert result.count / sum(result.latencies) == 1  # seed 004's formula: 10x too low


def test_runners_make_every_call_once_and_bound_concurrency() -> None:
    seen: list[int] = []
    in_flight = most = 0

    async def call(index: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)
        seen.append(index)
        in_flight -= 1

    async def run() -> list[bench.Result]:
        nonlocal most
        sequential = await bench.run_sequentially(call, 5, label="one by one")
        assert most == 1
        most = 0
        bounded = await bench.run_concurrently(call, 12, label="bounded", limit=3)
        assert most == 3
        most = 0
        unbounded = await bench.run_concurrently(call, 12, label="all")
        assert most == 12
        return [sequential, bounded, unbounded]

    results = asyncio.run(run())
    assert sorted(seen) == sorted([*range(5), *range(12), *range(12)])
    assert [r.count for r in results] == [5, 12, 12]
    assert all(r.wall >= 0 and all(t >= 0 for t in r.latencies) for r in results)


def test_table_has_a_row_per_result_with_its_figures() -> None:
    results = [bench.Result("sync", [0.010, 0.020, 0.030], wall=0.060, group="3 × I/O"),
               bench.Result("aio", [0.010] * 4, wall=0.010, group="3 × I/O")]
    lines = bench.table(results).splitlines()
    assert len(lines) == 4  # header, rule, two rows
    assert lines[0].split() == ["calls", "wall", "ms", "calls/s", "p50", "ms", "p95", "ms",
                                "p99", "ms"]
    # p95 and p99 of 3 or 4 calls would only be the slowest call: they are left out
    assert lines[2].split() == ["3", "×", "I/O", "·", "sync", "3", "60", "50", "20.0", "-", "-"]
    assert lines[3].split()[-6:] == ["4", "10", "400", "10.0", "-", "-"]
    many = bench.Result("aio", [i / 1000 for i in range(1, 101)], wall=0.5)
    assert bench.table([many]).splitlines()[2].split()[-2:] == ["95.0", "99.0"]


def test_repeated_table_reports_the_median_run_and_the_spread() -> None:
    runs = {("20 × I/O", "aio"): [bench.Result("aio", [0.01] * 20, wall=wall)
                                  for wall in (0.030, 0.010, 0.020, 0.050, 0.025)]}
    assert bench.median_run(runs["20 × I/O", "aio"]).wall == 0.025
    lines = bench.repeated_table(runs).splitlines()
    assert len(lines) == 3
    assert lines[2].split() == ["20", "×", "I/O", "·", "aio", "5", "20", "25", "10-50", "800",
                                "10.0", "-"]


def test_plot_draws_one_bar_per_result() -> None:
    results = [bench.Result(label, [0.01], wall=wall, group=group)
               for group in ("a", "b") for label, wall in (("sync", 0.2), ("aio", 0.1))]
    fig = bench.plot(results)
    (axes,) = fig.axes
    assert len(axes.patches) == 4
    assert sorted(round(bar.get_height()) for bar in axes.patches) == [100, 100, 200, 200]
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["sync", "aio"]
