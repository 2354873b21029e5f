"""`python -m selftune`: refresh the expert from verified answers about changed code.

Incremental extract -> brain -> for each changed module (all with --all) in curriculum order:
propose verifiable questions, answer them, keep only answers whose citations lie inside the
symbols asked about and whose mapped pytest nodes pass in a sandbox -> distill.jsonl and
work/dataset/selftune.jsonl -> per-module LoRA adapters in the bank -> a short refresh of the main
adapter -> report.json / report.md in the work folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from nanodex.errors import run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import setup_logging
from selftune.config import SelftuneConfig


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m selftune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(ap, SelftuneConfig, "selftune")
    config_flag(ap, "--repo", key="repo", help="repository to index and test")
    config_flag(ap, "--graph", key="graph", help="code graph to update and read")
    config_flag(ap, "--base", key="base", help="base model: HF id, local folder or embedded:smollm2-135m")
    config_flag(ap, "--adapter", key="adapter", help="main adapter: answers use it, the refresh updates it")
    config_flag(ap, "--work-dir", key="work_dir", help="distill.jsonl, state.json, reports")
    config_flag(ap, "--bank", key="bank_dir", help="adapters bank folder")
    config_flag(ap, "--dataset-out", key="dataset_out", help="JSONL of kept rows, kind selftune")
    config_flag(
        ap, "--eval-dataset", key="eval_dataset", help="eval JSONL whose facts kept rows must not overlap"
    )
    config_flag(ap, "--answerer", key="answer.answerer", choices=["direct", "runner"], help="who answers")
    config_flag(ap, "--all", key="all", action="store_true", help="every module, not only changed ones")
    ap.add_argument("--resume", action="store_true", help="skip proposals already in distill.jsonl")
    config_flag(
        ap,
        "--include-deps",
        key="include_deps",
        action="store_true",
        help="module adapters also see their deps' rows",
    )
    config_flag(ap, "--max-modules", key="max_modules", help="self-tune at most N modules (curriculum order)")
    config_flag(ap, "--max-new-tokens", key="answer.max_new_tokens", help="answer length cap")
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="only record the current code as self-tuned (adopt an expert trained on it)",
    )
    config_flag(
        ap,
        "--no-refresh",
        key="refresh.enabled",
        action="store_false",
        help="do not refresh the main adapter",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_from_args(args)
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
