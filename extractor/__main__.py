"""`python -m extractor`: index a repository into the code graph (incremental by default)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from extractor.build import extract
from extractor.config import ExtractConfig
from nanodex.config import load_config
from nanodex.errors import run_main
from nanodex.log import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m extractor", description=__doc__)
    ap.add_argument("--config", help="YAML config (default: built-in defaults, see config/extract.yaml)")
    ap.add_argument("--repo", help="repository root to index (overrides config `repo`)")
    ap.add_argument("--out", "--graph", dest="out", help="graph database to write (overrides `out_graph`)")
    ap.add_argument("--languages", help="comma-separated languages (overrides `languages`)")
    ap.add_argument("--workers", type=int, help="parse processes (0 = one per core)")
    ap.add_argument(
        "--coverage-json",
        help="coverage.py JSON report (`coverage json`) to mark covered nodes (overrides `coverage_json`)",
    )
    ap.add_argument(
        "--use-scip",
        action="store_true",
        default=None,
        help="confirm/replace calls edges with SCIP indexers (npm; overrides `use_scip`)",
    )
    ap.add_argument("--full", action="store_true", help="ignore the previous run and rebuild from scratch")
    ap.add_argument("--json", action="store_true", help="print the run report as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="list skipped files and debug logs")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_config(
        ExtractConfig,
        args.config,
        {
            "repo": args.repo,
            "out_graph": args.out,
            "languages": args.languages.split(",") if args.languages else None,
            "workers": args.workers,
            "coverage_json": args.coverage_json,
            "use_scip": args.use_scip,
        },
    )
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
