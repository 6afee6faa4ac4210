"""What helpers.wiretap costs a unary call: printed (never asserted), part of `make bench`.

Sequential GetFeature calls on one warm channel, straight to the server and through
the tap, in alternating runs so that a busy machine slows both alike. Prints the
median time per call of each run's calls, the median over runs, and the spread
(the fastest and slowest run's median).

    .venv/bin/python benchmarks/wiretap.py [--calls 300] [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import helpers  # noqa: F401  (first: it quiets gRPC's C-level logging)
import grpc

from helpers import serve
from helpers.reference.routeguide import RouteGuide, make_features
from helpers.reference.routeguide import routeguide_pb2_grpc as pb_grpc
from helpers.wiretap import wiretap


def per_call_us(target: str, calls: int) -> float:
    """The median time of `calls` sequential unary calls, in microseconds, after a warm-up."""
    point = make_features()[0].location
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        for _ in range(20):
            stub.GetFeature(point, timeout=5)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            stub.GetFeature(point, timeout=5)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per run")
    parser.add_argument("--runs", type=int, default=9, help="runs of each kind")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"direct": [], "through the tap": []}
    with serve(pb_grpc.add_RouteGuideServicer_to_server, RouteGuide(),
               name="bench-wiretap") as server:
        for _ in range(args.runs):
            results["direct"].append(per_call_us(server.target, args.calls))
            with wiretap(server.target) as tap:
                results["through the tap"].append(per_call_us(tap.target, args.calls))
    print(f"Unary GetFeature, {args.calls} sequential calls per run, {args.runs} runs each "
          "(median of each run's per-call times; spread = fastest..slowest run)")
    for name, values in results.items():
        print(f"  {name:<16} median {statistics.median(values):7.0f} µs   "
              f"spread {min(values):.0f}..{max(values):.0f} µs")
    overheads = [tapped - direct for direct, tapped in zip(results["direct"],
                                                            results["through the tap"])]
    print(f"  overhead         median {statistics.median(overheads):7.0f} µs   "
          f"spread {min(overheads):.0f}..{max(overheads):.0f} µs (paired runs)")


if __name__ == "__main__":
    main()
