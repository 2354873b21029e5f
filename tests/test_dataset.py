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
from dataset.templates import action, goal
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


def _rebuilt(shop: DatasetConfig, out: Path, **changes: Any) -> list[dict[str, Any]]:
    """The dataset rebuilt from `shop` with `changes`, into `out`: its train and held-out rows."""
    cfg = replace(
        shop,
        out_jsonl=str(out / "train.jsonl"),
        eval_jsonl=str(out / "eval.jsonl"),
        stats_json=str(out / "stats.json"),
        **changes,
    )
    build_dataset(cfg)
    return _read(cfg.out_jsonl) + _read(cfg.eval_jsonl)


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


_BLOCK = re.compile(r"^(\[[^\]\s]+:\d+-\d+\])\n```\n(.*?)\n```", re.S | re.M)


def _blocks(row: dict[str, Any]) -> list[Block]:
    """The labelled code blocks of a row's user turn, parsed back from the text."""
    out = []
    for label, code in _BLOCK.findall(row["messages"][0]["content"]):
        path, a, b = re.fullmatch(r"\[(.+):(\d+)-(\d+)\]", label).groups()
        out.append(Block(path, int(a), int(b), code))
    return out


def test_rows_carry_code_in_the_served_form_by_default(shop: DatasetConfig, built: tuple) -> None:
    """Every row (bar the counted few whose code fits no budget) is asked exactly as the query CLI
    asks: `build_messages(question, blocks)`, each block the graph's own lines under its label."""
    stats, train, evals = built
    assert ContextConfig().share == 1.0, "code in the rows is the default"
    ctx = stats["context"]
    assert ctx["train"] + ctx["eval"] + ctx["bare"] == len(train) + len(evals)
    assert ctx["bare"] <= 0.05 * (len(train) + len(evals)), ctx
    with Graph(shop.graph) as g:
        for r in train + evals:
            if not r.get("context"):
                continue
            blocks = _blocks(r)
            assert [b.label for b in blocks] == r["context"]
            assert (
                build_messages(r["prompt"], blocks) == r["messages"][:1]
            )  # the served prompt, byte for byte
            assert r["messages"][-1] == {"role": "assistant", "content": r["response"]}
            for b in blocks:
                assert len(b.code.splitlines()) <= shop.context.window_lines
                assert b.code == g.source(b.path, b.start, b.end)


def test_every_citation_names_a_block_shown_in_its_row(built: tuple) -> None:
    """The invariant the served answer is held to: each `[path:a-b]` of an answer is the label of
    a block in that row's prompt, or a sub-range of one."""
    _, train, evals = built
    checked = 0
    for r in train + evals:
        if not r.get("context"):
            continue
        blocks = _blocks(r)
        for path, a, b in (_span(c) for c in r["citations"]):
            assert any(x.path == path and x.start <= a <= b <= x.end for x in blocks), (
                r["id"],
                r["response"],
            )
            checked += 1
        assert r["citations"], r["id"]
    assert checked > len(train)


def test_answers_open_with_the_symbol_and_the_label_of_its_code(shop: DatasetConfig, built: tuple) -> None:
    """A training answer about a symbol opens with its name and the label of the block showing
    it, and says what the code does in words read from those lines (its docstring or code)."""
    _, train, _ = built
    opened = 0
    with Graph(shop.graph) as g:
        for r in train:
            node = g.node(r.get("subject") or "")
            if r["negative"] or not r.get("context") or node is None or "does not include" in r["response"]:
                continue
            head = r["response"].removeprefix("Yes: ")
            m = re.match(r"`([^`]+)` \[([^\]\s]+):(\d+)-(\d+)\]", head)
            assert m, r["response"]
            if node.type == "module":
                continue  # a module question may be answered from a symbol of the file
            assert m.group(1) == node.qualname, (m.group(1), node.qualname)
            a, b = int(m.group(3)), int(m.group(4))
            assert m.group(2) == node.path and node.start_line <= a <= b <= node.end_line
            opened += 1
        checkout = next(
            r
            for r in train + built[2]
            if r.get("subject") == "shop/cart.py::Cart.checkout"
            and not r["negative"]
            and "does not include" not in r["response"]
            and r.get("context")
        )
    assert opened > len(train) / 3
    # words from the code shown: Cart.checkout's docstring opens its answer, conjugated
    assert "`Cart.checkout` [shop/cart.py:" in checkout["response"], checkout["response"]


def test_absent_rows_say_so_and_cite_the_closest_block_shown(shop: DatasetConfig, built: tuple) -> None:
    """A share of positive training rows show search results without the answering code; the
    answer says so and cites the first (closest) block shown."""
    stats, train, _ = built
    positives = [r for r in train if not r["negative"] and r.get("context")]
    absent = [r for r in positives if r["response"].startswith("The code shown does not include")]
    assert len(absent) == stats["context"]["train_absent"]
    assert 0.08 <= len(absent) / len(positives) <= 0.35, (len(absent), len(positives))
    with Graph(shop.graph) as g:
        for r in absent:
            node = g.node(r.get("subject") or "")
            blocks = _blocks(r)
            if node is not None:
                assert not any(
                    b.path == node.path and b.start <= node.end_line and node.start_line <= b.end
                    for b in blocks
                ), r["id"]
            assert "The closest block shown is" in r["response"] and len(r["citations"]) == 1


def test_held_out_rows_show_what_search_retrieves(shop: DatasetConfig, built: tuple) -> None:
    """Held-out rows are asked with the blocks lexical search retrieves for the question, in
    search order, as the query CLI would send them; their reference answer cites those."""
    from answer.blocks import pack_blocks
    from brain.search import Searcher

    stats, _, evals = built
    assert stats["context"]["eval"] == len(evals) > 0
    cfg = shop.context
    with Graph(shop.graph) as g, Searcher(BrainConfig(graph=shop.graph), dense=False) as s:
        for r in evals:
            hits = s.search(r["prompt"], cfg.search_k, mode=cfg.search_mode)
            want = pack_blocks(
                hits, g.source, cfg.tokens, question=r["prompt"], window_lines=cfg.window_lines
            )
            assert r["context"] == [b.label for b in want], r["id"]


def test_context_share_zero_keeps_bare_questions(shop: DatasetConfig, tmp_path: Path) -> None:
    rows = _rebuilt(shop, tmp_path / "bare", context=ContextConfig(share=0.0))
    assert rows and all(r["messages"][0]["content"] == r["prompt"] and not r.get("context") for r in rows)
    assert all(schema_errors(r) == [] for r in rows)


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


def test_split_by_symbol_no_held_out_subject_or_ref_set_in_training(built: tuple) -> None:
    """Facts about one symbol, or resting on the same nodes, share a side of the split."""
    stats, train, evals = built
    held = [r for r in evals if not r["negative"]]
    assert held, "the fixture must hold out positives"
    subjects = {r["subject"] for r in train if r.get("subject")}
    ref_sets = {frozenset(r["refs"]) for r in train}
    assert not [r["id"] for r in held if r.get("subject") in subjects]
    assert not [r["id"] for r in held if frozenset(r["refs"]) in ref_sets]
    assert "negative_crossing_split" in stats["dropped"]


def test_fact_groups_join_facts_by_subject_and_ref_set() -> None:
    from dataset.split import eval_facts, fact_groups

    rows = [
        {"fact": "a", "subject": "m.py::X", "refs": ["m.py::X"]},
        {"fact": "b", "subject": "m.py::X", "refs": ["m.py::X", "m.py::Y"]},  # same subject as a
        {"fact": "c", "subject": None, "refs": ["m.py::Y", "m.py::X"]},  # same ref set as b
        {"fact": "d", "subject": "m.py::Z", "refs": ["m.py::Z"]},
        {"fact": "e", "subject": None, "refs": ["m.py::Z"], "negative": True},  # negatives join nothing
        {"fact": "f", "subject": None, "refs": ["m.py::Z"], "negative": True},
    ]
    groups = fact_groups(rows)
    assert groups["a"] == groups["b"] == groups["c"] == "a"
    assert groups["d"] == "d" and groups["e"] == "e" and groups["f"] == "f"
    for seed in range(20):
        held = eval_facts(rows, seed, 0.5)
        assert len({f in held for f in "abc"}) == 1, (seed, held)  # a group is never split
        assert 0 < len(held) < 6


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
            assert closest is not None and len(r["citations"]) == 1, r
            if r in train:  # the closest real thing is shown (its window's first run) and cited
                path, a, b = _span(r["citations"][0])
                assert (path, a) == (closest.path, closest.start_line) and b <= closest.end_line, r
            assert "The closest code shown is" in r["response"]
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


@pytest.mark.parametrize(
    ("doc", "wanted"),
    [
        ("Remove expired items from the cache.", "remove expired items from the cache"),
        ("Retries if an exception was raised.", "retry if an exception was raised"),
        ("Fetches rows from the table.", "fetch rows from the table"),
        (
            "Decorator to wrap a function with a memoizing callable.",
            "wrap a function with a memoizing callable",
        ),
        ("Return a cache key for the arguments.", "get a cache key for the arguments"),
        ("Wait strategy that applies exponential backoff.", ""),  # a noun phrase, not a verb
        ("Least Recently Used (LRU) cache implementation.", ""),
        ("The maximum size of the cache.", ""),
        ("", ""),
    ],
)
def test_goal_reads_a_docstring_as_what_a_user_wants_to_do(doc: str, wanted: str) -> None:
    assert goal(doc) == wanted


def test_goal_questions_do_not_name_their_subject(shop: DatasetConfig, tmp_path: Path) -> None:
    """`goal_questions` asks for what a docstring says a function does, in words: the prompt
    never names the symbol, and the answer opens with it, as for any discovery row."""
    rows = _rebuilt(shop, tmp_path / "goal", goal_questions=True)
    asked = [r for r in rows if r.get("aspect") == "goal"]
    assert asked
    for r in asked:
        name = r["subject"].split("::", 1)[1]
        assert "`" not in r["prompt"] and name.rsplit(".", 1)[-1] not in r["prompt"], r["prompt"]
        assert r["prompt"].startswith(("How can I ", "Is there a way to ", "How do I "))
        said = [x.lower().rstrip(".") for x in re.split(r"(?<=\.)\s+", r["response"])]
        tails = [x.split(" ", 1)[-1] for x in said]  # "sum the prices" repeats "sums the prices"
        assert not any(len(t) > 12 and t in a for i, a in enumerate(said) for t in tails[i + 1 :]), r[
            "response"
        ]
    assert not any(r.get("aspect") == "goal" for r in _rebuilt(shop, tmp_path / "plain"))


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
        assert r["messages"][0]["content"].endswith(r["prompt"]) and "that thing" not in r["prompt"]
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
    """Must-show on a real repository: counts as configured, 100 % citations, no leaks, coverage >= 90 %.

    The graph is built as `make extract` builds it (config/extract.yaml: tests/fixtures/ left
    out), so coverage counts this repository's own code, not the fixture repos inside it."""
    from extractor.build import extract
    from extractor.config import ExtractConfig

    graph = tmp_path / "nanodex.sqlite"
    extract(
        load_config(
            ExtractConfig, ROOT / "config" / "extract.yaml", {"repo": str(ROOT), "out_graph": str(graph)}
        )
    )
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


def test_describe_reads_what_the_code_shown_does() -> None:
    """The opening sentence comes from the lines shown: docstring (conjugated), raises, returns, calls."""
    from dataset.describe import describe, read_code

    code = textwrap.dedent(
        '''\
        def acquire(self, timeout: float = 1.0) -> Conn:
            """Take a connection from the pool, waiting up to `timeout` seconds.

            More text that is not the first sentence.
            """
            if self.closed:
                raise PoolClosed("closed")
            conn = self._queue.get(timeout=timeout)
            self._check(conn)
            return conn
        '''
    )
    facts = read_code(code, "Pool.acquire")
    assert facts.raises == ["PoolClosed"] and facts.returns == ["conn"]
    assert facts.calls == ["_check"]  # `self._queue.get` is a container call, the raise is not a call
    text = describe("Pool.acquire", "[src/pool.py:40-49]", code, focus="raises")
    assert text == (
        "`Pool.acquire` [src/pool.py:40-49] takes a connection from the pool, waiting up to "
        "`timeout` seconds. It raises `PoolClosed`. It returns `conn`."
    )
    go = "// Open dials the server and returns a session.\nfunc Open(addr string) (*Session, error) {\n\treturn dial(addr)\n}"
    assert describe("Open", "[s.go:1-4]", go, extra=1).startswith(
        "`Open` [s.go:1-4] dials the server and returns a session. It returns `dial(addr)`."
    )
    cls = "class Cart:\n    def add(self, x):\n        pass\n    def total(self):\n        return 0\n"
    assert describe("Cart", "[c.py:1-5]", cls, kind="class") == (
        "`Cart` [c.py:1-5] is defined as `class Cart`. It defines `add` and `total`."
    )


def test_training_rows_search_like_make_query(
    shop: DatasetConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dataset stage retrieves a row's code with the search `make query` runs: the same
    config/brain.yaml settings and the same rankers, so a training row shows what serving would."""
    from dataset.build import _searcher
    from inference.config import QueryConfig
    from inference.query import Retriever

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "brain.yaml").write_text("search:\n  k: 3\n  lexical_weight: 0.25\n")
    monkeypatch.chdir(tmp_path)
    with _searcher(shop) as train, Retriever(shop.graph, QueryConfig()) as served:
        assert train.scfg == served.searcher.scfg and train.scfg.lexical_weight == 0.25
        question = "What does Cart.add return?"
        assert [h.id for h in train.search(question)] == [h.id for h in served.searcher.search(question)]


def test_non_library_share_caps_rows_about_tests(shop: DatasetConfig, tmp_path: Path) -> None:
    """Library code is asked first; tests fill only what is left, up to `non_library_share`."""
    many = Counts(discovery=60, explain=120, howto=40, diag=20, architecture=40)

    def about_tests(rows: list[dict[str, Any]]) -> int:
        return sum(str(r.get("subject") or "").startswith("tests/") for r in rows)

    assert about_tests(_rebuilt(shop, tmp_path / "all", counts=many)) > 0  # library code runs out
    assert about_tests(_rebuilt(shop, tmp_path / "capped", counts=many, non_library_share=0.0)) == 0


def test_related_blocks_name_graph_tied_blocks_shown(shop: DatasetConfig, tmp_path: Path) -> None:
    """`related_blocks` closes an answer with other blocks shown that the graph ties to the subject,
    each by its label: a label the row does not show is never named."""
    rows = _rebuilt(shop, tmp_path / "related", context=ContextConfig(related_blocks=2))
    related = [r for r in rows if "Related code shown:" in r["response"]]
    assert related
    for r in related:
        tail = r["response"].split("Related code shown:", 1)[1]
        labels = re.findall(r"\[([^\[\]\s]+:\d+-\d+)\]", tail)
        assert labels and all(f"[{lab}]" in r["context"] for lab in labels), r["response"]


def test_walk_blocks_say_what_other_shown_blocks_do(shop: DatasetConfig, tmp_path: Path) -> None:
    """`walk_blocks` ends a positive answer with other blocks of its prompt, in the prompt's order,
    each by its own label and symbol, none named twice and none the answer already names."""
    rows = _rebuilt(shop, tmp_path / "walk", context=ContextConfig(walk_blocks=3))
    walked = [r for r in rows if "Also shown:" in r["response"]]
    assert walked
    with Graph(shop.graph) as g:
        for r in walked:
            head, tail = r["response"].split("Also shown:", 1)
            pairs = re.findall(r"`([^`]+)` \[([^\[\]\s]+):(\d+)-(\d+)\]", tail)
            assert 1 <= len(pairs) <= 3, r["response"]
            labels = [f"[{p}:{a}-{b}]" for _, p, a, b in pairs]
            assert labels == [lab for lab in r["context"] if lab in labels], r["response"]  # prompt order
            names = [name for name, *_ in pairs]
            assert len(set(names)) == len(names) and not any(f"`{n}`" in head for n in names)
            for name, path, a, _ in pairs:
                node = g.at(path, int(a))
                assert node is not None and node.qualname == name, (name, path, a)
    plain = _rebuilt(shop, tmp_path / "plain")
    assert not any("Also shown:" in r["response"] for r in plain)


def test_search_order_shows_training_rows_what_search_retrieves(shop: DatasetConfig, tmp_path: Path) -> None:
    """`order: search` asks a training row as a served question is asked: the blocks search packs
    for its question, in search order, whenever they show the answering code (else the cited code
    among distractors, shuffled, as by default)."""
    from answer.blocks import pack_blocks
    from answer.citations import parse
    from dataset.build import _searcher

    ctx = ContextConfig(order="search", absent_share=0.0)
    cfg = replace(shop, context=ctx)
    rows = _rebuilt(shop, tmp_path / "search", context=ctx)
    train = {r["id"] for r in _read(str(tmp_path / "search" / "train.jsonl"))}
    positives = [r for r in rows if r["id"] in train and not r["negative"] and r.get("context")]
    as_searched = 0
    with _searcher(cfg) as search, Graph(shop.graph) as g:
        for r in positives:
            hits = search.search(r["prompt"], ctx.search_k, mode=ctx.search_mode)
            labels = [
                b.label
                for b in pack_blocks(
                    hits, g.source, ctx.tokens, question=r["prompt"], window_lines=ctx.window_lines
                )
            ]
            if labels == r["context"]:
                as_searched += 1
                continue
            node = g.node(r["subject"]) if r.get("subject") else None
            shown = node is not None and any(
                c.path == node.path and c.start <= node.end_line and node.start_line <= c.end
                for c in map(parse, labels)
            )
            assert not shown, (
                r["prompt"],
                labels,
                r["context"],
            )  # search showed it: the row must be as searched
    assert as_searched >= len(positives) / 2, (as_searched, len(positives))
