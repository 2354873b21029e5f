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
from dataset.config import KINDS, DatasetConfig
from dataset.paraphrase import Paraphraser
from dataset.stats import report
from nanodex.config import load_config
from nanodex.errors import NanodexError, run_main
from nanodex.log import setup_logging


def _counts(values: list[str]) -> dict[str, int]:
    out = {}
    for v in values:
        kind, _, n = v.partition("=")
        if kind not in KINDS or not n.isdigit():
            raise NanodexError(f"bad --count {v!r}", f"write KIND=N with KIND one of {', '.join(KINDS)}")
        out[kind] = int(n)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dataset", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="YAML config (default: built-in defaults, see config/dataset.yaml)")
    ap.add_argument("--graph", help="code graph (overrides `graph`)")
    ap.add_argument("--nodes-dir", help="brain node folder (overrides `nodes_dir`)")
    ap.add_argument("--out", metavar="DIR", help="write train.jsonl, eval.jsonl and stats.json into DIR")
    ap.add_argument("--seed", type=int, help="overrides `seed`")
    ap.add_argument("--count", action="append", default=[], metavar="KIND=N", help="overrides counts.KIND")
    ap.add_argument("--negatives-per-example", type=float, help="overrides `negatives_per_example`")
    ap.add_argument("--paraphrases", type=int, help="overrides `paraphrases`")
    ap.add_argument("--eval-fraction", type=float, help="overrides `eval_fraction`")
    ap.add_argument(
        "--endpoint", help="OpenAI-compatible URL: reword prompts with it (overrides llm.endpoint)"
    )
    ap.add_argument(
        "--context-share",
        type=float,
        help="share of rows whose prompt shows labelled code, as `make query` sends it (overrides context.share)",
    )
    ap.add_argument("--json", action="store_true", help="print the stats as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    overrides = {
        "graph": args.graph,
        "nodes_dir": args.nodes_dir,
        "seed": args.seed,
        "negatives_per_example": args.negatives_per_example,
        "paraphrases": args.paraphrases,
        "eval_fraction": args.eval_fraction,
    }
    if args.out:
        out = Path(args.out)
        overrides.update(
            out_jsonl=str(out / "train.jsonl"),
            eval_jsonl=str(out / "eval.jsonl"),
            stats_json=str(out / "stats.json"),
        )
    cfg = load_config(DatasetConfig, args.config, overrides)
    for kind, n in _counts(args.count).items():
        setattr(cfg.counts, kind, n)
    if args.endpoint:
        cfg.llm.endpoint = args.endpoint
    if args.context_share is not None:
        if not 0 <= args.context_share <= 1:
            raise NanodexError(f"--context-share {args.context_share} is outside [0, 1]", "use e.g. 0.3")
        cfg.context.share = args.context_share
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
