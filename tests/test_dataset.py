"""The dataset stage on the Python fixture (and, marked slow, on this repository): schema, citations,
split by fact, truly absent negatives, determinism, budgets, trainer compatibility, CLI errors."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from answer.blocks import Block
from answer.prompt import build_messages
from brain.build import build_brain
from brain.config import BrainConfig
from brain.text import count_tokens
from dataset.build import build_dataset
from dataset.compose import fit, snippet
from dataset.config import KINDS, ContextConfig, Counts, DatasetConfig, LLMParaphraseConfig
from dataset.paraphrase import Paraphraser, acceptable
from dataset.templates import action
from dataset.validate import schema_errors
from extractor.graph import Graph
from nanodex.config import load_config
from nanodex.errors import NanodexError
from tests.conftest import FIXTURES, build_graph
from tests.openai_server import running

ROOT = Path(__file__).resolve().parents[1]
README = """# shop

```python
cart = Cart()
cart.add('a', 2)
print(cart.checkout())
```
"""


def _read(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> DatasetConfig:
    """Graph + brain of the Python fixture repository (with a README example), and a config for it."""
    tmp = tmp_path_factory.mktemp("dataset")
    repo = tmp / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    (repo / "README.md").write_text(README, encoding="utf-8")
    (repo / "shop" / "empty.py").write_text("", encoding="utf-8")  # no line to cite: no row, nothing dropped
    graph = tmp / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    build_brain(BrainConfig(graph=str(graph), out_dir=str(tmp / "nodes")))
    return DatasetConfig(
        graph=str(graph),
        nodes_dir=str(tmp / "nodes"),
        counts=Counts(discovery=12, explain=25, howto=8, diag=10, architecture=10),
        negatives_per_example=0.5,
        eval_fraction=0.25,
        out_jsonl=str(tmp / "out" / "train.jsonl"),
        eval_jsonl=str(tmp / "out" / "eval.jsonl"),
        stats_json=str(tmp / "out" / "stats.json"),
    )


@pytest.fixture(scope="module")
def built(shop: DatasetConfig) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    stats = build_dataset(shop)
    return stats, _read(shop.out_jsonl), _read(shop.eval_jsonl)


def test_code_context_rows_show_what_they_cite_in_the_query_form(
    shop: DatasetConfig, built: tuple, tmp_path: Path
) -> None:
    """With context.share 1, training rows show the code their answer cites (citations follow a
    cut), held-out rows what search retrieves; the user turn is the query CLI's, byte for byte."""
    _, plain_train, plain_eval = built
    out = tmp_path / "ctx"
    cfg = replace(
        shop,
        out_jsonl=str(out / "train.jsonl"),
        eval_jsonl=str(out / "eval.jsonl"),
        stats_json=str(out / "stats.json"),
        context=ContextConfig(share=1.0, tokens=400, max_block_lines=6),
    )
    stats = build_dataset(cfg)
    train, evals = _read(cfg.out_jsonl), _read(cfg.eval_jsonl)
    assert [r["prompt"] for r in train] == [r["prompt"] for r in plain_train]  # same rows, same order
    shown = [r for r in train if r.get("context")]
    assert len(shown) == stats["context"]["train"] > 0
    assert stats["context"]["train"] + stats["context"]["cited_code_too_long"] == len(train)
    assert stats["context"]["eval"] == len(evals)
    blocks_re = re.compile(r"^(\[[^\]\s]+:\d+-\d+\])\n```\n(.*?)\n```", re.S | re.M)
    with Graph(shop.graph) as g:
        for r in shown + evals:
            user = r["messages"][0]["content"]
            blocks = [
                Block(path, int(a), int(b), code)
                for label, code in blocks_re.findall(user)
                for path, a, b in [re.fullmatch(r"\[(.+):(\d+)-(\d+)\]", label).groups()]
            ]
            assert [b.label for b in blocks] == r["context"]
            assert build_messages(r["prompt"], blocks)[0]["content"] == user
            for b in blocks:
                assert len(b.code.splitlines()) <= 6 and b.code == g.source(b.path, b.start, b.end)
        for r in shown:
            assert all(f"[{c}]" in r["context"] for c in r["citations"]), (r["context"], r["citations"])
            assert r["messages"][-1]["content"] == r["response"]
            assert all(g.resolves(*_span(c)) for c in r["citations"])
    before = {r["prompt"]: r for r in plain_train}
    cuts = 0
    for r in shown:  # a cited span over 6 lines is shown cut, and its citation names the cut
        expect = []
        for c in before[r["prompt"]]["citations"]:
            path, a, b = _span(c)
            cuts += b - a + 1 > 6
            expect.append(f"{path}:{a}-{min(b, a + 5)}")
        assert r["citations"] == expect
    assert cuts, "the fixture has cited spans longer than 6 lines"
    plain = {r["prompt"]: r for r in plain_eval}
    assert all(r["response"] == plain[r["prompt"]]["response"] for r in evals)  # held-out answers unchanged


def _span(citation: str) -> tuple[str, int, int]:
    path, lines = citation.rsplit(":", 1)
    a, _, b = lines.partition("-")
    return path, int(a), int(b or a)


def test_rows_validate_and_every_citation_resolves(shop: DatasetConfig, built: tuple) -> None:
    stats, train, evals = built
    rows = train + evals
    assert rows and all(schema_errors(r) == [] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["prompt"] for r in rows}) == len(rows), "prompts are deduplicated"
    with Graph(shop.graph) as g:
        lines = {f["path"]: f["lines"] for f in g.files()}
        for r in rows:
            cited = re.findall(r"\[([^\[\]\s]+):(\d+)-(\d+)\]", r["response"])
            assert cited, r
            assert [f"{p}:{a}-{b}" for p, a, b in dict.fromkeys(cited)] == r["citations"]
            for p, a, b in cited:
                assert g.resolves(p, int(a), int(b)) and 1 <= int(a) <= int(b) <= lines[p], (p, a, b)
            assert all(g.node(ref) is not None for ref in r["refs"]), r["refs"]
    assert stats["citations"]["validity"] == 1.0 and stats["citations"]["total"] > 0
    assert stats["dropped"]["citation"] == stats["dropped"]["unresolved_aspects"] == 0, (
        "grounded, not dropped"
    )


def test_every_kind_with_counts_and_reasons(built: tuple, shop: DatasetConfig) -> None:
    stats, train, evals = built
    rows = train + evals
    for kind in KINDS:
        positive = sum(r["kind"] == kind and not r["negative"] for r in rows)
        assert positive > 0, kind
        want = shop.counts.get(kind)
        # as many as asked, or fewer with a printed reason
        assert positive == want or (positive < want and kind in stats["shortfalls"]), (kind, positive)
        assert stats["per_kind"][kind]["positive"] == positive
    assert sum(r["negative"] for r in rows) > 0


def test_no_eval_fact_leaks_into_train(built: tuple) -> None:
    stats, train, evals = built
    assert evals, "the fixture must hold out at least one fact"
    assert not {r["fact"] for r in train} & {r["fact"] for r in evals}
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in evals}
    assert stats["leakage"] == {"facts": 0, "prompts": 0, "answers": 0}
    # a fact's paraphrases and negatives all sit on one side
    side: dict[str, str] = {}
    for name, rows in (("train", train), ("eval", evals)):
        for r in rows:
            assert side.setdefault(r["fact"], name) == name
    several = [f for f in side if sum(r["fact"] == f for r in train + evals) > 1]
    assert several, "facts are asked in several phrasings"


def test_negatives_are_truly_absent_and_cite_the_closest_real_node(shop: DatasetConfig, built: tuple) -> None:
    _, train, evals = built
    negs = [r for r in train + evals if r["negative"]]
    assert {r["kind"] for r in negs} >= {"discovery", "explain", "diag"}
    conn = sqlite3.connect(shop.graph)
    names = {n.lower().replace("_", "") for (n,) in conn.execute("SELECT name FROM nodes")}
    quals = {q for (q,) in conn.execute("SELECT qualname FROM nodes")}
    referenced = {n for (n,) in conn.execute("SELECT name FROM refs")}
    with Graph(shop.graph) as g:
        for r in negs:
            absent = r["absent"]
            last = absent.rsplit(".", 1)[-1]
            assert absent not in quals and last.lower().replace("_", "") not in names, absent
            assert last not in referenced and not g.by_qualname(absent)
            words = re.findall(r"[A-Z]?[a-z]+", last)
            assert f"`{absent}`" in r["prompt"] or all(w.lower() in r["prompt"].lower() for w in words), r
            closest = g.node(r["refs"][0])
            assert closest is not None and closest.citation in r["citations"], r
            assert "closest real" in r["response"] or "that class itself" in r["response"]
    conn.close()


def test_answers_fit_the_budget_and_snippets_are_short_and_verbatim(
    shop: DatasetConfig, built: tuple
) -> None:
    _, train, evals = built
    rows = train + evals
    repo = Path(str(Graph(shop.graph).meta("repo_root")))
    snippets = 0
    for r in rows:
        assert count_tokens(r["response"]) <= shop.max_answer_tokens
        assert r["response"].rstrip().endswith((".", "```", ":")), r["response"]
        for m in re.finditer(r"\[([^\]\s]+):(\d+)-(\d+)\]:\n```\w*\n(.*?)\n```", r["response"], re.S):
            path, a, b, code = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
            assert len(code.splitlines()) <= shop.snippet_max_lines
            real = (repo / path).read_text(encoding="utf-8").splitlines()[a - 1 : b]
            assert code == textwrap.dedent("\n".join(real)).strip("\n")
            snippets += 1
    assert snippets > 0, "how-to answers quote real code"


def test_coverage_of_public_symbols(built: tuple) -> None:
    stats, train, evals = built
    cov = stats["coverage"]
    assert cov["public_symbols"] >= 8 and cov["share"] >= 0.9, cov
    asked = {r["subject"] for r in train + evals if not r["negative"]}
    assert "shop/cart.py::Cart.checkout" in asked and "shop/models.py::Item" in asked


def test_same_seed_same_bytes_other_seed_other_split(
    shop: DatasetConfig, built: tuple, tmp_path: Path
) -> None:
    def run(seed: int, name: str) -> tuple[bytes, bytes]:
        cfg = replace(
            shop,
            seed=seed,
            out_jsonl=str(tmp_path / name / "train.jsonl"),
            eval_jsonl=str(tmp_path / name / "eval.jsonl"),
            stats_json=str(tmp_path / name / "stats.json"),
        )
        build_dataset(cfg)
        return Path(cfg.out_jsonl).read_bytes(), Path(cfg.eval_jsonl).read_bytes()

    first = (Path(shop.out_jsonl).read_bytes(), Path(shop.eval_jsonl).read_bytes())
    assert run(shop.seed, "again") == first
    assert run(shop.seed + 1, "other") != first


def test_rows_load_and_encode_in_the_trainer(built: tuple, shop: DatasetConfig) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from nanodex.models import SMOLLM2_CHAT_TEMPLATE
    from trainer import data

    rows = data.load_rows(shop.out_jsonl)
    assert len(rows) == len(built[1])
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        [r["prompt"] + " " + r["response"] for r in rows],
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tok.chat_template = SMOLLM2_CHAT_TEMPLATE
    encoded, st = data.encode_rows(tok, rows, max_seq_len=4096)
    assert st.kept == len(rows) and st.truncated == 0 and st.dropped_no_answer == 0
    # the loss covers exactly the answer: decoding the labelled tokens gives the response back
    ex, row = encoded[0], rows[0]
    answer = tok.decode([t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != data.IGNORE])
    assert answer.startswith(row["response"])


@pytest.mark.parametrize(
    ("qualname", "phrase"),
    [
        ("load_config", "load config"),
        ("Cart.add", "add with a cart"),
        ("Registry.get_or_retrieve", "get or retrieve with a registry"),
        ("Graph.export", "export with a graph"),
        ("Index.update", "update with an index"),
        ("TestVerdict.as_dict", ""),  # not a verb: "Can I as dict with a test verdict?" is no question
        ("coverage", ""),
    ],
)
def test_action_phrases_only_verbs(qualname: str, phrase: str) -> None:
    assert action(qualname) == phrase


def test_fit_cuts_at_sentence_boundaries_and_snippet_rejects_partial_statements() -> None:
    parts = ["First [a.py:1-2].", "Second sentence is here [a.py:3-3].", "Third."]
    assert fit(parts, 100) == " ".join(parts)
    assert fit(parts, count_tokens(parts[0]) + 3) == parts[0]
    assert fit(["x " * 50], 10) is None
    lines = ["x = f(", "    1,", ")", "y = 2"]
    assert snippet(lines, 1, 4, 100) == ("x = f(\n    1,\n)", 3)
    assert snippet(lines, 2, 4, 100) is None  # starts inside a statement
    assert snippet(lines, 1, 2, 100) is None  # longer than the line budget
    assert snippet(["y = " + "z" * 200], 1, 4, 100) is None


def _reword(body: dict[str, Any]) -> str:
    """Rewords, or drops the code name from every other question: the paraphraser must reject those."""
    q = body["messages"][-1]["content"]
    if not re.findall(r"`[^`]+`", q):
        return f"Please tell me, {q.rstrip('?.').lower()}?"
    return f"Could you tell me: {q.rstrip('?.')}?" if len(q) % 2 else "What about that thing?"


@pytest.fixture
def endpoint() -> Iterator[str]:
    """A real OpenAI-compatible HTTP server (tests/openai_server.py) answering with `_reword`."""
    with running() as srv:
        srv.models = [{"id": "tiny"}]
        srv.reply = _reword
        yield srv.url


def test_llm_paraphrase_keeps_code_names_or_keeps_the_template(
    shop: DatasetConfig, endpoint: str, tmp_path: Path
) -> None:
    assert acceptable("How does `Cart.add` work?", "What does `Cart.add` do?")
    assert not acceptable("How does `Cart.add` work?", "What does add do?")
    llm = LLMParaphraseConfig(endpoint=endpoint, share=1.0)
    cfg = replace(
        shop,
        llm=llm,
        out_jsonl=str(tmp_path / "t.jsonl"),
        eval_jsonl=str(tmp_path / "e.jsonl"),
        stats_json=str(tmp_path / "s.json"),
    )
    stats = build_dataset(cfg, Paraphraser(llm))
    rows = _read(cfg.out_jsonl) + _read(cfg.eval_jsonl)
    done = [r for r in rows if r.get("paraphrased")]
    assert stats["llm_paraphrase"]["reworded"] == len(done) > 0
    assert stats["llm_paraphrase"]["rejected"] > 0
    for r in done:
        assert r["messages"][0]["content"] == r["prompt"] and "that thing" not in r["prompt"]
    assert not any(r.get("paraphrased") for r in rows if r["negative"])


def test_errors_are_one_line_with_a_fix(shop: DatasetConfig, tmp_path: Path) -> None:
    with pytest.raises(NanodexError, match="no brain nodes"):
        build_dataset(replace(shop, nodes_dir=str(tmp_path / "empty")))
    with pytest.raises(NanodexError, match="not found"):
        build_dataset(replace(shop, graph=str(tmp_path / "none.sqlite")))
    bad = tmp_path / "bad.yaml"
    bad.write_text("counts: {discovery: 3, quiz: 2}\n", encoding="utf-8")
    with pytest.raises(NanodexError, match="quiz"):
        load_config(DatasetConfig, bad)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dataset",
            "--graph",
            str(tmp_path / "none.sqlite"),
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "fix:" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_cli_and_yaml(shop: DatasetConfig, tmp_path: Path) -> None:
    cfg = load_config(DatasetConfig, ROOT / "config" / "dataset.yaml")
    assert cfg.counts.get("architecture") > 0 and cfg.llm.endpoint is None
    out = tmp_path / "cli"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dataset",
            "--config",
            str(ROOT / "config" / "dataset.yaml"),
            "--graph",
            shop.graph,
            "--nodes-dir",
            shop.nodes_dir,
            "--out",
            str(out),
            "--count",
            "explain=5",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["per_kind"]["explain"]["positive"] == 5
    assert (out / "train.jsonl").is_file() and (out / "stats.json").is_file()
    assert "shortfalls" in stats and stats["shortfalls"], "the fixture is too small for the YAML counts"


@pytest.mark.slow
def test_on_this_repository(tmp_path: Path) -> None:
    """Must-show on a real repository: counts as configured, 100 % citations, no leaks, coverage >= 90 %."""
    graph = tmp_path / "nanodex.sqlite"
    build_graph(ROOT, graph)
    build_brain(BrainConfig(graph=str(graph), out_dir=str(tmp_path / "nodes")))
    cfg = load_config(
        DatasetConfig,
        ROOT / "config" / "dataset.yaml",
        {"graph": str(graph), "nodes_dir": str(tmp_path / "nodes"), "out_jsonl": str(tmp_path / "t.jsonl")},
    )
    cfg.eval_jsonl, cfg.stats_json = str(tmp_path / "e.jsonl"), str(tmp_path / "s.json")
    stats = build_dataset(cfg)
    for kind in KINDS:
        assert stats["per_kind"][kind]["positive"] == cfg.counts.get(kind) or kind in stats["shortfalls"]
    assert stats["citations"]["validity"] == 1.0
    assert stats["leakage"] == {"facts": 0, "prompts": 0, "answers": 0}
    assert stats["coverage"]["share"] >= 0.9
