"""Search benchmark (issues 3 and 18): real user questions, and docstring -> function retrieval.

Real questions (issue 18, scripts/bench_real_search.py): `scripts/real_questions.jsonl` (the set
ranking decisions were made on) and `scripts/real_questions_heldout.jsonl` (collected later, shown
as "(held out)", never tuned on), questions from public GitHub issues and Q&A threads about PyPI libraries with gold symbols at a pinned
version; per library: r@1/5/10 of `brain.search` (the fitted reranker, and its default weights)
beside bm25s in the same process, "packed context holds gold" at the default query path's k and
budget, and the reranker's held-out-fact gain on the dataset stage's grounded pairs.

Docstring queries (issue 3). Corpus: the running Python's standard library
(`sysconfig.get_paths()['stdlib']`, without site-packages, `test/`, `tests/`, `idlelib/`,
`lib2to3/`) plus pure-Python packages from the environment (`_pytest`, `jinja2`, `yaml`, `pluggy`,
`tqdm`, `markdown_it`, when installed; never the packages DESIGN.md reserves for independent
evaluation), copied into a temporary folder. `--quick` indexes only the stdlib's top-level modules.
Every function or method with a docstring (dunder methods left out) gives one query, the first
sentence of its docstring with the function's own name tokens removed (the whole name and its
snake/camel parts, case-insensitive); the target is that function. Queries with fewer than three
words left, and texts that several functions share, are dropped; a seeded sample of `--queries`
(default 800) is kept. Results are also given per library (the target's package).

Two settings, each a separate tree, graph, brain and embeddings:
  docs kept      the tree as it is;
  docs stripped  a copy whose docstrings (module, class, function) are blanked with line numbers
                 preserved, so a function must be found from its code.
Methods: nanodex lexical-only (FTS5), dense-only (MiniLM), hybrid (the full search: rankers, rerank
pool, reranker weights), and a `bm25s` baseline (default tokenizer, English stop words, BM25
defaults) over the raw source of every function and method of the same tree.
Per library (scripts/bench_stripped_libs.py): the same two settings and methods with each of
tenacity, marshmallow, cachetools and attrs (pinned sdists) indexed alone, library functions asked.
Latency: wall time of one hybrid `Searcher.search` call per query (question embedding included),
p50/p95, in the docs-stripped setting, with the node count indexed, and the CPU time of the call
(`time.process_time`, less sensitive to other jobs on a shared machine) with the load average.
Targets (issue 18 "Must show"): real questions r@5 >= 0.85 and >= bm25s + 0.15 per library; packed
holds gold >= 0.85; docs stripped r@5 >= 0.45 per library; docs kept not below bm25s; p50 <= 50
ms with >= 20,000 nodes.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from brain.build import build_brain
from brain.config import BrainConfig, embeddings_path
from brain.embed import embed
from brain.search import Searcher
from brain.text import split_identifier
from extractor.build import extract
from extractor.config import ExtractConfig
from extractor.graph import Graph
from scripts.bench import Check, Section, table

PACKAGES = ("_pytest", "jinja2", "yaml", "pluggy", "tqdm", "markdown_it")
STDLIB_SKIP = {"site-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"}
METHODS = ("lexical", "dense", "hybrid", "bm25s")
MIN_NODES = 20_000


@dataclass
class Query:
    text: str
    target: str  # graph node id (path::qualname)


@dataclass
class Setting:
    name: str
    repo: Path
    graph: Path
    cfg: BrainConfig
    nodes: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of each timed hybrid search


# ---- corpus ----------------------------------------------------------------------------------
def copy_corpus(dst: Path, quick: bool) -> int:
    """Copy the stdlib (and packages) .py files into `dst`; returns the number of files."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    count = 0
    for src in sorted(stdlib.rglob("*.py")):
        rel = src.relative_to(stdlib)
        if rel.parts[0].startswith("config-") or STDLIB_SKIP.intersection(rel.parts):
            continue
        if quick and len(rel.parts) > 1:
            continue
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
        count += 1
    if quick:
        return count
    site = Path(sysconfig.get_paths()["purelib"])
    for name in PACKAGES:
        pkg = site / name
        if not pkg.is_dir():
            continue
        for src in sorted(pkg.rglob("*.py")):
            rel = src.relative_to(site)
            if "__pycache__" in rel.parts or (dst / rel).exists():
                continue
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst / rel)
            count += 1
    return count


def docstring_nodes(tree: ast.AST) -> list[ast.Expr]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                out.append(first)
    return out


def strip_docstrings(source: bytes) -> bytes:
    """`source` with every docstring replaced by `""` and the same number of lines."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    lines = source.splitlines(keepends=True)
    spans = sorted(
        (
            (d.lineno, d.col_offset, d.end_lineno or d.lineno, d.end_col_offset or 0)
            for d in docstring_nodes(tree)
        ),
        reverse=True,
    )
    for l1, c1, l2, c2 in spans:  # ast offsets are UTF-8 byte offsets: work on bytes
        head = lines[l1 - 1][:c1]
        tail = lines[l2 - 1][c2:]
        blank = [head + b'""' + (b"\n" if l2 > l1 else tail)]
        blank += [b"\n"] * (l2 - l1 - 1)
        if l2 > l1:
            blank.append(tail if tail.strip() else b"\n")
        lines[l1 - 1 : l2] = blank
    return b"".join(lines)


def strip_tree(src: Path, dst: Path) -> int:
    changed = 0
    for p in sorted(src.rglob("*.py")):
        out = dst / p.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = p.read_bytes()
        new = strip_docstrings(data)
        changed += new != data
        out.write_bytes(new)
    return changed


# ---- queries ---------------------------------------------------------------------------------
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"])")


def first_sentence(doc: str) -> str:
    para = doc.strip().split("\n\n", 1)[0]
    return " ".join(_SENT.split(" ".join(para.split()), maxsplit=1)[0].split())


def remove_name(sentence: str, name: str) -> str:
    """Drop the function's own name and its identifier parts (whole words, any case)."""
    for word in sorted({name, *split_identifier(name)} - {""}, key=len, reverse=True):
        sentence = re.sub(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", " ", sentence, flags=re.I)
    sentence = re.sub(r"`\s*`", " ", re.sub(r"\(\s*\)", " ", sentence))
    return " ".join(sentence.split())


def make_queries(repo: Path, graph: Path, limit: int, seed: int = 0) -> list[Query]:
    with Graph(graph) as g:
        by_pos = {(n.path, n.start_line, n.name): n.id for n in g.nodes() if n.type in ("function", "method")}
    found: list[Query] = []
    for p in sorted(repo.rglob("*.py")):
        rel = p.relative_to(repo).as_posix()
        try:
            tree = ast.parse(p.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("__") and node.name.endswith("__"):
                continue
            doc = ast.get_docstring(node)
            target = by_pos.get((rel, node.lineno, node.name))
            if not doc or target is None:
                continue
            text = remove_name(first_sentence(doc), node.name)
            if len(re.findall(r"[A-Za-z]{2,}", text)) >= 3:
                found.append(Query(text, target))
    counts = Counter(q.text.lower() for q in found)
    unique = [q for q in found if counts[q.text.lower()] == 1]
    rng = random.Random(seed)
    rng.shuffle(unique)
    return sorted(unique[:limit], key=lambda q: q.target)


# ---- evaluation ------------------------------------------------------------------------------
def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {
        "R@1": sum(1 for r in ranks if r is not None and r < 1) / n,
        "R@5": sum(1 for r in ranks if r is not None and r < 5) / n,
        "R@10": sum(1 for r in ranks if r is not None and r < 10) / n,
        "MRR": sum(1.0 / (r + 1) for r in ranks if r is not None and r < 10) / n,
    }


def rank_of(ids: list[str], target: str) -> int | None:
    return ids.index(target) if target in ids else None


def bm25s_ranks(setting: Setting, queries: list[Query]) -> list[int | None]:
    """The baseline: bm25s over the raw source of every function and method of the tree."""
    import bm25s

    ids: list[str] = []
    docs: list[str] = []
    with Graph(setting.graph) as g:
        files: dict[str, list[str]] = {}
        for n in g.nodes():
            if n.type not in ("function", "method"):
                continue
            if n.path not in files:
                files[n.path] = (
                    (setting.repo / n.path).read_text(encoding="utf-8", errors="replace").splitlines()
                )
            ids.append(n.id)
            docs.append("\n".join(files[n.path][n.start_line - 1 : n.end_line]))
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
    qtok = bm25s.tokenize([q.text for q in queries], stopwords="en", show_progress=False)
    results, _ = retriever.retrieve(qtok, k=10, show_progress=False, n_threads=1)
    return [
        rank_of([ids[i] for i in row], q.target) for row, q in zip(results.tolist(), queries, strict=True)
    ]


def library_of(node_id: str) -> str:
    """The package a query's target belongs to: one of PACKAGES, else the standard library."""
    top = node_id.split("/", 1)[0].split("::", 1)[0]
    return top if top in PACKAGES else "stdlib"


def evaluate(
    setting: Setting, queries: list[Query], k: int = 10
) -> tuple[dict[str, dict], list[float], dict[str, list[int | None]]]:
    """Metrics per method, the hybrid per-query latencies (seconds), and the ranks per method."""
    searcher = Searcher(setting.cfg)
    ranks: dict[str, list[int | None]] = {m: [] for m in METHODS}
    latency: list[float] = []
    cpu: list[float] = []
    try:
        searcher.search("warm up the model and caches", k)
        for q in queries:
            t0, c0 = time.perf_counter(), time.process_time()
            hits = searcher.search(q.text, k, mode="hybrid")
            latency.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            ranks["hybrid"].append(rank_of([h.id for h in hits], q.target))
            ranks["lexical"].append(
                rank_of([h.id for h in searcher.search(q.text, k, mode="lexical")], q.target)
            )
            if searcher.has_dense:
                vec = searcher.encode(q.text)
                ranks["dense"].append(
                    rank_of([h.id for h in searcher.search(q.text, k, mode="dense", qvec=vec)], q.target)
                )
    finally:
        searcher.close()
    setting.cpu = cpu
    ranks["bm25s"] = bm25s_ranks(setting, queries)
    return {m: metrics(r) for m, r in ranks.items() if r}, latency, ranks


def timed(setting: Setting, step: str, fn):  # noqa: ANN001, ANN201 - tiny local helper
    t0 = time.perf_counter()
    out = fn()
    setting.timings[step] = time.perf_counter() - t0
    return out


def prepare(work: Path, quick: bool) -> tuple[Setting, Setting]:
    """Copy, strip, extract, build the brain and embed both trees (incremental when `work` is reused)."""
    kept_repo, stripped_repo = work / "kept", work / "stripped"
    if not kept_repo.is_dir():
        copy_corpus(kept_repo, quick)
    if not stripped_repo.is_dir():
        strip_tree(kept_repo, stripped_repo)
    settings = []
    for name, repo in (("docs stripped", stripped_repo), ("docs kept", kept_repo)):
        slug = name.split()[1]
        graph = work / f"{slug}.sqlite"
        cfg = BrainConfig(graph=str(graph), out_dir=str(work / f"{slug}-nodes"))
        s = Setting(name, repo, graph, cfg)
        workers = min(4, os.cpu_count() or 1)
        timed(
            s,
            "extract",
            lambda r=repo, g=graph, w=workers: extract(
                ExtractConfig(repo=str(r), out_graph=str(g), languages=["python"], workers=w)
            ),
        )
        timed(s, "brain", lambda c=cfg: build_brain(c))
        if slug == "kept" and not embeddings_path(cfg).exists():
            # same node ids in both trees: vectors of texts that did not change (no docstring) are reused
            shutil.copyfile(embeddings_path(settings[0].cfg), embeddings_path(cfg))
        rep = timed(s, "embed", lambda c=cfg: embed(c))
        s.timings["embedded"] = rep.embedded
        with Graph(graph) as g:
            s.nodes = len(list(g.nodes()))
        settings.append(s)
    return settings[0], settings[1]


def report_real(section: Section, results: dict[str, dict]) -> None:
    """Tables and checks of the real-question benchmark (scripts/bench_real_search.py)."""
    rows, pack_rows, fit_rows = [], [], []
    for lib, res in results.items():
        for method, r in res["recall"].items():
            rows.append([lib, method, res["questions"], r["R@1"], r["R@5"], r["R@10"]])
        pack_rows.append(
            [
                lib,
                res["k"],
                res["context_tokens"],
                res["packed_holds_gold"],
                res["blocks_mean"],
                res["symbols_mean"],
                res["gpu_k"],
                res["gpu_context_tokens"],
                res["packed_holds_gold_gpu"],
            ]
        )
        rr = res["rerank"]
        fit_rows.append(
            [lib, rr["fit_questions"], rr["held_out_questions"], rr["held_out_before"]["R@1"], rr["held_out_after"]["R@1"],
             rr["held_out_before"]["R@5"], rr["held_out_after"]["R@5"],
             str(rr["held_out_after"]["R@5"] >= rr["held_out_before"]["R@5"])]
        )  # fmt: skip
        section.metrics[f"real/{lib}"] = res
        ours, base = res["recall"]["nanodex"]["R@5"], res["recall"]["bm25s"]["R@5"]
        section.checks.append(Check(f"real questions, {lib}: R@5", ours, 0.85))
        section.checks.append(Check(f"real questions, {lib}: R@5 minus bm25s R@5", ours - base, 0.15))
        section.checks.append(
            Check(f"real questions, {lib}: packed context holds gold", res["packed_holds_gold"], 0.85)
        )
        section.checks.append(
            Check(
                f"reranker held-out R@5 gain, {lib}",
                rr["held_out_after"]["R@5"] - rr["held_out_before"]["R@5"],
                0.0,
            )
        )
    table(
        ["library", "method", "questions", "R@1", "R@5", "R@10"],
        rows,
        title="real user questions (gold = the answering symbols)",
    )
    table(
        [
            "library",
            "k",
            "budget",
            "holds gold",
            "blocks",
            "symbols",
            "GPU k",
            "GPU budget",
            "GPU holds gold",
        ],
        pack_rows,
        title="packed context of the default query path, and of serve.yaml's GPU values (symbol windows;"
        " gold = a gold def line shown)",
    )
    table(
        ["library", "fit qs", "held-out qs", "R@1 before", "R@1 after", "R@5 before", "R@5 after", "kept"],
        fit_rows,
        title="reranker fitted on the dataset stage's grounded pairs; held out by fact",
    )


def run(
    quick: bool = False,
    queries: int = 800,
    workdir: str | None = None,
    real: bool = True,
    synthetic: bool = True,
    libraries: bool = True,
    questions: Sequence[str] = (),
) -> Section:
    """Build both settings, evaluate every method, print the tables and return the checks."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    section = Section("search")
    tmp = None
    if workdir:
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="nanodex-bench-search-")
        work = Path(tmp.name)
    try:
        t0 = time.perf_counter()
        if real:
            from scripts.bench_real_search import run_real

            report_real(section, run_real(work / "real", questions))
        if libraries:
            from scripts.bench_stripped_libs import report, run_libraries

            report(section, run_libraries(work / "libs"))
        if not synthetic:
            return section
        stripped, kept = prepare(work, quick)
        qs = make_queries(kept.repo, kept.graph, 200 if quick else queries)
        print(f"corpus: {kept.nodes} nodes (docs kept), {stripped.nodes} (docs stripped); {len(qs)} queries")
        rows = []
        lib_rows = []
        lat_ms: list[float] = []
        cpu_ms: list[float] = []
        libs = sorted({library_of(q.target) for q in qs})
        for s in (stripped, kept):
            load = os.getloadavg()[0]
            res, lat, ranks = evaluate(s, qs)
            if s is stripped:
                lat_ms = [x * 1000 for x in lat]
                cpu_ms = [x * 1000 for x in s.cpu]
                loads = (load, os.getloadavg()[0])
            for m in METHODS:
                if m in res:
                    r = res[m]
                    rows.append([s.name, m, r["R@1"], r["R@5"], r["R@10"], r["MRR"]])
                    section.metrics[f"{s.name}/{m}"] = r
            for lib in libs:
                idx = [i for i, q in enumerate(qs) if library_of(q.target) == lib]
                per = {m: metrics([ranks[m][i] for i in idx]) for m in ("hybrid", "bm25s") if ranks.get(m)}
                section.metrics[f"{s.name}/by library/{lib}"] = {"queries": len(idx), **per}
                if "hybrid" in per:
                    lib_rows.append(
                        [
                            s.name,
                            lib,
                            len(idx),
                            per["hybrid"]["R@5"],
                            per["bm25s"]["R@5"],
                            per["hybrid"]["R@1"],
                        ]
                    )
        table(
            ["setting", "method", "R@1", "R@5", "R@10", "MRR"],
            rows,
            title="retrieval (target = the function)",
        )
        table(
            ["setting", "library", "queries", "hybrid R@5", "bm25s R@5", "hybrid R@1"],
            lib_rows,
            title="retrieval per library (the same runs, queries grouped by the target's package)",
        )
        p50 = statistics.median(lat_ms) if lat_ms else float("nan")
        p95 = sorted(lat_ms)[int(0.95 * (len(lat_ms) - 1))] if lat_ms else float("nan")
        cpu50 = statistics.median(cpu_ms) if cpu_ms else float("nan")
        cpu95 = sorted(cpu_ms)[int(0.95 * (len(cpu_ms) - 1))] if cpu_ms else float("nan")
        table(
            ["nodes", "queries", "p50 ms", "p95 ms", "CPU p50 ms", "CPU p95 ms", "load before", "load after"],
            [[stripped.nodes, len(lat_ms), p50, p95, cpu50, cpu95, loads[0], loads[1]]],
            title="hybrid query latency (docs stripped, one question per call, embedding included)",
        )
        table(
            ["setting", "extract s", "brain s", "embed s", "texts embedded"],
            [
                [
                    s.name,
                    s.timings["extract"],
                    s.timings["brain"],
                    s.timings["embed"],
                    int(s.timings["embedded"]),
                ]
                for s in (stripped, kept)
            ],
            title="build times",
        )
        section.metrics |= {"nodes": stripped.nodes, "queries": len(qs), "p50_ms": p50, "p95_ms": p95}
        section.metrics |= {"cpu_p50_ms": cpu50, "cpu_p95_ms": cpu95, "load_avg": list(loads)}
        section.metrics["seconds"] = time.perf_counter() - t0
        m = section.metrics
        if "docs stripped/hybrid" in m:
            gain = m["docs stripped/hybrid"]["R@5"] - m["docs stripped/bm25s"]["R@5"]
            section.checks.append(Check("docs stripped: hybrid R@5 minus bm25s R@5", gain, 0.10))
            section.checks.append(
                Check(
                    "docs kept: hybrid R@5 minus bm25s R@5",
                    m["docs kept/hybrid"]["R@5"] - m["docs kept/bm25s"]["R@5"],
                    0.0,
                )
            )
        for lib in libs:
            per = m.get(f"docs stripped/by library/{lib}", {})
            if "hybrid" in per and per["queries"] >= 20:
                section.checks.append(Check(f"docs stripped, {lib}: hybrid R@5", per["hybrid"]["R@5"], 0.45))
        section.checks.append(Check("hybrid p50 latency", p50, 50.0, higher_is_better=False, unit=" ms"))
        if quick:
            section.skipped.append(f"node count target (>= {MIN_NODES}) needs the full corpus (not --quick)")
        else:
            section.checks.append(Check("nodes indexed", float(stripped.nodes), float(MIN_NODES)))
        if len(qs) < 500 and not quick:
            section.skipped.append(f"only {len(qs)} queries (target >= 500)")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return section


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench_search", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="top-level stdlib modules only, 200 queries")
    ap.add_argument("--queries", type=int, default=800, help="number of queries (default 800)")
    ap.add_argument("--workdir", help="keep trees, graphs and embeddings here (re-runs are incremental)")
    ap.add_argument("--json", metavar="PATH", help="also write the metrics as JSON")
    ap.add_argument("--real-only", action="store_true", help="only the real-question benchmark")
    ap.add_argument("--no-real", action="store_true", help="skip the real-question benchmark")
    ap.add_argument("--no-libs", action="store_true", help="skip the per-library docstring benchmark")
    ap.add_argument(
        "--questions",
        metavar="PATH",
        action="append",
        default=[],
        help="real-question file (repeatable; default: the tuning set and the held-out set)",
    )
    ap.add_argument("--strict", action="store_true", help="exit non-zero when a target is missed")
    args = ap.parse_args(argv)
    os.environ.setdefault("NANODEX_PROGRESS", "0")
    section = run(
        quick=args.quick,
        queries=args.queries,
        workdir=args.workdir,
        real=not args.no_real,
        synthetic=not args.real_only,
        libraries=not (args.no_libs or args.real_only),
        questions=args.questions,
    )
    print("\n=== targets ===")
    section.print_outcome(args.json)
    missed = any(not c.passed for c in section.checks)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
