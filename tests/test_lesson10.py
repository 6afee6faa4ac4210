"""Lesson 10 (production): reference answers pass, plausible wrong ones are rejected."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from conftest import WrongAnswer, fails, passes, rejects

from helpers.reference.production import (
    passing_errors_on,
    production_pb2_grpc as pb2_grpc,
    seen,
)

# --- 10.1 and 10.2: the middle of a chain -------------------------------------------


class Middle(pb2_grpc.ChainServicer):
    """A correct answer to 10.1: pass on what is left, minus a margin."""

    def __init__(self, next_stub, margin: float = 0.1) -> None:
        self.next_stub, self.margin = next_stub, margin

    def budget(self, context) -> float:
        budget = context.time_remaining() - self.margin
        if budget <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no time left for the next hop")
        return budget

    def Relay(self, request, context):
        me = seen(context, "middle")
        with passing_errors_on(context):
            trace = self.next_stub.Relay(request, timeout=self.budget(context))
        trace.seen.insert(0, me)
        return trace


class CancellingMiddle(Middle):
    """A correct answer to 10.2: a future, cancelled when the caller goes away."""

    def Relay(self, request, context):
        me = seen(context, "middle")
        call = self.next_stub.Relay.future(request, timeout=self.budget(context))
        if not context.add_callback(call.cancel):
            call.cancel()
        with passing_errors_on(context):
            trace = call.result()
        trace.seen.insert(0, me)
        return trace


class NegativeBudgetMiddle(Middle):
    """Also right: no guard, but a budget of 0 or less makes gRPC fail the call at once."""

    def Relay(self, request, context):
        with passing_errors_on(context):
            return self.next_stub.Relay(
                request, timeout=context.time_remaining() - self.margin)


class NoTimeout(Middle):
    def Relay(self, request, context):
        with passing_errors_on(context):
            return self.next_stub.Relay(request)


class NoMargin(Middle):
    def Relay(self, request, context):
        with passing_errors_on(context):
            return self.next_stub.Relay(request, timeout=context.time_remaining())


class FullOriginalTimeout(Middle):
    """Passes the timeout the notebook's first client used, whatever the caller left."""

    def Relay(self, request, context):
        with passing_errors_on(context):
            return self.next_stub.Relay(request, timeout=2.0)


class FixedMargin(Middle):
    """Ignores self.margin and always keeps 0.05 s."""

    def Relay(self, request, context):
        with passing_errors_on(context):
            return self.next_stub.Relay(request, timeout=context.time_remaining() - 0.05)


class BlockingMiddle(Middle):
    """Propagates the deadline but makes a blocking call nobody can cancel."""


class FutureWithoutTimeout(Middle):
    def Relay(self, request, context):
        call = self.next_stub.Relay.future(request)
        context.add_callback(call.cancel)
        with passing_errors_on(context):
            return call.result()


class CallbackAfterResult(Middle):
    """Cancels on the caller's cancel, but registers that only once the result is in."""

    def Relay(self, request, context):
        call = self.next_stub.Relay.future(request, timeout=self.budget(context))
        with passing_errors_on(context):
            result = call.result()
        context.add_callback(call.cancel)
        return result


class ChecksIsActiveOnce(Middle):
    """Looks at context.is_active() before calling, never again."""

    def Relay(self, request, context):
        if not context.is_active():
            context.abort(grpc.StatusCode.CANCELLED, "caller gone")
        call = self.next_stub.Relay.future(request, timeout=self.budget(context))
        with passing_errors_on(context):
            return call.result()


class GuardFirst(Middle):
    """Also right for 10.1: compares the time left with the margin before subtracting."""

    def budget(self, context) -> float:
        left = context.time_remaining()
        if left <= self.margin:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"only {left:.3f} s left")
        return left - self.margin


class AbortsOnlyBelowZero(Middle):
    """Passes on a budget of exactly 0 (a timeout of 0 still reaches a fast handler)."""

    def budget(self, context) -> float:
        budget = context.time_remaining() - self.margin
        if budget < 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no time left for the next hop")
        return budget


class NeverAborts(Middle):
    """Leaves a budget of 0 or less to gRPC to refuse."""

    def budget(self, context) -> float:
        return context.time_remaining() - self.margin


class AbortsUnderOneSecond(Middle):
    """Keeps a whole second in reserve before calling the next hop."""

    def budget(self, context) -> float:
        budget = context.time_remaining() - self.margin
        if budget <= 1:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no time left for the next hop")
        return budget


class IsActiveAfterCallback(Middle):
    """Also right for 10.2: registers the callback, then asks whether the caller is still there."""

    def Relay(self, request, context):
        me = seen(context, "middle")
        call = self.next_stub.Relay.future(request, timeout=self.budget(context))
        context.add_callback(call.cancel)
        if not context.is_active():
            call.cancel()
        with passing_errors_on(context):
            trace = call.result()
        trace.seen.insert(0, me)
        return trace


class IgnoresAddCallbackResult(Middle):
    """Registers call.cancel, but never looks at what add_callback returned."""

    def Relay(self, request, context):
        call = self.next_stub.Relay.future(request, timeout=self.budget(context))
        context.add_callback(call.cancel)
        with passing_errors_on(context):
            return call.result()


class ErrorsAsUnknown(Middle):
    """Cancels properly, but lets the next hop's RpcError escape the handler (UNKNOWN)."""

    def Relay(self, request, context):
        call = self.next_stub.Relay.future(request, timeout=self.budget(context))
        if not context.add_callback(call.cancel):
            call.cancel()
        return call.result()


# --- 10.3: waiting for a server ------------------------------------------------------


def call_when_ready(stub, request, timeout):
    return stub.Work(request, timeout=timeout, wait_for_ready=True)


def call_when_ready_future(stub, request, timeout):
    return stub.Work.future(request, timeout=timeout, wait_for_ready=True).result()


def fails_fast(stub, request, timeout):
    return stub.Work(request, timeout=timeout)


def waits_forever(stub, request, timeout):
    return stub.Work(request, wait_for_ready=True)


def hard_coded_timeout(stub, request, timeout):
    return stub.Work(request, timeout=10, wait_for_ready=True)


def hard_coded(seconds: float):
    def call(stub, request, timeout):
        return stub.Work(request, timeout=seconds, wait_for_ready=True)
    return call


def swallows_the_error(stub, request, timeout):
    try:
        return stub.Work(request, timeout=timeout, wait_for_ready=True)
    except grpc.RpcError:
        return None


# --- 10.5: service config ------------------------------------------------------------

RETRY = {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
         "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
SERVICE_CONFIG = {"loadBalancingConfig": [{"round_robin": {}}],
                  "methodConfig": [{"name": [{"service": "production.Worker"}],
                                    "retryPolicy": RETRY}]}
PICK_FIRST_WITH_RETRY = {"methodConfig": SERVICE_CONFIG["methodConfig"]}
ROUND_ROBIN_ONLY = {"loadBalancingConfig": [{"round_robin": {}}]}
RETRIES_THE_WRONG_CODE = {**SERVICE_CONFIG, "methodConfig": [
    {"name": [{"service": "production.Worker"}],
     "retryPolicy": {**RETRY, "retryableStatusCodes": ["DEADLINE_EXCEEDED"]}}]}
RETRIES_DEADLINE_TOO = {**SERVICE_CONFIG, "methodConfig": [
    {"name": [{"service": "production.Worker"}],
     "retryPolicy": {**RETRY, "retryableStatusCodes": ["UNAVAILABLE", "DEADLINE_EXCEEDED"]}}]}
RETRIES_INTERNAL_TOO = {**SERVICE_CONFIG, "methodConfig": [
    {"name": [{"service": "production.Worker"}],
     "retryPolicy": {**RETRY, "retryableStatusCodes": ["UNAVAILABLE", "INTERNAL"]}}]}
BACKOFF_WITHOUT_UNIT = {**SERVICE_CONFIG, "methodConfig": [
    {"name": [{"service": "production.Worker"}],
     "retryPolicy": {**RETRY, "initialBackoff": "0.05"}}]}
SERVICE_WITHOUT_PACKAGE = {**SERVICE_CONFIG, "methodConfig": [
    {"name": [{"service": "Worker"}], "retryPolicy": RETRY}]}

def with_retry(**changes) -> dict:
    """SERVICE_CONFIG with some fields of its retryPolicy changed."""
    return {**SERVICE_CONFIG, "methodConfig": [
        {"name": [{"service": "production.Worker"}], "retryPolicy": {**RETRY, **changes}}]}


SAME_POLICY_WRITTEN_DIFFERENTLY = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{"name": [{"service": "production.Worker", "method": "Work"}],
                      "retryPolicy": {"retryableStatusCodes": ["UNAVAILABLE"],
                                      "backoffMultiplier": 2.0, "maxBackoff": "0.500s",
                                      "initialBackoff": "0.050s", "maxAttempts": 3}}]}

# --- 10.4: graceful shutdown ---------------------------------------------------------


def graceful_shutdown(server, health, grace):
    health.enter_graceful_shutdown()
    server.stop(grace).wait()


def graceful_shutdown_by_hand(server, health, grace):
    from grpc_health.v1 import health_pb2

    for service in ("", "production.Worker"):
        health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    server.stop(grace).wait()


def graceful_shutdown_with_a_drain_pause(server, health, grace):
    health.enter_graceful_shutdown()
    time.sleep(0.2)  # let load balancers see NOT_SERVING before new calls are refused
    server.stop(grace).wait()


def stop_then_not_serving(server, health, grace):
    stopped = server.stop(grace)
    health.enter_graceful_shutdown()
    stopped.wait()


def sleeps_the_grace(server, health, grace):
    health.enter_graceful_shutdown()
    server.stop(grace)
    time.sleep(grace)


def stop_none(server, health, grace):
    health.enter_graceful_shutdown()
    server.stop(None).wait()


def stop_zero(server, health, grace):
    health.enter_graceful_shutdown()
    server.stop(0).wait()


def no_health_change(server, health, grace):
    server.stop(grace).wait()


def does_not_wait(server, health, grace):
    health.enter_graceful_shutdown()
    server.stop(grace)


# --- 10.6: a call that survives a restart ------------------------------------------


def call_through_restart(stub, request, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return stub.Work(request, timeout=max(deadline - time.monotonic(), 0),
                             wait_for_ready=True)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() >= deadline:
                raise


def call_through_restart_with_a_pause(stub, request, seconds):
    """Also right: no wait_for_ready, a short pause between attempts instead."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return stub.Work(request, timeout=max(deadline - time.monotonic(), 0.001))
        except grpc.RpcError as error:
            left = deadline - time.monotonic()
            if error.code() != grpc.StatusCode.UNAVAILABLE or left <= 0:
                raise
            time.sleep(min(0.2, left))


def restart_one_attempt(stub, request, seconds):
    return stub.Work(request, timeout=seconds, wait_for_ready=True)


def restart_fresh_budget_per_attempt(stub, request, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return stub.Work(request, timeout=seconds, wait_for_ready=True)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() >= deadline:
                raise


def restart_retries_everything(stub, request, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return stub.Work(request, timeout=max(deadline - time.monotonic(), 0),
                             wait_for_ready=True)
        except grpc.RpcError:
            if time.monotonic() >= deadline:
                raise


def restart_tight_loop(stub, request, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return stub.Work(request, timeout=max(deadline - time.monotonic(), 0.001))
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() >= deadline:
                raise


def restart_swallows(stub, request, seconds):
    try:
        return call_through_restart(stub, request, seconds)
    except grpc.RpcError:
        return None


def restart_without_deadline(stub, request, seconds):
    while True:
        try:
            return stub.Work(request, wait_for_ready=True)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise


WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("10.6", "one attempt with wait_for_ready", (restart_one_attempt,),
                "try it again while there is time"),
    WrongAnswer("10.6", "a fresh budget for every attempt", (restart_fresh_budget_per_attempt,),
                "each attempt got a budget of its own"),
    WrongAnswer("10.6", "retries every status, INVALID_ARGUMENT too",
                (restart_retries_everything,), "only a status that says the server was not there"),
    WrongAnswer("10.6", "retries in a tight loop", (restart_tight_loop,), "tight loop"),
    WrongAnswer("10.6", "swallows the final error", (restart_swallows,),
                "raise the RpcError"),
    WrongAnswer("10.6", "no deadline on the attempts", (restart_without_deadline,),
                "give every attempt a deadline"),
    WrongAnswer("10.1", "calls the next hop without timeout=", (NoTimeout,), "saw no deadline"),
    WrongAnswer("10.1", "passes time_remaining() with no margin", (NoMargin,),
                "subtract the margin"),
    WrongAnswer("10.1", "passes the full original timeout (2 s)", (FullOriginalTimeout,),
                "caller's deadline"),
    WrongAnswer("10.1", "ignores self.margin (fixed 0.05 s)", (FixedMargin,),
                "subtract the margin you were given"),
    WrongAnswer("10.2", "a blocking call that is never cancelled", (BlockingMiddle,),
                "went on working"),
    WrongAnswer("10.2", "a future without timeout=", (FutureWithoutTimeout,), "saw no deadline"),
    WrongAnswer("10.2", "registers the cancel callback only after call.result()",
                (CallbackAfterResult,), "went on working"),
    WrongAnswer("10.2", "checks is_active() once, before calling", (ChecksIsActiveOnce,),
                "must cancel its own outgoing call"),
    WrongAnswer("10.3", "no wait_for_ready: fails fast", (fails_fast,), "UNAVAILABLE"),
    WrongAnswer("10.3", "wait_for_ready without a deadline", (waits_forever,),
                "pass the timeout you were given"),
    WrongAnswer("10.3", "a hard-coded timeout instead of the argument", (hard_coded_timeout,),
                "pass the timeout you were given"),
    WrongAnswer("10.5", "pick_first left in place (retries only)", (PICK_FIRST_WITH_RETRY,),
                "pick_first"),
    WrongAnswer("10.5", "round_robin without a retryPolicy", (ROUND_ROBIN_ONLY,),
                "retryPolicy"),
    WrongAnswer("10.3", "a hard-coded 2 s timeout", (hard_coded(2),),
                "use the timeout you were given"),
    WrongAnswer("10.3", "a hard-coded 1 s timeout", (hard_coded(1),),
                "use the timeout you were given"),
    WrongAnswer("10.3", "swallows the error and returns None", (swallows_the_error,),
                "let the RpcError (DEADLINE_EXCEEDED) reach the caller"),
    WrongAnswer("10.5", "retries DEADLINE_EXCEEDED, not UNAVAILABLE", (RETRIES_THE_WRONG_CODE,),
                "retryableStatusCodes has DEADLINE_EXCEEDED"),
    WrongAnswer("10.5", "retries DEADLINE_EXCEEDED as well", (RETRIES_DEADLINE_TOO,),
                "retryableStatusCodes has DEADLINE_EXCEEDED: the deadline covers every attempt"),
    WrongAnswer("10.5", "retries INTERNAL as well", (RETRIES_INTERNAL_TOO,),
                "retryableStatusCodes has INTERNAL"),
    WrongAnswer("10.5", "a backoff without its unit: gRPC refuses the config",
                (BACKOFF_WITHOUT_UNIT,), "Not a duration (no s suffix)"),
    WrongAnswer("10.5", "names the service without its package", (SERVICE_WITHOUT_PACKAGE,),
                "production.Worker"),
    WrongAnswer("10.1", "aborts only when the budget is below 0, not at 0",
                (AbortsOnlyBelowZero,), "with 0.3 s left and margin=0.3"),
    WrongAnswer("10.1", "never aborts: leaves a budget of 0 or less to gRPC", (NeverAborts,),
                "status DEADLINE_EXCEEDED: context.abort with that code"),
    WrongAnswer("10.1", "aborts when less than 1 s would be passed on", (AbortsUnderOneSecond,),
                "with 0.8 s left and margin=0.3"),
    WrongAnswer("10.2", "ignores what add_callback returns", (IgnoresAddCallbackResult,),
                "when add_callback returns False, cancel the outgoing call at once"),
    WrongAnswer("10.2", "the next hop's error escapes as UNKNOWN", (ErrorsAsUnknown,),
                "wrap the wait for the next hop's answer in passing_errors_on"),
    WrongAnswer("10.5", "maxAttempts 5", (with_retry(maxAttempts=5),), "each call made 5 attempts"),
    WrongAnswer("10.5", "maxAttempts 2", (with_retry(maxAttempts=2),), "each call made 2 attempts"),
    WrongAnswer("10.5", "a backoff that does not grow", (with_retry(backoffMultiplier=1),),
                "the retryPolicy's backoffMultiplier is 1"),
    WrongAnswer("10.5", "a maximum backoff of 5 s", (with_retry(maxBackoff="5s"),),
                "the retryPolicy's maxBackoff is '5s'"),
    WrongAnswer("10.4", "stop(None)", (stop_none,), "calls in flight were lost"),
    WrongAnswer("10.4", "stop(0)", (stop_zero,), "calls in flight were lost"),
    WrongAnswer("10.4", "never marks NOT_SERVING", (no_health_change,), "NOT_SERVING"),
    WrongAnswer("10.4", "does not wait for stop() to finish", (does_not_wait,),
                "wait on the event"),
    WrongAnswer("10.4", "stop(grace) first, NOT_SERVING after", (stop_then_not_serving,),
                "stop() was called while health still said SERVING"),
    WrongAnswer("10.4", "time.sleep(grace) instead of waiting on the event", (sleeps_the_grace,),
                "without waiting on the event stop() returns"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("10.1", Middle), ("10.1", CancellingMiddle), ("10.1", NegativeBudgetMiddle),
    ("10.1", GuardFirst),
    ("10.2", CancellingMiddle), ("10.2", IsActiveAfterCallback),
    ("10.3", call_when_ready), ("10.3", call_when_ready_future),
    ("10.5", SERVICE_CONFIG), ("10.5", json.dumps(SERVICE_CONFIG)),
    ("10.5", SAME_POLICY_WRITTEN_DIFFERENTLY),
    ("10.4", graceful_shutdown), ("10.4", graceful_shutdown_by_hand),
    ("10.4", graceful_shutdown_with_a_drain_pause),
    ("10.6", call_through_restart), ("10.6", call_through_restart_with_a_pause),
], ids=lambda value: value if isinstance(value, str) and value.startswith("10.") else None)
def test_correct_answers_pass(exercise_id: str, answer, capsys) -> None:
    passes(capsys, exercise_id, answer)


def test_every_exercise_has_two_wrong_answers() -> None:
    from collections import Counter

    counts = Counter(wrong.exercise for wrong in WRONG_ANSWERS)
    assert set(counts) == {"10.1", "10.2", "10.3", "10.5", "10.4", "10.6"}
    assert min(counts.values()) >= 4


class Unsolved(Middle):
    def budget(self, context):
        raise NotImplementedError("Exercise 10.1: not solved yet")


class UnsolvedCancelling(CancellingMiddle):
    def Relay(self, request, context):
        raise NotImplementedError("Exercise 10.2: not solved yet")


@pytest.mark.parametrize("exercise_id, answer", [("10.1", Unsolved), ("10.2", UnsolvedCancelling)])
def test_an_unsolved_servicer_reads_as_not_solved(exercise_id: str, answer, capsys) -> None:
    assert "not solved yet" in fails(capsys, exercise_id, answer)
