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

from extractor.graph import Graph
from nanodex.errors import NanodexError
from nanodex.log import get_logger
from pca_otf.decoding import generate
from pca_otf.selftune.config import SelftuneConfig
from pca_otf.selftune.propose import Proposal

log = get_logger("selftune.answer")

INSTRUCTION = (
    "Answer in two or three sentences. Cite the code you rely on with its label from above, "
    "for example: `{name}` [{label}] ..."
)


@dataclass
class AnswerResult:
    text: str
    answerer: str
    selected: list[str] = field(default_factory=list)  # node ids or files the answer was conditioned on
    windows: list[str] = field(default_factory=list)  # path:start-end blocks shown to the model
    adapter_stats: dict[str, Any] = field(default_factory=dict)
    runner_citations: list[dict] = field(default_factory=list)  # the runner's own view, for the record
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


def pack_windows(
    graph: Graph, node_ids: list[str], max_lines: int, total_lines: int = 0
) -> tuple[str, list[str]]:
    """The subjects' code, each block labelled with its exact `[path:start-end]`, within budget."""
    blocks, labels, used = [], [], 0
    for nid in node_ids:
        n = graph.node(nid)
        if n is None:
            continue
        room = total_lines - used if total_lines > 0 else max_lines
        if room <= 0:
            break
        end = min(n.end_line, n.start_line + min(max_lines, room) - 1)
        used += end - n.start_line + 1
        code = graph.source(n.path, n.start_line, end)
        label = f"{n.path}:{n.start_line}-{end}"
        blocks.append(f"[{label}]\n{code}")
        labels.append(label)
    return "\n\n".join(blocks), labels


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
        context, labels = pack_windows(self.graph, p.subjects, a.context_lines, a.context_max_lines)
        first = self.graph.node(p.subjects[0]) if p.subjects else None
        hint = INSTRUCTION.format(
            name=first.qualname if first else "", label=labels[0] if labels else "path:start-end"
        )
        user = f"Code:\n{context}\n\nQuestion: {p.prompt}\n{hint}"
        # cite_prefix: the answer is started with the first subject's name and label, and the model
        # continues it (a 135M model rarely cites on its own); recorded as `forced_prefix`
        prefix = (
            f"`{first.qualname}` [{labels[0]}]" if self.cfg.answer.cite_prefix and first and labels else ""
        )
        chat = self.tok.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        ids = self.tok(chat + prefix, add_special_tokens=False)["input_ids"]
        # greedy, as pca_otf.run: a 135M model otherwise repeats the forced label until the limit
        new = generate(
            self.model,
            self.tok,
            ids,
            max_new_tokens=self.cfg.answer.max_new_tokens,
            no_repeat_ngram=self.cfg.answer.no_repeat_ngram,
        )
        text = prefix + self.tok.decode(new, skip_special_tokens=True)
        stats = {**self.stats, "forced_prefix": prefix or None}
        return AnswerResult(text.strip(), self.name, list(p.subjects), labels, stats,
                            seconds=time.perf_counter() - t0)  # fmt: skip


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
