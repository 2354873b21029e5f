"""`python -m dataset`: brain nodes + code graph -> grounded Q&A rows (train/eval JSONL) and stats.

Kinds: discovery, explain, howto, diag, architecture (counts from the config), each fact asked
in several phrasings, plus negatives whose "no" cites the closest real thing. Split by fact.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from dataset.build import build_dataset
from dataset.config import DatasetConfig
from dataset.paraphrase import Paraphraser
from dataset.stats import report
from nanodex.errors import NanodexError, run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import setup_logging


def _out_files(folder: str) -> tuple[str, str, str]:
    """--out DIR: the three files the stage writes, inside DIR."""
    out = Path(folder)
    return str(out / "train.jsonl"), str(out / "eval.jsonl"), str(out / "stats.json")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m dataset", description=__doc__.split("\n\n")[0])
    config_option(ap, DatasetConfig, "dataset")
    config_flag(ap, "--graph", key="graph", help="code graph")
    config_flag(ap, "--nodes-dir", key="nodes_dir", help="brain node folder")
    config_flag(
        ap,
        "--out",
        key=("out_jsonl", "eval_jsonl", "stats_json"),
        type=_out_files,
        metavar="DIR",
        help="write train.jsonl, eval.jsonl and stats.json into DIR",
    )
    config_flag(ap, "--seed", key="seed")
    config_flag(ap, "--count", key="counts", metavar="KIND=N", help="rows of a kind; repeatable")
    config_flag(ap, "--negatives-per-example", key="negatives_per_example")
    config_flag(ap, "--paraphrases", key="paraphrases")
    config_flag(ap, "--eval-fraction", key="eval_fraction")
    config_flag(ap, "--endpoint", key="llm.endpoint", help="OpenAI-compatible URL: reword prompts with it")
    config_flag(
        ap,
        "--context-share",
        key="context.share",
        help="share of rows whose prompt shows labelled code, as `make query` sends it",
    )
    ap.add_argument("--json", action="store_true", help="print the stats as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_from_args(args)
    if not 0 <= cfg.context.share <= 1:
        raise NanodexError(f"context.share {cfg.context.share} is outside [0, 1]", "use e.g. 0.3")
    paraphraser = Paraphraser(cfg.llm) if cfg.llm.endpoint else None
    stats = build_dataset(cfg, paraphraser)
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        print(report(stats))
        print(f"wrote {cfg.out_jsonl}, {cfg.eval_jsonl}, {cfg.stats_json}")
    return 0


if __name__ == "__main__":
    run_main(main)
