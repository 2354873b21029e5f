"""Train/eval split by fact: a fact, all its phrasings and its negatives land on one side.

A fact goes to eval when a seeded hash of its id falls below `eval_fraction`, so the split is
deterministic for a seed and a fact keeps its side when other facts come and go. Eval then
measures answers about facts never seen in training in any wording.
"""

from __future__ import annotations

import hashlib


def _unit(seed: int, fact: str) -> float:
    h = hashlib.sha256(f"{seed}:{fact}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def eval_facts(facts: set[str], seed: int, fraction: float) -> set[str]:
    """The facts held out for eval (at least one when the fraction is positive and there are two)."""
    if fraction <= 0 or not facts:
        return set()
    scored = sorted((_unit(seed, f), f) for f in facts)
    chosen = {f for u, f in scored if u < fraction}
    if not chosen and len(facts) > 1:
        chosen = {scored[0][1]}
    if len(chosen) == len(facts) and len(facts) > 1:
        chosen.discard(scored[-1][1])
    return chosen
