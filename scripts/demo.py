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
# the built-in questions and the files whose code answers them: an answer "cites the answering
# code" when one of its resolving citations lies in one of those files (issue 15's demo target)
QUESTIONS: dict[str, tuple[str, ...]] = {
    "Where does nanodex resolve call targets through a file's imports?": (
        "extractor/resolve.py",
        "extractor/modules.py",
        "extractor/rules.py",
        "extractor/receivers.py",
    ),
    "How do I build the Q&A dataset from the brain?": ("dataset/build.py", "dataset/__main__.py"),
    "Which error does the trainer raise when the dataset file is missing?": ("trainer/data.py",),
}


def step(title: str, fn: Callable[[], object]) -> None:
    """Run one pipeline step under a banner and report its wall time."""
    print(f"\n== {title}", flush=True)
    t0 = time.perf_counter()
    fn()
    print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)


def cites_answering_code(answer: object, paths: Sequence[str]) -> bool:
    """Whether a resolving citation of `answer` (an inference.query.Answer) lies in `paths`."""
    return any(c.resolves and c.path in paths for c in getattr(answer, "citations", []))


def ask_served(adapter: Path, graph: Path, questions: dict[str, tuple[str, ...]], max_tokens: int) -> int:
    """Serve base + adapter with vLLM, ask each question with packed context, print cited answers.

    Server and query settings come from config/serve.yaml, as for `make serve` and `make query`.
    Returns how many answers cite a resolving label in the files that answer them (questions
    given on the command line have no such files and never count).
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
        hits = 0
        with Retriever(graph, qcfg) as retriever:
            for question, paths in questions.items():
                t0 = time.perf_counter()
                answer = ask(question, qcfg, retriever=retriever)
                print(f"\nQ: {question}")
                print(f"A: {answer.marked.strip()}")
                print(f"   {format_citations(answer)}".replace("\n", "\n   "))
                if paths:
                    cited = cites_answering_code(answer, paths)
                    hits += cited
                    print(f"   cites the answering code ({', '.join(paths)}): {'yes' if cited else 'no'}")
                print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    print("\n   server stopped", flush=True)
    return hits


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
    ap.add_argument(
        "--work",
        default=str(ROOT / Path(DEFAULT_GRAPH).parent),
        help="folder for the graph, brain nodes and dataset (default work/, as the Make targets)",
    )
    ap.add_argument("--max-tokens", type=int, default=160, help="answer length cap")
    ap.add_argument("--question", action="append", help="ask this instead of the built-in questions")
    args = ap.parse_args(argv)

    from brain.__main__ import main as brain_main
    from dataset.__main__ import main as dataset_main
    from extractor.__main__ import main as extract_main
    from trainer.__main__ import main as train_main

    work = Path(args.work)
    graph, nodes, data = work / Path(DEFAULT_GRAPH).name, work / "nodes", work / "dataset"
    config = ROOT / "config"
    questions = dict.fromkeys(args.question, ()) if args.question else QUESTIONS
    t0 = time.perf_counter()
    step(
        f"extract: {args.repo}",
        lambda: extract_main(
            ["--config", str(config / "extract.yaml"), "--repo", args.repo, "--out", str(graph)]
        ),
    )
    step(
        "brain",
        lambda: brain_main(
            ["--config", str(config / "brain.yaml"), "--graph", str(graph), "--out", str(nodes)]
        ),
    )
    step(
        "dataset",
        lambda: dataset_main(
            ["--config", str(config / "dataset.yaml"), "--graph", str(graph)]
            + ["--nodes-dir", str(nodes), "--out", str(data)]
        ),
    )
    step(
        f"train-qlora ({args.steps} steps, embedded SmolLM2-135M)",
        lambda: train_main(
            ["--config", str(config / "train_qlora.yaml"), "--graph", str(graph)]
            + ["--dataset", str(data / "train.jsonl"), "--eval-dataset", str(data / "eval.jsonl")]
            + ["--out", args.out, "--max-steps", str(args.steps)]
        ),
    )
    cited: list[int] = []
    step("serve + ask", lambda: cited.append(ask_served(Path(args.out), graph, questions, args.max_tokens)))
    if not args.question:
        print(
            f"\n{cited[0]} of {len(questions)} answers cite a resolving label of the code that answers them"
        )
    print(f"\ndemo finished in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
