"""brain.search on the Python fixture: the CLI contract, identifier-aware lexical search, graph
boosts, and (slow: loads MiniLM) dense + hybrid search with incremental embeddings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from brain.build import build_brain
from brain.config import BrainConfig, embeddings_path
from brain.embed import embed, load_embeddings
from brain.intent import path_role, read_intent
from brain.rerank import FEATURES, as_words, fit_weights, held_out
from brain.search import Searcher
from nanodex.errors import NanodexError
from tests.conftest import FIXTURES, build_graph

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_KEYS = ["id", "type", "name", "qualname", "path", "start_line", "end_line", "score"]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> BrainConfig:
    tmp = tmp_path_factory.mktemp("search")
    repo = tmp / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    graph = tmp / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    cfg = BrainConfig(graph=str(graph), out_dir=str(tmp / "nodes"))
    build_brain(cfg)
    return cfg


def _ids(searcher: Searcher, question: str, k: int = 5, mode: str = "hybrid") -> list[str]:
    return [h.id for h in searcher.search(question, k, mode=mode)]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "brain.search", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_cli_json_contract(cfg: BrainConfig) -> None:
    out = _cli("--graph", cfg.graph, "--k", "3", "--json", "sum the prices of the items")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert 1 <= len(hits) <= 3
    assert all(list(h) == CONTRACT_KEYS for h in hits)
    assert (
        hits[0]["id"] == "shop/pricing.py::total" and hits[0]["start_line"] == 4 and hits[0]["end_line"] == 11
    )
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_cli_batch_one_list_per_line(cfg: BrainConfig, tmp_path: Path) -> None:
    questions = tmp_path / "q.txt"
    questions.write_text("out of stock error\n\nsum of all prices\n", encoding="utf-8")
    out = _cli("--graph", cfg.graph, "--k", "2", "--batch", str(questions))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3
    lists = [json.loads(ln) for ln in lines]
    assert lists[1] == [] and lists[0][0]["id"] == "shop/errors.py::OutOfStock"
    assert lists[2][0]["id"] == "shop/pricing.py::total"
    missing = _cli("--graph", cfg.graph, "--batch", str(tmp_path / "none.txt"))
    assert missing.returncode == 2 and "batch file not found" in missing.stderr


def test_lexical_is_identifier_aware(cfg: BrainConfig) -> None:
    searcher = Searcher(cfg, dense=False)
    try:
        assert not searcher.has_dense
        # camelCase / snake_case in the code, words in the question (and the other way round)
        assert _ids(searcher, "out of stock")[0] == "shop/errors.py::OutOfStock"
        assert _ids(searcher, "OutOfStock")[0] == "shop/errors.py::OutOfStock"
        assert _ids(searcher, "test_take")[0] == "tests/test_cart.py::test_take"
        assert "shop/models.py::Item.parse" in _ids(searcher, "parse an item from text", 3)
        assert searcher.search("the of and", 5) == []
    finally:
        searcher.close()


def test_paraphrases_find_targets_without_embeddings(cfg: BrainConfig) -> None:
    searcher = Searcher(cfg, dense=False)
    try:
        assert "shop/pricing.py::total" in _ids(searcher, "how is the sum of all prices computed", 3)
        assert "shop/cart.py::Cart.checkout" in _ids(searcher, "what happens when the cart is empty", 3)
        assert "shop/models.py::Item.take" in _ids(
            searcher, "which code raises when not enough stock is left", 3
        )
        assert "shop/pricing.py::price" in _ids(searcher, "negative quantity", 3)
    finally:
        searcher.close()


def test_graph_neighbours_of_strong_hits_are_boosted(cfg: BrainConfig) -> None:
    searcher = Searcher(cfg, dense=False)
    try:
        row = searcher.row_of
        take, name, item = (
            row["shop/models.py::Item.take"],
            row["shop/cart.py::Cart.name"],
            row["shop/models.py::Item"],
        )
        # the graph feature: a member of a strong hit (its class) gets it, an unrelated hit not
        rows, x = searcher.features("item take cart name")
        col = FEATURES.index("graph")
        assert item in rows and take in rows and name in rows
        assert x[rows.index(take), col] > 0
        hybrid = searcher.search("sale", 10, mode="hybrid")
        assert hybrid[0].id == "shop/models.py::Item"  # only Item's docstring says "sale"
        with pytest.raises(NanodexError, match="make brain-embed"):
            searcher.search("describe", 3, mode="dense")
    finally:
        searcher.close()


def test_intent_and_roles() -> None:
    assert [path_role(p) for p in ("pkg/core.py", "tests/test_a.py", "pkg/a_test.py", "conftest.py")] == [
        "library",
        "test",
        "test",
        "test",
    ]
    assert path_role("docs/examples/x.py") == "example" and path_role("docs/conf.py") == "docs"
    assert path_role("examples/basic.py") == "example" and path_role("src/latest/x.py") == "library"
    assert path_role("typing-examples/mypy.py") == "example" and path_role("src/my_tests/a.py") == "test"
    it = read_intent('Why do I get ValueError: "negative quantity" from `price()`?')
    assert it.wants == {"library"} and "ValueError" in it.errors and "negative quantity" in it.quotes
    assert "price" in " ".join(it.identifiers)
    assert read_intent("which test covers the checkout").role_ok("test")
    assert not read_intent("how does checkout work").role_ok("test")
    # a name in pasted code is not a question about tests (`class Test`, `TestCase`)
    assert not read_intent("With `@attr.s class Test` declaring `a = attr.ib()`, why?").role_ok("test")


def test_library_code_outranks_tests_unless_asked(cfg: BrainConfig) -> None:
    searcher = Searcher(cfg, dense=False)
    try:
        rows, x = searcher.features("checkout")
        off = x[:, FEATURES.index("off_role")]
        checkout_test = searcher.row_of["tests/test_cart.py::TestCart.test_checkout"]
        assert off[rows.index(checkout_test)] == 1.0  # a test the question did not ask for
        assert _ids(searcher, "checkout", 1) == ["shop/cart.py::Cart.checkout"]
        # a test exercising library code lends it evidence
        ev = x[:, FEATURES.index("test_evidence")]
        assert ev[rows.index(searcher.row_of["shop/cart.py::Cart.checkout"])] > 0
        assert "tests/test_cart.py::TestCart.test_checkout" in _ids(searcher, "which test covers checkout", 2)
        # a tier, not a weight: even weights that favour tests (a fitted model may) keep library first
        searcher.weights = searcher.weights.copy()
        searcher.weights[FEATURES.index("off_role")] = 5.0
        hits = searcher.search("checkout", 10)
        roles = [path_role(h.path) for h in hits]
        assert "test" in roles and roles == sorted(roles, key=lambda r: r != "library")
        searcher.scfg = replace(searcher.scfg, library_first=False)
        assert path_role(searcher.search("checkout", 1)[0].path) == "test"
        # quoted error text goes to the raise site; a named error to its raisers
        rows, x = searcher.features('I get "empty cart" when I pay')
        site = rows.index(searcher.row_of["shop/cart.py::Cart.checkout"])
        assert x[site, FEATURES.index("raise_site")] == 1.0
        rows, x = searcher.features("what raises OutOfStock")
        assert x[rows.index(searcher.row_of["shop/models.py::Item.take"]), FEATURES.index("raise_site")] > 0
    finally:
        searcher.close()


def test_reranker_fit_moves_weights_toward_the_gold() -> None:
    rng = np.random.default_rng(0)
    pools = []
    for _ in range(60):  # gold rows are the ones with a high name_match; lexical is noise
        x = rng.random((20, len(FEATURES))).astype(np.float32)
        gold = int(rng.integers(20))
        x[:, FEATURES.index("name_match")] *= 0.5
        x[gold, FEATURES.index("name_match")] = 1.0
        pools.append((x, gold))
    start = np.zeros(len(FEATURES), dtype=np.float32)
    w = fit_weights(pools, start, l2=0.01)
    assert w[FEATURES.index("name_match")] > 1.0 > abs(w[FEATURES.index("lexical")])
    assert as_words("How does `Cart.add_item` work?") == "How does cart add item work?"
    assert held_out("a::b") == held_out("a::b")  # deterministic split by fact


def test_a_reranker_fitted_for_other_features_is_stale_not_fatal(tmp_path: Path, caplog) -> None:
    """A model fitted by an older nanodex (another feature list) is skipped with a warning, so
    search and the dataset stage keep working on the default weights until a refit; a file
    that is not JSON at all is still an error."""
    import json

    from brain.rerank import MODEL_FORMAT, load_model
    from nanodex.errors import NanodexError

    old = tmp_path / "old.rerank.json"
    old.write_text(json.dumps({"format": MODEL_FORMAT, "features": ["lexical"], "weights": [1.0]}))
    assert load_model(old) is None
    assert "another feature set" in caplog.text
    assert load_model(tmp_path / "none.json") is None
    bad = tmp_path / "bad.rerank.json"
    bad.write_text("{not json")
    with pytest.raises(NanodexError, match="unreadable"):
        load_model(bad)


@pytest.mark.slow
def test_dense_and_hybrid_with_incremental_embeddings(cfg: BrainConfig) -> None:
    first = embed(cfg)
    assert first.embedded == first.cards > 20 and embeddings_path(cfg).is_file()
    # worker processes give the same vectors as the in-process model
    pooled = replace(cfg, search=replace(cfg.search, embeddings=str(Path(cfg.out_dir).parent / "pool.npz")))
    pooled.embed = replace(cfg.embed, workers=2, texts_per_worker=5)
    assert embed(pooled).embedded == first.cards
    a, b = load_embeddings(embeddings_path(cfg)), load_embeddings(embeddings_path(pooled))
    assert a is not None and b is not None and list(a["ids"]) == list(b["ids"])
    assert np.abs(a["vectors"].astype(np.float32) - b["vectors"].astype(np.float32)).max() < 1e-2
    again = embed(cfg)
    assert again.embedded == 0 and again.reused == again.cards
    searcher = Searcher(cfg)
    try:
        assert searcher.has_dense
        # paraphrases sharing few or no words with the code
        assert _ids(searcher, "sum up what everything in the basket costs", 1) == ["shop/pricing.py::total"]
        assert "shop/errors.py::OutOfStock" in _ids(
            searcher, "exception for a product that is unavailable", 3
        )
        assert "shop/models.py::Item.take" in _ids(searcher, "remove units from inventory", 5, mode="hybrid")
        dense = searcher.search("what fails when checking out with nothing in the cart", 3, mode="dense")
        assert dense[0].id == "shop/cart.py::Cart.checkout" and dense[0].score >= dense[-1].score
    finally:
        searcher.close()
    out = _cli("--graph", cfg.graph, "--k", "2", "--json", "basket total cost")
    assert out.returncode == 0 and len(json.loads(out.stdout)) == 2


def test_a_stub_and_its_module_are_one_symbol(tmp_path: Path) -> None:
    repo = tmp_path / "repo" / "pkg"
    repo.mkdir(parents=True)
    (repo / "window.py").write_text(
        'def expire_entries(cache, now):\n    """Drop the entries whose time to live has passed."""\n'
        "    for key in list(cache):\n        if cache[key] < now:\n            del cache[key]\n"
    )
    (repo / "window.pyi").write_text("def expire_entries(cache: dict, now: float) -> None: ...\n")
    # a package stub that re-exports it (no `__init__.py` twin) declares the same symbol
    (repo / "__init__.pyi").write_text("def expire_entries(cache: dict, now: float) -> None: ...\n")
    graph = tmp_path / "graph.sqlite"
    build_graph(tmp_path / "repo", graph, ["python"])
    cfg = BrainConfig(graph=str(graph), out_dir=str(tmp_path / "nodes"))
    build_brain(cfg)
    with Searcher(cfg, dense=False) as searcher:
        hits = [
            h
            for h in searcher.search("expire entries whose time to live passed", 10)
            if h.name == "expire_entries"
        ]
    assert [h.path for h in hits] == ["pkg/window.py"]  # one slot, shown as the implementation
