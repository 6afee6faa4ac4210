"""Lesson 08, interceptors and metadata: reference answers pass, wrong answers are rejected."""

from __future__ import annotations

import collections
import json
import contextvars
import random
import time
import uuid

import grpc
import pytest
from conftest import WrongAnswer, fails, passes, rejects

# --- 8.1 a latency interceptor ----------------------------------------------------


def _status(context) -> grpc.StatusCode:
    return context.code() or grpc.StatusCode.UNKNOWN


class Timing(grpc.ServerInterceptor):
    """The reference answer: wraps all four kinds of handler."""

    def __init__(self, log):
        self.log = log

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None:
            return None
        method, log = details.method, self.log

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


WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("8.1", "seed 004's logger: times continuation(), not the call", (SeedTiming,),
                "not continuation(...)"),
    WrongAnswer("8.1", "handles unary calls only", (UnaryOnlyTiming,),
                "no log entry with status OK for ListFeatures"),
    WrongAnswer("8.1", "logs OK for a failed call", (AlwaysOkTiming,), "logged as OK"),
    WrongAnswer("8.1", "times a response stream until its generator exists", (GeneratorTiming,),
                "the creation of a generator"),
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
    WrongAnswer("8.4", "seed 004's retry: waits for an exception", (SeedRetry,),
                "did not retry"),
    WrongAnswer("8.4", "ignores the deadline", (DeadlineBlindRetry,),
                "your retry ignores the deadline"),
    WrongAnswer("8.4", "retries every status code", (RetryEverything,),
                "retry only UNAVAILABLE"),
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
    WrongAnswer("8.5", "a backoff of seconds: the retries outlast the deadline",
                ({"methodConfig": [{"name": [{"service": "routeguide.RouteGuide",
                                              "method": "GetFeature"}],
                                    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "4s",
                                                    "maxBackoff": "30s", "backoffMultiplier": 2,
                                                    "retryableStatusCodes": ["UNAVAILABLE"]}}]},),
                "make the backoff shorter"),
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
    ("8.5", (RETRY_CONFIG,)),
    ("8.5", (json.dumps(RETRY_CONFIG),)),
    ("8.5", (lambda: RETRY_CONFIG,)),
    ("8.6", (RequestId, request_id)),
], ids=lambda value: value if isinstance(value, str) else "")
def test_right_answers_pass(exercise_id: str, answer: tuple, capsys) -> None:
    passes(capsys, exercise_id, *answer)


@pytest.mark.parametrize("exercise_id", ["8.1", "8.2", "8.3", "8.4", "8.5", "8.6"])
def test_every_exercise_has_two_wrong_answers(exercise_id: str) -> None:
    assert sum(wrong.exercise == exercise_id for wrong in WRONG_ANSWERS) >= 2


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
