"""`python -m extractor`: index a repository into the code graph (incremental by default)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from extractor.build import extract
from extractor.config import ExtractConfig
from nanodex.errors import run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m extractor", description=__doc__)
    config_option(ap, ExtractConfig, "extract")
    config_flag(ap, "--repo", key="repo", help="repository root to index")
    config_flag(ap, "--out", "--graph", key="out_graph", help="graph database to write")
    config_flag(ap, "--languages", key="languages", help="comma-separated languages")
    config_flag(ap, "--workers", key="workers", help="parse processes (0 = one per core)")
    config_flag(
        ap, "--coverage-json", key="coverage_json", help="coverage.py JSON report to mark covered nodes"
    )
    config_flag(
        ap,
        "--use-scip",
        key="use_scip",
        action="store_true",
        help="confirm/replace calls edges with SCIP indexers (npm)",
    )
    ap.add_argument("--full", action="store_true", help="ignore the previous run and rebuild from scratch")
    ap.add_argument("--json", action="store_true", help="print the run report as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="list skipped files and debug logs")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_from_args(args)
    report = extract(cfg, force_full=args.full)
    if args.json:
        print(json.dumps(report.__dict__, indent=2, sort_keys=True))
    else:
        print(f"extract: {cfg.out_graph}: {report.summary()}")
        if args.verbose:
            for path, reason in sorted(report.skipped.items()):
                print(f"  skipped {path}: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
