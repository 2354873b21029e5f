"""Citations bound to the code shown, while decoding: a logits processor for local generation
and a regex for vLLM's structured outputs.

Once the model opens a `[`, every next token must keep the text a prefix of a citation that
names a shown block, `[path:start-end]`, or a sub-range of one (`[path:a-b]`, `[path:a]`, with
start <= a <= b <= end); `]` is allowed only when the citation is complete. Outside a citation a
token that opens one with a wrong path is banned. Inside backticks (inline code or a fence) a `[`
is code, `Callable[[int], str]` or `items[0]`, and stays free: binding it turned quoted
signatures into labels (`Callable[tests/test_threading.py:147-150]`). So a local answer cannot invent a location;
the post-decoding check (answer.citations.Checker) stays, because a model can still cite the
wrong shown block. A served model gets the same rule as a regex over the whole answer
(`citation_regex`, sent as vLLM's `structured_outputs`); the regex cannot say start <= end, which
the check then repairs.

Cost: the tokenizer's pieces are decoded once per tokenizer; inside a citation only the model's
top candidates are tested (all citation-like tokens when none of them fits).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from answer.blocks import Block
from answer.generate import _Processor

TOP_K = 48
FIRST_CITATION_WITHIN = 300  # characters before the first label, with open_with_citation
_RANGE = re.compile(r"(\d*)(?:-(\d*))?")
_CITE_CHARS = re.compile(r"[\w./:\-\]]+")


class Spans:
    """The citable spans of one prompt: path -> [(start, end)] of the blocks shown."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        self.by_path: dict[str, list[tuple[int, int]]] = {}
        for b in blocks:
            self.by_path.setdefault(b.path, []).append((b.start, b.end))

    def viable(self, inner: str) -> bool:
        """Whether `inner` (the text after `[`, no `]` yet) can still become a valid citation."""
        path, colon, rest = inner.partition(":")
        if not colon:
            return any(p.startswith(path) for p in self.by_path)
        ranges = self.by_path.get(path)
        m = _RANGE.fullmatch(rest)
        if not ranges or m is None:
            return False
        a, b = m.group(1), m.group(2)
        if b is None:
            return not a or any(_prefix_fits(a, lo, hi) for lo, hi in ranges)
        if not a or a.startswith("0"):
            return False
        start = int(a)
        return any(lo <= start <= hi and (not b or _prefix_fits(b, start, hi)) for lo, hi in ranges)

    def complete(self, inner: str) -> bool:
        """Whether `[inner]` names a shown block or a sub-range of one."""
        path, colon, rest = inner.partition(":")
        m = _RANGE.fullmatch(rest) if colon else None
        if m is None or not m.group(1) or m.group(2) == "":
            return False
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else start
        return any(lo <= start <= end <= hi for lo, hi in self.by_path.get(path, ()))

    def allows(self, open_inner: str | None, piece: str) -> bool:
        """Whether `piece` may follow: `open_inner` is the open citation's text (None: none open)."""
        if open_inner is None:
            if "[" not in piece:
                return True
            open_inner, piece = "", piece[piece.rindex("[") + 1 :]
            if "]" in piece:
                return False
        text = open_inner + piece
        if "]" not in text:
            return self.viable(text)
        inner, _, after = text.partition("]")
        return self.complete(inner) and self.allows(None, after)


def _prefix_fits(digits: str, lo: int, hi: int) -> bool:
    """Whether some n in [lo, hi] is written starting with `digits` (no leading zero)."""
    if digits.startswith("0"):
        return False
    for width in range(len(digits), len(str(hi)) + 1):
        pad = width - len(digits)
        if max(int(digits + "0" * pad), lo) <= min(int(digits + "9" * pad), hi):
            return True
    return False


@lru_cache(maxsize=4)
def _pieces(tok: Any) -> tuple[list[str], list[int], list[int], list[int]]:
    """(text of every token id, ids that contain `[`, ids that can appear inside a citation,
    ids that contain a backtick)."""
    pieces = [tok.decode([i]) for i in range(len(tok))]
    brackets = [i for i, p in enumerate(pieces) if "[" in p]
    citeish = [i for i, p in enumerate(pieces) if p and _CITE_CHARS.fullmatch(p)]
    ticks = [i for i, p in enumerate(pieces) if "`" in p]
    return pieces, brackets, citeish, ticks


def in_code(text: str) -> bool:
    """Whether the end of `text` lies inside backticks (an odd number of them so far)."""
    return text.count("`") % 2 == 1


def open_citation(text: str) -> str | None:
    """The text after the last `[` of `text` when that citation is still open, else None (also
    when that `[` is inside backticks: code, not a citation)."""
    at = text.rfind("[")
    if at < 0 or "]" in text[at:] or in_code(text[:at]):
        return None
    return text[at + 1 :]


def units_before_citation(text: str) -> int | None:
    """How far `text` is from its start while it has not yet opened a citation, counted as the
    regex of `citation_regex(open_with_citation=True)` counts (a code span is one unit); None
    once the first line has ended (a newline) without one. Text from the first `[` outside
    backticks on is not counted: the citation rule judges it."""
    units, in_span = 0, False
    for ch in text:
        if ch == "\n":
            return None
        if in_span:
            in_span = ch != "`"
            continue
        if ch == "[":
            break
        in_span = ch == "`"
        units += 1
    return units


def first_line_allows(text: str, piece: str) -> bool:
    """Whether `piece` may follow `text` when the answer must cite on its first line within
    `FIRST_CITATION_WITHIN` units: before the first citation no newline, and room left for its
    `[` (the citation itself is judged by `Spans.allows`)."""
    units = units_before_citation(text + piece)
    if units is None:
        return False
    opened = open_citation(text + piece) is not None or "[" in piece and not in_code(text)
    return units <= FIRST_CITATION_WITHIN - (0 if opened else 1)


def has_cited(text: str) -> bool:
    """Whether `text` holds a closed citation outside backticks (under the constraint every
    closed one names a shown block)."""
    at = 0
    while (at := text.find("[", at)) >= 0:
        if not in_code(text[:at]) and "]" in text[at:]:
            return True
        at += 1
    return False


class CitationConstraint(_Processor):
    """Logits processor: row i's citations may only name `blocks[i]` (or sub-ranges); with
    `open_with_citation` the first line must also cite one within `FIRST_CITATION_WITHIN` units,
    the rule `citation_regex(open_with_citation=True)` gives a served model."""

    def __init__(
        self,
        tok: Any,
        blocks: Sequence[Sequence[Block]],
        top_k: int = TOP_K,
        open_with_citation: bool = False,
    ) -> None:
        self.tok = tok
        self.spans = [Spans(b) for b in blocks]
        self.top_k = top_k
        self.open_with_citation = open_with_citation
        self.pieces, self.brackets, self.citeish, self.ticks = _pieces(tok)

    def _open_first(self, row: int, text: str, spans: Spans, scores: Any) -> None:
        """Before the first citation: only the model's top tokens that keep a first-line label
        possible (no end of answer, no newline, a `[` only for a shown label); when none of them
        does, the `[` tokens that open one (inside a code span: the backticks that close it)."""
        top = scores[row].topk(min(self.top_k, scores.shape[1])).indices.tolist()
        code = in_code(text)

        def ok(i: int) -> bool:
            piece = self.pieces[i] if i < len(self.pieces) else ""
            return (
                i != self.tok.eos_token_id
                and bool(piece)
                and (code or spans.allows(None, piece))
                and first_line_allows(text, piece)
            )

        keep_ids = [i for i in top if ok(i)]
        if not keep_ids:
            keep_ids = [i for i in (self.ticks if code else self.brackets) if ok(i)]
        if keep_ids:
            keep = scores[row, keep_ids].clone()
            scores[row, :] = float("-inf")
            scores[row, keep_ids] = keep

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        new = self.new_tokens(input_ids)
        for row, spans in enumerate(self.spans):
            if not spans.by_path:
                continue
            text = self.tok.decode(new[row].tolist(), skip_special_tokens=True)
            inner = open_citation(text)
            if inner is None and self.open_with_citation and not has_cited(text):
                self._open_first(row, text, spans, scores)
                continue
            if inner is None:
                if in_code(text):
                    continue
                banned = [i for i in self.brackets if not spans.allows(None, self.pieces[i])]
                if banned:
                    scores[row, banned] = float("-inf")
                continue
            top = scores[row].topk(min(self.top_k, scores.shape[1])).indices.tolist()
            ok = [i for i in top if i < len(self.pieces) and spans.allows(inner, self.pieces[i])]
            if not ok:
                ok = [i for i in self.citeish if spans.allows(inner, self.pieces[i])]
            if ok:
                keep = scores[row, ok].clone()
                scores[row, :] = float("-inf")
                scores[row, ok] = keep
        return scores


def citation_regex(blocks: Sequence[Block], open_with_citation: bool = False) -> str:
    """A regex every answer matches whose `[`s outside backticks only open citations of `blocks`
    (or sub-ranges); inside backticks anything but a backtick goes.

    `open_with_citation`: the answer must also cite a shown block on its first line, within
    `FIRST_CITATION_WITHIN` characters (a code span counts as one), as every training row does
    (1,779 of 1,779 rows of a cachetools dataset, the first label at a median of 41 characters,
    at most 279): the answering symbol and its label, or "the closest block shown is ...". The
    model still picks what to cite. Without the bound the rule did nothing: asked to cite before
    its first newline, the 135M model wrote 256 tokens on one line and cited in 24 % of answers.
    """
    alts = []
    for path, ranges in Spans(blocks).by_path.items():
        for lo, hi in ranges:
            num = number_regex(lo, hi)
            alts.append(f"{re.escape(path)}:{num}(?:-{num})?")
    if not alts:
        return r"(?:[^\[`]|`[^`]*`)*(?:`[^`]*)?"
    cite = r"\[(?:" + "|".join(alts) + r")\]"
    body = r"(?:[^\[`]|`[^`]*`|" + cite + r")*(?:`[^`]*)?"
    if not open_with_citation:
        return body
    return rf"(?:[^\[`\n]|`[^`\n]*`){{0,{FIRST_CITATION_WITHIN}}}" + cite + body


def number_regex(lo: int, hi: int) -> str:
    """A regex for the decimal numbers lo..hi (no leading zeros), 1 <= lo <= hi."""
    parts: list[str] = []
    for width in range(len(str(lo)), len(str(hi)) + 1):
        a, b = max(lo, 10 ** (width - 1)), min(hi, 10**width - 1)
        if a <= b:
            parts += _same_width(str(a), str(b))
    return "(?:" + "|".join(parts) + ")"


def _same_width(lo: str, hi: str) -> list[str]:
    if lo == hi:
        return [lo]
    if len(lo) == 1:
        return [f"[{lo}-{hi}]"]
    if lo[0] == hi[0]:
        return [lo[0] + p for p in _same_width(lo[1:], hi[1:])]
    rest = len(lo) - 1
    out = [lo[0] + p for p in _same_width(lo[1:], "9" * rest)]
    if int(hi[0]) - int(lo[0]) > 1:
        out.append(f"[{int(lo[0]) + 1}-{int(hi[0]) - 1}]" + "[0-9]" * rest)
    return out + [hi[0] + p for p in _same_width("0" * rest, hi[1:])]
