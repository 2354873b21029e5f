"""`make brain`: graph -> typed nodes with summaries (brain/nodes/*.json) -> search index.

Incremental: a node is summarized again only when its content hash (facts, refs, citations,
the code it describes) or the summarizer changed; node files of nodes that no longer exist are
removed. The search index is cheap next to summarizing and is rebuilt whole, atomically.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from brain.config import NODE_TYPES, BrainConfig, index_path
from brain.facts import load_facts
from brain.index import build_index
from brain.llm import LLMSummarizer
from brain.nodes import content_hash, read_existing, write_node
from brain.ontology import BrainNode, Ontology
from brain.summarize import EXTRACTIVE_VERSION, extractive_summary
from extractor.graph import Graph
from nanodex.errors import NanodexError
from nanodex.log import get_logger, progress

log = get_logger("brain")


@dataclass
class BrainReport:
    nodes: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    llm_failed: int = 0
    index_cards: int = 0
    index_edges: int = 0
    seconds: float = 0.0
    changed_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        types = ", ".join(f"{t} {self.by_type.get(t, 0)}" for t in NODE_TYPES)
        failed = f", {self.llm_failed} LLM failures kept extractive" if self.llm_failed else ""
        return (
            f"{self.nodes} nodes ({types}): {self.written} written, {self.unchanged} unchanged, "
            f"{self.removed} removed{failed}; search index {self.index_cards} cards, {self.index_edges} edges; "
            f"{self.seconds:.2f}s"
        )


def validate(cfg: BrainConfig) -> None:
    """Reject settings that would otherwise fail late or silently."""
    unknown = sorted(set(cfg.node_types) - set(NODE_TYPES))
    if unknown:
        raise NanodexError(f"unknown node_types {unknown}", f"use some of: {', '.join(NODE_TYPES)}")
    if cfg.summary.style not in ("extractive", "llm"):
        raise NanodexError(f"unknown summary.style '{cfg.summary.style}'", "use extractive or llm")
    if cfg.search.fusion not in ("score", "rrf"):
        raise NanodexError(f"unknown search.fusion '{cfg.search.fusion}'", "use score or rrf")
    if cfg.summary.max_tokens < 16:
        raise NanodexError(f"summary.max_tokens {cfg.summary.max_tokens} is too small", "use at least 16")


def _code_excerpt(graph_lines: list[str], node: BrainNode, max_lines: int) -> str:
    return "\n".join(graph_lines[node.start_line - 1 : min(node.end_line, node.start_line + max_lines - 1)])


def build_brain(cfg: BrainConfig) -> BrainReport:
    """Build or update `cfg.out_dir` and the search index from the graph at `cfg.graph`."""
    t0 = time.perf_counter()
    validate(cfg)
    out_dir = Path(cfg.out_dir)
    with Graph(cfg.graph) as graph:
        facts = load_facts(graph)
        nodes = Ontology(facts, cfg).build()
        llm = LLMSummarizer(cfg.summary) if cfg.summary.style == "llm" else None
        summarizer = llm.fingerprint if llm else EXTRACTIVE_VERSION
        existing = read_existing(out_dir)
        report = BrainReport(nodes=len(nodes), by_type=dict(Counter(n.type for n in nodes)))
        out_dir.mkdir(parents=True, exist_ok=True)

        summaries: dict[str, str] = {}
        todo: list[tuple[BrainNode, str]] = []
        for node in nodes:
            digest = content_hash(node, cfg.summary.max_tokens)
            old = existing.get(node.id)
            if old is not None and old.hash == digest and old.summarizer == summarizer:
                summaries[node.id] = old.summary
                report.unchanged += 1
            else:
                todo.append((node, digest))

        # code excerpts are read here: the graph's SQLite connection belongs to this thread
        jobs = [
            (
                node,
                digest,
                _code_excerpt(facts.lines(node.path), node, cfg.summary.max_source_lines) if llm else "",
            )
            for node, digest in todo
        ]

        def summarize(job: tuple[BrainNode, str, str]) -> tuple[BrainNode, str, str, str]:
            node, digest, code = job
            text = extractive_summary(node, cfg.summary.max_tokens)
            if llm is None:
                return node, digest, text, summarizer
            try:
                return node, digest, llm.summarize(node, text, code), summarizer
            except (OSError, ValueError) as err:
                log.debug("LLM summary of %s failed: %s", node.id, err)
                return node, digest, text, f"{EXTRACTIVE_VERSION} (llm failed)"

        workers = max(1, cfg.summary.workers) if llm else 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(summarize, jobs) if workers > 1 else map(summarize, jobs)
            for node, digest, text, used in progress(results, total=len(jobs), desc="summarize", unit="node"):
                write_node(out_dir, node, text, digest, used)
                summaries[node.id] = text
                report.written += 1
                report.changed_ids.append(node.id)
                if used != summarizer:
                    report.llm_failed += 1
        if report.llm_failed:
            log.warning("%d LLM summaries failed; kept extractive ones (retried next run)", report.llm_failed)

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
