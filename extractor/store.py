"""The graph's SQLite schema and the writes the extractor makes to it.

Besides the contract tables (files, nodes, edges) the graph keeps each file's raw, unresolved
references and imports, so that an incremental run can re-resolve edges of unchanged files
without parsing them again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from extractor.parse import FileFacts

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files(
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, lang TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL DEFAULT 0, lines INTEGER NOT NULL DEFAULT 0, parse_errors INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS nodes(
    id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, qualname TEXT NOT NULL, path TEXT NOT NULL,
    lang TEXT NOT NULL, start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, signature TEXT, doc TEXT,
    hash TEXT, parent TEXT, owner TEXT, meta_json TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS edges(
    src_id TEXT NOT NULL, dst_id TEXT NOT NULL, kind TEXT NOT NULL, src_path TEXT NOT NULL,
    meta_json TEXT NOT NULL DEFAULT '{}', PRIMARY KEY(src_id, dst_id, kind));
CREATE TABLE IF NOT EXISTS refs(
    path TEXT NOT NULL, src_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, receiver TEXT NOT NULL,
    line INTEGER NOT NULL, via TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS imports(
    path TEXT NOT NULL, module TEXT NOT NULL, name TEXT NOT NULL, alias TEXT NOT NULL, wildcard INTEGER NOT NULL,
    line INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS skipped(path TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""

INDEXES = """
CREATE INDEX IF NOT EXISTS nodes_name ON nodes(name);
CREATE INDEX IF NOT EXISTS nodes_path ON nodes(path, start_line);
CREATE INDEX IF NOT EXISTS nodes_qualname ON nodes(qualname);
CREATE INDEX IF NOT EXISTS edges_dst ON edges(dst_id, kind);
CREATE INDEX IF NOT EXISTS edges_src_path ON edges(src_path);
CREATE INDEX IF NOT EXISTS refs_path ON refs(path);
CREATE INDEX IF NOT EXISTS refs_name ON refs(name, via);
CREATE INDEX IF NOT EXISTS imports_path ON imports(path);
"""

EDGE_KINDS = ("calls", "imports", "extends", "implements", "throws", "defined_in", "depends_on", "tests")


def connect(path: str | Path, bulk: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) a graph database with the schema in place.

    `bulk` is for a brand-new scratch file that is renamed into place only when complete: no
    journal, no fsync, and secondary indexes deferred to `create_indexes` (faster than
    maintaining them row by row).
    """
    conn = sqlite3.connect(str(path))
    if bulk:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
    else:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    if not bulk:
        create_indexes(conn)
    conn.execute("INSERT OR IGNORE INTO meta VALUES('schema_version', ?)", (SCHEMA_VERSION,))
    return conn


def create_indexes(conn: sqlite3.Connection) -> None:
    """The lookup indexes resolution and readers need (no-op when they exist)."""
    conn.executescript(INDEXES)


def delete_files(conn: sqlite3.Connection, paths: Iterable[str]) -> None:
    """Drop everything a file contributed: its nodes, the edges from them, its refs and imports."""
    rows = [(p,) for p in paths]
    conn.executemany("DELETE FROM nodes WHERE path = ?", rows)
    conn.executemany("DELETE FROM edges WHERE src_path = ?", rows)
    conn.executemany("DELETE FROM refs WHERE path = ?", rows)
    conn.executemany("DELETE FROM imports WHERE path = ?", rows)
    conn.executemany("DELETE FROM files WHERE path = ?", rows)


def insert_facts(conn: sqlite3.Connection, facts: FileFacts, mtime_ns: int) -> None:
    """Store one parsed file's nodes, raw refs and imports (edges come later, from resolution)."""
    conn.execute(
        "INSERT OR REPLACE INTO files VALUES(?,?,?,?,?,?,?)",
        (facts.path, facts.sha256, facts.bytes, facts.lang, mtime_ns, facts.lines, facts.parse_errors),
    )
    conn.executemany(
        "INSERT OR REPLACE INTO nodes VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                n.id,
                n.type,
                n.name,
                n.qualname,
                facts.path,
                facts.lang,
                n.start_line,
                n.end_line,
                n.signature,
                n.doc,
                n.hash,
                n.parent,
                n.owner,
                json.dumps(n.meta, sort_keys=True) if n.meta else "{}",
            )
            for n in facts.nodes
        ],
    )
    conn.executemany(
        "INSERT INTO refs VALUES(?,?,?,?,?,?, '')",
        [(facts.path, r.src, r.kind, r.name, r.receiver, r.line) for r in facts.refs],
    )
    conn.executemany(
        "INSERT INTO imports VALUES(?,?,?,?,?,?)",
        [(facts.path, i.module, i.name, i.alias, int(i.wildcard), i.line) for i in facts.imports],
    )


def set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, json.dumps(value)))


def get_meta(conn: sqlite3.Connection, key: str, default: object = None) -> object:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else default
