"""One shared check, run per language: each fixture's exact node set and expected edges.

The expectations in tests/fixtures/<lang>/expected.yaml were written by hand from reading the
fixture code, not generated from the extractor's output.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, build_graph, edge_strings, node_meta

CASES = sorted(p.parent.name for p in FIXTURES.glob("*/expected.yaml"))


def _expected(lang: str) -> dict:
    return yaml.safe_load((FIXTURES / lang / "expected.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for case in CASES:
        exp = _expected(case)
        graph = tmp_path_factory.mktemp(case) / "graph.sqlite"
        langs = exp.get("languages") or [exp["language"]]
        report = build_graph(FIXTURES / case, graph, langs)
        assert report.parse_errors == 0, f"{case}: the fixture should parse cleanly"
        out[case] = graph
    return out


@pytest.mark.parametrize("case", CASES)
def test_nodes_exact(case: str, built: dict[str, Path]) -> None:
    conn = sqlite3.connect(built[case])
    got = {
        f"{t} {i} {s}-{e}"
        for t, i, s, e in conn.execute(
            "SELECT type, id, start_line, end_line FROM nodes WHERE type != 'module'"
        )
    }
    want = set(_expected(case)["nodes"])
    assert sorted(got - want) == [], "unexpected nodes"
    assert sorted(want - got) == [], "missing nodes"


@pytest.mark.parametrize("case", CASES)
def test_expected_edges(case: str, built: dict[str, Path]) -> None:
    exp = _expected(case)
    got = edge_strings(built[case])
    assert sorted(set(exp.get("edges", [])) - got) == [], "missing edges"
    assert sorted(set(exp.get("absent_edges", [])) & got) == [], "edges that bare-name lookup would make"


@pytest.mark.parametrize("case", CASES)
def test_raises_and_test_ids(case: str, built: dict[str, Path]) -> None:
    exp = _expected(case)
    meta = node_meta(built[case])
    for line in exp.get("raises", []):
        node_id, _, name = line.rpartition(": ")
        assert name in meta[node_id].get("raises", []), line
    pytest_ids = {m["pytest_id"] for m in meta.values() if "pytest_id" in m}
    assert set(exp.get("pytest_ids", [])) <= pytest_ids
