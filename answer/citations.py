"""The one `Citation`: find an answer's citations, check them, repair them, bind them to the code
shown, and mark what stays unchecked.

A citation is `[path:line]` or `[path:start-end]` (DESIGN.md). None is trusted:
- it must resolve: the file is indexed and the lines lie inside it;
- when code was packed into the prompt it must also name a packed block or a sub-range of one,
  because that is the code the answer was conditioned on and the reader was shown;
- an unresolvable citation is often close (the right symbol with a wrong line, a dropped
  folder, a range that overruns the block): `Checker` snaps it to the symbol or block the
  paragraph names, and only a repair that then holds counts;
- a paragraph that makes a claim with no valid citation gets the shown block that best supports
  it, when support clears `attribute_threshold`; otherwise, with enforcement, it is marked
  `[unverified]`, and a citation that cannot be repaired is marked `(unresolved)`, so a reader
  never takes an invented location for a checked one.

The trainer's metrics, the query CLI, the pca_otf runner and self-tune all use this module.
It imports no torch, so the query CLI stays fast to start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

from answer.blocks import Block
from answer.words import CLAIM_STOPWORDS

# Groups: path, start, end (None for a single line). The path holds no whitespace, brackets or ':'.
CITATION = re.compile(r"\[([^\[\]\s:]+):(\d+)(?:-(\d+))?\]")
UNRESOLVED_MARK = " (unresolved)"
UNVERIFIED_MARK = " [unverified]"
MIN_CLAIM_WORDS = 4  # shorter paragraphs (headings, "Sure!") need no citation
ATTRIBUTE_THRESHOLD = 0.5  # support a block must reach to be attached to an uncited paragraph

_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")
# a citation written in the wrong form: `path:10-20`, (path:10), bare path.py:10 (the path must
# look like a file: a name with an extension); never one already in brackets
_BARE = re.compile(r"(?<![\[\w/.-])[`(]?([A-Za-z_.][\w./-]*\.[A-Za-z]\w*):(\d+)(?:-(\d+))?[`)]?(?![\w\]-])")
_CODE_NAME = re.compile(r"`([^`\s]+)`|\b([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+|[A-Za-z_]\w*(?=\())")
_WORD = re.compile(r"\b[A-Za-z_][\w]*\b")
_NAME_BEFORE = re.compile(r"`([^`\s]+)`\s*$")  # a backticked name right before a citation


@dataclass
class Citation:
    """One citation of an answer, as written and as checked."""

    text: str  # as the model wrote it, brackets included
    path: str  # after repair (what the answer now says)
    start: int
    end: int
    resolves: bool | None = None  # None: not checked
    reason: str = ""  # why it does not resolve
    repaired: bool = False  # the answer's text was changed to this location
    paragraph: int = 0
    attributed: bool = False  # added after decoding to an uncited paragraph

    @property
    def location(self) -> str:
        return f"{self.path}:{self.start}" + (f"-{self.end}" if self.end != self.start else "")

    @property
    def label(self) -> str:
        return f"[{self.path}:{self.start}-{self.end}]"

    def overlaps(self, other: Citation | Block) -> bool:
        start, end = (other.start, other.end)
        return self.path == other.path and self.start <= end and start <= self.end

    def within(self, block: Block) -> bool:
        return self.path == block.path and block.start <= self.start <= self.end <= block.end

    def to_dict(self) -> dict:
        return asdict(self)


def parse(text: str) -> Citation | None:
    """`[path:start-end]`, `path:start-end` or `path:line` -> Citation (None when it is not one)."""
    m = CITATION.fullmatch(text if text.startswith("[") else f"[{text}]")
    return _from_match(m) if m else None


def find(answer: str) -> list[Citation]:
    """Each distinct citation of `answer`, in order of first appearance."""
    seen: dict[str, Citation] = {}
    for m in CITATION.finditer(answer):
        if m.group(0) not in seen:
            seen[m.group(0)] = _from_match(m)
    return list(seen.values())


def _from_match(m: re.Match) -> Citation:
    start = int(m.group(2))
    return Citation(m.group(0), m.group(1).removeprefix("./"), start, int(m.group(3) or start))


def strip(text: str) -> str:
    """`text` without its citations (they are noise to word counts and search)."""
    return CITATION.sub(" ", text)


def mark(answer: str, citations: Iterable[Citation]) -> str:
    """`answer` with UNRESOLVED_MARK after every citation that was checked and does not resolve."""
    bad = {c.text for c in citations if c.resolves is False}
    if not bad:
        return answer
    return CITATION.sub(lambda m: m.group(0) + UNRESOLVED_MARK if m.group(0) in bad else m.group(0), answer)


# ---- what a citation is checked against ------------------------------------------------------
@dataclass(frozen=True)
class Symbol:
    """A definition a citation may point at (a graph node, a pca_otf entity)."""

    path: str
    start_line: int
    end_line: int
    name: str
    qualname: str
    kind: str = ""


class SymbolTable(Protocol):
    """The program a citation is checked against; `GraphSymbols` reads the code graph."""

    def resolves(self, path: str, start: int, end: int) -> bool: ...

    def file_lines(self, path: str) -> int | None:
        """Lines of an indexed file; None when the file is not indexed."""
        ...

    def paths(self) -> Sequence[str]: ...

    def named(self, name: str) -> list[Symbol]:
        """Symbols whose name or qualname is `name` (module nodes excluded)."""
        ...

    def at(self, path: str, line: int) -> Symbol | None:
        """The innermost symbol (not a module) of `path` whose span holds `line`."""
        ...


class GraphSymbols:
    """A SymbolTable over extractor.graph.Graph, names loaded once (many answers per table)."""

    def __init__(self, graph: object) -> None:
        self.graph = graph
        self._lines = {f["path"]: int(f["lines"] or 0) for f in graph.files()}  # type: ignore[attr-defined]
        self._by_name: dict[str, list[Symbol]] = {}
        self._by_path: dict[str, list[Symbol]] = {}
        for n in graph.nodes():  # type: ignore[attr-defined]
            if n.type in ("module", "file") or not n.start_line:
                continue
            sym = Symbol(n.path, n.start_line, n.end_line, n.name, n.qualname or n.name, n.type)
            self._by_path.setdefault(n.path, []).append(sym)
            for key in {sym.name, sym.qualname}:
                if key:
                    self._by_name.setdefault(key, []).append(sym)

    def resolves(self, path: str, start: int, end: int) -> bool:
        n = self._lines.get(path)
        return n is not None and 1 <= start <= end <= n

    def file_lines(self, path: str) -> int | None:
        return self._lines.get(path)

    def paths(self) -> Sequence[str]:
        return sorted(self._lines)

    def named(self, name: str) -> list[Symbol]:
        return list(self._by_name.get(name, ()))

    def at(self, path: str, line: int) -> Symbol | None:
        held = [s for s in self._by_path.get(path, ()) if s.start_line <= line <= s.end_line]
        return min(held, key=lambda s: (s.end_line - s.start_line, -s.start_line), default=None)


def check(citations: list[Citation], table: SymbolTable) -> list[Citation]:
    """Set `resolves` (and `reason`) of each citation from the table's indexed files."""
    for c in citations:
        c.resolves = table.resolves(c.path, c.start, c.end)
        if c.resolves:
            continue
        lines = table.file_lines(c.path)
        if lines is None:
            c.reason = "no such file in the graph"
        elif c.start > c.end or c.start < 1:
            c.reason = "not a line range"
        else:
            c.reason = f"the file has {lines} lines"
    return citations


# ---- a whole answer: repair, bind to the blocks shown, attribute, mark ---------------------------
@dataclass
class Checked:
    """An answer after checking: its repaired and marked text and what was found."""

    text: str
    citations: list[Citation]
    paragraphs: int
    needs: list[int]  # paragraphs that make a claim (need a citation)
    missing: list[int] = field(default_factory=list)  # of those, the ones left without a valid citation
    marked: list[int] = field(default_factory=list)  # paragraphs marked [unverified]
    attributed: list[int] = field(default_factory=list)  # paragraphs given a block's label after decoding
    unknown_names: list[str] = field(default_factory=list)  # code names nothing backs (answer.names)

    @property
    def valid(self) -> int:
        return sum(bool(c.resolves) for c in self.citations)

    @property
    def repaired(self) -> int:
        return sum(c.repaired and bool(c.resolves) for c in self.citations)

    @property
    def all_resolved_or_marked(self) -> bool:
        """Every printed citation resolves or carries the unresolved mark."""
        return all(c.resolves or (c.text + UNRESOLVED_MARK) in self.text for c in self.citations)

    def summary(self) -> dict:
        return {
            "citations": len(self.citations),
            "valid": self.valid,
            "repaired": self.repaired,
            "attributed": len(self.attributed),
            "paragraphs": self.paragraphs,
            "claims": len(self.needs),
            "unverified": len(self.marked),
            "unknown_names": len(self.unknown_names),
        }


def split_paragraphs(text: str) -> list[str]:
    return _PARAGRAPH_SPLIT.split(text.strip()) if text.strip() else []


def names_in(paragraph: str) -> list[str]:
    """Code-looking names of a paragraph: backticked, dotted (`Graph.refs`) or called (`f(`)."""
    out: list[str] = []
    for m in _CODE_NAME.finditer(strip(paragraph)):
        name = (m.group(1) or m.group(2) or "").strip("()`.,:;").split("(")[0]
        if name and name not in out:
            out.append(name)
    return out


def is_claim(paragraph: str) -> bool:
    body = paragraph.strip()
    if body.startswith(("```", "#")):
        return False
    return len(_WORD.findall(strip(body))) >= MIN_CLAIM_WORDS


def code_words(code: str) -> frozenset[str]:
    """The lower-cased identifiers of `code`, with their snake_case parts."""
    words = {w.lower() for w in _WORD.findall(code)}
    return frozenset(words | {p for w in words for p in w.split("_") if p})


def support(paragraph: str, block: Block, block_words: frozenset[str] | None = None) -> float:
    """How well `block` supports `paragraph`, 0..1: the paragraph's code names found in the block
    (a name is strong evidence) blended with the share of its content words the block contains.
    `block_words` is `code_words(block.code)` when the caller scores many paragraphs."""
    code = block.code.lower()
    names = [n.rsplit(".", 1)[-1].lower() for n in names_in(paragraph)]
    name_share = sum(1 for n in names if n and n in code) / len(names) if names else 0.0
    words = {w.lower() for w in _WORD.findall(strip(paragraph)) if len(w) > 2} - CLAIM_STOPWORDS
    if block_words is None:
        block_words = code_words(block.code)
    word_share = len(words & block_words) / len(words) if words else 0.0
    return 0.6 * name_share + 0.4 * word_share if names else word_share


class Checker:
    """Checks whole answers against a SymbolTable and, when given, the blocks that were shown
    (and, given the question, the code names the answer uses: `answer.names`)."""

    def __init__(
        self,
        table: SymbolTable,
        blocks: Sequence[Block] = (),
        *,
        attribute_threshold: float = ATTRIBUTE_THRESHOLD,
        question: str | None = None,
    ) -> None:
        self.table = table
        self.blocks = [b for b in blocks if table.resolves(b.path, b.start, b.end)]
        self.threshold = attribute_threshold
        self.question = question
        self._block_words: list[frozenset[str]] | None = None

    # ---- one citation ----------------------------------------------------------------------
    def fix_path(self, path: str) -> str | None:
        """An indexed file the cited path means: itself, or the one file ending with it."""
        path = path.removeprefix("./")
        if self.table.file_lines(path) is not None:
            return path
        tail = [f for f in self.table.paths() if f.endswith("/" + path)]
        return tail[0] if len(tail) == 1 else None

    def about(self, paragraph: str) -> list[Symbol]:
        """Symbols the paragraph names, those inside the shown blocks first."""
        found: list[Symbol] = []
        for name in names_in(paragraph):
            cands = self.table.named(name) or self.table.named(name.rsplit(".", 1)[-1])
            if "." in name:  # `Cart.add`: the qualified match when there is one
                cands = [s for s in cands if s.qualname == name or s.qualname.endswith("." + name)] or cands
            for s in sorted(cands, key=lambda s: (not self._shown(s), s.path, s.start_line)):
                if s not in found:
                    found.append(s)
        found.sort(key=lambda s: not self._shown(s))  # stable: paragraph order within each group
        return found

    def _shown(self, s: Symbol) -> bool:
        return any(b.path == s.path and b.start <= s.end_line and s.start_line <= b.end for b in self.blocks)

    def _in_blocks(self, path: str, start: int, end: int) -> bool:
        return any(b.path == path and b.start <= start <= end <= b.end for b in self.blocks)

    def _clip(self, path: str, start: int, end: int) -> tuple[str, int, int] | None:
        """The span clipped into the shown block that holds its start (or overlaps it most)."""
        best = None
        for b in self.blocks:
            if b.path != path:
                continue
            lo, hi = max(start, b.start), min(end, b.end)
            if lo <= hi and (best is None or hi - lo > best[2] - best[1]):
                best = (path, lo, hi)
        return best

    def locate(self, c: Citation, paragraph: str) -> tuple[str, int, int] | None:
        """Where citation `c` should point, or None when it cannot be made to hold.

        Unchanged when it resolves (and, with blocks, lies in one). Otherwise, in order: clipped
        into the shown block it overlaps; the named symbol in the cited file (the line was
        wrong); the symbol holding the cited line; a named symbol elsewhere, shown ones first
        (the file was wrong). With blocks, a repair must land in a shown block.
        """
        ok = self.table.resolves(c.path, c.start, c.end)
        if ok and (not self.blocks or self._in_blocks(c.path, c.start, c.end)):
            return (c.path, c.start, c.end)
        real = self.fix_path(c.path)
        if real is not None and self.blocks:
            clipped = self._clip(real, c.start, c.end)
            if clipped is not None:
                return clipped
        named = self.about(paragraph)
        cands: list[Symbol] = []
        if real is not None:
            same = [s for s in named if s.path == real]
            cands += [s for s in same if s.start_line <= c.start <= s.end_line] + same
            at = self.table.at(real, c.start)
            if at is not None:
                cands.append(at)
        cands += named
        for s in cands:
            if not self.blocks:
                return (s.path, s.start_line, s.end_line)
            clipped = self._clip(s.path, s.start_line, s.end_line)
            if clipped is not None:
                return clipped
        return None

    def rebind(self, before: str, where: tuple[str, int, int]) -> tuple[str, int, int]:
        """A valid label written right after a name (`` `Retrying` [label] ``) that shows another
        block than the named symbol's: the named symbol's shown lines, when exactly one shown
        symbol goes by that name. Tuned models open with a name and a label, and pair them wrong
        (12 of 19 such pairs in tenacity's stored expert answers); the reader clicks the label
        to see the code the name promises."""
        m = _NAME_BEFORE.search(before)
        if m is None or not self.blocks:
            return where
        shown = [s for s in self.about(f"`{m.group(1)}`") if self._shown(s)]
        if len(shown) != 1:  # not shown, or ambiguous (one name in two files)
            return where
        s, (path, start, end) = shown[0], where
        if s.path == path and s.start_line <= end and start <= s.end_line:  # the label shows it
            return where
        return self._clip(s.path, s.start_line, s.end_line) or where

    # ---- the whole answer ------------------------------------------------------------------
    def check(self, text: str, *, enforce: bool = False, attribute: bool = True) -> Checked:
        """Validate and repair every citation; attach a supporting block to each uncited claim
        (`attribute`, when blocks were shown); mark what stays invalid, and with `enforce`
        every claim paragraph left without a valid citation."""
        paragraphs = split_paragraphs(text)
        records: list[Citation] = []
        out: list[str] = []
        needs: list[int] = []
        missing: list[int] = []
        attributed: list[int] = []
        for i, par in enumerate(paragraphs):
            par, rewritten = _bracket_bare(par)
            pieces: list[str] = []
            pos = 0
            valid_here = 0
            for m in CITATION.finditer(par):
                pieces.append(par[pos : m.start()])
                pos = m.end()
                c = _from_match(m)
                c.paragraph = i
                where = self.locate(c, par)
                if where is not None:
                    where = self.rebind(par[: m.start()], where)
                original = rewritten.get(m.start())
                if original is not None:  # written in the wrong form: bracketing it is a repair
                    c.text, c.repaired = original, True
                if where is None:
                    check([c], self.table)  # the graph's reason, when it has one
                    c.reason = "not in the code shown" if c.resolves else c.reason
                    c.resolves = False
                    pieces.append(c.text + UNRESOLVED_MARK)
                else:
                    c.resolves = True
                    if where != (c.path, c.start, c.end):
                        c.path, c.start, c.end = where
                        c.repaired = True
                    pieces.append(c.label if c.repaired else m.group(0))
                    valid_here += 1
                records.append(c)
            pieces.append(par[pos:])
            new = "".join(pieces)
            if is_claim(par):
                needs.append(i)
                if not valid_here:
                    block = self.best_block(par) if attribute else None
                    if block is not None:
                        label = f"[{block.path}:{block.start}-{block.end}]"
                        new = new.rstrip() + " " + label
                        records.append(
                            Citation(
                                label, block.path, block.start, block.end, True, paragraph=i, attributed=True
                            )
                        )
                        attributed.append(i)
                    else:
                        missing.append(i)
            out.append(new)
        marked: list[int] = []
        if enforce:
            for i in missing:
                out[i] = out[i].rstrip() + UNVERIFIED_MARK
                marked.append(i)
        unknown: list[str] = []
        if self.question is not None:
            from answer.names import KnownNames

            unknown = KnownNames(self.table, self.question, self.blocks).unknown(text)
        return Checked(
            "\n\n".join(out), records, len(paragraphs), needs, missing, marked, attributed, unknown
        )

    def best_block(self, paragraph: str) -> Block | None:
        """The shown block that best supports `paragraph`, when its support clears the threshold."""
        if self._block_words is None:  # once per answer, not once per uncited paragraph
            self._block_words = [code_words(b.code) for b in self.blocks]
        scored = [
            (support(paragraph, b, w), -k, b)
            for k, (b, w) in enumerate(zip(self.blocks, self._block_words, strict=True))
        ]
        if not scored:
            return None
        score, _, block = max(scored, key=lambda t: (t[0], t[1]))
        return block if score >= self.threshold else None


def _bracket_bare(paragraph: str) -> tuple[str, dict[int, str]]:
    """`path:10-20` / (path:10) / path.py:10 -> [path:10-20]; {start in the new text: original}."""
    out: list[str] = []
    rewritten: dict[int, str] = {}
    pos = length = 0
    for m in _BARE.finditer(paragraph):
        out.append(paragraph[pos : m.start()])
        length += m.start() - pos
        cite = f"[{m.group(1)}:{m.group(2)}" + (f"-{m.group(3)}]" if m.group(3) else "]")
        rewritten[length] = m.group(0)
        out.append(cite)
        length += len(cite)
        pos = m.end()
    out.append(paragraph[pos:])
    return "".join(out), rewritten


# ---- what is printed under every answer ----------------------------------------------------------
def report(checked: Checked, blocks: Sequence[Block]) -> str:
    """The citation lines printed under an answer (make query and make ask print the same)."""
    shown = " ".join(f"[{b.path}:{b.start}-{b.end}]" for b in blocks) or "none"
    lines = [f"context: {shown}"]
    if not checked.citations:
        lines.append("citations: none")
    else:
        good = sum(bool(c.resolves) for c in checked.citations)
        lines.append(
            f"citations: {len(checked.citations)} ({good} resolve, {len(checked.citations) - good} do not)"
        )
        for c in checked.citations:
            how = " (repaired)" if c.repaired else " (attributed)" if c.attributed else ""
            lines.append(f"  ok   {c.location}{how}" if c.resolves else f"  BAD  {c.location} ({c.reason})")
    if checked.marked:
        lines.append(f"unverified paragraphs: {len(checked.marked)}")
    if checked.unknown_names:
        names = ", ".join(f"`{n}`" for n in checked.unknown_names)
        lines.append(f"names not found in the code graph, the question or the code shown: {names}")
    return "\n".join(lines)


def provenance_footer(provenance: dict) -> str:
    """The stamp under every answer: which model, adapter, graph and prompt layout produced it."""
    return "---\nprovenance: " + json.dumps(provenance, sort_keys=True)


def footer(checked: Checked, blocks: Sequence[Block], provenance: dict) -> str:
    """Everything printed under an answer by `make query` and `make ask` alike."""
    return report(checked, blocks) + "\n" + provenance_footer(provenance)
