"""Lesson 03, calculator: the checks of exercises 3.1-3.7 pass right answers, reject wrong ones."""

from __future__ import annotations

import time

import grpc
import pytest
from conftest import WrongAnswer, passes, rejects

from helpers.reference import INT32_MAX, INT32_MIN, Calculator, calculator_pb2 as pb2
from helpers.reference import calculator_pb2_grpc as pb2_grpc


# ---- 3.1 ---------------------------------------------------------------------------------

class Arithmetic(pb2_grpc.CalculatorServicer):
    """Exercise 3.1 as the lesson asks: no overflow check yet, no Divide."""

    def Add(self, request, context):
        return pb2.AddReply(result=request.a + request.b)

    def Subtract(self, request, context):
        return pb2.SubtractReply(result=request.a - request.b)

    def Multiply(self, request, context):
        return pb2.MultiplyReply(result=request.a * request.b)


class WrongAdd(Arithmetic):
    def Add(self, request, context):
        return pb2.AddReply(result=request.a - request.b)


class ReversedSubtract(Arithmetic):
    def Subtract(self, request, context):
        return pb2.SubtractReply(result=request.b - request.a)


class AbsoluteSubtract(Arithmetic):
    def Subtract(self, request, context):
        return pb2.SubtractReply(result=abs(request.a - request.b))


class NoMultiply(Arithmetic):
    Multiply = pb2_grpc.CalculatorServicer.Multiply


# ---- 3.2 ---------------------------------------------------------------------------------

class SafeDivide(Arithmetic):
    def Divide(self, request, context):
        if request.b == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot divide by zero")
        return pb2.DivideReply(result=request.a / request.b)


class TryExceptDivide(Arithmetic):
    """Correct too: catch the ZeroDivisionError and answer INVALID_ARGUMENT."""

    def Divide(self, request, context):
        try:
            result = request.a / request.b
        except ZeroDivisionError:
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details("b must not be 0")
            return pb2.DivideReply()
        return pb2.DivideReply(result=result)


class SeedDivide(Arithmetic):
    def Divide(self, request, context):
        return pb2.DivideReply(result=request.a / request.b)


class WrongCodeDivide(Arithmetic):
    def Divide(self, request, context):
        if request.b == 0:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "cannot divide by zero")
        return pb2.DivideReply(result=request.a / request.b)


class FloorDivide(SafeDivide):
    def Divide(self, request, context):
        if request.b == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot divide by zero")
        return pb2.DivideReply(result=request.a // request.b)


class ZeroForZero(Arithmetic):
    def Divide(self, request, context):
        return pb2.DivideReply(result=request.a / request.b if request.b else 0)


class SilentAbort(Arithmetic):
    def Divide(self, request, context):
        if request.b == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "")
        return pb2.DivideReply(result=request.a / request.b)


# ---- 3.3 ---------------------------------------------------------------------------------

def checked(code: grpc.StatusCode, low: int = INT32_MIN, high: int = INT32_MAX,
            methods: tuple[str, ...] = ("Add", "Subtract", "Multiply")) -> type:
    """A calculator whose overflow check answers `code` outside [low, high] for `methods`."""

    def fits(value, context, operation):
        if operation in methods and not low <= value <= high:
            context.abort(code, f"{operation} result {value} does not fit in int32")
        return value

    class Checked(SafeDivide):
        def Add(self, request, context):
            return pb2.AddReply(result=fits(request.a + request.b, context, "Add"))

        def Subtract(self, request, context):
            return pb2.SubtractReply(result=fits(request.a - request.b, context, "Subtract"))

        def Multiply(self, request, context):
            return pb2.MultiplyReply(result=fits(request.a * request.b, context, "Multiply"))

    return Checked


def wrap(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


class Wrapping(SafeDivide):
    def Add(self, request, context):
        return pb2.AddReply(result=wrap(request.a + request.b))

    def Subtract(self, request, context):
        return pb2.SubtractReply(result=wrap(request.a - request.b))

    def Multiply(self, request, context):
        return pb2.MultiplyReply(result=wrap(request.a * request.b))


class Saturating(SafeDivide):
    def Add(self, request, context):
        return pb2.AddReply(result=max(INT32_MIN, min(INT32_MAX, request.a + request.b)))

    def Subtract(self, request, context):
        return pb2.SubtractReply(result=max(INT32_MIN, min(INT32_MAX, request.a - request.b)))

    def Multiply(self, request, context):
        return pb2.MultiplyReply(result=max(INT32_MIN, min(INT32_MAX, request.a * request.b)))


class AbsLimit(SafeDivide):
    """abs(value) > INT32_MAX refuses INT32_MIN itself."""

    def Multiply(self, request, context):
        value = request.a * request.b
        if abs(value) > INT32_MAX:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Multiply overflows")
        return pb2.MultiplyReply(result=value)

    Add = checked(grpc.StatusCode.INVALID_ARGUMENT).Add
    Subtract = checked(grpc.StatusCode.INVALID_ARGUMENT).Subtract


class NonPositiveDivide(SafeDivide):
    def Divide(self, request, context):
        if request.b <= 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the divisor must be positive")
        return pb2.DivideReply(result=request.a / request.b)


class Anonymous(SafeDivide):
    """Refuses overflow with INVALID_ARGUMENT, but the message says nothing useful."""

    def Add(self, request, context):
        value = request.a + request.b
        if not INT32_MIN <= value <= INT32_MAX:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "overflow")
        return pb2.AddReply(result=value)

    Subtract = checked(grpc.StatusCode.INVALID_ARGUMENT).Subtract
    Multiply = checked(grpc.StatusCode.INVALID_ARGUMENT).Multiply


# ---- 3.4 ---------------------------------------------------------------------------------

def describe_divide(stub, a, b, timeout=1.0) -> str:
    try:
        reply = stub.Divide(pb2.DivideRequest(a=a, b=b), timeout=timeout)
    except grpc.RpcError as error:
        return f"error {error.code().name}: {error.details()}"
    return f"{a} / {b} = {reply.result}"


def describe_with_future(stub, a, b, timeout=1.0) -> str:
    """Correct too: a future, the code's name taken from str() of the code."""
    call = stub.Divide.future(pb2.DivideRequest(a=a, b=b), timeout=timeout)
    try:
        return f"{a} / {b} = {call.result().result}"
    except grpc.RpcError:
        return f"error {str(call.code()).split('.')[-1]}: {call.details()}"


def always_invalid_argument(stub, a, b, timeout=1.0) -> str:
    try:
        return f"{a} / {b} = {stub.Divide(pb2.DivideRequest(a=a, b=b), timeout=timeout).result}"
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"error DEADLINE_EXCEEDED: {error.details()}"
        return f"error INVALID_ARGUMENT: {error.details()}"


def reraises_unexpected(stub, a, b, timeout=1.0) -> str:
    try:
        return f"{a} / {b} = {stub.Divide(pb2.DivideRequest(a=a, b=b), timeout=timeout).result}"
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED):
            return f"error {error.code().name}: {error.details()}"
        raise


def str_of_code(stub, a, b, timeout=1.0) -> str:
    try:
        return f"{a} / {b} = {stub.Divide(pb2.DivideRequest(a=a, b=b), timeout=timeout).result}"
    except grpc.RpcError as error:
        return f"error {error.code()}: {error.details()}"


def rounded(stub, a, b, timeout=1.0) -> str:
    reply = describe_divide(stub, a, b, timeout)
    if reply.startswith("error"):
        return reply
    return f"{a} / {b} = {round(stub.Divide(pb2.DivideRequest(a=a, b=b), timeout=timeout).result)}"


def hard_coded_timeout(stub, a, b, timeout=1.0) -> str:
    return describe_divide(stub, a, b, timeout=4)


def no_timeout(stub, a, b, timeout=1.0) -> str:
    try:
        return f"{a} / {b} = {stub.Divide(pb2.DivideRequest(a=a, b=b)).result}"
    except grpc.RpcError as error:
        return f"error {error.code().name}: {error.details()}"


def str_of_error(stub, a, b, timeout=1.0) -> str:
    try:
        return f"{a} / {b} = {stub.Divide(pb2.DivideRequest(a=a, b=b), timeout=timeout).result}"
    except grpc.RpcError as error:
        return str(error)


def code_only(stub, a, b, timeout=1.0) -> str:
    try:
        return f"{a} / {b} = {stub.Divide(pb2.DivideRequest(a=a, b=b), timeout=timeout).result}"
    except grpc.RpcError as error:
        return f"error {error.code().name}"


def computed_locally(stub, a, b, timeout=1.0) -> str:
    if b == 0:
        return "error INVALID_ARGUMENT: cannot divide by zero"
    return f"{a} / {b} = {a / b}"


# ---- 3.5 ---------------------------------------------------------------------------------

def add_with_request_id(stub, a, b, request_id):
    try:
        reply, call = stub.Add.with_call(pb2.AddRequest(a=a, b=b), timeout=2,
                                         metadata=[("x-request-id", request_id)])
    except grpc.RpcError as error:
        return None, dict(error.trailing_metadata())
    return reply.result, dict(call.trailing_metadata())


def add_with_future(stub, a, b, request_id):
    """Correct too: a future has the trailing metadata as well; a tuple of pairs made a dict."""
    call = stub.Add.future(pb2.AddRequest(a=a, b=b), metadata=(("x-request-id", request_id),),
                           timeout=2)
    result = None if call.exception() else call.result().result
    return result, {key: value for key, value in call.trailing_metadata()}


_KEPT: dict = {}


def shared_dict(stub, a, b, request_id):
    result, trailing = add_with_request_id(stub, a, b, request_id)
    _KEPT.clear()
    _KEPT.update(trailing)
    return result, _KEPT


def no_deadline(stub, a, b, request_id):
    try:
        reply, call = stub.Add.with_call(pb2.AddRequest(a=a, b=b),
                                         metadata=[("x-request-id", request_id)])
    except grpc.RpcError as error:
        return None, dict(error.trailing_metadata())
    return reply.result, dict(call.trailing_metadata())


def impatient(stub, a, b, request_id):
    """A deadline far under the 2 s allowed: a busy server's answer never arrives."""
    try:
        reply, call = stub.Add.with_call(pb2.AddRequest(a=a, b=b), timeout=0.1,
                                         metadata=[("x-request-id", request_id)])
    except grpc.RpcError as error:
        return None, dict(error.trailing_metadata())
    return reply.result, dict(call.trailing_metadata())


def raises_on_failure(stub, a, b, request_id):
    reply, call = stub.Add.with_call(pb2.AddRequest(a=a, b=b), timeout=5,
                                     metadata=[("x-request-id", request_id)])
    return reply.result, dict(call.trailing_metadata())


def echoes_its_argument(stub, a, b, request_id):
    reply = stub.Add(pb2.AddRequest(a=a, b=b), timeout=5, metadata=[("x-request-id", request_id)])
    return reply.result, {"x-request-id": request_id}


def sends_nothing(stub, a, b, request_id):
    reply, call = stub.Add.with_call(pb2.AddRequest(a=a, b=b), timeout=5)
    return reply.result, dict(call.trailing_metadata())


def initial_metadata(stub, a, b, request_id):
    reply, call = stub.Add.with_call(pb2.AddRequest(a=a, b=b), timeout=5,
                                     metadata=[("x-request-id", request_id)])
    return reply.result, dict(call.initial_metadata())


def metadatum_tuples(stub, a, b, request_id):
    reply, call = stub.Add.with_call(pb2.AddRequest(a=a, b=b), timeout=5,
                                     metadata=[("x-request-id", request_id)])
    return reply.result, call.trailing_metadata()


WRONG_ANSWERS = [
    WrongAnswer("3.1", "Add subtracts", (WrongAdd,), says="Add(2, 3): the reference gives 5, yours gives -1"),
    WrongAnswer("3.1", "Subtract computes b - a", (ReversedSubtract,),
                says="Subtract(2, 3): the reference gives -1, yours gives 1"),
    WrongAnswer("3.1", "Subtract gives the distance abs(a - b)", (AbsoluteSubtract,),
                says="Subtract(2, 3): the reference gives -1, yours gives 1"),
    WrongAnswer("3.1", "Multiply left unimplemented", (NoMultiply,), says="UNIMPLEMENTED"),
    WrongAnswer("3.2", "the seed's Divide: a zero divisor crashes as UNKNOWN", (SeedDivide,),
                says="Divide(5, 0) ended with UNKNOWN"),
    WrongAnswer("3.2", "FAILED_PRECONDITION for a zero divisor", (WrongCodeDivide,),
                says="ended with FAILED_PRECONDITION (cannot divide by zero), expected "
                "INVALID_ARGUMENT"),
    WrongAnswer("3.2", "integer division", (FloorDivide,), says="Divide(7, 2): the reference gives 3.5, yours gives 3.0"),
    WrongAnswer("3.2", "answers 0 for a zero divisor", (ZeroForZero,),
                says="Divide(5, 0) succeeded, expected it to fail with INVALID_ARGUMENT"),
    WrongAnswer("3.2", "aborts without a message", (SilentAbort,), says="but no message"),
    WrongAnswer("3.2", "refuses every divisor <= 0", (NonPositiveDivide,),
                says="Divide(7, -2): the reference gives -3.5, yours gives status INVALID_ARGUMENT"),
    WrongAnswer("3.3", "OUT_OF_RANGE for an overflow", (checked(grpc.StatusCode.OUT_OF_RANGE),),
                says="Add(INT32_MAX, 1) ended with OUT_OF_RANGE; gRPC's status-code guide"),
    WrongAnswer("3.3", "wraps around like C", (Wrapping,),
                says="Add(INT32_MAX, 1) succeeded with -2147483648, a wrong answer"),
    WrongAnswer("3.3", "clamps to the limits", (Saturating,),
                says="Add(INT32_MAX, 1) succeeded with 2147483647"),
    WrongAnswer("3.3", "off by one: refuses INT32_MAX itself",
                (checked(grpc.StatusCode.INVALID_ARGUMENT, INT32_MIN + 1, INT32_MAX - 1),),
                says="Add(INT32_MAX - 1, 1), which still fits,"),
    WrongAnswer("3.3", "checks Multiply only",
                (checked(grpc.StatusCode.INVALID_ARGUMENT, methods=("Multiply",)),),
                says="Add(INT32_MAX, 1) ended with UNKNOWN"),
    WrongAnswer("3.3", "checks the upper limit only", (checked(grpc.StatusCode.INVALID_ARGUMENT,
                low=-(2**64)),), says="Add(INT32_MIN, -1) ended with UNKNOWN"),
    WrongAnswer("3.3", "a message that does not name the operation", (Anonymous,),
                says="does not say which operation overflowed (Add)"),
    WrongAnswer("3.3", "abs(value) > INT32_MAX refuses INT32_MIN", (AbsLimit,),
                says="Multiply(-65536, 32768), which is exactly INT32_MIN,"),
    WrongAnswer("3.4", "hard-codes timeout=4", (hard_coded_timeout,),
                says="expected about 0.5 s: pass the `timeout` argument"),
    WrongAnswer("3.4", "no timeout: hangs on a stuck server", (no_timeout,),
                says="still waiting after 5 s"),
    WrongAnswer("3.4", "returns str(error), a multi-line debug dump", (str_of_error,),
                says="return one line"),
    WrongAnswer("3.4", "rounds the result", (rounded,),
                says="describe_divide(stub, 7, 2): the reference gives '7 / 2 = 3.5', yours gives '7 / 2 = 4'"),
    WrongAnswer("3.4", "the code without the server's message", (code_only,),
                says="the reference gives 'error INVALID_ARGUMENT: cannot divide by zero"),
    WrongAnswer("3.4", "every error reported as INVALID_ARGUMENT", (always_invalid_argument,),
                says="the reference gives 'error PERMISSION_DENIED: 11 is not allowed"),
    WrongAnswer("3.4", "re-raises codes it did not expect", (reraises_unexpected,),
                says="raised the call's error (PERMISSION_DENIED"),
    WrongAnswer("3.4", "str() of the code: StatusCode.INVALID_ARGUMENT", (str_of_code,),
                says="yours gives 'error StatusCode.INVALID_ARGUMENT"),
    WrongAnswer("3.4", "divides locally, never calls the server", (computed_locally,),
                says="without calling Divide on the server"),
    WrongAnswer("3.5", "returns the id it was given, never reads the trailers",
                (echoes_its_argument,), says="not built by hand"),
    WrongAnswer("3.5", "one dict kept across calls", (shared_dict,),
                says="return a new dict for every call"),
    WrongAnswer("3.5", "no deadline: waits for ever on a server that never answers", (no_deadline,),
                says="give every call a deadline"),
    WrongAnswer("3.5", "a deadline too short for a busy server", (impatient,),
                says="returned no result although the server answered it (after 0.3 s"),
    WrongAnswer("3.5", "raises when the call fails", (raises_on_failure,),
                says="a failed call should return (None, its trailing metadata)"),
    WrongAnswer("3.5", "forgets to send the metadata", (sends_nothing,),
                says="the server never received x-request-id 'req-1'"),
    WrongAnswer("3.5", "reads the initial metadata instead of the trailing",
                (initial_metadata,), says="but the server's trailing metadata was"),
    WrongAnswer("3.5", "returns the _Metadatum tuples, not a dict", (metadatum_tuples,),
                says="expected (result, trailing metadata as a dict)"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("3.1", Arithmetic), ("3.1", Calculator),
    ("3.2", SafeDivide), ("3.2", TryExceptDivide), ("3.2", Calculator),
    ("3.3", checked(grpc.StatusCode.INVALID_ARGUMENT)), ("3.3", Calculator),
    ("3.4", describe_divide), ("3.4", describe_with_future),
    ("3.5", add_with_request_id), ("3.5", add_with_future),
], ids=lambda value: getattr(value, "__name__", value))
def test_correct_answers_pass(exercise_id, answer, capsys) -> None:
    passes(capsys, exercise_id, answer)


def test_the_reference_calculator_refuses_overflow_with_invalid_argument() -> None:
    from helpers.servers import serve

    with serve(pb2_grpc.add_CalculatorServicer_to_server, Calculator(), name="test-03-ref") as s:
        with grpc.insecure_channel(s.target) as channel:
            stub = pb2_grpc.CalculatorStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Multiply(pb2.MultiplyRequest(a=65536, b=65536), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not fit in int32" in caught.value.details()



# ---- 3.6 ---------------------------------------------------------------------------------

def add_traced(target: str, a: int, b: int, request_id: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = pb2_grpc.CalculatorStub(channel)
        return stub.Add(pb2.AddRequest(a=a, b=b), timeout=2,
                        metadata=[("x-request-id", request_id)]).result


def add_traced_with_call(target: str, a: int, b: int, request_id: str) -> int:
    """Correct too: with_call, a shorter deadline, a second metadata entry."""
    with grpc.insecure_channel(target) as channel:
        reply, _ = pb2_grpc.CalculatorStub(channel).Add.with_call(
            pb2.AddRequest(a=a, b=b), timeout=1.5,
            metadata=(("x-request-id", request_id), ("x-client", "course")))
        return reply.result


def add_traced_future(target: str, a: int, b: int, request_id: str) -> int:
    """Correct too: a future, its deadline set on the call."""
    channel = grpc.insecure_channel(target)
    try:
        future = pb2_grpc.CalculatorStub(channel).Add.future(
            pb2.AddRequest(a=a, b=b), timeout=2, metadata=[("x-request-id", request_id)])
        return future.result().result
    finally:
        channel.close()


def traced_without_deadline(target, a, b, request_id):
    with grpc.insecure_channel(target) as channel:
        return pb2_grpc.CalculatorStub(channel).Add(
            pb2.AddRequest(a=a, b=b), metadata=[("x-request-id", request_id)]).result


def traced_long_deadline(target, a, b, request_id):
    with grpc.insecure_channel(target) as channel:
        return pb2_grpc.CalculatorStub(channel).Add(
            pb2.AddRequest(a=a, b=b), timeout=10, metadata=[("x-request-id", request_id)]).result


def traced_impatient(target, a, b, request_id):
    with grpc.insecure_channel(target) as channel:
        return pb2_grpc.CalculatorStub(channel).Add(
            pb2.AddRequest(a=a, b=b), timeout=0.1, metadata=[("x-request-id", request_id)]).result


def traced_wrong_key(target, a, b, request_id):
    with grpc.insecure_channel(target) as channel:
        return pb2_grpc.CalculatorStub(channel).Add(
            pb2.AddRequest(a=a, b=b), timeout=2, metadata=[("request-id", request_id)]).result


def traced_hard_coded_id(target, a, b, request_id):
    with grpc.insecure_channel(target) as channel:
        return pb2_grpc.CalculatorStub(channel).Add(
            pb2.AddRequest(a=a, b=b), timeout=2, metadata=[("x-request-id", "req-1")]).result


def traced_locally(target, a, b, request_id):
    return a + b


def traced_deadline_in_metadata(target, a, b, request_id):
    """A 'timeout' header of one's own is not a deadline: nothing enforces it."""
    with grpc.insecure_channel(target) as channel:
        return pb2_grpc.CalculatorStub(channel).Add(
            pb2.AddRequest(a=a, b=b),
            metadata=[("x-request-id", request_id), ("timeout", "2")]).result


def traced_swallows_errors(target, a, b, request_id):
    with grpc.insecure_channel(target) as channel:
        try:
            return pb2_grpc.CalculatorStub(channel).Add(
                pb2.AddRequest(a=a, b=b), timeout=2,
                metadata=[("x-request-id", request_id)]).result
        except grpc.RpcError:
            return None


WRONG_ANSWERS += [  # collected with the list above: pytest reads it after the import
    WrongAnswer("3.6", "no deadline", (traced_without_deadline,), says="have no grpc-timeout"),
    WrongAnswer("3.6", "a deadline longer than asked", (traced_long_deadline,),
                says="at most 2 s was asked"),
    WrongAnswer("3.6", "a deadline too short for a busy calculator", (traced_impatient,),
                says="the check's calculator answers after 0.3 s"),
    WrongAnswer("3.6", "the metadata under another key", (traced_wrong_key,),
                says="have no x-request-id"),
    WrongAnswer("3.6", "a hard-coded request id", (traced_hard_coded_id,),
                says="send the id you are given"),
    WrongAnswer("3.6", "computes the sum locally", (traced_locally,), says="the tap saw no Add call"),
    WrongAnswer("3.6", "a deadline of its own in the metadata", (traced_deadline_in_metadata,),
                says="have no grpc-timeout"),
    WrongAnswer("3.6", "swallows the error", (traced_swallows_errors,),
                says="let the call's grpc.RpcError (DEADLINE_EXCEEDED) reach the caller"),
]


@pytest.mark.parametrize("answer", [add_traced, add_traced_with_call, add_traced_future],
                         ids=lambda answer: answer.__name__)
def test_correct_3_6_answers_pass(answer, capsys) -> None:
    passes(capsys, "3.6", answer)


# ---- 3.7 ---------------------------------------------------------------------------------


def _ask(target, operation, a, b, request_id, seconds, **options):
    """One call of `operation` to the calculator at `target`; its result."""
    with grpc.insecure_channel(target) as channel:
        rpc = getattr(pb2_grpc.CalculatorStub(channel), operation)
        request = getattr(pb2, f"{operation}Request")(a=a, b=b)
        return rpc(request, timeout=seconds, metadata=[("x-request-id", request_id)],
                   **options).result


def calculate(primary, spare, operation, a, b, request_id, timeout):
    deadline = time.monotonic() + timeout
    try:
        return _ask(primary, operation, a, b, request_id, timeout / 2)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise
    return _ask(spare, operation, a, b, request_id, deadline - time.monotonic())


def calculate_halves(primary, spare, operation, a, b, request_id, timeout):
    """Correct too: each calculator gets half of the budget, whatever the primary used."""
    try:
        return _ask(primary, operation, a, b, request_id, timeout / 2)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise
    return _ask(spare, operation, a, b, request_id, timeout / 2)


def calculate_in_a_loop(primary, spare, operation, a, b, request_id, timeout):
    """Correct too: a loop over (target, share of what is left), with_call, a tuple of metadata."""
    deadline = time.monotonic() + timeout
    for target, share in ((primary, 0.5), (spare, 1.0)):
        with grpc.insecure_channel(target) as channel:
            method = getattr(pb2_grpc.CalculatorStub(channel), operation)
            try:
                reply, _call = method.with_call(
                    getattr(pb2, operation + "Request")(a=a, b=b),
                    timeout=share * (deadline - time.monotonic()),
                    metadata=(("x-request-id", request_id),))
                return reply.result
            except grpc.RpcError as error:
                if target == spare or error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    raise


def no_failover(primary, spare, operation, a, b, request_id, timeout):
    return _ask(primary, operation, a, b, request_id, timeout)


def spare_for_everything(primary, spare, operation, a, b, request_id, timeout):
    deadline = time.monotonic() + timeout
    try:
        return _ask(primary, operation, a, b, request_id, timeout / 2)
    except grpc.RpcError:
        return _ask(spare, operation, a, b, request_id, deadline - time.monotonic())


def spare_only_when_unavailable(primary, spare, operation, a, b, request_id, timeout):
    deadline = time.monotonic() + timeout
    try:
        return _ask(primary, operation, a, b, request_id, timeout / 2)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
    return _ask(spare, operation, a, b, request_id, deadline - time.monotonic())


def full_timeout_each(primary, spare, operation, a, b, request_id, timeout):
    try:
        return _ask(primary, operation, a, b, request_id, timeout)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise
    return _ask(spare, operation, a, b, request_id, timeout)


def primary_takes_the_budget(primary, spare, operation, a, b, request_id, timeout):
    deadline = time.monotonic() + timeout
    try:
        return _ask(primary, operation, a, b, request_id, timeout)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise
    return _ask(spare, operation, a, b, request_id, max(deadline - time.monotonic(), 0.01))


def impatient_with_the_primary(primary, spare, operation, a, b, request_id, timeout):
    deadline = time.monotonic() + timeout
    try:
        return _ask(primary, operation, a, b, request_id, min(timeout / 2, 0.5))
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise
    return _ask(spare, operation, a, b, request_id, deadline - time.monotonic())


def id_for_the_primary_only(primary, spare, operation, a, b, request_id, timeout):
    deadline = time.monotonic() + timeout
    try:
        return _ask(primary, operation, a, b, request_id, timeout / 2)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise
    with grpc.insecure_channel(spare) as channel:
        rpc = getattr(pb2_grpc.CalculatorStub(channel), operation)
        request = getattr(pb2, f"{operation}Request")(a=a, b=b)
        return rpc(request, timeout=deadline - time.monotonic()).result


def value_error_for_bad_input(primary, spare, operation, a, b, request_id, timeout):
    try:
        return calculate(primary, spare, operation, a, b, request_id, timeout)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise ValueError(error.details()) from None
        raise


def none_for_bad_input(primary, spare, operation, a, b, request_id, timeout):
    try:
        return calculate(primary, spare, operation, a, b, request_id, timeout)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return None
        raise


def primary_error_when_both_fail(primary, spare, operation, a, b, request_id, timeout):
    deadline = time.monotonic() + timeout
    try:
        return _ask(primary, operation, a, b, request_id, timeout / 2)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise
        try:
            return _ask(spare, operation, a, b, request_id, deadline - time.monotonic())
        except grpc.RpcError:
            raise error from None


def spare_first(primary, spare, operation, a, b, request_id, timeout):
    return calculate(spare, primary, operation, a, b, request_id, timeout)


def local_when_both_fail(primary, spare, operation, a, b, request_id, timeout):
    try:
        return calculate(primary, spare, operation, a, b, request_id, timeout)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise
        return {"Add": a + b, "Subtract": a - b, "Multiply": a * b, "Divide": a / b}[operation]


def no_deadline_for_the_spare(primary, spare, operation, a, b, request_id, timeout):
    try:
        return _ask(primary, operation, a, b, request_id, timeout / 2)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise
    return _ask(spare, operation, a, b, request_id, None)


WRONG_ANSWERS += [
    WrongAnswer("3.7", "never asks the spare", (no_failover,),
                says="with the primary down, the spare was never asked"),
    WrongAnswer("3.7", "sends a wrong request to the spare too", (spare_for_everything,),
                says="reached the spare after the primary refused it with INVALID_ARGUMENT"),
    WrongAnswer("3.7", "fails over on UNAVAILABLE only", (spare_only_when_unavailable,),
                says="with a primary that crashes (UNKNOWN): raised UNKNOWN"),
    WrongAnswer("3.7", "a full timeout for each call", (full_timeout_each,),
                says="past the end of the budget"),
    WrongAnswer("3.7", "the primary gets the whole budget", (primary_takes_the_budget,),
                says="The primary used the whole budget, and the spare had no time left"),
    WrongAnswer("3.7", "gives up on a slow primary", (impatient_with_the_primary,),
                says="A primary that answers within half of timeout is never given up on"),
    WrongAnswer("3.7", "the request id on the primary's call only", (id_for_the_primary_only,),
                says="the spare received x-request-id None"),
    WrongAnswer("3.7", "a wrong request becomes a ValueError", (value_error_for_bad_input,),
                says="the reference gives status INVALID_ARGUMENT, yours gives an exception "
                "(ValueError)"),
    WrongAnswer("3.7", "a wrong request returns None", (none_for_bad_input,),
                says="the reference gives status INVALID_ARGUMENT, yours gives None"),
    WrongAnswer("3.7", "the primary's error when both fail", (primary_error_when_both_fail,),
                says="the caller gets the spare's error"),
    WrongAnswer("3.7", "asks the spare first", (spare_first,),
                says="asked the spare, never the primary"),
    WrongAnswer("3.7", "computes the result itself when both fail", (local_when_both_fail,),
                says="returned: when the spare fails too, raise its grpc.RpcError"),
    WrongAnswer("3.7", "no deadline on the spare's call", (no_deadline_for_the_spare,),
                says="without a deadline"),
]


@pytest.mark.parametrize("answer", [calculate, calculate_halves, calculate_in_a_loop],
                         ids=lambda answer: answer.__name__)
def test_correct_3_7_answers_pass(answer, capsys) -> None:
    passes(capsys, "3.7", answer)
