"""scripts.bench_stripped_libs: the per-library docstring benchmark's corpus and queries.

The sdist download and the full runs are the benchmark's business; here: only `.py` files are
copied, stripping keeps line numbers (so node ids match across the two settings), and only
library functions become queries while tests stay in the index as distractors.
"""

from __future__ import annotations

from pathlib import Path

from brain.config import BrainConfig
from extractor.graph import Graph
from scripts.bench_search import Setting, strip_tree
from scripts.bench_stripped_libs import copy_python, library_queries
from tests.conftest import build_graph

LIB = '''"""Pricing helpers."""


def total(prices):
    """Add up every price of the basket and return the sum."""
    return sum(prices)


def rebate(price, share):
    """Take the given share off a price before checkout."""
    return price * (1 - share)
'''
TEST = '''def test_total():
    """Check that adding up several prices of the basket gives the sum."""
    assert True
'''


def test_library_queries_from_a_copied_tree(tmp_path: Path) -> None:
    sdist = tmp_path / "sdist"
    (sdist / "shop").mkdir(parents=True)
    (sdist / "tests").mkdir()
    (sdist / "shop" / "pricing.py").write_text(LIB, encoding="utf-8")
    (sdist / "tests" / "test_pricing.py").write_text(TEST, encoding="utf-8")
    (sdist / "README.md").write_text("# shop\nAdd up every price of the basket.\n", encoding="utf-8")
    (sdist / ".hidden").mkdir()
    (sdist / ".hidden" / "x.py").write_text("def f():\n    pass\n", encoding="utf-8")
    kept, stripped = tmp_path / "kept", tmp_path / "stripped"
    assert copy_python(sdist, kept) == 2
    assert not (kept / "README.md").exists() and not (kept / ".hidden").exists()
    assert strip_tree(kept, stripped) == 2
    text = (stripped / "shop" / "pricing.py").read_text(encoding="utf-8")
    assert "basket" not in text and len(text.splitlines()) == len(LIB.splitlines())
    graphs = {}
    for name, repo in (("kept", kept), ("stripped", stripped)):
        graphs[name] = tmp_path / f"{name}.sqlite"
        build_graph(repo, graphs[name], ["python"])
    with Graph(graphs["kept"]) as a, Graph(graphs["stripped"]) as b:
        assert {n.id for n in a.nodes()} == {n.id for n in b.nodes()}
    setting = Setting("docs kept", kept, graphs["kept"], BrainConfig(graph=str(graphs["kept"])))
    qs = library_queries(setting)
    assert sorted(q.target for q in qs) == ["shop/pricing.py::rebate", "shop/pricing.py::total"]
    by_target = {q.target: q.text for q in qs}
    # the function's own name is taken out of its question
    assert "total" not in by_target["shop/pricing.py::total"].lower().split()
    assert by_target["shop/pricing.py::rebate"].startswith("Take the given share off a price")
