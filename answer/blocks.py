"""Search hits -> labelled code blocks for the prompt, within a token budget.

Each block is headed by its citation label `[path:start-end]`, the form the answer must cite, so
the model can copy a label it was shown instead of inventing lines. Blocks come in search order;
a hit overlapping lines already packed adds nothing and is skipped; a long hit is cut to
`max_block_lines` and to what is left of the budget, and its label then names exactly the lines
shown. Tokens are estimated (3 bytes per token, conservative for code in BPE vocabularies)
because the server's tokenizer is on the other side of HTTP; pass `count_tokens` to be exact.

The prompt around the blocks is worded in `answer.prompt`, the one place for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

MIN_BLOCK_LINES = 3  # a cut block shorter than this says too little to be worth its label


class SpanLike(Protocol):
    path: str
    start_line: int
    end_line: int


def estimate_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8")) // 3)


@dataclass
class Block:
    """Lines start..end of a file, shown to the model under their citation label."""

    path: str
    start: int
    end: int
    code: str
    symbol: str | None = None  # the graph node / pca_otf entity the block shows, when it shows one
    score: float = 0.0  # rank from search or selection (higher first)
    tokens: int = 0  # rendered size in tokens, once counted

    @property
    def label(self) -> str:
        return f"[{self.path}:{self.start}-{self.end}]"

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "path": self.path,
            "start": self.start,
            "end": self.end,
            "symbol": self.symbol,
            "tokens": self.tokens,
            "score": round(self.score, 4),
        }

    def render(self) -> str:
        return f"{self.label}\n```\n{self.code}\n```"


def pack_blocks(
    hits: Sequence[SpanLike],
    source: Callable[[str, int, int], str],
    budget_tokens: int,
    *,
    max_block_lines: int = 60,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> list[Block]:
    """The blocks to show, in hit order, whose rendered text fits `budget_tokens` in total."""
    blocks: list[Block] = []
    used = 0
    taken: dict[str, list[tuple[int, int]]] = {}
    for hit in hits:
        start, end = int(hit.start_line), int(hit.end_line)
        if start < 1 or end < start:
            continue
        if any(start <= e and s <= end for s, e in taken.get(hit.path, [])):
            continue
        end = min(end, start + max_block_lines - 1)
        try:
            lines = source(hit.path, start, end).splitlines()
        except OSError:  # file moved since indexing: nothing to show
            continue
        lines = lines[: end - start + 1]
        while lines and not lines[-1].strip():  # trailing blank lines carry nothing
            lines.pop()
        block = _fit(hit.path, start, lines, budget_tokens - used, count_tokens)
        if block is None:
            continue
        blocks.append(block)
        used += count_tokens(block.render() + "\n\n")
        taken.setdefault(hit.path, []).append((block.start, block.end))
    return blocks


def _fit(
    path: str, start: int, lines: list[str], budget: int, count_tokens: Callable[[str], int]
) -> Block | None:
    """The longest prefix of `lines` whose block fits `budget` (None when not even a few lines do)."""
    if not lines:
        return None
    whole = Block(path, start, start + len(lines) - 1, "\n".join(lines))
    if count_tokens(whole.render() + "\n\n") <= budget:
        return whole
    lo, hi = 0, len(lines) - 1  # binary search on the number of lines kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        cand = Block(path, start, start + mid - 1, "\n".join(lines[:mid]))
        if count_tokens(cand.render() + "\n\n") <= budget:
            lo = mid
        else:
            hi = mid - 1
    if lo < min(MIN_BLOCK_LINES, len(lines)):
        return None
    return Block(path, start, start + lo - 1, "\n".join(lines[:lo]))


def render_context(blocks: Sequence[Block]) -> str:
    return "\n\n".join(b.render() for b in blocks)
