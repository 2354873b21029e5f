"""The umbrella `nanodex <stage> ...` command: each stage is also `python -m <package>`.

The umbrella only dispatches; every stage owns its own argument parser, so
`nanodex extract --help` and `python -m extractor --help` print the same thing.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
from collections.abc import Sequence

# stage name -> module run as __main__; listed in pipeline order.
STAGES: dict[str, tuple[str, str]] = {
    "extract": ("extractor", "index a repository into the code graph (SQLite)"),
    "graph-inspect": ("extractor.inspect", "node/edge counts, parse errors and skipped files"),
    "export": ("extractor.export", "write the graph out as JSON or JSONL"),
    "grammars": ("extractor.grammars", "check that every configured Tree-sitter grammar loads"),
    "brain": ("brain", "typed ontology with cited summaries, and the search index"),
    "brain-embed": ("brain.embed", "embed node summaries for dense search"),
    "search": ("brain.search", "question -> ranked code nodes"),
    "dataset": ("dataset", "grounded Q&A rows (train/eval JSONL) from the brain"),
    "train": ("trainer", "LoRA/QLoRA fine-tuning of the base model on the dataset"),
    "eval": ("trainer.eval", "base vs base + adapter on held-out questions"),
    "serve": ("inference.serve", "serve base + adapters with vLLM's OpenAI API"),
    "query": ("inference.query", "ask the served expert; cited answers checked against the graph"),
    "pca-build": ("pca_otf.build", "program embedding and synthesized adapters for pca_otf"),
    "ask": ("pca_otf.run", "answer with a program-conditioned adapter and enforced citations"),
    "pca-eval": ("pca_otf.evaluate", "does the program-conditioned adapter help? six arms compared"),
    "self-tune": ("selftune", "refresh the expert from verified answers about changed code"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in STAGES.items() if importlib.util.find_spec(spec[0].split(".")[0])}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    stages = _available()
    if not args or args[0] in ("-h", "--help"):
        print("usage: nanodex <stage> [options]   (nanodex <stage> --help for a stage's options)\n")
        print("stages:")
        for name, (module, text) in stages.items():
            print(f"  {name:<14} {text}  [python -m {module}]")
        return 0 if args else 2
    stage, rest = args[0], args[1:]
    if stage not in stages:
        print(
            f"nanodex: error: unknown stage '{stage}' (fix: run `nanodex --help` for the list)",
            file=sys.stderr,
        )
        return 2
    module = stages[stage][0]
    sys.argv = [f"nanodex {stage}", *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
