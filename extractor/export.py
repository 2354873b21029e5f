"""`python -m extractor.export`: write the graph out as one JSON document or JSON lines."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from extractor.graph import Graph
from nanodex.errors import run_main
from nanodex.paths import DEFAULT_GRAPH, atomic_path


def records(graph: Graph):
    """Every node, then every edge, as plain dicts tagged with `record`."""
    for n in graph.nodes():
        yield {"record": "node", **dataclasses.asdict(n)}
    for e in graph.edges():
        yield {"record": "edge", **dataclasses.asdict(e)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m extractor.export", description=__doc__)
    ap.add_argument("--graph", default=str(DEFAULT_GRAPH), help="graph database (default: %(default)s)")
    ap.add_argument(
        "--format", choices=("json", "jsonl"), default="jsonl", help="output format (default: %(default)s)"
    )
    ap.add_argument("--out", help="output file (default: stdout)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with Graph(args.graph) as graph:

        def write(fh) -> None:
            if args.format == "jsonl":
                for rec in records(graph):
                    fh.write(json.dumps(rec, sort_keys=True) + "\n")
            else:
                recs = list(records(graph))
                doc = {
                    "files": graph.files(),
                    "nodes": [r for r in recs if r["record"] == "node"],
                    "edges": [r for r in recs if r["record"] == "edge"],
                }
                json.dump(doc, fh, indent=1, sort_keys=True)
                fh.write("\n")

        if args.out:
            with atomic_path(Path(args.out)) as tmp, tmp.open("w", encoding="utf-8") as fh:
                write(fh)
        else:
            write(sys.stdout)
    return 0


if __name__ == "__main__":
    run_main(main)
