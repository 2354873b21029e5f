"""Query expansion for search: from the API a question names to the code that implements it.

Real users name the API they call (`@retry(stop=...)`, `TTLCache(maxsize=...)`,
`Schema().load(...)`) while the answer usually lives in the code that API dispatches to: the
methods of the named class (inherited ones included), the functions the named function calls,
and the methods of a class it instantiates. Those share few words with the question, so neither
bm25 nor the dense ranker brings them into the rerank pool. Two expansions fix that:

- `Dispatch` walks the graph's directed edges (calls, defined_in, extends) from the library
  symbols the question names, a bounded number of steps, and scores each reached symbol by its
  seed's score times a decay per step;
- `DocTerms` reads the brain's domain-term concepts (`concept:doc:*` nodes, mined from docs by
  `brain.doc_terms`): when the question uses such a term ("stop condition"), the symbols whose
  docs use it join the pool.

Both only add candidates and one feature each; the reranker decides how much they count.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from brain.index import EDGE_KINDS
from brain.text import split_identifier

KIND_CLASS = 2  # brain.search's kind codes: 0 other, 1 module, 2 class, 3 callable
MEMBER_DEPTH = 2  # base classes followed when collecting a class's methods


class Dispatch:
    """Directed call / member / base maps over index rows, and the expansion of named seeds."""

    def __init__(self, edges: np.ndarray, kind: np.ndarray) -> None:
        """`edges`: rows of (src, dst, kind code of brain.index.EDGE_KINDS); `kind`: per-row kind code."""
        self.kind = kind
        self.calls: dict[int, list[int]] = defaultdict(list)
        self.members: dict[int, list[int]] = defaultdict(list)
        self.bases: dict[int, list[int]] = defaultdict(list)
        for a, b, k in edges.tolist() if len(edges) else []:
            if k == EDGE_KINDS["calls"]:
                self.calls[a].append(b)
            elif k == EDGE_KINDS["defined_in"]:
                self.members[b].append(a)  # a is defined in b: b's member
            elif k == EDGE_KINDS["extends"]:
                self.bases[a].append(b)

    def class_members(self, row: int, depth: int = 0) -> list[int]:
        """Methods (and nested classes) of a class, then of its bases, nearest first."""
        out = list(self.members.get(row, ()))
        if depth < MEMBER_DEPTH:
            for base in self.bases.get(row, ()):
                out += self.class_members(base, depth + 1)
        return out

    def reach(self, row: int) -> dict[int, int]:
        """What `row` dispatches to, with its number of steps (1 or 2).

        A class: its members (own and inherited). A function or method: what it and the
        functions nested in it call, and the members of a class it instantiates (all step 1: an
        instantiated class is only its constructor until its methods run); what those call, step 2.
        """
        out: dict[int, int] = {}
        if self.kind[row] == KIND_CLASS:
            for m in self.class_members(row):
                out.setdefault(m, 1)
            return out
        for fn in [row, *self.members.get(row, ())]:
            for callee in self.calls.get(fn, ()):
                out.setdefault(callee, 1)
                if self.kind[callee] == KIND_CLASS:
                    for m in self.class_members(callee):
                        out.setdefault(m, 1)
        for near in [r for r, d in out.items() if d == 1 and self.kind[r] != KIND_CLASS]:
            for callee in self.calls.get(near, ()):
                out.setdefault(callee, 2)
        return out

    def expand(self, seeds: dict[int, float], decay: float = 0.5, limit: int = 80) -> dict[int, float]:
        """Rows reached from `seeds` (row -> score in [0, 1]) with score x decay ** (steps - 1).

        Seeds themselves are left out; the best `limit` rows by score are kept (ties: lower row).
        """
        out: dict[int, float] = {}
        for seed, score in seeds.items():
            for row, steps in self.reach(seed).items():
                if row in seeds:
                    continue
                value = score * decay ** (steps - 1)
                if value > out.get(row, 0.0):
                    out[row] = value
        best = sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return dict(best)


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _norm_words(text: str) -> list[str]:
    """Lower-case words, identifiers split, plural `s` dropped: how terms and questions meet."""
    out = []
    for w in _WORD.findall(text):
        for p in split_identifier(w):
            p = p.lower()
            out.append(p[:-1] if len(p) > 3 and p.endswith("s") and not p.endswith("ss") else p)
    return out


class DocTerms:
    """The brain's domain terms (`concept:doc:*` nodes) and the symbols whose docs use each."""

    def __init__(self, terms: dict[tuple[str, ...], list[str]]) -> None:
        """`terms`: term words (normalized) -> ids of the symbols whose docs use the term."""
        self.terms = terms
        self.max_words = max((len(t) for t in terms), default=0)

    @classmethod
    def load(cls, nodes_dir: str | Path) -> DocTerms:
        """Read the domain-term concept nodes the brain wrote (none when the brain has not run)."""
        terms: dict[tuple[str, ...], list[str]] = {}
        folder = Path(nodes_dir)
        if not folder.is_dir():
            return cls(terms)
        for f in sorted(folder.glob("concept_doc_*.json")):
            try:
                node = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a node being rewritten by a concurrent brain run: skipped, not fatal
            if not str(node.get("id", "")).startswith("concept:doc:"):
                continue
            key = tuple(_norm_words(str(node.get("name", ""))))
            refs = [r for r in node.get("refs", []) if isinstance(r, str)]
            if key and refs:
                terms[key] = refs
        return cls(terms)

    def match(self, question: str) -> dict[str, float]:
        """Symbol id -> score: symbols whose docs use a term the question uses (1 / number of users).

        A term matches as a run of the question's words; a rare term (few users) says more.
        """
        if not self.terms:
            return {}
        words = _norm_words(question)
        out: dict[str, float] = {}
        for n in range(self.max_words, 0, -1):
            for i in range(len(words) - n + 1):
                refs = self.terms.get(tuple(words[i : i + n]))
                if not refs:
                    continue
                for ref in refs:
                    out[ref] = max(out.get(ref, 0.0), 1.0 / len(refs))
        return out
