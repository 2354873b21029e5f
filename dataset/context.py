"""Code context for dataset rows (RAFT-style): the labelled code a question is answered from.

The query CLI asks the adapter with retrieved code in the prompt and wants the answer to cite
it by the labels shown; an adapter trained on bare questions never learned that and cites
nothing, or lines it invents. With `context.share` > 0 that share of the rows (seeded) gets its
user turn in the query CLI's form (`answer.prompt`):
- a training row shows the code its answer cites, each cited span as a block (cut to
  `max_block_lines`, the answer's citation then naming exactly the lines shown), among up to
  `distractors` blocks that lexical search finds for the question, in shuffled order: the
  adapter learns to pick the relevant block and copy its label;
- a held-out row shows what search alone retrieves for the question, as the query CLI would,
  so that eval measures the answers users get.
A row whose cited code does not fit `tokens` keeps the bare question (counted).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from answer.blocks import Block, estimate_tokens, pack_blocks
from answer.prompt import training_messages
from brain.search import Searcher
from brain.text import citations_in
from dataset.compose import citations_of
from dataset.config import ContextConfig
from extractor.graph import Graph


@dataclass(frozen=True)
class _Span:
    path: str
    start_line: int
    end_line: int


class ContextMaker:
    """Puts code context into rows, in place; one per dataset run (search and file reads)."""

    def __init__(self, graph: Graph, searcher: Searcher, cfg: ContextConfig, seed: int) -> None:
        self.graph = graph
        self.search = searcher
        self.cfg = cfg
        self.rng = random.Random(f"{seed}:context")
        self.counts = {"train": 0, "eval": 0, "cited_code_too_long": 0}

    def add(self, rows: list[dict[str, Any]], held_out: bool) -> None:
        """Give `share` of `rows` their code context (training rows: cited code + distractors)."""
        for row in rows:
            if self.rng.random() >= self.cfg.share:
                continue
            if held_out:
                self._set(row, self._retrieved(row["prompt"], self.cfg.tokens), row["response"])
                self.counts["eval"] += 1
            elif self._with_cited_code(row):
                self.counts["train"] += 1
            else:
                self.counts["cited_code_too_long"] += 1

    def _retrieved(self, question: str, budget: int) -> list[Block]:
        hits = self.search.search(question, self.cfg.search_k, mode="lexical")
        return pack_blocks(hits, self.graph.source, budget, max_block_lines=self.cfg.max_block_lines)

    def _with_cited_code(self, row: dict[str, Any]) -> bool:
        answer = row["response"]
        spans = list(dict.fromkeys(_Span(*c) for c in citations_in(answer)))
        blocks = pack_blocks(
            spans, self.graph.source, self.cfg.tokens, max_block_lines=self.cfg.max_block_lines
        )
        shown = {(b.path, b.start): b for b in blocks}
        for span in spans:
            block = shown.get((span.path, span.start_line))
            if block is None:  # did not fit, or overlaps a block shown for another citation
                return False
            if block.end != span.end_line:
                answer = answer.replace(f"[{span.path}:{span.start_line}-{span.end_line}]", block.label)
        used = sum(estimate_tokens(b.render() + "\n\n") for b in blocks)
        others = [
            b
            for b in self._retrieved(row["prompt"], max(0, self.cfg.tokens - used))
            if not any(b.path == g.path and b.start <= g.end and g.start <= b.end for g in blocks)
        ]
        blocks += others[: self.cfg.distractors]
        self.rng.shuffle(blocks)
        self._set(row, blocks, answer)
        return True

    @staticmethod
    def _set(row: dict[str, Any], blocks: list[Block], answer: str) -> None:
        row["messages"] = training_messages(row["prompt"], blocks, answer)
        row["response"] = answer
        row["citations"] = citations_of(answer)
        row["context"] = [b.label for b in blocks]
