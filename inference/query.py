"""Ask the served expert a question: `python inference/query.py --endpoint URL --question Q`.

With --graph the question is first answered by brain search: the best hits' code is packed into
labelled `[path:start-end]` blocks within a token budget and the model is asked to cite them.
The answer is printed, then each of its citations is checked against the graph; those that do
not resolve are marked "(unresolved)" (--json: `resolves: false`). Without --model the first
adapter the server lists is asked (else its base). A refused connection, a timeout or a server
error exits non-zero with one line. `ask(...)` is the same from Python (the demo uses it).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python inference/query.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field, fields, replace  # noqa: E402
from typing import Any  # noqa: E402

from answer.blocks import Block, pack_blocks  # noqa: E402
from answer.prompt import build_messages  # noqa: E402
from extractor.graph import Graph  # noqa: E402
from inference.citations import Citation, check_citations, find_citations, mark_unresolved  # noqa: E402
from inference.config import QueryConfig, ServeFile  # noqa: E402
from nanodex.chat_client import ChatClient  # noqa: E402
from nanodex.config import load_config  # noqa: E402
from nanodex.errors import NanodexError, run_main  # noqa: E402
from nanodex.log import get_logger, setup_logging  # noqa: E402

log = get_logger("inference.query")


@dataclass
class Answer:
    question: str
    answer: str
    model: str
    usage: dict[str, Any] = field(default_factory=dict)
    citations: list[Citation] = field(default_factory=list)
    context: list[str] = field(default_factory=list)  # labels of the code blocks sent
    finish_reason: str | None = None
    checked: bool = False  # citations were checked against a graph

    @property
    def marked(self) -> str:
        """The answer with unresolved citations marked."""
        return mark_unresolved(self.answer, self.citations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "model": self.model,
            "usage": self.usage,
            "context": self.context,
            "finish_reason": self.finish_reason,
        }


class Retriever:
    """Brain search plus the graph's source lines: question -> packed code blocks (kept open for many questions)."""

    def __init__(self, graph: str | Path, cfg: QueryConfig) -> None:
        from brain.config import BrainConfig
        from brain.search import Searcher

        self.cfg = cfg
        self.graph = Graph(graph)  # "run make extract" when missing
        brain_cfg = load_config(BrainConfig, cfg.brain_config, {"graph": str(graph)})
        self.searcher = Searcher(brain_cfg, dense=cfg.search_mode != "lexical")

    def blocks(self, question: str) -> list[Block]:
        hits = self.searcher.search(question, self.cfg.k, mode=self.cfg.search_mode)
        return pack_blocks(
            hits, self.graph.source, self.cfg.context_tokens, max_block_lines=self.cfg.max_block_lines
        )

    def close(self) -> None:
        self.searcher.close()
        self.graph.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def query_config(cfg: QueryConfig | None = None, **overrides: Any) -> QueryConfig:
    """`cfg` (default: built-in defaults) with the non-None keyword overrides applied."""
    known = {f.name for f in fields(QueryConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown query option(s): {', '.join(unknown)}")
    return replace(cfg or QueryConfig(), **{k: v for k, v in overrides.items() if v is not None})


def ask(
    question: str,
    cfg: QueryConfig | None = None,
    *,
    retriever: Retriever | None = None,
    api_key: str | None = None,
    on_delta: Callable[[str], None] | None = None,
    **overrides: Any,
) -> Answer:
    """Ask one question; `overrides` are QueryConfig keys (endpoint=, model=, graph=, k=, max_tokens=, ...).

    With `cfg.graph` (or an open `retriever`, cheaper for several questions) the prompt carries
    the searched code and the answer's citations are checked; `on_delta` streams the answer.
    """
    cfg = query_config(cfg, **overrides)
    if not question.strip():
        raise NanodexError("the question is empty", 'pass --question "..." (make query QUESTION="...")')
    key = api_key if api_key is not None else os.environ.get(cfg.api_key_env) or None
    client = ChatClient(cfg.endpoint, api_key=key, timeout_s=cfg.timeout_s, key_env=cfg.api_key_env)
    own = retriever is None and cfg.graph is not None
    if own:
        retriever = Retriever(cfg.graph, cfg)  # type: ignore[arg-type]
    try:
        blocks = retriever.blocks(question) if retriever else []
        if retriever:
            log.info("context: %d code blocks %s", len(blocks), " ".join(b.label for b in blocks))
        model = cfg.model or client.default_model()
        done = client.chat(
            build_messages(question, blocks, cfg.system_prompt),
            model=model,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            stream=on_delta is not None,
            on_delta=on_delta,
            extra={"frequency_penalty": cfg.frequency_penalty} if cfg.frequency_penalty else None,
        )
        citations = find_citations(done.text)
        if retriever:
            check_citations(citations, retriever.graph)
        return Answer(
            question=question,
            answer=done.text,
            model=done.model,
            usage=done.usage,
            citations=citations,
            context=[b.label for b in blocks],
            finish_reason=done.finish_reason,
            checked=retriever is not None,
        )
    finally:
        if own and retriever is not None:
            retriever.close()


def format_citations(ans: Answer) -> str:
    """The citation report printed under the answer."""
    if not ans.citations:
        return "citations: none"
    if not ans.checked:
        listed = " ".join(c.text for c in ans.citations)
        return f"citations: {len(ans.citations)}, not checked (pass --graph to check them): {listed}"
    good = sum(1 for c in ans.citations if c.resolves)
    lines = [f"citations: {len(ans.citations)} ({good} resolve, {len(ans.citations) - good} do not)"]
    for c in ans.citations:
        lines.append(f"  ok   {c.location}" if c.resolves else f"  BAD  {c.location} ({c.reason})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python inference/query.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--config", help="YAML config with a `query:` section (e.g. config/serve.yaml)")
    ap.add_argument("--endpoint", help="server URL (default http://127.0.0.1:8000/v1)")
    ap.add_argument("--question", "-q", required=True, help="the question")
    ap.add_argument("--model", help="model name to ask (default: the first adapter the server lists)")
    ap.add_argument(
        "--json", action="store_true", help="print {answer, citations, model, usage, context} as JSON"
    )
    ap.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    ap.add_argument("--graph", help="code graph: retrieve context with brain search and check citations")
    ap.add_argument("--brain-config", help="brain config (when the search index is not beside the graph)")
    ap.add_argument("--k", type=int, help="search hits considered for the context (default 5)")
    ap.add_argument("--context-tokens", type=int, help="token budget of the packed code (default 1024)")
    ap.add_argument("--max-tokens", type=int, help="answer length limit in tokens (default 256)")
    ap.add_argument("--temperature", type=float, help="sampling temperature (default 0: greedy)")
    ap.add_argument(
        "--frequency-penalty",
        type=float,
        help="> 0 discourages repeating the answer's own tokens (default 0)",
    )
    ap.add_argument("--timeout", type=float, help="seconds to wait for the server (default 120)")
    ap.add_argument("--api-key-env", metavar="VAR", help="send the key held in VAR (default NANODEX_API_KEY)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = query_config(
        load_config(ServeFile, args.config).query,
        endpoint=args.endpoint,
        model=args.model,
        graph=args.graph,
        brain_config=args.brain_config,
        k=args.k,
        context_tokens=args.context_tokens,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        frequency_penalty=args.frequency_penalty,
        timeout_s=args.timeout,
        api_key_env=args.api_key_env,
    )
    streaming = args.stream and not args.json

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    ans = ask(args.question, cfg, on_delta=show if streaming else None)
    if args.json:
        print(json.dumps(ans.to_dict(), indent=2))
        return 0
    if streaming:
        print()
        if any(c.resolves is False for c in ans.citations):
            print("(unresolved citations are listed below)")
    else:
        print(ans.marked)
    print()
    print(format_citations(ans))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
