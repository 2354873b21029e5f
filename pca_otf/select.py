"""Selection: which part of the program a question is about.

Two sources (`--of-sources`):
  question  brain search ranks nodes by the question's words (and embeddings when built); the
            region is the best hits plus their graph neighbours, each scored by a policy that
            blends search similarity (`sim`) with graph closeness to the strongest hits
            (`struct`), e.g. "sim:0.6,struct:0.4". Closeness matters because the answer to "how
            does X work" usually lives in X's callees and owner as much as in X itself.
  zoom      a named symbol and everything within `--zoom-radius` relations of it, for when the
            user already knows where to look.
Scores become weights by a softmax at `--retrieval-temp` (low = the top node dominates); the
weights order packing and the mixture of adapters. `--function-first` also picks the best
function/method windows, which get small local adapters of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from nanodex.errors import NanodexError
from pca_otf.program_graph import Entity, EntityIndex, ProgramGraph

POLICY_KEYS = ("sim", "struct")
CALLABLE_KINDS = ("function", "method")
# graph closeness halves with every hop from a strong hit
_HOP_DECAY = 0.5


def parse_policy(spec: str) -> dict[str, float]:
    """ "sim:0.6,struct:0.4" -> {"sim": 0.6, "struct": 0.4}, normalized to sum 1."""
    fix = 'write it as "sim:0.6,struct:0.4" (non-negative weights, at least one above 0)'
    out = dict.fromkeys(POLICY_KEYS, 0.0)
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key, sep, value = part.partition(":")
        key = key.strip()
        if not sep or key not in POLICY_KEYS:
            raise NanodexError(f"bad retrieval policy term '{part}' in '{spec}'", fix)
        try:
            out[key] = float(value)
        except ValueError as err:
            raise NanodexError(f"bad weight '{value}' in retrieval policy '{spec}'", fix) from err
        if out[key] < 0 or not math.isfinite(out[key]):
            raise NanodexError(f"negative or infinite weight in retrieval policy '{spec}'", fix)
    total = sum(out.values())
    if total <= 0:
        raise NanodexError(f"retrieval policy '{spec}' gives no weight to anything", fix)
    return {k: v / total for k, v in out.items()}


@dataclass(frozen=True)
class Selected:
    """One node of the selected region and why it was chosen."""

    entity: Entity
    score: float  # policy blend of sim and struct, in [0, 1]
    sim: float  # search score relative to the best hit, in [0, 1]
    struct: float  # graph closeness to the strongest hits, in [0, 1]
    distance: int  # hops from the nearest seed
    weight: float = 0.0  # softmax of score at the retrieval temperature; sums to 1 over the region

    def to_dict(self) -> dict:
        e = self.entity
        return {
            "id": e.id,
            "kind": e.kind,
            "path": e.path,
            "span": [e.start_line, e.end_line],
            "score": round(self.score, 4),
            "sim": round(self.sim, 4),
            "struct": round(self.struct, 4),
            "distance": self.distance,
            "weight": round(self.weight, 4),
        }


@dataclass
class Selection:
    mode: str
    query: str
    policy: str
    seeds: list[str]
    nodes: list[Selected]
    functions: list[Selected] = field(default_factory=list)  # --function-first windows

    def ids(self) -> list[str]:
        return [s.entity.id for s in self.nodes]

    def paths(self) -> list[str]:
        """Files of the region, best first."""
        out: list[str] = []
        for s in self.nodes:
            if s.entity.path not in out:
                out.append(s.entity.path)
        return out


def in_scope(path: str, scope: Sequence[str] | None) -> bool:
    """Whether `path` is one of the scope's files or lies under one of its folders."""
    if not scope:
        return True
    for s in scope:
        s = s.strip().removeprefix("./").rstrip("/")
        if path == s or path.startswith(s + "/"):
            return True
    return False


def _softmax(scores: Sequence[float], temp: float) -> list[float]:
    if temp <= 0:
        raise NanodexError(f"retrieval temperature must be > 0, got {temp}", "pass --retrieval-temp 0.5")
    if not scores:
        return []
    top = max(scores)
    exps = [math.exp((s - top) / temp) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def _finish(
    mode: str,
    query: str,
    policy: str,
    seeds: list[str],
    cands: list[Selected],
    *,
    temp: float,
    max_nodes: int,
    function_windows: int,
) -> Selection:
    cands.sort(key=lambda s: (-s.score, s.distance, s.entity.id))
    cands = cands[: max(1, max_nodes)]
    weights = _softmax([s.score for s in cands], temp)
    nodes = [
        Selected(s.entity, s.score, s.sim, s.struct, s.distance, w)
        for s, w in zip(cands, weights, strict=True)
    ]
    functions = [s for s in nodes if s.entity.kind in CALLABLE_KINDS][: max(0, function_windows)]
    return Selection(mode, query, policy, seeds, nodes, functions)


def select_question(
    index: EntityIndex,
    searcher: object,
    question: str,
    *,
    policy: str = "sim:0.6,struct:0.4",
    temp: float = 0.5,
    k: int = 12,
    seeds: int = 4,
    radius: int = 1,
    max_nodes: int = 24,
    function_windows: int = 3,
    scope_paths: Sequence[str] | None = None,
    search_mode: str = "hybrid",
) -> Selection:
    """The question's region: brain search hits and their neighbours, scored by `policy`.

    `searcher` is a brain.search.Searcher (anything with `.search(question, k, mode=)` returning
    hits with `id` and `score`). With `scope_paths` only nodes of those files/folders count.
    """
    weights = parse_policy(policy)
    pool = k * 6 if scope_paths else k
    hits = [h for h in searcher.search(question, pool, mode=search_mode) if h.id in index.by_id]  # type: ignore[attr-defined]
    hits = [h for h in hits if in_scope(index.by_id[h.id].path, scope_paths)][:k]
    if not hits:
        where = f" within {', '.join(scope_paths)}" if scope_paths else ""
        raise NanodexError(
            f"brain search found nothing for the question{where}",
            "rephrase it with names from the code, or use --of-sources zoom --zoom-symbol NAME",
        )
    top = max(h.score for h in hits) or 1.0
    sim = {h.id: max(0.0, h.score / top) for h in hits}
    seed_ids = [h.id for h in hits[:seeds]]
    # struct: sim-weighted closeness to each seed, decaying by hop; a node near several strong
    # hits outranks an isolated one with the same search score
    seed_mass = sum(sim[s] for s in seed_ids) or 1.0
    struct: dict[str, float] = {}
    dist_min: dict[str, int] = {}
    for s in seed_ids:
        for node, d in index.distances([s], radius).items():
            struct[node] = struct.get(node, 0.0) + sim[s] * _HOP_DECAY**d / seed_mass
            dist_min[node] = min(dist_min.get(node, d), d)
    for h in hits:
        dist_min.setdefault(h.id, 0 if h.id in seed_ids else radius + 1)
    cands = []
    for node in sorted(set(sim) | set(struct)):
        e = index.by_id[node]
        if not in_scope(e.path, scope_paths):
            continue
        s_sim, s_struct = sim.get(node, 0.0), min(1.0, struct.get(node, 0.0))
        score = weights["sim"] * s_sim + weights["struct"] * s_struct
        cands.append(Selected(e, score, s_sim, s_struct, dist_min.get(node, radius + 1)))
    return _finish(
        "question",
        question,
        policy,
        seed_ids,
        cands,
        temp=temp,
        max_nodes=max_nodes,
        function_windows=function_windows,
    )


def find_symbol(index: EntityIndex, pg: ProgramGraph, symbol: str) -> Entity:
    """The entity a user means by `symbol`: an id, a qualname, `path:line`, or a plain name."""
    if symbol in index.by_id:
        return index.by_id[symbol]
    exact = sorted((e for e in index.by_id.values() if e.qualname == symbol), key=lambda e: e.id)
    if exact:
        return exact[0]
    named = [e for e in pg.search_refs(symbol) if e.name == symbol or e.qualname.endswith("." + symbol)]
    if named:
        return named[0]
    path, sep, line = symbol.rpartition(":")
    if sep and line.isdigit():
        at = index.at(path, int(line))
        if at is not None:
            return at
    raise NanodexError(
        f"symbol '{symbol}' is not in the code graph",
        "pass a qualname (Graph.refs), a node id (path::Qual.name) or path:line to --zoom-symbol",
    )


def select_zoom(
    index: EntityIndex,
    pg: ProgramGraph,
    symbol: str,
    *,
    radius: int = 1,
    temp: float = 0.5,
    max_nodes: int = 24,
    function_windows: int = 3,
    scope_paths: Sequence[str] | None = None,
) -> Selection:
    """`symbol` and its neighbourhood within `radius` hops, closer nodes scored higher."""
    if radius < 0:
        raise NanodexError(f"--zoom-radius must be >= 0, got {radius}", "pass 0 (the symbol alone) or more")
    seed = find_symbol(index, pg, symbol)
    cands = []
    for node, d in sorted(index.distances([seed.id], radius).items()):
        e = index.by_id[node]
        if d and not in_scope(e.path, scope_paths):
            continue
        closeness = _HOP_DECAY**d
        cands.append(Selected(e, closeness, 0.0, closeness, d))
    return _finish(
        "zoom",
        symbol,
        "struct:1",
        [seed.id],
        cands,
        temp=temp,
        max_nodes=max_nodes,
        function_windows=function_windows,
    )
