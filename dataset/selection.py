"""Which questions make the dataset: counts per kind, breadth before depth, coverage first.

Every (aspect, phrasing) is a candidate row. A candidate's tier is its aspect rank plus its
phrasing index, so the first question of every fact comes before any second phrasing or minor
aspect, and a fact's paraphrases follow as the count allows. Within a tier, facts whose subject
no earlier row asks about come first, then a seeded shuffle. Subjects in `later` (tests,
examples, docs, `.pyi` stubs of a `.py` module) come after every library candidate and fill at
most `non_library_share` of a kind's rows: users ask about the library, and on a small library
with a large test suite tests took 42 % of the rows (cachetools: 637 of 1,529 training rows
asked about test code, 376 about the library's `.py` code). Prompts that two different facts
produce (two `main` functions asked about in words) are ambiguous and dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass

from dataset.config import KINDS, DatasetConfig
from dataset.facts import Aspect

ORDER = ("discovery", "explain", "architecture", "howto", "diag")  # coverage is filled in this order
_WS = re.compile(r"\s+")


def norm_prompt(prompt: str) -> str:
    """Whitespace-insensitive, case-sensitive: `Validate` (Go) and `validate` (TS) are different names."""
    return _WS.sub(" ", prompt.strip())


@dataclass
class Pick:
    aspect: Aspect
    prompt: str
    index: int  # phrasing index within the aspect


def _rand(seed: int, *parts: object) -> str:
    return hashlib.sha1("|".join(map(str, (seed, *parts))).encode()).hexdigest()


def select(
    aspects: list[Aspect], cfg: DatasetConfig, later: frozenset[str] = frozenset()
) -> tuple[dict[str, list[Pick]], dict[str, str], int]:
    """Picks per kind, a printed reason per kind that fell short of its count, and ambiguous drops;
    questions about a subject in `later` only after all others."""
    owners: dict[str, set[str]] = defaultdict(set)
    for a in aspects:
        for p in a.prompts:
            owners[norm_prompt(p)].add(a.fact)
    ambiguous = {p for p, facts in owners.items() if len(facts) > 1}
    by_kind: dict[str, list[Pick]] = defaultdict(list)
    seen: set[str] = set()
    for a in sorted(aspects, key=lambda a: (a.fact, a.kind, a.aspect, a.prompts)):
        for i, p in enumerate(a.prompts):
            key = norm_prompt(p)
            if key in ambiguous or key in seen:
                continue
            seen.add(key)
            by_kind[a.kind].append(Pick(a, p, i))
    covered: set[str] = set()
    picks: dict[str, list[Pick]] = {}
    short: dict[str, str] = {}
    for kind in ORDER:
        want = cfg.counts.get(kind)
        cands = by_kind.get(kind, [])
        cands.sort(
            key=lambda c: (
                c.aspect.subject in later,
                c.aspect.rank + c.index,
                c.aspect.subject in covered if c.aspect.subject else True,
                _rand(cfg.seed, c.aspect.fact, c.aspect.aspect, c.index),
            )
        )
        aside = int(want * cfg.non_library_share)  # rows that may ask about a subject in `later`
        cap = sum(c.aspect.subject not in later for c in cands) + aside
        chosen = cands[: min(want, cap)]
        picks[kind] = chosen
        covered.update(c.aspect.subject for c in chosen if c.aspect.subject)
        if len(chosen) < want and len(chosen) == cap < len(cands):
            short[kind] = (
                f"{kind}: {len(chosen)} of {want} rows: the library's own code offers {cap - aside} questions "
                f"of this kind, and at most {aside} may ask about tests, examples, docs or stubs "
                "(`non_library_share`); raise `paraphrases` or `non_library_share`, or lower the count"
            )
        elif len(chosen) < want:
            facts = len({c.aspect.fact for c in cands})
            short[kind] = (
                f"{kind}: {len(chosen)} of {want} rows: the brain offers only {len(cands)} distinct questions "
                f"of this kind ({facts} facts, up to {cfg.paraphrases} phrasings each); "
                "raise `paraphrases`, lower the count, or use a larger repository"
            )
    assert set(picks) == set(KINDS)
    return picks, short, len(ambiguous)
