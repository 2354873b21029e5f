"""Map an import as written (`..pkg.mod`, `./util`, `crate::a::b`, `"x/y.h"`) to repo files.

One suffix index over every indexed file's path serves all languages: each language only says
how its module spec turns into a '/'-separated path relative to the importer or to some root.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import tomllib
from collections import defaultdict
from pathlib import Path

_INDEX_STEMS = {"__init__", "index", "mod", "lib"}


class ModuleIndex:
    """Suffix lookups over the indexed file set (paths without extension, and folders)."""

    def __init__(self, files: dict[str, str], root: Path | None = None) -> None:
        self.files = files  # path -> lang
        self.go_module, self.rust_crate = _project_names(root)
        self.by_suffix: dict[str, list[str]] = defaultdict(list)
        self.by_dir: dict[str, list[str]] = defaultdict(list)
        for path in sorted(files):
            stem = path.rsplit(".", 1)[0]
            parts = stem.split("/")
            if parts[-1] in _INDEX_STEMS and len(parts) > 1:
                self._add_suffixes(parts[:-1], path)
            self._add_suffixes(parts, path)
            self.by_dir[posixpath.dirname(path)].append(path)

    def _add_suffixes(self, parts: list[str], path: str) -> None:
        for i in range(len(parts)):
            self.by_suffix["/".join(parts[i:])].append(path)

    def lookup(self, key: str, importer: str, lang_family: set[str]) -> list[str]:
        """Files for a '/'-path key: exact-from-root wins, else the suffix match nearest the importer."""
        cands = [p for p in self.by_suffix.get(key.strip("/"), []) if self.files[p] in lang_family]
        if len(cands) <= 1:
            return cands
        exact = [
            p for p in cands if p.rsplit(".", 1)[0] in (key, key + "/__init__", key + "/index", key + "/mod")
        ]
        if exact:
            return exact
        best = max(_common_prefix(p, importer) for p in cands)
        return [p for p in cands if _common_prefix(p, importer) == best]

    def package(self, folder: str, lang: str) -> list[str]:
        """Files of `lang` in the same package as `folder`: the folder itself, and for Java the
        same package path under other source roots (src/main/java/a/b and src/test/java/a/b)."""
        key = _java_package(folder) if lang == "java" else None
        dirs = [d for d in self.by_dir if d == folder or (key is not None and _java_package(d) == key)]
        return [p for d in dirs for p in self.by_dir[d] if self.files[p] == lang]

    def directory(self, key: str, importer: str, lang_family: set[str]) -> list[str]:
        """Files directly in the folder that `key` names (Go packages, Java on-demand imports)."""
        key = key.strip("/")
        dirs = [d for d in self.by_dir if d == key or d.endswith("/" + key)]
        if not dirs:
            return []

        best = max(_common_prefix(d, importer) for d in dirs)
        return [
            p
            for d in dirs
            if _common_prefix(d, importer) == best
            for p in self.by_dir[d]
            if self.files[p] in lang_family
        ]


def _project_names(root: Path | None) -> tuple[str, str]:
    """The Go module path (go.mod) and the Rust crate name (Cargo.toml) declared at the repo root."""
    go_module = crate = ""
    if root is None:
        return go_module, crate
    try:
        m = re.search(r"^module\s+(\S+)", (root / "go.mod").read_text(encoding="utf-8"), re.M)
        go_module = m.group(1) if m else ""
    except OSError:
        pass
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        crate = (
            tomllib.loads((root / "Cargo.toml").read_text(encoding="utf-8"))
            .get("package", {})
            .get("name", "")
        )
    return go_module, crate.replace("-", "_")


def _java_package(folder: str) -> str:
    """The package path of a Java source folder: what follows the last `java/` (or `src/`) root."""
    for root in ("/java/", "java/", "/src/", "src/"):
        i = folder.rfind(root)
        if i >= 0 and (i == 0 or root.startswith("/")):
            return folder[i + len(root) :]
    return folder


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("/"), b.split("/"), strict=False):
        if x != y:
            break
        n += 1
    return n


FAMILIES = {
    "python": {"python"},
    "javascript": {"javascript", "typescript", "tsx"},
    "typescript": {"javascript", "typescript", "tsx"},
    "tsx": {"javascript", "typescript", "tsx"},
    "java": {"java"},
    "go": {"go"},
    "rust": {"rust"},
    "c": {"c", "cpp"},
    "cpp": {"c", "cpp"},
}


def resolve_module(index: ModuleIndex, spec: str, importer: str, lang: str) -> list[str]:
    """The repo files an import spec refers to; [] for external modules (stdlib, packages)."""
    family = FAMILIES[lang]
    here = posixpath.dirname(importer)
    if lang == "python":
        dots = len(spec) - len(spec.lstrip("."))
        rest = spec[dots:].replace(".", "/")
        if dots:
            base = here
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            key = posixpath.join(base, rest) if rest else base
            return index.lookup(key, importer, family) if key else []
        return index.lookup(rest, importer, family)
    if lang in ("javascript", "typescript", "tsx"):
        if not spec.startswith("."):
            return []  # bare specifiers are packages
        key = posixpath.normpath(posixpath.join(here, spec))
        key = (
            key.rsplit(".", 1)[0]
            if posixpath.splitext(key)[1] in (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs")
            else key
        )
        exact = [
            p for p in index.lookup(key, importer, family) if p.rsplit(".", 1)[0] in (key, key + "/index")
        ]
        return exact
    if lang == "java":  # a class (com/acme/Foo.java) or, for on-demand imports, a package folder
        key = spec.replace(".", "/")
        return index.lookup(key, importer, family) or index.directory(key, importer, family)
    if lang == "go":
        if index.go_module and (spec == index.go_module or spec.startswith(index.go_module + "/")):
            spec = spec[len(index.go_module) :].strip("/")
            return (
                index.by_dir.get(spec, [])
                if spec
                else [p for p in index.by_dir.get("", []) if index.files[p] == "go"]
            )
        return index.directory(spec, importer, family) if "." not in spec.split("/")[0] else []
    if lang == "rust":
        parts = spec.replace("::", "/").split("/")
        if index.rust_crate and parts and parts[0] == index.rust_crate:  # the crate's own name, from tests/
            if len(parts) == 1:
                return index.lookup("src/lib", importer, family)
            parts[0] = "crate"
        base = here
        while parts and parts[0] in ("crate", "self", "super"):
            head = parts.pop(0)
            if head == "super":
                base = posixpath.dirname(base)
            elif head == "crate":
                base = ""
        key = "/".join(parts)
        if not key:
            return []

        found = index.lookup(posixpath.join(base, key) if base else key, importer, family)
        return found or index.lookup(key, importer, family)
    if lang in ("c", "cpp"):
        key = posixpath.normpath(posixpath.join(here, spec))
        hits = [p for p in index.files if p == key] or [
            p for p in index.files if p == spec or p.endswith("/" + spec)
        ]
        return [p for p in hits if index.files[p] in family and p != importer]
    return []


def implementation_files(index: ModuleIndex, headers: list[str]) -> list[str]:
    """C/C++: the source files beside included headers (same stem), where their functions live."""
    stems = {h.rsplit(".", 1)[0] for h in headers}
    return sorted(p for p in index.files if p.rsplit(".", 1)[0] in stems and p not in headers)
