"""`make demo`: the whole pipeline on the nanodex repository itself, with the embedded SmolLM2-135M.

extract -> brain -> dataset -> train-qlora (short) -> vLLM serve (base + adapter) -> ask a few
questions with retrieved, cited context -> print the answers and their citation checks -> stop
the server. Each step calls the same entry point as its Make target, with the same configs, so
what the demo shows is what `make extract brain dataset train-qlora serve query` does.

The adapter goes to models/demo-qlora (not models/nanodex-lora) so the demo never replaces an
adapter trained with the full configuration; the graph, brain and dataset are the standard ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nanodex.errors import run_main
from nanodex.paths import DEFAULT_GRAPH

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = (
    "Where does nanodex resolve call targets through a file's imports?",
    "How do I build the Q&A dataset from the brain?",
    "Which error does the trainer raise when the dataset file is missing?",
)


def step(title: str, fn: Callable[[], object]) -> None:
    """Run one pipeline step under a banner and report its wall time."""
    print(f"\n== {title}", flush=True)
    t0 = time.perf_counter()
    fn()
    print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)


def ask_served(adapter: Path, graph: Path, questions: Sequence[str], max_tokens: int) -> None:
    """Serve base + adapter with vLLM, ask each question with packed context, print cited answers.

    Server and query settings come from config/serve.yaml, as for `make serve` and `make query`.
    """
    from dataclasses import replace

    from inference.config import ServeFile
    from inference.preflight import free_port
    from inference.query import Retriever, ask, format_citations
    from inference.server import VllmServer
    from nanodex.config import load_config

    serve = load_config(ServeFile, ROOT / "config" / "serve.yaml")
    server_cfg = replace(serve.server, adapters=[f"nanodex={adapter}"], port=free_port())
    with VllmServer(server_cfg) as server:
        print(f"   serving {server.model_name} + adapter 'nanodex' at {server.base_url}", flush=True)
        qcfg = replace(serve.query, endpoint=server.base_url, model="nanodex", max_tokens=max_tokens)
        with Retriever(graph, qcfg) as retriever:
            for question in questions:
                t0 = time.perf_counter()
                answer = ask(question, qcfg, retriever=retriever)
                print(f"\nQ: {question}")
                print(f"A: {answer.marked.strip()}")
                print(f"   {format_citations(answer)}".replace("\n", "\n   "))
                print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    print("\n   server stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", default=str(ROOT), help="repository to index (default: nanodex itself)")
    ap.add_argument(
        "--steps",
        type=int,
        default=24,
        help="QLoRA optimizer steps (default 24: 96 rows with code, est. ~7 min at 100 tokens/s)",
    )
    ap.add_argument("--out", default=str(ROOT / "models" / "demo-qlora"), help="adapter folder to write")
    ap.add_argument("--max-tokens", type=int, default=160, help="answer length cap")
    ap.add_argument("--question", action="append", help="ask this instead of the built-in questions")
    args = ap.parse_args(argv)

    from brain.__main__ import main as brain_main
    from dataset.__main__ import main as dataset_main
    from extractor.__main__ import main as extract_main
    from trainer.__main__ import main as train_main

    graph = ROOT / DEFAULT_GRAPH
    config = ROOT / "config"
    t0 = time.perf_counter()
    step(
        f"extract: {args.repo}",
        lambda: extract_main(
            ["--config", str(config / "extract.yaml"), "--repo", args.repo, "--out", str(graph)]
        ),
    )
    step("brain", lambda: brain_main(["--config", str(config / "brain.yaml"), "--graph", str(graph)]))
    step("dataset", lambda: dataset_main(["--config", str(config / "dataset.yaml"), "--graph", str(graph)]))
    step(
        f"train-qlora ({args.steps} steps, embedded SmolLM2-135M)",
        lambda: train_main(
            ["--config", str(config / "train_qlora.yaml"), "--graph", str(graph)]
            + ["--out", args.out, "--max-steps", str(args.steps)]
        ),
    )
    step(
        "serve + ask",
        lambda: ask_served(Path(args.out), graph, args.question or QUESTIONS, args.max_tokens),
    )
    print(f"\ndemo finished in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
