"""Shared helpers: build a graph from a folder into a temp file and read it back as sets."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from extractor.build import BuildReport, extract
from extractor.config import ExtractConfig

FIXTURES = Path(__file__).parent / "fixtures"


def build_graph(repo: Path, graph: Path, languages: list[str] | None = None, **kw) -> BuildReport:
    cfg = ExtractConfig(repo=str(repo), out_graph=str(graph), workers=kw.pop("workers", 1), **kw)
    if languages:
        cfg.languages = languages
    return extract(cfg, force_full=kw.pop("full", False))


def graph_snapshot(graph: Path) -> dict[str, set]:
    """Everything a graph says about the code, as comparable sets (rowids and timestamps left out)."""
    conn = sqlite3.connect(graph)
    try:
        return {
            "nodes": set(
                conn.execute(
                    "SELECT id, type, name, qualname, path, lang, start_line, end_line, signature, doc, hash, parent, owner, meta_json FROM nodes"
                )
            ),
            "edges": set(conn.execute("SELECT src_id, dst_id, kind, src_path, meta_json FROM edges")),
            "files": set(conn.execute("SELECT path, sha256, bytes, lang, lines, parse_errors FROM files")),
            "refs": set(conn.execute("SELECT path, src_id, kind, name, receiver, line, via FROM refs")),
        }
    finally:
        conn.close()


def edge_strings(graph: Path) -> set[str]:
    conn = sqlite3.connect(graph)
    try:
        return {f"{k} {s} -> {d}" for s, d, k in conn.execute("SELECT src_id, dst_id, kind FROM edges")}
    finally:
        conn.close()


def node_meta(graph: Path) -> dict[str, dict]:
    conn = sqlite3.connect(graph)
    try:
        return {i: json.loads(m) for i, m in conn.execute("SELECT id, meta_json FROM nodes")}
    finally:
        conn.close()


@pytest.fixture
def graph_path(tmp_path: Path) -> Path:
    return tmp_path / "graph.sqlite"
