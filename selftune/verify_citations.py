"""Strict citation check: each `[path:line]`/`[path:start-end]` must resolve AND be on topic.

The runner's own `valid` flag only says a citation points into an indexed file; an answer about
`divide` that cites `add` would pass that. Self-tune learns from what it keeps, so it demands
more: the cited lines exist in the indexed file and lie inside the span of a symbol the answer
is about (the proposal's subjects); when a citation follows a backticked subject name
(`mean` [calc/stats.py:14-18]) it must lie inside *that* subject. An answer with fewer than
`min_citations` citations, or fewer than `min_words` words besides its citations, fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from answer.citations import CITATION, parse
from extractor.graph import Graph

_NAME_BEFORE = re.compile(r"`([\w.]+)`\W{0,3}$")
_WORD = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Span:
    path: str
    start: int
    end: int
    name: str = ""  # the subject's qualname

    def holds(self, path: str, start: int, end: int) -> bool:
        return path == self.path and self.start <= start <= end <= self.end


@dataclass
class CitationCheck:
    passed: bool
    citations: list[dict] = field(default_factory=list)  # {raw, path, start, end, ok, reason}
    reason: str = ""

    def as_dict(self) -> dict:
        return {"passed": self.passed, "reason": self.reason, "citations": self.citations}


def subject_spans(graph: Graph, node_ids: list[str]) -> list[Span]:
    spans = []
    for nid in node_ids:
        n = graph.node(nid)
        if n is not None:
            spans.append(Span(n.path, n.start_line, n.end_line, n.qualname))
    return spans


def _named_subject(text: str, pos: int, subjects: list[Span]) -> Span | None:
    """The subject whose backticked name directly precedes the citation at `pos`, if any."""
    m = _NAME_BEFORE.search(text[max(0, pos - 80) : pos])
    if not m:
        return None
    name = m.group(1)
    for s in subjects:
        if name and (name == s.name or name == s.name.rsplit(".", 1)[-1]):
            return s
    return None


def check_citations(
    text: str,
    graph: Graph,
    subjects: list[Span],
    min_citations: int = 1,
    min_words: int = 0,
    counted_from: int = 0,
) -> CitationCheck:
    """Check every citation in `text`; pass only if all are good and there are enough of them.

    Citations starting before offset `counted_from` (a forced answer prefix) are checked but do
    not count towards `min_citations`.
    """
    lines_of: dict[str, int | None] = {}
    found: list[dict] = []
    own = 0  # citations the model wrote, after the forced prefix
    for m in CITATION.finditer(text):
        own += m.start() >= counted_from
        c = parse(m.group(0))
        assert c is not None  # a CITATION match always parses
        path, start, end = c.path, c.start, c.end
        item = {"raw": c.text, "path": path, "start": start, "end": end, "ok": False, "reason": ""}
        if path not in lines_of:
            row = graph.conn.execute("SELECT lines FROM files WHERE path = ?", (path,)).fetchone()
            lines_of[path] = row[0] if row else None
        n_lines = lines_of[path]
        if n_lines is None:
            item["reason"] = "file not indexed"
        elif not 1 <= start <= end <= n_lines:
            item["reason"] = f"lines outside the file (1-{n_lines})"
        elif not any(s.holds(path, start, end) for s in subjects):
            where = ", ".join(f"{s.path}:{s.start}-{s.end}" for s in subjects) or "none"
            item["reason"] = f"outside the subject symbol ({where})"
        elif (named := _named_subject(text, m.start(), subjects)) and not named.holds(path, start, end):
            item["reason"] = (
                f"cited for `{named.name}` but outside its span {named.path}:{named.start}-{named.end}"
            )
        else:
            item["ok"] = True
        found.append(item)
    bad = [c for c in found if not c["ok"]]
    if bad:
        return CitationCheck(False, found, f"{len(bad)} bad citation(s): {bad[0]['raw']} {bad[0]['reason']}")
    if own < min_citations:
        forced = f" besides the forced prefix's {len(found) - own}" if own < len(found) else ""
        return CitationCheck(False, found, f"{own} citation(s){forced}, at least {min_citations} required")
    words = len(_WORD.findall(CITATION.sub(" ", text)))
    if words < min_words:
        return CitationCheck(
            False, found, f"{words} word(s) besides citations, at least {min_words} required"
        )
    return CitationCheck(True, found, "")
