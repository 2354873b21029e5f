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
import multiprocessing as mp
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from extractor import languages, pytypes, store
from extractor.modules import FAMILIES, ModuleIndex, implementation_files, resolve_module
from extractor.parse import CLASS_LIKE, FileFacts

MAX_CANDIDATES = 5
CALLABLE = ("function", "method", "class", "struct", "interface", "enum", "trait")
_CALLABLE_SET = frozenset(CALLABLE)
_MAX_REEXPORT_DEPTH = 4
_GO_RECEIVER = re.compile(r"func\s*\(\s*(\w+)")
# Receivers that name a language's built-in types (`ValueError.__init__`, `str.join`): never repo code.
BUILTIN_RECEIVERS = {"python": set(dir(builtins))}
# A literal receiver (`", ".join`, `[].append`, `{}.get`, `3.0.hex`): a built-in object.
# Test-only code: the language's test files, and anything under a tests folder (fixtures, fakes).
_TEST_DIR = re.compile(r"(^|/)(tests?|testing|__tests__)/")
_LITERAL_RECEIVER = re.compile(r"""^([rbfuRBFU]{0,2}["']|[\[{]|\d)""")


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
        self._line_bindings: dict[str, dict[str, list[tuple[int, Binding]]]] = {}
        self._bases: dict[str, list[str]] = {}
        self._by_id: dict[str, Node | None] = {}
        self._global_cands: dict[tuple[str, str, bool, bool], list[Node]] = {}
        self._named_where: dict[tuple[str, str, str], list[Node]] = {}
        self._global_parents: dict[tuple[str, str, bool, bool], Counter[str]] = {}
        self._test_paths: dict[str, bool] = {}

    # ---- graph reads ---------------------------------------------------------------------
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

    def import_rows(self, path: str) -> list[tuple[str, str, str, int, int]]:
        """(module, name, alias, wildcard, line) of a file's imports, in source order."""
        return self.conn.execute(
            "SELECT module, name, alias, wildcard, line FROM imports WHERE path = ? ORDER BY rowid", (path,)
        ).fetchall()

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
                for n in self.named_where(name, "owner", cls.name)
                if FAMILIES[n.lang] >= {cls.lang}
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
        by_line: list[tuple[int, str, Binding]] = []
        for module, name, alias, wildcard, line in self.import_rows(path):
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
                by_line.append((line, alias or name, names[alias or name]))
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
        by_name: dict[str, list[tuple[int, Binding]]] = {}
        for line, local, b in by_line:
            by_name.setdefault(local, []).append((line, b))
        self._line_bindings[path] = by_name
        return names, stars

    def local_import(self, path: str, lang: str, src: Node | None, name: str) -> Binding | None:
        """`from m import name` inside the function `src` (Python): a local name that shadows
        every enclosing and module-level definition of `name`, the function's own included."""
        if src is None or src.type not in ("function", "method"):
            return None
        by_name = self._line_bindings.get(path)
        if by_name is None:
            self.bindings(path, lang)
            by_name = self._line_bindings[path]
        found = None
        for line, b in by_name.get(name, ()):
            if src.start <= line <= src.end:
                found = b
        return found

    def in_module(self, paths: list[str], name: str, depth: int = 0) -> list[Node]:
        """`name` as seen from outside modules `paths`: their top-level defs, re-exports, star imports."""
        found = [n for p in paths for n in self.top_level(p, name)]
        if len(found) > 1 and any(n.path.endswith(".pyi") for n in found):
            # `x.py` and its stub `x.pyi` both define the name: the call runs the implementation.
            found = [n for n in found if not n.path.endswith(".pyi")] or found
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
        want = CLASS_LIKE if kind in ("extends", "implements", "throws") else _CALLABLE_SET
        src = self.node(src_id) if "::" in src_id else None

        family = FAMILIES[lang]

        def keep(nodes: list[Node]) -> list[Node]:
            if not nodes:
                return []
            kept = [n for n in nodes if n.type in want and n.lang in family]
            if len(kept) > 1 and spec.rebinding_defs:
                kept = _last_per_scope(kept)
            return kept

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
                hits = keep(hits)
                if hits:
                    return hits, "scope"
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
                # The receiver's class is known and has no such member in the repository (it is
                # inherited from an external base, or set at run time): a guess by name would
                # bind it to an unrelated class. 'unresolved' lets an incremental run redo it.
                return [], "unresolved"
            if target is None and lang in ("c", "cpp"):  # `ns::f()`: a namespace, not an object
                hits = keep(self._bare_in_includes(path, lang, name))
                if hits:
                    return hits, "import"
            return self._global(lang, name, src, bare=False, receiver=receiver)
        # Bare name: a function-local import first, then lexical scopes, innermost out.
        b = self.local_import(path, lang, src, name) if spec.local_imports else None
        if b is not None:
            if b.external:
                return [], "external"
            hits = keep(self.in_module(b.modules, b.symbol or name))
            if hits:
                return hits, "import"
        scope = src
        while scope is not None:
            local = list(self.children(path, scope.id, name))
            if scope.type in CLASS_LIKE and not spec.class_scoped_calls:
                local = [n for n in local if n.type in CLASS_LIKE]
            if scope.type in CLASS_LIKE and spec.class_scoped_calls and not local:
                local = self.members(scope.id, name)
            local = keep(local)
            if local:
                return local, "scope"
            scope = self.node(scope.parent) if scope.parent and "::" in scope.parent else None
        if spec.class_scoped_calls and src is not None:
            cls = self.enclosing_class(src)
            hits = keep(self.members(cls.id, name)) if cls is not None else []
            if hits:
                return hits, "scope"
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
        """What a dotted receiver denotes: module files, a class node, 'external', or None (unknown).

        Python receivers may be type expressions (extractor/receivers.py): `f()` is what calling
        `f` returns, `f()[]` an element of it."""
        if lang == "python":
            if receiver.endswith("()"):
                return self._call_result(path, lang, receiver[:-2], src, element=False)
            if receiver.endswith("()[]"):
                return self._call_result(path, lang, receiver[:-4], src, element=True)
            if _LITERAL_RECEIVER.match(receiver):
                return "external"
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

    def _call_result(
        self, path: str, lang: str, callee: str, src: Node | None, element: bool
    ) -> list[str] | Node | str | None:
        """The class of what `callee(...)` returns (or of its elements): a class's instance, or a
        function's return annotation read in the function's own file."""
        spec = languages.LANGUAGES[lang]
        if callee in spec.self_names:  # `cls(...)`: an instance of the enclosing class
            return None if element else self.enclosing_class(src)
        head, _, last = callee.rpartition(".")
        if not last.isidentifier():
            return None
        targets, via = self.resolve(path, lang, src.id if src else path, "calls", last, head)
        if via == "external":
            # An external class's instance is external (`subprocess.Popen(...)`, `dict(...)`); what
            # an external function returns may be repo code (`copy.copy(self)`): unknown.
            return "external" if _names_class(last) else None
        if len(targets) != 1 or via not in ("scope", "import"):
            return None
        t = targets[0]
        if t.type in CLASS_LIKE:
            return None if element else t
        ann = pytypes.return_annotation(self.signature(t.id))
        ann = pytypes.element(ann) if element else pytypes.direct(ann)
        if not ann:
            return None
        return self._receiver(t.path, t.lang, ann, t)

    def _bare_in_includes(self, path: str, lang: str, name: str) -> list[Node]:
        return [n for star in self.bindings(path, lang)[1] for n in self.in_module(star, name)]

    def _is_receiver_var(self, src: Node | None, receiver: str) -> bool:
        """Go names its receiver (`func (s *Server) Run()`): `s` means this object inside the method."""
        while src is not None and src.lang == "go":
            if src.owner:
                m = _GO_RECEIVER.match(self.signature(src.id))
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
        library = not self._is_test_path(src.path if src is not None else "", lang)
        key = (name, lang, bare, library)
        base = self._global_cands.get(key)
        if base is None:
            family = FAMILIES[lang]
            want = "function" if bare else "method"
            base = [n for n in self.named_where(name, "type", want) if n.lang in family]
            if library:  # library code does not call into its tests; a stub (.pyi) is not what runs
                base = [
                    n for n in base if not self._is_test_path(n.path, n.lang) and not n.path.endswith(".pyi")
                ]
            self._global_cands[key] = base
        # Common names have thousands of candidates: filter only what can change the verdict.
        cands = [n for n in base if n.id != src.id] if src is not None and src.name == name else base
        if not bare and src is not None and receiver.split(".")[0] in languages.LANGUAGES[lang].self_names:
            # `this.items.get()`: a field's type is unknown, but it is rarely the object's own class.
            cls = self.enclosing_class(src)
            own = self._lineage(cls.id) if cls is not None else set()
            if len(cands) - self._count_in(key, own) > MAX_CANDIDATES:
                return [], "unresolved"
            cands = [n for n in cands if n.parent not in own]
        if len(cands) == 1:
            return list(cands), "global"
        if 1 < len(cands) <= MAX_CANDIDATES:
            return list(cands), "ambiguous"
        return [], "unresolved"

    def _is_test_path(self, path: str, lang: str) -> bool:
        if not path:
            return False
        hit = self._test_paths.get(path)
        if hit is None:
            hit = self._test_paths[path] = bool(
                languages.test_patterns(lang)[0].search(path) or _TEST_DIR.search(path)
            )
        return hit

    def _count_in(self, key: tuple[str, str, bool, bool], parents: set[str]) -> int:
        """How many global candidates for `key` are defined directly in one of `parents`."""
        counts = self._global_parents.get(key)
        if counts is None:
            counts = self._global_parents[key] = Counter(n.parent for n in self._global_cands[key])
        return sum(counts.get(p, 0) for p in parents)


def _names_class(name: str) -> bool:
    """A CapWords name (the convention for classes) or a built-in type (`dict`, `str`)."""
    return name[:1].isupper() or isinstance(getattr(builtins, name, None), type)


def _last_per_scope(nodes: list[Node]) -> list[Node]:
    """Of several definitions of one name in one scope (a redefinition, `@overload` stubs, a
    property's setter), the last: it is what the name is bound to once the scope has run."""
    last: dict[tuple[str, str], Node] = {}
    for n in nodes:
        last[(n.path, n.parent)] = n
    return [n for n in nodes if last[(n.path, n.parent)] is n]


REF_EDGE_KINDS = ("calls", "throws", "extends", "implements", "tests")
_CLEAR_META = store.CLEAR_RESOLVED_META


class MemoryResolver(Resolver):
    """A Resolver over the whole graph held in memory: no SQL reads per lookup.

    Built from a fresh build's parsed facts (`from_facts`) or read from the graph at once
    (`from_db`, for incremental runs that re-resolve much). It answers exactly what `Resolver`
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
        """`node_rows`: (id, type, name, path, lang, parent, owner, signature, meta_json, start_line,
        end_line), ordered by path, start line and insertion; `imports`: path -> (module, name,
        alias, wildcard, line)."""
        super().__init__(conn)
        self._root = root
        self._files = files
        self._imports = imports
        self._signatures: dict[str, str] = {}
        self._tests: dict[str, list[str]] = defaultdict(list)
        self._test_files: set[str] = set()
        named: dict[str, list[Node]] = defaultdict(list)
        by_path: dict[str, list[Node]] = defaultdict(list)
        for row in node_rows:
            n = Node(*row[:7], row[9], row[10])
            by_path[n.path].append(n)
            self._by_id[n.id] = n
            self._children[(n.parent, n.name)].append(n)
            if n.type != "module":
                named[n.name].append(n)
            if n.lang == "go" or (n.lang == "python" and row[7] and "->" in row[7]):
                self._signatures[n.id] = row[7]
            meta = row[8]
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
    def from_facts(
        cls, conn: sqlite3.Connection, facts: list[FileFacts], root: Path | None
    ) -> MemoryResolver:
        rows = (
            (r[0], r[1], r[2], r[4], r[5], r[11], r[12], r[8], r[13], r[6], r[7])
            for fx in facts
            for r in fx.nodes
        )
        imports = {fx.path: [r[1:6] for r in fx.imports] for fx in facts}
        return cls(conn, {fx.path: fx.lang for fx in facts}, rows, imports, root)

    @classmethod
    def from_db(cls, conn: sqlite3.Connection) -> MemoryResolver:
        row = conn.execute("SELECT value FROM meta WHERE key = 'repo_root'").fetchone()
        root = Path(json.loads(row[0])) if row else None
        files = dict(conn.execute("SELECT path, lang FROM files ORDER BY path"))
        imports: dict[str, list[tuple]] = defaultdict(list)
        for path, *rest in conn.execute(
            "SELECT path, module, name, alias, wildcard, line FROM imports ORDER BY path, rowid"
        ):
            imports[path].append(tuple(rest))
        rows = conn.execute(
            "SELECT id, type, name, path, lang, parent, owner, signature, meta_json, start_line, end_line FROM nodes "
            "ORDER BY path, start_line, rowid"
        )
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

    def import_rows(self, path: str) -> list[tuple[str, str, str, int, int]]:
        return self._imports.get(path, [])

    def signature(self, node_id: str) -> str:
        return self._signatures.get(node_id, "")

    def test_ids(self, path: str) -> list[str]:
        return self._tests.get(path, [])

    def in_non_test_file(self, node_id: str) -> bool:
        n = self._by_id.get(node_id)
        return n is not None and n.path in self._files and n.path not in self._test_files


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
    ref_rows = {p: conn.execute(ref_sql, (p,)).fetchall() for p in paths}
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS partial_ids(id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM partial_ids")
    conn.executemany("INSERT INTO partial_ids VALUES(?)", [(i,) for i, _ in part_rows])
    part_sql = (
        "SELECT rowid, src_id, kind, name, receiver, line FROM refs "
        "WHERE path = ? AND src_id IN (SELECT id FROM partial_ids) ORDER BY rowid"
    )
    for p in partial:
        ref_rows[p] = conn.execute(part_sql, (p,)).fetchall()
    # Read after the deletes above: both resolvers see the graph as a single pass would.
    many = sum(len(rows) for rows in ref_rows.values()) >= _MEMORY_MIN_REFS
    resolver = MemoryResolver.from_db(conn) if many else Resolver(conn)
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
    resolver = MemoryResolver.from_facts(conn, facts, root)
    ref_rows: dict[str, list[tuple]] = {}
    rowid = 0
    for fx in facts:
        rows = []
        for r in fx.refs:
            rowid += 1
            rows.append((rowid, *r[1:]))
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
    ref_rows: dict[str, list[tuple]],
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
    ref_rows: dict[str, list[tuple]],
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
    ref_rows: dict[str, list[tuple]],
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
        or not isinstance(resolver, MemoryResolver)  # a forked SQL reader would share the connection
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
    ref_rows: dict[str, list[tuple]],
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
