"""Coverage ingestion: a coverage.py JSON report marks the graph's nodes.

The fixture's report is real: `coverage run run.py && coverage json` (coverage.py 7.17.5) in
tests/fixtures/coverage. Its per-function and per-class sections are the reference the graph's
regions are checked against; nothing in the fixture runs here.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from extractor.graph import Graph
from nanodex.errors import NanodexError
from selftune.curriculum import rank_module
from tests.conftest import FIXTURES, build_graph

SHAPES = "pkg/shapes.py"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    dst = tmp_path / "repo"
    shutil.copytree(FIXTURES / "coverage", dst)
    return dst


def _rows(graph: Path) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(graph) as conn:
        return {i: (s, e) for i, s, e in conn.execute("SELECT node_id, statements, executed FROM coverage")}


def test_regions_match_coverage_py_per_function_and_class(repo: Path, graph_path: Path) -> None:
    report = build_graph(repo, graph_path, ["python"], coverage_json=str(repo / "coverage.json"))
    rows = _rows(graph_path)
    entry = json.loads((repo / "coverage.json").read_text())["files"][SHAPES]
    expected = {}
    for section in ("functions", "classes"):
        for qualname, region in entry[section].items():
            if qualname and region["summary"]["num_statements"]:
                node_id = f"{SHAPES}::{qualname}"
                expected[node_id] = (region["summary"]["num_statements"], region["summary"]["covered_lines"])
    expected[SHAPES] = (entry["summary"]["num_statements"], entry["summary"]["covered_lines"])
    got = {i: v for i, v in rows.items() if i.startswith(SHAPES)}
    assert got == expected
    assert f"{SHAPES}::documented_only" not in rows  # no statements: no row
    assert rows[f"{SHAPES}::never_called"] == (4, 0)
    assert report.coverage["files"] == 2 and report.coverage["nodes"] == len(rows)
    with Graph(graph_path) as g:
        assert g.coverage(SHAPES)[f"{SHAPES}::Shape.area"] == pytest.approx(2 / 3)


def test_incremental_run_keeps_coverage_equal_to_fresh(repo: Path, graph_path: Path, tmp_path: Path) -> None:
    cov = str(repo / "coverage.json")
    build_graph(repo, graph_path, ["python"], coverage_json=cov)
    shapes = repo / SHAPES
    shapes.write_text("\n\n" + shapes.read_text())  # every span moves down two lines
    assert build_graph(repo, graph_path, ["python"], coverage_json=cov).parsed == 1
    fresh = tmp_path / "fresh.sqlite"
    build_graph(repo, fresh, ["python"], coverage_json=cov)
    assert _rows(graph_path) == _rows(fresh)
    assert _rows(graph_path) != {}


def test_report_change_and_removal_are_applied(repo: Path, graph_path: Path) -> None:
    cov = repo / "coverage.json"
    build_graph(repo, graph_path, ["python"], coverage_json=str(cov))
    with Graph(graph_path) as g:
        stamp = g.meta("updated_at")
    again = build_graph(repo, graph_path, ["python"], coverage_json=str(cov))
    assert again.parsed == 0 and again.coverage["nodes"] == len(_rows(graph_path))
    with Graph(graph_path) as g:
        assert g.meta("updated_at") == stamp  # nothing changed: nothing written
    data = json.loads(cov.read_text())
    data["files"][SHAPES]["executed_lines"] += data["files"][SHAPES]["missing_lines"]
    data["files"][SHAPES]["missing_lines"] = []
    cov.write_text(json.dumps(data))
    build_graph(repo, graph_path, ["python"], coverage_json=str(cov))
    assert _rows(graph_path)[f"{SHAPES}::never_called"] == (4, 4)  # new report, same code: re-applied
    build_graph(repo, graph_path, ["python"])
    assert _rows(graph_path) == {}


def test_unmatched_files_are_counted(repo: Path, graph_path: Path, tmp_path: Path) -> None:
    data = json.loads((repo / "coverage.json").read_text())
    data["files"]["/elsewhere/lib.py"] = data["files"][SHAPES]
    data["files"][str(repo / SHAPES)] = data["files"].pop(SHAPES)  # absolute inside: matched
    data["files"]["lib/vendored.py"] = data["files"]["pkg/__init__.py"]  # relative, not in the graph
    cov = tmp_path / "cov.json"
    cov.write_text(json.dumps(data))
    report = build_graph(repo, graph_path, ["python"], coverage_json=str(cov))
    assert report.coverage["outside_repo"] == 1 and report.coverage["not_indexed"] == 1
    assert f"{SHAPES}::never_called" in _rows(graph_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "coverage report not readable"),
        ("{not json", "is not a coverage.py JSON report"),
        ('{"meta": {}}', "is not a coverage.py JSON report"),
        ('{"files": {"a.py": {"executed_lines": [1]}}}', "is not a coverage.py JSON report"),
    ],
)
def test_bad_report_is_a_clear_error(
    repo: Path, graph_path: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    cov = tmp_path / "bad.json"
    if content is not None:
        cov.write_text(content)
    with pytest.raises(NanodexError, match=message):
        build_graph(repo, graph_path, ["python"], coverage_json=str(cov))
    assert not graph_path.exists()


def test_self_tune_curriculum_counts_measured_coverage(repo: Path, graph_path: Path) -> None:
    build_graph(repo, graph_path, ["python"])
    with Graph(graph_path) as g:
        assert rank_module(g, SHAPES).coverage == 0.0  # no mapped tests, no report
    build_graph(repo, graph_path, ["python"], coverage_json=str(repo / "coverage.json"))
    with Graph(graph_path) as g:
        rank = rank_module(g, SHAPES)
    # 12 functions and methods; Shape.unused and never_called did not run, documented_only has
    # no statement: 9 ran.
    assert rank.coverage == pytest.approx(9 / 12)
