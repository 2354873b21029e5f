"""Checks an LLM-written summary against the node it describes before it may replace the extractive one.

An LLM (a served model or the small local one) rephrases the node's facts; it may also invent
places. The index promises that every citation resolves and that a summary keeps the citations
of the facts it is built from, so an LLM text is accepted only when:

- every citation it writes resolves to lines of an indexed file (else the node falls back to its
  extractive summary, with the invented citation named as the reason);
- citations that resolve but are not the node's own are removed and recorded (the facts do not
  back them);
- the citations of the extractive summary are all present: missing ones are appended as
  "Sources: [...]" and recorded, and when they leave no room for prose within `max_tokens` the
  node falls back;
- some prose is left (a few words besides citations), it does not echo the prompt, and it names
  the node (the last part of its name), a cheap test that the text is about this node at all;
- a sentence the model repeats is kept once (small models loop under greedy decoding).

A fallback is never silent: the reason is stored in the node file and counted in the run report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from brain.ontology import BrainNode
from brain.text import citations_in, clip_tokens, count_tokens, strip_citations

MIN_PROSE_WORDS = 4
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_MARKUP = re.compile(r"(?:^|\s)(?:[*#>-]+|\d+\.)\s|\*\*|\bsummary:\s*", re.IGNORECASE)
_ECHO = ("Facts (with citations)", "Node: ", "Write the summary")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PREAMBLE = re.compile(r"^(?:here is|here's|summary|sure)[^:\n]{0,40}:\s*", re.IGNORECASE)

Resolver = Callable[[str, int, int], bool]


@dataclass
class Checked:
    """The outcome of checking one LLM summary."""

    text: str  # the summary to store: the checked LLM text, or the extractive one on fallback
    accepted: bool  # whether `text` is the LLM's
    reason: str = ""  # why the node fell back (accepted is False)
    dropped: list[str] = field(default_factory=list)  # resolvable citations the node does not own
    restored: list[str] = field(default_factory=list)  # node citations the LLM left out, appended

    def record(self) -> dict:
        """What the node file keeps about the check (empty when there is nothing to say)."""
        out: dict = {}
        if self.reason:
            out["fallback"] = self.reason
        if self.dropped:
            out["dropped_citations"] = self.dropped
        if self.restored:
            out["restored_citations"] = self.restored
        return out


def _span(path: str, start: int, end: int) -> str:
    return f"{path}:{start}-{end}"


def _complete_sentences(text: str) -> str:
    """Cut a text that stops mid-sentence (generation or the token budget hit its limit) at its last
    sentence end; a text with no sentence end at all is kept whole."""
    text = text.strip()
    if not text or strip_citations(text).rstrip()[-1:] in (".", "!", "?"):
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].strip() if ends else text


def _dedupe_sentences(text: str) -> str:
    seen: set[str] = set()
    out = []
    for sentence in _SENTENCE.split(text):
        key = " ".join(sentence.lower().split())
        if key and key not in seen:
            seen.add(key)
            out.append(sentence)
    return " ".join(out)


def _names_node(prose: str, node: BrainNode) -> bool:
    """Whether the prose mentions the node: the last part of a symbol name (`Item.take` -> take), or
    one word of a phrase name (a recipe goal, a domain term), in any case."""
    if " " in node.name.strip():
        words = [w for w in re.split(r"\W+", node.name) if len(w) > 3] or node.name.split()
    else:
        words = [re.split(r"[.:/#]", node.name)[-1] or node.name]
    return any(re.search(rf"(?i)(?<![A-Za-z0-9]){re.escape(w)}(?:e?s)?(?![A-Za-z0-9])", prose) for w in words)


def check_summary(
    text: str, node: BrainNode, extractive: str, max_tokens: int, resolves: Resolver
) -> Checked:
    """Accept, repair or reject `text` as the summary of `node` (see the module docstring)."""

    def fallback(reason: str) -> Checked:
        return Checked(text=extractive, accepted=False, reason=reason)

    text = _PREAMBLE.sub("", " ".join(text.replace("`", "").split()))
    text = " ".join(_MARKUP.sub(" ", text).split())
    if any(marker in text for marker in _ECHO):
        return fallback("LLM answer echoes the prompt")
    text = _dedupe_sentences(_complete_sentences(text))
    own = set(node.citations) | {_span(node.path, node.start_line, node.end_line)}
    own |= {_span(p, s, e) for p, s, e in citations_in(extractive)}
    dropped: list[str] = []
    for path, start, end in citations_in(text):
        span = _span(path, start, end)
        if not resolves(path, start, end):
            return fallback(f"LLM wrote citation [{span}] that does not resolve in the graph")
        if span not in own:
            dropped.append(span)
            written = f"{path}:{start}" if start == end and f"[{path}:{start}]" in text else span
            text = text.replace(f"[{written}]", "")
    text = " ".join(text.split())
    text = re.sub(r"\s+([.,;:])", r"\1", text)
    if len(strip_citations(text).split()) < MIN_PROSE_WORDS:
        return fallback("LLM answer has no usable prose")
    if not _names_node(strip_citations(text), node):
        return fallback(f"LLM prose does not name the node ({node.name})")

    def missing(prose: str) -> list[str]:
        present = {_span(p, s, e) for p, s, e in citations_in(prose)}
        wanted = [_span(p, s, e) for p, s, e in citations_in(extractive)]
        if not wanted and not present:  # an extractive text always cites; keep the node's main place
            wanted = [
                node.citations[0] if node.citations else _span(node.path, node.start_line, node.end_line)
            ]
        return list(dict.fromkeys(c for c in wanted if c not in present))

    # clipping the prose may cut a citation it had: recompute what is missing until it is stable
    # (prose only shrinks, so the missing set only grows and is bounded: the loop ends)
    restored, prose, suffix = missing(text), text, ""
    while True:
        suffix = (" Sources: " + " ".join(f"[{c}]" for c in restored) + ".") if restored else ""
        room = max_tokens - count_tokens(suffix)
        prose = _complete_sentences(clip_tokens(text, room)) if room > 0 else ""
        now = missing(prose)
        if now == restored:
            break
        restored = now
    if len(strip_citations(prose).split()) < MIN_PROSE_WORDS:
        return fallback(
            f"the node's {len(restored)} citations leave no room for LLM prose in {max_tokens} tokens"
        )
    return Checked(text=(prose + suffix).strip(), accepted=True, dropped=dropped, restored=restored)
