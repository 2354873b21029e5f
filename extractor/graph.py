"""Read API over the code graph, shared by every later stage (brain, dataset, pca_otf, ...).

Later stages never write SQL against the graph themselves; they ask this class, so the schema can
evolve in one place.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nanodex.errors import NanodexError

_COLS = "id, type, name, qualname, path, lang, start_line, end_line, signature, doc, hash, meta_json"


@dataclass(frozen=True)
class GraphNode:
    id: str
    type: str
    name: str
    qualname: str
    path: str
    lang: str
    start_line: int
    end_line: int
    signature: str
    doc: str
    hash: str
    meta: dict

    @property
    def citation(self) -> str:
        """`path:start-end`, the form answers cite."""
        return f"{self.path}:{self.start_line}-{self.end_line}"


@dataclass(frozen=True)
class GraphEdge:
    src: str
    dst: str
    kind: str
    meta: dict


# The graph's schema version (extractor.store writes it); a graph with another one is rebuilt.
SCHEMA_VERSION = "1"
# Tables and columns the readers rely on: a graph missing any of them is damaged.
REQUIRED_COLUMNS: dict[str, frozenset[str]] = {
    "meta": frozenset({"key", "value"}),
    "files": frozenset({"path", "sha256", "bytes", "lang", "mtime_ns", "lines", "parse_errors"}),
    "nodes": frozenset(c.strip() for c in _COLS.split(",")),
    "edges": frozenset({"src_id", "dst_id", "kind", "src_path", "meta_json"}),
    "refs": frozenset({"path", "src_id", "kind", "name", "receiver", "line", "via"}),
    "imports": frozenset({"path", "module", "name", "alias", "wildcard", "line"}),
    "skipped": frozenset({"path", "reason"}),
}
SQLITE_MAGIC = b"SQLite format 3\x00"
DAMAGED_FIX = "rebuild it: `make extract --full` (python -m extractor --full)"

# graph_state() verdicts
MISSING, EMPTY, FOLDER, FOREIGN, DAMAGED, OK = "missing", "empty", "folder", "foreign", "damaged", "ok"


def _truncated(path: Path, head: bytes) -> bool:
    """Whether the file is shorter than the page count its SQLite header records (a cut-off copy).

    The header's page count is valid only when its `version-valid-for` field equals the change
    counter (SQLite file format, header offsets 24, 28 and 92); otherwise nothing is claimed.
    """
    if len(head) < 100:
        return True
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    if head[24:28] != head[92:96] or pages == 0:
        return False
    return path.stat().st_size < page_size * pages


def graph_state(path: str | Path) -> tuple[str, str]:
    """What sits at `path`: (MISSING|EMPTY|FOLDER|FOREIGN|DAMAGED|OK, why).

    FOREIGN is a file that is not a nanodex graph at all (never to be overwritten); DAMAGED is a
    nanodex graph that is cut off, corrupt, lacks a table or column, or has another schema
    version (rebuilt with --full). Cheap: reads the header and the schema, not the rows.
    """
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return MISSING, ""
    if p.is_dir():
        return FOLDER, "a folder"
    if not p.is_file():
        return FOREIGN, "not a regular file"
    try:
        with p.open("rb") as fh:
            head = fh.read(100)
    except OSError as err:
        return DAMAGED, f"unreadable ({err.strerror or err.__class__.__name__})"
    if not head:
        return EMPTY, "an empty file"
    if not head.startswith(SQLITE_MAGIC):
        return FOREIGN, "not a SQLite database"
    if _truncated(p, head):
        return DAMAGED, "the file is cut off (shorter than its header says)"
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables & {"meta", "nodes"}:
                return FOREIGN, "a SQLite database without the graph's tables"
            missing: list[str] = []
            for table, cols in REQUIRED_COLUMNS.items():
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                if not have:
                    missing.append(f"table {table}")
                elif cols - have:
                    missing.append(f"{table}.{', '.join(sorted(cols - have))}")
            if missing:
                return DAMAGED, f"missing {'; '.join(missing)}"
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = row[0] if row else None
            if version != SCHEMA_VERSION:
                return DAMAGED, f"schema version {version!r}, this nanodex reads {SCHEMA_VERSION!r}"
        finally:
            conn.close()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
        return DAMAGED, str(err)
    return OK, ""


def check_graph(path: str | Path) -> Path:
    """`path` if it holds a usable graph, else the one-line error for what is there instead."""
    p = Path(path)
    state, why = graph_state(p)
    if state in (MISSING, EMPTY):
        raise NanodexError(f"code graph not found: {p}", "run `make extract REPO=<repo>` first")
    if state == FOLDER:
        raise NanodexError(
            f"code graph {p} is a folder", "pass the graph file, e.g. --graph brain/graph.sqlite"
        )
    if state == FOREIGN:
        raise NanodexError(
            f"{p} is not a nanodex code graph ({why})", "pass the graph file `make extract` wrote"
        )
    if state == DAMAGED:
        raise NanodexError(f"graph {p} is damaged or from another version: {why}", DAMAGED_FIX)
    return p


class Graph:
    """A read-only view of brain/graph.sqlite."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_graph(path)
        self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- lookups ---------------------------------------------------------------------------
    def _nodes(self, where: str, args: Iterable = ()) -> list[GraphNode]:
        rows = self.conn.execute(f"SELECT {_COLS} FROM nodes {where}", tuple(args))
        return [GraphNode(*r[:11], meta=json.loads(r[11] or "{}")) for r in rows]

    def node(self, node_id: str) -> GraphNode | None:
        found = self._nodes("WHERE id = ?", (node_id,))
        return found[0] if found else None

    def by_qualname(self, qualname: str) -> list[GraphNode]:
        """Nodes whose in-file qualname or `path::qualname` id matches."""
        return self._nodes("WHERE qualname = ? OR id = ? ORDER BY id", (qualname, qualname))

    def at(self, path: str, line: int) -> GraphNode | None:
        """The innermost node whose span holds `path:line` (the file node if no symbol does)."""
        found = self._nodes(
            "WHERE path = ? AND start_line <= ? AND end_line >= ? ORDER BY (end_line - start_line) ASC, start_line DESC LIMIT 1",
            (path, line, line),
        )
        return found[0] if found else None

    def nodes(self, type: str | None = None) -> Iterator[GraphNode]:
        yield from self._nodes(
            "WHERE type = ? ORDER BY id" if type else "ORDER BY id", (type,) if type else ()
        )

    def in_file(self, path: str) -> list[GraphNode]:
        return self._nodes("WHERE path = ? ORDER BY start_line, id", (path,))

    def edges(self, kind: str | None = None) -> Iterator[GraphEdge]:
        sql = (
            "SELECT src_id, dst_id, kind, meta_json FROM edges"
            + (" WHERE kind = ?" if kind else "")
            + " ORDER BY src_id, dst_id, kind"
        )
        for s, d, k, m in self.conn.execute(sql, (kind,) if kind else ()):
            yield GraphEdge(s, d, k, json.loads(m))

    def files(self) -> list[dict]:
        cur = self.conn.execute(
            "SELECT path, sha256, bytes, lang, lines, parse_errors FROM files ORDER BY path"
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur]

    def meta(self, key: str, default: object = None) -> object:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def coverage(self, path: str) -> dict[str, float]:
        """Measured test coverage of a file's nodes: node id -> share of the statements in its body
        that ran, from the coverage.py report the extract config names (`coverage_json`); empty
        when there was none (or the graph predates the coverage table)."""
        try:
            rows = self.conn.execute(
                "SELECT node_id, statements, executed FROM coverage WHERE path = ?", (path,)
            ).fetchall()
        except sqlite3.OperationalError:
            return {}
        return {node_id: executed / statements for node_id, statements, executed in rows}

    # ---- relations -------------------------------------------------------------------------
    def _related(self, node_id: str, kind: str, outgoing: bool) -> list[GraphNode]:
        a, b = ("src_id", "dst_id") if outgoing else ("dst_id", "src_id")
        return self._nodes(
            f"WHERE id IN (SELECT {b} FROM edges WHERE {a} = ? AND kind = ?) ORDER BY id", (node_id, kind)
        )

    def callees(self, node_id: str) -> list[GraphNode]:
        return self._related(node_id, "calls", True)

    def callers(self, node_id: str) -> list[GraphNode]:
        return self._related(node_id, "calls", False)

    def tests_of(self, node_id: str) -> list[GraphNode]:
        """Test functions mapped to this node (their pytest ids are in meta['pytest_id'])."""
        return self._related(node_id, "tests", False)

    def owners(self, node_id: str) -> list[GraphNode]:
        """Enclosing definitions, innermost first, ending with the file's module node."""
        out: list[GraphNode] = []
        current = node_id
        while True:
            parents = self._related(current, "defined_in", True)
            if not parents or parents[0].id in {n.id for n in out}:
                return out
            out.append(parents[0])
            current = parents[0].id

    def refs(self, token: str) -> list[tuple[GraphNode, int]]:
        """Places that reference `token` by name (call, throw, base class), with their line."""
        rows = self.conn.execute(
            "SELECT DISTINCT src_id, line FROM refs WHERE name = ? OR receiver = ? ORDER BY src_id, line",
            (token, token),
        ).fetchall()
        out = []
        for src, line in rows:
            n = self.node(src)
            if n is not None:
                out.append((n, line))
        return out

    def neighbours(
        self, node_id: str, kinds: Iterable[str] | None = None
    ) -> list[tuple[GraphEdge, GraphNode]]:
        """Edges touching a node in either direction, with the node at the other end."""
        kinds = list(kinds) if kinds else None
        filt = f" AND kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        rows = self.conn.execute(
            f"SELECT src_id, dst_id, kind, meta_json FROM edges WHERE (src_id = ? OR dst_id = ?){filt} ORDER BY kind, src_id, dst_id",
            (node_id, node_id, *(kinds or [])),
        ).fetchall()
        out = []
        for s, d, k, m in rows:
            other = self.node(d if s == node_id else s)
            if other is not None:
                out.append((GraphEdge(s, d, k, json.loads(m)), other))
        return out

    def subgraph(
        self, seeds: Iterable[str], radius: int = 1, kinds: Iterable[str] | None = None
    ) -> tuple[list[GraphNode], list[GraphEdge]]:
        """Nodes within `radius` edges of the seeds (both directions), and the edges among them."""
        kinds = list(kinds) if kinds else None
        seen: dict[str, int] = {}
        queue = deque((s, 0) for s in seeds if self.node(s) is not None)
        for s, _ in queue:
            seen[s] = 0
        edges: dict[tuple[str, str, str], GraphEdge] = {}
        while queue:
            current, dist = queue.popleft()
            if dist >= radius:
                continue
            for edge, other in self.neighbours(current, kinds):
                edges[(edge.src, edge.dst, edge.kind)] = edge
                if other.id not in seen:
                    seen[other.id] = dist + 1
                    queue.append((other.id, dist + 1))
        nodes = [n for n in (self.node(i) for i in sorted(seen)) if n is not None]
        inside = set(seen)
        return nodes, [e for e in edges.values() if e.src in inside and e.dst in inside]

    # ---- source ----------------------------------------------------------------------------
    def source(self, path: str, start: int, end: int) -> str:
        """Lines start..end (1-based, inclusive) of an indexed file, read from the repo root."""
        root = self.meta("repo_root")
        if not root:
            raise NanodexError(f"{self.path} records no repository root", "re-run `make extract`")
        lines = (Path(str(root)) / path).read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[start - 1 : end])

    def resolves(self, path: str, start: int, end: int | None = None) -> bool:
        """Whether a citation `path:start[-end]` lies within an indexed file's lines."""
        end = start if end is None else end
        row = self.conn.execute("SELECT lines FROM files WHERE path = ?", (path,)).fetchone()
        return bool(row) and 1 <= start <= end <= row[0]
