"""Lesson 08, interceptors and metadata: reference answers pass, wrong answers are rejected."""

from __future__ import annotations

import collections
import json
import contextvars
import random
import threading
import time
import uuid

import grpc
import pytest
from conftest import WrongAnswer, fails, passes, rejects

# --- 8.1 a latency interceptor ----------------------------------------------------


def _status(context) -> grpc.StatusCode:
    """What abort set; CANCELLED if the client went away; UNKNOWN for a crash."""
    if context.code() is not None:
        return context.code()
    return grpc.StatusCode.CANCELLED if not context.is_active() else grpc.StatusCode.UNKNOWN


class Timing(grpc.ServerInterceptor):
    """The reference answer: wraps all four kinds of handler."""

    status = staticmethod(_status)

    def __init__(self, log):
        self.log = log

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None:
            return None
        method, log, _status = details.method, self.log, self.status

        def count(iterator, counter):
            for item in iterator:
                counter[0] += 1
                yield item

        def run(behavior, request_streaming, response_streaming):
            def wrapped(request_or_iterator, context):
                start, requests, replies = time.perf_counter(), [1], [0]
                code = grpc.StatusCode.OK
                if request_streaming:
                    requests = [0]
                    request_or_iterator = count(request_or_iterator, requests)
                try:
                    if response_streaming:
                        def stream():
                            nonlocal code
                            try:
                                for reply in behavior(request_or_iterator, context):
                                    replies[0] += 1
                                    yield reply
                            except BaseException:
                                code = _status(context)
                                raise
                            finally:
                                log(method, code, requests[0], replies[0],
                                    time.perf_counter() - start)
                        return stream()
                    reply = behavior(request_or_iterator, context)
                    replies[0] = 1
                    return reply
                except BaseException:
                    code = _status(context)
                    raise
                finally:
                    if not response_streaming:
                        log(method, code, requests[0], replies[0], time.perf_counter() - start)
            return wrapped

        kinds = {(False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
                 (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
                 (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
                 (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler)}
        key = (handler.request_streaming, handler.response_streaming)
        attribute, factory = kinds[key]
        return factory(run(getattr(handler, attribute), *key),
                       request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)


class SeedTiming(grpc.ServerInterceptor):
    """Seed 004's LoggingInterceptor: times continuation(), which only finds the handler."""

    def __init__(self, log):
        self.log = log

    def intercept_service(self, continuation, details):
        start = time.perf_counter()
        handler = continuation(details)
        self.log(details.method, grpc.StatusCode.OK, 1, 1, time.perf_counter() - start)
        return handler


class UnaryOnlyTiming(Timing):
    """Wraps unary-unary handlers and lets every stream through unlogged."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return handler
        return super().intercept_service(lambda d: handler, details)


class AlwaysOkTiming(Timing):
    """Logs every call as OK, failed ones included."""

    def __init__(self, log):
        super().__init__(lambda method, code, *rest: log(method, grpc.StatusCode.OK, *rest))


class GeneratorTiming(Timing):
    """Times a response stream until its generator is created, and counts it as one reply."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or not handler.response_streaming:
            return super().intercept_service(lambda d: handler, details)
        attribute = "stream_stream" if handler.request_streaming else "unary_stream"
        factory = (grpc.stream_stream_rpc_method_handler if handler.request_streaming
                   else grpc.unary_stream_rpc_method_handler)
        behavior, log, method = getattr(handler, attribute), self.log, details.method

        def wrapped(request, context):
            start = time.perf_counter()
            replies = behavior(request, context)
            log(method, grpc.StatusCode.OK, 1, 1, time.perf_counter() - start)
            return replies

        return factory(wrapped, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)


class BufferingTiming(Timing):
    """Reads the whole request stream first to count it (a ping-pong chat deadlocks)."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or not handler.request_streaming:
            return super().intercept_service(lambda d: handler, details)
        attribute = "stream_stream" if handler.response_streaming else "stream_unary"
        behavior = getattr(handler, attribute)

        def buffered(request_iterator, context):
            return behavior(iter(list(request_iterator)), context)

        factory = (grpc.stream_stream_rpc_method_handler if handler.response_streaming
                   else grpc.stream_unary_rpc_method_handler)
        wrapped = factory(buffered, request_deserializer=handler.request_deserializer,
                          response_serializer=handler.response_serializer)
        return super().intercept_service(lambda d: wrapped, details)


class NoFinallyTiming(Timing):
    """Logs a response stream after its loop or in `except Exception`: never on GeneratorExit."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or not handler.response_streaming:
            return super().intercept_service(lambda d: handler, details)
        attribute = "stream_stream" if handler.request_streaming else "unary_stream"
        factory = (grpc.stream_stream_rpc_method_handler if handler.request_streaming
                   else grpc.unary_stream_rpc_method_handler)
        behavior, log, method = getattr(handler, attribute), self.log, details.method

        def wrapped(request, context):
            start, counter, replies = time.perf_counter(), [1], [0]
            if handler.request_streaming:
                counter = [0]
                request = _count(request, counter)

            def stream():
                try:
                    for reply in behavior(request, context):
                        replies[0] += 1
                        yield reply
                except Exception:
                    log(method, _status(context), counter[0], replies[0],
                        time.perf_counter() - start)
                    raise
                log(method, grpc.StatusCode.OK, counter[0], replies[0], time.perf_counter() - start)
            return stream()

        return factory(wrapped, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)


def _count(iterator, counter):
    for item in iterator:
        counter[0] += 1
        yield item


class RawCodeTiming(Timing):
    """Logs context.code() as it is: None when the handler crashed."""

    status = staticmethod(lambda context: context.code())


class UnknownOnCancelTiming(Timing):
    """UNKNOWN whenever context.code() is None: a cancelled stream is logged UNKNOWN."""

    status = staticmethod(lambda context: context.code() or grpc.StatusCode.UNKNOWN)


class SwallowingStreamTiming(Timing):
    """Logs a response stream's exception and ends the stream quietly: the client sees OK."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.request_streaming or not handler.response_streaming:
            return super().intercept_service(lambda d: handler, details)
        behavior, log, method = handler.unary_stream, self.log, details.method

        def wrapped(request, context):
            start, replies = time.perf_counter(), [0]

            def stream():
                code = grpc.StatusCode.OK
                try:
                    for reply in behavior(request, context):
                        replies[0] += 1
                        yield reply
                except BaseException:
                    code = _status(context)
                finally:
                    log(method, code, 1, replies[0], time.perf_counter() - start)
            return stream()

        return grpc.unary_stream_rpc_method_handler(
            wrapped, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


class TwiceOnFailureTiming(Timing):
    """Logs a failed unary call in `except`, and again in `finally` as OK."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return super().intercept_service(lambda d: handler, details)
        behavior, log, method = handler.unary_unary, self.log, details.method

        def wrapped(request, context):
            start = time.perf_counter()
            try:
                return behavior(request, context)
            except BaseException:
                log(method, _status(context), 1, 0, time.perf_counter() - start)
                raise
            finally:
                log(method, grpc.StatusCode.OK, 1, 1, time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            wrapped, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


# --- 8.2 token auth ----------------------------------------------------------------

def reject(handler, code, details):
    """A handler of the same kind as `handler` that ends the call with `code`."""

    def abort(request_or_iterator, context):
        context.abort(code, details)

    if handler is None:
        return None
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class TokenAuth(grpc.ServerInterceptor):
    def __init__(self, tokens):
        self.tokens = set(tokens)

    def intercept_service(self, continuation, details):
        metadata = dict(details.invocation_metadata or ())
        header = metadata.get("authorization", "")
        handler = continuation(details)
        if not header.startswith("Bearer "):
            return reject(handler, grpc.StatusCode.UNAUTHENTICATED,
                          "missing 'authorization: Bearer <token>' metadata")
        if header.removeprefix("Bearer ") not in self.tokens:
            return reject(handler, grpc.StatusCode.UNAUTHENTICATED, "invalid token")
        return handler


class StreamStreamAuth(TokenAuth):
    """Correct but different: one stream-stream abort handler serves every kind of method."""

    def intercept_service(self, continuation, details):
        header = dict(details.invocation_metadata or ()).get("authorization", "")
        if header.removeprefix("Bearer ") in self.tokens and header.startswith("Bearer "):
            return continuation(details)

        def abort(request_iterator, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")

        return grpc.stream_stream_rpc_method_handler(abort)


class SeedAuth(TokenAuth):
    """Seed 004's AuthInterceptor: a unary-unary abort handler for every method."""

    def intercept_service(self, continuation, details):
        token = dict(details.invocation_metadata or ()).get("authorization", "")
        if not token.startswith("Bearer ") or token[7:] not in self.tokens:
            def abort(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid token")
            return grpc.unary_unary_rpc_method_handler(abort)
        return continuation(details)


class PresenceOnlyAuth(TokenAuth):
    """Checks that a bearer token is there, not that it is valid."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if not dict(details.invocation_metadata or ()).get("authorization", "").startswith(
                "Bearer "):
            return reject(handler, grpc.StatusCode.UNAUTHENTICATED, "no token")
        return handler


class PermissionDeniedAuth(TokenAuth):
    def intercept_service(self, continuation, details):
        handler = continuation(details)
        header = dict(details.invocation_metadata or ()).get("authorization", "")
        if header.removeprefix("Bearer ") not in self.tokens or not header.startswith("Bearer "):
            return reject(handler, grpc.StatusCode.PERMISSION_DENIED, "bad token")
        return handler


class HardCodedAuth(TokenAuth):
    """Ignores its tokens argument and accepts the token of the lesson's demo."""

    def __init__(self, tokens):
        super().__init__({"demo-token"})


# --- 8.3 metadata on every outgoing call --------------------------------------------

class CallDetails(collections.namedtuple(
        "CallDetails", "method timeout metadata credentials wait_for_ready compression"),
        grpc.ClientCallDetails):
    pass


class AddMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, token):
        self.token = token

    def _details(self, details):
        metadata = list(details.metadata or []) + [
            ("authorization", f"Bearer {self.token}"), ("x-request-id", uuid.uuid4().hex)]
        return CallDetails(details.method, details.timeout, metadata, details.credentials,
                           details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class UnaryOnlyMetadata(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, token):
        self.inner = AddMetadata(token)

    def intercept_unary_unary(self, continuation, details, request):
        return self.inner.intercept_unary_unary(continuation, details, request)


class ReplacingMetadata(AddMetadata):
    def _details(self, details):
        metadata = [("authorization", f"Bearer {self.token}"), ("x-request-id", uuid.uuid4().hex)]
        return CallDetails(details.method, details.timeout, metadata, details.credentials,
                           details.wait_for_ready, details.compression)


class OneIdMetadata(AddMetadata):
    def __init__(self, token):
        super().__init__(token)
        self.request_id = uuid.uuid4().hex

    def _details(self, details):
        metadata = list(details.metadata or []) + [
            ("authorization", f"Bearer {self.token}"), ("x-request-id", self.request_id)]
        return CallDetails(details.method, details.timeout, metadata, details.credentials,
                           details.wait_for_ready, details.compression)


class NoTimeoutMetadata(AddMetadata):
    def _details(self, details):
        kept = super()._details(details)
        return kept._replace(timeout=None)


class AppendingMetadata(AddMetadata):
    """Appends to the caller's own list: fails on metadata=None, grows the caller's list."""

    def _details(self, details):
        details.metadata.append(("authorization", f"Bearer {self.token}"))
        details.metadata.append(("x-request-id", uuid.uuid4().hex))
        return details


class AppendingToTheCallersList(AddMetadata):
    """Copies None and tuples, but appends to a list the caller passed: it grows each call."""

    def _details(self, details):
        metadata = details.metadata
        if not isinstance(metadata, list):
            metadata = list(metadata or ())
        metadata.append(("authorization", f"Bearer {self.token}"))
        metadata.append(("x-request-id", uuid.uuid4().hex))
        return CallDetails(details.method, details.timeout, metadata, details.credentials,
                           details.wait_for_ready, details.compression)


class FixedTimeoutMetadata(AddMetadata):
    def _details(self, details):
        return super()._details(details)._replace(timeout=5)


class CredentialsDroppingMetadata(AddMetadata):
    """Keeps the method, timeout and metadata; drops call credentials and the rest."""

    def _details(self, details):
        made = super()._details(details)
        return CallDetails(made.method, made.timeout, made.metadata, None, None, None)


class WaitForReadyDroppingMetadata(AddMetadata):
    """Keeps everything but wait_for_ready."""

    def _details(self, details):
        return super()._details(details)._replace(wait_for_ready=None)


# --- 8.4 retry with a deadline budget ------------------------------------------------

class Retry(grpc.UnaryUnaryClientInterceptor):
    RETRYABLE = {grpc.StatusCode.UNAVAILABLE}

    def __init__(self, max_attempts=4, initial_backoff=0.05, multiplier=2.0, max_backoff=1.0):
        self.max_attempts, self.initial_backoff = max_attempts, initial_backoff
        self.multiplier, self.max_backoff = multiplier, max_backoff

    def intercept_unary_unary(self, continuation, details, request):
        deadline = None if details.timeout is None else time.monotonic() + details.timeout
        backoff = self.initial_backoff
        for attempt in range(1, self.max_attempts + 1):
            remaining = None if deadline is None else deadline - time.monotonic()
            outcome = continuation(CallDetails(details.method, remaining, details.metadata,
                                               details.credentials, details.wait_for_ready,
                                               details.compression), request)
            if outcome.code() not in self.RETRYABLE or attempt == self.max_attempts:
                return outcome
            pause = random.uniform(0, backoff)
            if deadline is not None and time.monotonic() + pause >= deadline:
                return outcome
            time.sleep(pause)
            backoff = min(backoff * self.multiplier, self.max_backoff)
        return outcome


class SeedRetry(Retry):
    """Seed 004's RetryInterceptor: waits for an exception that continuation never raises."""

    def intercept_unary_unary(self, continuation, details, request):
        for attempt in range(self.max_attempts):
            try:
                return continuation(details, request)
            except grpc.RpcError as error:
                if error.code() not in self.RETRYABLE or attempt == self.max_attempts - 1:
                    raise
                time.sleep(self.initial_backoff * 2**attempt)


class DeadlineBlindRetry(Retry):
    """Looks at the outcome, but gives every attempt the caller's full timeout."""

    def intercept_unary_unary(self, continuation, details, request):
        backoff = self.initial_backoff
        for attempt in range(1, self.max_attempts + 1):
            outcome = continuation(details, request)
            if outcome.code() not in self.RETRYABLE or attempt == self.max_attempts:
                return outcome
            time.sleep(random.uniform(0, backoff))
            backoff = min(backoff * self.multiplier, self.max_backoff)


class RetryEverything(Retry):
    RETRYABLE = {code for code in grpc.StatusCode if code != grpc.StatusCode.OK}


class RetryServerErrorsToo(Retry):
    RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


class RetryDeadlineExceededToo(Retry):
    """The common tutorial's list: UNAVAILABLE and DEADLINE_EXCEEDED."""

    RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class SleepsPastTheDeadline(Retry):
    """Gives each attempt the time left, but sleeps its full pause even past the deadline."""

    def intercept_unary_unary(self, continuation, details, request):
        deadline = time.monotonic() + details.timeout
        backoff = self.initial_backoff
        for attempt in range(1, self.max_attempts + 1):
            remaining = deadline - time.monotonic()
            outcome = continuation(details._replace(timeout=remaining)
                                   if isinstance(details, CallDetails) else
                                   CallDetails(details.method, remaining, details.metadata,
                                               details.credentials, details.wait_for_ready,
                                               details.compression), request)
            if outcome.code() not in self.RETRYABLE or attempt == self.max_attempts:
                return outcome
            time.sleep(random.uniform(0, backoff))
            if time.monotonic() >= deadline:
                return outcome
            backoff = min(backoff * self.multiplier, self.max_backoff)
        return outcome


class UncappedRetry(Retry):
    """Multiplies the backoff without ever applying max_backoff."""

    def intercept_unary_unary(self, continuation, details, request):
        deadline = time.monotonic() + details.timeout
        backoff = self.initial_backoff
        for attempt in range(1, self.max_attempts + 1):
            outcome = continuation(CallDetails(details.method, deadline - time.monotonic(),
                                               details.metadata, details.credentials,
                                               details.wait_for_ready, details.compression),
                                   request)
            if outcome.code() not in self.RETRYABLE or attempt == self.max_attempts:
                return outcome
            pause = random.uniform(0, backoff)
            if time.monotonic() + pause >= deadline:
                return outcome
            time.sleep(pause)
            backoff *= self.multiplier
        return outcome


class NoJitterRetry(Retry):
    """Sleeps the whole backoff every time: clients that failed together retry together."""

    def intercept_unary_unary(self, continuation, details, request):
        deadline = time.monotonic() + details.timeout
        backoff = self.initial_backoff
        for attempt in range(1, self.max_attempts + 1):
            outcome = continuation(CallDetails(details.method, deadline - time.monotonic(),
                                               details.metadata, details.credentials,
                                               details.wait_for_ready, details.compression),
                                   request)
            if outcome.code() not in self.RETRYABLE or attempt == self.max_attempts:
                return outcome
            pause = self.pause(backoff)
            if time.monotonic() + pause >= deadline:
                return outcome
            time.sleep(pause)
            backoff = min(backoff * self.multiplier, self.max_backoff)
        return outcome

    def pause(self, backoff):
        return backoff


class GrpcStyleJitterRetry(NoJitterRetry):
    """grpcio's core jitter, backoff ± 20%: never the short pauses the statement asks for."""

    def pause(self, backoff):
        return min(backoff * random.uniform(0.8, 1.2), self.max_backoff)


class StepRetry(Retry):
    """The reference answer in steps, so that each wrong answer below changes one of them."""

    def intercept_unary_unary(self, continuation, details, request):
        deadline = self.deadline(details)
        backoff = self.initial_backoff
        for attempt in range(1, self.max_attempts + 1):
            remaining = None if deadline is None else deadline - time.monotonic()
            outcome = continuation(self.attempt_details(details, remaining), request)
            if outcome.code() not in self.RETRYABLE or attempt == self.max_attempts:
                return outcome
            pause = random.uniform(0, backoff)
            if deadline is not None and time.monotonic() + pause >= deadline:
                return self.give_up(outcome)
            self.sleep(pause)
            backoff = self.grow(backoff)
        return outcome

    def deadline(self, details):
        return None if details.timeout is None else time.monotonic() + details.timeout

    def attempt_details(self, details, remaining):
        return CallDetails(details.method, remaining, details.metadata, details.credentials,
                           details.wait_for_ready, details.compression)

    def give_up(self, outcome):
        return outcome

    def sleep(self, pause):
        time.sleep(pause)

    def grow(self, backoff):
        return min(backoff * self.multiplier, self.max_backoff)


class ReversedJitterRetry(grpc.UnaryUnaryClientInterceptor):
    """A correct answer written differently: a while loop, details._replace, backoff * (1 - r)."""

    def __init__(self, max_attempts=4, initial_backoff=0.05, multiplier=2.0, max_backoff=1.0):
        self.max_attempts, self.backoff = max_attempts, initial_backoff
        self.multiplier, self.max_backoff = multiplier, max_backoff

    def intercept_unary_unary(self, continuation, details, request):
        start, backoff, attempts = time.monotonic(), self.backoff, 0
        fields = (details.method, details.timeout, details.metadata, details.credentials,
                  details.wait_for_ready, details.compression)
        while True:
            attempts += 1
            left = None if details.timeout is None else details.timeout - (time.monotonic() - start)
            outcome = continuation(CallDetails(*fields)._replace(timeout=left), request)
            if outcome.code() != grpc.StatusCode.UNAVAILABLE or attempts >= self.max_attempts:
                return outcome
            pause = backoff * (1 - random.random())
            if left is not None and time.monotonic() - start + pause >= details.timeout:
                return outcome
            time.sleep(pause)
            backoff = min(self.max_backoff, backoff * self.multiplier)


class CrashesWithoutTimeout(StepRetry):
    """Adds the caller's timeout to the clock even when there is none."""

    def deadline(self, details):
        return time.monotonic() + details.timeout


class BareDetailsRetry(StepRetry):
    """Sends each attempt with the method and the time left only."""

    def attempt_details(self, details, remaining):
        return CallDetails(details.method, remaining, None, None, None, None)


class NoWaitForReadyRetry(StepRetry):
    """Keeps the metadata and credentials, forgets wait_for_ready and compression."""

    def attempt_details(self, details, remaining):
        return CallDetails(details.method, remaining, details.metadata, details.credentials,
                           None, None)


class ReturnsNothingRetry(StepRetry):
    """Stops before a pause past the deadline, but hands the caller nothing."""

    def give_up(self, outcome):
        return None


class NoSleepRetry(StepRetry):
    """Draws each pause, never sleeps it."""

    def sleep(self, pause):
        pass


class ConstantBackoffRetry(StepRetry):
    """Jittered pauses, but the backoff never grows."""

    def grow(self, backoff):
        return backoff


# --- 8.5 a retry policy in the service config --------------------------------------

def service_config(name, max_attempts=5, codes=("UNAVAILABLE",)):
    return {"methodConfig": [{"name": [name], "retryPolicy": {
        "maxAttempts": max_attempts, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
        "backoffMultiplier": 2, "retryableStatusCodes": list(codes)}}]}


RETRY_CONFIG = service_config({"service": "routeguide.RouteGuide", "method": "GetFeature"})

# --- 8.6 a request id from an aio interceptor ----------------------------------------

request_id = contextvars.ContextVar("request_id", default="-")


class RequestId(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, details):
        metadata = dict(details.invocation_metadata or ())
        request_id.set(metadata.get("x-request-id") or uuid.uuid4().hex)
        return await continuation(details)


class ResettingRequestId(RequestId):
    """Resets the variable in `finally`: before the handler has even started."""

    async def intercept_service(self, continuation, details):
        metadata = dict(details.invocation_metadata or ())
        token = request_id.set(metadata.get("x-request-id") or uuid.uuid4().hex)
        try:
            return await continuation(details)
        finally:
            request_id.reset(token)


class AlwaysNewRequestId(RequestId):
    async def intercept_service(self, continuation, details):
        request_id.set(uuid.uuid4().hex)
        return await continuation(details)


class NoFallbackRequestId(RequestId):
    async def intercept_service(self, continuation, details):
        metadata = dict(details.invocation_metadata or ())
        if "x-request-id" in metadata:
            request_id.set(metadata["x-request-id"])
        return await continuation(details)


class SyncRequestId(grpc.ServerInterceptor):
    def intercept_service(self, continuation, details):
        request_id.set(dict(details.invocation_metadata or ()).get("x-request-id", "none"))
        return continuation(details)


# --- 8.7 challenge: auth, then a rate limit per user ---------------------------------

class RateLimiter:
    """The lesson's limiter: at most max_requests per key in any window seconds."""

    def __init__(self, max_requests, window):
        self.max_requests, self.window = max_requests, window
        self.calls = {}
        self.lock = threading.Lock()

    def allow(self, key):
        now = time.monotonic()
        with self.lock:
            for old in [k for k, times in self.calls.items() if now - times[-1] >= self.window]:
                del self.calls[old]
            recent = [t for t in self.calls.get(key, []) if now - t < self.window]
            if len(recent) >= self.max_requests:
                self.calls[key] = recent
                return False
            self.calls[key] = recent + [now]
            return True


class Authenticate(grpc.ServerInterceptor):
    """Maps the bearer token to its user and hands the user on as x-user metadata."""

    def __init__(self, tokens):
        self.tokens = dict(tokens)

    def intercept_service(self, continuation, details):
        metadata = tuple((k, v) for k, v in (details.invocation_metadata or ()) if k != "x-user")
        header = dict(metadata).get("authorization", "")
        user = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith(
            "Bearer ") else None
        if user is None:  # refuse without continuation: the limiter after us never runs
            return grpc.stream_stream_rpc_method_handler(refuse_unauthenticated)
        return continuation(details._replace(invocation_metadata=metadata + (("x-user", user),)))


def refuse_unauthenticated(request_iterator, context):
    """A stream-stream refusal reads no request first: it suits every kind of method."""
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")


class LimitPerUser(grpc.ServerInterceptor):
    key = "x-user"

    def __init__(self, max_requests, window):
        self.limiter = RateLimiter(max_requests, window)

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        who = dict(details.invocation_metadata or ()).get(self.key, "anonymous")
        if handler is not None and not self.limiter.allow(who):
            return reject(handler, grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit for {who}")
        return handler


def guard(tokens, max_requests, window):
    return [Authenticate(tokens), LimitPerUser(max_requests, window)]


class OneInterceptor(grpc.ServerInterceptor):
    """Correct too: one interceptor that authenticates, then counts the user it found."""

    def __init__(self, tokens, max_requests, window):
        self.tokens, self.limiter = dict(tokens), RateLimiter(max_requests, window)

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        header = dict(details.invocation_metadata or ()).get("authorization", "")
        user = self.tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if user is None:
            return reject(handler, grpc.StatusCode.UNAUTHENTICATED, "who are you?")
        if not self.limiter.allow(user):
            return reject(handler, grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
        return handler


def guard_in_one(tokens, max_requests, window):
    return [OneInterceptor(tokens, max_requests, window)]


class LimitPerClientId(LimitPerUser):
    key = "x-client-id"


def guard_keyed_on_client_id(tokens, max_requests, window):
    """The common tutorial's limiter (x-client-id), placed after auth."""
    return [Authenticate(tokens), LimitPerClientId(max_requests, window)]


def guard_limit_first(tokens, max_requests, window):
    """Limits on x-client-id before auth: unauthenticated calls use up someone's quota."""
    return [LimitPerClientId(max_requests, window), Authenticate(tokens)]


class LimitPerToken(LimitPerUser):
    def intercept_service(self, continuation, details):
        handler = continuation(details)
        token = dict(details.invocation_metadata or ()).get("authorization", "")
        if handler is not None and not self.limiter.allow(token):
            return reject(handler, grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit")
        return handler


def guard_keyed_on_token(tokens, max_requests, window):
    return [Authenticate(tokens), LimitPerToken(max_requests, window)]


class TrustsXUser(Authenticate):
    """Adds x-user but keeps one the client sent first: dict() then takes the client's."""

    def intercept_service(self, continuation, details):
        metadata = tuple(details.invocation_metadata or ())
        header = dict(metadata).get("authorization", "")
        user = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith(
            "Bearer ") else None
        if user is None:
            return reject(continuation(details), grpc.StatusCode.UNAUTHENTICATED, "no")
        return continuation(details._replace(invocation_metadata=(("x-user", user),) + metadata))


def guard_trusting_x_user(tokens, max_requests, window):
    return [TrustsXUser(tokens), LimitPerUser(max_requests, window)]


class ForeverLimiter(RateLimiter):
    def allow(self, key):
        with self.lock:
            count = self.calls.get(key, 0)
            self.calls[key] = count + 1
            return count < self.max_requests


def guard_without_window(tokens, max_requests, window):
    limit = LimitPerUser(max_requests, window)
    limit.limiter = ForeverLimiter(max_requests, window)
    return [Authenticate(tokens), limit]


class UnaryRefusalAuth(Authenticate):
    """Refuses with a unary-unary handler whatever the method (the tutorial's kind)."""

    def intercept_service(self, continuation, details):
        header = dict(details.invocation_metadata or ()).get("authorization", "")
        if header.removeprefix("Bearer ") not in self.tokens or not header.startswith("Bearer "):
            def abort(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "no")
            return grpc.unary_unary_rpc_method_handler(abort)
        return super().intercept_service(continuation, details)


def guard_with_unary_refusal(tokens, max_requests, window):
    return [UnaryRefusalAuth(tokens), LimitPerUser(max_requests, window)]


WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("8.1", "seed 004's logger: times continuation(), not the call", (SeedTiming,),
                "not continuation(...)"),
    WrongAnswer("8.1", "handles unary calls only", (UnaryOnlyTiming,),
                "no log entry with status OK for ListFeatures"),
    WrongAnswer("8.1", "logs OK for a failed call", (AlwaysOkTiming,), "logged as OK"),
    WrongAnswer("8.1", "times a response stream until its generator exists", (GeneratorTiming,),
                "the creation of a generator"),
    WrongAnswer("8.1", "reads the whole request stream first (list(...)) to count it",
                (BufferingTiming,), "reads the request stream ahead of the handler"),
    WrongAnswer("8.1", "logs a stream without `finally`: a cancelled stream is never logged",
                (NoFinallyTiming,), "cancelled after its first reply was never logged"),
    WrongAnswer("8.1", "logs context.code() as it is (None after a crash)", (RawCodeTiming,),
                "was logged with 'None'"),
    WrongAnswer("8.1", "logs UNKNOWN for a stream the client cancelled", (UnknownOnCancelTiming,),
                "so log CANCELLED"),
    WrongAnswer("8.1", "swallows a response stream's exception", (SwallowingStreamTiming,),
                "should reach the client as UNKNOWN"),
    WrongAnswer("8.1", "logs a failed unary call twice", (TwiceOnFailureTiming,),
                "log exactly once per call"),
    WrongAnswer("8.2", "seed 004's unary-unary abort handler for every method", (SeedAuth,),
                "must be of the method's own kind"),
    WrongAnswer("8.2", "checks that a token is there, not that it is valid", (PresenceOnlyAuth,),
                "with a wrong token succeeded"),
    WrongAnswer("8.2", "PERMISSION_DENIED instead of UNAUTHENTICATED", (PermissionDeniedAuth,),
                "ended with PERMISSION_DENIED"),
    WrongAnswer("8.2", "hard-codes the demo's token", (HardCodedAuth,),
                "with a valid token failed"),
    WrongAnswer("8.3", "handles unary calls only", (UnaryOnlyMetadata,),
                "ListFeatures (server streaming) arrived without"),
    WrongAnswer("8.3", "replaces the caller's metadata", (ReplacingMetadata,),
                "lost the metadata its caller passed"),
    WrongAnswer("8.3", "one request id for every call", (OneIdMetadata,),
                "not one in __init__"),
    WrongAnswer("8.3", "drops the caller's timeout", (NoTimeoutMetadata,), "no deadline"),
    WrongAnswer("8.3", "appends to the caller's own metadata list", (AppendingMetadata,),
                "raised AttributeError in your interceptor"),
    WrongAnswer("8.3", "appends to a list the caller passed (copies None and tuples)",
                (AppendingToTheCallersList,), "appended to the caller's list"),
    WrongAnswer("8.3", "a timeout of its own instead of the caller's", (FixedTimeoutMetadata,),
                "keep the caller's timeout"),
    WrongAnswer("8.3", "drops the caller's call credentials", (CredentialsDroppingMetadata,),
                "arrived without the caller's call credentials"),
    WrongAnswer("8.3", "drops the caller's wait_for_ready", (WaitForReadyDroppingMetadata,),
                "pass the caller's wait_for_ready on"),
    WrongAnswer("8.4", "seed 004's retry: waits for an exception", (SeedRetry,),
                "did not retry"),
    WrongAnswer("8.4", "ignores the deadline", (DeadlineBlindRetry,),
                "your retry ignores the deadline"),
    WrongAnswer("8.4", "retries every status code", (RetryEverything,),
                "retry only UNAVAILABLE"),
    WrongAnswer("8.4", "retries INTERNAL and UNKNOWN too", (RetryServerErrorsToo,),
                "failed with INTERNAL was sent 2 times"),
    WrongAnswer("8.4", "retries DEADLINE_EXCEEDED too", (RetryDeadlineExceededToo,),
                "failed with DEADLINE_EXCEEDED was sent 2 times"),
    WrongAnswer("8.4", "sleeps its full pause past the deadline", (SleepsPastTheDeadline,),
                "slept past the deadline"),
    WrongAnswer("8.4", "no max_backoff cap", (UncappedRetry,), "never grow past max_backoff"),
    WrongAnswer("8.4", "no jitter: sleeps the whole backoff", (NoJitterRetry,), "full jitter"),
    WrongAnswer("8.4", "backoff ± 20% instead of uniform(0, backoff)", (GrpcStyleJitterRetry,),
                "full jitter"),
    WrongAnswer("8.4", "crashes when the caller set no timeout", (CrashesWithoutTimeout,),
                "without a timeout there is no deadline"),
    WrongAnswer("8.4", "attempts without the caller's metadata and credentials",
                (BareDetailsRetry,), "without the caller's metadata"),
    WrongAnswer("8.4", "attempts without the caller's wait_for_ready", (NoWaitForReadyRetry,),
                "pass the caller's wait_for_ready on"),
    WrongAnswer("8.4", "returns None when it stops before the deadline", (ReturnsNothingRetry,),
                "return the last outcome"),
    WrongAnswer("8.4", "never sleeps its pauses", (NoSleepRetry,), "sleep each pause"),
    WrongAnswer("8.4", "the backoff never grows", (ConstantBackoffRetry,),
                "multiply the backoff after each one"),
    WrongAnswer("8.5", "retries every method of the service",
                (service_config({"service": "routeguide.RouteGuide"}),), "Retry GetFeature only"),
    WrongAnswer("8.5", "maxAttempts too small for 4 failures",
                (service_config({"service": "routeguide.RouteGuide", "method": "GetFeature"}, 3),),
                "maxAttempts is too small"),
    WrongAnswer("8.5", "service name without its package",
                (service_config({"service": "RouteGuide", "method": "GetFeature"}),),
                "no retry happened"),
    WrongAnswer("8.5", "retries INVALID_ARGUMENT too",
                (service_config({"service": "routeguide.RouteGuide", "method": "GetFeature"},
                                codes=("UNAVAILABLE", "INVALID_ARGUMENT")),),
                "retry UNAVAILABLE only"),
    WrongAnswer("8.5", "retries INTERNAL too",
                (service_config({"service": "routeguide.RouteGuide", "method": "GetFeature"},
                                codes=("UNAVAILABLE", "INTERNAL")),),
                "failed with INTERNAL was sent 2 times"),
    WrongAnswer("8.5", "retries DEADLINE_EXCEEDED too",
                (service_config({"service": "routeguide.RouteGuide", "method": "GetFeature"},
                                codes=("UNAVAILABLE", "DEADLINE_EXCEEDED")),),
                "failed with DEADLINE_EXCEEDED was sent 2 times"),
    WrongAnswer("8.5", "a backoff of seconds: the retries outlast the deadline",
                ({"methodConfig": [{"name": [{"service": "routeguide.RouteGuide",
                                              "method": "GetFeature"}],
                                    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "4s",
                                                    "maxBackoff": "30s", "backoffMultiplier": 2,
                                                    "retryableStatusCodes": ["UNAVAILABLE"]}}]},),
                "make the backoff shorter"),
    WrongAnswer("8.7", "the tutorial's limiter keyed on x-client-id, after auth",
                (guard_keyed_on_client_id,), "count per authenticated user"),
    WrongAnswer("8.7", "the limiter before auth: unauthenticated calls use a quota",
                (guard_limit_first,), "expected UNAUTHENTICATED"),
    WrongAnswer("8.7", "counts per token: a user with two tokens gets twice the limit",
                (guard_keyed_on_token,), "not per token"),
    WrongAnswer("8.7", "keeps an x-user the client sent", (guard_trusting_x_user,),
                "claimed to be alice count against her"),
    WrongAnswer("8.7", "counts forever, no window", (guard_without_window,),
                "not forever"),
    WrongAnswer("8.7", "a unary-unary refusal for every method", (guard_with_unary_refusal,),
                "must not wait for a request message"),
    WrongAnswer("8.6", "resets the ContextVar before the handler runs",
                (ResettingRequestId, request_id), "do not reset"),
    WrongAnswer("8.6", "ignores the client's x-request-id", (AlwaysNewRequestId, request_id),
                "request ids seen by two concurrent"),
    WrongAnswer("8.6", "no id when the client sent none", (NoFallbackRequestId, request_id),
                "make a fresh id when the client sent none"),
    WrongAnswer("8.6", "a sync interceptor on an aio server", (SyncRequestId, request_id),
                "not a grpc.aio.ServerInterceptor"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("8.1", (Timing,)),
    ("8.2", (TokenAuth,)),
    ("8.2", (StreamStreamAuth,)),
    ("8.3", (AddMetadata,)),
    ("8.4", (Retry,)),
    ("8.4", (StepRetry,)),
    ("8.4", (ReversedJitterRetry,)),
    ("8.5", (RETRY_CONFIG,)),
    ("8.5", (json.dumps(RETRY_CONFIG),)),
    ("8.5", (lambda: RETRY_CONFIG,)),
    ("8.6", (RequestId, request_id)),
    ("8.7", (guard,)),
    ("8.7", (guard_in_one,)),
], ids=lambda value: value if isinstance(value, str) else "")
def test_right_answers_pass(exercise_id: str, answer: tuple, capsys) -> None:
    passes(capsys, exercise_id, *answer)


@pytest.mark.parametrize("exercise_id", ["8.1", "8.2", "8.3", "8.4", "8.5", "8.6", "8.7"])
def test_every_exercise_has_four_wrong_answers(exercise_id: str) -> None:
    assert sum(wrong.exercise == exercise_id for wrong in WRONG_ANSWERS) >= 4


class UnsolvedTiming(Timing):
    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None:
            return None
        raise NotImplementedError("Exercise 8.1: not solved yet")


class UnsolvedAuth(TokenAuth):
    def intercept_service(self, continuation, details):
        raise NotImplementedError("Exercise 8.2: not solved yet")


class UnsolvedRequestId(RequestId):
    async def intercept_service(self, continuation, details):
        raise NotImplementedError("Exercise 8.6: not solved yet")


@pytest.mark.parametrize("exercise_id, answer", [
    ("8.1", (UnsolvedTiming,)), ("8.2", (UnsolvedAuth,)), ("8.6", (UnsolvedRequestId, request_id)),
], ids=["8.1", "8.2", "8.6"])
def test_an_unsolved_server_interceptor_is_called_not_solved_yet(exercise_id: str, answer: tuple,
                                                                 capsys) -> None:
    assert "not solved yet" in fails(capsys, exercise_id, *answer)
