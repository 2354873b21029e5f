"""Train/eval split by symbol: facts about the same symbol, or citing the same code, share a side.

Splitting by fact alone let a held-out question be answered from training: two brain nodes about
one class (its concept and its error node), or two facts whose answers rest on the same nodes
(the same ref set), landed on both sides (measured on this repository: 10 of 140 held-out
positives shared a ref set with a training row). So facts are first joined into groups, by
union-find over their rows' subject symbols and their ref sets; a group, with all its phrasings
and negatives, goes to eval when a seeded hash of its smallest fact id falls below
`eval_fraction`. The split is deterministic for a seed, and a group keeps its side when other
groups come and go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any


def _unit(seed: int, key: str) -> float:
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def fact_groups(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """fact id -> its group's key (the smallest fact id in it); facts meet through a positive row's
    subject or its exact ref set (a negative row follows its fact)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    facts: set[str] = set()
    for r in rows:
        fact = "f:" + r["fact"]
        facts.add(fact)
        find(fact)
        if r.get("negative"):
            continue  # its ref is the closest real thing to a made-up name: no claim about it
        if r.get("subject"):
            union(fact, "s:" + r["subject"])
        if r.get("refs"):
            union(fact, "r:" + "\n".join(sorted(set(r["refs"]))))
    members: dict[str, list[str]] = {}
    for f in facts:
        members.setdefault(find(f), []).append(f[2:])
    return {f: min(group) for group in members.values() for f in group}


def eval_facts(rows: Iterable[Mapping[str, Any]], seed: int, fraction: float) -> set[str]:
    """The facts held out for eval: whole groups (see `fact_groups`); at least one group when the
    fraction is positive and there are two, never all of them."""
    groups = fact_groups(rows)
    if fraction <= 0 or not groups:
        return set()
    keys = sorted({(_unit(seed, g), g) for g in groups.values()})
    chosen = {g for u, g in keys if u < fraction}
    if not chosen and len(keys) > 1:
        chosen = {keys[0][1]}
    if len(chosen) == len(keys) and len(keys) > 1:
        chosen.discard(keys[-1][1])
    return {f for f, g in groups.items() if g in chosen}


def crossing(rows: list[dict[str, Any]], other: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Negative rows of `rows` whose ref set is the ref set or subject of a positive row of `other`.

    A negative's ref is the closest real thing to a made-up name, found by search: it may be what
    a fact on the other side of the split is about. The build drops these few (counted) so that
    no held-out row shares a ref set with a training row."""
    keys = {frozenset(r["refs"]) for r in other if not r.get("negative")}
    keys |= {frozenset([r["subject"]]) for r in other if not r.get("negative") and r.get("subject")}
    return [r for r in rows if r.get("negative") and frozenset(r["refs"]) in keys]
