"""The lookup rules: a reference `receiver.name` made from node S in file F -> its targets.

Order of lookup:
1. `self`/`this`/`cls`/`super()`: members of S's class, then of its ancestors (extends edges).
2. a receiver bound by F's imports (module alias, or a class), or typed by an annotation
   (extractor/receivers.py): members of that module or class.
3. no receiver: a function-local import, enclosing scopes, F's top-level names (and its package
   folder's for Go/Java), F's imports (following re-exports and star imports), included headers.
4. nothing found in scope, for a call on an object of unknown type (or a bare name in C/C++):
   methods of that name across the repo, never test-only code for library code. One candidate
   becomes an edge with confidence 0.5; two to MAX_CANDIDATES stay in the caller's meta_json as
   `ambiguous` (each 1/n). `via` (global/ambiguous/unresolved) records this, so an incremental
   run knows which references depend on names defined elsewhere. A receiver known to be
   external (an import from outside the repo, a built-in, a literal) gets no such guess.
The rules read the graph through a `SymbolTable` (extractor/symbols.py); language differences
are flags of the `LanguageSpec`.
"""

from __future__ import annotations

import builtins
import re
from collections import Counter
from dataclasses import dataclass

from extractor import languages, pytypes
from extractor.modules import FAMILIES, ModuleIndex, implementation_files, resolve_module
from extractor.parse import CLASS_LIKE
from extractor.symbols import Node, SymbolTable

MAX_CANDIDATES = 5
CALLABLE = ("function", "method", "class", "struct", "interface", "enum", "trait")
_CALLABLE_SET = frozenset(CALLABLE)
_MAX_REEXPORT_DEPTH = 4
_GO_RECEIVER = re.compile(r"func\s*\(\s*(\w+)")
# Test-only code: the language's test files, and anything under a tests folder (fixtures, fakes).
_TEST_DIR = re.compile(r"(^|/)(tests?|testing|__tests__)/")
# A literal receiver (`", ".join`, `[].append`, `{}.get`, `3.0.hex`): a built-in object.
_LITERAL_RECEIVER = re.compile(r"""^([rbfuRBFU]{0,2}["']|[\[{]|\d)""")


@dataclass
class Binding:
    """What a local name means in a file: module files, or symbol(s) inside module files."""

    modules: list[str]
    symbol: str = ""  # imported name inside `modules` ('' = the module itself)
    external: bool = False


class Resolver:
    """The rules over one symbol table, with the caches of what they derived (imports, candidates)."""

    def __init__(self, table: SymbolTable) -> None:
        self.table = table
        # The table's reads, bound once: they run hundreds of thousands of times.
        self.file_nodes = table.file_nodes
        self.children = table.children
        self.named = table.named
        self.named_where = table.named_where
        self.node = table.node
        self.bases = table.bases
        self.import_rows = table.import_rows
        self.signature = table.signature
        self.test_ids = table.test_ids
        self.in_non_test_file = table.in_non_test_file
        self._bindings: dict[str, tuple[dict[str, Binding], list[list[str]]]] = {}
        self._line_bindings: dict[str, dict[str, list[tuple[int, Binding]]]] = {}
        self._global_cands: dict[tuple[str, str, bool, bool], list[Node]] = {}
        self._global_parents: dict[tuple[str, str, bool, bool], Counter[str]] = {}
        self._test_paths: dict[str, bool] = {}

    @property
    def index(self) -> ModuleIndex:
        return self.table.index

    def forget_bases(self) -> None:
        self.table.forget_bases()

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
                    or languages.LANGUAGES[n.lang].link_time_globals
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
        spec = languages.LANGUAGES[lang]
        for module, name, alias, wildcard, line in self.import_rows(path):
            mods = resolve_module(self.index, module, path, lang)
            if spec.link_time_globals:  # an include brings the header's names, defined in its .c/.cpp
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
                sep = spec.module_separator
                sub_spec = (
                    module + name if spec.package_submodules and module.endswith(".") else module + sep + name
                )
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
                    module.rstrip("/").replace("::", "/").split("/")[-1]
                    if spec.import_binds_last_segment
                    else module
                )
                names[local] = Binding(mods, external=not mods)
                if spec.package_submodules and not alias and "." in module:
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
            if target is None and spec.link_time_globals:  # `ns::f()`: a namespace, not an object
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
        spec = languages.LANGUAGES[lang]
        if spec.typed_receivers:
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
                sub = (
                    resolve_module(self.index, f"{head}.{last}", path, lang)
                    if spec.package_submodules
                    else []
                )
                return sub or None
            return None
        hits, _ = self.resolve(path, lang, src.id if src else path, "extends", receiver, "")
        if not hits and receiver in spec.builtin_types:
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
        while src is not None and languages.LANGUAGES[src.lang].named_receiver:
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
        if bare and not languages.LANGUAGES[lang].link_time_globals:
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
