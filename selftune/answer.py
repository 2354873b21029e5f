"""Answer a proposal: the pca_otf runner, or base + main adapter over packed symbol windows.

Two answerers, chosen explicitly by `answer.answerer` and recorded in every distill row:
- runner: `pca_otf.run.Runner` (selection, packing, program-conditioned adapter, citation
  repair); scoped to the proposal's files;
- direct: the base model with the main adapter (when it exists), greedy, with the subjects' code
  packed as `[path:start-end]`-labelled windows. It needs nothing but the graph and the model,
  so self-tune also runs where no pca_otf build exists.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from answer.blocks import Block, pack_blocks
from answer.generate import generate
from answer.prompt import build_messages
from extractor.graph import Graph
from nanodex.errors import NanodexError
from nanodex.log import get_logger
from selftune.config import SelftuneConfig
from selftune.propose import Proposal

log = get_logger("selftune.answer")


@dataclass
class AnswerResult:
    text: str
    answerer: str
    selected: list[str] = field(default_factory=list)  # node ids or files the answer was conditioned on
    windows: list[str] = field(default_factory=list)  # path:start-end blocks shown to the model
    adapter_stats: dict[str, Any] = field(default_factory=dict)
    runner_citations: list[dict] = field(default_factory=list)  # the runner's own view, for the record
    messages: list[dict[str, str]] = field(default_factory=list)  # the conversation asked (answer.prompt)
    seconds: float = 0.0


class Answerer(Protocol):
    name: str

    def answer(self, p: Proposal) -> AnswerResult: ...


def adapter_stats(adapter: Path | None) -> dict[str, Any]:
    """rank, alpha and target modules of a PEFT adapter folder (empty when there is none)."""
    if adapter is None or not (adapter / "adapter_config.json").is_file():
        return {"adapter": None}
    conf = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    targets = conf.get("target_modules")
    return {
        "adapter": str(adapter),
        "rank": conf.get("r"),
        "alpha": conf.get("lora_alpha"),
        "targets": sorted(targets) if isinstance(targets, list) else targets,
    }


def subject_blocks(
    graph: Graph, node_ids: list[str], question: str, window_lines: int, budget_tokens: int
) -> list[Block]:
    """The subjects' code as labelled blocks, in subject order, within the token budget: symbol
    windows for the question, the form `make query` packs and training rows show."""
    nodes = [n for n in (graph.node(i) for i in node_ids) if n is not None]
    return pack_blocks(nodes, graph.source, budget_tokens, question=question, window_lines=window_lines)


class DirectAnswerer:
    """Base + main adapter, greedy decoding over packed windows of the proposal's subjects."""

    name = "direct"

    def __init__(self, cfg: SelftuneConfig, graph: Graph) -> None:
        import torch

        from nanodex.models import resolve_model
        from trainer.model import cpu_threads, device_kind, load_adapter, load_tokenizer, quiet_transformers

        self.cfg, self.graph = cfg, graph
        if device_kind() == "cpu":
            torch.set_num_threads(cpu_threads(0))
        base_path = resolve_model(cfg.base)
        self.tok = load_tokenizer(base_path)
        adapter = Path(cfg.adapter) if cfg.adapter else None
        if adapter is not None and (adapter / "adapter_config.json").is_file():
            self.model = load_adapter(base_path, adapter)
            self.stats = adapter_stats(adapter)
        else:
            from transformers import AutoModelForCausalLM

            quiet_transformers()
            if adapter is not None:
                log.warning("no adapter in %s: answering with the base model alone", adapter)
            self.model = AutoModelForCausalLM.from_pretrained(str(base_path)).eval()
            self.stats = adapter_stats(None)

    def answer(self, p: Proposal) -> AnswerResult:
        t0 = time.perf_counter()
        a = self.cfg.answer
        blocks = subject_blocks(self.graph, p.subjects, p.prompt, a.context_lines, a.context_tokens)
        first = self.graph.node(p.subjects[0]) if p.subjects else None
        # cite_prefix: the answer opens with the first subject's name and label, the form training
        # rows teach, and the model continues it; recorded as `forced_prefix`
        prefix = f"`{first.qualname}` {blocks[0].label}" if a.cite_prefix and first and blocks else ""
        asked = build_messages(p.prompt, blocks)
        text = generate(
            self.model,
            self.tok,
            [asked],
            max_new_tokens=a.max_new_tokens,
            blocks=[blocks],
            prefixes=[prefix],
            no_repeat_ngram=a.no_repeat_ngram,
        )[0]
        stats = {**self.stats, "forced_prefix": prefix or None}
        labels = [b.label.strip("[]") for b in blocks]
        return AnswerResult(text, self.name, list(p.subjects), labels, stats,
                            seconds=time.perf_counter() - t0, messages=asked)  # fmt: skip


class RunnerAnswerer:
    """pca_otf.run.Runner scoped to the proposal's files (program-conditioned adapter + packing)."""

    name = "runner"

    def __init__(self, cfg: SelftuneConfig, graph: Graph) -> None:
        try:
            from pca_otf.config import PcaConfig
            from pca_otf.run import Runner
        except ImportError as err:
            raise NanodexError(
                f"answer.answerer is 'runner' but pca_otf.run cannot be imported ({err})",
                "build pca_otf first, or set answer.answerer: direct in config/selftune.yaml",
            ) from err
        from nanodex.config import load_config

        pcfg = load_config(PcaConfig, cfg.answer.pca_config)
        # self-tune keeps only cited answers: show the code, ask for citations, retry/mark the rest
        pcfg.run.pack_context = pcfg.run.require_citations = pcfg.run.citations_enforce = True
        pcfg.run.max_new_tokens = cfg.answer.max_new_tokens
        artifacts = cfg.answer.artifacts or pcfg.run.artifacts
        # self-tune has just re-extracted the changed code: bring the build up to date with it
        # (a no-op when nothing it depends on changed), else the runner refuses a stale build
        from dataclasses import replace

        from pca_otf.build import build

        build(replace(pcfg.build, graph=cfg.graph, base=cfg.base, out_dir=artifacts))
        self.runner = Runner(pcfg.run, graph=cfg.graph, base=cfg.base, artifacts=artifacts)

    def answer(self, p: Proposal) -> AnswerResult:
        t0 = time.perf_counter()
        ans = self.runner.answer(p.prompt, scope_paths=p.files)
        # the body (answer without the provenance footer) is what gets verified and trained on
        return AnswerResult(
            text=(getattr(ans, "body", None) or ans.text).strip(),
            answerer=self.name,
            selected=[str(n.get("id")) for n in ans.selected_nodes],
            windows=[str(w.get("label")) for w in ans.windows],
            adapter_stats={**dict(ans.adapter_stats or {}), "provenance": ans.provenance},
            runner_citations=[dict(c) for c in ans.citations],
            messages=ans.messages,
            seconds=time.perf_counter() - t0,
        )


def make_answerer(cfg: SelftuneConfig, graph: Graph) -> Answerer:
    if cfg.answer.answerer == "direct":
        return DirectAnswerer(cfg, graph)
    if cfg.answer.answerer == "runner":
        return RunnerAnswerer(cfg, graph)
    raise NanodexError(
        f"answer.answerer must be 'direct' or 'runner', got {cfg.answer.answerer!r}",
        "fix config/selftune.yaml",
    )
