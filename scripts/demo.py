"""`make demo`: index the nanodex repository itself and show what the graph holds.

Later stages extend this to the whole pipeline (brain, dataset, training, serving, answers).
"""

from __future__ import annotations

import sys
from pathlib import Path

from extractor.build import extract
from extractor.config import ExtractConfig
from extractor.graph import Graph
from extractor.inspect import main as inspect_main
from nanodex.config import load_config
from nanodex.errors import run_main
from nanodex.log import setup_logging

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    graph = ROOT / "brain" / "graph.sqlite"
    cfg = load_config(
        ExtractConfig, ROOT / "config" / "extract.yaml", {"repo": str(ROOT), "out_graph": str(graph)}
    )
    print(f"== extract: {ROOT}")
    print(extract(cfg).summary())
    print("\n== graph-inspect")
    inspect_main(["--graph", str(graph)])
    print("\n== who calls the extractor's resolver?")
    with Graph(graph) as g:
        for node in g.by_qualname("resolve_files"):
            for caller in g.callers(node.id):
                print(f"  {caller.qualname}  [{caller.citation}]")
            for test in g.tests_of(node.id):
                print(f"  tested by {test.meta.get('pytest_id', test.id)}")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
