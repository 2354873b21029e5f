"""Resolution's orchestration: which references to (re)resolve, in which order, in which
processes, and the SQL writes of what the rules (extractor/rules.py) decide.

A fresh build resolves from its parsed facts over an in-memory symbol table; an incremental
run reads the references of the files it redoes and, with many of them, the whole graph at once
(extractor/symbols.py). Inheritance is resolved first (method lookups through `self` need every
class's bases), then calls, throws, imports and tests edges, in forked processes when there
are enough references.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from extractor import store
from extractor.modules import FAMILIES
from extractor.parse import CLASS_LIKE, FileFacts
from extractor.rules import Resolver
from extractor.symbols import MemorySymbols, SqlSymbols


class RefRow(NamedTuple):
    """One reference to resolve: its refs-table rowid and columns."""

    rowid: int
    src: str
    kind: str
    name: str
    receiver: str
    line: int


REF_EDGE_KINDS = ("calls", "throws", "extends", "implements", "tests")
_CLEAR_META = store.CLEAR_RESOLVED_META


@dataclass
class Resolution:
    """What resolution decided besides the edges it wrote: per reference, how it resolved (`via`,
    keyed by the reference's rowid), and per node, keys to merge into its meta_json."""

    stats: dict[str, int]
    via: list[tuple[str, int]]
    meta: dict[str, dict[str, object]]


Progress = Callable[[list[tuple[str, int]], int], None]
"""Told, in order, the `via` decided since its last call and how many of the files resolved
(in their order) are now done: every reference of theirs has its `via` and every edge from
them is written."""


def resolve_files(
    conn: sqlite3.Connection,
    paths: list[str],
    partial: dict[str, set[str]] | None = None,
    imports_of: list[str] | None = None,
    workers: int = 1,
) -> dict[str, int]:
    """(Re)build the edges that start in `paths`, and those that start at the `partial` nodes.

    `paths` are whole files: every edge from them is rebuilt (the caller has deleted the old
    ones). `partial` maps other files to some of their nodes whose reference edges alone must be
    rebuilt (an incremental run's name-triggered re-resolution); a node's edges are always
    rebuilt together, in reference order, so the result equals a full build's. `imports_of`:
    further files whose file-level imports/depends_on edges alone are rebuilt. With many
    references to redo, the graph is read into memory at once and, given `workers` > 1, the
    calls are resolved in forked processes. Returns counts of how references resolved.
    """
    path_set = set(paths)
    partial = {p: ids for p, ids in (partial or {}).items() if p not in path_set}
    imports_of = [p for p in imports_of or [] if p not in path_set]
    conn.executemany(
        "DELETE FROM edges WHERE src_id = ? AND src_path = ? AND kind IN ('imports', 'depends_on')",
        [(p, p) for p in imports_of],
    )
    conn.executemany(f"UPDATE nodes SET meta_json = {_CLEAR_META} WHERE path = ?", [(p,) for p in paths])
    part_rows = [(i, p) for p, ids in partial.items() for i in sorted(ids)]
    conn.executemany(f"UPDATE nodes SET meta_json = {_CLEAR_META} WHERE id = ?", [(i,) for i, _ in part_rows])
    conn.executemany(
        f"DELETE FROM edges WHERE src_id = ? AND src_path = ? AND kind IN ({','.join('?' * len(REF_EDGE_KINDS))})",
        [(i, p, *REF_EDGE_KINDS) for i, p in part_rows],
    )
    ref_sql = "SELECT rowid, src_id, kind, name, receiver, line FROM refs WHERE path = ? ORDER BY rowid"
    ref_rows = {p: [RefRow(*r) for r in conn.execute(ref_sql, (p,))] for p in paths}
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS partial_ids(id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM partial_ids")
    conn.executemany("INSERT INTO partial_ids VALUES(?)", [(i,) for i, _ in part_rows])
    part_sql = (
        "SELECT rowid, src_id, kind, name, receiver, line FROM refs "
        "WHERE path = ? AND src_id IN (SELECT id FROM partial_ids) ORDER BY rowid"
    )
    for p in partial:
        ref_rows[p] = [RefRow(*r) for r in conn.execute(part_sql, (p,))]
    # Read after the deletes above: both resolvers see the graph as a single pass would.
    many = sum(len(rows) for rows in ref_rows.values()) >= _MEMORY_MIN_REFS
    resolver = Resolver(MemorySymbols.from_db(conn) if many else SqlSymbols(conn))
    result = _resolve(conn, resolver, paths, partial, ref_rows, imports_of, workers=workers)
    conn.executemany("UPDATE refs SET via = ? WHERE rowid = ?", result.via)
    for node_id, keys in result.meta.items():
        _merge_meta(conn, node_id, keys)
    return result.stats


def resolve_facts(
    conn: sqlite3.Connection,
    facts: list[FileFacts],
    root: Path | None,
    workers: int = 1,
    while_waiting: Callable[[], None] | None = None,
    on_progress: Progress | None = None,
) -> Resolution:
    """Resolve a fresh build from its parsed facts, before their nodes and refs are stored.

    Edges are written to `conn`; the refs' `via` (keyed by 1-based position in `facts` order,
    which is their rowid once stored) and the nodes' meta additions come back for the caller to
    store with the rows, which saves updating hundreds of thousands of rows afterwards. With
    `workers` > 1 the second phase (calls, imports, tests) runs in forked processes, and
    `while_waiting` (the caller's writes that need no resolution) runs meanwhile; it runs in
    any case, before resolution returns, and must not touch the edges table. `on_progress`
    sees the `via` as they are decided, with how many files (in `facts` order) are done, so
    the caller can store finished files' refs while later ones still resolve.
    """
    resolver = Resolver(MemorySymbols.from_facts(conn, facts, root))
    ref_rows: dict[str, list[RefRow]] = {}
    rowid = 0
    for fx in facts:
        rows = []
        for r in fx.refs:
            rowid += 1
            rows.append(RefRow(rowid, *r[1:]))
        ref_rows[fx.path] = rows
    return _resolve(
        conn,
        resolver,
        [fx.path for fx in facts],
        {},
        ref_rows,
        workers=workers,
        while_waiting=while_waiting,
        on_progress=on_progress,
    )


def _edge_meta(line: int, via: str, confidence: float, candidates: int) -> str:
    """json.dumps({...}, sort_keys=True) of a reference edge's meta, without json's overhead."""
    head = f'{{"candidates": {candidates}, ' if candidates > 1 else "{"
    return f'{head}"confidence": {confidence!r}, "line": {line}, "via": "{via}"}}'


@dataclass
class _Part:
    """Resolution results of some files: edges in insertion order, and what goes to refs/nodes."""

    edges: list[tuple] = field(default_factory=list)
    via: list[tuple[str, int]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    raises: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    bases_ext: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    ambiguous: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))

    def merge(self, other: _Part) -> None:
        self.edges.extend(other.edges)
        self.via.extend(other.via)
        for k, v in other.stats.items():
            self.stats[k] += v
        for src, names in other.raises.items():
            self.raises[src] |= names
        for src, names in other.bases_ext.items():
            self.bases_ext[src] |= names
        for src, calls in other.ambiguous.items():
            self.ambiguous[src].extend(calls)


def _resolve_refs(
    resolver: Resolver,
    every: list[str],
    langs: dict[str, str],
    ref_rows: dict[str, list[RefRow]],
    phase: set[str],
    out: _Part,
) -> None:
    """Resolve the references of kinds `phase` in files `every` (in order) into `out`."""
    for path in every:
        lang = langs[path]
        for rowid, src, kind, name, receiver, line in ref_rows[path]:
            if kind not in phase:
                continue
            if src.startswith("@type:"):
                types = [n for n in resolver.top_level(path, src[6:]) if n.type in CLASS_LIKE] or [
                    n for n in resolver.named(src[6:]) if n.type in CLASS_LIKE and n.lang in FAMILIES[lang]
                ]
                if not types:
                    continue
                src = types[0].id
            targets, via = resolver.resolve(path, lang, src, kind, name, receiver)
            out.stats[via] += 1
            out.via.append((via, rowid))
            if via == "ambiguous":
                out.ambiguous[src].append(
                    {
                        "name": name,
                        "line": line,
                        "candidates": [t.id for t in targets],
                        "confidence": round(1 / len(targets), 3),
                    }
                )
                continue
            if not targets:
                if kind == "throws":
                    out.raises[src].add(name)
                elif kind in ("extends", "implements"):
                    out.bases_ext[src].add(f"{receiver}.{name}" if receiver else name)
                continue
            conf = (
                1.0
                if via in ("scope", "import")
                else round(0.5 if len(targets) == 1 else 1 / len(targets), 3)
            )
            meta = _edge_meta(line, via, conf, len(targets))
            for t in targets:
                if t.id == src and kind != "calls":
                    continue
                out.edges.append((src, t.id, kind, path, meta))


def _calls_imports_tests(
    resolver: Resolver,
    every: list[str],
    import_paths: list[str],
    langs: dict[str, str],
    ref_rows: dict[str, list[RefRow]],
    path_set: set[str],
    partial: dict[str, set[str]],
) -> _Part:
    """The second phase, once every class's bases are known: calls and throws, file imports and
    depends_on, and tests edges. Files are independent here, so it may run in parts."""
    out = _Part()
    _resolve_refs(resolver, every, langs, ref_rows, {"calls", "throws"}, out)
    # Imports: file -> imported symbol or module file; depends_on: file -> file.
    edges = out.edges
    for path in import_paths:
        lang = langs[path]
        names, stars = resolver.bindings(path, lang)
        deps: set[str] = set()
        for b in names.values():
            if b.external:
                continue
            deps.update(b.modules)
            syms = resolver.in_module(b.modules, b.symbol) if b.symbol else []
            for t in syms or [resolver.node(m) for m in b.modules]:
                if t is not None and t.path != path:
                    edges.append((path, t.id, "imports", path, "{}"))
        for star in stars:
            deps.update(star)
            for m in star:
                edges.append((path, m, "imports", path, '{"wildcard": true}'))
        for d in sorted(deps - {path}):
            edges.append((path, d, "depends_on", path, "{}"))
    # Tests: a test function tests the non-test code it calls.
    tests = {i for p in every for i in resolver.test_ids(p) if p in path_set or i in partial[p]}
    non_test_cache: dict[str, bool] = {}
    for src, dst, kind, path, _ in list(edges):
        if kind != "calls" or src not in tests:
            continue
        if dst not in non_test_cache:
            non_test_cache[dst] = resolver.in_non_test_file(dst)
        if non_test_cache[dst]:
            edges.append((src, dst, "tests", path, "{}"))
    return out


# Phase two in forked worker processes: the parent's resolver (its in-memory graph) is inherited
# by fork, not pickled; only each part's results travel back.
_FORKED: tuple | None = None
_PARALLEL_MIN_REFS = 20_000  # below this, starting processes costs more than it saves
_PARTS_PER_WORKER = 4
_MEMORY_MIN_REFS = 10_000  # below this, lazy SQL reads cost less than reading the whole graph


def _forked_part(bounds: tuple[int, int, int, int]) -> _Part:
    resolver, every, import_paths, langs, ref_rows, path_set, partial = _FORKED  # type: ignore[misc]
    a, b, c, d = bounds
    return _calls_imports_tests(resolver, every[a:b], import_paths[c:d], langs, ref_rows, path_set, partial)


def _split(items: list[str], weight: dict[str, int], parts: int) -> list[tuple[int, int]]:
    """Contiguous slices of `items` with about equal total weight (order kept: edges are
    inserted part after part, as a single pass would)."""
    total = sum(weight.get(p, 0) + 1 for p in items)
    bounds, start, acc = [], 0, 0
    for i, p in enumerate(items):
        acc += weight.get(p, 0) + 1
        if len(bounds) < parts - 1 and acc >= total * (len(bounds) + 1) / parts:
            bounds.append((start, i + 1))
            start = i + 1
    bounds.append((start, len(items)))
    return bounds + [(len(items), len(items))] * (parts - len(bounds))


def _phase_two(
    resolver: Resolver,
    every: list[str],
    import_paths: list[str],
    langs: dict[str, str],
    ref_rows: dict[str, list[RefRow]],
    path_set: set[str],
    partial: dict[str, set[str]],
    workers: int,
    while_waiting: Callable[[], None] | None = None,
) -> Iterator[tuple[int, _Part]]:
    """The second phase's results part by part, in file order: (files of `every` done, part).

    In parallel, there are several parts per worker, so that the caller stores one part's
    results while the workers resolve the next ones, instead of all of them at the end. The
    order edges are written in does not change the graph: edges that collide on (src, dst,
    kind) leave from one node, so they come from one part, in a single pass's order.
    """
    refs = {p: len(rows) for p, rows in ref_rows.items()}
    if (
        workers <= 1
        or sum(refs.values()) < _PARALLEL_MIN_REFS
        or not isinstance(resolver.table, MemorySymbols)  # a forked SQL reader would share the connection
        or "fork" not in mp.get_all_start_methods()
    ):
        if while_waiting is not None:
            while_waiting()
        yield (
            len(every),
            _calls_imports_tests(resolver, every, import_paths, langs, ref_rows, path_set, partial),
        )
        return
    global _FORKED
    parts = workers * _PARTS_PER_WORKER
    bounds = [
        (*r, *i) for r, i in zip(_split(every, refs, parts), _split(import_paths, {}, parts), strict=True)
    ]
    _FORKED = (resolver, every, import_paths, langs, ref_rows, path_set, partial)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            pending = pool.imap(_forked_part, bounds, chunksize=1)
            if while_waiting is not None:
                while_waiting()
            for (_, done, _, _), part in zip(bounds, pending, strict=True):
                yield done, part
    finally:
        _FORKED = None


def _resolve(
    conn: sqlite3.Connection,
    resolver: Resolver,
    paths: list[str],
    partial: dict[str, set[str]],
    ref_rows: dict[str, list[RefRow]],
    imports_of: list[str] | None = None,
    workers: int = 1,
    while_waiting: Callable[[], None] | None = None,
    on_progress: Progress | None = None,
) -> Resolution:
    path_set = set(paths)
    every = [*paths, *sorted(partial)]
    import_paths = [*paths, *(imports_of or [])]
    langs = {p: resolver.index.files[p] for p in [*every, *import_paths]}
    first = _Part()
    # Structure: defined_in, and the owner link of out-of-line methods.
    for path in paths:
        for n in resolver.file_nodes(path):
            if n.type == "module":
                continue
            if n.owner:
                cls = resolver.enclosing_class(n)
                first.edges.append((n.id, cls.id if cls else n.parent, "defined_in", path, "{}"))
            else:
                first.edges.append((n.id, n.parent, "defined_in", path, "{}"))
    # Inheritance first: method lookups through `self` need the bases of every class.
    _resolve_refs(resolver, every, langs, ref_rows, {"extends", "implements"}, first)
    _write(conn, first.edges)
    first.edges = []
    if on_progress is not None:
        on_progress(first.via, 0)
    resolver.forget_bases()
    for done, part in _phase_two(
        resolver, every, import_paths, langs, ref_rows, path_set, partial, workers, while_waiting
    ):
        _write(conn, part.edges)
        part.edges = []
        if on_progress is not None:
            on_progress(part.via, done)
        first.merge(part)
    meta: dict[str, dict[str, object]] = defaultdict(dict)
    for src, names_ in first.raises.items():
        meta[src]["raises"] = sorted(names_)
    for src, calls in first.ambiguous.items():
        meta[src]["ambiguous"] = sorted(calls, key=lambda c: (c["line"], c["name"]))
    for src, names_ in first.bases_ext.items():
        meta[src]["external_bases"] = sorted(names_)
    return Resolution(dict(first.stats), first.via, dict(meta))


def _write(conn: sqlite3.Connection, edges: list[tuple]) -> None:
    conn.executemany("INSERT OR IGNORE INTO edges VALUES(?,?,?,?,?)", edges)


def _merge_meta(conn: sqlite3.Connection, node_id: str, keys: dict[str, object]) -> None:
    row = conn.execute("SELECT meta_json FROM nodes WHERE id = ?", (node_id,)).fetchone()
    if row is None:
        return
    meta = json.loads(row[0])
    meta.update(keys)
    conn.execute("UPDATE nodes SET meta_json = ? WHERE id = ?", (json.dumps(meta, sort_keys=True), node_id))
