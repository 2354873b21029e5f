"""Search benchmark on real user questions (issue 18): `brain.search` vs bm25s, per library.

The questions are `scripts/real_questions.jsonl` (see scripts/real_questions.py: real GitHub issue
and Q&A questions with gold symbols at a pinned version). Per library, its pinned sdist is
downloaded and unpacked (never imported), then run through the real stages: extract -> brain ->
embed -> dataset; the reranker is fitted on that dataset's grounded pairs (`brain.rerank`, which
reports its own held-out-fact gain). Then, per question:
  nanodex   `Searcher.search` (hybrid) as shipped: `make brain` fits no reranker, so the default
            weights; and the same with the reranker fitted on this library's dataset;
  bm25s     bm25s (default tokenizer, English stop words) over the raw source of every function,
            method and class of the same tree, in the same process;
  packed    the default query path's context: the top `QueryConfig.k` hits packed by
            `answer.blocks.pack_blocks` within `QueryConfig.context_tokens`, as `make query`
            sends them; it holds gold when a block shows a gold symbol's `def`/`class` line.
A hit is gold when it is the gold definition: same file, same last line, first line at or before
the gold's (the graph's span starts at a decorator, the gold's at `def`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from answer.blocks import pack_blocks
from brain.build import build_brain
from brain.config import BrainConfig, rerank_path
from brain.embed import embed
from brain.rerank import FEATURES, fit
from brain.search import Searcher
from extractor.build import extract
from extractor.config import ExtractConfig
from extractor.graph import Graph
from inference.config import QueryConfig
from nanodex.errors import NanodexError
from scripts.real_questions import DEFAULT, HELDOUT, Gold, Question, fetch_source, load

KS = (1, 5, 10)
# k and context budget of config/serve.yaml's `# GPU:` values: a 7B model reads 4x the code, and
# packed-holds-gold at that size is measured beside the CPU default's
GPU_CONTEXT = (32, 4096)


@dataclass
class Library:
    name: str
    version: str
    repo: Path
    graph: Path
    cfg: BrainConfig
    nodes: int = 0
    rerank: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def prepare_library(work: Path, name: str, version: str) -> Library:
    """Fetch, extract, build the brain, embed, make the dataset and fit the reranker (incremental)."""
    repo = fetch_source(name, version, work / "sdists")
    graph = work / f"real-{name}.sqlite"
    cfg = BrainConfig(graph=str(graph), out_dir=str(work / f"real-{name}-nodes"))
    lib = Library(name, version, repo, graph, cfg)
    t0 = time.perf_counter()
    extract(
        ExtractConfig(
            repo=str(repo), out_graph=str(graph), languages=["python"], workers=min(4, os.cpu_count() or 1)
        )
    )
    build_brain(cfg)
    embed(cfg)
    lib.timings["build"] = time.perf_counter() - t0
    ds = work / f"real-{name}-dataset"
    cmd = [
        sys.executable,
        "-m",
        "dataset",
        "--graph",
        str(graph),
        "--nodes-dir",
        cfg.out_dir,
        "--out",
        str(ds),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise NanodexError(f"dataset stage failed on {name}: {res.stderr.strip().splitlines()[-1:]}")
    t1 = time.perf_counter()
    # fitted, not written: the shipped path (`make brain`) searches with the default weights, and
    # the fitted ones are scored beside it
    rerank_path(cfg).unlink(missing_ok=True)
    lib.rerank = fit(cfg, ds, write=False)
    lib.timings["rerank fit"] = time.perf_counter() - t1
    with Graph(graph) as g:
        lib.nodes = sum(1 for _ in g.nodes())
    return lib


def is_gold(path: str, start: int, end: int, gold: Gold) -> bool:
    return path == gold.path and end == gold.end_line and start <= gold.start_line


def rank_of(spans: list[tuple[str, int, int]], golds: tuple[Gold, ...]) -> int | None:
    for i, (p, s, e) in enumerate(spans):
        if any(is_gold(p, s, e, g) for g in golds):
            return i
    return None


def recall(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {f"R@{k}": sum(1 for r in ranks if r is not None and r < k) / n for k in KS}


def bm25s_spans(lib: Library, questions: list[Question], k: int = 10) -> list[list[tuple[str, int, int]]]:
    """The baseline: bm25s over the raw source of every function, method and class."""
    import bm25s

    spans: list[tuple[str, int, int]] = []
    docs: list[str] = []
    files: dict[str, list[str]] = {}
    with Graph(lib.graph) as g:
        for n in g.nodes():
            if n.type not in ("function", "method", "class"):
                continue
            if n.path not in files:
                files[n.path] = (lib.repo / n.path).read_text(encoding="utf-8", errors="replace").splitlines()
            spans.append((n.path, n.start_line, n.end_line))
            docs.append("\n".join(files[n.path][n.start_line - 1 : n.end_line]))
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
    qtok = bm25s.tokenize([q.question for q in questions], stopwords="en", show_progress=False)
    results, _ = retriever.retrieve(qtok, k=min(k, len(docs)), show_progress=False, n_threads=1)
    return [[spans[i] for i in row] for row in results.tolist()]


def packed_holds_gold(blocks: list, golds: tuple[Gold, ...]) -> bool:
    return any(b.path == g.path and b.start <= g.start_line <= b.end for b in blocks for g in golds)


def evaluate_library(lib: Library, questions: list[Question], qcfg: QueryConfig) -> dict:
    """Recall of nanodex as shipped (default weights) and with the fitted reranker, bm25s,
    packed-holds-gold of the shipped path, latency."""
    out: dict = {"questions": len(questions)}
    searcher = Searcher(lib.cfg, use_model=False)
    graph = Graph(lib.graph)
    ranks: dict[str, list[int | None]] = defaultdict(list)
    packed: list[bool] = []
    packed_gpu: list[bool] = []
    n_blocks: list[int] = []
    n_symbols: list[int] = []
    misses: list[str] = []
    try:
        shipped = searcher.weights.copy()
        fitted = np.array([lib.rerank["weights"][f] for f in FEATURES], dtype=np.float32)
        for q in questions:
            hits = searcher.search(q.question, 10)
            ranks["nanodex"].append(rank_of([(h.path, h.start_line, h.end_line) for h in hits], q.gold))
            for kk, budget, sink in ((qcfg.k, qcfg.context_tokens, packed), (*GPU_CONTEXT, packed_gpu)):
                top = searcher.search(q.question, kk)
                blocks = pack_blocks(
                    top,
                    graph.source,
                    budget,
                    window_lines=qcfg.window_lines,
                    question=q.question,
                )
                sink.append(packed_holds_gold(blocks, q.gold))
                if sink is packed:
                    n_blocks.append(len(blocks))
                    n_symbols.append(
                        sum(
                            1
                            for h in top
                            if any(b.path == h.path and h.start_line <= b.start <= h.end_line for b in blocks)
                        )
                    )
            if not packed[-1]:
                misses.append(q.id)
            searcher.weights = fitted
            hits = searcher.search(q.question, 10)
            ranks["nanodex, fitted reranker"].append(
                rank_of([(h.path, h.start_line, h.end_line) for h in hits], q.gold)
            )
            searcher.weights = shipped
    finally:
        searcher.close()
        graph.close()
    ranks["bm25s"] = [
        rank_of(spans, q.gold) for spans, q in zip(bm25s_spans(lib, questions), questions, strict=True)
    ]
    out["recall"] = {m: recall(r) for m, r in ranks.items()}
    out["packed_holds_gold"] = sum(packed) / max(len(packed), 1)
    out["packed_holds_gold_gpu"] = sum(packed_gpu) / max(len(packed_gpu), 1)
    out["gpu_k"], out["gpu_context_tokens"] = GPU_CONTEXT
    out["k"], out["context_tokens"] = qcfg.k, qcfg.context_tokens
    out["blocks_mean"] = sum(n_blocks) / max(len(n_blocks), 1)
    out["symbols_mean"] = sum(n_symbols) / max(len(n_symbols), 1)
    out["packed_misses"] = misses
    return out


def run_real(work: Path, questions_paths: Sequence[str | Path] = ()) -> dict[str, dict]:
    """Every library of the question sets (default: the tuning set and the held-out set): prepared,
    then evaluated. Returns results per library.

    A library of the held-out set (`HELDOUT`: collected after the ranking was designed, never
    tuned on) is reported as "NAME VERSION (held out)", so a gain that does not carry over to
    it shows.
    """
    by_lib: dict[tuple[str, str, bool], list[Question]] = defaultdict(list)
    for path in questions_paths or (DEFAULT, HELDOUT):
        for q in load(path):
            by_lib[(q.library, q.version, Path(path).resolve() == HELDOUT.resolve())].append(q)
    qcfg = QueryConfig()
    results: dict[str, dict] = {}
    for (name, version, held), group in sorted(by_lib.items(), key=lambda kv: (kv[0][2], kv[0][:2])):
        lib = prepare_library(work, name, version)
        res = evaluate_library(lib, group, qcfg)
        res["nodes"] = lib.nodes
        res["rerank"] = {k: v for k, v in lib.rerank.items() if k != "weights"}
        res["timings"] = lib.timings
        results[f"{name} {version}" + (" (held out)" if held else "")] = res
    return results
