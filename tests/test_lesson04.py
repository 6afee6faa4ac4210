"""Checks of lesson 04, the people directory: reference and correct-but-different answers
pass; plausible wrong answers fail with a message that names the mistake."""

from __future__ import annotations

import queue
import threading
from typing import Any

import grpc
import pytest
from conftest import WrongAnswer, fails, passes, rejects

from helpers.reference import PeopleDirectory, people_pb2, person_pb2, sample_people

Name, PersonResult = people_pb2.Name, people_pb2.PersonResult


# 4.1 GetPerson ------------------------------------------------------------------------


class SentinelGetPerson(PeopleDirectory):
    """The seed's answer: a made-up person for an unknown name."""

    def GetPerson(self, request, context):
        return self.people.get(request.name, person_pb2.Person(name="Not Found"))


class NotFoundForEmptyToo(PeopleDirectory):
    def GetPerson(self, request, context):
        if request.name not in self.people:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no person named {request.name!r}")
        return self.people[request.name]


class LooksUpSamplePeople(PeopleDirectory):
    """Ignores the people the servicer was given."""

    def GetPerson(self, request, context):
        people = sample_people()
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        if request.name not in people:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no person named {request.name!r}")
        return people[request.name]


class PlainDictLookup(PeopleDirectory):
    """No check at all: a KeyError for an unknown name."""

    def GetPerson(self, request, context):
        return self.people[request.name]


class ReturnsNone(PeopleDirectory):
    def GetPerson(self, request, context):
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        return self.people.get(request.name)


class InvalidArgumentForUnknown(PeopleDirectory):
    def GetPerson(self, request, context):
        if request.name not in self.people:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown name {request.name!r}")
        return self.people[request.name]


class NotFoundWithoutTheName(PeopleDirectory):
    def GetPerson(self, request, context):
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        if request.name not in self.people:
            context.abort(grpc.StatusCode.NOT_FOUND, "person not found")
        return self.people[request.name]


class SetCodeAndReturn(PeopleDirectory):
    """Correct, written differently: set_code/set_details and return an empty Person."""

    def GetPerson(self, request, context):
        if not request.name:
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details("name is empty")
            return person_pb2.Person()
        if request.name not in self.people:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details(f"nobody is called {request.name}")
            return person_pb2.Person()
        return self.people[request.name]


# 4.2 GetPeople ------------------------------------------------------------------------


class SkipsUnknownNames(PeopleDirectory):
    """The seed's GetPeople: unknown names get no reply."""

    def GetPeople(self, request_iterator, context):
        for request in request_iterator:
            if request.name in self.people:
                yield PersonResult(requested_name=request.name, person=self.people[request.name])


class ReadsEverythingFirst(PeopleDirectory):
    def GetPeople(self, request_iterator, context):
        names = [request.name for request in request_iterator]
        for name in names:
            yield PersonResult(requested_name=name, person=self.people[name]) \
                if name in self.people else PersonResult(requested_name=name, error="not found")


class ReturnsAList(PeopleDirectory):
    def GetPeople(self, request_iterator, context):
        results = []
        for request in request_iterator:
            result = PersonResult(requested_name=request.name)
            if request.name in self.people:
                result.person.CopyFrom(self.people[request.name])
            else:
                result.error = "not found"
            results.append(result)
        return results


class AbortsAtUnknownName(PeopleDirectory):
    def GetPeople(self, request_iterator, context):
        for request in request_iterator:
            if request.name not in self.people:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no person named {request.name!r}")
            yield PersonResult(requested_name=request.name, person=self.people[request.name])


class StreamsSamplePeople(PeopleDirectory):
    def GetPeople(self, request_iterator, context):
        people = sample_people()
        for request in request_iterator:
            result = PersonResult(requested_name=request.name)
            if request.name in people:
                result.person.CopyFrom(people[request.name])
            else:
                result.error = "not found"
            yield result


class EmptyErrorText(PeopleDirectory):
    """Sets error to "" for an unknown name, which leaves the oneof unset."""

    def GetPeople(self, request_iterator, context):
        for request in request_iterator:
            result = PersonResult(requested_name=request.name)
            if request.name in self.people:
                result.person.CopyFrom(self.people[request.name])
            else:
                result.error = ""
            yield result


class AssignsThePerson(PeopleDirectory):
    def GetPeople(self, request_iterator, context):
        for request in request_iterator:
            result = PersonResult(requested_name=request.name)
            if request.name in self.people:
                result.person = self.people[request.name]
            else:
                result.error = "not found"
            yield result


class UsesLookupWithKwargs(PeopleDirectory):
    """Correct, written differently: a keyword-built result per name."""

    def GetPeople(self, request_iterator, context):
        for request in request_iterator:
            person = self.people.get(request.name) if request.name else None
            if person is None:
                yield PersonResult(requested_name=request.name, error="no such person")
            else:
                yield PersonResult(requested_name=request.name, person=person)


# 4.3 lookup_people --------------------------------------------------------------------


def lookup_people(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    """The lesson's solution."""
    found, missing = {}, []
    requests = (Name(name=name) for name in names)
    for result in stub.GetPeople(requests, timeout=5):
        if result.HasField("person"):
            found[result.requested_name] = result.person
        else:
            missing.append(result.requested_name)
    return found, missing


def early_return_for_no_names(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    if not names:
        return {}, []
    return lookup_people(stub, names)


def with_which_oneof_and_a_list(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found, missing = {}, []
    for name, result in zip(names, stub.GetPeople(iter([Name(name=n) for n in names]),
                                                      timeout=10)):
        if result.WhichOneof("outcome") == "person":
            found[name] = result.person
        else:
            missing.append(name)
    return found, missing


def by_error_text(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    results = list(stub.GetPeople(iter([Name(name=n) for n in names]), timeout=5))
    return ({r.requested_name: r.person for r in results if not r.error},
            [r.requested_name for r in results if r.error])


def one_get_person_per_name(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found, missing = {}, []
    for name in names:
        try:
            found[name] = stub.GetPerson(Name(name=name), timeout=5)
        except grpc.RpcError:
            missing.append(name)
    return found, missing


def one_stream_per_name(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found, missing = {}, []
    for name in names:
        for result in stub.GetPeople(iter([Name(name=name)]), timeout=5):
            if result.HasField("person"):
                found[name] = result.person
            else:
                missing.append(name)
    return found, missing


def without_deadline(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    results = list(stub.GetPeople(iter([Name(name=n) for n in names])))
    return ({r.requested_name: r.person for r in results if r.HasField("person")},
            [r.requested_name for r in results if not r.HasField("person")])


def local_lookup(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    people = sample_people()
    return ({n: people[n] for n in names if n in people}, [n for n in names if n not in people])


def keeps_the_whole_result(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found, missing = {}, []
    for result in stub.GetPeople(iter([Name(name=n) for n in names]), timeout=5):
        if result.HasField("person"):
            found[result.requested_name] = result
        else:
            missing.append(result.requested_name)
    return found, missing


def truthiness_of_person(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found, missing = {}, []
    for result in stub.GetPeople(iter([Name(name=n) for n in names]), timeout=5):
        if result.person:  # a message is always true
            found[result.requested_name] = result.person
        else:
            missing.append(result.requested_name)
    return found, missing


def passes_a_list(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found, missing = {}, []
    for result in stub.GetPeople([Name(name=n) for n in names], timeout=5):
        if result.HasField("person"):
            found[result.requested_name] = result.person
        else:
            missing.append(result.requested_name)
    return found, missing


def missing_sorted(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found, missing = lookup_people(stub, names)
    return found, sorted(missing)


def unsolved_lookup(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    raise NotImplementedError("Exercise 4.3: not solved yet")


class CaseInsensitive(PeopleDirectory):
    def GetPerson(self, request, context):
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        for name, person in self.people.items():
            if name.lower() == request.name.lower():
                return person
        context.abort(grpc.StatusCode.NOT_FOUND, f"no person named {request.name!r}")


class PrefixMatch(PeopleDirectory):
    def GetPerson(self, request, context):
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        for name, person in self.people.items():
            if name.startswith(request.name):
                return person
        context.abort(grpc.StatusCode.NOT_FOUND, f"no person named {request.name!r}")


class StrippedName(PeopleDirectory):
    def GetPerson(self, request, context):
        name = request.name.strip()
        if not name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
        if name not in self.people:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no person named {name!r}")
        return self.people[name]


class SubstringStream(PeopleDirectory):
    def GetPeople(self, request_iterator, context):
        for request in request_iterator:
            result = people_pb2.PersonResult(requested_name=request.name)
            matches = [p for n, p in self.people.items() if request.name and request.name in n]
            if matches:
                result.person.CopyFrom(matches[0])
            else:
                result.error = f"no person named {request.name!r}"
            yield result


def catches_the_error(stub: Any, names: list[str]) -> tuple[dict, list[str]]:
    found: dict = {}
    try:
        for result in stub.GetPeople(iter([people_pb2.Name(name=n) for n in names]), timeout=5):
            if result.HasField("person"):
                found[result.requested_name] = result.person
    except grpc.RpcError:
        pass
    return found, [name for name in names if name not in found]



# 4.4 one name at a time -----------------------------------------------------------------


def _one_at_a_time(stub, names, timeout, *, cancel=False, past_missing=False):
    outbox: queue.Queue = queue.Queue()

    def requests():
        while (name := outbox.get()) is not None:
            yield people_pb2.Name(name=name)

    found, stopped = [], False
    replies = stub.GetPeople(requests(), timeout=timeout)
    try:
        for name in names:
            outbox.put(name)
            result = next(replies)
            if not result.HasField("person"):
                stopped = True
                if not past_missing:
                    break
            elif not stopped:
                found.append(result.person)
    finally:
        if cancel:
            replies.cancel()
        outbox.put(None)
    if not cancel:
        for _ in replies:
            pass
    return found


def unsolved_ask(stub, names, timeout):
    raise NotImplementedError("Exercise 4.4: not solved yet")


def ask_until_missing(stub, names, timeout):
    return _one_at_a_time(stub, names, timeout)


def ask_with_a_thread_and_event(stub, names, timeout):
    """Correct too: an Event per reply instead of a queue of names."""
    turn, answers, found = threading.Event(), [], []
    stop = threading.Event()

    def requests():
        for name in names:
            yield people_pb2.Name(name=name)
            turn.wait(timeout)
            turn.clear()
            if stop.is_set():
                return

    for result in stub.GetPeople(requests(), timeout=timeout):
        answers.append(result)
        if not result.HasField("person"):
            stop.set()
        else:
            found.append(result.person)
        turn.set()
    return found


def ask_all_at_once(stub, names, timeout):
    found = []
    for result in stub.GetPeople(iter([people_pb2.Name(name=n) for n in names]), timeout=timeout):
        if not result.HasField("person"):
            break
        found.append(result.person)
    return found


def ask_then_cancel(stub, names, timeout):
    return _one_at_a_time(stub, names, timeout, cancel=True)


def ask_past_the_missing(stub, names, timeout):
    return _one_at_a_time(stub, names, timeout, past_missing=True)


def ask_without_deadline(stub, names, timeout):
    return _one_at_a_time(stub, names, None)


WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("4.4", "sends every name at once", (ask_all_at_once,),
                "leaving the client before the reply"),
    WrongAnswer("4.4", "ends the stream with cancel()", (ask_then_cancel,),
                "ended the call with a cancel"),
    WrongAnswer("4.4", "carries on past the missing name", (ask_past_the_missing,),
                "nothing may follow 'Nobody'"),
    WrongAnswer("4.4", "no deadline on the stream", (ask_without_deadline,), "without a deadline"),
    WrongAnswer("4.1", "case-insensitive match", (CaseInsensitive,),
                "GetPerson('alice') succeeded with a person named 'Alice' although nobody"),
    WrongAnswer("4.1", "prefix match (startswith)", (PrefixMatch,),
                "GetPerson('An') among the people"),
    WrongAnswer("4.1", "strips spaces from the name", (StrippedName,),
                "the reference gives status NOT_FOUND"),
    WrongAnswer("4.2", "substring match", (SubstringStream,),
                "among the people"),
    WrongAnswer("4.3", "catches the RpcError: a failed stream reads as missing names",
                (catches_the_error,), "a failed call is not a list of missing names"),
    WrongAnswer("4.1", "answers an unknown name with a 'Not Found' person (the seed)",
                (SentinelGetPerson,), "a made-up reply is a sentinel"),
    WrongAnswer("4.1", "NOT_FOUND for an empty name too", (NotFoundForEmptyToo,),
                "GetPerson('') (an empty name) ended with NOT_FOUND"),
    WrongAnswer("4.1", "looks names up in sample_people(), not self.people",
                (LooksUpSamplePeople,), "look names up in self.people"),
    WrongAnswer("4.1", "plain dict lookup: KeyError for an unknown name", (PlainDictLookup,),
                "must end the call on purpose"),
    WrongAnswer("4.1", "returns None for an unknown name", (ReturnsNone,),
                "must end the call on purpose"),
    WrongAnswer("4.1", "INVALID_ARGUMENT for an unknown name", (InvalidArgumentForUnknown,),
                "GetPerson('Carol') ended with INVALID_ARGUMENT"),
    WrongAnswer("4.1", "passes an instance", (PeopleDirectory(),), "pass the class itself"),
    WrongAnswer("4.1", "NOT_FOUND message does not say which name", (NotFoundWithoutTheName,),
                "should name 'Carol'"),
    WrongAnswer("4.2", "skips unknown names (the seed)", (SkipsUnknownNames,),
                "one result per name"),
    WrongAnswer("4.2", "reads every name before answering", (ReadsEverythingFirst,),
                "as soon as its name arrives"),
    WrongAnswer("4.2", "builds a list and returns it", (ReturnsAList,),
                "make it a generator that yields each result"),
    WrongAnswer("4.2", "aborts the whole stream at an unknown name", (AbortsAtUnknownName,),
                "ended the whole stream with NOT_FOUND"),
    WrongAnswer("4.2", "looks names up in sample_people(), not self.people",
                (StreamsSamplePeople,), "the result for 'Zed' should set `person`"),
    WrongAnswer("4.2", "error set to '' (the oneof stays unset)", (EmptyErrorText,),
                "should set `error` to a reason"),
    WrongAnswer("4.2", "assigns result.person = ... (protobuf refuses)", (AssignsThePerson,),
                "Assignment not allowed"),
    WrongAnswer("4.3", "one GetPerson call per name", (one_get_person_per_name,),
                "use one GetPeople stream instead of one call per name"),
    WrongAnswer("4.3", "one GetPeople stream per name", (one_stream_per_name,),
                "GetPeople calls; expected 1"),
    WrongAnswer("4.3", "no timeout on the stream", (without_deadline,), "pass timeout="),
    WrongAnswer("4.3", "looks names up locally, never calls", (local_lookup,),
                "without calling the server"),
    WrongAnswer("4.3", "keeps the PersonResult, not the Person", (keeps_the_whole_result,),
                "expected the Person inside the result"),
    WrongAnswer("4.3", "`if result.person:` (a message is always true)",
                (truthiness_of_person,), "the names in `found`"),
    WrongAnswer("4.3", "passes a list of requests, not an iterator", (passes_a_list,),
                "must be an iterator"),
    WrongAnswer("4.3", "sorts the missing names", (missing_sorted,), "in the order sent"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys: Any) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("exercise_id, answer", [
    ("4.1", PeopleDirectory), ("4.1", SetCodeAndReturn),
    ("4.2", PeopleDirectory), ("4.2", UsesLookupWithKwargs),
    ("4.3", lookup_people), ("4.3", early_return_for_no_names),
    ("4.3", with_which_oneof_and_a_list), ("4.3", by_error_text),
    ("4.4", ask_until_missing), ("4.4", ask_with_a_thread_and_event),
], ids=lambda value: getattr(value, "__name__", str(value)))
def test_correct_answers_pass(exercise_id: str, answer: Any, capsys: Any) -> None:
    passes(capsys, exercise_id, answer)


class Unsolved(PeopleDirectory):
    def GetPerson(self, request, context):
        raise NotImplementedError("Exercise 4.1: not solved yet")

    def GetPeople(self, request_iterator, context):
        raise NotImplementedError("Exercise 4.2: not solved yet")


@pytest.mark.parametrize("exercise_id, answer", [
    ("4.1", Unsolved), ("4.2", Unsolved), ("4.3", unsolved_lookup), ("4.4", unsolved_ask)])
def test_unsolved_exercises_fail(exercise_id: str, answer: Any, capsys: Any) -> None:
    out = fails(capsys, exercise_id, answer)
    assert "not solved yet" in out or "NotImplementedError" in out


def test_every_exercise_has_two_wrong_answers() -> None:
    from collections import Counter

    counts = Counter(wrong.exercise for wrong in WRONG_ANSWERS)
    assert all(counts[exercise_id] >= 2 for exercise_id in ["4.1", "4.2", "4.3"]), counts
