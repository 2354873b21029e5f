"""Self-tune on the fixture repository tests/fixtures/selftune (calc/arith.py, calc/stats.py + tests).

The loop tests answer with a tiny Llama built in code (tests/test_trainer.py's builder): the point
there is the loop (what changed, what is skipped, what is redone), not the model; the answers
start with the forced `name` [path:start-end] prefix, so rows pass or fail on the real verifiers.
The slow test at the end runs the whole loop with the embedded SmolLM2-135M. Nothing is mocked:
extraction, the sandbox (real namespaces where the machine allows them), pytest, PEFT training.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from extractor.graph import Graph
from nanodex.errors import NanodexError
from selftune import distill
from selftune.config import SandboxConfig, SelftuneConfig
from selftune.module_adapters import slug
from selftune.sandbox import (
    NAMESPACES,
    RLIMITS_ONLY,
    choose_mechanism,
    probe_namespaces,
    run_in_sandbox,
)
from selftune.verify_citations import check_citations, subject_spans
from selftune.verify_content import ContentChecker
from selftune.verify_tests import mapped_tests, run_tests, verdict
from tests.conftest import build_graph

FIXTURE = Path(__file__).parent / "fixtures" / "selftune"
ROOT = Path(__file__).resolve().parents[1]
NS_REASON = probe_namespaces()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture
def graph(repo: Path, tmp_path: Path) -> Graph:
    path = tmp_path / "graph.sqlite"
    build_graph(repo, path, languages=["python"])
    g = Graph(path)
    yield g
    g.close()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_trainer import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


# ---- citation verifier ------------------------------------------------------------------------
def test_wrong_citations_are_rejected(graph: Graph) -> None:
    spans = subject_spans(graph, ["calc/stats.py::mean"])  # mean: calc/stats.py:14-18
    words = " returns the arithmetic mean of the values and raises ValueError when empty."
    ok = check_citations("`mean` [calc/stats.py:14-18]" + words, graph, spans, 1, 8)
    assert ok.passed, ok.reason
    assert check_citations("`mean` [calc/stats.py:15]" + words, graph, spans, 1, 8).passed
    cases = {
        "[calc/stats.py:6-11]": "outside the subject symbol",  # a real symbol (total), not the one asked about
        "[calc/stats.py:14-40]": "lines outside the file",
        "[calc/nowhere.py:3]": "file not indexed",
    }
    for cite, reason in cases.items():
        res = check_citations(f"`mean` {cite}{words}", graph, spans, 1, 8)
        assert not res.passed and reason in res.reason, (cite, res.reason)
    # one good and one bad citation: the answer is still rejected
    assert not check_citations(f"[calc/stats.py:14-18]{words} [calc/arith.py:4-6]", graph, spans, 1, 8).passed
    # no citation, or only a citation and no content
    assert "at least 1 required" in check_citations(words, graph, spans, 1, 8).reason
    assert "word(s) besides" in check_citations("`mean` [calc/stats.py:14-18]", graph, spans, 1, 8).reason


def test_forced_prefix_echoes_and_invented_names_are_rejected(graph: Graph) -> None:
    spans = subject_spans(graph, ["calc/stats.py::mean"])
    prefix = "`mean` [calc/stats.py:14-18]"
    body = " returns the arithmetic mean of the values and raises ValueError when empty."
    forced = check_citations(prefix + body, graph, spans, 1, 8, counted_from=len(prefix))
    assert not forced.passed and "besides the forced prefix's 1" in forced.reason
    assert check_citations(prefix + body + " See [calc/stats.py:15].", graph, spans, 1, 8, len(prefix)).passed
    question = (
        "Which tests cover `mean` in calc/stats.py? Cite the function and the tests as [path:start-end]."
    )
    checker = ContentChecker(graph)
    echo = checker.check(prefix + "\n\nQuestion: " + question, question, spans)
    assert not echo.passed and "echoes the question" in echo.reason
    assert checker.check(prefix + body, question, spans).passed  # ValueError: a builtin
    grounded = prefix + " divides `total` by `len(values)` via `calc.stats.total` in `calc/stats.py`."
    assert checker.check(grounded, question, spans).passed
    invented = checker.check(prefix + " raises `MeanOverflowError` via `mean.cache`.", question, spans)
    assert not invented.passed and invented.unknown_names == ["MeanOverflowError", "mean.cache"], invented
    paths = checker.check(prefix + " is defined in calc/stats.py, not in Calc/spec.py.", question, spans)
    assert not paths.passed and paths.unknown_names == ["Calc/spec.py"], paths


def test_citation_after_a_subject_name_must_be_that_subjects(graph: Graph) -> None:
    spans = subject_spans(graph, ["calc/stats.py::mean", "calc/stats.py::total"])
    text = "`total` [calc/stats.py:14-18] adds up all values one by one with add from arith."
    res = check_citations(text, graph, spans, 1, 8)  # inside mean's span, but cited for total
    assert not res.passed and "cited for `total`" in res.reason


# ---- sandbox ----------------------------------------------------------------------------------
HOSTILE = """
import pathlib, socket, sys
out = pathlib.Path(sys.argv[1])
try:
    out.write_text("escaped")
    print("WROTE-OUTSIDE")
except OSError as e:
    print("outside-blocked", type(e).__name__)
pathlib.Path("inside.txt").write_text("ok")
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("1.1.1.1", 53)); print("NETWORK-REACHED")
except OSError as e:
    print("network-blocked", e.errno)
"""


@pytest.mark.skipif(NS_REASON is not None, reason=f"no namespace isolation here: {NS_REASON}")
def test_sandbox_cannot_write_outside_or_reach_the_network(repo: Path, tmp_path: Path) -> None:
    """Mechanism: user+mount+net+uts+ipc+pid namespaces via unshare (real isolation, no fallback)."""
    cfg = SandboxConfig(isolation="namespaces", time_limit_s=60)
    assert choose_mechanism(cfg) == NAMESPACES
    (repo / "hostile.py").write_text(HOSTILE)
    outside = tmp_path / "outside.txt"
    res = run_in_sandbox([sys.executable, "hostile.py", str(outside)], repo, cfg)
    assert res.mechanism == NAMESPACES
    assert "outside-blocked" in res.stdout and "WROTE-OUTSIDE" not in res.stdout, res.stdout + res.stderr
    assert "network-blocked" in res.stdout and "NETWORK-REACHED" not in res.stdout
    assert not outside.exists()
    assert (repo / "inside.txt").read_text() == "ok"
    # root inside the namespace cannot undo the read-only mounts either
    again = run_in_sandbox(["/bin/sh", "-c", "mount -o remount,rw / && echo REMOUNTED"], repo, cfg)
    assert "REMOUNTED" not in again.stdout


def test_sandbox_limits_and_explicit_fallback(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = SandboxConfig(isolation="none", time_limit_s=2, memory_mb=256)
    assert choose_mechanism(cfg) == RLIMITS_ONLY  # only because the config says so, and recorded
    slow = run_in_sandbox([sys.executable, "-c", "import time; time.sleep(30)"], repo, cfg)
    assert slow.timed_out and slow.mechanism == RLIMITS_ONLY
    cfg.time_limit_s = 60
    big = run_in_sandbox(
        [sys.executable, "-c", "x = bytearray(1024 * 1024 * 1024); print('ALLOCATED')"], repo, cfg
    )
    assert big.returncode != 0 and "ALLOCATED" not in big.stdout and "MemoryError" in big.stderr
    # when namespaces are unavailable, `auto` refuses unless the fallback is allowed explicitly
    import selftune.sandbox as sb

    monkeypatch.setitem(sb._probe_cache, "result", "unshare: operation not permitted (simulated)")
    with pytest.raises(NanodexError, match="cannot isolate mapped tests"):
        choose_mechanism(SandboxConfig(isolation="auto"))
    assert choose_mechanism(SandboxConfig(isolation="auto", allow_unisolated=True)) == RLIMITS_ONLY


# ---- test verifier ----------------------------------------------------------------------------
def test_failing_mapped_test_rejects(repo: Path, graph: Graph, tmp_path: Path) -> None:
    cfg = SandboxConfig(isolation="auto", allow_unisolated=True, time_limit_s=120)
    ids = mapped_tests(graph, ["calc/arith.py::divide"])
    assert ids == ["tests/test_arith.py::test_divide", "tests/test_arith.py::test_divide_by_zero"]
    good = verdict(ids, run_tests(repo, ids, cfg, tmp_path / "scratch"))
    assert good.passed and good.status == "passed", good
    src = repo / "calc" / "arith.py"
    src.write_text(src.read_text().replace("return a / b", "return a * b"))
    bad = verdict(ids, run_tests(repo, ids, cfg, tmp_path / "scratch"))
    assert not bad.passed and bad.status == "failed"
    assert bad.tests["tests/test_arith.py::test_divide"] == "FAILED"
    assert bad.tests["tests/test_arith.py::test_divide_by_zero"] == "PASSED"
    (repo / "tests" / "test_skips.py").write_text(
        "import pytest\n\n\n@pytest.mark.parametrize('case', [])\ndef test_no_cases(case):\n    pass\n\n\n"
        "def test_no_data():\n    pytest.skip('data set absent')\n"
    )
    skips = ["tests/test_skips.py::test_no_cases", "tests/test_skips.py::test_no_data"]
    only = verdict(skips, run_tests(repo, skips, cfg, tmp_path / "scratch"))
    assert only.passed and only.status == "skipped" and set(only.tests.values()) == {"SKIPPED"}, only
    assert mapped_tests(graph, ["calc/arith.py::divide"], ["*::test_divide_by_*"]) == [
        "tests/test_arith.py::test_divide"
    ]
    (repo / "tests" / "test_broken.py").write_text(
        "raise RuntimeError('needs a data set')\ndef test_x():\n    pass\n"
    )
    broken = verdict(
        ["tests/test_broken.py::test_x"],
        run_tests(repo, ["tests/test_broken.py::test_x"], cfg, tmp_path / "scratch"),
    )
    assert not broken.passed and broken.tests == {"tests/test_broken.py::test_x": "COLLECTION ERROR"}, broken
    mixed = [*skips, "tests/test_arith.py::test_divide_by_zero"]
    assert verdict(mixed, run_tests(repo, mixed, cfg, tmp_path / "scratch")).status == "passed"
    assert verdict([], None).status == "disabled"
    nomap = verdict(mapped_tests(graph, ["calc/stats.py::spread"]), run_tests(repo, [], cfg, tmp_path))
    assert nomap.passed and nomap.status == "none-mapped"  # soft pass, recorded as such
    assert not list((tmp_path / "scratch").iterdir())  # scratch copies are removed


# ---- dataset rows -----------------------------------------------------------------------------
def test_kept_rows_are_deduplicated_and_never_touch_eval_facts(tmp_path: Path) -> None:
    def row(key: str, prompt: str, subjects: list[str], kind: str = "behaviour") -> dict:
        cit = {"path": "a.py", "start": 1, "end": 2, "ok": True}
        return {"key": key, "prompt": prompt, "subjects": subjects, "proposal_kind": kind, "module": "a.py",
                "answer": f"answer {key}", "verify": {"citations": {"citations": [cit]}}}  # fmt: skip

    ev = tmp_path / "eval.jsonl"
    ev.write_text(
        json.dumps({"prompt": "What does g do?", "subject": "a.py::g", "fact": "brain:1"}) + "\n"
        + json.dumps({"prompt": "Which tests cover h?", "fact": "selftune:tests:a.py::h"}) + "\n"
    )  # fmt: skip
    facts, prompts = distill.eval_exclusions([ev])
    kept = [
        row("1", "What does f do?", ["a.py::f"]),
        row("2", "what does  f do?", ["a.py::f"]),  # same prompt: the newer row wins
        row("3", "Explain g and f", ["a.py::f", "a.py::g"], "explain"),  # touches an eval subject
        row("4", "What does g do?", ["a.py::x"]),  # an eval prompt
        row("5", "Which tests cover h in a.py?", ["a.py::h"], "tests"),  # a held-out selftune fact
        row("6", "What does h do?", ["a.py::h"]),  # another question about h: allowed
    ]
    rows, dropped = distill.dataset_rows(kept, facts, prompts)
    assert [r["id"] for r in rows] == ["selftune-2", "selftune-6"]
    assert dropped == {"duplicate_prompt": 1, "eval_prompt": 1, "eval_fact": 2}
    assert all(r["kind"] == "selftune" and r["citations"] == ["a.py:1-2"] for r in rows)


# ---- the loop ---------------------------------------------------------------------------------
def loop_config(repo: Path, tmp_path: Path, base: Path) -> SelftuneConfig:
    cfg = SelftuneConfig(
        repo=str(repo),
        graph=str(tmp_path / "graph.sqlite"),
        base=str(base),
        adapter=str(tmp_path / "main-adapter"),
        brain_config=None,
        work_dir=str(tmp_path / "work"),
        dataset_out=str(tmp_path / "selftune.jsonl"),
        eval_dataset=str(tmp_path / "no-eval.jsonl"),
        eval_max_new_tokens=4,
    )
    cfg.propose.top_functions = 2
    cfg.propose.max_prompts = 4
    cfg.answer.max_new_tokens = 12
    cfg.verify.min_words = 0  # the tiny model's words are noise; the citation checks still apply
    cfg.verify.check_content = False  # ... and its backticks and echoes would be chance
    cfg.sandbox.allow_unisolated = NS_REASON is not None  # recorded in the report either way
    cfg.answer.context_tokens = 240  # the fixture's functions are a few lines each
    for run in (cfg.module_lora, cfg.refresh):  # rows carry the code they were asked with
        run.max_steps, run.batch_size, run.max_seq_len = 1, 2, 512
    cfg.refresh.replay_rows = 0
    return cfg


def test_change_to_one_function_retunes_only_its_module_and_resume_redoes_nothing(
    repo: Path, tmp_path: Path, tiny_base: Path
) -> None:
    from selftune.pipeline import run_selftune

    cfg = loop_config(repo, tmp_path, tiny_base)
    first = run_selftune(cfg)
    assert [m["module"] for m in first["modules"]] == ["calc/arith.py", "calc/stats.py"]  # curriculum order
    assert first["sandbox"] == (NAMESPACES if NS_REASON is None else RLIMITS_ONLY)
    arith = first["modules"][0]
    assert arith["counts"]["answered"] > 0 and arith["tests"]["outcomes"]
    assert all(v == "PASSED" for v in arith["tests"]["outcomes"].values())
    buffer = [json.loads(x) for x in (tmp_path / "work" / "distill.jsonl").read_text().splitlines()]
    assert {r["module"] for r in buffer} == {"calc/arith.py", "calc/stats.py"}
    for r in buffer:
        assert {"prompt", "files", "verify", "adapter_stats", "score", "keep"} <= set(r)
        verified = r["verify"]["citations"]["passed"] and r["verify"]["content"]["passed"]
        assert r["keep"] == (verified and r["verify"]["tests"]["passed"])
    kept_modules = {r["module"] for r in buffer if r["keep"]}
    for m in kept_modules:
        manifest = json.loads((Path(cfg.bank) / slug(m) / "nanodex.json").read_text())
        assert m in manifest["region"]["paths"] and manifest["region"]["node_ids"]
    report_md = (tmp_path / "work" / "report.md").read_text()
    # there was no main adapter before this run: "before" is the base model alone, never blank
    assert first["eval"]["after"] and "before" not in first["eval"]
    row = next(line for line in report_md.splitlines() if line.startswith("| answer_perplexity |"))
    assert row.split("|")[2].strip() != "-", row

    # nothing changed: nothing to do
    assert run_selftune(cfg)["modules"] == []

    # edit one function: only its module is self-tuned again, and the edited function is asked about
    src = repo / "calc" / "arith.py"
    src.write_text(src.read_text().replace("    return a + b", "    result = a + b\n    return result"))
    third = run_selftune(cfg)
    assert [m["module"] for m in third["modules"]] == ["calc/arith.py"]
    assert third["modules"][0]["changed_nodes"][0] == "calc/arith.py::add"
    assert third["extract"]["parsed"] == 1
    if third["refresh"]["status"] == "trained" and first["refresh"]["status"] == "trained":
        assert third["refresh"]["started_from"] == cfg.adapter  # continued from the main adapter's weights

    # --all --resume after a finished run: every proposal is skipped, no test runs, no training
    cfg.all = True
    again = run_selftune(cfg, resume=True)
    assert [m["module"] for m in again["modules"]] == ["calc/arith.py", "calc/stats.py"]
    for m in again["modules"]:
        assert m["counts"]["answered"] == 0 and m["counts"]["skipped_resume"] > 0
        assert m["tests"]["ids"] == [] and m["adapter"]["status"] in ("unchanged", "skipped")
    assert again["refresh"]["status"] in ("unchanged", "skipped")
    assert "load_answerer" not in again["seconds"]  # the model was never even loaded
    assert len(buffer) <= len((tmp_path / "work" / "distill.jsonl").read_text().splitlines())


def test_cli_help_and_bad_config(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "selftune", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0 and "--resume" in out.stdout and "--include-deps" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("answerr: direct\n")
    out = subprocess.run(
        [sys.executable, "-m", "selftune", "--config", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 2 and "unknown config key 'answerr'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_end_to_end_with_smollm2(repo: Path, tmp_path: Path) -> None:
    """The whole loop with the embedded SmolLM2-135M: real answers, verified, kept, trained, evaluated."""
    from selftune.pipeline import run_selftune

    cfg = loop_config(repo, tmp_path, Path("unused"))
    cfg.base = "embedded:smollm2-135m"
    cfg.answer.max_new_tokens = 32
    cfg.verify.min_words = 8
    cfg.verify.check_content = True  # the shipped default: echoes and invented names are rejected
    cfg.propose.max_prompts = 4
    rep = run_selftune(cfg)
    kept = sum(m["counts"]["kept"] for m in rep["modules"])
    assert kept > 0, rep["modules"]
    rows = [json.loads(x) for x in Path(cfg.dataset_out).read_text().splitlines()]
    assert rows and all(r["kind"] == "selftune" and r["citations"] for r in rows)
    assert rep["refresh"]["status"] == "trained"
    assert rep["eval"]["after"]["adapter"]["answer_perplexity"] > 0


def test_refresh_continues_from_the_adapters_own_weights(tiny_base: Path, tmp_path: Path) -> None:
    """trainer `init_adapter`: the refresh starts from the main adapter's trained LoRA weights."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from tests.test_trainer import tiny_config
    from trainer.model import continue_lora
    from trainer.run import train

    first = tmp_path / "main"
    train(tiny_config(tiny_base, first, max_steps=2, eval_dataset="", eval_interval=0))
    saved = load_file(str(first / "adapter_model.safetensors"))
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in saved.items())
    model = continue_lora(AutoModelForCausalLM.from_pretrained(tiny_base), first)
    live = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    for key, value in saved.items():
        match = [v for k, v in live.items() if k.replace(".default", "").endswith(key.split("model.", 1)[-1])]
        assert match and torch.equal(match[0], value), key
    assert any(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)
    again = tmp_path / "main-refreshed"
    res = train(
        tiny_config(tiny_base, again, max_steps=1, eval_dataset="", eval_interval=0, init_adapter=str(first))
    )
    assert res.manifest["config"]["init_adapter"] == str(first)
    assert json.loads((again / "adapter_config.json").read_text())["r"] == 8
