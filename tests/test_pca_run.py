"""pca_otf answer side on the Python fixture: selection (brain search + graph distance, zoom,
scope), context packing within a budget counted by the embedded model's tokenizer, and citation
extraction, validation, repair and enforcement. The slow tests load the embedded SmolLM2 and run
the whole Runner / CLI."""

from __future__ import annotations

import shutil

import pytest

from answer.blocks import Block
from answer.citations import UNRESOLVED_MARK, Checker
from brain.build import build_brain
from brain.config import BrainConfig
from brain.search import Searcher
from nanodex.errors import NanodexError
from pca_otf.pack import TokenCounter, candidate_blocks, pack
from pca_otf.program_graph import EntityIndex, SqliteProgramGraph
from pca_otf.select import parse_policy, select_question, select_zoom
from tests.conftest import FIXTURES, build_graph

CHECKOUT_Q = "What does Cart.checkout do with an empty cart?"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("pca_run")
    repo = tmp / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    graph = tmp / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    bcfg = BrainConfig(graph=str(graph), out_dir=str(tmp / "nodes"))
    build_brain(bcfg)
    pg = SqliteProgramGraph(graph)
    return {
        "tmp": tmp,
        "graph": graph,
        "pg": pg,
        "index": EntityIndex(pg),
        "searcher": Searcher(bcfg, dense=False),
    }


@pytest.fixture(scope="module")
def tokenizer():
    from nanodex.models import resolve_model
    from trainer.model import load_tokenizer

    return load_tokenizer(resolve_model("embedded:smollm2-135m"))


# ---- selection -------------------------------------------------------------------------------
def test_policy_parsing() -> None:
    assert parse_policy("sim:0.6,struct:0.4") == pytest.approx({"sim": 0.6, "struct": 0.4})
    assert parse_policy("sim:3") == {"sim": 1.0, "struct": 0.0}
    for bad in ("sim", "cos:1", "sim:-1", "sim:0,struct:0", "sim:x"):
        with pytest.raises(NanodexError):
            parse_policy(bad)


def test_question_selection_finds_region(env: dict) -> None:
    sel = select_question(env["index"], env["searcher"], CHECKOUT_Q, k=8, radius=1)
    ids = sel.ids()
    assert ids[0] == "shop/cart.py::Cart.checkout"
    # graph distance brings in what checkout touches even where search did not rank it
    assert "shop/errors.py::ShopError" in ids
    assert sum(s.weight for s in sel.nodes) == pytest.approx(1.0)
    assert sel.paths()[0] == "shop/cart.py"
    assert [s.entity.kind for s in sel.functions] and all(
        s.entity.kind in ("function", "method") for s in sel.functions
    )


def test_policy_changes_ranking(env: dict) -> None:
    q = "which exception does taking too many items raise"
    sim_only = select_question(env["index"], env["searcher"], q, policy="sim:1")
    struct_only = select_question(env["index"], env["searcher"], q, policy="struct:1")
    assert all(s.score == pytest.approx(s.sim) for s in sim_only.nodes)
    assert all(s.score == pytest.approx(min(1.0, s.struct)) for s in struct_only.nodes)
    assert sim_only.ids()[0] == max(sim_only.nodes, key=lambda s: s.sim).entity.id
    assert struct_only.ids()[0] == max(struct_only.nodes, key=lambda s: s.struct).entity.id
    assert sim_only.ids() != struct_only.ids()


def test_temperature_sharpens_weights(env: dict) -> None:
    q = "What does Cart.add return?"
    hot = select_question(env["index"], env["searcher"], q, temp=5.0)
    cold = select_question(env["index"], env["searcher"], q, temp=0.05)
    assert cold.nodes[0].weight > hot.nodes[0].weight
    with pytest.raises(NanodexError, match="temperature"):
        select_question(env["index"], env["searcher"], q, temp=0)


def test_scope_restricts_selection(env: dict) -> None:
    sel = select_question(env["index"], env["searcher"], "price of an item", scope_paths=["shop/pricing.py"])
    assert sel.ids() and all(s.entity.path == "shop/pricing.py" for s in sel.nodes)
    with pytest.raises(NanodexError, match="found nothing"):
        select_question(env["index"], env["searcher"], "price of an item", scope_paths=["nowhere/"])


def test_zoom_selection(env: dict) -> None:
    sel = select_zoom(env["index"], env["pg"], "Item.take", radius=1)
    assert sel.seeds == ["shop/models.py::Item.take"]
    assert sel.nodes[0].entity.id == "shop/models.py::Item.take"
    assert "shop/errors.py::OutOfStock" in sel.ids()
    assert max(s.distance for s in sel.nodes) == 1
    just = select_zoom(env["index"], env["pg"], "shop/models.py::Item.take", radius=0)
    assert just.ids() == ["shop/models.py::Item.take"]
    with pytest.raises(NanodexError, match="not in the code graph"):
        select_zoom(env["index"], env["pg"], "Nope.nothing")


# ---- packing ---------------------------------------------------------------------------------
def test_windows_are_labelled_and_fit(env: dict, tokenizer) -> None:
    count = TokenCounter(tokenizer)
    sel = select_question(env["index"], env["searcher"], CHECKOUT_Q)
    blocks = candidate_blocks(sel, env["pg"], env["index"], mode="windows")
    assert blocks[0].label == "[shop/cart.py:15-18]"
    for budget in (60, 150, 400, 4000):
        packed = pack(blocks, budget, count)
        assert packed.tokens == count(packed.text) <= budget
        for b in packed.blocks:
            assert f"{b.label}\n" in packed.text
            assert env["pg"].resolve(b.label.strip("[]")) is not None
            assert b.code == env["pg"].source(b.path, b.start, b.end)
    small, big = pack(blocks, 150, count), pack(blocks, 4000, count)
    assert len(small.blocks) < len(big.blocks) and small.dropped + small.clipped > 0
    assert big.dropped == 0 and len(big.blocks) == len(blocks)


def test_no_overlapping_windows(env: dict) -> None:
    sel = select_zoom(env["index"], env["pg"], "Cart", radius=1)
    blocks = candidate_blocks(sel, env["pg"], env["index"], mode="windows")
    spans = [(b.path, b.start, b.end) for b in blocks]
    for i, (p, a, b) in enumerate(spans):
        for q, c, d in spans[i + 1 :]:
            assert not (p == q and a <= c and d <= b), "a window inside an earlier one was kept"


def test_heads_mode(env: dict, tokenizer) -> None:
    sel = select_question(env["index"], env["searcher"], CHECKOUT_Q)
    blocks = candidate_blocks(sel, env["pg"], env["index"], mode="heads", head_lines=5)
    assert blocks and all(b.start == 1 and b.end <= 5 for b in blocks)
    assert len({b.path for b in blocks}) == len(blocks)
    with pytest.raises(NanodexError, match="pack mode"):
        candidate_blocks(sel, env["pg"], env["index"], mode="files")


def test_relevance_judge_runs_only_when_tight(tokenizer) -> None:
    count = TokenCounter(tokenizer)
    blocks = [
        Block("a.py", 1, 3, "def alpha():\n    return 1\n", score=0.9),
        Block("b.py", 1, 3, "def beta():\n    return 2\n", score=0.8),
    ]
    calls: list[str] = []

    def judge(text: str) -> float:
        calls.append(text)
        return 1.0 if "beta" in text else 0.0

    roomy = pack(blocks, 1000, count, relevance=judge)
    assert not calls and roomy.relevance_scored == 0
    tight = pack(blocks, count(blocks[0].render()) + 2, count, relevance=judge)
    assert len(calls) == 2 and tight.relevance_scored == 2
    assert [b.path for b in tight.blocks] == ["b.py"]  # the judge overturned the selection order


# ---- citations -------------------------------------------------------------------------------
def _cm(env: dict) -> Checker:
    """The one citation checker (answer.citations) over the runner's ProgramGraph."""
    from pca_otf.program_graph import EntitySymbols

    return Checker(EntitySymbols(env["pg"], env["index"]))


def test_repair_through_the_program_graph(env: dict) -> None:
    # the same repairs as tests/test_answer.py (there over the extractor graph), here through pca_otf's
    # ProgramGraph backend: a wrong line snaps to the named symbol, a dropped folder is found
    checked = _cm(env).check("`Cart.checkout` raises `ShopError` when the cart is empty [shop/cart.py:95].")
    c = checked.citations[0]
    assert (c.resolves, c.repaired, c.path, c.start, c.end) == (True, True, "shop/cart.py", 15, 18)
    fixed = _cm(env).check("The total is computed by summing each item's price [pricing.py:14-99].")
    assert fixed.citations[0].resolves and fixed.citations[0].path == "shop/pricing.py"
    bad = _cm(env).check(
        "This paragraph talks about nothing in the code at all [nowhere/x.py:3].", enforce=True
    )
    assert "[nowhere/x.py:3]" + UNRESOLVED_MARK in bad.text and bad.marked == [0]


# ---- the Runner with the embedded model (slow) -----------------------------------------------
@pytest.fixture(scope="module")
def loaded():
    from pca_otf.run import load_model

    return load_model("embedded:smollm2-135m", threads=1)


def _run_cfg(env: dict, **kw):
    from pca_otf.config import RunConfig

    base = {
        "graph": str(env["graph"]),
        "artifacts": str(env["tmp"] / "pca"),
        "adapter": False,
        "pack_context": True,
        "require_citations": True,
        "max_new_tokens": 48,
        "context_tokens": 400,
    }
    return RunConfig(**{**base, **kw})


@pytest.mark.slow
def test_runner_context_only_answer(env: dict, loaded, tmp_path) -> None:
    import json

    from pca_otf.run import Runner

    tele = tmp_path / "tele.jsonl"
    runner = Runner(_run_cfg(env, citations_enforce=True, telemetry=str(tele)), base=loaded)
    ans = runner.answer(CHECKOUT_Q)
    assert ans.windows and ans.windows[0]["label"] == "[shop/cart.py:15-18]"
    assert all(c["resolves"] or f"{c['text']} (unresolved)" in ans.body for c in ans.citations)
    assert ans.all_citations_ok
    # with enforcement every claim paragraph has a valid citation or is marked
    paras = ans.body.split("\n\n")
    for i in range(len(paras)):
        has_valid = any(c["resolves"] and c["paragraph"] == i for c in ans.citations)
        assert has_valid or i in ans.unverified_paragraphs or len(paras[i].split()) < 4
    assert set(ans.provenance) == {"program_id", "manifest_sha", "commit", "policy", "layout"}
    assert ans.messages[-1]["content"].endswith(f"Question: {CHECKOUT_Q}"), "the one prompt (answer.prompt)"
    assert "citations:" in ans.report and "provenance: " in ans.report
    assert ans.provenance["policy"] == "sim:0.6,struct:0.4"
    assert ans.text.startswith(ans.body) and "provenance: " in ans.text[len(ans.body) :]
    assert ans.adapter_stats == {"applied": False}
    rec = json.loads(tele.read_text().splitlines()[-1])
    assert rec["modules"][0] == "shop/cart.py" and rec["windows"] == [w["label"] for w in ans.windows]
    assert (
        rec["citations"] == [{k: c[k] for k in rec["citations"][0]} for c in ans.citations]
        if ans.citations
        else True
    )
    # scope restricts what is selected and packed
    scoped = runner.answer("How is the price of an item computed?", scope_paths=["shop/pricing.py"])
    assert {n["path"] for n in scoped.selected_nodes} == {"shop/pricing.py"}
    assert all(w["path"] == "shop/pricing.py" for w in scoped.windows)


@pytest.mark.slow
def test_runner_zoom_and_greedy_is_deterministic(env: dict, loaded) -> None:
    from pca_otf.run import Runner

    runner = Runner(_run_cfg(env, of_sources="zoom", zoom_symbol="Item.take", zoom_radius=1), base=loaded)
    a1, a2 = runner.answer("What does take do?"), runner.answer("What does take do?")
    assert a1.selected_nodes[0]["id"] == "shop/models.py::Item.take"
    assert a1.raw == a2.raw
    assert a1.provenance["policy"] == "zoom:Item.take@1"


@pytest.mark.slow
def test_cli_json_and_errors(env: dict) -> None:
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pca_otf.run", "--graph", str(env["graph"]), "--no-adapter"]
    ok = subprocess.run(
        [
            *cmd,
            "--question",
            CHECKOUT_Q,
            "--pack-context",
            "--require-citations",
            "--max-new-tokens",
            "24",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["windows"] and data["provenance"]["commit"] == env["pg"].commit()
    bad = subprocess.run(
        [*cmd, "--question", "x", "--pg-backend", "nope_mod:F"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "does not import" in bad.stderr


@pytest.fixture(scope="module")
def built(env: dict) -> str:
    """A pca_otf build of the fixture graph, for the embedded model."""
    from pca_otf.build import build
    from pca_otf.config import BuildConfig

    out = env["tmp"] / "pca"
    build(BuildConfig(graph=str(env["graph"]), out_dir=str(out), base="embedded:smollm2-135m"))
    return str(out)


def _weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_runner_adapter_applied_and_removed_exactly(env: dict, loaded, built: str) -> None:
    from pca_otf.artifacts import Artifacts
    from pca_otf.run import Runner

    model, _ = loaded
    before = _weights(model)
    runner = Runner(_run_cfg(env, adapter=True, artifacts=built, max_new_tokens=24), base=loaded)
    ans = runner.answer(CHECKOUT_Q)
    st = ans.adapter_stats
    assert st["applied"] and st["rank"] > 0 and st["norm"] > 0
    assert set(st["targets"]) == {"q", "k", "v", "o", "gate", "up", "down"}
    assert 0.0 <= st["gsub"] <= 1.0
    assert ans.provenance["manifest_sha"] == Artifacts(built).manifest_sha
    assert ans.provenance["program_id"] == Artifacts(built).tree
    after = _weights(model)
    assert all(torch_equal(before[k], after[k]) for k in before), "weights not restored bit for bit"
    # while mixed in, the adapter changes what the model computes (else the test proves nothing)
    import torch

    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        plain = model(ids).logits
        with runner._adapted(CHECKOUT_Q, runner.select(CHECKOUT_Q), {}, None):
            mixed = model(ids).logits
        again = model(ids).logits
    assert not torch.allclose(plain, mixed) and torch.equal(plain, again)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


@pytest.mark.slow
def test_runner_adapter_options_restore_and_cap(env: dict, loaded, built: str) -> None:
    from pca_otf.run import Runner

    model, _ = loaded
    before = _weights(model)
    cfg = _run_cfg(
        env,
        adapter=True,
        artifacts=built,
        max_new_tokens=12,
        q_aware_weights=True,
        alpha_warmup=3,
        adapter_aware_decoding=True,
        function_first=True,
        delta_cap=0.5,
    )
    ans = Runner(cfg, base=loaded).answer("Where is the total price computed?")
    st = ans.adapter_stats
    assert st["intent_weights"]["q"] > st["intent_weights"]["down"]  # a "where" question: lookup
    assert st["function_cones"] and st["mix"]["terms"].get(f"cone:{st['function_cones'][0]}")
    assert st["raw_norm"] > 0.5 and st["norm"] <= 0.5 + 1e-6  # the cap held
    after = _weights(model)
    assert all(torch_equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_model_relevance_judge_with_real_model(env: dict, loaded) -> None:
    from pca_otf.pack import ModelRelevance

    model, tok = loaded
    judge = ModelRelevance(model, tok, "What does Cart.checkout do with an empty cart?")
    code = env["pg"].source("shop/cart.py", 15, 18)
    p = judge(code)
    assert 0.0 < p < 1.0 and judge(code) == p  # a probability, deterministic
    blocks = [
        Block("shop/cart.py", 15, 18, code, score=0.5),
        Block("shop/pricing.py", 14, 17, env["pg"].source("shop/pricing.py", 14, 17), score=0.6),
    ]
    count = TokenCounter(tok)
    tight = pack(blocks, count(blocks[0].render()) + 4, count, relevance=judge)
    assert tight.relevance_scored == 2 and all(b.label in tight.relevance for b in tight.blocks)


def test_function_first_windows_lead(env: dict) -> None:
    sel = select_zoom(env["index"], env["pg"], "Cart", radius=1, function_windows=2)
    plain = candidate_blocks(sel, env["pg"], env["index"])
    first = candidate_blocks(sel, env["pg"], env["index"], function_first=True)
    assert plain[0].symbol == "shop/cart.py::Cart"  # the zoomed class leads on score
    lead = sorted(first, key=lambda b: -b.score)[:2]
    assert [b.symbol for b in lead] == [s.entity.id for s in sel.functions]


# ---- decoding helpers ------------------------------------------------------------------------
def test_question_intent_and_weights() -> None:
    from pca_otf.decoding import intent_target_weights, question_intent

    assert question_intent("Where is the search index built?") == "locate"
    assert question_intent("Why does checkout raise ShopError?") == "diagnose"
    assert question_intent("How do I add an item to the cart?") == "howto"
    assert question_intent("What does Cart.add return?") == "explain"
    assert question_intent("cart") == "general"
    w = intent_target_weights("What does Cart.add return?")
    assert w["down"] > w["q"] and set(w) == {"q", "k", "v", "o", "gate", "up", "down"}


def test_warmup_and_contrast() -> None:
    import torch

    from answer.generate import contrast_logits
    from pca_otf.decoding import warmup_scale

    assert [warmup_scale(t, 3) for t in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert warmup_scale(0, 0) == 1.0
    adapted = torch.tensor([5.0, 4.0, 0.0, -9.0])
    base = torch.tensor([5.0, 1.0, -5.0, -9.0])
    out = contrast_logits(adapted, base, beta=1.0, plausibility=0.1)
    # token 1 gains from the contrast (the adapter likes it more than the base) and wins;
    # tokens far below the adapted model's best stay excluded however much the base dislikes them
    assert int(torch.argmax(out)) == 1
    assert torch.isinf(out[2]) and torch.isinf(out[3])


def test_repeat_bans_only_the_answers_own_ngrams() -> None:
    from answer.generate import repeat_bans

    # "7 8 9" was said; after "7 8" again, 9 would repeat it (n=3); other continuations stay free
    assert repeat_bans([7, 8, 9, 1, 7, 8], 3) == {9}
    assert repeat_bans([7, 8, 9, 1, 7, 8], 4) == set()  # "1 7 8" never preceded anything
    assert repeat_bans([5, 5, 5], 2) == {5}
    assert repeat_bans([1, 2], 3) == set() and repeat_bans([1, 2, 1], 0) == set()


def test_citation_in_wrong_form_is_bracketed(env: dict) -> None:
    checked = _cm(env).check(
        "Checkout raises on an empty cart, see `shop/cart.py:15-18` and (shop/nope.py:3)."
    )
    good, bad = checked.citations
    assert (good.text, good.resolves, good.repaired) == ("`shop/cart.py:15-18`", True, True)
    assert "[shop/cart.py:15-18]" in checked.text and "`shop/cart.py:15-18`" not in checked.text
    assert (bad.text, bad.resolves) == ("(shop/nope.py:3)", False)
    assert "(shop/nope.py:3)" + UNRESOLVED_MARK in checked.text and checked.all_resolved_or_marked
    assert _cm(env).check("Python 3.11 was released at 10:30.").citations == []


def test_runner_search_reads_config_brain_yaml_from_the_working_directory(
    env: dict, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pca_otf searches with config/brain.yaml's settings when present, as `make query` does."""
    from pca_otf.config import RunConfig
    from pca_otf.run import Runner

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "brain.yaml").write_text("search:\n  k: 3\n  graph_weight: 0.0\n")
    monkeypatch.chdir(tmp_path)
    runner = Runner(RunConfig(search_mode="lexical"), graph=env["graph"], base=(None, None))
    try:
        assert (runner.searcher.scfg.k, runner.searcher.scfg.graph_weight) == (3, 0.0)
        assert runner.searcher.cfg.graph == str(env["graph"])
    finally:
        runner.close()
