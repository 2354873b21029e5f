"""Turn raw references into edges: through scopes, imports and inheritance, not bare names.

Order of lookup for a reference `receiver.name` made from node S in file F:
1. `self`/`this`/`cls`/`super()`: members of S's class, then of its ancestors (extends edges).
2. a receiver bound by F's imports (module alias, or a class): members of that module or class.
3. no receiver: enclosing scopes, F's top-level names (and its package folder's for Go/Java),
   F's imports (following re-exports and star imports), included headers.
4. nothing found in scope, for a call on an object of unknown type (or a bare name in C/C++):
   methods of that name across the repo. One candidate becomes an edge with confidence 0.5;
   two to MAX_CANDIDATES stay in the caller's meta_json as `ambiguous` (each 1/n). `via`
   (global/ambiguous/unresolved) records this, so an incremental run knows which references
   depend on names defined elsewhere.
Resolution reads the graph through SQL with small caches, so an incremental run touches only
the rows it needs.
"""

from __future__ import annotations

import builtins
import json
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from extractor import languages
from extractor.modules import FAMILIES, ModuleIndex, implementation_files, resolve_module
from extractor.parse import CLASS_LIKE

MAX_CANDIDATES = 5
CALLABLE = ("function", "method", "class", "struct", "interface", "enum", "trait")
_MAX_REEXPORT_DEPTH = 4
_GO_RECEIVER = re.compile(r"func\s*\(\s*(\w+)")
# Receivers that name a language's built-in types (`ValueError.__init__`, `str.join`): never repo code.
BUILTIN_RECEIVERS = {"python": set(dir(builtins))}


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    name: str
    path: str
    lang: str
    parent: str
    owner: str


@dataclass
class Binding:
    """What a local name means in a file: module files, or symbol(s) inside module files."""

    modules: list[str]
    symbol: str = ""  # imported name inside `modules` ('' = the module itself)
    external: bool = False


class Resolver:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._file_nodes: dict[str, list[Node]] = {}
        self._children: dict[tuple[str, str], list[Node]] = defaultdict(list)
        self._named: dict[str, list[Node]] = {}
        self._bindings: dict[str, tuple[dict[str, Binding], list[list[str]]]] = {}
        self._bases: dict[str, list[str]] = {}
        self._by_id: dict[str, Node | None] = {}

    # ---- graph reads ---------------------------------------------------------------------
    @cached_property
    def index(self) -> ModuleIndex:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'repo_root'").fetchone()
        root = Path(json.loads(row[0])) if row else None
        return ModuleIndex(dict(self.conn.execute("SELECT path, lang FROM files")), root)

    def _rows(self, sql: str, args: tuple) -> list[Node]:
        return [
            Node(*r)
            for r in self.conn.execute(
                f"SELECT id, type, name, path, lang, parent, owner FROM nodes {sql}", args
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

    # ---- scopes --------------------------------------------------------------------------
    def top_level(self, path: str, name: str) -> list[Node]:
        return [n for n in self.children(path, path, name) if not n.owner]

    def package_top_level(self, path: str, lang: str, name: str) -> list[Node]:
        if not languages.LANGUAGES[lang].package_is_dir:
            return []
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        out = []
        for other in self.index.package(folder, lang):
            if other != path:
                out.extend(self.top_level(other, name))
        return out

    def members(self, class_id: str, name: str, seen: set[str] | None = None) -> list[Node]:
        """`name` defined in the class (lexically or via owner) or, failing that, in its ancestors."""
        seen = seen if seen is not None else set()
        if class_id in seen:
            return []
        seen.add(class_id)
        cls = self.node(class_id)
        if cls is None:
            return []
        found = list(self.children(cls.path, class_id, name))
        if not found:  # Go receivers, Rust impl blocks, C++ out-of-line: owner names the type
            found = [
                n
                for n in self.named(name)
                if n.owner == cls.name
                and FAMILIES[n.lang] >= {cls.lang}
                and (
                    n.path == cls.path
                    or n.path.rsplit("/", 1)[0] == cls.path.rsplit("/", 1)[0]
                    or n.lang in ("c", "cpp")
                )
            ]
        if found:
            return found
        for base in self.bases(class_id):
            found = self.members(base, name, seen)
            if found:
                return found
        return []

    def enclosing_class(self, src: Node | None) -> Node | None:
        while src is not None:
            if src.type in CLASS_LIKE:
                return src
            if src.owner:
                owners = [
                    n
                    for n in self.named(src.owner)
                    if n.type in CLASS_LIKE and FAMILIES[n.lang] >= {src.lang}
                ]
                same = [n for n in owners if n.path == src.path] or owners
                return same[0] if same else None
            src = self.node(src.parent) if src.parent and "::" in src.parent else None
        return None

    # ---- imports -------------------------------------------------------------------------
    def bindings(self, path: str, lang: str) -> tuple[dict[str, Binding], list[list[str]]]:
        """Local name -> Binding, plus the module file lists brought in by star/wildcard imports."""
        if path in self._bindings:
            return self._bindings[path]
        names: dict[str, Binding] = {}
        stars: list[list[str]] = []
        rows = self.conn.execute(
            "SELECT module, name, alias, wildcard FROM imports WHERE path = ? ORDER BY rowid", (path,)
        )
        for module, name, alias, wildcard in rows.fetchall():
            mods = resolve_module(self.index, module, path, lang)
            if lang in ("c", "cpp"):  # an include brings the header's names, defined in its .c/.cpp
                if mods:
                    stars.append(mods)
                    impl = [p for p in implementation_files(self.index, mods) if p != path]
                    if impl:
                        stars.append(impl)
                continue
            if wildcard:
                if alias:
                    names[alias] = Binding(mods, external=not mods)
                elif mods:
                    stars.append(mods)
                continue
            if name:
                sep = {"python": ".", "java": ".", "rust": "::"}.get(lang, "/")
                sub_spec = module + name if lang == "python" and module.endswith(".") else module + sep + name
                sub = resolve_module(self.index, sub_spec, path, lang)
                if sub and not any(self.top_level(p, name) for p in sub):
                    names[alias or name] = Binding(sub)
                elif sub:
                    names[alias or name] = Binding(sub, symbol=name)
                else:
                    names[alias or name] = Binding(mods, symbol=name, external=not mods)
            else:
                local = alias or (
                    module.rstrip("/").replace("::", "/").split("/")[-1] if lang in ("go", "rust") else module
                )
                names[local] = Binding(mods, external=not mods)
                if lang == "python" and not alias and "." in module:
                    head = module.split(".")[0]
                    names.setdefault(
                        head, Binding(resolve_module(self.index, head, path, lang), external=True)
                    )
        self._bindings[path] = (names, stars)
        return names, stars

    def in_module(self, paths: list[str], name: str, depth: int = 0) -> list[Node]:
        """`name` as seen from outside modules `paths`: their top-level defs, re-exports, star imports."""
        found = [n for p in paths for n in self.top_level(p, name)]
        if not found:  # Java `import static a.B.m`: members of the file's top-level classes
            found = [
                m
                for p in paths
                if self.index.files.get(p) == "java"
                for c in self.file_nodes(p)
                if c.parent == p and c.type in CLASS_LIKE
                for m in self.file_nodes(p)
                if m.parent == c.id and m.name == name
            ]
        if found or depth >= _MAX_REEXPORT_DEPTH:
            return found
        for p in paths:
            lang = self.index.files.get(p, "")
            if not lang:
                continue
            names, stars = self.bindings(p, lang)
            b = names.get(name)
            if b is not None and not b.external:
                found.extend(self.in_module(b.modules, b.symbol, depth + 1) if b.symbol else [])
            for star in stars:
                found.extend(self.in_module(star, name, depth + 1))
        return found

    # ---- references ----------------------------------------------------------------------
    def resolve(
        self, path: str, lang: str, src_id: str, kind: str, name: str, receiver: str
    ) -> tuple[list[Node], str]:
        """Targets of one reference and how they were found (scope/import/global/external/none)."""
        spec = languages.LANGUAGES[lang]
        want = CLASS_LIKE if kind in ("extends", "implements", "throws") else set(CALLABLE)
        src = self.node(src_id) if "::" in src_id else None

        def keep(nodes: list[Node]) -> list[Node]:
            return [n for n in nodes if n.type in want and n.lang in FAMILIES[lang]]

        if (
            receiver in spec.self_names
            or receiver == "super"
            or receiver.startswith("super(")
            or self._is_receiver_var(src, receiver)
        ):
            cls = self.enclosing_class(src)
            if cls is not None:
                if receiver.startswith("super"):
                    hits = [m for b in self.bases(cls.id) for m in self.members(b, name)][:1]
                else:
                    hits = self.members(cls.id, name)
                if keep(hits):
                    return keep(hits), "scope"
            # Not in the repo's part of the class lineage: inherited from an external base or set
            # dynamically. A repo-wide guess by name would be wrong more often than right.
            return [], "none"
        if receiver:
            target = self._receiver(path, lang, receiver, src)
            if target == "external":
                return [], "external"
            if isinstance(target, list):
                hits = keep(self.in_module(target, name))
                return (hits, "import") if hits else ([], "none")
            if isinstance(target, Node):
                hits = keep(self.members(target.id, name))
                if hits:
                    return hits, "import"
            if target is None and lang in ("c", "cpp"):  # `ns::f()`: a namespace, not an object
                hits = keep(self._bare_in_includes(path, lang, name))
                if hits:
                    return hits, "import"
            return self._global(lang, name, src, bare=False, receiver=receiver)
        # Bare name: lexical scopes first, innermost out.
        scope = src
        while scope is not None:
            local = list(self.children(path, scope.id, name))
            if scope.type in CLASS_LIKE and not spec.class_scoped_calls:
                local = [n for n in local if n.type in CLASS_LIKE]
            if scope.type in CLASS_LIKE and spec.class_scoped_calls and not local:
                local = self.members(scope.id, name)
            if keep(local):
                return keep(local), "scope"
            scope = self.node(scope.parent) if scope.parent and "::" in scope.parent else None
        if spec.class_scoped_calls and src is not None:
            cls = self.enclosing_class(src)
            if cls is not None and keep(self.members(cls.id, name)):
                return keep(self.members(cls.id, name)), "scope"
        hits = keep(self.top_level(path, name))
        if hits:
            return hits, "scope"
        names, stars = self.bindings(path, lang)
        b = names.get(name)
        if b is not None:
            if b.external:
                return [], "external"
            hits = keep(self.in_module(b.modules, b.symbol or name))
            if hits:
                return hits, "import"
        for star in stars:
            hits = keep(self.in_module(star, name))
            if hits:
                return hits, "import"
        hits = keep(self.package_top_level(path, lang, name))
        if hits:
            return hits, "scope"
        return self._global(lang, name, src, bare=True)

    def _receiver(
        self, path: str, lang: str, receiver: str, src: Node | None
    ) -> list[str] | Node | str | None:
        """What a dotted receiver denotes: module files, a class node, 'external', or None (unknown)."""
        names, _ = self.bindings(path, lang)
        if receiver in names:
            b = names[receiver]
            if b.external:
                return "external"
            if not b.symbol:
                return b.modules
            cls = [n for n in self.in_module(b.modules, b.symbol) if n.type in CLASS_LIKE]
            return cls[0] if cls else None
        head, _, last = receiver.rpartition(".")
        if head:
            outer = self._receiver(path, lang, head, src)
            if outer == "external":
                return "external"
            if isinstance(outer, list):
                cls = [n for n in self.in_module(outer, last) if n.type in CLASS_LIKE]
                if cls:
                    return cls[0]
                sub = resolve_module(self.index, f"{head}.{last}", path, lang) if lang == "python" else []
                return sub or None
            return None
        hits, _ = self.resolve(path, lang, src.id if src else path, "extends", receiver, "")
        if not hits and receiver in BUILTIN_RECEIVERS.get(lang, ()):
            return "external"
        return hits[0] if len(hits) == 1 else None

    def _bare_in_includes(self, path: str, lang: str, name: str) -> list[Node]:
        return [n for star in self.bindings(path, lang)[1] for n in self.in_module(star, name)]

    def _is_receiver_var(self, src: Node | None, receiver: str) -> bool:
        """Go names its receiver (`func (s *Server) Run()`): `s` means this object inside the method."""
        while src is not None and src.lang == "go":
            if src.owner:
                row = self.conn.execute("SELECT signature FROM nodes WHERE id = ?", (src.id,)).fetchone()
                m = _GO_RECEIVER.match(row[0] if row else "")
                return bool(m) and m.group(1) == receiver
            src = self.node(src.parent) if "::" in src.parent else None
        return False

    def _lineage(self, class_id: str) -> set[str]:
        """A class and all its ancestors."""
        out, todo = set(), [class_id]
        while todo:
            c = todo.pop()
            if c not in out:
                out.add(c)
                todo.extend(self.bases(c))
        return out

    def _global(
        self, lang: str, name: str, src: Node | None, bare: bool, receiver: str = ""
    ) -> tuple[list[Node], str]:
        """Candidates by name across the repo, used only where scope and imports say nothing.

        A bare name reaches other files only through link-time globals (C/C++); a call on an
        object of unknown type may reach any method of that name. One candidate becomes an edge
        (confidence 0.5); several stay candidates in the caller's meta_json ('ambiguous').
        """
        if bare and lang not in ("c", "cpp"):
            return [], "none"
        family = FAMILIES[lang]
        want = ("function",) if bare else ("method",)
        cands = [
            n
            for n in self.named(name)
            if n.lang in family and n.type in want and (src is None or n.id != src.id)
        ]
        if not bare and src is not None and receiver.split(".")[0] in languages.LANGUAGES[lang].self_names:
            # `this.items.get()`: a field's type is unknown, but it is rarely the object's own class.
            cls = self.enclosing_class(src)
            own = self._lineage(cls.id) if cls is not None else set()
            cands = [n for n in cands if n.parent not in own]
        if len(cands) == 1:
            return cands, "global"
        if 1 < len(cands) <= MAX_CANDIDATES:
            return cands, "ambiguous"
        return [], "unresolved"


REF_EDGE_KINDS = ("calls", "throws", "extends", "implements", "tests")


def resolve_files(
    conn: sqlite3.Connection, paths: list[str], partial: dict[str, set[str]] | None = None
) -> dict[str, int]:
    """(Re)build the edges that start in `paths`, and those that start at the `partial` nodes.

    `paths` are whole files: every edge from them is rebuilt (the caller has deleted the old
    ones). `partial` maps other files to some of their nodes whose reference edges alone must be
    rebuilt (an incremental run's name-triggered re-resolution); a node's edges are always
    rebuilt together, in reference order, so the result equals a full build's. Returns counts
    of how references resolved.
    """
    partial = {p: ids for p, ids in (partial or {}).items() if p not in set(paths)}
    resolver = Resolver(conn)
    stats: dict[str, int] = defaultdict(int)
    every = [*paths, *sorted(partial)]
    langs = {p: resolver.index.files[p] for p in every}
    edges: list[tuple] = []
    via_updates: list[tuple] = []

    def add(src: str, dst: str, kind: str, path: str, meta: dict) -> None:
        edges.append((src, dst, kind, path, json.dumps(meta, sort_keys=True) if meta else "{}"))

    clear = "json_remove(meta_json, '$.raises', '$.external_bases', '$.ambiguous')"
    conn.executemany(f"UPDATE nodes SET meta_json = {clear} WHERE path = ?", [(p,) for p in paths])
    part_rows = [(i, p) for p, ids in partial.items() for i in sorted(ids)]
    conn.executemany(f"UPDATE nodes SET meta_json = {clear} WHERE id = ?", [(i,) for i, _ in part_rows])
    conn.executemany(
        f"DELETE FROM edges WHERE src_id = ? AND src_path = ? AND kind IN ({','.join('?' * len(REF_EDGE_KINDS))})",
        [(i, p, *REF_EDGE_KINDS) for i, p in part_rows],
    )
    # Structure: defined_in, and the owner link of out-of-line methods.
    for path in paths:
        for n in resolver.file_nodes(path):
            if n.type == "module":
                continue
            if n.owner:
                cls = resolver.enclosing_class(n)
                add(n.id, cls.id if cls else n.parent, "defined_in", path, {})
            else:
                add(n.id, n.parent, "defined_in", path, {})
    # Inheritance first: method lookups through `self` need the bases of every class.
    ref_sql = "SELECT rowid, src_id, kind, name, receiver, line FROM refs WHERE path = ? ORDER BY rowid"
    ref_rows = {p: conn.execute(ref_sql, (p,)).fetchall() for p in paths}
    for p, ids in partial.items():
        ref_rows[p] = [r for r in conn.execute(ref_sql, (p,)) if r[1] in ids]
    raises: dict[str, set[str]] = defaultdict(set)
    bases_ext: dict[str, set[str]] = defaultdict(set)
    ambiguous: dict[str, list[dict]] = defaultdict(list)

    def run(phase: set[str]) -> None:
        for path in every:
            lang = langs[path]
            for rowid, src, kind, name, receiver, line in ref_rows[path]:
                if kind not in phase:
                    continue
                if src.startswith("@type:"):
                    types = [n for n in resolver.top_level(path, src[6:]) if n.type in CLASS_LIKE] or [
                        n
                        for n in resolver.named(src[6:])
                        if n.type in CLASS_LIKE and n.lang in FAMILIES[lang]
                    ]
                    if not types:
                        continue
                    src = types[0].id
                targets, via = resolver.resolve(path, lang, src, kind, name, receiver)
                stats[via] += 1
                via_updates.append((via, rowid))
                if via == "ambiguous":
                    ambiguous[src].append(
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
                        raises[src].add(name)
                    elif kind in ("extends", "implements"):
                        bases_ext[src].add(f"{receiver}.{name}" if receiver else name)
                    continue
                conf = (
                    1.0
                    if via in ("scope", "import")
                    else round(0.5 if len(targets) == 1 else 1 / len(targets), 3)
                )
                for t in targets:
                    if t.id == src and kind != "calls":
                        continue
                    meta = {"line": line, "via": via, "confidence": conf}
                    if len(targets) > 1:
                        meta["candidates"] = len(targets)
                    add(src, t.id, kind, path, meta)

    run({"extends", "implements"})
    _write(conn, edges)
    edges.clear()
    resolver.forget_bases()
    run({"calls", "throws"})
    # Imports: file -> imported symbol or module file; depends_on: file -> file.
    for path in paths:
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
                    add(path, t.id, "imports", path, {})
        for star in stars:
            deps.update(star)
            for m in star:
                add(path, m, "imports", path, {"wildcard": True})
        for d in sorted(deps - {path}):
            add(path, d, "depends_on", path, {})
    # Tests: a test function tests the non-test code it calls.
    test_sql = (
        "SELECT id FROM nodes WHERE path = ? AND json_extract(meta_json, '$.test') = 1 "
        "AND type IN ('function', 'method', 'module')"
    )
    tests = {r[0] for p in every for r in conn.execute(test_sql, (p,)) if p in paths or r[0] in partial[p]}
    non_test_cache: dict[str, bool] = {}
    for src, dst, kind, path, _ in list(edges):
        if kind != "calls" or src not in tests:
            continue
        if dst not in non_test_cache:
            row = conn.execute(
                "SELECT f.meta_json FROM nodes n JOIN nodes f ON f.id = n.path WHERE n.id = ?", (dst,)
            ).fetchone()
            non_test_cache[dst] = bool(row) and not json.loads(row[0]).get("test")
        if non_test_cache[dst]:
            add(src, dst, "tests", path, {})
    _write(conn, edges)
    conn.executemany("UPDATE refs SET via = ? WHERE rowid = ?", via_updates)
    for src, names_ in raises.items():
        _merge_meta(conn, src, "raises", sorted(names_))
    for src, calls in ambiguous.items():
        _merge_meta(conn, src, "ambiguous", sorted(calls, key=lambda c: (c["line"], c["name"])))
    for src, names_ in bases_ext.items():
        _merge_meta(conn, src, "external_bases", sorted(names_))
    return dict(stats)


def _write(conn: sqlite3.Connection, edges: list[tuple]) -> None:
    conn.executemany("INSERT OR IGNORE INTO edges VALUES(?,?,?,?,?)", edges)


def _merge_meta(conn: sqlite3.Connection, node_id: str, key: str, value: object) -> None:
    row = conn.execute("SELECT meta_json FROM nodes WHERE id = ?", (node_id,)).fetchone()
    if row is None:
        return
    meta = json.loads(row[0])
    meta[key] = value
    conn.execute("UPDATE nodes SET meta_json = ? WHERE id = ?", (json.dumps(meta, sort_keys=True), node_id))
