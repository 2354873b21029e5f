"""Dataset benchmark (issue 4 "Must show"): the dataset stage on real repositories.

Repositories: this one (nanodex itself) and, when installed, the pure-Python packages `pluggy`
and `jinja2` (never the packages DESIGN.md reserves for independent evaluation) copied into a temporary folder and indexed as repositories. Each is extracted,
brained and turned into a dataset with config/dataset.yaml. Reported per repository: positive
rows per kind against the configured counts (shortfalls with their printed reason), negatives,
citation validity, eval->train leakage (facts, prompts, answers), coverage of public functions,
methods and classes, mean answer length, and seconds per stage. The baseline alongside is the
coverage a one-question-per-symbol-name approach would need: the number of public symbols.
Targets: every kind at its count (or a reason), citations 100 %, leakage 0, coverage >= 90 %.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from brain.build import build_brain
from brain.config import BrainConfig
from dataset.build import build_dataset
from dataset.config import KINDS, DatasetConfig
from extractor.build import extract
from extractor.config import ExtractConfig
from nanodex.config import load_config
from scripts.bench import Check, Section, table

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pluggy", "jinja2")


def _repos(work: Path, quick: bool) -> list[tuple[str, Path]]:
    out = [("nanodex", ROOT)]
    for name in PACKAGES[: 1 if quick else None]:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            continue
        dest = work / name
        if not dest.exists():
            shutil.copytree(
                Path(spec.origin).parent, dest / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        out.append((name, dest))
    return out


def run_repo(name: str, repo: Path, work: Path) -> tuple[dict, dict[str, float]]:
    graph = work / f"{name}.sqlite"
    times: dict[str, float] = {}
    t = time.perf_counter()
    extract(ExtractConfig(repo=str(repo), out_graph=str(graph)))
    times["extract"] = time.perf_counter() - t
    t = time.perf_counter()
    build_brain(BrainConfig(graph=str(graph), out_dir=str(work / f"{name}_nodes")))
    times["brain"] = time.perf_counter() - t
    cfg = load_config(
        DatasetConfig,
        ROOT / "config" / "dataset.yaml",
        {
            "graph": str(graph),
            "nodes_dir": str(work / f"{name}_nodes"),
            "out_jsonl": str(work / f"{name}_out" / "train.jsonl"),
            "eval_jsonl": str(work / f"{name}_out" / "eval.jsonl"),
            "stats_json": str(work / f"{name}_out" / "stats.json"),
        },
    )
    t = time.perf_counter()
    stats = build_dataset(cfg)
    times["dataset"] = time.perf_counter() - t
    return stats, times


def run(quick: bool = False, workdir: str | None = None) -> Section:
    section = Section("dataset")
    tmp = None
    if workdir:
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="nanodex-bench-dataset-")
        work = Path(tmp.name)
    try:
        rows, kinds = [], []
        for name, repo in _repos(work, quick):
            stats, times = run_repo(name, repo, work)
            cov, cit, leak = stats["coverage"], stats["citations"], stats["leakage"]
            section.metrics[name] = {
                "per_kind": stats["per_kind"],
                "coverage": cov["share"],
                "public_symbols": cov["public_symbols"],
                "citation_validity": cit["validity"],
                "citations": cit["total"],
                "leakage": leak,
                "mean_answer_tokens": stats["answer_tokens"]["mean"],
                "seconds": times,
                "shortfalls": stats["shortfalls"],
            }
            rows.append(
                [
                    name,
                    stats["rows"]["total"],
                    stats["rows"]["eval"],
                    cov["public_symbols"],
                    f"{100 * cov['share']:.1f}",
                    f"{cit['valid']}/{cit['total']}",
                    sum(leak.values()),
                    stats["answer_tokens"]["mean"],
                    times["extract"],
                    times["brain"],
                    times["dataset"],
                ]
            )
            want = stats["config"]["counts"]
            kinds += [
                [name, k, f"{c['positive']}/{want[k]}", c["negative"], c["train"], c["eval"]]
                for k, c in stats["per_kind"].items()
            ]
            full = all(stats["per_kind"][k]["positive"] == want[k] or k in stats["shortfalls"] for k in KINDS)
            section.checks += [
                Check(f"{name}: kinds at their count or with a reason", float(full), 1.0),
                Check(f"{name}: citation validity", 100 * cit["validity"], 100.0, unit=" %"),
                Check(f"{name}: eval->train leaks", float(sum(leak.values())), 0.0, higher_is_better=False),
                Check(f"{name}: coverage of public symbols", 100 * cov["share"], 90.0, unit=" %"),
            ]
            for reason in stats["shortfalls"].values():
                print(f"short ({name}): {reason}")
        table(["repo", "kind", "positive/asked", "negative", "train", "eval"], kinds, title="rows per kind")
        table(
            [
                "repo",
                "rows",
                "eval",
                "public symbols",
                "coverage %",
                "citations ok",
                "leaks",
                "answer tok",
                "extract s",
                "brain s",
                "dataset s",
            ],
            rows,
            title="dataset on real repositories (config/dataset.yaml)",
        )
        missing = [p for p in PACKAGES if importlib.util.find_spec(p) is None]
        if missing:
            section.skipped.append(f"not installed, not benchmarked: {', '.join(missing)}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return section


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench_dataset", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="this repository and pluggy only")
    ap.add_argument("--workdir", help="keep graphs, brains and datasets here")
    ap.add_argument("--json", metavar="PATH", help="also write the metrics as JSON")
    args = ap.parse_args(argv)
    section = run(args.quick, args.workdir)
    for c in section.checks:
        print(c.line())
    if args.json:
        Path(args.json).write_text(
            json.dumps(section.metrics, indent=1, default=str) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
