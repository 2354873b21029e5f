"""Code context for dataset rows (RAFT-style): every row is asked the way the query CLI asks.

The query CLI sends the question with retrieved, labelled code (`answer.prompt.build_messages`)
and wants an answer that cites it. An adapter trained on bare questions with template answers
learned to ignore code and answered worse than the untuned base given the same code, so by
default (`context.share` 1.0) every row carries code in that exact form:
- a training row shows the code that answers it (the subject's span as a symbol window for the question,
  plus up to `cited_blocks` other spans its answer cites) among up to `distractors` blocks that
  search finds for the question, shuffled; the answer opens with the symbol and the label of
  its block and says what that code does, read from the lines shown (`dataset.describe`);
- with `order: search` a training row is built like a held-out row (below) whenever search
  shows its answering code: the served blocks in search order, so the row also teaches that the
  first hits are likelier to answer; when search misses the code, the shuffled form above;
- `absent_share` of the positive training rows show search results with the answering code
  left out, and the answer says so and cites the closest block shown (the top hit);
- a negative row (a made-up name) shows the closest real thing among search results;
- a held-out row shows what search retrieves for the question, as the query CLI would
  (`search_k` hits, `tokens` budget, hybrid search: lexical + graph alone where `make
  brain-embed` has not run); its reference answer is built from those blocks:
  the answering code when search found it, else the "not shown, closest is" answer.
Every citation in an answer names a block shown in that row, or a sub-range of one: one the
code does not show is dropped from the text, and a sentence left without its citation that
introduced a quoted snippet goes with its snippet.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from answer.blocks import Block, estimate_tokens, pack_blocks
from answer.prompt import training_messages
from brain.search import Hit, Searcher
from brain.text import citations_in
from dataset.compose import citations_of, fit, tick
from dataset.config import ContextConfig
from dataset.describe import describe, read, what_it_does
from dataset.knowledge import Knowledge

_CITE = re.compile(r"\s?\[([^\[\]\s]+?):(\d+)(?:-(\d+))?\]")
# aspects whose template answer opens with what the symbol is: the code-read opening replaces it
_WHAT_IS = {"overview", "class", "capability", "goal", "concept", "contents"}
_SAID = {  # what the template's remaining sentences already say about the code
    "raises": re.compile(r"\braises?\b"),
    "calls": re.compile(r"\bcalls\b"),
    "methods": re.compile(r"\bmethods\b"),
    "returns": re.compile(r"\breturns\b"),
}
_FOCUS = {"raises": "raises", "fails": "raises", "returns": "returns", "calls": "calls", "methods": "methods"}


@dataclass(frozen=True)
class _Span:
    path: str
    start_line: int
    end_line: int


class ContextMaker:
    """Puts code context into rows, in place; one per dataset run (search and file reads)."""

    def __init__(
        self, k: Knowledge, searcher: Searcher, cfg: ContextConfig, max_answer_tokens: int, seed: int
    ) -> None:
        self.k = k
        self.search = searcher
        self.cfg = cfg
        self.max_tokens = max_answer_tokens
        self.rng = random.Random(f"{seed}:context")
        self.counts = {
            "train": 0,
            "train_absent": 0,
            "train_negative": 0,
            "eval": 0,
            "eval_code_shown": 0,
            "eval_absent": 0,
            "eval_negative": 0,
            "bare": 0,
        }

    # ---- entry -------------------------------------------------------------------------------
    def add(self, rows: list[dict[str, Any]], parts: dict[str, list[str]], held_out: bool) -> None:
        """Give `share` of `rows` their code (see the module docstring); `parts` = row id -> the
        answer's parts (dataset.compose), from which the row's answer is rebuilt."""
        side = "eval" if held_out else "train"
        for row in rows:
            if self.rng.random() >= self.cfg.share:
                continue
            absent = not held_out and not row["negative"] and self.rng.random() < self.cfg.absent_share
            done = self._row(row, parts.get(row["id"], []), held_out, absent)
            if not done:
                self.counts["bare"] += 1
            else:
                self.counts[side] += 1
                if done != "shown" or held_out:
                    self.counts[f"{side}_{done}"] += 1

    def _row(self, row: dict[str, Any], parts: list[str], held_out: bool, absent: bool) -> str | bool | None:
        gold = self._gold(row)
        if row["negative"]:
            return self._negative(row, held_out)
        if gold is None:
            return None
        if held_out or (self.cfg.order == "search" and not absent):
            blocks, hits = self._retrieved(row["prompt"], self.cfg.tokens)
            shown = _best(blocks, gold)
            if shown is not None:
                return self._positive(row, parts, blocks, shown, gold) and (
                    "code_shown" if held_out else "shown"
                )
            if held_out:
                return self._absent(row, blocks, hits, shuffle=False) and "absent"
        if absent:
            blocks, hits = self._retrieved(row["prompt"], self.cfg.tokens, avoid=[gold, *self._cited(row)])
            return self._absent(row, blocks, hits, shuffle=True) and "absent"
        return self._train_positive(row, parts, gold) and "shown"

    # ---- the row kinds -----------------------------------------------------------------------
    def _train_positive(self, row: dict[str, Any], parts: list[str], gold: _Span) -> bool:
        """Gold block + up to `cited_blocks` other cited spans + search distractors, shuffled."""
        spans = [gold] + [s for s in self._cited(row) if not _overlaps_span(s, gold)][: self.cfg.cited_blocks]
        blocks = self._pack(spans, row["prompt"], self.cfg.tokens)
        first = _best(blocks, gold)
        if first is None:
            return False
        used = sum(estimate_tokens(b.render() + "\n\n") for b in blocks)
        others, _ = self._retrieved(row["prompt"], max(0, self.cfg.tokens - used), avoid=blocks)
        blocks += others[: self.cfg.distractors]
        self.rng.shuffle(blocks)
        return self._positive(row, parts, blocks, first, gold)

    def _positive(
        self, row: dict[str, Any], parts: list[str], blocks: list[Block], shown: Block, gold: _Span
    ) -> bool:
        """Answer = the opening read from the gold block + the template's parts, each citation
        bound to a block shown (or dropped)."""
        aspect = row.get("aspect", "")
        node = self.k.nodes.get(row.get("subject") or "")
        name = node.qualname if node is not None else self._name_at(shown)
        kind = node.type if node is not None else "function"
        if kind == "module" and shown.start > 1:  # search showed a part of the file, not its head
            inner = self.k.graph.at(shown.path, shown.start)
            name, kind = (inner.qualname, inner.type) if inner is not None else (name, kind)
        label = _label(shown, gold)
        rest = parts[1:] if aspect in _WHAT_IS or row["kind"] == "discovery" else parts
        if aspect in _WHAT_IS:  # the docstring and role sentences: the opening said it from the code
            rest = [p for p in rest if citations_in(p) or p.startswith("```")]
        rest = _bind(rest, blocks)
        said = " ".join(rest)
        skip = frozenset(k for k, pat in _SAID.items() if pat.search(said))
        opening = describe(name, label, _clip_code(shown, gold), _FOCUS.get(aspect, ""), 2, kind, skip)
        if row["kind"] == "discovery":
            opening = "Yes: " + opening
        also = self._related(node, blocks, shown, said + opening)
        walk = self._walk(blocks, shown, " ".join([opening, said, *also]))
        answer = _fit(self.max_tokens, [opening, *rest, *also, *walk])
        if answer is None:
            return False
        self._set(row, blocks, answer)
        return True

    def _absent(
        self, row: dict[str, Any], blocks: list[Block], hits: dict[tuple[str, int], Hit], shuffle: bool
    ) -> bool:
        """The answering code is not among the blocks: say so, cite the top hit (the closest);
        training rows show the blocks shuffled, held-out rows in search order (as served)."""
        if not blocks:
            return False
        top = blocks[0]
        node = self.k.nodes.get(row.get("subject") or "")
        asked = f" {tick(node.qualname)}" if node is not None else " the code that answers this"
        hit = hits.get((top.path, top.start))
        name = hit.qualname if hit is not None else self._name_at(top)
        kind = hit.type if hit is not None else "function"
        joiner, predicate = what_it_does(read(top.code, name, kind))
        first = f"The code shown does not include{asked}, so I cannot answer from it."
        closest = f"The closest block shown is {tick(name)} {top.label}{joiner}{predicate}"
        answer = _fit(self.max_tokens, [first, closest])
        if answer is None:
            return False
        shown = list(blocks)
        if shuffle:
            self.rng.shuffle(shown)
        self._set(row, shown, answer)
        return True

    def _negative(self, row: dict[str, Any], held_out: bool) -> str | None:
        """A made-up name: the closest real thing (the row's ref) among search results."""
        closest = self.k.nodes.get(row["refs"][0]) if row["refs"] else None
        if held_out or closest is None:
            blocks, hits = self._retrieved(row["prompt"], self.cfg.tokens)
            near = next(
                (b for b in blocks if closest is not None and _overlaps(b, _node_span(closest))), None
            )
        else:
            blocks = self._pack([_node_span(closest)], row["prompt"], self.cfg.tokens)
            if not blocks:
                return None
            used = estimate_tokens(blocks[0].render() + "\n\n")
            others, hits = self._retrieved(row["prompt"], max(0, self.cfg.tokens - used), avoid=blocks)
            near = blocks[0]
            blocks += others[: self.cfg.distractors]
            self.rng.shuffle(blocks)
        if not blocks:
            return None
        text = [s for s in _sentences(row["response"]) if not citations_in(s)]
        if near is not None and closest is not None:
            what = f"{tick(closest.qualname)} {near.label}"
        else:
            top = blocks[0]
            hit = hits.get((top.path, top.start))
            what = f"{tick(hit.qualname if hit else self._name_at(top))} {top.label}"
        answer = _fit(self.max_tokens, [*text, f"The closest code shown is {what}."])
        if answer is None:
            return None
        self._set(row, blocks, answer)
        return "negative"

    def _related(self, node: Any, blocks: list[Block], shown: Block, said: str) -> list[str]:
        """One sentence naming up to `related_blocks` other blocks shown that the graph ties to the
        subject (it calls them, they call it, they share its class, or one holds the other), each
        with its label: real questions often need several symbols, and an answer that reads one
        block and ignores the rest of the code shown names fewer of them than the untuned base."""
        if node is None or self.cfg.related_blocks <= 0:
            return []
        graph = self.k.graph
        ties: dict[str, str] = {n.id: "which it calls" for n in graph.callees(node.id)}
        ties.update({n.id: "which calls it" for n in graph.callers(node.id) if n.id not in ties})
        owner = self.k.parent.get(node.id, "")
        out: list[str] = []
        for b, other in self._others(blocks, shown, said):
            if len(out) >= self.cfg.related_blocks:
                break
            if other.id == node.id:
                continue
            tie = ties.get(other.id)
            holder = self.k.parent.get(other.id)
            if tie is None and holder == node.id:
                tie = f"a {other.type} of it"
            elif tie is None and holder == owner and owner in self.k.nodes and other.type == node.type:
                tie = f"another {other.type} of {tick(self.k.nodes[owner].qualname)}"
            if tie is not None:
                out.append(f"{tick(other.qualname)} {b.label}, {tie}")
        if not out:
            return []
        return [f"Related code shown: {'; '.join(out)}."]

    def _walk(self, blocks: list[Block], shown: Block, said: str) -> list[str]:
        """Up to `walk_blocks` other blocks shown, in the prompt's order, one sentence each: the
        symbol at its top, its label and what its lines say it does. A served prompt shows 7-14
        blocks and a user's question rarely names the one that answers; an answer that reads only
        the block it opens with names the answering code less often than the untuned base, which
        moves on through the code shown (README, answer benchmark)."""
        if self.cfg.walk_blocks <= 0:  # off: no graph lookups on the default path
            return []
        out: list[str] = []
        for b, other in self._others(blocks, shown, said):
            if len(out) >= self.cfg.walk_blocks:
                break
            joiner, predicate = what_it_does(read(b.code, other.qualname, other.type))
            if predicate == ".":  # nothing to say beyond "is the code shown"
                continue
            out.append(f"{tick(other.qualname)} {b.label}{joiner}{predicate}")
        if out:
            out[0] = "Also shown: " + out[0]
        return out

    def _others(self, blocks: list[Block], shown: Block, said: str) -> Iterator[tuple[Block, Any]]:
        """The blocks besides `shown`, in order, with the graph symbol at each one's top, skipping
        those whose symbol the answer already names (in `said`) or names in an earlier block."""
        named: set[str] = set()
        for b in blocks:
            other = self.k.graph.at(b.path, b.start) if b is not shown else None
            if other is None or tick(other.qualname) in said or other.qualname in named:
                continue
            named.add(other.qualname)
            yield b, other

    # ---- pieces ------------------------------------------------------------------------------
    def _gold(self, row: dict[str, Any]) -> _Span | None:
        """The code that answers the row: its subject's span, else its first citation."""
        node = self.k.nodes.get(row.get("subject") or "")
        if node is not None and node.end_line >= node.start_line >= 1:
            return _node_span(node)
        cites = citations_in(row["response"])
        return _Span(*cites[0]) if cites else None

    def _cited(self, row: dict[str, Any]) -> list[_Span]:
        return list(dict.fromkeys(_Span(*c) for c in citations_in(row["response"])))

    def _retrieved(
        self, question: str, budget: int, avoid: Sequence[Block | _Span] = ()
    ) -> tuple[list[Block], dict[tuple[str, int], Hit]]:
        """What search retrieves for `question`, packed within `budget`, minus spans in `avoid`."""
        hits = [
            h
            for h in self.search.search(question, self.cfg.search_k, mode=self.cfg.search_mode)
            if not any(_overlaps_span(_Span(h.path, h.start_line, h.end_line), _as_span(a)) for a in avoid)
        ]
        return self._pack(hits, question, budget), {(h.path, h.start_line): h for h in hits}

    def _pack(self, spans: Sequence[Any], question: str, budget: int) -> list[Block]:
        """`spans` packed exactly as the query CLI packs search hits: symbol windows for the question."""
        return pack_blocks(
            spans, self.k.graph.source, budget, question=question, window_lines=self.cfg.window_lines
        )

    def _name_at(self, block: Block) -> str:
        node = self.k.graph.at(block.path, block.start)
        return node.qualname if node is not None else block.path

    @staticmethod
    def _set(row: dict[str, Any], blocks: list[Block], answer: str) -> None:
        row["messages"] = training_messages(row["prompt"], blocks, answer)
        row["response"] = answer
        row["citations"] = citations_of(answer)
        row["context"] = [b.label for b in blocks]


def _fit(max_tokens: int, parts: list[str]) -> str | None:
    """`compose.fit`, minus a closing sentence that introduces a snippet the budget cut off."""
    answer = fit(parts, max_tokens)
    while answer is not None and answer.endswith(":") and len(parts) > 1:
        kept = [p for p in parts if p in answer]
        parts = kept[:-1]
        answer = fit(parts, max_tokens) if parts else None
    return answer


def _best(blocks: Sequence[Block], gold: _Span) -> Block | None:
    """The block showing the gold span best: the one holding its first line, else the widest overlap."""
    scored = [
        (b.start <= gold.start_line <= b.end, min(b.end, gold.end_line) - max(b.start, gold.start_line), -i)
        for i, b in enumerate(blocks)
        if _overlaps(b, gold)
    ]
    return blocks[-max(scored)[2]] if scored else None


def _node_span(node: Any) -> _Span:
    return _Span(node.path, node.start_line, node.end_line)


def _as_span(x: Block | _Span) -> _Span:
    return _Span(x.path, x.start, x.end) if isinstance(x, Block) else x


def _overlaps_span(a: _Span, b: _Span) -> bool:
    return a.path == b.path and a.start_line <= b.end_line and b.start_line <= a.end_line


def _overlaps(block: Block, span: _Span) -> bool:
    return _overlaps_span(_as_span(block), span)


def _label(block: Block, gold: _Span) -> str:
    """The gold span's lines within the block: the block's label, or a sub-range of it."""
    a, b = max(block.start, gold.start_line), min(block.end, gold.end_line)
    return f"[{block.path}:{a}-{b}]"


def _clip_code(block: Block, gold: _Span) -> str:
    lines = block.code.splitlines()
    a, b = max(block.start, gold.start_line), min(block.end, gold.end_line)
    return "\n".join(lines[a - block.start : b - block.start + 1])


def within(path: str, start: int, end: int, blocks: Sequence[Block]) -> bool:
    """Whether `path:start-end` is a block's label or a sub-range of one."""
    return any(b.path == path and b.start <= start <= end <= b.end for b in blocks)


def _bind(parts: list[str], blocks: list[Block]) -> list[str]:
    """The parts with every citation bound to the blocks: kept when inside a block, cut to the
    block when it starts inside one, else dropped; a sentence that introduced a quoted snippet
    and lost its citation is dropped with the snippet."""
    out: list[str] = []
    dropped_intro = False
    for part in parts:
        if part.startswith("```"):
            if not dropped_intro:
                out.append(part)
            dropped_intro = False
            continue
        had = bool(citations_in(part))

        def fix(m: re.Match[str]) -> str:
            path, a = m.group(1), int(m.group(2))
            b = int(m.group(3) or a)
            if within(path, a, b, blocks):
                return m.group(0)
            inside = next((x for x in blocks if x.path == path and x.start <= a <= x.end), None)
            if inside is not None:
                return f"{m.group(0)[: len(m.group(0)) - len(m.group(0).lstrip())]}[{path}:{a}-{min(b, inside.end)}]"
            return ""

        text = _CITE.sub(fix, part)
        text = re.sub(r"\s+at\s*:", ":", text).replace(" ,", ",").replace(" .", ".")
        lost = had and not citations_in(text)
        dropped_intro = lost and text.rstrip().endswith(":")
        if dropped_intro:
            continue
        out.append(text)
    return out


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`])", text.strip()) if s]
