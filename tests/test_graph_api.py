"""The reader API later stages use, on the Python fixture graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from extractor.graph import Graph
from nanodex.errors import NanodexError
from tests.conftest import FIXTURES, build_graph

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    path = tmp_path_factory.mktemp("api") / "graph.sqlite"
    build_graph(FIXTURES / "python", path, ["python"])
    return Graph(path)


def test_lookups(graph: Graph) -> None:
    take = graph.node("shop/models.py::Item.take")
    assert take is not None and take.type == "method" and take.citation == "shop/models.py:29-33"
    assert [n.id for n in graph.by_qualname("Item.take")] == ["shop/models.py::Item.take"]
    assert graph.at("shop/models.py", 31).id == "shop/models.py::Item.take"
    assert graph.at("shop/models.py", 2).id == "shop/models.py"
    assert "Sum the prices" in graph.node("shop/pricing.py::total").doc


def test_relations(graph: Graph) -> None:
    assert [n.id for n in graph.callees("shop/models.py::Item.take")] == [
        "shop/errors.py::OutOfStock",
        "shop/models.py::Base.describe",
    ]
    assert "shop/cart.py::Cart.checkout" in [n.id for n in graph.callers("shop/pricing.py::total")]
    assert [n.id for n in graph.owners("shop/models.py::Item.take")] == [
        "shop/models.py::Item",
        "shop/models.py",
    ]
    assert ("shop/models.py::Item.take", 31) in [(n.id, line) for n, line in graph.refs("OutOfStock")]
    tests = graph.tests_of("shop/models.py::Item.take")
    assert [t.meta["pytest_id"] for t in tests] == ["tests/test_cart.py::test_take"]


def test_subgraph_radius(graph: Graph) -> None:
    nodes1, edges1 = graph.subgraph(["shop/pricing.py::price"], radius=1)
    ids1 = {n.id for n in nodes1}
    assert {"shop/pricing.py::price", "shop/pricing.py::total.each", "shop/pricing.py"} <= ids1
    assert "shop/cart.py::Cart.checkout" not in ids1
    nodes2, _ = graph.subgraph(["shop/pricing.py::price"], radius=2)
    assert len(nodes2) > len(nodes1)
    assert all(e.src in ids1 and e.dst in ids1 for e in edges1)


def test_source_and_citation_checks(graph: Graph) -> None:
    assert graph.source("shop/models.py", 29, 29).strip() == "def take(self, n):"
    assert graph.resolves("shop/models.py", 29, 33)
    assert not graph.resolves("shop/models.py", 29, 400)
    assert not graph.resolves("shop/nope.py", 1)


def test_missing_graph_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NanodexError, match="make extract"):
        Graph(tmp_path / "none.sqlite")


def test_inspect_and_export_cli(graph: Graph, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, check=True
        )

    info = json.loads(run("extractor.inspect", "--graph", str(graph.path), "--json").stdout)
    assert (
        info["files"] == 6 and info["nodes_by_type"]["method"] == 11 and info["edges_by_kind"]["tests"] >= 3
    )
    out = tmp_path / "g.jsonl"
    run("extractor.export", "--graph", str(graph.path), "--format", "jsonl", "--out", str(out))
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(r["record"] == "node" for r in recs) == 6 + 21
    assert ("shop/models.py::Item", "shop/models.py::Base") in {
        (r["src"], r["dst"]) for r in recs if r.get("kind") == "extends"
    }
    doc = json.loads(run("extractor.export", "--graph", str(graph.path), "--format", "json").stdout)
    assert len(doc["files"]) == 6 and len(doc["nodes"]) == 27
