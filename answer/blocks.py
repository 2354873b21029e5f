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

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from answer.words import QUESTION_STOPWORDS

MIN_BLOCK_LINES = 3  # a cut block shorter than this says too little to be worth its label
WINDOW_LINES = 14  # with a question: a longer symbol is shown as a window of at most this many lines
CONTEXT_LINES = 1  # a line matching the question is shown with this many lines either side
MERGE_GAP = 3  # kept runs this close are joined: the lines between cost less than a new label
MAX_WINDOW_SOURCE = 400  # lines of a symbol read to choose its window


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
    question: str | None = None,
    window_lines: int = WINDOW_LINES,
) -> list[Block]:
    """The blocks to show, in hit order, whose rendered text fits `budget_tokens` in total.

    Without `question`, each hit is one block of its first `max_block_lines` lines. With
    `question` (every answer path: dataset rows, `make query`, self-tune), each hit longer than
    `window_lines` becomes a symbol window (see `_pack_windows`): its signature, its docstring's
    first line and the lines that use the question's words with their neighbours, as one block
    per contiguous run, each labelled with exactly the lines it shows; lines already shown for
    an earlier hit are not shown again. A window costs a fraction of the whole symbol, so 8
    symbols fit a budget that held 1-3.
    """
    if question is not None:
        return _pack_windows(
            hits, source, budget_tokens, count_tokens, question_words(question), window_lines
        )
    blocks: list[Block] = []
    used = 0
    taken: dict[str, list[tuple[int, int]]] = {}
    for hit in hits:
        start, end = int(hit.start_line), int(hit.end_line)
        if start < 1 or end < start:
            continue
        shown = taken.get(hit.path, [])
        if any(start <= e and s <= end for s, e in shown):
            continue
        read_end = min(end, start + max_block_lines - 1)
        try:
            lines = source(hit.path, start, read_end).splitlines()
        except OSError:  # file moved since indexing: nothing to show
            continue
        run = lines[: read_end - start + 1]
        while run and not run[-1].strip():  # trailing blank lines carry nothing
            run.pop()
        if not run:  # nothing but blank lines: stops the packing, as a block that does not fit does
            break
        full = Block(hit.path, start, start + len(run) - 1, "\n".join(run))
        block = fit_block(full, budget_tokens - used, count_tokens)
        if block is None:
            break
        blocks.append(block)
        used += block.tokens
        taken.setdefault(hit.path, []).append((block.start, block.end))
    return blocks


@dataclass
class _Window:
    """One hit's symbol window while packing: its lines, what must show, what may, what does."""

    path: str
    start: int
    lines: list[str]
    head: list[int]
    extras: list[list[int]]
    keep: set[int]
    limit: int  # window_lines
    cost: int = 0

    def blocks(self) -> list[Block]:
        out = []
        for r in _runs(_fill_gaps(set(self.keep), self.limit)):
            run = [self.lines[i] for i in r]
            while run and not run[-1].strip():  # trailing blank lines carry nothing
                run.pop()
            if any(ln.strip() for ln in run):
                out.append(
                    Block(self.path, self.start + r[0], self.start + r[0] + len(run) - 1, "\n".join(run))
                )
        return out


def _pack_windows(
    hits: Sequence[SpanLike],
    source: Callable[[str, int, int], str],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    terms: frozenset[str],
    window_lines: int,
) -> list[Block]:
    """Symbol windows of `hits` in two passes: every hit's head first, then the question's lines.

    Pass one gives each hit, in order, its head (signature and docstring line) while the budget
    holds, so a hit ranked eighth still shows where it is defined; pass two spends what is left
    on each hit's lines that use the question's words, each with its neighbours (see
    `window_parts`), best hit first, up to `window_lines` per hit. Lines shown for an earlier hit
    are not shown again.
    """
    taken: dict[str, set[int]] = {}
    windows: list[_Window] = []
    used = 0
    counted: dict[str, int] = {}  # rendered block -> tokens: each run is counted once, however often tried

    def size(b: Block) -> int:
        text = b.render() + "\n\n"
        if text not in counted:
            counted[text] = count_tokens(text)
        return counted[text]

    def cost(w: _Window) -> int:
        return sum(size(b) for b in w.blocks())

    for hit in hits:
        start, end = int(hit.start_line), int(hit.end_line)
        if start < 1 or end < start:
            continue
        read_end = min(end, start + MAX_WINDOW_SOURCE - 1)
        try:
            lines = source(hit.path, start, read_end).splitlines()[: read_end - start + 1]
        except OSError:  # file moved since indexing: nothing to show
            continue
        shown = taken.setdefault(hit.path, set())
        head, extras = window_parts(lines, terms, window_lines)
        free = [i for i in head if start + i not in shown]
        if not free:
            continue
        w = _Window(hit.path, start, lines, free, extras, set(free), window_lines)
        w.cost = cost(w)
        if used + w.cost > budget_tokens:
            head_lines = [lines[i] for i in free]
            head_block = Block(
                hit.path, start + free[0], start + free[0] + len(head_lines) - 1, "\n".join(head_lines)
            )
            cut = fit_block(head_block, budget_tokens - used, count_tokens)
            if cut is None or cut.end - start + 1 < 1:
                break
            w.keep = {i for i in free if start + i <= cut.end}
            w.cost = cost(w)
            if not w.keep or used + w.cost > budget_tokens:
                break
            windows.append(w)
            used += w.cost
            break
        windows.append(w)
        used += w.cost
        shown.update(start + i for i in w.keep)
    for w in windows:
        for group in w.extras:
            add = {i for i in group if i not in w.keep and w.start + i not in taken[w.path]}
            if not add or len(w.keep) + len(add) > window_lines:
                continue  # a matching line without its neighbours is noise: left out
            w.keep |= add
            new = cost(w)
            if used - w.cost + new > budget_tokens:
                w.keep -= add
                continue
            used += new - w.cost
            w.cost = new
            taken[w.path].update(w.start + i for i in add)
    blocks = [b for w in windows for b in w.blocks()]
    for b in blocks:
        b.tokens = size(b)  # counted when its window was last costed
    return blocks


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_DOC_START = re.compile(r"^[rbuRBU]{0,2}(\"\"\"|'''|\"|')")
# a line that starts a function, class or type (Python, JavaScript/TypeScript, Go, Rust; C, C++ and
# Java functions start with a type, not a keyword, and are not matched)
_DEFINITION = re.compile(
    r"(?:export\s+)?(?:default\s+)?(?:(?:public|private|protected|static|abstract|final|pub)\s+)*"
    r"(?:async\s+)?(?:def|class|function|func|fn|interface|struct|impl|trait|enum)\b"
)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def question_words(question: str) -> frozenset[str]:
    """The question's content words, identifiers split (`get_template` -> get, template), stemmed.
    A stop word is dropped as written or stemmed ("sets"), so "this" is not searched for as thi."""
    stems = ((p, _stem(p)) for p in _pieces(question))
    return frozenset(
        w for p, w in stems if len(w) > 2 and p not in QUESTION_STOPWORDS and w not in QUESTION_STOPWORDS
    )


def _line_words(line: str) -> set[str]:
    return {_stem(p) for p in _pieces(line)}


def _pieces(text: str) -> list[str]:
    """Lower-case words of a text, identifiers split at `_` and camel case."""
    return [p.lower() for w in _WORD.findall(text.replace("_", " ")) for p in _CAMEL.findall(w)]


def window_parts(
    lines: list[str], terms: frozenset[str], window_lines: int
) -> tuple[list[int], list[list[int]]]:
    """(head, extras): the line indices a symbol window must show, and groups worth adding, best first.

    A symbol of at most `window_lines` lines is all head. Else the head is its decorators and
    signature (up to the line ending in `:`) and the docstring's first line; each extra group is
    a line after the head that uses the question's words with `CONTEXT_LINES` neighbours either
    side, and the first line of the definition inside the symbol that holds it (a class's method:
    `enclosing_definitions`), most words first (ties: earlier first). A lone matching line read
    without the lines around it was noise to the model (12-18 one-line labels per question).
    """
    n = len(lines)
    if n <= window_lines:
        return list(range(n)), []
    head: set[int] = set()
    i = 0
    while i < n and i < 8:  # decorators + a signature spread over a few lines
        head.add(i)
        if lines[i].rstrip().endswith(":") and not lines[i].lstrip().startswith("@"):
            break
        i += 1
    j = i + 1
    m = _DOC_START.match(lines[j].strip()) if j < n else None
    if m:
        head.add(j)
        if lines[j].strip() == m.group(0) and j + 1 < n:
            head.add(j + 1)  # the quotes alone on their line: the first sentence is on the next
    body = max(head) + 1
    scored = []
    for k in range(body, n):
        found = len(_line_words(lines[k]) & terms)
        if found:
            scored.append((-found, k))
    scopes = enclosing_definitions(lines, body) if scored else []
    groups = []
    for _, k in sorted(scored):
        group = list(range(max(body, k - CONTEXT_LINES), min(n, k + CONTEXT_LINES + 1)))
        scope = scopes[k]
        groups.append(([scope] if scope is not None and scope < group[0] else []) + group)
    return sorted(head), groups


def enclosing_definitions(lines: list[str], floor: int) -> list[int | None]:
    """For each line, the first line of the innermost definition at or after `floor` that holds it.

    A class or module is shown as a window of the lines that use the question's words; such a
    line read without the `def` above it does not say which method it belongs to, or what to
    cite. A line's definition is the nearest of the lines above it, each less indented than
    every line between, that starts with a definition keyword (`_DEFINITION`); blank lines and
    the closing lines of a bracket (a multi-line signature's `) -> T:`) are passed over. None
    where no definition below `floor` holds the line (it belongs to the symbol itself). One pass
    with a stack of the lines still open above, since a window asks for many lines.
    """
    out: list[int | None] = [None] * len(lines)
    open_: list[tuple[int, int | None]] = []  # (indent, innermost definition so far), indent rising
    for i in range(floor, len(lines)):
        text = lines[i].lstrip()
        if not text:
            continue
        indent = len(lines[i]) - len(text)
        if text[0] in ")]}":  # closes a bracket: the lines it continues stay open
            out[i] = next((d for ind, d in reversed(open_) if ind < indent), None)
            continue
        while open_ and open_[-1][0] >= indent:
            open_.pop()
        out[i] = open_[-1][1] if open_ else None
        open_.append((indent, i if _DEFINITION.match(text) else out[i]))
    return out


def _fill_gaps(keep: set[int], limit: int) -> list[int]:
    """`keep` with gaps of up to `MERGE_GAP` lines filled, smallest first, while it holds at
    most `limit` lines: a few runs of code read better than many labels."""
    ordered = sorted(keep)
    gaps = sorted(
        (b - a - 1, a) for a, b in zip(ordered, ordered[1:], strict=False) if 1 < b - a <= MERGE_GAP + 1
    )
    for gap, a in gaps:
        if len(keep) + gap <= limit:
            keep.update(range(a + 1, a + 1 + gap))
    return sorted(keep)


def symbol_window(lines: list[str], terms: frozenset[str], window_lines: int) -> list[int]:
    """Indices of the lines of one symbol worth showing for a question, in order.

    The whole symbol when it has at most `window_lines` lines; else its head (decorators, the
    signature up to the line ending in `:`, the docstring's first line) and the lines using
    most of the question's words with their neighbours, up to `window_lines` in all (see
    `window_parts`); nearby runs are joined (`_fill_gaps`). `_pack_windows` builds the same
    window within a token budget shared by all hits.
    """
    head, extras = window_parts(lines, terms, window_lines)
    keep = set(head)
    for group in extras:
        add = set(group) - keep
        if len(keep) + len(add) <= window_lines:
            keep |= add
    return _fill_gaps(keep, window_lines)


def _runs(indices: list[int]) -> list[list[int]]:
    """Contiguous runs of sorted indices: [1, 2, 5] -> [[1, 2], [5]]."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def local_token_counter(model: str | None = None) -> Callable[[str], int] | None:
    """Exact token counts with the served model's tokenizer when it is on this machine, else None.

    `model` is the served base (`embedded:<name>` or a model folder; default the embedded
    SmolLM2). Nothing is downloaded or converted here: an embedded model counts only once its
    converted folder is in the cache, and a folder only when it holds a tokenizer.json.
    """
    from nanodex.models import DEFAULT_BASE, EMBEDDED_PREFIX, embedded_cache_path

    base = (model or DEFAULT_BASE).strip()
    if base.startswith(EMBEDDED_PREFIX):
        folder = embedded_cache_path(base[len(EMBEDDED_PREFIX) :])
    else:
        folder = Path(base).expanduser()
    if not (folder / "tokenizer.json").is_file():
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


def fit_block(
    block: Block,
    budget: int,
    count_tokens: Callable[[str], int],
    *,
    sep: str = "\n\n",
    min_lines: int = MIN_BLOCK_LINES,
    whole: bool = True,
) -> Block | None:
    """The longest prefix of `block` (whole lines, label updated) that fits `budget` tokens.

    The one cutter for every packer: a prefix is measured as `count_tokens(render() + sep)`,
    `sep` being what follows a block in the packed text (the blank line between blocks here,
    nothing in `pca_otf.pack`, which counts its separators apart). `whole=False` never returns
    the block unchanged (a packer trimming a block that did not fit must get a shorter one).
    None when the prefix would be shorter than `min_lines` (or the block's length, if smaller).
    The block returned carries its counted size in `tokens`.
    """
    lines = block.code.split("\n")
    if whole:
        n = count_tokens(block.render() + sep)
        if n <= budget:
            return replace(block, tokens=n)
    lo, hi, best = 1, len(lines) - 1, None  # binary search on the number of lines kept
    while lo <= hi:
        mid = (lo + hi) // 2
        cand = replace(block, end=block.start + mid - 1, code="\n".join(lines[:mid]))
        n = count_tokens(cand.render() + sep)
        if n <= budget:
            best, lo = replace(cand, tokens=n), mid + 1
        else:
            hi = mid - 1
    if best is None or best.end - best.start + 1 < min(min_lines, len(lines)):
        return None
    return best


def render_context(blocks: Sequence[Block]) -> str:
    return "\n\n".join(b.render() for b in blocks)
