"""Ask the served expert a question: `python -m inference.query --endpoint URL --question Q`
(`python inference/query.py ...` works too, with nanodex installed: `make setup` installs it).

With --graph the question is first answered by brain search: the best hits' code is packed into
labelled `[path:start-end]` blocks within a token budget and the model is asked to cite them.
The answer's citations are then checked (answer.citations, the same code `make ask` uses): each
must name a packed block or a sub-range of one; a near miss is repaired, one that cannot be is
marked "(unresolved)", an uncited paragraph gets the block that best supports it or, with
`enforce_citations`, "[unverified]". The answer is printed with the citation report and the
provenance footer (--json: all of it as fields). Without --model the first
adapter the server lists is asked (else its base). A refused connection, a timeout or a server
error exits non-zero with one line. `ask(...)` is the same from Python (the demo uses it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from answer.blocks import Block, estimate_tokens, local_token_counter, pack_blocks
from answer.citations import Checked, Checker, Citation, GraphSymbols, find, footer
from answer.constrain import citation_regex
from answer.prompt import LAYOUT, build_messages
from extractor.graph import Graph
from inference.config import QueryConfig, ServeFile
from nanodex.chat_client import ChatClient
from nanodex.config import apply_overrides
from nanodex.errors import NanodexError, run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import get_logger, setup_logging

log = get_logger("inference.query")


@dataclass
class Answer:
    question: str
    answer: str  # as the model wrote it
    model: str
    usage: dict[str, Any] = field(default_factory=dict)
    citations: list[Citation] = field(default_factory=list)
    context: list[Block] = field(default_factory=list)  # the code blocks sent
    finish_reason: str | None = None
    checked: Checked | None = None  # None: no graph to check against
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def marked(self) -> str:
        """The answer as printed: repaired, attributed and marked (as written when unchecked)."""
        return self.checked.text if self.checked is not None else self.answer

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.marked,
            "raw_answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "check": self.checked.summary() if self.checked is not None else None,
            "model": self.model,
            "usage": self.usage,
            "context": [b.label for b in self.context],
            "finish_reason": self.finish_reason,
            "provenance": self.provenance,
        }


class Retriever:
    """Brain search plus the graph's source lines: question -> packed code blocks (kept open for many questions)."""

    def __init__(self, graph: str | Path, cfg: QueryConfig) -> None:
        from brain.config import search_config
        from brain.search import Searcher

        self.cfg = cfg
        self.graph = Graph(graph)  # "run make extract" when missing
        self.symbols = GraphSymbols(self.graph)
        # exact counts with the served model's tokenizer when it is here, else the estimate
        self.count_tokens = local_token_counter(cfg.tokenizer) or estimate_tokens
        # search settings: cfg.brain_config, else config/brain.yaml when present, else defaults
        self.searcher = Searcher(search_config(graph, cfg.brain_config), dense=cfg.search_mode != "lexical")

    def blocks(self, question: str) -> list[Block]:
        """The packed code for `question`: symbol windows of the best hits, exact labels."""
        hits = self.searcher.search(question, self.cfg.k, mode=self.cfg.search_mode)
        return pack_blocks(
            hits,
            self.graph.source,
            self.cfg.context_tokens,
            window_lines=self.cfg.window_lines,
            count_tokens=self.count_tokens,
            question=question,
        )

    def close(self) -> None:
        self.searcher.close()
        self.graph.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    cfg = apply_overrides(cfg or QueryConfig(), overrides, where="ask()")
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
            extra=request_extras(cfg, blocks) or None,
        )
        provenance = {"model": done.model, "layout": LAYOUT, "blocks": len(blocks)}
        checked = None
        if retriever:
            checked = Checker(retriever.symbols, blocks, question=question).check(
                done.text, enforce=cfg.enforce_citations
            )
            provenance["graph_commit"] = retriever.graph.meta("commit")
        return Answer(
            question=question,
            answer=done.text,
            model=done.model,
            usage=done.usage,
            citations=checked.citations if checked is not None else find(done.text),
            context=blocks,
            finish_reason=done.finish_reason,
            checked=checked,
            provenance=provenance,
        )
    finally:
        if own and retriever is not None:
            retriever.close()


def request_extras(cfg: QueryConfig, blocks: Sequence[Block]) -> dict[str, Any]:
    """Sampling options beyond the OpenAI basics: the frequency penalty, and (with code shown and
    `constrain_citations`) vLLM structured outputs that let a citation name only a shown block."""
    extra: dict[str, Any] = {}
    if cfg.frequency_penalty:
        extra["frequency_penalty"] = cfg.frequency_penalty
    if blocks and cfg.constrain_citations:
        extra["structured_outputs"] = {"regex": citation_regex(blocks, cfg.open_with_citation)}
    return extra


def format_citations(ans: Answer) -> str:
    """The citation report and provenance footer printed under the answer (as `make ask` prints)."""
    if ans.checked is None:
        if not ans.citations:
            return "citations: none"
        listed = " ".join(c.text for c in ans.citations)
        return f"citations: {len(ans.citations)}, not checked (pass --graph to check them): {listed}"
    return footer(ans.checked, ans.context, ans.provenance)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python inference/query.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(ap, ServeFile, "serve", section="query")
    config_flag(ap, "--endpoint", key="endpoint", help="server URL")
    ap.add_argument("--question", "-q", required=True, help="the question")
    config_flag(
        ap, "--model", key="model", help="model name to ask (default: the first adapter the server lists)"
    )
    ap.add_argument(
        "--json", action="store_true", help="print {answer, citations, model, usage, context} as JSON"
    )
    ap.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    config_flag(
        ap, "--graph", key="graph", help="code graph: retrieve context with brain search and check citations"
    )
    config_flag(
        ap,
        "--brain-config",
        key="brain_config",
        help="brain config for search (default: config/brain.yaml when it exists)",
    )
    config_flag(ap, "--k", key="k", help="search hits considered for the context")
    config_flag(ap, "--context-tokens", key="context_tokens", help="token budget of the packed code")
    config_flag(ap, "--max-tokens", key="max_tokens", help="answer length limit in tokens")
    config_flag(ap, "--temperature", key="temperature", help="sampling temperature (0: greedy)")
    config_flag(
        ap,
        "--frequency-penalty",
        key="frequency_penalty",
        help="> 0 discourages repeating the answer's own tokens",
    )
    config_flag(ap, "--timeout", key="timeout_s", help="seconds to wait for the server")
    config_flag(ap, "--api-key-env", key="api_key_env", metavar="VAR", help="send the key held in VAR")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_from_args(args)
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
        if ans.checked is not None and ans.checked.text != ans.answer:
            print("\n(as checked:)\n" + ans.marked)
    else:
        print(ans.marked)
    print()
    print(format_citations(ans))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
