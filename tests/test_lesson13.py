"""Lesson 13, testing: the checks judge tests; right tests pass, wrong tests are rejected."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import grpc_testing
import pytest
from conftest import WrongAnswer, passes, rejects
from google.protobuf import descriptor_pb2

from helpers.reference import Calculator, calculator_pb2 as pb2
from helpers.reference import calculator_pb2_grpc as pb2_grpc
from helpers.servers import serve

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED


# ---- the lesson's tools, as the notebook defines them -------------------------------------

class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self, metadata=(), timeout=None):
        self.code, self.details = grpc.StatusCode.OK, ""
        self._metadata = tuple(metadata)

    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted(code, details)

    def set_code(self, code):
        self.code = code

    def set_details(self, details):
        self.details = details

    def invocation_metadata(self):
        return self._metadata

    def set_trailing_metadata(self, metadata):
        self.trailing_metadata = tuple(metadata)


def run_unary(method, request, context=None):
    context = context or FakeContext()
    try:
        reply = method(request, context)
    except Aborted:
        return None, context.code, context.details
    except Exception as error:
        return None, grpc.StatusCode.UNKNOWN, f"Exception calling application: {error}"
    return (reply if context.code == grpc.StatusCode.OK else None), context.code, context.details


# ---- 13.1 ------------------------------------------------------------------------------------

def good_divide_test(servicer):
    reply, code, _ = run_unary(servicer.Divide, pb2.DivideRequest(a=7, b=2))
    assert code == grpc.StatusCode.OK and reply.result == 3.5
    reply, code, details = run_unary(servicer.Divide, pb2.DivideRequest(a=1, b=0))
    assert code == INVALID_ARGUMENT
    assert details


CALCULATOR = pb2.DESCRIPTOR.services_by_name["Calculator"]


def good_grpc_testing_test(servicer):
    server = grpc_testing.server_from_dictionary({CALCULATOR: servicer},
                                                 grpc_testing.strict_real_time())

    def divide(a, b):
        rpc = server.invoke_unary_unary(CALCULATOR.methods_by_name["Divide"], (),
                                        pb2.DivideRequest(a=a, b=b), 5)
        reply, _, code, details = rpc.termination()
        return reply, code, details

    reply, code, _ = divide(-9, 4)
    assert code == grpc.StatusCode.OK and reply.result == -2.25
    _, code, details = divide(3, 0)
    assert code == INVALID_ARGUMENT and details


def asserts_nothing(servicer):
    run_unary(servicer.Divide, pb2.DivideRequest(a=7, b=2))
    run_unary(servicer.Divide, pb2.DivideRequest(a=1, b=0))


def even_division_only(servicer):
    reply, code, _ = run_unary(servicer.Divide, pb2.DivideRequest(a=6, b=3))
    assert reply.result == 2
    _, code, details = run_unary(servicer.Divide, pb2.DivideRequest(a=1, b=0))
    assert code == INVALID_ARGUMENT and details


def code_without_details(servicer):
    reply, _, _ = run_unary(servicer.Divide, pb2.DivideRequest(a=7, b=2))
    assert reply.result == 3.5
    _, code, _ = run_unary(servicer.Divide, pb2.DivideRequest(a=1, b=0))
    assert code == INVALID_ARGUMENT


def expects_abort_to_raise(servicer):
    reply, _, _ = run_unary(servicer.Divide, pb2.DivideRequest(a=7, b=2))
    assert reply.result == 3.5
    context = FakeContext()
    with pytest.raises(Aborted):
        servicer.Divide(pb2.DivideRequest(a=1, b=0), context)
    assert context.code == INVALID_ARGUMENT and context.details


def over_a_real_server(servicer):
    with serve(pb2_grpc.add_CalculatorServicer_to_server, servicer, name="t13-1") as server:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb2_grpc.CalculatorStub(channel)
            assert stub.Divide(pb2.DivideRequest(a=7, b=2), timeout=5).result == 3.5
            with pytest.raises(grpc.RpcError) as caught:
                stub.Divide(pb2.DivideRequest(a=1, b=0), timeout=5)
            assert caught.value.code() == INVALID_ARGUMENT and caught.value.details()


def only_the_zero_case(servicer):
    _, code, details = run_unary(servicer.Divide, pb2.DivideRequest(a=1, b=0))
    assert code == INVALID_ARGUMENT and details


# ---- 13.2 ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def calculator_server(servicer):
    server = serve(pb2_grpc.add_CalculatorServicer_to_server, servicer, name="t13-2")
    yield server
    server.stop(None)


@pytest.fixture
def calculator(calculator_server):
    with grpc.insecure_channel(calculator_server.target) as channel:
        yield pb2_grpc.CalculatorStub(channel)


@pytest.fixture(scope="module")
def server_with_finally(servicer):
    """Correct too: try/finally around the yield, grpc.server by hand on 127.0.0.1:0."""
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_CalculatorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@pytest.fixture
def stub_from_target(server_with_finally):
    channel = grpc.insecure_channel(server_with_finally)
    yield pb2_grpc.CalculatorStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def never_stopped(servicer):
    return serve(pb2_grpc.add_CalculatorServicer_to_server, servicer, name="t13-2-leak")


@pytest.fixture
def stub_of_never_stopped(never_stopped):
    with grpc.insecure_channel(never_stopped.target) as channel:
        yield pb2_grpc.CalculatorStub(channel)


@pytest.fixture
def server_per_test(servicer):
    with serve(pb2_grpc.add_CalculatorServicer_to_server, servicer, name="t13-2-each") as server:
        yield server


@pytest.fixture
def stub_per_test_server(server_per_test):
    with grpc.insecure_channel(server_per_test.target) as channel:
        yield pb2_grpc.CalculatorStub(channel)


@pytest.fixture(scope="module")
def stub_shared(calculator_server):
    with grpc.insecure_channel(calculator_server.target) as channel:
        yield pb2_grpc.CalculatorStub(channel)


@pytest.fixture
def stub_never_closed(calculator_server):
    return pb2_grpc.CalculatorStub(grpc.insecure_channel(calculator_server.target))


@pytest.fixture(scope="module")
def own_calculator():
    with serve(pb2_grpc.add_CalculatorServicer_to_server, Calculator(), name="t13-2-own") as s:
        yield s


@pytest.fixture
def stub_of_own(own_calculator):
    with grpc.insecure_channel(own_calculator.target) as channel:
        yield pb2_grpc.CalculatorStub(channel)


@pytest.fixture(scope="module")
def teardown_before_yield(servicer):
    with serve(pb2_grpc.add_CalculatorServicer_to_server, servicer, name="t13-2-early") as s:
        pass
    yield s


@pytest.fixture
def stub_of_stopped(teardown_before_yield):
    with grpc.insecure_channel(teardown_before_yield.target) as channel:
        yield pb2_grpc.CalculatorStub(channel)


# ---- 13.3 ------------------------------------------------------------------------------------

class ScriptedCalculator(pb2_grpc.CalculatorServicer):
    """Add answers from a script: a status code to fail with, or OK; counts calls."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def Add(self, request, context):
        self.calls += 1
        code = self.script.pop(0) if self.script else grpc.StatusCode.OK
        if code != grpc.StatusCode.OK:
            context.abort(code, f"scripted {code.name}")
        return pb2.AddReply(result=request.a + request.b)


def scripted(script):
    fake = ScriptedCalculator(script)
    return fake, serve(pb2_grpc.add_CalculatorServicer_to_server, fake, name="t13-3")


def good_retry_test(client):
    fake, server = scripted([UNAVAILABLE, UNAVAILABLE])
    with server, grpc.insecure_channel(server.target) as channel:
        assert client(pb2_grpc.CalculatorStub(channel), 2, 3) == 5
        assert fake.calls == 3
    fake, server = scripted([UNAVAILABLE] * 3)
    with server, grpc.insecure_channel(server.target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            client(pb2_grpc.CalculatorStub(channel), 2, 3)
        assert caught.value.code() == UNAVAILABLE and fake.calls == 3
    fake, server = scripted([INVALID_ARGUMENT])
    with server, grpc.insecure_channel(server.target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            client(pb2_grpc.CalculatorStub(channel), 2, 3)
        assert caught.value.code() == INVALID_ARGUMENT and fake.calls == 1


class FakeRpcError(grpc.RpcError, grpc.Call):
    def __init__(self, code, details=""):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class FakeStub:
    """A stub whose Add answers from a list: an exception to raise, or a reply."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), 0

        class Add:
            def __call__(inner, request, timeout=None, **kwargs):
                self.calls += 1
                answer = self.answers.pop(0) if self.answers else pb2.AddReply(
                    result=request.a + request.b)
                if isinstance(answer, Exception):
                    raise answer
                return answer

        self.Add = Add()


def good_fake_stub_test(client):
    """Correct too: no server at all, realistic RpcErrors raised by a fake stub."""
    stub = FakeStub(FakeRpcError(UNAVAILABLE), FakeRpcError(UNAVAILABLE))
    assert client(stub, 2, 3) == 5 and stub.calls == 3
    stub = FakeStub(*[FakeRpcError(UNAVAILABLE)] * 3)
    with pytest.raises(grpc.RpcError):
        client(stub, 2, 3)
    assert stub.calls == 3
    stub = FakeStub(FakeRpcError(INVALID_ARGUMENT, "no"))
    with pytest.raises(grpc.RpcError) as caught:
        client(stub, 2, 3)
    assert caught.value.code() == INVALID_ARGUMENT and stub.calls == 1


def fake_never_fails(client):
    fake, server = scripted([])
    with server, grpc.insecure_channel(server.target) as channel:
        assert client(pb2_grpc.CalculatorStub(channel), 2, 3) == 5


def only_the_happy_retry(client):
    fake, server = scripted([UNAVAILABLE, UNAVAILABLE])
    with server, grpc.insecure_channel(server.target) as channel:
        assert client(pb2_grpc.CalculatorStub(channel), 2, 3) == 5


def no_call_count(client):
    stub = FakeStub(FakeRpcError(UNAVAILABLE))
    assert client(stub, 2, 3) == 5
    stub = FakeStub(FakeRpcError(INVALID_ARGUMENT))
    with pytest.raises(grpc.RpcError):
        client(stub, 2, 3)
    stub = FakeStub(*[FakeRpcError(UNAVAILABLE)] * 5)
    with pytest.raises(grpc.RpcError):
        client(stub, 2, 3)


def leaks_its_server(client):
    fake = ScriptedCalculator([UNAVAILABLE, UNAVAILABLE])
    server = serve(pb2_grpc.add_CalculatorServicer_to_server, fake, name="t13-3-leak")
    channel = grpc.insecure_channel(server.target)
    assert client(pb2_grpc.CalculatorStub(channel), 2, 3) == 5 and fake.calls == 3
    stub = FakeStub(*[FakeRpcError(UNAVAILABLE)] * 3)
    with pytest.raises(grpc.RpcError):
        client(stub, 2, 3)
    assert stub.calls == 3
    stub = FakeStub(FakeRpcError(INVALID_ARGUMENT))
    with pytest.raises(grpc.RpcError):
        client(stub, 2, 3)
    assert stub.calls == 1
    server.stop(None) if fake.calls > 3 else None  # only stopped when something went wrong


def plain_exception_fake(client):
    """Raises ValueError instead of an RpcError: a correct client lets it through."""
    stub = FakeStub(ValueError("UNAVAILABLE"), ValueError("UNAVAILABLE"))
    assert client(stub, 2, 3) == 5


def retried_result_unchecked(client):
    """Counts the calls of the retry that ends well, but never looks at what came back."""
    fake, server = scripted([UNAVAILABLE, UNAVAILABLE])
    with server, grpc.insecure_channel(server.target) as channel:
        client(pb2_grpc.CalculatorStub(channel), 2, 3)
        assert fake.calls == 3
    fake, server = scripted([UNAVAILABLE] * 3)
    with server, grpc.insecure_channel(server.target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            client(pb2_grpc.CalculatorStub(channel), 2, 3)
        assert caught.value.code() == UNAVAILABLE and fake.calls == 3
    fake, server = scripted([INVALID_ARGUMENT])
    with server, grpc.insecure_channel(server.target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            client(pb2_grpc.CalculatorStub(channel), 2, 3)
        assert caught.value.code() == INVALID_ARGUMENT and fake.calls == 1


# ---- 13.4 ------------------------------------------------------------------------------------

class StuckCalculator(pb2_grpc.CalculatorServicer):
    """Add waits (bounded) until the call ends; records the deadline it got."""

    def __init__(self, fail_with=None):
        self.deadlines, self.ended, self.fail_with = [], threading.Event(), fail_with

    def Add(self, request, context):
        self.deadlines.append(context.time_remaining())
        if self.fail_with:
            context.abort(self.fail_with, "scripted")
        context.add_callback(self.ended.set)
        self.ended.wait(2)
        return pb2.AddReply(result=request.a + request.b)


class PromptCalculator(StuckCalculator):
    def Add(self, request, context):
        self.deadlines.append(context.time_remaining())
        return pb2.AddReply(result=request.a + request.b)


def with_stub(servicer, body):
    with serve(pb2_grpc.add_CalculatorServicer_to_server, servicer, name="t13-4") as server:
        with grpc.insecure_channel(server.target) as channel:
            return body(pb2_grpc.CalculatorStub(channel))


def good_deadline_test(client):
    prompt = PromptCalculator()
    assert with_stub(prompt, lambda stub: client(stub, 2, 3, 5.0)) == 5
    stuck = StuckCalculator()
    assert with_stub(stuck, lambda stub: client(stub, 2, 3, 0.2)) is None
    assert stuck.deadlines and stuck.deadlines[0] <= 0.21  # rounded up a little on the way
    assert stuck.ended.wait(2), "the server never saw the call end"
    failing = StuckCalculator(fail_with=UNAVAILABLE)
    with pytest.raises(grpc.RpcError):
        with_stub(failing, lambda stub: client(stub, 2, 3, 5.0))


def good_server_side_deadline_test(client):
    """Correct too: the stuck case asserts the deadline the server saw, within a margin."""
    stuck = StuckCalculator()
    assert with_stub(stuck, lambda stub: client(stub, 1, 1, 0.08)) is None
    assert stuck.deadlines[0] == pytest.approx(0.08, abs=0.02)
    assert with_stub(PromptCalculator(), lambda stub: client(stub, 1, 1, 5.0)) == 2
    with pytest.raises(grpc.RpcError) as caught:
        with_stub(StuckCalculator(fail_with=INVALID_ARGUMENT), lambda stub: client(stub, 1, 1, 5))
    assert caught.value.code() == INVALID_ARGUMENT


def result_only(client):
    assert with_stub(StuckCalculator(), lambda stub: client(stub, 2, 3, 0.2)) is None
    assert with_stub(PromptCalculator(), lambda stub: client(stub, 2, 3, 5.0)) == 5
    with pytest.raises(grpc.RpcError):
        with_stub(StuckCalculator(fail_with=UNAVAILABLE), lambda stub: client(stub, 2, 3, 5.0))


def wall_clock(client):
    stuck = StuckCalculator()

    def timed(stub):
        start = time.perf_counter()
        result = client(stub, 2, 3, 0.2)
        assert time.perf_counter() - start < 0.25
        return result

    assert with_stub(stuck, timed) is None
    assert stuck.deadlines[0] <= 0.21
    assert with_stub(PromptCalculator(), lambda stub: client(stub, 2, 3, 5.0)) == 5
    with pytest.raises(grpc.RpcError):
        with_stub(StuckCalculator(fail_with=UNAVAILABLE), lambda stub: client(stub, 2, 3, 5.0))


class SleepyCalculator(PromptCalculator):
    """Answers after 30 ms of sleep: "in time" for a 50 ms deadline, on a quiet machine."""

    def Add(self, request, context):
        time.sleep(0.03)
        return super().Add(request, context)


def sleepy_prompt_case(client):
    stuck = StuckCalculator()
    assert with_stub(stuck, lambda stub: client(stub, 2, 3, 0.2)) is None
    assert stuck.deadlines[0] <= 0.21 and stuck.ended.wait(2)
    assert with_stub(SleepyCalculator(), lambda stub: client(stub, 2, 3, 0.2)) == 5
    with pytest.raises(grpc.RpcError):
        with_stub(StuckCalculator(fail_with=UNAVAILABLE), lambda stub: client(stub, 2, 3, 5.0))


class VeryStuckCalculator(StuckCalculator):
    def Add(self, request, context):
        self.deadlines.append(context.time_remaining())
        context.add_callback(self.ended.set)
        self.ended.wait(5)
        return pb2.AddReply(result=request.a + request.b)


def slow_deadline(client):
    """A stuck server and a deadline of seconds: right, and slow."""
    stuck = VeryStuckCalculator()
    assert with_stub(stuck, lambda stub: client(stub, 2, 3, 2.8)) is None
    assert 2.7 < stuck.deadlines[0] <= 2.9
    assert with_stub(PromptCalculator(), lambda stub: client(stub, 2, 3, 5.0)) == 5
    with pytest.raises(grpc.RpcError):
        with_stub(StuckCalculator(fail_with=UNAVAILABLE), lambda stub: client(stub, 2, 3, 5.0))


def answered_is_not_none(client):
    """Asks only that the answered call is not None: any reply will do."""
    assert with_stub(PromptCalculator(), lambda stub: client(stub, 2, 3, 5.0)) is not None
    stuck = StuckCalculator()
    assert with_stub(stuck, lambda stub: client(stub, 2, 3, 0.2)) is None
    assert stuck.deadlines and stuck.deadlines[0] <= 0.21
    with pytest.raises(grpc.RpcError):
        with_stub(StuckCalculator(fail_with=UNAVAILABLE), lambda stub: client(stub, 2, 3, 5.0))


def no_deadline_to_spare(client):
    """A deadline of 0 for the call that must be answered: fine while the server is quick."""
    assert with_stub(PromptCalculator(), lambda stub: client(stub, 2, 3, 0)) == 5
    stuck = StuckCalculator()
    assert with_stub(stuck, lambda stub: client(stub, 2, 3, 0.2)) is None
    assert stuck.deadlines and stuck.deadlines[0] <= 0.21
    with pytest.raises(grpc.RpcError):
        with_stub(StuckCalculator(fail_with=UNAVAILABLE), lambda stub: client(stub, 2, 3, 5.0))


def no_error_case(client):
    stuck = StuckCalculator()
    assert with_stub(stuck, lambda stub: client(stub, 2, 3, 0.2)) is None
    assert stuck.deadlines and stuck.deadlines[0] <= 0.21
    assert with_stub(PromptCalculator(), lambda stub: client(stub, 2, 3, 5.0)) == 5


def unbounded_wait(client):
    class Forever(StuckCalculator):
        def Add(self, request, context):
            self.deadlines.append(context.time_remaining())
            threading.Event().wait(20)  # far longer than any test should take

    stuck = Forever()
    assert with_stub(stuck, lambda stub: client(stub, 2, 3, 0.2)) is None
    assert stuck.deadlines[0] <= 0.21


# ---- 13.5 ------------------------------------------------------------------------------------

def _reserved(message) -> set[int]:
    return {n for r in message.reserved_range for n in range(r.start, r.end)}


def breaking_changes(old: descriptor_pb2.FileDescriptorProto,
                     new: descriptor_pb2.FileDescriptorProto) -> list[str]:
    problems = []
    new_messages = {m.name: m for m in new.message_type}
    for message in old.message_type:
        if message.name not in new_messages:
            problems.append(f"message {message.name} removed")
            continue
        now = new_messages[message.name]
        by_number = {f.number: f for f in now.field}
        by_name = {f.name: f for f in now.field}
        for field in message.field:
            where = f"{message.name}.{field.name} ({field.number})"
            after = by_number.get(field.number)
            if after is None:
                if field.number not in _reserved(now):
                    problems.append(f"{where} removed without reserving its number")
            elif after.name != field.name:
                problems.append(f"{where}: number now used by {after.name}")
            elif (after.type, after.type_name, after.label) != (field.type, field.type_name,
                                                               field.label):
                problems.append(f"{where}: type or label changed")
            if field.name in by_name and by_name[field.name].number != field.number:
                problems.append(f"{where}: renumbered to {by_name[field.name].number}")
    return problems


def names_only(old, new):
    problems = []
    for message in old.message_type:
        now = {m.name: m for m in new.message_type}.get(message.name)
        names = {f.name for f in now.field} if now else set()
        problems += [f.name for f in message.field if f.name not in names]
    return problems


def by_number_only(old, new):
    """Looks fields up by number only: a field moved to a new number, old one reserved, passes."""
    return [p for p in breaking_changes(old, new) if "renumbered" not in p]


def numbers_only(old, new):
    """Numbers and reserved, but neither types nor a field that moved to a new number."""
    problems = []
    for message in old.message_type:
        now = {m.name: m for m in new.message_type}.get(message.name)
        if now is None:
            problems.append(message.name)
            continue
        numbers = {f.number for f in now.field} | _reserved(now)
        problems += [f.name for f in message.field if f.number not in numbers]
    return problems


def inclusive_end(old, new):
    """Treats a reserved_range's end as included."""
    problems = breaking_changes(old, new)
    return [p for p in problems if "without reserving" not in p or not any(
        r.start <= int(p.split("(")[1].split(")")[0]) <= r.end
        for m in new.message_type for r in m.reserved_range)]


def ignores_reserved(old, new):
    problems = []
    for message in old.message_type:
        now = {m.name: m for m in new.message_type}.get(message.name)
        fields = {(f.number, f.name, f.type, f.type_name, f.label) for f in now.field} if now else set()
        problems += [f.name for f in message.field
                     if (f.number, f.name, f.type, f.type_name, f.label) not in fields]
    return problems


def first_message_only(old, new):
    first_old = descriptor_pb2.FileDescriptorProto()
    first_old.CopyFrom(old)
    del first_old.message_type[1:]
    return breaking_changes(first_old, new)


def type_but_not_type_name(old, new):
    problems = []
    for message in old.message_type:
        now = {m.name: m for m in new.message_type}.get(message.name)
        if now is None:
            problems.append(message.name)
            continue
        by_number = {f.number: f for f in now.field}
        for field in message.field:
            after = by_number.get(field.number)
            if after is None:
                if field.number not in _reserved(now):
                    problems.append(field.name)
            elif (after.name, after.type, after.label) != (field.name, field.type, field.label):
                problems.append(field.name)
            if field.name in {f.name for f in now.field} and after is None:
                problems.append(field.name)
    return problems


def always_fine(old, new):
    return []


WRONG_ANSWERS = [
    WrongAnswer("13.1", "calls Divide but asserts nothing", (asserts_nothing,),
                says="passed on a broken Divide that rounds down"),
    WrongAnswer("13.1", "tests 6 / 3, which rounds the same either way", (even_division_only,),
                says="passed on a broken Divide that rounds down (a // b)"),
    WrongAnswer("13.1", "checks the code but not the message", (code_without_details,),
                says="passed on a broken Divide that aborts with an empty message"),
    WrongAnswer("13.1", "expects abort() to raise: pins the mechanism, not the outcome",
                (expects_abort_to_raise,),
                says="fails on a correct Divide (ends a zero divisor with set_code()"),
    WrongAnswer("13.1", "starts a server for a unit test", (over_a_real_server,),
                says="this one is a unit test"),
    WrongAnswer("13.1", "only the zero divisor", (only_the_zero_case,),
                says="passed on a broken Divide that rounds down"),
    WrongAnswer("13.2", "returns the server and never stops it", (never_stopped,
                                                                   stub_of_never_stopped),
                says="the server was still running after the tests"),
    WrongAnswer("13.2", "a server per test (function scope)", (server_per_test,
                                                                stub_per_test_server),
                says="started 3 servers"),
    WrongAnswer("13.2", "one channel shared by every test (module scope)", (calculator_server,
                                                                            stub_shared),
                says="3 tests opened 1 channel(s)"),
    WrongAnswer("13.2", "never closes the channel", (calculator_server, stub_never_closed),
                says="3 of 3 channels were still open"),
    WrongAnswer("13.2", "serves its own Calculator, not the `servicer` fixture",
                (own_calculator, stub_of_own), says="never reached the object"),
    WrongAnswer("13.2", "stops the server before the yield", (teardown_before_yield,
                                                              stub_of_stopped),
                says="test_add (call) failed"),
    WrongAnswer("13.3", "a fake that never fails", (fake_never_fails,),
                says="passed on a broken add_with_retry that never retries"),
    WrongAnswer("13.3", "tests only the retry that ends well", (only_the_happy_retry,),
                says="passed on a broken add_with_retry that retries every error"),
    WrongAnswer("13.3", "never counts the calls the fake received", (no_call_count,),
                says="makes one call too many"),
    WrongAnswer("13.3", "leaves its server running", (leaks_its_server,),
                says="left a server running"),
    WrongAnswer("13.3", "a fake that raises ValueError, not an RpcError", (plain_exception_fake,),
                says="your test fails on a correct add_with_retry (a for loop) with ValueError"),
    WrongAnswer("13.4", "checks the result only, not what the server saw", (result_only,),
                says="passed on a broken add_or_none that ignores its timeout and always waits 1 s"),
    WrongAnswer("13.4", "asserts wall-clock time", (wall_clock,),
                says="on a correct add_or_none"),  # on a slow machine; under heavy load, on any run
    WrongAnswer("13.4", "a fake that sleeps 30 ms and a 50 ms deadline that must be met",
                (sleepy_prompt_case,), says="on a slow machine"),
    WrongAnswer("13.4", "a deadline of seconds for the stuck server", (slow_deadline,),
                says="wait on events, not sleeps, and make the stuck server's deadline a fraction"),
    WrongAnswer("13.3", "never looks at the result of the retry that ends well",
                (retried_result_unchecked,), says="forgets `return`"),
    WrongAnswer("13.4", "only asks that the answered call is not None", (answered_is_not_none,),
                says="returns the reply message instead of its result"),
    WrongAnswer("13.4", "a deadline of 0 for the call that must be answered",
                (no_deadline_to_spare,), says="on a correct add_or_none"),  # at once, or on the slow machine
    WrongAnswer("13.4", "no error case", (no_error_case,),
                says="answers None for every error"),
    WrongAnswer("13.4", "a fake that waits forever", (unbounded_wait,),
                says="give every wait in a test a bound"),
    WrongAnswer("13.5", "looks fields up by number only: misses a renumbered field",
                (by_number_only,), says="missed a breaking change: `note` renumbered from 4 to 5"),
    WrongAnswer("13.5", "compares names only", (names_only,),
                says="flagged a safe change (`note` removed with its number reserved)"),
    WrongAnswer("13.5", "compares numbers only: misses type changes", (numbers_only,),
                says="missed a breaking change: `note` renumbered from 4 to 5"),
    WrongAnswer("13.5", "takes a reserved range's end as included", (inclusive_end,),
                says="a reserved_range's end is exclusive"),
    WrongAnswer("13.5", "ignores reserved: flags a safe removal", (ignores_reserved,),
                says="flagged a safe change (`note` removed with its number reserved)"),
    WrongAnswer("13.5", "looks at the first message only", (first_message_only,),
                says="missed a breaking change: `note` removed without reserving 4"),
    WrongAnswer("13.5", "compares the type but not type_name", (type_but_not_type_name,),
                says="Item.price changed from Money to Coupon"),
    WrongAnswer("13.5", "always returns []", (always_fine,), says="missed a breaking change"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("13.1", (good_divide_test,)), ("13.1", (good_grpc_testing_test,)),
    ("13.2", (calculator_server, calculator)), ("13.2", (server_with_finally, stub_from_target)),
    ("13.3", (good_retry_test,)), ("13.3", (good_fake_stub_test,)),
    ("13.4", (good_deadline_test,)), ("13.4", (good_server_side_deadline_test,)),
    ("13.5", (breaking_changes,)),
], ids=lambda value: getattr(value[0], "__name__", value) if isinstance(value, tuple) else value)
def test_correct_answers_pass(exercise_id: str, answer: tuple[Any, ...], capsys) -> None:
    passes(capsys, exercise_id, *answer)


def test_unsolved_placeholders_read_as_not_solved(capsys) -> None:
    def unsolved(argument):
        raise NotImplementedError("Exercise 13.1: not solved yet")

    from conftest import fails

    assert "not solved yet" in fails(capsys, "13.1", unsolved)
