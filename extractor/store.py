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

from extractor.graph import SCHEMA_VERSION as SCHEMA_VERSION  # one definition, read by Graph too
from extractor.parse import FileFacts

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
CREATE TABLE IF NOT EXISTS coverage(
    node_id TEXT PRIMARY KEY, path TEXT NOT NULL, statements INTEGER NOT NULL, executed INTEGER NOT NULL);
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


def create_indexes(conn: sqlite3.Connection, tables: tuple[str, ...] | None = None) -> None:
    """The lookup indexes resolution and readers need (no-op when they exist); `tables`: only
    those on these tables (a fresh build indexes nodes while resolution still runs)."""
    for statement in INDEXES.strip().splitlines():
        if tables is None or statement.split(" ON ", 1)[1].split("(", 1)[0] in tables:
            conn.execute(statement)


def delete_files(conn: sqlite3.Connection, paths: Iterable[str]) -> None:
    """Drop everything a file contributed: its nodes, the edges from them, its refs and imports."""
    rows = [(p,) for p in paths]
    conn.executemany("DELETE FROM nodes WHERE path = ?", rows)
    conn.executemany("DELETE FROM edges WHERE src_path = ?", rows)
    conn.executemany("DELETE FROM refs WHERE path = ?", rows)
    conn.executemany("DELETE FROM imports WHERE path = ?", rows)
    conn.executemany("DELETE FROM files WHERE path = ?", rows)


def insert_facts(conn: sqlite3.Connection, batch: Iterable[tuple[FileFacts, int]]) -> None:
    """Store parsed files' nodes, raw refs and imports (edges come from resolution).

    `batch` pairs each file's facts with its mtime. The rows arrive ready-made from the parse
    workers, so this is one `executemany` per table for the whole batch.
    """
    batch = list(batch)
    insert_unresolved(conn, batch)
    conn.executemany("INSERT INTO refs VALUES(?,?,?,?,?,?, '')", [row for f, _ in batch for row in f.refs])


NODE_INSERT = "INSERT OR REPLACE INTO nodes VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
CLEAR_RESOLVED_META = "json_remove(meta_json, '$.raises', '$.external_bases', '$.ambiguous')"


def insert_unresolved(conn: sqlite3.Connection, batch: list[tuple[FileFacts, int]]) -> None:
    """Files, imports and nodes: what needs no resolution (a fresh build stores it while
    resolution runs). A parsed node's meta_json holds none of resolution's keys yet."""
    conn.executemany(
        "INSERT OR REPLACE INTO files VALUES(?,?,?,?,?,?,?)",
        [(f.path, f.sha256, f.bytes, f.lang, mtime, f.lines, f.parse_errors) for f, mtime in batch],
    )
    conn.executemany("INSERT INTO imports VALUES(?,?,?,?,?,?)", [row for f, _ in batch for row in f.imports])
    conn.executemany(NODE_INSERT, [row for f, _ in batch for row in f.nodes])


class ResolvedRefs:
    """A fresh build's refs, stored file by file as resolution finishes them, each with how it
    resolved; the n-th reference of the batch gets rowid n (resolution keys `via` by it).

    Called as `resolve.Progress`: storing the first files' refs while resolution works on the
    later ones saves doing it all after resolution ends.
    """

    def __init__(self, conn: sqlite3.Connection, batch: list[tuple[FileFacts, int]]) -> None:
        if conn.execute("SELECT 1 FROM refs LIMIT 1").fetchone() is not None:
            raise ValueError("ResolvedRefs needs an empty refs table")
        self._conn = conn
        self._facts = [f for f, _ in batch]
        self._how = [""] * sum(len(f.refs) for f in self._facts)
        self._files_done = self._refs_done = 0

    def add(self, via: list[tuple[str, int]], files_done: int) -> None:
        """Record `via` ((via, rowid) pairs) and store the refs of files up to `files_done`."""
        how = self._how
        for v, rowid in via:
            how[rowid - 1] = v
        rows = []
        n = self._refs_done
        for f in self._facts[self._files_done : files_done]:
            for row in f.refs:
                rows.append((n + 1, *row, how[n]))
                n += 1
        self._conn.executemany(
            "INSERT INTO refs(rowid, path, src_id, kind, name, receiver, line, via) VALUES(?,?,?,?,?,?,?,?)",
            rows,
        )
        self._files_done, self._refs_done = files_done, n


def merge_node_meta(
    conn: sqlite3.Connection, batch: list[tuple[FileFacts, int]], meta: dict[str, dict[str, object]]
) -> None:
    """Add the keys resolution decided (node id -> keys) to the meta_json of the batch's stored nodes."""
    updates = []
    for f, _ in batch:
        for row in f.nodes:
            keys = meta.get(row[0])
            if keys is not None:
                merged = json.loads(row[13])
                merged.update(keys)
                updates.append((json.dumps(merged, sort_keys=True), row[0]))
    conn.executemany("UPDATE nodes SET meta_json = ? WHERE id = ?", updates)


def set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, json.dumps(value)))


def get_meta(conn: sqlite3.Connection, key: str, default: object = None) -> object:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else default
