"""CitationManager: find, check, repair and mark the citations of an answer.

An answer's citations are what makes it checkable, so none is trusted: each `[path:line]` or
`[path:start-end]` is resolved through the ProgramGraph. A citation that does not resolve is
often close: the model named the right symbol but got the line wrong, or dropped the folder.
Repair uses what the paragraph is about (the code names it mentions) to snap the citation to
that symbol's span; only a repaired citation that then resolves counts as valid. What cannot be
repaired is marked in the text ("(unresolved)"), and with enforcement a paragraph left without a
valid citation is marked "[unverified]", so a reader never mistakes an unchecked claim for a
checked one. The footer stamps the provenance of the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanodex.citations import CITATION
from pca_otf.program_graph import Entity, EntityIndex, ProgramGraph

# The citation form of DESIGN.md; the same pattern as trainer.metrics.CITATION, so what the
# runner counts as a citation is what the evaluation scores.
UNRESOLVED_MARK = " (unresolved)"
UNVERIFIED_MARK = " [unverified]"
_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")
# a citation written in the wrong form: `path:10-20`, (path:10), bare path.py:10 (the path must
# look like a file: a name with an extension); never one already in brackets
_BARE = re.compile(r"(?<![\[\w/.-])[`(]?([A-Za-z_.][\w./-]*\.[A-Za-z]\w*):(\d+)(?:-(\d+))?[`)]?(?![\w\]-])")
_CODE_NAME = re.compile(r"`([^`\s]+)`|\b([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+|[A-Za-z_]\w*(?=\())")
_WORD = re.compile(r"\b[A-Za-z_][\w]*\b")
MIN_CLAIM_WORDS = 4  # shorter paragraphs (headings, "Sure!") need no citation


@dataclass
class CitationRecord:
    raw: str  # the citation as the model wrote it, brackets included
    path: str  # after repair (what the text now says)
    start: int
    end: int
    valid: bool
    repaired: bool
    paragraph: int
    artifact: dict | None = None  # Resolved.to_dict() when valid

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Checked:
    text: str  # repaired and marked answer
    citations: list[CitationRecord]
    paragraphs: int
    needs: list[int]  # paragraphs that make a claim (need a citation)
    missing: list[int] = field(default_factory=list)  # of those, the ones without a valid citation
    marked: list[int] = field(default_factory=list)  # paragraphs marked [unverified]

    @property
    def valid(self) -> int:
        return sum(c.valid for c in self.citations)

    @property
    def repaired(self) -> int:
        return sum(c.repaired and c.valid for c in self.citations)

    @property
    def all_resolved_or_marked(self) -> bool:
        """Every citation resolves or is marked, and (after enforcement) every claim is covered or marked."""
        return all(c.valid or (c.raw + UNRESOLVED_MARK) in self.text for c in self.citations)


def split_paragraphs(text: str) -> list[str]:
    return _PARAGRAPH_SPLIT.split(text.strip()) if text.strip() else []


def names_in(paragraph: str) -> list[str]:
    """Code-looking names of a paragraph: backticked, dotted (`Graph.refs`) or called (`f(`)."""
    out: list[str] = []
    for m in _CODE_NAME.finditer(CITATION.sub(" ", paragraph)):
        name = (m.group(1) or m.group(2) or "").strip("()`.,:;")
        name = name.split("(")[0]
        if name and name not in out:
            out.append(name)
    return out


class CitationManager:
    """Extracts, validates (through `pg.resolve`), repairs and marks citations of answers."""

    def __init__(self, pg: ProgramGraph, index: EntityIndex) -> None:
        self.pg = pg
        self.index = index
        self.files = sorted(index.by_path)
        self._by_name: dict[str, list[Entity]] = {}
        for e in index.by_id.values():
            if e.kind == "module":
                continue
            for key in {e.name, e.qualname}:
                if key:
                    self._by_name.setdefault(key, []).append(e)

    # ---- pieces ------------------------------------------------------------------------------
    def extract(self, text: str) -> list[tuple[int, re.Match]]:
        """(paragraph index, match) for each citation, in order."""
        return [(i, m) for i, p in enumerate(split_paragraphs(text)) for m in CITATION.finditer(p)]

    def about(self, paragraph: str, prefer: Iterable[str] = ()) -> list[Entity]:
        """Entities the paragraph names, those in `prefer` (the context's ids) first."""
        prefer = set(prefer)
        found: list[Entity] = []
        for name in names_in(paragraph):
            cands = self._by_name.get(name) or self._by_name.get(name.rsplit(".", 1)[-1], [])
            if "." in name:  # `Cart.add`: the qualified match when there is one
                cands = [e for e in cands if e.qualname == name or e.qualname.endswith("." + name)] or cands
            for e in sorted(cands, key=lambda e: (e.id not in prefer, e.id)):
                if e not in found:
                    found.append(e)
        found.sort(key=lambda e: e.id not in prefer)  # stable: paragraph order within each group
        return found

    def fix_path(self, path: str) -> str | None:
        """An indexed file the cited path means: itself, or the one file ending with it."""
        path = path.removeprefix("./")
        if path in self.index.by_path:
            return path
        tail = [f for f in self.files if f.endswith("/" + path)]
        return tail[0] if len(tail) == 1 else None

    def repair(
        self, path: str, start: int, end: int, paragraph: str, prefer: Iterable[str] = ()
    ) -> Entity | None:
        """The symbol an unresolvable citation most likely meant, or None.

        In order: a symbol the paragraph names that lies in the cited file (the line was wrong);
        the symbol whose span holds the cited line (the range overran it); a symbol the paragraph
        names elsewhere, preferring the packed context (the file was wrong).
        """
        named = self.about(paragraph, prefer)
        real = self.fix_path(path)
        if real is not None:
            same = [e for e in named if e.path == real]
            if same:
                holding = [e for e in same if e.start_line <= start <= e.end_line]
                return (holding or same)[0]
            at = self.index.at(real, start)
            if at is not None and at.kind != "module":
                return at
        return named[0] if named else None

    # ---- the whole answer --------------------------------------------------------------------
    def check(self, text: str, *, context_ids: Sequence[str] = (), enforce: bool = False) -> Checked:
        """Validate and repair every citation; mark what stays invalid (and, with `enforce`,
        every claim paragraph left without a valid citation)."""
        paragraphs = split_paragraphs(text)
        records: list[CitationRecord] = []
        out_pars: list[str] = []
        needs: list[int] = []
        missing: list[int] = []
        for i, par in enumerate(paragraphs):
            par, rewritten = _bracket_bare(par)
            pieces: list[str] = []
            pos = 0
            valid_here = 0
            for m in CITATION.finditer(par):
                pieces.append(par[pos : m.start()])
                pos = m.end()
                rec = self._check_one(m, par, i, context_ids)
                original = rewritten.get(m.start())
                if original is not None:  # the model cited in the wrong form: bracketing it is a repair
                    rec.raw = original
                    rec.repaired = rec.repaired or rec.valid
                records.append(rec)
                valid_here += rec.valid
                if rec.valid:
                    pieces.append(f"[{rec.path}:{rec.start}-{rec.end}]" if rec.repaired else m.group(0))
                else:
                    pieces.append(rec.raw + UNRESOLVED_MARK)
            pieces.append(par[pos:])
            new = "".join(pieces)
            if _is_claim(par):
                needs.append(i)
                if not valid_here:
                    missing.append(i)
            out_pars.append(new)
        marked: list[int] = []
        if enforce:
            for i in missing:
                out_pars[i] = out_pars[i].rstrip() + UNVERIFIED_MARK
                marked.append(i)
        return Checked("\n\n".join(out_pars), records, len(paragraphs), needs, missing, marked)

    def _check_one(self, m: re.Match, paragraph: str, index: int, prefer: Sequence[str]) -> CitationRecord:
        path, start = m.group(1), int(m.group(2))
        end = int(m.group(3) or start)
        res = self.pg.resolve(f"{path}:{start}-{end}") if start <= end else None
        if res is not None:
            return CitationRecord(m.group(0), path, start, end, True, False, index, res.to_dict())
        ent = self.repair(path, start, end, paragraph, prefer)
        if ent is not None:
            fixed = self.pg.resolve(ent.citation)
            if fixed is not None:
                return CitationRecord(
                    m.group(0), ent.path, ent.start_line, ent.end_line, True, True, index, fixed.to_dict()
                )
        return CitationRecord(m.group(0), path, start, end, False, False, index)


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


def _is_claim(paragraph: str) -> bool:
    body = paragraph.strip()
    if body.startswith("```") or body.startswith("#"):
        return False
    return len(_WORD.findall(CITATION.sub(" ", body))) >= MIN_CLAIM_WORDS


def provenance_footer(provenance: dict) -> str:
    """The stamp under every answer: which program, build and policy produced it."""
    return "\n\n---\nprovenance: " + json.dumps(provenance, sort_keys=True)


def append_telemetry(path: str | Path, record: dict) -> None:
    """One JSON line per answer; appended whole in one write so concurrent readers see lines."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with p.open("a", encoding="utf-8") as fh:
        fh.write(line)
