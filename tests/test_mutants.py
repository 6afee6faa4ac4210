"""The mutation harness's own parts (tests/mutants.py): fast, no kernel."""

from __future__ import annotations

import ast

import mutants
import nbformat
import pytest
from conftest import SOLUTIONS

CELL = '''\
import threading
LIMIT = 10

def outside(a, b):
    return a < b

def inside(stub, request, lock, items):
    ### BEGIN SOLUTION
    with lock:
        try:
            reply = stub.Get(request, timeout=2)
        except KeyError:
            return None
        finally:
            items.clear()
    if reply.size <= 3 and reply.ok:
        return pow(reply.size, 2)
    ### END SOLUTION
'''


def labels(source: str = CELL) -> list[str]:
    return [label for label, _ in mutants.mutants(source)]


def test_solution_lines_are_those_between_the_markers() -> None:
    assert mutants.solution_lines(CELL) == set(range(9, 18))


def test_code_outside_the_solution_is_never_mutated() -> None:
    for label, source in mutants.mutants(CELL):
        tree = ast.parse(source)
        outside = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "outside")
        assert ast.unparse(outside) == "def outside(a, b):\n    return a < b", label
        assert "LIMIT = 10" in source, label


@pytest.mark.parametrize("expected", [
    "(LtE -> Lt)", "(and <-> or)", "3 -> 4", "3 -> 2", "3 -> 0", "2 -> 1",
    "(swap arguments 1 and 2)", "(remove timeout=)", "(-> return None)", "(negate the condition)",
    "except KeyError  (drop the except clause)", "(drop the finally body)",
    "with lock:  (its body without the with)", "(-> pass)",
])
def test_every_kind_of_mutation_is_made(expected: str) -> None:
    assert any(expected in label for label in labels()), labels()


def test_each_mutant_is_valid_python_and_differs_once() -> None:
    found = mutants.mutants(CELL)
    sources = [source for _, source in found]
    assert len(set(sources)) == len(sources), "no two mutants are the same code"
    for source in sources:
        compile(source, "<mutant>", "exec")
        assert source != ast.unparse(ast.parse(CELL))


def test_the_right_change_is_applied() -> None:
    found = dict(mutants.mutants(CELL))
    no_timeout = next(s for label, s in found.items() if "remove timeout=" in label)
    assert "stub.Get(request)" in no_timeout
    unwrapped = next(s for label, s in found.items() if "without the with" in label)
    assert "with lock" not in unwrapped and "try:" in unwrapped
    no_except = next(s for label, s in found.items() if "drop the except clause" in label)
    assert "except" not in no_except and "finally:" in no_except
    swapped = next(s for label, s in found.items() if "swap arguments" in label)
    assert "pow(2, reply.size)" in swapped


def test_await_can_be_removed_and_top_level_await_parses() -> None:
    source = "### BEGIN SOLUTION\nresult = await stub.Add(request)\n### END SOLUTION\n"
    found = dict(mutants.mutants(source))
    assert any("remove await" in label for label in found)
    assert "result = stub.Add(request)" in found[next(l for l in found if "remove await" in l)]


def test_an_only_except_clause_leaves_the_try_body() -> None:
    source = ("def f(g):\n    ### BEGIN SOLUTION\n    try:\n        return g()\n"
              "    except ValueError:\n        return 0\n    ### END SOLUTION\n")
    found = dict(mutants.mutants(source))
    dropped = found[next(l for l in found if "drop the except clause" in l)]
    assert dropped == "def f(g):\n    return g()"


def test_labels_are_unique_even_for_the_same_change_on_one_line() -> None:
    source = "### BEGIN SOLUTION\nx = f(0, 0)\n### END SOLUTION\n"
    found = labels(source)
    assert len(found) == len(set(found))
    assert "L2: 0 -> 1" in found and "L2: 0 -> 1 #2" in found


def test_sample_is_bounded_deterministic_and_in_order() -> None:
    items = list(range(50))
    picked = mutants.sample(items, 10, seed="3.2")
    assert len(picked) == 10 and picked == sorted(picked)
    assert picked == mutants.sample(items, 10, seed="3.2")
    assert picked != mutants.sample(items, 10, seed="3.3")
    assert mutants.sample(items, None, seed="x") == items
    assert mutants.sample(items[:5], 10, seed="x") == items[:5]


def test_verdict_floor_equivalents_and_problems() -> None:
    good = mutants.Result("1.1", total=10, killed=9, survivors=["L3: a"])
    assert mutants.verdict(good, {})[0]
    poor = mutants.Result("1.1", total=10, killed=8, survivors=["L3: a", "L4: b"])
    assert not mutants.verdict(poor, {})[0]
    assert not mutants.verdict(poor, {"L3: a": {"equivalent": True}})[0]
    both = {"L3: a": {"equivalent": True}, "L4: b": {"equivalent": True}}
    assert mutants.verdict(poor, both)[0]
    broken = mutants.Result("1.1", total=10, killed=10, problems=["fails its own check"])
    assert not mutants.verdict(broken, {})[0]


def test_every_solution_exercise_is_found_with_its_check() -> None:
    ids = []
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for exercise in mutants.exercises(notebook):
            assert exercise.id.split(".")[0] == str(int(path.name[:2])), (path.name, exercise.id)
            assert f'check("{exercise.id}"' in notebook.cells[exercise.check].source
            assert mutants.mutants(notebook.cells[exercise.cell].source), f"{exercise.id} has no mutants"
            ids.append(exercise.id)
    assert len(ids) == len(set(ids)) >= 50


def test_the_survivors_file_names_real_exercises_and_says_why() -> None:
    table = mutants.equivalents()
    for exercise, entries in table.items():
        assert exercise.count(".") == 1, exercise
        for label, entry in entries.items():
            assert label.startswith("L"), label
            assert entry.get("reason") if entry.get("equivalent") else entry.get("kill"), (exercise, label)


def test_every_listed_survivor_is_a_mutant_of_the_current_solution() -> None:
    """A solution edited since the survivors were listed shows up here: relist them."""
    current = {}
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for exercise in mutants.exercises(notebook):
            current[exercise.id] = set(labels(notebook.cells[exercise.cell].source))
    stale = [(exercise, label) for exercise, entries in mutants.equivalents().items()
             for label in entries if label not in current.get(exercise, set())]
    assert not stale, f"tests/mutants_survivors.toml lists mutants that no longer exist: {stale}"


def test_notebooks_are_chosen_by_lesson_or_exercise() -> None:
    assert [p.name[:2] for p in mutants.notebooks(["3"], None)] == ["03"]
    assert {p.name[:2] for p in mutants.notebooks(["03"], {"12.2"})} == {"03", "12"}
    assert len(mutants.notebooks(None, None)) == len(list(SOLUTIONS.glob("*.ipynb")))
