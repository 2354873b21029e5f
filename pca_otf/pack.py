"""Context packing: the selected code, as labelled blocks, within a token budget.

A small model answers from what it is shown; the blocks are what it can cite. Each block is
headed by its `[path:start-end]` label, exactly the citation form the answer must use, so
copying a label is the easy way to cite correctly. Budgets are counted with the base model's own
tokenizer (a character or word estimate is off by 20-40 % on code, which either overflows the
context or wastes it). Two modes:
  windows  symbol-local windows: each selected symbol's own lines (long ones clipped), best first;
  heads    the first lines of each selected file: imports, module docstring, top-level names.
When the candidates do not fit, an optional judge (`ModelRelevance`) asks the model itself
whether each window is relevant to the question and ranks by that as well as by selection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from answer.blocks import Block, fit_block
from nanodex.errors import NanodexError
from pca_otf.program_graph import EntityIndex, ProgramGraph
from pca_otf.select import Selection

PACK_MODES = ("windows", "heads")
_MIN_PARTIAL_TOKENS = 48  # below this a clipped block is more label than code: skip it instead
# how `pack` clips a block that does not fit: separators are counted apart, one line is enough
# (the room was already checked against _MIN_PARTIAL_TOKENS), and never the whole block (trimming
# at the seams must make progress)
_clip = partial(fit_block, sep="", min_lines=1, whole=False)


@dataclass
class Packed:
    text: str
    blocks: list[Block]
    tokens: int
    budget: int
    mode: str
    candidates: int
    dropped: int
    clipped: int
    relevance_scored: int
    relevance: dict[str, float] = field(default_factory=dict)  # label -> the judge's P(relevant)

    def labels(self) -> list[str]:
        return [b.label for b in self.blocks]


class TokenCounter:
    """Counts tokens with the model's tokenizer (no special tokens: the chat template adds those)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer

    def __call__(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])


def candidate_blocks(
    selection: Selection,
    pg: ProgramGraph,
    index: EntityIndex,
    *,
    mode: str = "windows",
    window_lines: int = 60,
    head_lines: int = 40,
    function_first: bool = False,
) -> list[Block]:
    """Blocks for the selected region, best first, without overlaps inside a file.

    With `function_first` the selection's top function/method windows come first (their scores
    lifted above every other block), so a tight budget keeps the code that does the work before
    the classes and modules around it.
    """
    if mode not in PACK_MODES:
        raise NanodexError(f"unknown pack mode '{mode}'", f"use one of: {', '.join(PACK_MODES)}")
    taken: dict[str, list[tuple[int, int]]] = {}
    out: list[Block] = []

    def add(path: str, start: int, end: int, score: float, entity_id: str | None) -> None:
        spans = taken.setdefault(path, [])
        if any(a <= start and end <= b for a, b in spans):
            return  # already shown inside a bigger window
        text = pg.source(path, start, end)
        lines = text.split("\n")
        if not text.strip():
            return
        end = start + len(lines) - 1
        spans.append((start, end))
        out.append(Block(path, start, end, text, symbol=entity_id, score=score))

    if mode == "heads":
        best: dict[str, tuple[float, int]] = {}
        for s in selection.nodes:
            e = s.entity
            if e.path not in best:
                best[e.path] = (s.score, max(e.end_line, 1))
        for path, (score, _) in best.items():
            file_end = _file_end(index, path)
            add(path, 1, min(head_lines, file_end), score, path)
        return out
    nodes = list(selection.nodes)
    lift = 0.0
    if function_first and selection.functions:
        firsts = [s.entity.id for s in selection.functions]
        lift = 1.0 + max(s.score for s in nodes)
        nodes = list(selection.functions) + [s for s in nodes if s.entity.id not in firsts]
    for s in nodes:
        e = s.entity
        if e.start_line < 1 or e.end_line < e.start_line:
            continue
        limit = head_lines if e.kind == "module" else window_lines
        bonus = lift if s in selection.functions else 0.0
        add(e.path, e.start_line, min(e.end_line, e.start_line + limit - 1), s.score + bonus, e.id)
    return out


def _file_end(index: EntityIndex, path: str) -> int:
    ends = [e.end_line for e in index.by_path.get(path, ())]
    return max(ends) if ends else 1


def pack(
    blocks: Sequence[Block],
    budget: int,
    count: Callable[[str], int],
    *,
    mode: str = "windows",
    relevance: Callable[[str], float] | None = None,
    relevance_candidates: int = 8,
    relevance_weight: float = 0.5,
) -> Packed:
    """Fill `budget` tokens with blocks, best first; the last one that does not fit is clipped.

    `relevance(text) -> P(relevant)` runs only when the blocks do not all fit (the budget is
    tight), on the best `relevance_candidates` of them; their rank then blends selection score
    and relevance by `relevance_weight`, the others keep a neutral 0.5 relevance.
    """
    if budget <= 0:
        raise NanodexError(f"context budget must be > 0 tokens, got {budget}", "pass --context-tokens 1024")
    sized = [replace(b, tokens=count(b.render())) for b in blocks]
    sep = count("\n\n") if sized else 0
    total = sum(b.tokens + sep for b in sized)
    judged: dict[str, float] = {}
    if relevance is not None and total > budget and sized:
        head = sorted(sized, key=lambda b: -b.score)[:relevance_candidates]
        judged = {b.label: relevance(b.code) for b in head}
        sized = [
            replace(b, score=(1 - relevance_weight) * b.score + relevance_weight * judged.get(b.label, 0.5))
            for b in sized
        ]
    order = sorted(sized, key=lambda b: (-b.score, b.path, b.start))
    chosen: list[Block] = []
    used = 0
    dropped = clipped = 0
    for b in order:
        cost = b.tokens + (sep if chosen else 0)
        if used + cost <= budget:
            chosen.append(b)
            used += cost
            continue
        room = budget - used - (sep if chosen else 0)
        part = _clip(b, room, count) if room >= _MIN_PARTIAL_TOKENS else None
        if part is None:
            dropped += 1
            continue
        chosen.append(part)
        used += part.tokens + (sep if len(chosen) > 1 else 0)
        clipped += 1
    text = "\n\n".join(b.render() for b in chosen)
    tokens = count(text) if text else 0
    # joining can tokenize differently at the seams: trim from the end until it truly fits
    while chosen and tokens > budget:
        last = chosen.pop()
        room = budget - (count("\n\n".join(b.render() for b in chosen) + "\n\n") if chosen else 0)
        part = _clip(last, room, count) if room >= _MIN_PARTIAL_TOKENS else None
        if part is not None:
            chosen.append(part)
        else:
            dropped += 1
        text = "\n\n".join(b.render() for b in chosen)
        tokens = count(text) if text else 0
    return Packed(text, chosen, tokens, budget, mode, len(blocks), dropped, clipped, len(judged), judged)


class ModelRelevance:
    """P("yes") from the base model to "is this window relevant to the question?".

    Normalized over the yes/no answer tokens, so it reads as the model's own relevance belief.
    One forward pass per window: used only when the budget is tight and on a few windows.
    """

    def __init__(self, model: Any, tokenizer: Any, question: str, max_window_tokens: int = 384) -> None:
        self.model = model
        self.tok = tokenizer
        self.question = question
        self.max_window_tokens = max_window_tokens
        self.yes = _first_ids(tokenizer, ("yes", "Yes", " yes", " Yes"))
        self.no = _first_ids(tokenizer, ("no", "No", " no", " No"))

    def __call__(self, text: str) -> float:
        import torch

        ids = self.tok(text, add_special_tokens=False)["input_ids"][: self.max_window_tokens]
        code = self.tok.decode(ids)
        msgs = [
            {
                "role": "user",
                "content": f"Question: {self.question}\n\nCode:\n{code}\n\n"
                "Is this code relevant to the question? Answer yes or no.",
            }
        ]
        prompt = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        enc = self.tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            logits = self.model(**enc).logits[0, -1].float()
        probs = torch.softmax(logits, dim=-1)
        p_yes = float(probs[self.yes].sum())
        p_no = float(probs[self.no].sum())
        return p_yes / (p_yes + p_no) if p_yes + p_no > 0 else 0.5


def _first_ids(tok: Any, words: Sequence[str]) -> list[int]:
    ids = {tok(w, add_special_tokens=False)["input_ids"][0] for w in words}
    return sorted(ids)
