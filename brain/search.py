"""`python -m brain.search`: question -> ranked code nodes (hybrid lexical + dense + graph).

Three rankers, fused by a weighted sum of min-max normalized scores (or reciprocal rank fusion):
  lexical  SQLite FTS5 bm25 over identifier-split names, qualnames, signatures, docs, summaries,
           relation names and code terms (column weights in `search.column_weights`);
  dense    cosine similarity of the question to each card's MiniLM embedding (after brain-embed);
  graph    neighbours of the strongest fused hits (calls, definitions, inheritance, tests) gain
           score, and well-connected nodes a small prior.
Without embeddings it runs lexical + graph. Output contract (DESIGN.md): a JSON list of
{id, type, name, qualname, path, start_line, end_line, score}, best first; `--batch FILE` prints
one such list per question line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from brain.config import BrainConfig, SearchConfig, embeddings_path
from brain.embed import load_embeddings, model_tag
from brain.index import COLUMNS, open_index
from brain.text import code_identifiers, query_terms
from extractor.graph import Graph
from nanodex.config import load_config
from nanodex.errors import NanodexError, run_main
from nanodex.log import get_logger, setup_logging

log = get_logger("brain.search")
MODES = ("hybrid", "lexical", "dense")
# Edge kinds as stored by brain.index (calls, defined_in, extends, throws, tests, imports) and how
# much a neighbour's score counts across them (either direction).
_EDGE_WEIGHT = np.array([0.7, 1.0, 0.5, 0.5, 0.3, 0.2], dtype=np.float32)


@dataclass
class Hit:
    """One search result, in the DESIGN.md contract's shape."""

    id: str
    type: str
    name: str
    qualname: str
    path: str
    start_line: int
    end_line: int
    score: float


class Searcher:
    """Loads the index (and embeddings, when present) once; answers many questions."""

    def __init__(self, cfg: BrainConfig, *, encoder: object | None = None, dense: bool = True) -> None:
        self.cfg = cfg
        self.scfg: SearchConfig = cfg.search
        if self.scfg.fusion not in ("score", "rrf"):
            raise NanodexError(f"unknown search.fusion '{self.scfg.fusion}'", "use score or rrf")
        conn = open_index(cfg)
        self.conn = conn
        rows = conn.execute(
            "SELECT rowid, id, type, name, qualname, path, start_line, end_line, prior, text_hash FROM cards"
            " ORDER BY rowid"
        ).fetchall()
        n = (rows[-1][0] if rows else 0) + 1
        self.size = len(rows)
        self.cards: list[tuple | None] = [None] * n
        self.prior = np.zeros(n, dtype=np.float32)
        self.row_of: dict[str, int] = {}
        self._text_hash: dict[str, str] = {}
        for r in rows:
            self.cards[r[0]] = r[1:8]
            self.prior[r[0]] = r[8]
            self.row_of[r[1]] = r[0]
            self._text_hash[r[1]] = r[9]
        self._load_graph(conn, n)
        self._check_fresh(conn)
        self._weights = ",".join(str(float(w)) for w in self._column_weights())
        self.vectors: np.ndarray | None = None
        self._tvectors: object | None = None
        self.encoder = encoder
        if dense:
            self._load_vectors(n)

    # ---- loading -----------------------------------------------------------------------------
    def _column_weights(self) -> list[float]:
        w = list(self.scfg.column_weights)
        if len(w) != len(COLUMNS):
            raise NanodexError(
                f"search.column_weights has {len(w)} values", f"give {len(COLUMNS)}: {', '.join(COLUMNS)}"
            )
        return w

    def _load_graph(self, conn: object, n: int) -> None:
        """Adjacency as CSR arrays over both directions, with a per-edge weight by kind."""
        edges = np.array(conn.execute("SELECT src, dst, kind FROM adj").fetchall(), dtype=np.int64)  # type: ignore[attr-defined]
        if edges.size == 0:
            edges = np.zeros((0, 3), dtype=np.int64)
        src = np.concatenate([edges[:, 0], edges[:, 1]])
        dst = np.concatenate([edges[:, 1], edges[:, 0]])
        w = np.concatenate([_EDGE_WEIGHT[edges[:, 2]], _EDGE_WEIGHT[edges[:, 2]]])
        order = np.argsort(src, kind="stable")
        self.adj_dst = dst[order]
        self.adj_w = w[order]
        self.adj_ptr = np.zeros(n + 1, dtype=np.int64)
        np.add.at(self.adj_ptr, src + 1, 1)
        self.adj_ptr = np.cumsum(self.adj_ptr)

    def _check_fresh(self, conn: object) -> None:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())  # type: ignore[attr-defined]
        built_from = json.loads(meta.get("graph_updated_at", "null"))
        with Graph(self.cfg.graph) as graph:  # also the "run make extract" error when it is gone
            current = graph.meta("updated_at")
        if built_from != current:
            log.warning("the search index is older than the graph (fix: run `make brain`)")

    def _load_vectors(self, n: int) -> None:
        path = embeddings_path(self.cfg)
        data = load_embeddings(path)
        if data is None:
            return
        if data["meta"].get("model") != model_tag(self.cfg):
            log.warning(
                "embeddings were made with other settings; dense search is off (fix: run `make brain-embed`)"
            )
            return
        vecs = np.zeros((n, data["vectors"].shape[1]), dtype=np.float32)
        have = np.zeros(n, dtype=bool)
        stale = 0
        for i, (node_id, digest) in enumerate(
            zip(data["ids"].tolist(), data["hashes"].tolist(), strict=True)
        ):
            row = self.row_of.get(node_id)
            if row is not None:
                vecs[row] = data["vectors"][i]
                have[row] = True
                stale += digest != self._text_hash[node_id]
        missing = self.size - int(have.sum())
        if stale:
            log.warning(
                "%d of %d embeddings are of older node texts (fix: run `make brain-embed`)", stale, self.size
            )
        if missing:
            log.warning("%d of %d nodes have no embedding (fix: run `make brain-embed`)", missing, self.size)
        self.vectors = vecs

    @property
    def has_dense(self) -> bool:
        return self.vectors is not None

    def _encoder(self) -> object:
        if self.encoder is None:
            from dataclasses import replace

            from brain.encoder import Encoder

            # one thread: a single short question gains nothing from more, and on a busy machine
            # every OpenMP barrier would wait for a descheduled thread (10x slower, measured)
            self.encoder = Encoder(replace(self.cfg.embed, threads=1))
        return self.encoder

    def encode(self, question: str) -> np.ndarray:
        return self._encoder().encode_query(question)  # type: ignore[attr-defined]

    # ---- rankers -----------------------------------------------------------------------------
    def lexical(self, question: str, limit: int) -> list[tuple[int, float]]:
        """(rowid, bm25 score) best first; identifiers in the question are split like the index."""
        terms = query_terms(question)
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        rows = self.conn.execute(
            f"SELECT rowid, bm25(fts, {self._weights}) AS s FROM fts WHERE fts MATCH ? ORDER BY s LIMIT ?",
            (match, limit),
        ).fetchall()
        return [(r, -s) for r, s in rows]

    def exact(self, question: str) -> list[int]:
        """Cards named exactly like a code-looking token of the question (`test_take`, `Cart.add`)."""
        rows: list[int] = []
        for tok in code_identifiers(question):
            found = self.conn.execute(
                "SELECT rowid, qualname FROM cards WHERE name = ? ORDER BY prior DESC, rowid LIMIT 50",
                (tok.rsplit(".", 1)[-1],),
            ).fetchall()
            if "." in tok:  # `Cart.add`: the qualified match when there is one
                qualified = [r for r in found if r[1] == tok or r[1].endswith("." + tok)]
                found = qualified or found
            rows += [r[0] for r in found[:20] if r[0] not in rows]
        return rows

    def dense(self, qvec: np.ndarray, limit: int) -> list[tuple[int, float]]:
        """(rowid, cosine) best first. torch, single-threaded: 2x faster here than numpy's BLAS."""
        if self.vectors is None:
            return []
        import torch

        if self._tvectors is None:
            self._tvectors = torch.from_numpy(self.vectors)
        sims = torch.mv(self._tvectors, torch.from_numpy(np.ascontiguousarray(qvec, dtype=np.float32)))
        limit = min(limit, self.size)
        if limit <= 0:
            return []
        vals, rows = torch.topk(sims, limit)
        return [
            (r, v) for r, v in zip(rows.tolist(), vals.tolist(), strict=True) if self.cards[r] is not None
        ]

    # ---- fusion ------------------------------------------------------------------------------
    def search(
        self, question: str, k: int | None = None, mode: str = "hybrid", qvec: np.ndarray | None = None
    ) -> list[Hit]:
        """The top `k` nodes for `question` (mode: hybrid, lexical or dense)."""
        if mode not in MODES:  # checked here too: the Python API is used by later stages
            raise NanodexError(f"unknown search mode '{mode}'", f"use one of: {', '.join(MODES)}")
        k = k or self.scfg.k
        s = self.scfg
        n_cand = max(s.candidates, k)
        ranked: list[tuple[float, list[tuple[int, float]]]] = []
        exact: list[int] = []
        if mode in ("hybrid", "lexical"):
            ranked.append((s.lexical_weight if mode == "hybrid" else 1.0, self.lexical(question, n_cand)))
            exact = self.exact(question)
        if mode in ("hybrid", "dense"):
            if self.vectors is not None:
                vec = qvec if qvec is not None else self.encode(question)
                ranked.append((s.dense_weight if mode == "hybrid" else 1.0, self.dense(vec, n_cand)))
            elif mode == "dense":
                raise NanodexError("no embeddings for dense search", "run `make brain-embed` first")
        scores = self._fuse(ranked, exact, n_cand)
        if mode == "hybrid" and scores:
            scores = self._graph_boost(scores)
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [self._hit(row, score) for row, score in best]

    def _fuse(
        self, ranked: list[tuple[float, list[tuple[int, float]]]], exact: list[int], n: int
    ) -> dict[int, float]:
        """Weighted fusion of ranked lists (best first), plus exact-name hits.

        `fusion: score` (default) min-max normalizes each list's scores to [0, 1] before the
        weighted sum, so a ranker that is sure (one bm25 score far above the rest, as when the
        question quotes a docstring) keeps its lead; reciprocal rank fusion (`fusion: rrf`) sees
        only ranks and lost 6 to 13 points recall@1 that way on the benchmark.
        """
        s = self.scfg
        scores: dict[int, float] = {}
        for weight, hits in ranked:
            if not hits:
                continue
            if s.fusion == "rrf":
                for rank, (row, _) in enumerate(hits):
                    scores[row] = scores.get(row, 0.0) + weight / (s.rrf_k + rank + 1)
                continue
            top = hits[0][1]
            low = hits[-1][1] if len(hits) >= n else min(0.0, hits[-1][1])  # a short list: the rest scored 0
            span = top - low
            for row, value in hits:
                scores[row] = scores.get(row, 0.0) + weight * ((value - low) / span if span > 0 else 1.0)
        unit = 1.0 if s.fusion != "rrf" else 1.0 / (s.rrf_k + 1)
        for rank, row in enumerate(exact):
            scores[row] = scores.get(row, 0.0) + s.exact_weight * unit / (rank + 1)
        return scores

    def _graph_boost(self, scores: dict[int, float]) -> dict[int, float]:
        """Graph structure: hits next to other strong hits gain, and hubs gain a small prior.

        Each of the best `graph_pool` fused hits gains `graph_weight` x (edge weight) x the score
        of its strongest neighbour among them, so a method whose class, caller or callee also
        matches the question moves up. Adding unmatched neighbours as new hits was measured
        to lose recall (containers collect the score of all their members), so it is not done.
        """
        s = self.scfg
        out = dict(scores)
        if s.graph_weight > 0:
            pool = dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[: s.graph_pool])
            for row in pool:
                a, b = self.adj_ptr[row], self.adj_ptr[row + 1]
                best = 0.0
                for dst, w in zip(self.adj_dst[a:b].tolist(), self.adj_w[a:b].tolist(), strict=True):
                    if dst != row and dst in pool:
                        best = max(best, w * pool[dst])
                out[row] += s.graph_weight * best
        if s.centrality_weight > 0:
            unit = 1.0 if s.fusion != "rrf" else 1.0 / (s.rrf_k + 1)
            for row in out:
                out[row] += s.centrality_weight * unit * float(self.prior[row])
        return out

    def _hit(self, row: int, score: float) -> Hit:
        c = self.cards[row]
        assert c is not None
        return Hit(c[0], c[1], c[2], c[3], c[4], int(c[5]), int(c[6]), round(float(score), 6))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _questions(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise NanodexError(f"batch file not found: {p}", "pass a text file with one question per line")
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m brain.search", description=__doc__.split("\n\n")[0])
    ap.add_argument("question", nargs="?", help="the question (omit with --batch)")
    ap.add_argument("--config", help="YAML config (default: built-in defaults, see config/brain.yaml)")
    ap.add_argument("--graph", help="code graph (its search index and embeddings lie beside it)")
    ap.add_argument("--k", type=int, help="number of results (overrides search.k)")
    ap.add_argument("--json", action="store_true", help="print a JSON list (the contract format)")
    ap.add_argument("--batch", metavar="FILE", help="one question per line; prints one JSON list per line")
    ap.add_argument("--mode", choices=MODES, default="hybrid", help="rankers to use (default: hybrid)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    if not args.batch and not args.question:
        ap.error("give a question or --batch FILE")
    cfg = load_config(BrainConfig, args.config, {"graph": args.graph})
    questions = _questions(args.batch) if args.batch else [args.question]
    searcher = Searcher(cfg, dense=args.mode != "lexical")
    try:
        for q in questions:
            hits = searcher.search(q, args.k, mode=args.mode) if q else []
            if args.json or args.batch:
                print(json.dumps([asdict(h) for h in hits]), flush=bool(args.batch))
            else:
                for h in hits:
                    print(
                        f"{h.score:9.5f}  {h.type:<9} {h.qualname:<50} {h.path}:{h.start_line}-{h.end_line}"
                    )
    finally:
        searcher.close()
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
