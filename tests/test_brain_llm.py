"""The local LLM summarizer (summary.backend: local) with the real embedded SmolLM2-135M on the Python fixture.

No mock: the model is the embedded default, converted once into ~/.cache/nanodex by
nanodex.models. Only the error nodes of the fixture are built (a handful) and generation is
short, so the test stays small on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brain.build import LLM_FAILED, build_brain
from brain.config import BrainConfig
from brain.nodes import load_nodes
from brain.text import citations_in, count_tokens
from extractor.graph import Graph
from tests.conftest import FIXTURES, build_graph


def _cfg(tmp: Path) -> BrainConfig:
    graph = tmp / "graph.sqlite"
    build_graph(FIXTURES / "python", graph, ["python"])
    cfg = BrainConfig(graph=str(graph), out_dir=str(tmp / "nodes"), node_types=["error"])
    cfg.summary.style = "llm"
    cfg.summary.backend = "local"
    cfg.summary.max_new_tokens = 24
    cfg.summary.batch_size = 4
    cfg.summary.max_source_lines = 8
    cfg.summary.max_tokens = 80
    return cfg


@pytest.mark.slow
def test_local_llm_summaries_are_grounded_and_incremental(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path)
    report = build_brain(cfg)
    assert report.nodes >= 2 and report.written == report.nodes and report.llm_failed == 0
    assert report.llm_written + report.llm_rejected == report.nodes
    nodes = load_nodes(cfg.out_dir)
    with Graph(cfg.graph) as graph:
        for node in nodes:
            assert node["summarizer"] == "llm-2:local:embedded:smollm2-135m:24"
            assert count_tokens(node["summary"]) <= cfg.summary.max_tokens
            cited = citations_in(node["summary"])
            assert cited and all(graph.resolves(p, s, e) for p, s, e in cited), node["summary"]
            if node["summary_by"] == "llm":
                # the model's prose, then the node's citations: every one the extractive summary had
                assert "fallback" not in node
                spans = {f"{p}:{s}-{e}" for p, s, e in cited}
                assert {c for c in node["restored_citations"]} <= spans
            else:  # never silent: the reason and the rejected answer are in the file and the report
                assert node["fallback"] and report.fallbacks[node["id"]] == node["fallback"]
                assert "llm_answer" in node
    assert report.llm_written >= 1, report.fallbacks  # the small model can rephrase an error node

    # greedy decoding and content hashes: a second run redoes nothing and loads no model
    import brain.build as build

    def no_model(_cfg: object) -> None:
        raise AssertionError("the model was loaded although no node changed")

    with monkeypatch.context() as m:
        m.setattr(build, "make_summarizer", no_model)
        again = build_brain(cfg)
    assert again.written == 0 and again.unchanged == report.nodes

    # a node whose content changed is redone, and only that one
    victim = sorted(Path(cfg.out_dir).glob("*.json"))[0]
    data = json.loads(victim.read_text(encoding="utf-8"))
    data["hash"] = "stale"
    victim.write_text(json.dumps(data), encoding="utf-8")
    third = build_brain(cfg)
    assert third.changed_ids == [data["id"]]


def test_local_backend_failure_is_recorded_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generation error keeps the extractive summary with its reason, and is retried next run.

    The failure is injected (a stand-in summarizer raising RuntimeError) because the real model
    does not fail on demand; the rest of the pipeline is real.
    """
    import brain.build as build

    class Broken:
        fingerprint = "llm-2:local:broken:24"
        batch_size = 4

        def complete_many(self, prompts: list[str]) -> list[str | Exception]:
            return [RuntimeError("out of memory")] * len(prompts)

    monkeypatch.setattr(build, "make_summarizer", lambda cfg: Broken())
    cfg = _cfg(tmp_path)
    report = build_brain(cfg)
    assert report.llm_failed == report.nodes > 0
    for node in load_nodes(cfg.out_dir):
        assert node["summarizer"] == LLM_FAILED and "out of memory" in node["fallback"]
        assert node["summary_by"] == "extractive" and citations_in(node["summary"])
    assert build_brain(cfg).llm_failed == report.nodes  # retried, not skipped as unchanged
