"""An answer's citations, found and checked against the code graph.

A citation is `[path:line]` or `[path:start-end]` (DESIGN.md). The pattern is the one the trainer's
evaluation scores (trainer.metrics.CITATION, copied because importing trainer.metrics loads torch,
three seconds a query CLI should not pay; a test keeps the two equal). A citation resolves when
the graph indexes that file and the lines lie inside it; one that does not is marked in the
printed answer with the same " (unresolved)" mark pca_otf uses, so a reader never takes an
invented location for a checked one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from extractor.graph import Graph
from nanodex.citations import CITATION

UNRESOLVED_MARK = " (unresolved)"


@dataclass
class Citation:
    text: str  # as written, brackets included
    path: str
    start: int
    end: int
    resolves: bool | None = None  # None: not checked (no graph)
    reason: str = ""  # why it does not resolve

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "path": self.path,
            "start": self.start,
            "end": self.end,
            "resolves": self.resolves,
        }

    @property
    def location(self) -> str:
        return f"{self.path}:{self.start}" + (f"-{self.end}" if self.end != self.start else "")


def find_citations(answer: str) -> list[Citation]:
    """Each distinct citation of `answer`, in order of first appearance."""
    seen: dict[str, Citation] = {}
    for m in CITATION.finditer(answer):
        if m.group(0) in seen:
            continue
        start = int(m.group(2))
        path = m.group(1)
        path = path[2:] if path.startswith("./") else path
        seen[m.group(0)] = Citation(m.group(0), path, start, int(m.group(3) or start))
    return list(seen.values())


def check_citations(citations: list[Citation], graph: Graph) -> list[Citation]:
    """Set `resolves` (and `reason`) of each citation from the graph's indexed files."""
    lines: dict[str, int] | None = None
    for c in citations:
        c.resolves = graph.resolves(c.path, c.start, c.end)
        if c.resolves:
            continue
        if lines is None:
            lines = {f["path"]: int(f["lines"] or 0) for f in graph.files()}
        if c.path not in lines:
            c.reason = "no such file in the graph"
        elif c.start > c.end or c.start < 1:
            c.reason = "not a line range"
        else:
            c.reason = f"the file has {lines[c.path]} lines"
    return citations


def mark_unresolved(answer: str, citations: list[Citation]) -> str:
    """`answer` with UNRESOLVED_MARK after every citation that was checked and does not resolve."""
    bad = {c.text for c in citations if c.resolves is False}
    if not bad:
        return answer
    return CITATION.sub(lambda m: m.group(0) + UNRESOLVED_MARK if m.group(0) in bad else m.group(0), answer)
