"""The reranking stage: a linear model over per-candidate features, fitted per repository.

Search first gathers a pool of candidates (the best fused hits, exact-name and raise-site hits,
and library code exercised by matching tests), describes each by the features in `FEATURES`, and
orders them by `features @ weights`. Without a fitted model the weights are hand-set defaults that
reproduce the fused score plus the role, test-evidence, raise-site and name-match terms.

`python -m brain.rerank --graph G --dataset DIR` fits the weights on the dataset stage's grounded
(question, gold symbol) pairs of the same repository (train.jsonl + eval.jsonl of `python -m
dataset`). Facts are split by gold symbol into fit and held-out parts (a deterministic hash), so
the held-out recall it reports is on symbols the model never saw; the fitted model is written
beside the graph only when it does not lose held-out recall@5 against the defaults. Each question
is also fitted in a second form with its backticked names spelled as words (`Template.render` ->
"template render"), because real users seldom name the symbol they ask about.

The fit is a listwise softmax loss (the gold candidate against the rest of its pool) with an L2
pull toward the defaults, by plain gradient descent in numpy: 14 weights, a few thousand
questions, well under a second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain.config import BrainConfig, rerank_path
from brain.text import split_identifier
from nanodex.errors import NanodexError, run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import get_logger, setup_logging
from nanodex.paths import atomic_path

log = get_logger("brain.rerank")
MODEL_FORMAT = "nanodex-rerank/1"
FEATURES = (
    "lexical",  # bm25 of the FTS5 index, min-max normalized over the query's hits
    "dense",  # cosine of the question and the card embedding, min-max normalized over the pool
    "exact",  # named like a code-looking token of the question: 1 / (rank of that lookup)
    "graph",  # strongest neighbour in the pool x edge weight (class, caller, callee)
    "prior",  # centrality in [0, 1]
    "off_role",  # a test/example/doc the question did not ask for
    "test_evidence",  # library code that a matching test or example in the pool exercises
    "raise_site",  # its body holds the quoted error text, or it raises a named error
    "name_match",  # share of the name's words that the question uses
    "owner_match",  # share of the owning class's / module's words that the question uses
    "is_module",
    "is_class",
    "is_callable",
    "lexical_rank",  # 1 / (1 + rank in the lexical list): bm25's confidence beyond its score
    "dispatch",  # reached from a library symbol the question names (its members, callees): brain.expand
    "doc_term",  # its docs use a domain term the question uses (brain.expand.DocTerms)
)


def default_weights(cfg: object) -> np.ndarray:
    """Hand-set weights from `search.*` (the unfitted ranking)."""
    s = cfg  # SearchConfig
    w = {
        "lexical": s.lexical_weight,  # type: ignore[attr-defined]
        "dense": s.dense_weight,  # type: ignore[attr-defined]
        "exact": s.exact_weight,  # type: ignore[attr-defined]
        "graph": s.graph_weight,  # type: ignore[attr-defined]
        "prior": s.centrality_weight,  # type: ignore[attr-defined]
        "off_role": s.off_role_weight,  # type: ignore[attr-defined]
        "test_evidence": s.test_evidence_weight,  # type: ignore[attr-defined]
        "raise_site": s.raise_weight,  # type: ignore[attr-defined]
        "name_match": s.name_weight,  # type: ignore[attr-defined]
        "dispatch": s.dispatch_weight,  # type: ignore[attr-defined]
        "doc_term": s.doc_term_weight,  # type: ignore[attr-defined]
    }
    return np.array([float(w.get(f, 0.0)) for f in FEATURES], dtype=np.float32)


@dataclass
class RerankModel:
    weights: np.ndarray
    meta: dict

    def save(self, path: Path) -> None:
        data = {
            "format": MODEL_FORMAT,
            "features": list(FEATURES),
            "weights": self.weights.tolist(),
            **self.meta,
        }
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")


def load_model(path: Path) -> RerankModel | None:
    """The fitted model at `path`, None when there is none; one clear error when it is unusable."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise NanodexError(
            f"reranker model {path} is unreadable ({err})", "run `python -m brain.rerank` again"
        ) from err
    if data.get("format") != MODEL_FORMAT or data.get("features") != list(FEATURES):
        # fitted by an older nanodex: stale, like an index built before an upgrade; searching
        # with the default weights beats failing every search (and the dataset stage) until a refit
        log.warning(
            "reranker model %s was fitted for another feature set: using the default weights "
            "(refit: python -m brain.rerank)",
            path,
        )
        return None
    meta = {k: v for k, v in data.items() if k not in ("format", "features", "weights")}
    return RerankModel(np.array(data["weights"], dtype=np.float32), meta)


# ---- fitting -------------------------------------------------------------------------------------
def fit_weights(
    pools: list[tuple[np.ndarray, int]],
    start: np.ndarray,
    l2: float = 0.05,
    steps: int = 400,
    lr: float = 0.5,
) -> np.ndarray:
    """Weights minimizing the mean listwise softmax loss of the gold candidate, plus l2 * |w - start|^2.

    `pools` holds (features [n, d], index of the gold row). Gradient descent with a step size
    halved whenever the loss rises.
    """
    if not pools:
        return start.copy()
    w = start.astype(np.float64).copy()
    w0 = w.copy()

    def loss_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for x, gold in pools:
            s = x @ w
            s = s - s.max()
            p = np.exp(s)
            p /= p.sum()
            total -= float(np.log(p[gold] + 1e-12))
            grad += x.T @ p - x[gold]
        n = len(pools)
        d = w - w0
        return total / n + l2 * float(d @ d), grad / n + 2 * l2 * d

    cur, g = loss_grad(w)
    for _ in range(steps):
        cand = w - lr * g
        val, gc = loss_grad(cand)
        if val <= cur:
            w, cur, g = cand, val, gc
            lr *= 1.1
        else:
            lr *= 0.5
            if lr < 1e-5:
                break
    return w.astype(np.float32)


_TICKED = re.compile(r"`([^`]+)`")


def as_words(question: str) -> str:
    """The question with backticked names spelled as words: real users seldom quote the symbol."""
    return _TICKED.sub(
        lambda m: " ".join(p for part in re.split(r"[.()]", m.group(1)) for p in split_identifier(part)),
        question,
    )


def held_out(subject: str, fraction: float = 0.2) -> bool:
    """Deterministic split by gold symbol: the same fact never lands on both sides."""
    return int(hashlib.sha1(subject.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def grounded_pairs(dataset_dir: Path) -> list[tuple[str, str]]:
    """(question, gold node id) of the dataset stage's answerable rows (negatives left out)."""
    rows: list[tuple[str, str]] = []
    files = [dataset_dir / "train.jsonl", dataset_dir / "eval.jsonl"]
    if not any(f.is_file() for f in files):
        raise NanodexError(
            f"no train.jsonl or eval.jsonl in {dataset_dir}", "run `python -m dataset --out DIR` first"
        )
    for f in files:
        if not f.is_file():
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if not r.get("negative") and r.get("subject") and r.get("prompt"):
                rows.append((r["prompt"], r["subject"]))
    return rows


def _recall(ranks: list[int | None], k: int) -> float:
    return sum(1 for r in ranks if r is not None and r < k) / max(len(ranks), 1)


def _rank(x: np.ndarray, gold: int | None, w: np.ndarray) -> int | None:
    if gold is None:
        return None
    s = x @ w
    return int((s > s[gold]).sum())


def fit(cfg: BrainConfig, dataset_dir: Path, *, max_pairs: int = 600, write: bool = True) -> dict:
    """Fit on the dataset's pairs, report held-out recall before/after, write the model (see module doc)."""
    from brain.search import Searcher

    pairs = grounded_pairs(dataset_dir)
    if not pairs:
        raise NanodexError(f"no grounded pairs in {dataset_dir}", "run the dataset stage on this graph")
    step = -(-len(pairs) // max_pairs)  # ceil: at most max_pairs, spread over the file
    pairs = pairs[::step]
    t0 = time.perf_counter()
    train: list[tuple[np.ndarray, int]] = []
    test: list[tuple[np.ndarray, int | None]] = []
    searcher = Searcher(cfg, use_model=False)
    try:
        forms = [
            (q, gold)
            for question, gold in pairs
            for q in [question, as_words(question)][: 1 + ("`" in question)]
        ]
        vecs = searcher.encode_many([q for q, _ in forms]) if searcher.has_dense else None
        for n, (q, gold_id) in enumerate(forms):
            gold_row = searcher.row_of.get(gold_id)
            rows, x = searcher.features(q, None if vecs is None else vecs[n])
            gold = None if gold_row is None else next((i for i, r in enumerate(rows) if r == gold_row), None)
            if held_out(gold_id):
                test.append((x, gold))
            elif gold is not None:
                train.append((x, gold))
        start = default_weights(cfg.search)
        w = fit_weights(train, start)
    finally:
        searcher.close()
    before = [_rank(x, g, start) for x, g in test]
    after = [_rank(x, g, w) for x, g in test]
    report = {
        "pairs": len(pairs),
        "fit_questions": len(train),
        "held_out_questions": len(test),
        "held_out_before": {f"R@{k}": _recall(before, k) for k in (1, 5, 10)},
        "held_out_after": {f"R@{k}": _recall(after, k) for k in (1, 5, 10)},
        "seconds": round(time.perf_counter() - t0, 2),
        "weights": dict(zip(FEATURES, (round(float(v), 4) for v in w), strict=True)),
    }
    keep = report["held_out_after"]["R@5"] >= report["held_out_before"]["R@5"]
    report["written"] = bool(write and keep)
    if write and keep:
        meta = {
            "graph_updated_at": searcher.built_from,
            "report": {k: v for k, v in report.items() if k != "weights"},
        }
        RerankModel(w, meta).save(rerank_path(cfg))
    elif write:
        log.warning("the fitted reranker loses held-out recall@5; the default weights stay in use")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m brain.rerank", description=__doc__.split("\n\n")[0])
    config_option(ap, BrainConfig, "brain")
    config_flag(
        ap,
        "--graph",
        key="graph",
        help="code graph (its search index lies beside it; the model is written there)",
    )
    ap.add_argument(
        "--dataset", required=True, help="folder with the dataset stage's train.jsonl / eval.jsonl"
    )
    ap.add_argument("--dry-run", action="store_true", help="report the held-out gain, write nothing")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_from_args(args)
    report = fit(cfg, Path(args.dataset), write=not args.dry_run)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
