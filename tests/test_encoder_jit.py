"""The traced question encoder (embed.query_jit) gives the eager model's vectors and rankings.

Slow: loads MiniLM. The traced graph is made at the first question; later questions of other
lengths (shorter, longer, beyond the node texts' max_seq_length) must still match the eager path,
or hybrid search would silently rank differently from the index's model.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from brain.build import build_brain
from brain.config import BrainConfig
from brain.embed import embed
from brain.encoder import Encoder
from brain.search import Searcher
from tests.conftest import FIXTURES, build_graph

QUESTIONS = [
    "total",
    "sum up what everything in the basket costs",
    "exception for a product that is unavailable",
    "remove units from inventory when an order is placed and raise if there are not enough left",
    # longer than embed.max_seq_length (64 word pieces): read whole through query_max_seq_length
    " ".join(["why does checking out an empty cart fail with an error about missing items"] * 8),
]


@pytest.mark.slow
def test_traced_vectors_match_eager() -> None:
    cfg = BrainConfig().embed
    eager = Encoder(replace(cfg, query_jit=False))
    traced = Encoder(replace(cfg, query_jit=True, query_jit_after=2))
    for i, q in enumerate(QUESTIONS):
        a, b = eager.encode_query(q), traced.encode_query(q)
        assert a.shape == b.shape == (eager.dim,)
        assert np.abs(a - b).max() < 1e-5, q
        assert len(traced._graphs) == (i >= 2)  # eager for the first two, then traced once
    assert not eager._graphs


@pytest.mark.slow
def test_traced_encoder_keeps_hybrid_rankings(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    graph = tmp_path / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    base = BrainConfig(graph=str(graph), out_dir=str(tmp_path / "nodes"))
    build_brain(base)
    embed(base)
    results = []
    for jit in (False, True):
        cfg = replace(base, embed=replace(base.embed, query_jit=jit, query_jit_after=0))
        with Searcher(cfg) as searcher:
            assert searcher.has_dense
            results.append([[(h.id, h.score) for h in searcher.search(q, 8)] for q in QUESTIONS])
    # the same rankings; scores equal up to the vectors' float noise (rounding them could split
    # 1.3240049 and 1.3240051 apart)
    assert [[i for i, _ in hits] for hits in results[0]] == [[i for i, _ in hits] for hits in results[1]]
    assert all(
        abs(a - b) < 1e-4
        for eager, traced in zip(results[0], results[1], strict=True)
        for (_, a), (_, b) in zip(eager, traced, strict=True)
    )
    assert results[1][1][0][0] == "shop/pricing.py::total"
