"""`python -m brain`: build the typed ontology (module, capability, concept, error, recipe) with cited
summaries in work/nodes/, and the search index beside the graph. Incremental by content hash."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from brain.build import build_brain
from brain.config import BrainConfig, index_path
from nanodex.errors import run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m brain", description=__doc__)
    config_option(ap, BrainConfig, "brain")
    config_flag(ap, "--graph", key="graph", help="code graph to read")
    config_flag(ap, "--out", "--out-dir", key="out_dir", help="folder for the node JSON files")
    config_flag(ap, "--style", key="summary.style", choices=["extractive", "llm"], help="summarizer")
    config_flag(ap, "--endpoint", key="summary.endpoint", help="OpenAI-compatible base URL for --style llm")
    config_flag(
        ap, "--backend", key="summary.backend", choices=["endpoint", "local"], help="where --style llm runs"
    )
    config_flag(
        ap,
        "--model",
        key="summary.model",
        help="--style llm model: served name (endpoint) or folder/HF id/embedded:<name> (local)",
    )
    config_flag(ap, "--max-tokens", key="summary.max_tokens", help="summary length limit")
    ap.add_argument("--json", action="store_true", help="print the run report as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_from_args(args)
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
