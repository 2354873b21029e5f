"""`make brain`: graph -> typed nodes with summaries (work/nodes/*.json) -> search index.

Incremental: a node is summarized again only when its content hash (facts, refs, citations,
the code it describes) or the summarizer changed; node files of nodes that no longer exist are
removed. The search index is cheap next to summarizing and is rebuilt whole, atomically.

With `summary.style: llm` the extractive summary is still computed for every redone node: it is
the facts the model rephrases, and what the node keeps when the model fails (transport errors:
retried next run) or its answer fails the grounding check (brain.grounding: kept, with the
reason in the node file, until the node's content changes).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from brain.config import NODE_TYPES, BrainConfig, index_path
from brain.facts import GraphFacts, load_facts
from brain.grounding import check_summary
from brain.index import build_index
from brain.llm import BACKENDS, Summarizer, build_prompt, make_summarizer, planned_fingerprint
from brain.nodes import content_hash, read_existing, write_node
from brain.ontology import BrainNode, Ontology
from brain.summarize import EXTRACTIVE_VERSION, extractive_summary
from extractor.graph import Graph
from nanodex.errors import NanodexError
from nanodex.log import get_logger, progress

log = get_logger("brain")

LLM_FAILED = f"{EXTRACTIVE_VERSION} (llm failed)"  # summarizer of a node whose LLM request failed


@dataclass
class BrainReport:
    nodes: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    llm_written: int = 0  # summaries the LLM wrote that passed the grounding check
    llm_failed: int = 0  # requests/generations that failed (extractive kept, retried next run)
    llm_rejected: int = 0  # LLM answers that failed the grounding check (extractive kept, reason recorded)
    index_cards: int = 0
    index_edges: int = 0
    seconds: float = 0.0
    changed_ids: list[str] = field(default_factory=list)
    fallbacks: dict[str, str] = field(default_factory=dict)  # node id -> why it kept its extractive summary

    def summary(self) -> str:
        types = ", ".join(f"{t} {self.by_type.get(t, 0)}" for t in NODE_TYPES)
        llm = ""
        if self.llm_written or self.llm_failed or self.llm_rejected:
            llm = (
                f", LLM: {self.llm_written} written, {self.llm_rejected} failed the grounding check, "
                f"{self.llm_failed} failed (extractive kept)"
            )
        return (
            f"{self.nodes} nodes ({types}): {self.written} written, {self.unchanged} unchanged, "
            f"{self.removed} removed{llm}; search index {self.index_cards} cards, {self.index_edges} edges; "
            f"{self.seconds:.2f}s"
        )


def validate(cfg: BrainConfig) -> None:
    """Reject settings that would otherwise fail late or silently."""
    unknown = sorted(set(cfg.node_types) - set(NODE_TYPES))
    if unknown:
        raise NanodexError(f"unknown node_types {unknown}", f"use some of: {', '.join(NODE_TYPES)}")
    if cfg.summary.style not in ("extractive", "llm"):
        raise NanodexError(f"unknown summary.style '{cfg.summary.style}'", "use extractive or llm")
    if cfg.summary.backend not in BACKENDS:
        raise NanodexError(f"unknown summary.backend '{cfg.summary.backend}'", f"use {' or '.join(BACKENDS)}")
    if cfg.search.fusion not in ("score", "rrf"):
        raise NanodexError(f"unknown search.fusion '{cfg.search.fusion}'", "use score or rrf")
    if cfg.summary.max_tokens < 16:
        raise NanodexError(f"summary.max_tokens {cfg.summary.max_tokens} is too small", "use at least 16")
    if cfg.summary.max_new_tokens < 8:
        raise NanodexError(
            f"summary.max_new_tokens {cfg.summary.max_new_tokens} is too small", "use at least 8"
        )


def _code_excerpt(graph_lines: list[str], node: BrainNode, max_lines: int) -> str:
    return "\n".join(graph_lines[node.start_line - 1 : min(node.end_line, node.start_line + max_lines - 1)])


def _summaries(
    todo: list[BrainNode], llm: Summarizer | None, facts: GraphFacts, cfg: BrainConfig, report: BrainReport
) -> Iterator[tuple[BrainNode, str, str, dict]]:
    """(node, summary, summarizer, check record) for each node to redo, LLM batches when asked for."""
    max_tokens = cfg.summary.max_tokens
    if llm is None:
        for node in todo:
            yield node, extractive_summary(node, max_tokens), EXTRACTIVE_VERSION, {}
        return

    def resolves(path: str, start: int, end: int) -> bool:
        return 1 <= start <= end <= facts.file_lines.get(path, 0)

    for b in range(0, len(todo), llm.batch_size):
        batch = todo[b : b + llm.batch_size]
        texts = [extractive_summary(n, max_tokens) for n in batch]
        prompts = [
            build_prompt(
                n, t, _code_excerpt(facts.lines(n.path), n, cfg.summary.max_source_lines), max_tokens
            )
            for n, t in zip(batch, texts, strict=True)
        ]
        for node, text, answer in zip(batch, texts, llm.complete_many(prompts), strict=True):
            if isinstance(answer, Exception):
                log.debug("LLM summary of %s failed: %s", node.id, answer)
                report.llm_failed += 1
                reason = f"LLM request failed: {answer.__class__.__name__}: {answer}"[:300]
                report.fallbacks[node.id] = reason
                yield node, text, LLM_FAILED, {"summary_by": "extractive", "fallback": reason}
                continue
            checked = check_summary(answer, node, text, max_tokens, resolves)
            record = {"summary_by": "llm" if checked.accepted else "extractive", **checked.record()}
            if checked.accepted:
                report.llm_written += 1
            else:
                report.llm_rejected += 1
                report.fallbacks[node.id] = checked.reason
                record["llm_answer"] = answer[:1000]  # what was rejected, for whoever looks into it
            yield node, checked.text, llm.fingerprint, record


def build_brain(cfg: BrainConfig) -> BrainReport:
    """Build or update `cfg.out_dir` and the search index from the graph at `cfg.graph`."""
    t0 = time.perf_counter()
    validate(cfg)
    out_dir = Path(cfg.out_dir)
    with Graph(cfg.graph) as graph:
        facts = load_facts(graph)
        nodes = Ontology(facts, cfg).build()
        existing = read_existing(out_dir)
        report = BrainReport(nodes=len(nodes), by_type=dict(Counter(n.type for n in nodes)))

        digests = {node.id: content_hash(node, cfg.summary.max_tokens) for node in nodes}
        summaries: dict[str, str] = {}
        todo: list[BrainNode] = []
        llm: Summarizer | None = None
        if cfg.summary.style == "llm":
            summarizer = planned_fingerprint(cfg.summary)
            if summarizer is None:  # the endpoint must say which model it serves
                llm = make_summarizer(cfg.summary)
                summarizer = llm.fingerprint
        else:
            summarizer = EXTRACTIVE_VERSION
        for node in nodes:
            old = existing.get(node.id)
            if old is not None and old.hash == digests[node.id] and old.summarizer == summarizer:
                summaries[node.id] = old.summary
                report.unchanged += 1
            else:
                todo.append(node)

        if todo and cfg.summary.style == "llm" and llm is None:
            llm = make_summarizer(cfg.summary)  # a model is loaded only when some node must be redone
        out_dir.mkdir(parents=True, exist_ok=True)
        results = _summaries(todo, llm, facts, cfg, report)
        for node, text, used, record in progress(results, total=len(todo), desc="summarize", unit="node"):
            write_node(out_dir, node, text, digests[node.id], used, record)
            summaries[node.id] = text
            report.written += 1
            report.changed_ids.append(node.id)
        if report.llm_failed:
            log.warning("%d LLM summaries failed; kept extractive ones (retried next run)", report.llm_failed)
        if report.llm_rejected:
            reasons = Counter(r.split(" [", 1)[0] for r in report.fallbacks.values() if r)
            log.warning(
                "%d LLM summaries failed the grounding check and kept extractive ones (reasons in the "
                "node files): %s",
                report.llm_rejected,
                "; ".join(f"{n}x {r}" for r, n in reasons.most_common(3)),
            )

        current = {n.id for n in nodes}
        for node_id, old in existing.items():
            if node_id not in current:
                old.file.unlink(missing_ok=True)
                report.removed += 1

        by_target: dict[str, list[str]] = defaultdict(list)
        for node in nodes:
            if node.target:
                by_target[node.target].append(summaries[node.id])
        graph_meta = {
            "graph": str(Path(cfg.graph).resolve()),
            "graph_updated_at": graph.meta("updated_at"),
            "graph_commit": graph.meta("commit"),
            "graph_nodes": len(facts.nodes),
        }
        report.index_cards, report.index_edges = build_index(facts, by_target, index_path(cfg), graph_meta)
    report.seconds = time.perf_counter() - t0
    return report
