"""Docstring -> function retrieval per library (issue 18: "docs stripped, on >= 2 libraries").

The stdlib corpus of scripts/bench_search.py mixes many packages into one 22k-node index; here
each library is indexed alone, as a user would index it: the pinned sdist (downloaded with
`pip download --no-binary :all:`, unpacked, never imported or run; scripts/real_questions.py
`fetch_source`), its `.py` files only (tests included, as distractors), in two settings:
  docs kept      the files as they are;
  docs stripped  every docstring blanked, line numbers kept (bench_search.strip_docstrings).
Queries: every library function or method with a docstring (path role "library": tests, examples
and docs are indexed but not asked for; dunder methods left out) gives the first sentence of its
docstring with the function's own name removed (bench_search.make_queries); the target is that
function. Methods as in bench_search: nanodex lexical, dense, hybrid, and bm25s over the raw source
of every function and method of the same tree, in the same process.

`python -m scripts.bench_stripped_libs [--libs tenacity==9.2.1,...] [--workdir DIR]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from brain.build import build_brain
from brain.config import BrainConfig, embeddings_path
from brain.embed import embed
from brain.intent import path_role
from extractor.build import extract
from extractor.config import ExtractConfig
from extractor.graph import Graph
from nanodex.paths import cache_dir
from scripts.bench import Check, Section, table
from scripts.bench_search import Query, Setting, evaluate, make_queries, strip_tree
from scripts.real_questions import fetch_source

# PyPI libraries with pinned sdists (never the packages DESIGN.md reserves for evaluation)
LIBRARIES = (("tenacity", "9.2.1"), ("marshmallow", "3.26.1"), ("cachetools", "8.0.3"), ("attrs", "24.2.0"))
STRIPPED_TARGET = 0.45
MIN_QUERIES = 20  # fewer: one query moves R@5 by > 5 points; shown, not checked


def copy_python(src: Path, dst: Path) -> int:
    """The `.py` files of an unpacked sdist, same relative paths; returns how many."""
    count = 0
    for p in sorted(src.rglob("*.py")):
        rel = p.relative_to(src)
        if "__pycache__" in rel.parts or any(part.startswith(".") for part in rel.parts):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst / rel)
        count += 1
    return count


def prepare_library(work: Path, name: str, version: str) -> tuple[Setting, Setting]:
    """(docs stripped, docs kept) settings of one library: trees, graphs, brains, embeddings."""
    root = fetch_source(name, version)  # the shared sdist cache (scripts/real_questions.py)
    base = work / f"{name}-{version}"
    kept_repo, stripped_repo = base / "kept", base / "stripped"
    if not kept_repo.is_dir():
        copy_python(root, kept_repo)
    if not stripped_repo.is_dir():
        strip_tree(kept_repo, stripped_repo)
    settings: list[Setting] = []
    for label, repo in (("docs stripped", stripped_repo), ("docs kept", kept_repo)):
        slug = label.split()[1]
        graph = base / f"{slug}.sqlite"
        cfg = BrainConfig(graph=str(graph), out_dir=str(base / f"{slug}-nodes"))
        s = Setting(label, repo, graph, cfg)
        t0 = time.perf_counter()
        extract(ExtractConfig(repo=str(repo), out_graph=str(graph), languages=["python"], workers=1))
        build_brain(cfg)
        if slug == "kept" and not embeddings_path(cfg).exists():
            # same node ids in both trees: vectors of unchanged texts are reused
            shutil.copyfile(embeddings_path(settings[0].cfg), embeddings_path(cfg))
        s.timings["embedded"] = embed(cfg).embedded
        s.timings["build"] = time.perf_counter() - t0
        with Graph(graph) as g:
            s.nodes = sum(1 for _ in g.nodes())
        settings.append(s)
    return settings[0], settings[1]


def library_queries(kept: Setting) -> list[Query]:
    """Docstring queries whose target is library code (see the module docstring)."""
    qs = make_queries(kept.repo, kept.graph, limit=100_000)
    return [q for q in qs if path_role(q.target.split("::", 1)[0]) == "library"]


def run_libraries(work: Path, libraries: Sequence[tuple[str, str]] = LIBRARIES) -> dict[str, dict]:
    """Per library and setting: metrics per method (R@1/5/10, MRR), node and query counts."""
    out: dict[str, dict] = {}
    for name, version in libraries:
        stripped, kept = prepare_library(work, name, version)
        qs = library_queries(kept)
        res: dict[str, dict] = {"version": version, "nodes": stripped.nodes, "queries": len(qs)}
        for s in (stripped, kept):
            metrics, _, _ = evaluate(s, qs)
            res[s.name] = metrics
        out[name] = res
    return out


def report(section: Section, results: dict[str, dict]) -> None:
    """The per-library table and the issue's checks (stripped R@5 >= 0.45; kept not below bm25s)."""
    rows = []
    for lib, res in results.items():
        for setting in ("docs stripped", "docs kept"):
            for method, m in res[setting].items():
                rows.append(
                    [
                        f"{lib} {res['version']}",
                        setting,
                        method,
                        res["queries"],
                        m["R@1"],
                        m["R@5"],
                        m["R@10"],
                    ]
                )
        section.metrics[f"libraries/{lib}"] = res
        if res["queries"] < MIN_QUERIES:
            section.skipped.append(f"{lib}: only {res['queries']} queries (checks need >= {MIN_QUERIES})")
            continue
        hyb, base = res["docs stripped"]["hybrid"]["R@5"], res["docs stripped"]["bm25s"]["R@5"]
        section.checks.append(Check(f"docs stripped, {lib}: hybrid R@5", hyb, STRIPPED_TARGET))
        section.checks.append(Check(f"docs stripped, {lib}: hybrid R@5 minus bm25s R@5", hyb - base, 0.10))
        kept = res["docs kept"]
        section.checks.append(
            Check(
                f"docs kept, {lib}: hybrid R@5 minus bm25s R@5",
                kept["hybrid"]["R@5"] - kept["bm25s"]["R@5"],
                0.0,
            )
        )
    table(
        ["library", "setting", "method", "queries", "R@1", "R@5", "R@10"],
        rows,
        title="docstring -> function per library (each indexed alone; target = the library function)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m scripts.bench_stripped_libs", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--libs", help="name==version,... (default: " + ",".join(f"{n}=={v}" for n, v in LIBRARIES) + ")"
    )
    ap.add_argument("--workdir", default=None, help="keep sdists, trees, graphs and embeddings here")
    ap.add_argument("--json", metavar="PATH", help="also write the metrics as JSON")
    args = ap.parse_args(argv)
    os.environ.setdefault("NANODEX_PROGRESS", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    libs = LIBRARIES
    if args.libs:
        libs = tuple(tuple(x.split("==", 1)) for x in args.libs.split(","))  # type: ignore[misc]
        if any(len(x) != 2 for x in libs):
            ap.error("--libs takes name==version,name==version")
    work = Path(args.workdir) if args.workdir else cache_dir() / "bench-stripped"
    work.mkdir(parents=True, exist_ok=True)
    section = Section("search")
    report(section, run_libraries(work, libs))
    section.print_outcome(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
