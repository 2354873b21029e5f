"""`python -m selftune`: refresh the expert from verified answers about changed code.

Incremental extract -> brain -> for each changed module (all with --all) in curriculum order:
propose verifiable questions, answer them, keep only answers whose citations lie inside the
symbols asked about and whose mapped pytest nodes pass in a sandbox -> distill.jsonl and
dataset/selftune.jsonl -> per-module LoRA adapters in the bank -> a short refresh of the main
adapter -> report.json / report.md in the work folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from nanodex.config import load_config
from nanodex.errors import run_main
from nanodex.log import setup_logging
from selftune.config import SelftuneConfig


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m selftune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--config", default="config/selftune.yaml", help="YAML config (default config/selftune.yaml)"
    )
    ap.add_argument("--repo", help="repository to index and test (overrides `repo`)")
    ap.add_argument("--graph", help="code graph to update and read (overrides `graph`)")
    ap.add_argument("--base", help="base model: HF id, local folder or embedded:smollm2-135m")
    ap.add_argument("--adapter", help="main adapter: answers use it, the refresh updates it")
    ap.add_argument("--work-dir", help="distill.jsonl, state.json, reports (overrides `work_dir`)")
    ap.add_argument("--bank", help="adapters bank folder (overrides `bank_dir`)")
    ap.add_argument("--dataset-out", help="JSONL of kept rows, kind selftune (overrides `dataset_out`)")
    ap.add_argument("--eval-dataset", help="eval JSONL whose facts kept rows must not overlap")
    ap.add_argument(
        "--answerer", choices=["direct", "runner"], help="who answers (overrides `answer.answerer`)"
    )
    ap.add_argument("--all", action="store_true", default=None, help="every module, not only changed ones")
    ap.add_argument("--resume", action="store_true", help="skip proposals already in distill.jsonl")
    ap.add_argument(
        "--include-deps", action="store_true", default=None, help="module adapters also see their deps' rows"
    )
    ap.add_argument("--max-modules", type=int, help="self-tune at most N modules (curriculum order)")
    ap.add_argument("--max-new-tokens", type=int, help="answer length cap")
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="only record the current code as self-tuned (adopt an expert trained on it)",
    )
    ap.add_argument("--no-refresh", action="store_true", help="do not refresh the main adapter")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    overrides = {
        "repo": args.repo,
        "graph": args.graph,
        "base": args.base,
        "adapter": args.adapter,
        "work_dir": args.work_dir,
        "bank_dir": args.bank,
        "dataset_out": args.dataset_out,
        "eval_dataset": args.eval_dataset,
        "all": args.all,
        "include_deps": args.include_deps,
        "max_modules": args.max_modules,
    }
    cfg = load_config(SelftuneConfig, args.config, overrides)
    if args.answerer:
        cfg.answer.answerer = args.answerer
    if args.max_new_tokens:
        cfg.answer.max_new_tokens = args.max_new_tokens
    if args.no_refresh:
        cfg.refresh.enabled = False
    from selftune.pipeline import record_baseline, run_selftune  # heavy imports after --help
    from selftune.report import render_markdown

    if args.baseline:
        done = record_baseline(cfg)
        print(
            f"baseline: {done['modules']} modules recorded in {cfg.work_dir}/state.json; {done['extract']['summary']}"
        )
        return 0

    rep = run_selftune(cfg, resume=args.resume)
    print(render_markdown(rep))
    print(f"report: {cfg.work_dir}/report.json, {cfg.work_dir}/report.md")
    return 0


if __name__ == "__main__":
    run_main(main)
