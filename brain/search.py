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
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from brain.config import BrainConfig, SearchConfig, embeddings_path, rerank_path
from brain.embed import load_embeddings, model_tag
from brain.expand import Dispatch, DocTerms
from brain.index import COLUMNS, EDGE_KINDS, open_index
from brain.intent import ROLES, Intent, path_role, read_intent
from brain.rerank import FEATURES, default_weights, load_model
from brain.text import code_identifiers, query_terms, split_identifier
from extractor.graph import Graph
from nanodex.errors import NanodexError, run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import get_logger, setup_logging

log = get_logger("brain.search")
MODES = ("hybrid", "lexical", "dense")
# Edge kinds as stored by brain.index (calls, defined_in, extends, throws, tests, imports) and how
# much a neighbour's score counts across them (either direction).
_DISPATCH = FEATURES.index("dispatch")
_OFF_ROLE = FEATURES.index("off_role")
ARGUMENT_SEED = 0.0  # dispatch seed score of a library symbol the question names only as an argument
FOCUS_FLOOR = 1 / 3  # share of a dispatch score kept by a reached row that matches no question word
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

    def __init__(
        self, cfg: BrainConfig, *, encoder: object | None = None, dense: bool = True, use_model: bool = True
    ) -> None:
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
        self.role = np.zeros(n, dtype=np.int8)  # index into brain.intent.ROLES
        self.kind = np.zeros(n, dtype=np.int8)  # 0 other, 1 module, 2 class, 3 callable
        self.name_words: list[frozenset[str]] = [frozenset()] * n
        self.owner_words: list[frozenset[str]] = [frozenset()] * n
        roles: dict[str, int] = {}
        kinds = {"module": 1, "class": 2, "interface": 2, "function": 3, "method": 3}
        for r in rows:
            self.cards[r[0]] = r[1:8]
            self.prior[r[0]] = r[8]
            self.row_of[r[1]] = r[0]
            self._text_hash[r[1]] = r[9]
            path = r[5]
            if path not in roles:
                roles[path] = ROLES.index(path_role(path))
            self.role[r[0]] = roles[path]
            self.kind[r[0]] = kinds.get(r[2], 0)
            qual = r[4] or ""
            self.name_words[r[0]] = _words(r[3] or "")
            owner = qual[: -len(r[3])].rstrip(".") if r[3] and qual.endswith(r[3]) else ""
            self.owner_words[r[0]] = _words(owner.rsplit(".", 1)[-1] if owner else Path(path).stem)
        self.symbol_of = _symbols(self.cards)
        self._load_graph(conn, n)
        self._load_expansions(conn)
        self.built_from = self._check_fresh(conn)
        self.weights = default_weights(self.scfg)
        self.model_meta: dict | None = None
        if use_model:
            model = load_model(rerank_path(cfg))
            if model is not None:
                if model.meta.get("graph_updated_at") != self.built_from:
                    log.warning(
                        "the reranker was fitted on another build of the graph (fix: run `python -m brain.rerank`)"
                    )
                self.weights = model.weights
                self.model_meta = model.meta
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
        # raisers of each error class, and what each test/example exercises (calls + tests edges)
        self.raisers: dict[int, list[int]] = {}
        for a, b in edges[edges[:, 2] == EDGE_KINDS["throws"]][:, :2].tolist():
            self.raisers.setdefault(b, []).append(a)
        self.exercises: dict[int, list[int]] = {}
        use = (edges[:, 2] == EDGE_KINDS["calls"]) | (edges[:, 2] == EDGE_KINDS["tests"])
        for a, b in edges[use][:, :2].tolist():
            self.exercises.setdefault(a, []).append(b)
        src = np.concatenate([edges[:, 0], edges[:, 1]])
        dst = np.concatenate([edges[:, 1], edges[:, 0]])
        w = np.concatenate([_EDGE_WEIGHT[edges[:, 2]], _EDGE_WEIGHT[edges[:, 2]]])
        order = np.argsort(src, kind="stable")
        self.adj_dst = dst[order]
        self.adj_w = w[order]
        self.adj_ptr = np.zeros(n + 1, dtype=np.int64)
        np.add.at(self.adj_ptr, src + 1, 1)
        self.adj_ptr = np.cumsum(self.adj_ptr)

    def _load_expansions(self, conn: object) -> None:
        """Query expansion (brain.expand): the graph's dispatch edges and the brain's doc terms."""
        edges = conn.execute("SELECT src, dst, kind FROM adj").fetchall()  # type: ignore[attr-defined]
        self.dispatch = Dispatch(np.array(edges, dtype=np.int64).reshape(-1, 3), self.kind)
        self.doc_terms = DocTerms.load(self.cfg.out_dir)

    def _by_symbol(
        self, rows: Iterable[int], scores: Sequence[float] | None = None
    ) -> list[tuple[float, int]]:
        """(best score, preferred row) per symbol: @overload stubs, redefinitions and `.pyi`
        declarations are one symbol (`_symbol`), shown as its implementation, the longest `.py`
        definition (`_preferred`; a stub's calls are its defaults), scored as its best definition."""
        best: dict[tuple[str, str], tuple[float, int]] = {}
        for i, row in enumerate(rows):
            card = self.cards[row]
            assert card is not None
            score = scores[i] if scores is not None else 0.0
            key = self.symbol_of[row]
            old = best.get(key)
            if old is None:
                best[key] = (score, row)
                continue
            keep = row if _preferred(card) > _preferred(self.cards[old[1]]) else old[1]
            best[key] = (max(old[0], score), keep)
        return list(best.values())

    def _focus(self, question: str, reached: dict[int, float], qv: np.ndarray | None) -> dict[int, float]:
        """Dispatch scores weighed by how well each reached row matches the question among them.

        Within what a named API dispatches to, the question picks the part it asks about
        (`statistics`, `copy`): bm25 of the question over the reached rows only, and their
        cosine to the question, each min-max scaled over the reached rows and averaged; a row
        that matches neither keeps `FOCUS_FLOOR` of its score.
        """
        rows = list(reached)
        rel = np.zeros(len(rows), dtype=np.float32)
        parts = 0
        terms = query_terms(question)
        if terms:
            match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
            ids = ",".join(str(int(r)) for r in rows)
            found = dict(
                self.conn.execute(
                    f"SELECT rowid, -bm25(fts, {self._weights}) FROM fts WHERE fts MATCH ? AND rowid IN ({ids})",
                    (match,),
                ).fetchall()
            )
            top = max(found.values(), default=0.0)
            if top > 0:
                rel += np.array([found.get(r, 0.0) / top for r in rows], dtype=np.float32)
            parts += 1
        if qv is not None and self.vectors is not None:
            cos = self.vectors[rows] @ qv
            lo, hi = float(cos.min()), float(cos.max())
            rel += (cos - lo) / (hi - lo) if hi > lo else np.ones(len(rows), dtype=np.float32)
            parts += 1
        if parts:
            rel /= parts
        return {
            r: reached[r] * (FOCUS_FLOOR + (1 - FOCUS_FLOOR) * float(v))
            for r, v in zip(rows, rel, strict=True)
        }

    def _check_fresh(self, conn: object) -> object:
        """The graph build the index was made from (warns when the graph has changed since)."""
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())  # type: ignore[attr-defined]
        built_from = json.loads(meta.get("graph_updated_at", "null"))
        with Graph(self.cfg.graph) as graph:  # also the "run make extract" error when it is gone
            current = graph.meta("updated_at")
        if built_from != current:
            log.warning("the search index is older than the graph (fix: run `make brain`)")
        return built_from

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

    def encode_many(self, questions: list[str]) -> np.ndarray:
        """Question vectors in batches (fitting, benchmarks): the same vectors `encode` gives."""
        return self._encoder().encode_queries(questions)  # type: ignore[attr-defined]

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

    def raise_sites(self, intent: Intent, limit: int = 20) -> dict[int, float]:
        """Code whose body holds the question's quoted (error) text, and raisers of a named error.

        Quoted text goes to the FTS5 body column with every content word required, so a pasted
        message finds the `raise` that formats it; `SomeError` finds the error class by exact
        name and then its raisers over the graph's throws edges.
        """
        out: dict[int, float] = {}
        for quote in intent.quotes[:3]:
            terms = [t for t in query_terms(quote) if len(t) > 2][:8]
            if len(terms) < 2:
                continue
            match = "body : (" + " AND ".join('"' + t.replace('"', "") + '"' for t in terms) + ")"
            found = self.conn.execute(
                f"SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, {self._weights}) LIMIT ?",
                (match, limit),
            ).fetchall()
            for rank, (row,) in enumerate(found):
                out[row] = max(out.get(row, 0.0), 1.0 / (rank + 1))
        for err in (intent.errors + [t.rsplit(".", 1)[-1] for t in intent.identifiers])[:6]:
            for (row,) in self.conn.execute("SELECT rowid FROM cards WHERE name = ? LIMIT 5", (err,)):
                for raiser in self.raisers.get(row, [])[:limit]:
                    out[raiser] = max(out.get(raiser, 0.0), 0.5)
        return out

    def features(self, question: str, qvec: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
        """The rerank pool of a question and its feature matrix (columns: brain.rerank.FEATURES).

        The pool is the best `rerank_pool` hits by the default fused score, every exact-name and
        raise-site hit, the library code that tests or examples in the pool exercise (a
        test that matches the question lends its evidence to the function it calls), and the
        query expansions of brain.expand: the code that the library symbols the question names
        dispatch to (their members, callees and the methods of classes they instantiate,
        focused on the question), and the code whose docs use a domain term of the question.
        """
        s = self.scfg
        intent = read_intent(question)
        n_cand = s.candidates
        lex_hits = self.lexical(question, n_cand)
        lex = _normalized(lex_hits, n_cand)
        lex_rank = {row: 1.0 / (rank + 1) for rank, (row, _) in enumerate(lex_hits)}
        exact = {row: 1.0 / (rank + 1) for rank, row in enumerate(self.exact(question))}
        raised = self.raise_sites(intent)
        sims: np.ndarray | None = None
        dense_lo, dense_hi = 0.0, 1.0
        if self.vectors is not None:
            vec = qvec if qvec is not None else self.encode(question)
            dense_hits = self.dense(vec, n_cand)
            if dense_hits:
                dense_hi = dense_hits[0][1]
                dense_lo = dense_hits[-1][1] if len(dense_hits) >= n_cand else min(0.0, dense_hits[-1][1])
            den = _normalized(dense_hits, n_cand)
            qv = np.ascontiguousarray(vec, dtype=np.float32)
        else:
            den = {}
            qv = None
        # the library code that the named API dispatches to, and the users of the question's doc terms
        # (a name written only as an argument of the call the user pasted configures it: a weak seed)
        args = set(self.exact(" ".join(sorted(intent.arguments)))) if intent.arguments else set()
        seeds = {
            row: ARGUMENT_SEED if row in args else 1.0
            for _, row in self._by_symbol(exact)
            if self.role[row] == 0
        }
        implements = self.dispatch.expand(seeds, limit=s.expand_pool)
        if implements:
            implements = self._focus(question, implements, qv)
        termed = {self.row_of[i]: v for i, v in self.doc_terms.match(question).items() if i in self.row_of}
        fused: dict[int, float] = {}
        for src, w in (
            (lex, s.lexical_weight),
            (den, s.dense_weight),
            (exact, s.exact_weight),
            (raised, s.raise_weight),
        ):
            for row, v in src.items():
                fused[row] = fused.get(row, 0.0) + w * v
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[: s.rerank_pool]
        pool: dict[int, float] = dict(best)
        for row in list(exact) + list(raised) + list(implements) + list(termed):
            pool.setdefault(row, fused.get(row, 0.0))
        top = max(pool.values(), default=0.0) or 1.0
        evidence: dict[int, float] = {}
        for row, score in best:
            if self.role[row] == 0:
                continue
            for dst in self.exercises.get(row, []):
                if self.role[dst] == 0 and self.cards[dst] is not None:
                    evidence[dst] = max(evidence.get(dst, 0.0), score / top)
        for row in sorted(evidence, key=lambda r: (-evidence[r], r))[: s.rerank_pool]:
            pool.setdefault(row, fused.get(row, 0.0))
        rows = sorted(pool)
        if self.vectors is not None and rows:
            cos = self.vectors[rows] @ qv
            span = dense_hi - dense_lo
            sims = np.clip((cos - dense_lo) / span, 0.0, 1.0) if span > 0 else np.ones(len(rows))
        qwords = _words(" ".join(query_terms(question)))
        # a test or example named in the question is asked about (`test_take`, `TestCart`)
        named_tests = {
            r for r in exact if self.role[r] != 0 and str(self.cards[r][2]).lower().startswith("test")
        }
        x = np.zeros((len(rows), len(FEATURES)), dtype=np.float32)
        graph_pool = dict(best[: s.graph_pool])
        for i, row in enumerate(rows):
            a, b = self.adj_ptr[row], self.adj_ptr[row + 1]
            neighbour = 0.0
            for dst, w in zip(self.adj_dst[a:b].tolist(), self.adj_w[a:b].tolist(), strict=True):
                if dst != row and dst in graph_pool:
                    neighbour = max(neighbour, w * graph_pool[dst])
            nw, ow = self.name_words[row], self.owner_words[row]
            role = ROLES[self.role[row]]
            x[i] = (
                lex.get(row, 0.0),
                sims[i] if sims is not None else 0.0,
                exact.get(row, 0.0),
                neighbour,
                self.prior[row],
                0.0 if intent.role_ok(role) or row in named_tests else 1.0,
                evidence.get(row, 0.0),
                raised.get(row, 0.0),
                len(nw & qwords) / len(nw) if nw else 0.0,
                len(ow & qwords) / len(ow) if ow else 0.0,
                self.kind[row] == 1,
                self.kind[row] == 2,
                self.kind[row] == 3,
                lex_rank.get(row, 0.0),
                implements.get(row, 0.0),
                termed.get(row, 0.0),
            )
        return rows, x

    # ---- fusion ------------------------------------------------------------------------------
    def search(
        self, question: str, k: int | None = None, mode: str = "hybrid", qvec: np.ndarray | None = None
    ) -> list[Hit]:
        """The top `k` nodes for `question` (mode: hybrid, lexical or dense).

        hybrid: the rerank pool (`features`) ordered by the reranker's weights (fitted by
        `python -m brain.rerank` when its model is beside the graph, else the defaults), library
        code before the tests, examples and docs the question did not ask for (`library_first`);
        lexical and dense: that ranker alone (lexical with exact-name hits), for comparison.
        """
        if mode not in MODES:  # checked here too: the Python API is used by later stages
            raise NanodexError(f"unknown search mode '{mode}'", f"use one of: {', '.join(MODES)}")
        k = k or self.scfg.k
        if mode == "hybrid":
            rows, x = self.features(question, qvec)
            if not rows:
                return []
            scores = x @ self.weights
            best = self._by_symbol(rows, scores.tolist())  # one slot per symbol
            off = (
                dict(zip(rows, (x[:, _OFF_ROLE] > 0).tolist(), strict=True))
                if self.scfg.library_first
                else {}
            )
            order = sorted(best, key=lambda sr: (off.get(sr[1], False), -sr[0], sr[1]))
            order = reserve_slots(order, dict(zip(rows, x[:, _DISPATCH].tolist(), strict=True)), k, self.scfg)
            return [self._hit(row, score) for score, row in order]
        s = self.scfg
        n_cand = max(s.candidates, k)
        ranked: list[tuple[float, list[tuple[int, float]]]] = []
        exact: list[int] = []
        if mode == "lexical":
            ranked.append((1.0, self.lexical(question, n_cand)))
            exact = self.exact(question)
        else:
            if self.vectors is None:
                raise NanodexError("no embeddings for dense search", "run `make brain-embed` first")
            vec = qvec if qvec is not None else self.encode(question)
            ranked.append((1.0, self.dense(vec, n_cand)))
        scores = self._fuse(ranked, exact, n_cand)
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


def reserve_slots(
    order: list[tuple[float, int]], dispatch: dict[int, float], k: int, s: SearchConfig
) -> list[tuple[float, int]]:
    """The top `k` of `order`, with `s.dispatch_slots` places kept for what a named API dispatches to.

    A question that names an API (`@retry(...)`, `TTLCache(...)`) ranks that API first by name,
    while its answer is usually in the code it dispatches to, which shares few of the question's
    words and loses to every other named thing. So the rows with the strongest dispatch scores
    (brain.expand, focused on the question) that did not make the top `k` on their own take the
    places `s.dispatch_first`, `s.dispatch_first + 2`, ... below `k` (a reserved place stays with
    the ranked list when nothing was reached).
    """
    top = order[:k]
    places = list(range(s.dispatch_first, k, 2))[: max(s.dispatch_slots, 0)]
    if not places or not dispatch:
        return top
    shown = {row for _, row in top}
    reached = sorted(
        (
            (v, row)
            for _, row in order[k:]
            if (v := dispatch.get(row, 0.0)) > 0 and v >= s.dispatch_min and row not in shown
        ),
        key=lambda vr: (-vr[0], vr[1]),
    )[: len(places)]
    if not reached:
        return top
    score_of = {row: sc for sc, row in order}
    out = list(top[: k - len(reached)])
    for place, (_, row) in zip(places, reached, strict=False):
        out.insert(place, (score_of[row], row))
    return out


def _span(card: tuple | None) -> int:
    return int(card[6]) - int(card[5]) if card is not None else -1


def _symbols(cards: Sequence[tuple | None]) -> list[tuple[str, str]]:
    """Each card's symbol key, (module path, qualname).

    A `.pyi` stub declares its `.py` module's symbols. A stub with no `.py` twin re-exports
    (`attrs/__init__.pyi` declares `define`, implemented in `attr/_next_gen.py`): its
    declaration is the one `.py` definition of that name and type, when there is exactly one,
    so the pair takes one slot of the top k, not two.
    """
    paths = {str(c[4]) for c in cards if c is not None}
    impls: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for c in cards:
        if c is not None and not str(c[4]).endswith(".pyi"):
            impls.setdefault((str(c[2]), str(c[1])), []).append((str(c[4]), str(c[3])))
    keys: list[tuple[str, str]] = []
    for c in cards:
        if c is None:
            keys.append(("", ""))
            continue
        path = str(c[4])
        key = (path[:-1] if path.endswith(".pyi") else path, str(c[3]))
        if path.endswith(".pyi") and path[:-1] not in paths:
            found = impls.get((str(c[2]), str(c[1])), [])
            key = found[0] if len(found) == 1 else key
        keys.append(key)
    return keys


def _preferred(card: tuple | None) -> tuple[bool, int]:
    """Which definition of a symbol to show: the implementation over its stub, then the longest."""
    return (card is not None and not str(card[4]).endswith(".pyi"), _span(card))


def _normalized(hits: list[tuple[int, float]], n: int) -> dict[int, float]:
    """Min-max normalized scores of a ranked list (a short list: the unlisted rest scored 0)."""
    if not hits:
        return {}
    top = hits[0][1]
    low = hits[-1][1] if len(hits) >= n else min(0.0, hits[-1][1])
    span = top - low
    return {row: (v - low) / span if span > 0 else 1.0 for row, v in hits}


def _words(text: str) -> frozenset[str]:
    """Lower-case words of names and text, plural `s` dropped, for name-match features."""
    out = set()
    for w in split_identifier(text.replace(".", "_").replace(" ", "_")):
        if len(w) > 1 and not w.isdigit():
            out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return frozenset(out)


def _questions(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise NanodexError(f"batch file not found: {p}", "pass a text file with one question per line")
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m brain.search", description=__doc__.split("\n\n")[0])
    ap.add_argument("question", nargs="?", help="the question (omit with --batch)")
    ap.add_argument(
        "--question", dest="question_flag", metavar="TEXT", help="the question, as every stage names it"
    )
    config_option(ap, BrainConfig, "brain")
    config_flag(ap, "--graph", key="graph", help="code graph (its search index and embeddings lie beside it)")
    config_flag(ap, "--k", key="search.k", help="number of results")
    ap.add_argument("--json", action="store_true", help="print a JSON list (the contract format)")
    ap.add_argument("--batch", metavar="FILE", help="one question per line; prints one JSON list per line")
    ap.add_argument("--mode", choices=MODES, default="hybrid", help="rankers to use (default: hybrid)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    args.question = args.question_flag or args.question
    if not args.batch and not args.question:
        ap.error("give a question or --batch FILE")
    cfg = load_from_args(args)
    questions = _questions(args.batch) if args.batch else [args.question]
    searcher = Searcher(cfg, dense=args.mode != "lexical")
    try:
        for q in questions:
            hits = searcher.search(q, cfg.search.k, mode=args.mode) if q else []
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
