"""Confirm or replace the graph's `calls` edges with the targets a SCIP index names.

Tree-sitter resolution (extractor/rules.py) works from names, imports and annotations; a SCIP
indexer (scip-python is pyright, scip-typescript is the TypeScript compiler) knows each
expression's type. This module reads an index's occurrences and rewrites the calls edges they
decide, after Tree-sitter resolution has written its own:

- A definition occurrence of a global symbol maps the symbol to the graph node defined there:
  the innermost node whose span holds the line and whose name is the symbol's last descriptor
  (a TypeScript `Cls#<constructor>().` counts as its class, as a call `new Cls()` does in the
  graph). Symbols defined in an indexed document but at no graph node (variables, attributes,
  parameters) are "in repo, not callable"; global symbols defined in no indexed document are
  external (the standard library, dependencies).
- A call occurrence is a reference occurrence followed, on its line, by `(` (after optional
  `<...>` type arguments or `?.`). Its caller is the innermost graph node whose span holds the
  line (the node Tree-sitter attributes the call to); its site is (caller, the callee text).
- Every call occurrence that maps to a node gives an edge caller -> node, `via: scip`,
  confidence 1.0 (an existing Tree-sitter edge is confirmed: its meta is replaced). A node that
  is an abstract declaration gives way to the one nearest override that runs in its place
  (extractor/overrides.py), where there is one.
- A site whose call occurrences are all decided (each maps to a node or is external) is
  replaced: the caller's other calls edges to nodes of that name are dropped, and so are its
  `ambiguous` candidates of that name. A site with an undecided occurrence (a local variable,
  a parameter, an attribute holding a callable) keeps its Tree-sitter edges: the index does not
  say where such a call goes.
- `tests` edges follow the calls edges they derive from (a test function calling non-test code).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from extractor.overrides import Hierarchy
from extractor.scip_proto import Document, Occurrence, descriptor_name

EDGE_META_VIA = "scip"


@dataclass
class ScipEdgeStats:
    """What applying an index changed in the graph."""

    call_occurrences: int = 0  # call occurrences inside indexed graph files
    to_repo: int = 0  # ... whose symbol maps to a graph node
    external: int = 0  # ... whose symbol is defined outside the repository
    undecided: int = 0  # ... whose symbol is a local, parameter, attribute or unknown
    confirmed: int = 0  # edges Tree-sitter had, now via scip
    added: int = 0  # edges Tree-sitter lacked
    removed: int = 0  # Tree-sitter edges at decided sites that the index contradicts
    sites_decided: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Node:
    id: str
    type: str
    name: str
    start: int
    end: int


class _FileNodes:
    """A file's nodes, with the innermost node at each line."""

    def __init__(self, nodes: list[_Node]) -> None:
        self.nodes = nodes
        last = max((n.end for n in nodes), default=0)
        self._at: list[_Node | None] = [None] * (last + 2)
        for n in sorted(nodes, key=lambda n: (n.start - n.end, n.start)):  # widest first
            for line in range(max(n.start, 0), n.end + 1):
                self._at[line] = n
        self._named: dict[str, list[_Node]] = defaultdict(list)
        for n in nodes:
            self._named[n.name].append(n)

    def at(self, line: int) -> _Node | None:
        return self._at[line] if 0 <= line < len(self._at) else None

    def defined(self, name: str, line: int) -> _Node | None:
        """The innermost node named `name` whose span holds `line`."""
        inner = self.at(line)
        if inner is not None and inner.name == name:
            return inner
        holding = [n for n in self._named.get(name, ()) if n.start <= line <= n.end]
        return min(holding, key=lambda n: n.end - n.start) if holding else None


def _utf16_slice(text: str, start: int, end: int) -> str:
    """`text[start:end]` with SCIP's columns counted in UTF-16 code units (both indexers
    report the positions of JavaScript strings)."""
    if text.isascii():
        return text[start:end]
    raw = text.encode("utf-16-le")
    return raw[2 * start : 2 * end].decode("utf-16-le", errors="replace")


def _utf16_rest(text: str, end: int) -> str:
    if text.isascii():
        return text[end:]
    return text.encode("utf-16-le")[2 * end :].decode("utf-16-le", errors="replace")


def _is_call(rest: str) -> bool:
    """Whether the text after a name opens a call: `(`, `?.(`, or `<...>(` (type arguments)."""
    rest = rest.lstrip()
    if rest.startswith("?.("):
        return True
    if rest.startswith("<"):
        depth = 0
        for i, ch in enumerate(rest):
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth -= 1
                if depth == 0:
                    rest = rest[i + 1 :].lstrip()
                    break
            elif ch in "();{}=":
                return False
        else:
            return False
    return rest.startswith("(")


def _class_symbol(symbol: str) -> str:
    """A TypeScript constructor's symbol -> its class's (`pkg/Cls#`<constructor>`().` -> `pkg/Cls#`)."""
    for ctor in ("#`<constructor>`().", "#<constructor>()."):
        if symbol.endswith(ctor):
            return symbol[: -len(ctor) + 1]
    return symbol


def _load_nodes(conn: sqlite3.Connection, paths: set[str]) -> dict[str, _FileNodes]:
    by_path: dict[str, list[_Node]] = defaultdict(list)
    for node_id, typ, name, path, start, end in conn.execute(
        "SELECT id, type, name, path, start_line, end_line FROM nodes"
    ):
        if path in paths:
            by_path[path].append(_Node(node_id, typ, name, start, end))
    return {p: _FileNodes(ns) for p, ns in by_path.items()}


_CALLABLE = frozenset({"function", "method", "class"})


def apply_index(conn: sqlite3.Connection, root: Path, docs: list[Document]) -> ScipEdgeStats:
    """Rewrite the calls (and derived tests) edges that the index `docs` decides.

    `root` is the repository the graph indexes (source lines are read from it to tell calls
    from other references). Documents of files the graph does not hold are ignored.
    """
    stats = ScipEdgeStats()
    graph_files = {p for (p,) in conn.execute("SELECT path FROM files")}
    own = {_package(o.symbol) for d in docs for o in d.occurrences if o.is_definition} - {""}
    docs = [d for d in docs if d.path in graph_files]
    nodes = _load_nodes(conn, {d.path for d in docs})
    # 1. Symbols -> graph nodes, from definition occurrences.
    target: dict[str, str] = {}
    for doc in docs:
        file_nodes = nodes.get(doc.path)
        for occ in doc.occurrences:
            if not occ.is_definition or occ.symbol.startswith("local "):
                continue
            if file_nodes is None or occ.symbol in target:
                continue
            node = file_nodes.defined(descriptor_name(occ.symbol), occ.line + 1)
            if node is not None and node.type in _CALLABLE:
                target[_class_symbol(occ.symbol)] = node.id
    hierarchy = Hierarchy(conn, root)
    target = {symbol: hierarchy.runs_instead(node_id) for symbol, node_id in target.items()}
    # 2. Call occurrences -> per site, the targets and whether every occurrence is decided.
    site_targets: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)  # site -> target -> line
    undecided: set[tuple[str, str]] = set()
    src_path: dict[str, str] = {}
    for doc in docs:
        file_nodes = nodes.get(doc.path)
        if file_nodes is None:
            continue
        lines = _read_lines(root / doc.path)
        for occ in doc.occurrences:
            if occ.is_definition or not 0 <= occ.line < len(lines):
                continue
            text = lines[occ.line]
            if not _is_call(_utf16_rest(text, occ.end_col)):
                continue
            caller = file_nodes.at(occ.line + 1)
            if caller is None:
                continue
            name = _utf16_slice(text, occ.start_col, occ.end_col)
            site = (caller.id, name)
            src_path[caller.id] = doc.path
            stats.call_occurrences += 1
            dst = _resolve_symbol(occ, target)
            if dst is not None:
                stats.to_repo += 1
                site_targets[site].setdefault(dst, occ.line + 1)
            elif _package(occ.symbol) not in own and occ.symbol.endswith(_CALLABLE_SUFFIXES):
                stats.external += 1
                site_targets[site]  # noqa: B018  (a decided site, maybe with no repo target)
            else:
                stats.undecided += 1
                undecided.add(site)
    _rewrite(conn, site_targets, undecided, src_path, hierarchy, stats)
    return stats


_CALLABLE_SUFFIXES = ("#", ".")  # a type, a term or a method (`name().`); not a module or parameter


def _package(symbol: str) -> str:
    """A global symbol's `scheme manager name version` prefix ("" for a local symbol)."""
    parts = symbol.split(" ", 4)
    return " ".join(parts[:4]) if len(parts) == 5 and parts[0] != "local" else ""


def _resolve_symbol(occ: Occurrence, target: dict[str, str]) -> str | None:
    return target.get(_class_symbol(occ.symbol))


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _rewrite(
    conn: sqlite3.Connection,
    site_targets: dict[tuple[str, str], dict[str, int]],
    undecided: set[tuple[str, str]],
    src_path: dict[str, str],
    hierarchy: Hierarchy,
    stats: ScipEdgeStats,
) -> None:
    callers = sorted({c for c, _ in site_targets} | {c for c, _ in undecided})
    name_of: dict[str, str] = {}
    existing: dict[str, dict[str, str]] = defaultdict(dict)  # caller -> dst -> meta_json
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS scip_callers(id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM scip_callers")
    conn.executemany("INSERT INTO scip_callers VALUES(?)", [(c,) for c in callers])
    for src, dst, meta, dst_name in conn.execute(
        "SELECT e.src_id, e.dst_id, e.meta_json, n.name FROM edges e JOIN nodes n ON n.id = e.dst_id "
        "WHERE e.kind = 'calls' AND e.src_id IN (SELECT id FROM scip_callers)"
    ):
        existing[src][dst] = meta
        name_of[dst] = dst_name
    remove: set[tuple[str, str]] = set()
    decided: dict[str, set[str]] = defaultdict(set)  # caller -> callee names decided
    for (caller, name), targets in site_targets.items():
        if (caller, name) in undecided:
            continue
        stats.sites_decided += 1
        decided[caller].add(name)
        for dst in existing.get(caller, {}):
            if name_of.get(dst) == name and dst not in targets and not hierarchy.overridden_by(dst, targets):
                remove.add((caller, dst))
    add: dict[tuple[str, str], int] = {}
    for (caller, _), targets in site_targets.items():
        for dst, line in targets.items():
            add.setdefault((caller, dst), line)
    remove -= set(add)
    stats.removed = len(remove)
    conn.executemany(
        "DELETE FROM edges WHERE src_id = ? AND dst_id = ? AND kind IN ('calls', 'tests')", sorted(remove)
    )
    rows = []
    for (caller, dst), line in sorted(add.items()):
        if dst in existing.get(caller, {}):
            stats.confirmed += 1
        else:
            stats.added += 1
        meta = json.dumps({"confidence": 1.0, "line": line, "via": EDGE_META_VIA}, sort_keys=True)
        rows.append((caller, dst, "calls", src_path[caller], meta))
    conn.executemany("INSERT OR REPLACE INTO edges VALUES(?,?,?,?,?)", rows)
    _tests_edges(conn, [(c, d, p) for c, d, _, p, _ in rows], hierarchy)
    _prune_ambiguous(conn, decided)


def _tests_edges(conn: sqlite3.Connection, calls: list[tuple[str, str, str]], hierarchy: Hierarchy) -> None:
    """A test function (or test module) calling non-test code tests it (as extractor/resolve.py
    derives for Tree-sitter's edges)."""
    if not calls:
        return
    tests = {
        i
        for (i,) in conn.execute(
            "SELECT id FROM nodes WHERE json_extract(meta_json, '$.test') = 1 "
            "AND type IN ('function', 'method', 'module')"
        )
    }
    conn.executemany(
        "INSERT OR IGNORE INTO edges VALUES(?,?,'tests',?,'{}')",
        [
            (s, d, p)
            for s, d, p in calls
            if s in tests and (path := hierarchy.path(d)) is not None and path not in hierarchy.test_files
        ],
    )


def _prune_ambiguous(conn: sqlite3.Connection, decided: dict[str, set[str]]) -> None:
    """Drop a caller's `ambiguous` candidates at sites the index decided."""
    for caller, names in sorted(decided.items()):
        row = conn.execute("SELECT meta_json FROM nodes WHERE id = ?", (caller,)).fetchone()
        if row is None or '"ambiguous"' not in row[0]:
            continue
        meta = json.loads(row[0])
        kept = [a for a in meta.get("ambiguous", []) if a.get("name") not in names]
        if len(kept) == len(meta.get("ambiguous", [])):
            continue
        if kept:
            meta["ambiguous"] = kept
        else:
            meta.pop("ambiguous", None)
        conn.execute(
            "UPDATE nodes SET meta_json = ? WHERE id = ?", (json.dumps(meta, sort_keys=True), caller)
        )
