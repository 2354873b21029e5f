"""Program embedding: a deterministic, channelized, feature-hashed unit vector z for a program or a region.

Adapter synthesis and bank selection need one fixed-size description of "this code": the whole
repository at build time, a question's subgraph at answer time, a bank adapter's training region.
Feature hashing gives that without a vocabulary (any repository, any size) and without a model,
so a build stays cheap and a region's vector can be computed per question in milliseconds.

Channels (each hashed into its own `embed_dim` vector, normalised, weighted, then summed into z):
  symbols   names, qualnames, their sub-words (snake/camel split), signature identifiers
  docs      the first line of each docstring, as lower-case words
  modules   file paths, their folders and dotted module ids
  topology  call/import/... structure: each node's identity weighted by graph propagation from the
            region (`graph_prop_hops` steps, damped by `graph_prop_damp`), plus edge-type features
  text      optional raw-text word n-grams of the region's code, under byte and token budgets

Per-channel budgets cap how many distinct features a channel keeps (the most frequent win, ties by
name), so one huge channel cannot drown the others. Hashing is blake2b keyed by the seed: never
Python's `hash()`, which changes per process.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nanodex.errors import NanodexError
from pca_otf.manifest import read_npz, write_npz

CHANNELS = ("symbols", "docs", "modules", "topology", "text")

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _default_weights() -> dict[str, float]:
    return {"symbols": 1.0, "docs": 0.5, "modules": 0.5, "topology": 1.0}


def _default_budgets() -> dict[str, int]:
    return {"symbols": 50000, "docs": 20000, "modules": 10000, "topology": 50000, "text": 20000}


@dataclass
class EmbedConfig:
    """Knobs of the program embedding (the `build.embed` section of config/pca.yaml)."""

    embed_dim: int = 1024
    graph_prop_hops: int = 2  # propagation steps of the topology channel
    graph_prop_damp: float = 0.5  # weight lost per step
    include_text: bool = False  # add the raw-text channel
    text_max_bytes: int = 4096  # bytes read per file span
    max_text_tokens: int = 20000  # words read in all
    text_weight: float = 0.5  # weight of the text channel in z
    text_ngram: int = 2  # word n-gram length of the text channel
    channel_weights: dict[str, float] = field(default_factory=_default_weights)
    channel_budgets: dict[str, int] = field(default_factory=_default_budgets)  # distinct features kept
    seed: int = 0

    def validate(self) -> None:
        if self.embed_dim < 8:
            raise NanodexError(
                f"embed_dim must be >= 8, got {self.embed_dim}", "pass --embed-dim 256 or more"
            )
        if self.graph_prop_hops < 0:
            raise NanodexError("graph_prop_hops must be >= 0", "pass --graph-prop-hops 0 or more")
        if not 0.0 <= self.graph_prop_damp <= 1.0:
            raise NanodexError("graph_prop_damp must lie in [0, 1]", "pass e.g. --graph-prop-damp 0.5")
        for name in list(self.channel_weights) + list(self.channel_budgets):
            if name not in CHANNELS:
                raise NanodexError(
                    f"unknown embedding channel '{name}'", f"use one of: {', '.join(CHANNELS)}"
                )
        if self.text_ngram < 1:
            raise NanodexError("text_ngram must be >= 1", "pass --text-ngram 1 or more")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Embedding:
    """z (float32, unit L2 norm), the per-channel unit vectors it was summed from, and what went in."""

    z: np.ndarray
    channels: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.z.shape[0])

    def save(self, path: str | Path) -> None:
        arrays = {"z": self.z.astype(np.float32)}
        arrays |= {f"channel.{k}": v.astype(np.float32) for k, v in self.channels.items()}
        write_npz(path, arrays, self.meta)

    @classmethod
    def load(cls, path: str | Path) -> Embedding:
        arrays, meta = read_npz(path)
        if "z" not in arrays:
            raise NanodexError(
                f"{path} holds no embedding vector z", "rebuild with `python -m pca_otf.build`"
            )
        channels = {k.removeprefix("channel."): v for k, v in arrays.items() if k.startswith("channel.")}
        return cls(arrays["z"], channels, meta)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a.astype(np.float64), b.astype(np.float64)) / (na * nb))


# --------------------------------------------------------------------------------------------------
# tokens


def subwords(identifier: str) -> list[str]:
    """`parse_HTTPResponse2` -> ['parse', 'http', 'response', '2'] (lower-case)."""
    out: list[str] = []
    for part in identifier.split("_"):
        out.extend(m.lower() for m in _CAMEL.findall(part))
    return [w for w in out if w]


def doc_head(doc: str, max_words: int = 32) -> str:
    for line in doc.strip().splitlines():
        line = line.strip().strip("\"'#/*").strip()
        if line:
            return " ".join(line.split()[:max_words])
    return ""


def module_id(path: str) -> str:
    stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
    return stem.replace("/", ".")


# --------------------------------------------------------------------------------------------------
# graph view


class EmbedIndex:
    """Entities, per-entity features and adjacency of a ProgramGraph, computed once.

    Query-time embeddings of small regions would otherwise re-read the whole graph per question;
    the runner builds one EmbedIndex and passes it to every `embed_program` call.
    """

    def __init__(self, pg: Any) -> None:
        self.pg = pg
        self.entities = sorted(pg.entities(), key=lambda e: e.id)
        self.by_id = {e.id: e for e in self.entities}
        self.edges = sorted(
            ((r.src, r.dst, r.kind) for r in pg.edges() if r.src in self.by_id and r.dst in self.by_id),
        )
        nbrs: dict[str, set[str]] = {}
        for s, d, _k in self.edges:
            if s != d:
                nbrs.setdefault(s, set()).add(d)
                nbrs.setdefault(d, set()).add(s)
        self.neighbours = {k: sorted(v) for k, v in nbrs.items()}
        self.out_edges: dict[str, list[tuple[str, str]]] = {}
        for s, d, k in self.edges:
            self.out_edges.setdefault(s, []).append((d, k))

    def propagate(self, seeds: Sequence[str], hops: int, damp: float) -> dict[str, float]:
        """Weights w = sum_k damp^k (P^T)^k 1_seeds, P the row-normalised undirected adjacency.

        w is what summing every seed's k-hop-propagated identity vector gives per node, computed
        on scalars instead of vectors, so the cost is hops x edges whatever the embedding size.
        """
        cur = {s: 1.0 for s in seeds}
        total = dict(cur)
        for _ in range(hops):
            nxt: dict[str, float] = {}
            for node, val in cur.items():
                nb = self.neighbours.get(node)
                if not nb:
                    continue
                share = damp * val / len(nb)
                for other in nb:
                    nxt[other] = nxt.get(other, 0.0) + share
            for k, v in nxt.items():
                total[k] = total.get(k, 0.0) + v
            cur = nxt
        return total


def _entity_features(e: Any) -> dict[str, list[str]]:
    sym = [f"name:{e.name}"]
    if e.qualname:
        sym.append(f"qual:{e.qualname}")
    sym.extend(f"w:{w}" for w in subwords(e.name))
    if e.signature:
        sym.extend(f"sig:{t}" for t in _WORD.findall(e.signature))
    head = doc_head(e.doc) if e.doc else ""
    docs = [f"d:{w.lower()}" for w in _WORD.findall(head)]
    mods = [f"path:{e.path}", f"mod:{module_id(e.path)}"]
    parts = e.path.split("/")
    mods.extend(f"dir:{'/'.join(parts[:i])}" for i in range(1, len(parts)))
    mods.append(f"kind:{e.kind}")
    return {"symbols": sym, "docs": docs, "modules": mods}


def _node_identity(e: Any) -> str:
    return f"node:{e.qualname or e.name}:{e.kind}"


# --------------------------------------------------------------------------------------------------
# hashing


class _Hasher:
    def __init__(self, dim: int, seed: int) -> None:
        self.dim = dim
        self.key = hashlib.blake2b(f"nanodex-pca-embed:{seed}".encode(), digest_size=16).digest()

    def slot(self, channel: str, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(f"{channel}\0{feature}".encode(), digest_size=8, key=self.key).digest()
        value = int.from_bytes(digest, "little")
        return (value >> 1) % self.dim, (1.0 if value & 1 else -1.0)

    def vector(self, channel: str, weights: Iterable[tuple[str, float]]) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float64)
        for feature, w in weights:
            idx, sign = self.slot(channel, feature)
            vec[idx] += sign * w
        return vec


def _budgeted(counts: dict[str, float], budget: int | None) -> list[tuple[str, float]]:
    """The `budget` heaviest features (ties by name), each weighted 1 + log(count) (sub-linear tf)."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if budget is not None and budget >= 0:
        items = items[:budget]
    return [(f, 1.0 + math.log(c) if c >= 1.0 else c) for f, c in items]


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n) if n > 0 else v


# --------------------------------------------------------------------------------------------------
# embedding


def embed_program(
    pg: Any,
    cfg: EmbedConfig | None = None,
    ids: Sequence[str] | None = None,
    *,
    index: EmbedIndex | None = None,
) -> Embedding:
    """The embedding of the whole program (`ids` None) or of the region made of entity `ids`.

    Ids that name no entity are counted in `meta["missing_ids"]`; a region with no known entity
    is an error (an all-zero z would match nothing and mean nothing).
    """
    cfg = cfg or EmbedConfig()
    cfg.validate()
    index = index or EmbedIndex(pg)
    if ids is None:
        region = [e.id for e in index.entities]
        missing = 0
    else:
        wanted = sorted(set(ids))
        region = [i for i in wanted if i in index.by_id]
        missing = len(wanted) - len(region)
    if not region:
        raise NanodexError(
            "the region to embed holds no entity of the program graph",
            "select at least one node id that the graph contains (or rebuild the graph)",
        )
    hasher = _Hasher(cfg.embed_dim, cfg.seed)
    counts: dict[str, Counter[str]] = {c: Counter() for c in ("symbols", "docs", "modules")}
    for eid in region:
        for ch, feats in _entity_features(index.by_id[eid]).items():
            counts[ch].update(feats)

    topo: dict[str, float] = {}
    weights = index.propagate(region, cfg.graph_prop_hops, cfg.graph_prop_damp)
    for node in sorted(weights):
        key = _node_identity(index.by_id[node])
        topo[key] = topo.get(key, 0.0) + weights[node]
    in_region = set(region)
    for eid in region:
        src = index.by_id[eid]
        for dst_id, kind in index.out_edges.get(eid, ()):
            dst = index.by_id[dst_id]
            topo[f"edge:{kind}:{src.name}->{dst.name}"] = (
                topo.get(f"edge:{kind}:{src.name}->{dst.name}", 0.0) + 1.0
            )
            topo[f"ekind:{kind}"] = topo.get(f"ekind:{kind}", 0.0) + 1.0
            if dst_id not in in_region:
                topo[f"out:{kind}:{dst.qualname or dst.name}"] = (
                    topo.get(f"out:{kind}:{dst.qualname or dst.name}", 0.0) + 1.0
                )

    budgets = cfg.channel_budgets
    channels: dict[str, np.ndarray] = {}
    feature_counts: dict[str, int] = {}
    for ch in ("symbols", "docs", "modules"):
        kept = _budgeted(dict(counts[ch]), budgets.get(ch))
        feature_counts[ch] = len(kept)
        channels[ch] = _unit(hasher.vector(ch, kept))
    kept_topo = _budgeted(topo, budgets.get("topology"))
    feature_counts["topology"] = len(kept_topo)
    channels["topology"] = _unit(hasher.vector("topology", kept_topo))

    text_info: dict[str, int] = {}
    if cfg.include_text:
        text_counts, text_info = _text_features(pg, index, region, cfg)
        kept_text = _budgeted(text_counts, budgets.get("text"))
        feature_counts["text"] = len(kept_text)
        channels["text"] = _unit(hasher.vector("text", kept_text))

    z = np.zeros(cfg.embed_dim, dtype=np.float64)
    for ch, vec in channels.items():
        w = cfg.text_weight if ch == "text" else float(cfg.channel_weights.get(ch, 0.0))
        z += w * vec
    norm = float(np.linalg.norm(z))
    if norm == 0.0:
        raise NanodexError(
            "the region's embedding is all zeros (every channel weight is 0 or no feature survived)",
            "give at least one channel a positive weight and budget",
        )
    ids_hash = hashlib.blake2b("\n".join(region).encode(), digest_size=16).hexdigest()
    meta = {
        "dim": cfg.embed_dim,
        "n_entities": len(region),
        "missing_ids": missing,
        "whole_program": ids is None,
        "region_hash": ids_hash,
        "features": feature_counts,
        "text": text_info,
        "config": cfg.to_dict(),
    }
    return Embedding(
        (z / norm).astype(np.float32),
        {k: v.astype(np.float32) for k, v in channels.items()},
        meta,
    )


def _spans(index: EmbedIndex, region: Sequence[str]) -> dict[str, list[tuple[int, int]]]:
    """Per file, the merged line spans of the region's entities (nested definitions read once)."""
    raw: dict[str, list[tuple[int, int]]] = {}
    for eid in region:
        e = index.by_id[eid]
        if e.start_line >= 1 and e.end_line >= e.start_line:
            raw.setdefault(e.path, []).append((e.start_line, e.end_line))
    merged: dict[str, list[tuple[int, int]]] = {}
    for path, spans in raw.items():
        spans.sort()
        out = [spans[0]]
        for s, e in spans[1:]:
            if s <= out[-1][1] + 1:
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((s, e))
        merged[path] = out
    return merged


def _text_features(
    pg: Any, index: EmbedIndex, region: Sequence[str], cfg: EmbedConfig
) -> tuple[dict[str, float], dict[str, int]]:
    counts: Counter[str] = Counter()
    tokens_left = cfg.max_text_tokens
    bytes_read = spans_read = 0
    for path, spans in sorted(_spans(index, region).items()):
        for start, end in spans:
            if tokens_left <= 0:
                break
            text = pg.source(path, start, end)
            raw = text.encode("utf-8")[: cfg.text_max_bytes]
            bytes_read += len(raw)
            spans_read += 1
            words = [w.lower() for w in _WORD.findall(raw.decode("utf-8", errors="ignore"))][:tokens_left]
            tokens_left -= len(words)
            n = cfg.text_ngram
            counts.update(" ".join(words[i : i + n]) for i in range(max(0, len(words) - n + 1)))
    info = {"bytes": bytes_read, "spans": spans_read, "tokens": cfg.max_text_tokens - tokens_left}
    return dict(counts), info


def entity_sketches(index: EmbedIndex, dim: int, seed: int = 0) -> np.ndarray:
    """One small unit vector per entity (index.entities order) from its symbol/doc/module features.

    Stored in rerank_features.npz so a reranker can compare a question's hashed words with every
    entity without reading the graph again.
    """
    hasher = _Hasher(dim, seed)
    out = np.zeros((len(index.entities), dim), dtype=np.float32)
    for row, e in enumerate(index.entities):
        vec = np.zeros(dim, dtype=np.float64)
        for ch, feats in _entity_features(e).items():
            vec += hasher.vector(ch, _budgeted(dict(Counter(feats)), None))
        out[row] = _unit(vec).astype(np.float32)
    return out


def text_sketch(text: str, dim: int, seed: int = 0) -> np.ndarray:
    """A question's words hashed like entity symbol sub-words (channel `symbols`, `w:` features)."""
    hasher = _Hasher(dim, seed)
    words = [w for tok in _WORD.findall(text) for w in subwords(tok)]
    feats = [f"w:{w}" for w in words] + [f"name:{t}" for t in _WORD.findall(text)]
    return _unit(hasher.vector("symbols", _budgeted(dict(Counter(feats)), None))).astype(np.float32)
