"""Figures about the course itself, printed (never asserted): `make bench`.

1. How many tests, notebooks and exercises there are.
2. Wall time of executing every notebook, against executing a one-cell
   notebook as many times (what kernel start-up alone costs).
3. serve() + one call + stop() against the same steps in bare grpcio.
4. `make progress` for the whole course and lesson 00's `helpers.progress("00")`
   cell (both read check()'s records), against `make progress RERUN=1`.
5. `make test` in a fresh clone (`make install` first, not timed), with the
   load average during the run (the suite should wait, not compute).
6. With --fresh-clone: set-up time (`make install`) from an empty package
   cache with uv and with pip, each in its own fresh clone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import helpers  # first: it quiets gRPC's C-level logging before grpc is imported
import grpc
import nbformat
from nbclient import NotebookClient

from helpers.checks import EXERCISES
from helpers.reference import Calculator, calculator_pb2, calculator_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


def wrong_answer_counts() -> None:
    """Wrong answers the tests hold per exercise (tests/test_course.py requires at least two)."""
    sys.path.insert(0, str(ROOT / "tests"))  # the tests' own modules, not a notebook
    from test_course import wrong_answers_per_exercise

    counts = wrong_answers_per_exercise()
    print(f"Wrong answers in the tests: {sum(counts.values())} for {len(counts)} exercises, "
          f"min {min(counts.values())} per exercise")
    print("  " + ", ".join(f"{exercise_id}: {n}" for exercise_id, n in counts.items()))


def count_tests() -> int:
    """What a bare `pytest --nbval` collects, which is what `make test` runs."""
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "pytest"), "--nbval", "--collect-only",
                             "-q", "-n", "0"], cwd=ROOT, capture_output=True, text=True, check=True)
    return sum(1 for line in result.stdout.splitlines() if "::" in line)


def spread(samples: list[float], unit: str = "s") -> str:
    return (f"median {statistics.median(samples):6.2f} {unit}, min {min(samples):6.2f} {unit}, "
            f"max {max(samples):6.2f} {unit} ({len(samples)} runs)")


def progress_times(rounds: int = 5) -> None:
    """make progress (whole course), lesson 00's progress cell, and the slow --rerun once."""
    command = [sys.executable, "-m", "helpers.progress_report"]
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    print(f"  make progress (all lessons)      {spread(samples)}")
    cell = ("import time\nstart = time.perf_counter()\nhelpers.progress('00')\n"
            "print(f'SECONDS {time.perf_counter() - start}')")
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import helpers"),
               *[nbformat.v4.new_code_cell(cell) for _ in range(rounds)]],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "lessons")}}).execute()
    cells = [float(output.text.split("SECONDS")[1]) for cell in notebook.cells[1:]
             for output in cell.outputs if "SECONDS" in output.get("text", "")]
    print(f"  helpers.progress('00') in a kernel {spread(cells)} (the first one imports)")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:  # its checks' records are not the learner's
        subprocess.run([*command, "--rerun"], cwd=ROOT, capture_output=True, check=True,
                       env={**os.environ, "COURSE_PROGRESS_FILE": f"{folder}/progress.jsonl"})
    print(f"  make progress RERUN=1            {time.perf_counter() - start:6.2f} s (1 run)")


def execute(notebook: nbformat.NotebookNode, folder: Path) -> float:
    start = time.perf_counter()
    NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return time.perf_counter() - start


def notebook_times() -> None:
    paths = sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "lessons").glob("*.ipynb"))
    total = 0.0
    for path in paths:
        seconds = execute(nbformat.read(path, as_version=4), path.parent)
        total += seconds
        print(f"  {path.parent.name}/{path.name:28} {seconds:6.2f} s")
    one_cell = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")],
                                        metadata={"kernelspec": {"name": "python3",
                                                                      "display_name": "Python 3"}})
    baseline = sum(execute(one_cell, ROOT) for _ in paths)
    print(f"  all {len(paths)} notebooks: {total:.1f} s; a one-cell notebook {len(paths)} times: "
          f"{baseline:.1f} s; so the lessons' own work is {total - baseline:.1f} s")


def with_helpers() -> None:
    server = helpers.serve(calculator_pb2_grpc.add_CalculatorServicer_to_server, Calculator(),
                           name="bench")
    with grpc.insecure_channel(server.target) as channel:
        calculator_pb2_grpc.CalculatorStub(channel).Add(calculator_pb2.AddRequest(a=1, b=2),
                                                        timeout=5)
    server.stop()


def with_bare_grpcio() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    calculator_pb2_grpc.add_CalculatorServicer_to_server(Calculator(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        calculator_pb2_grpc.CalculatorStub(channel).Add(calculator_pb2.AddRequest(a=1, b=2),
                                                        timeout=5)
    server.stop(None).wait()


def serve_overhead(rounds: int = 30) -> None:
    for name, steps in [("helpers.serve", with_helpers), ("bare grpcio", with_bare_grpcio)]:
        steps()  # warm up
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            steps()
            samples.append((time.perf_counter() - start) * 1000)
        print(f"  {name:14} median {statistics.median(samples):6.2f} ms, "
              f"min {min(samples):6.2f} ms, max {max(samples):6.2f} ms ({rounds} rounds)")


def timed_make(clone: Path, *args: str, env: dict[str, str] | None = None) -> float:
    """Run `make ARGS` in `clone`; print and return its wall time."""
    start = time.perf_counter()
    result = subprocess.run(["make", *args], cwd=clone, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    status = "ok" if result.returncode == 0 else f"FAILED ({result.returncode})"
    print(f"  make {' '.join(args):22} {seconds:6.1f} s  {status}")
    if result.returncode != 0:  # say why, briefly
        print("\n".join("    " + line for line in result.stdout.splitlines()[-15:]))
    return seconds


def suite_time(clone: Path) -> None:
    """`make test` in `clone` (installed already), with the load average sampled meanwhile."""
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(10):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds = timed_make(clone, "test")
    done.set()
    sampler.join()
    if loads:
        print(f"  make test took {seconds / 60:.1f} min on {os.cpu_count()} cores; load average "
              f"during it: median {statistics.median(loads):.1f}, max {max(loads):.1f} "
              "(other work on the machine counts too)")


def fresh_clone(installers: tuple[str, ...] = ("uv", "pip")) -> None:
    with tempfile.TemporaryDirectory() as folder:
        clones = {}
        for installer in installers:
            clones[installer] = Path(folder) / installer
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clones[installer])], check=True)
        if installers == ("uv",):  # the set-up is not what is timed here
            subprocess.run(["make", "install"], cwd=clones["uv"], capture_output=True, check=True)
        else:
            empty_caches = {"UV_CACHE_DIR": f"{folder}/uv-cache", "PIP_NO_CACHE_DIR": "1"}
            uv = timed_make(clones["uv"], "install", env=empty_caches)
            pip = timed_make(clones["pip"], "install", "INSTALLER=pip", env=empty_caches)
            print(f"  set-up from an empty cache: uv {uv:.1f} s, pip {pip:.1f} s, "
                  f"uv is {pip / uv:.1f}x faster")
        suite_time(clones["uv"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh-clone", action="store_true",
                        help="also time make install and make test in a fresh clone")
    args = parser.parse_args()
    notebooks = len(list((ROOT / "solutions").glob("*.ipynb")))
    print(f"Course: {count_tests()} tests in `make test`, {notebooks} lessons "
          f"({2 * notebooks} notebooks with their solutions), {len(EXERCISES)} exercises")
    wrong_answer_counts()
    print("Executing every notebook in a fresh kernel:")
    notebook_times()
    print("Start a server, make one call, stop it:")
    serve_overhead()
    print("Where you stand (make progress):")
    progress_times()
    print("The whole suite (make test) in a fresh clone:" if not args.fresh_clone else
          "Fresh clones: set-up from an empty cache, then the whole suite (make test):")
    fresh_clone(("uv", "pip") if args.fresh_clone else ("uv",))


if __name__ == "__main__":
    main()
