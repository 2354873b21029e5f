"""pca_otf.program_graph on the Python fixture: the ProgramGraph interface over the real SQLite
graph (built with Tree-sitter here), citation resolution, and the `--pg-backend` plug-in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nanodex.errors import NanodexError
from pca_otf.program_graph import (
    Entity,
    ProgramGraph,
    Relation,
    SqliteProgramGraph,
    load_program_graph,
)
from tests.conftest import FIXTURES, build_graph


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pg")
    repo = tmp / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    g = tmp / "graph.sqlite"
    build_graph(repo, g, ["python"])
    return g


@pytest.fixture(scope="module")
def pg(graph: Path) -> SqliteProgramGraph:
    return SqliteProgramGraph(graph)


def test_entities_and_edges(pg: SqliteProgramGraph) -> None:
    ents = {e.id: e for e in pg.entities()}
    add = ents["shop/cart.py::Cart.add"]
    assert isinstance(add, Entity)
    assert (add.kind, add.name, add.qualname, add.path, add.lang) == (
        "method",
        "add",
        "Cart.add",
        "shop/cart.py",
        "python",
    )
    assert (add.start_line, add.end_line) == (10, 13)
    assert add.citation == "shop/cart.py:10-13"
    rels = set(pg.edges())
    assert Relation("shop/cart.py::Cart.add", "shop/cart.py::Cart", "defined_in") in rels
    assert all(r.src in ents for r in rels)
    assert isinstance(pg, ProgramGraph)


def test_search_refs_definitions_first(pg: SqliteProgramGraph) -> None:
    found = [e.id for e in pg.search_refs("ShopError")]
    assert found[0] == "shop/errors.py::ShopError"
    assert "shop/cart.py::Cart.checkout" in found  # raises it
    assert pg.search_refs("no_such_token_anywhere") == []


def test_subgraph_radius(pg: SqliteProgramGraph) -> None:
    seed = "shop/cart.py::Cart.checkout"
    r0 = pg.subgraph([seed], 0)
    r1 = pg.subgraph([seed], 1)
    r2 = pg.subgraph([seed], 2)
    assert r0 == [seed]
    assert "shop/cart.py::Cart" in r1 and "shop/errors.py::ShopError" in r1
    assert set(r1) < set(r2)
    assert r1 == sorted(r1)
    with pytest.raises(NanodexError):
        pg.subgraph([seed], -1)


def test_artifacts(pg: SqliteProgramGraph) -> None:
    files = pg.artifacts("file")
    paths = [f["path"] for f in files]
    assert "shop/cart.py" in paths
    assert set(files[0]) == {"path", "sha256", "bytes", "lang"}
    tests = pg.artifacts("test")
    assert tests and all(t["path"].startswith("tests/") and t["pytest_id"] for t in tests)
    with pytest.raises(NanodexError, match="unknown artifact kind"):
        pg.artifacts("binary")


def test_resolve_forms(pg: SqliteProgramGraph) -> None:
    sha = {f["path"]: f["sha256"] for f in pg.artifacts("file")}["shop/cart.py"]
    r = pg.resolve("shop/cart.py:10-13")
    assert r is not None and r.span == (10, 13) and r.hash == sha
    assert r.to_dict() == {"artifact_uri": "shop/cart.py:10-13", "span": [10, 13], "hash": sha}
    line = pg.resolve("shop/cart.py:11")
    assert line is not None and line.span == (11, 11)
    by_id = pg.resolve("shop/cart.py::Cart.add")
    assert by_id is not None and by_id.artifact_uri == "shop/cart.py:10-13"
    # past the end of the file, reversed span, unknown file, not a citation at all
    assert pg.resolve("shop/cart.py:10-999") is None
    assert pg.resolve("shop/cart.py:13-10") is None
    assert pg.resolve("shop/nope.py:1") is None
    assert pg.resolve("hello") is None


def test_source_and_commit(pg: SqliteProgramGraph) -> None:
    assert pg.source("shop/cart.py", 10, 10).strip() == "def add(self, sku, qty):"
    assert pg.commit() is None or isinstance(pg.commit(), str)


class _Wrapped:
    """A backend built by a factory: delegates to SQLite but tags entity names (to prove it ran)."""

    def __init__(self, path: str) -> None:
        self.inner = SqliteProgramGraph(path)

    def entities(self):
        for e in self.inner.entities():
            yield Entity(**{**e.__dict__, "name": "x-" + e.name})

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


class _Wrapper:
    def __init__(self, path: str) -> None:
        self.path = path


def test_backend_plugin(graph: Path) -> None:
    pg = load_program_graph(graph, "tests.test_pca_graph:_Wrapped")
    assert all(e.name.startswith("x-") for e in pg.entities())
    assert isinstance(load_program_graph(graph), SqliteProgramGraph)


@pytest.mark.parametrize(
    ("spec", "msg"),
    [
        ("no_colon", "expected module:Factory"),
        ("no_such_module_xyz:F", "does not import"),
        ("tests.test_pca_graph:Missing", "no callable"),
        ("tests.test_pca_graph:_Wrapper", "without entities"),
    ],
)
def test_backend_bad_spec(graph: Path, spec: str, msg: str) -> None:
    with pytest.raises(NanodexError, match=msg) as err:
        load_program_graph(graph, spec)
    assert "\n" not in str(err.value)


def test_missing_graph_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(NanodexError, match="make extract"):
        load_program_graph(tmp_path / "none.sqlite")
