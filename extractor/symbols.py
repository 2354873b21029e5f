"""The symbol table resolution reads: the graph's nodes, imports and bases, by name and scope.

One interface (`SymbolTable`), two implementations that answer alike, in the same order:
`SqlSymbols` reads the graph lazily through SQL with small caches (an incremental run touches
only the rows it needs); `MemorySymbols` holds the whole graph in memory (a fresh build, or an
incremental run that re-resolves much), which pays off above some thousands of references.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple, Protocol

from extractor import languages
from extractor.modules import ModuleIndex
from extractor.parse import NODE_COLUMNS, FileFacts


class Node(NamedTuple):
    """The columns of a graph node that resolution needs (a tuple: hundreds of thousands are built)."""

    id: str
    type: str
    name: str
    path: str
    lang: str
    parent: str
    owner: str
    start: int = 0  # first and last line: a function's span holds its local imports
    end: int = 0


class ImportRow(NamedTuple):
    """One import statement's binding, as the imports table stores it."""

    module: str
    name: str
    alias: str
    wildcard: int
    line: int


# The node columns MemorySymbols is built from, in this order.
NODE_ROW = (
    "id", "type", "name", "path", "lang", "parent", "owner", "start_line", "end_line", "signature", "meta_json",
)  # fmt: skip
_ROW_START, _ROW_END, _ROW_SIGNATURE, _ROW_META = (
    NODE_ROW.index(c) for c in ("start_line", "end_line", "signature", "meta_json")
)
# Languages whose rules read signatures: a Go method names its receiver, a Python def its return type.
_SIGNATURE_LANGS = frozenset(
    n for n, s in languages.LANGUAGES.items() if s.named_receiver or s.typed_receivers
)


class SymbolTable(Protocol):
    """What the resolution rules read about the graph."""

    conn: sqlite3.Connection

    @property
    def index(self) -> ModuleIndex: ...
    def file_nodes(self, path: str) -> list[Node]: ...
    def children(self, path: str, parent: str, name: str) -> list[Node]: ...
    def named(self, name: str) -> list[Node]: ...
    def named_where(self, name: str, column: str, value: str) -> list[Node]: ...
    def node(self, node_id: str) -> Node | None: ...
    def bases(self, class_id: str) -> list[str]: ...
    def forget_bases(self) -> None: ...
    def import_rows(self, path: str) -> list[ImportRow]: ...
    def signature(self, node_id: str) -> str: ...
    def test_ids(self, path: str) -> list[str]: ...
    def in_non_test_file(self, node_id: str) -> bool: ...


class SqlSymbols:
    """The symbol table read lazily from the graph through SQL."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._file_nodes: dict[str, list[Node]] = {}
        self._children: dict[tuple[str, str], list[Node]] = defaultdict(list)
        self._named: dict[str, list[Node]] = {}
        self._bases: dict[str, list[str]] = {}
        self._by_id: dict[str, Node | None] = {}
        self._named_where: dict[tuple[str, str, str], list[Node]] = {}

    @cached_property
    def index(self) -> ModuleIndex:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'repo_root'").fetchone()
        root = Path(json.loads(row[0])) if row else None
        return ModuleIndex(dict(self.conn.execute("SELECT path, lang FROM files ORDER BY path")), root)

    def _rows(self, sql: str, args: tuple) -> list[Node]:
        """Nodes in the order a fresh build inserts them (by path, then source order), whatever
        order an incremental run re-inserted them in: candidate lists must not depend on it."""
        return [
            Node(*r)
            for r in self.conn.execute(
                f"SELECT id, type, name, path, lang, parent, owner, start_line, end_line FROM nodes {sql} "
                "ORDER BY path, start_line, rowid",
                args,
            )
        ]

    def file_nodes(self, path: str) -> list[Node]:
        if path not in self._file_nodes:
            nodes = self._rows("WHERE path = ?", (path,))
            self._file_nodes[path] = nodes
            for n in nodes:
                self._children[(n.parent, n.name)].append(n)
        return self._file_nodes[path]

    def children(self, path: str, parent: str, name: str) -> list[Node]:
        """Definitions named `name` directly inside `parent` (a node of file `path`)."""
        self.file_nodes(path)
        return self._children.get((parent, name), [])

    def named(self, name: str) -> list[Node]:
        if name not in self._named:
            self._named[name] = self._rows("WHERE name = ? AND type != 'module'", (name,))
        return self._named[name]

    def named_where(self, name: str, column: str, value: str) -> list[Node]:
        """`named(name)` narrowed to nodes whose `column` (owner or type) is `value`, same order.

        Common names (`get`, `__init__`) have thousands of definitions; asking SQL for the few
        that can match saves building them all as Python objects in an incremental run."""
        key = (name, column, value)
        if key not in self._named_where:
            if name in self._named:
                hits = [n for n in self._named[name] if getattr(n, column) == value]
            else:
                hits = self._rows(f"WHERE name = ? AND {column} = ? AND type != 'module'", (name, value))
            self._named_where[key] = hits
        return self._named_where[key]

    def node(self, node_id: str) -> Node | None:
        if node_id not in self._by_id:
            rows = self._rows("WHERE id = ?", (node_id,))
            self._by_id[node_id] = rows[0] if rows else None
        return self._by_id[node_id]

    def bases(self, class_id: str) -> list[str]:
        if class_id not in self._bases:
            self._bases[class_id] = [
                r[0]
                for r in self.conn.execute(
                    "SELECT dst_id FROM edges WHERE src_id = ? AND kind IN ('extends', 'implements') "
                    "ORDER BY json_extract(meta_json, '$.line'), dst_id",
                    (class_id,),
                )
            ]
        return self._bases[class_id]

    def forget_bases(self) -> None:
        self._bases.clear()

    def import_rows(self, path: str) -> list[ImportRow]:
        """A file's imports, in source order."""
        return [
            ImportRow(*r)
            for r in self.conn.execute(
                "SELECT module, name, alias, wildcard, line FROM imports WHERE path = ? ORDER BY rowid",
                (path,),
            )
        ]

    def signature(self, node_id: str) -> str:
        row = self.conn.execute("SELECT signature FROM nodes WHERE id = ?", (node_id,)).fetchone()
        return row[0] if row and row[0] else ""

    def test_ids(self, path: str) -> list[str]:
        """Test functions/methods (and test modules) of a file."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM nodes WHERE path = ? AND json_extract(meta_json, '$.test') = 1 "
                "AND type IN ('function', 'method', 'module')",
                (path,),
            )
        ]

    def in_non_test_file(self, node_id: str) -> bool:
        row = self.conn.execute(
            "SELECT f.meta_json FROM nodes n JOIN nodes f ON f.id = n.path WHERE n.id = ?", (node_id,)
        ).fetchone()
        return bool(row) and not json.loads(row[0]).get("test")


class MemorySymbols:
    """The symbol table held in memory: no SQL reads per lookup.

    Built from a fresh build's parsed facts (`from_facts`) or read from the graph at once
    (`from_db`, for incremental runs that re-resolve much). It answers exactly what `SqlSymbols`
    reads lazily from the same graph, in the same order (files by path, a file's nodes in
    source order), so both give one result; it pays off above some thousands of references.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        files: dict[str, str],
        node_rows: Iterable[tuple],
        imports: dict[str, list[tuple]],
        root: Path | None,
    ) -> None:
        """`node_rows`: the NODE_ROW columns, ordered by path, start line and insertion."""
        self.conn = conn
        self._named_where: dict[tuple[str, str, str], list[Node]] = {}
        self._by_id: dict[str, Node | None] = {}
        self._children: dict[tuple[str, str], list[Node]] = defaultdict(list)
        self._root = root
        self._files = files
        self._imports = imports
        self._signatures: dict[str, str] = {}
        self._tests: dict[str, list[str]] = defaultdict(list)
        self._test_files: set[str] = set()
        named: dict[str, list[Node]] = defaultdict(list)
        by_path: dict[str, list[Node]] = defaultdict(list)
        for row in node_rows:
            n = Node(*row[:7], row[_ROW_START], row[_ROW_END])
            by_path[n.path].append(n)
            self._by_id[n.id] = n
            self._children[(n.parent, n.name)].append(n)
            if n.type != "module":
                named[n.name].append(n)
            signature = row[_ROW_SIGNATURE]
            if signature and n.lang in _SIGNATURE_LANGS and (n.lang != "python" or "->" in signature):
                self._signatures[n.id] = signature
            meta = row[_ROW_META]
            # meta_json is our own json.dumps (or SQLite's minified copy): "test" only as a key.
            if meta != "{}" and ('"test": true' in meta or '"test":true' in meta):
                if n.type in ("function", "method", "module"):
                    self._tests[n.path].append(n.id)
                if n.type == "module":
                    self._test_files.add(n.path)
        self._file_nodes = dict(by_path)
        self._named = named
        self._bases_of: dict[str, list[str]] = {}
        self.forget_bases()  # an incremental run's unchanged classes keep their bases

    @classmethod
    def from_facts(cls, conn: sqlite3.Connection, facts: list[FileFacts], root: Path | None) -> MemorySymbols:
        pick = itemgetter(*(NODE_COLUMNS.index(c) for c in NODE_ROW))
        rows = (pick(r) for fx in facts for r in fx.nodes)
        imports = {fx.path: [ImportRow(*r[1:]) for r in fx.imports] for fx in facts}
        return cls(conn, {fx.path: fx.lang for fx in facts}, rows, imports, root)

    @classmethod
    def from_db(cls, conn: sqlite3.Connection) -> MemorySymbols:
        row = conn.execute("SELECT value FROM meta WHERE key = 'repo_root'").fetchone()
        root = Path(json.loads(row[0])) if row else None
        files = dict(conn.execute("SELECT path, lang FROM files ORDER BY path"))
        imports: dict[str, list[tuple]] = defaultdict(list)
        for path, *rest in conn.execute(
            "SELECT path, module, name, alias, wildcard, line FROM imports ORDER BY path, rowid"
        ):
            imports[path].append(ImportRow(*rest))
        rows = conn.execute(f"SELECT {', '.join(NODE_ROW)} FROM nodes ORDER BY path, start_line, rowid")
        return cls(conn, files, rows, dict(imports), root)

    @cached_property
    def index(self) -> ModuleIndex:
        return ModuleIndex(self._files, self._root)

    def file_nodes(self, path: str) -> list[Node]:
        return self._file_nodes.get(path, [])

    def children(self, path: str, parent: str, name: str) -> list[Node]:
        return self._children.get((parent, name), [])

    def named(self, name: str) -> list[Node]:
        return self._named.get(name, [])

    def named_where(self, name: str, column: str, value: str) -> list[Node]:
        key = (name, column, value)
        if key not in self._named_where:
            self._named_where[key] = [n for n in self._named.get(name, ()) if getattr(n, column) == value]
        return self._named_where[key]

    def node(self, node_id: str) -> Node | None:
        return self._by_id.get(node_id)

    def bases(self, class_id: str) -> list[str]:
        return self._bases_of.get(class_id, [])

    def forget_bases(self) -> None:
        """Load every class's bases at once (after the inheritance edges are written)."""
        self._bases_of = defaultdict(list)
        for src, dst in self.conn.execute(
            "SELECT src_id, dst_id FROM edges WHERE kind IN ('extends', 'implements') "
            "ORDER BY src_id, json_extract(meta_json, '$.line'), dst_id"
        ):
            self._bases_of[src].append(dst)

    def import_rows(self, path: str) -> list[ImportRow]:
        return self._imports.get(path, [])

    def signature(self, node_id: str) -> str:
        return self._signatures.get(node_id, "")

    def test_ids(self, path: str) -> list[str]:
        return self._tests.get(path, [])

    def in_non_test_file(self, node_id: str) -> bool:
        n = self._by_id.get(node_id)
        return n is not None and n.path in self._files and n.path not in self._test_files
