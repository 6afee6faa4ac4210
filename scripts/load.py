"""A load generator in its own process: `python scripts/load.py 127.0.0.1:PORT [options]`.

It calls Add on the target with `--concurrency` callers, each keeping one call in flight
on one of `--channels` channels (each with its own connection); the callers share one
budget of calls, so a server process that answers faster gets more of them. First `--warmup` calls
that are not measured, then `--repeats` measured runs of `--calls` calls each.
It prints one line per run and, last, one JSON line with every number:
{"walls": [s, ...], "latencies": [[s, ...], ...], "pids": [...], "served": {pid: calls}}
(served: how many measured calls each server process answered, over all repeats).

Why a separate process: a load generator in the server's own process competes
with it for the same GIL, so you would measure the two together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from collections import Counter
import sys
import time
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402
from parent_watch import watch_parent  # noqa: E402  (scripts/parent_watch.py)


# The calculator's messages and stubs, generated from protos/calculator.proto at start-up
# (grpc.protos_and_services finds .proto files on sys.path). No import of the course's
# helpers: a script should start fast and stand on its own.
sys.path.append(str(Path(__file__).resolve().parent.parent / "protos"))
calculator_pb2, calculator_pb2_grpc = grpc.protos_and_services("calculator.proto")

# Channels with the same target and options share one connection (gRPC's global
# subchannel pool); a local pool gives each channel a connection of its own.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


async def run(stubs: list, calls: int, concurrency: int, pids: Counter) -> tuple[float, list[float]]:
    """Make `calls` Add calls, `concurrency` at a time; return (wall seconds, latencies)."""
    latencies: list[float] = []
    next_index = iter(range(calls))

    async def caller(stub) -> None:  # one caller per connection, all sharing the budget
        for index in next_index:
            start = time.perf_counter()
            call = stub.Add(calculator_pb2.AddRequest(a=index, b=1), timeout=60)
            await call
            latencies.append(time.perf_counter() - start)
            pids[dict(await call.trailing_metadata()).get("served-by", "?")] += 1

    start = time.perf_counter()
    await asyncio.gather(*(caller(stubs[i % len(stubs)]) for i in range(concurrency)))
    return time.perf_counter() - start, latencies


async def main_async(args: argparse.Namespace) -> dict:
    channels = [grpc.aio.insecure_channel(args.target, options=OWN_CONNECTION)
                for _ in range(args.channels)]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        stubs = [calculator_pb2_grpc.CalculatorStub(channel) for channel in channels]
        served: Counter = Counter()
        if args.warmup:
            await run(stubs, args.warmup, args.concurrency, Counter())  # connections, caches
        walls, all_latencies = [], []
        for repeat in range(args.repeats):
            pids: Counter = Counter()
            wall, latencies = await run(stubs, args.calls, args.concurrency, pids)
            served.update(pids)
            walls.append(wall)
            all_latencies.append(latencies)
            print(f"run {repeat + 1}: {args.calls} calls in {wall:.3f} s = "
                  f"{args.calls / wall:.0f} calls/s, p50 {statistics.median(latencies) * 1000:.1f} ms,"
                  f" served by {len(pids)} process(es)", flush=True)
        return {"walls": walls, "latencies": all_latencies, "pids": sorted(served),
                "served": dict(served)}
    finally:
        for channel in channels:
            await channel.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    watch_parent()  # whoever started this process died, even by SIGKILL: stop too
    result = asyncio.run(main_async(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
