"""Query expansion (brain.expand) and its hooks in search and packing: a question that names an API
reaches the code the API dispatches to; doc terms reach the code whose docs use them; argument
names of a pasted call are told apart from its subject; the packer shows every hit's head."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from answer.blocks import pack_blocks
from brain.build import build_brain
from brain.config import BrainConfig
from brain.expand import Dispatch, DocTerms
from brain.intent import argument_identifiers, read_intent
from brain.search import Searcher
from tests.conftest import build_graph

LIB = {
    "lib/__init__.py": "",
    "lib/engine.py": '''
class Engine:
    """Holds the state of one run."""

    def loop(self, fn):
        """Keep calling until the condition holds."""
        self.tally = {"count": 0}
        while True:
            self.tally["count"] += 1
            if fn():
                return self.tally

    def clone(self):
        """A fresh copy with the same settings."""
        return Engine()


class FastEngine(Engine):
    """The default engine."""


def decorate(*args, **kw):
    """Wrap a function with a new engine."""

    def wrap(f):
        e = FastEngine()
        return e.loop

    return wrap


def after_tries(n):
    """Give up after n tries."""
    return n
''',
    "lib/api.py": '''
from typing import overload

from lib.engine import Engine
from lib.tries import tries_left


@overload
def start(limit: int, left=tries_left(3, 0)) -> int: ...


@overload
def start(limit: str) -> str: ...


def start(limit, left=None):
    """Start an engine for the limit."""
    return Engine()
''',
    "lib/tries.py": '''
def give_up_early(limit):
    """Give up early when the limit of tries is near."""
    return limit


def never_give_up():
    """Never give up: try forever."""
    return None


def tries_left(limit, used):
    """How many tries are left before we give up."""
    return limit - used


def give_up_message(tries):
    """The message shown when we give up after the tries."""
    return f"gave up after {tries} tries"
''',
}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> BrainConfig:
    tmp = tmp_path_factory.mktemp("expand")
    repo = tmp / "repo"
    for rel, text in LIB.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text.lstrip("\n"), encoding="utf-8")
    graph = tmp / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    cfg = BrainConfig(graph=str(graph), out_dir=str(tmp / "nodes"))
    build_brain(cfg)
    return cfg


def _row(s: Searcher, node_id: str) -> int:
    return s.row_of[node_id]


def test_dispatch_reaches_members_of_instantiated_classes_and_their_bases(cfg: BrainConfig) -> None:
    with Searcher(cfg, dense=False, use_model=False) as s:
        reached = s.dispatch.reach(_row(s, "lib/engine.py::decorate"))
        # decorate's nested wrap instantiates FastEngine; Engine's methods are inherited
        for name in ("FastEngine", "Engine.loop", "Engine.clone"):
            assert _row(s, f"lib/engine.py::{name}") in reached, name
        assert _row(s, "lib/tries.py::give_up_early") not in reached
        # a class reaches its own members
        assert _row(s, "lib/engine.py::Engine.loop") in s.dispatch.reach(_row(s, "lib/engine.py::Engine"))
        expanded = s.dispatch.expand({_row(s, "lib/engine.py::decorate"): 1.0})
        assert _row(s, "lib/engine.py::decorate") not in expanded  # seeds are not their own expansion
        assert all(0 < v <= 1.0 for v in expanded.values())


def test_dispatch_from_plain_edges() -> None:
    import numpy as np

    from brain.index import EDGE_KINDS

    # rows: 1 class A, 2 A.m, 3 class B(A), 4 function f (calls B), 5 unrelated g
    kind = np.array([0, 2, 3, 2, 3, 3], dtype=np.int8)
    edges = np.array(
        [
            [2, 1, EDGE_KINDS["defined_in"]],
            [3, 1, EDGE_KINDS["extends"]],
            [4, 3, EDGE_KINDS["calls"]],
        ]
    )
    d = Dispatch(edges, kind)
    assert d.reach(4) == {3: 1, 2: 1}  # the class it instantiates and the inherited method
    assert d.reach(5) == {}
    assert d.expand({4: 0.8}, limit=1) == {2: 0.8}  # best first, ties by row


def test_named_api_brings_its_implementation_into_the_top_k(cfg: BrainConfig) -> None:
    question = "With @decorate(after=after_tries(3)) on my function it tries forever and never gives up. Why?"
    reached = {f"lib/engine.py::{n}" for n in ("FastEngine", "Engine", "Engine.loop", "Engine.clone")}
    with Searcher(cfg, dense=False, use_model=False) as s:
        s.scfg = replace(s.scfg, dispatch_slots=3)
        with_slots = [h.id for h in s.search(question, 4)]
        s.scfg = replace(s.scfg, dispatch_slots=0)
        without = [h.id for h in s.search(question, 4)]
    assert reached & set(with_slots)
    assert not reached & set(without)  # the words alone lead to the give-up helpers
    assert "lib/engine.py::decorate" in with_slots  # the named API keeps its place


def test_overload_stubs_seed_through_their_implementation(cfg: BrainConfig) -> None:
    from brain.rerank import FEATURES

    col = FEATURES.index("dispatch")
    with Searcher(cfg, dense=False, use_model=False) as s:
        rows, x = s.features("what happens when I call `start(5)`?")
        value = {r: float(x[i, col]) for i, r in enumerate(rows)}
        assert value.get(_row(s, "lib/engine.py::Engine.loop"), 0.0) > 0  # what start() instantiates
        # a stub's default value (`tries_left(3, 0)`) configures the call; it is not where it leads
        assert value.get(_row(s, "lib/tries.py::tries_left"), 0.0) == 0.0


def test_argument_identifiers_are_the_names_inside_a_pasted_call() -> None:
    q = "With @retry(stop=stop_after_attempt(3)) on foo, `foo.retry.statistics` is empty (see docs (v2))."
    args = argument_identifiers(q)
    assert "stop_after_attempt" in args and "retry" not in args and "foo.retry.statistics" not in args
    assert "v2" not in args  # prose parentheses are not a call's
    assert argument_identifiers("call f(g) then g() alone") == frozenset()  # g is also a subject
    assert read_intent(q).arguments == args


def test_doc_terms_match_runs_of_question_words(tmp_path: Path) -> None:
    node = {
        "id": "concept:doc:stop condition",
        "type": "concept",
        "name": "stop condition",
        "refs": ["lib/a.py::stop_a", "lib/b.py::stop_b"],
    }
    (tmp_path / "concept_doc_stop_condition~1.json").write_text(json.dumps(node), encoding="utf-8")
    (tmp_path / "concept_lib_a.py_A~2.json").write_text(
        json.dumps({"id": "concept:lib/a.py::A"}), encoding="utf-8"
    )
    terms = DocTerms.load(tmp_path)
    assert terms.match("Which stop conditions can I combine?") == {
        "lib/a.py::stop_a": 0.5,
        "lib/b.py::stop_b": 0.5,
    }
    assert terms.match("when does it stop? a condition") == {}  # not a run of words
    assert DocTerms.load(tmp_path / "missing").match("stop condition") == {}


def test_doc_term_users_join_the_rerank_pool(cfg: BrainConfig, tmp_path: Path) -> None:
    with Searcher(cfg, dense=False, use_model=False) as s:
        s.doc_terms = DocTerms({("state", "holder"): ["lib/engine.py::Engine.clone"]})
        rows, x = s.features("who is the state holder here?")
        from brain.rerank import FEATURES

        col = FEATURES.index("doc_term")
        row = _row(s, "lib/engine.py::Engine.clone")
        assert row in rows and x[rows.index(row), col] == 1.0


def test_packer_shows_every_hits_head_before_question_lines() -> None:
    from brain.search import Hit

    files = {
        f"m{i}.py": [f"def f{i}(x):", f'    """Function {i}."""']
        + [f"    step_{j} = x + {j}  # the widget" for j in range(30)]
        for i in range(8)
    }

    def source(path: str, start: int, end: int) -> str:
        return "\n".join(files[path][start - 1 : end]) + "\n"

    hits = [Hit(f"m{i}.py::f{i}", "function", f"f{i}", f"f{i}", f"m{i}.py", 1, 32, 1.0) for i in range(8)]
    budget = 400  # room for every head and a few question lines, not for 8 windows of 12 lines
    blocks = pack_blocks(hits, source, budget, question="where is the widget made?")
    assert {b.path for b in blocks if b.start == 1} == set(files)  # every def line is shown
    assert sum(-(-len((b.render() + "\n\n").encode()) // 3) for b in blocks) <= budget
    assert any("widget" in b.code for b in blocks)  # what is left goes to the question's lines
    first = [b for b in blocks if b.path == "m0.py"]
    assert sum(b.end - b.start + 1 for b in first) > 2  # the best hit gets lines beyond its head
    for b in blocks:
        assert b.code == source(b.path, b.start, b.end).rstrip("\n")
