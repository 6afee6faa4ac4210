"""The standard adversarial scenarios and the comparison with the reference (helpers.checks.core).

Each helper must catch the mistake it exists for, accept the right behaviour, and end on its own.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from hypothesis import strategies as st

from helpers.checks.core import (
    Mismatch,
    compare_with_reference,
    concurrently,
    down_target,
    expect_gives_up,
    stuck_server,
    two_servers,
)
from helpers.reference import Calculator, calculator_pb2 as pb2, calculator_pb2_grpc as pb2_grpc


def multiply(target: str, timeout: float | None) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = pb2_grpc.CalculatorStub(channel)
        return stub.Multiply(pb2.MultiplyRequest(a=2, b=3), timeout=timeout).result


def test_a_stuck_server_catches_a_call_without_deadline() -> None:
    with stuck_server() as target:
        started = time.monotonic()
        with pytest.raises(Mismatch, match="give every call a deadline"):
            expect_gives_up(lambda: multiply(target, None), 1.0, "multiply")
        assert time.monotonic() - started < 5


def test_a_stuck_server_gives_deadline_exceeded_to_a_call_with_one() -> None:
    with stuck_server() as target:
        error = expect_gives_up(lambda: multiply(target, 0.2), 5.0, "multiply")
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_down_target_gives_unavailable() -> None:
    error = expect_gives_up(lambda: multiply(down_target(), 5), 10.0, "multiply")
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_two_servers_each_serve_their_own_servicer() -> None:
    with two_servers(pb2_grpc.add_CalculatorServicer_to_server, Calculator) as (first, second):
        assert first.target != second.target
        assert multiply(first.target, 5) == multiply(second.target, 5) == 6


def test_concurrently_reports_each_outcome_and_catches_a_deadlock() -> None:
    outcomes = concurrently(lambda i: 10 // (i - 1), 3)
    assert [o.value for o in outcomes] == [-10, None, 10]
    assert isinstance(outcomes[1].error, ZeroDivisionError)
    lock = threading.Lock()
    lock.acquire()  # never released: every call waits on it
    with pytest.raises(Mismatch, match="still running"):
        concurrently(lambda i: lock.acquire(timeout=30), 2, seconds=0.5)


def test_compare_with_reference_finds_a_one_sided_check_and_accepts_the_right_one() -> None:
    def reference(n: int) -> int:
        if not -(2**31) <= n <= 2**31 - 1:
            raise OverflowError(n)
        return n

    def one_sided(n: int) -> int:
        if n > 2**31 - 1:
            raise OverflowError(n)
        return n

    numbers = st.integers(-(2**33), 2**33)
    assert compare_with_reference(reference, reference, numbers, str, max_examples=20) == 20
    with pytest.raises(Mismatch, match=r"the reference gives an exception \(OverflowError\)"):
        compare_with_reference(one_sided, reference, numbers, lambda n: f"f({n})",
                               examples=[-(2**31) - 1], max_examples=5)


def test_compare_with_reference_is_the_same_every_run() -> None:
    seen: list[list[int]] = []
    for _ in range(2):
        drawn: list[int] = []
        compare_with_reference(lambda n: drawn.append(n), lambda n: None, st.integers(), str,
                               max_examples=10)
        seen.append(drawn)
    assert seen[0] == seen[1]
