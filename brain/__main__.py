"""`python -m brain`: build the typed ontology (module, capability, concept, error, recipe) with cited
summaries in brain/nodes/, and the search index beside the graph. Incremental by content hash."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from brain.build import build_brain
from brain.config import BrainConfig, index_path
from nanodex.config import load_config
from nanodex.errors import run_main
from nanodex.log import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m brain", description=__doc__)
    ap.add_argument("--config", help="YAML config (default: built-in defaults, see config/brain.yaml)")
    ap.add_argument("--graph", help="code graph to read (overrides `graph`)")
    ap.add_argument(
        "--out", "--out-dir", dest="out_dir", help="folder for the node JSON files (overrides `out_dir`)"
    )
    ap.add_argument("--style", choices=["extractive", "llm"], help="summarizer (overrides `summary.style`)")
    ap.add_argument(
        "--endpoint", help="OpenAI-compatible base URL for --style llm (overrides summary.endpoint)"
    )
    ap.add_argument(
        "--backend", choices=["endpoint", "local"], help="where --style llm runs (overrides summary.backend)"
    )
    ap.add_argument(
        "--model",
        help="--style llm model: served name (endpoint) or folder/HF id/embedded:<name> (local); "
        "overrides summary.model",
    )
    ap.add_argument("--max-tokens", type=int, help="summary length limit (overrides summary.max_tokens)")
    ap.add_argument("--json", action="store_true", help="print the run report as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_config(BrainConfig, args.config, {"graph": args.graph, "out_dir": args.out_dir})
    if args.style:
        cfg.summary.style = args.style
    if args.endpoint:
        cfg.summary.endpoint = args.endpoint
    if args.backend:
        cfg.summary.backend = args.backend
    if args.model:
        cfg.summary.model = args.model
    if args.max_tokens:
        cfg.summary.max_tokens = args.max_tokens
    report = build_brain(cfg)
    if args.json:
        data = dict(report.__dict__)
        data["changed_ids"] = sorted(data["changed_ids"])
        data["fallbacks"] = dict(sorted(data["fallbacks"].items()))
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(f"brain: {cfg.out_dir}, {index_path(cfg)}: {report.summary()}")
    return 0


if __name__ == "__main__":
    run_main(main)
