"""A client for scripts/calculator_server.py: `python scripts/calculator_client.py 127.0.0.1:PORT`.

Calls Add(20, 22) with a deadline and prints the result and the pid of the
process that served it. Exit code 0 if the call worked, 1 if it failed.
"""

from __future__ import annotations

import argparse
import os
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port the server printed")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    watch_parent()  # whoever started this process died, even by SIGKILL: stop too
    start = time.perf_counter()
    with grpc.insecure_channel(args.target) as channel:
        stub = calculator_pb2_grpc.CalculatorStub(channel)
        try:
            reply, call = stub.Add.with_call(calculator_pb2.AddRequest(a=20, b=22),
                                             timeout=args.timeout, wait_for_ready=True)
        except grpc.RpcError as error:
            print(f"call failed: {error.code().name} ({error.details()})", flush=True)
            return 1
    served_by = dict(call.trailing_metadata()).get("served-by")
    print(f"20 + 22 = {reply.result} (served by pid {served_by}, "
          f"{time.perf_counter() - start:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
