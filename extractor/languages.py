"""The languages the extractor knows: grammar, file extensions, query file and conventions.

Everything language-specific that is not a Tree-sitter query lives in this one table, so adding a
language is one `LanguageSpec` plus one `.scm` file.
"""

from __future__ import annotations

import builtins
import importlib
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tree_sitter import Language, Query

from nanodex.errors import NanodexError

QUERIES_DIR = Path(__file__).with_name("queries")


@dataclass(frozen=True)
class LanguageSpec:
    """How one language is parsed and which of its files are tests."""

    name: str
    extensions: tuple[str, ...]
    grammar_module: str  # the PyPI wheel's module (tree_sitter_<x>)
    grammar_function: str = "language"
    query_file: str = ""  # defaults to <name>.scm
    pip_name: str = ""  # the wheel to install when the grammar is missing
    doc_comments: tuple[str, ...] = ()  # comment prefixes that make a doc comment above a definition
    self_names: tuple[str, ...] = ()  # receivers meaning "this object"
    test_path: str = r"$^"  # regex over the repo-relative path of test files
    test_name: str = r"$^"  # regex over a test function/method name
    class_scoped_calls: bool = False  # Java/C++: an unqualified call may be a method of the class
    package_is_dir: bool = False  # Go/Java: files in one folder share their top-level names
    case_module_files: tuple[str, ...] = field(default=())  # index files (index.js, mod.rs, __init__.py)
    local_imports: bool = False  # Python: an import inside a function binds a local name
    rebinding_defs: bool = False  # Python: a later def of a name in one scope replaces the earlier
    # Resolution conventions (extractor/rules.py):
    module_separator: str = "/"  # joins an import's module and name into a submodule path
    import_binds_last_segment: bool = False  # Go/Rust: `import "a/b/c"` binds `c`
    package_submodules: bool = False  # Python: `import a.b` binds `a`; `a.b` may be a submodule
    link_time_globals: bool = False  # C/C++: includes bring names; bare names link across files
    named_receiver: bool = False  # Go: a method names its receiver (`func (s *T)`)
    typed_receivers: bool = False  # Python: receivers may be type expressions (extractor/receivers.py)
    builtin_types: frozenset[str] = frozenset()  # receivers naming built-ins: never repo code

    @property
    def query_path(self) -> Path:
        return QUERIES_DIR / (self.query_file or f"{self.name}.scm")


_C_DOCS = ("///", "//!", "/**", "//", "/*")
# Built-in types a declared type or receiver may name (never repository code).
_JS_BUILTINS = frozenset(
    [
        "string",
        "number",
        "boolean",
        "any",
        "unknown",
        "object",
        "bigint",
        "symbol",
        "never",
        "void",
        "Array",
        "ReadonlyArray",
        "Map",
        "Set",
        "WeakMap",
        "WeakSet",
        "Promise",
        "Date",
        "RegExp",
        "Error",
        "Object",
        "String",
        "Number",
        "Boolean",
        "JSON",
        "Math",
        "Record",
        "Partial",
        "Readonly",
        "console",
    ]
)
_JAVA_BUILTINS = frozenset(
    [
        "String",
        "Object",
        "StringBuilder",
        "Integer",
        "Long",
        "Double",
        "Float",
        "Boolean",
        "Character",
        "Byte",
        "Short",
        "Math",
        "System",
        "Thread",
        "Class",
        "Iterable",
        "Comparable",
        "Runnable",
        "Number",
        "Throwable",
        "Exception",
        "RuntimeException",
        "Error",
    ]
)

LANGUAGES: dict[str, LanguageSpec] = {
    spec.name: spec
    for spec in (
        LanguageSpec(
            "python",
            (".py", ".pyi"),
            "tree_sitter_python",
            pip_name="tree-sitter-python",
            self_names=("self", "cls"),
            test_path=r"(^|/)(test_[^/]*\.py|[^/]*_test\.py|conftest\.py)$",
            test_name=r"^test",
            case_module_files=("__init__.py",),
            local_imports=True,
            rebinding_defs=True,
            module_separator=".",
            package_submodules=True,
            typed_receivers=True,
            builtin_types=frozenset(dir(builtins)),
        ),
        LanguageSpec(
            "javascript",
            (".js", ".jsx", ".mjs", ".cjs"),
            "tree_sitter_javascript",
            pip_name="tree-sitter-javascript",
            doc_comments=_C_DOCS,
            self_names=("this",),
            test_path=r"(\.(test|spec)\.[cm]?jsx?$|(^|/)__tests__/)",
            test_name=r".",
            case_module_files=("index.js", "index.jsx", "index.mjs"),
            builtin_types=_JS_BUILTINS,
        ),
        LanguageSpec(
            "typescript",
            (".ts", ".mts", ".cts"),
            "tree_sitter_typescript",
            "language_typescript",
            pip_name="tree-sitter-typescript",
            doc_comments=_C_DOCS,
            self_names=("this",),
            test_path=r"(\.(test|spec)\.tsx?$|(^|/)__tests__/)",
            test_name=r".",
            case_module_files=("index.ts", "index.tsx"),
            builtin_types=_JS_BUILTINS,
        ),
        LanguageSpec(
            "tsx",
            (".tsx",),
            "tree_sitter_typescript",
            "language_tsx",
            query_file="typescript.scm",
            pip_name="tree-sitter-typescript",
            doc_comments=_C_DOCS,
            self_names=("this",),
            test_path=r"(\.(test|spec)\.tsx?$|(^|/)__tests__/)",
            test_name=r".",
            case_module_files=("index.tsx", "index.ts"),
            builtin_types=_JS_BUILTINS,
        ),
        LanguageSpec(
            "java",
            (".java",),
            "tree_sitter_java",
            pip_name="tree-sitter-java",
            doc_comments=_C_DOCS,
            self_names=("this", "super"),
            test_path=r"(^|/)src/test/|Tests?\.java$",
            test_name=r"^test|.",
            class_scoped_calls=True,
            package_is_dir=True,
            module_separator=".",
            builtin_types=_JAVA_BUILTINS,
        ),
        LanguageSpec(
            "go",
            (".go",),
            "tree_sitter_go",
            pip_name="tree-sitter-go",
            doc_comments=("//", "/*"),
            test_path=r"_test\.go$",
            test_name=r"^(Test|Benchmark|Example|Fuzz)",
            package_is_dir=True,
            import_binds_last_segment=True,
            named_receiver=True,
        ),
        LanguageSpec(
            "rust",
            (".rs",),
            "tree_sitter_rust",
            pip_name="tree-sitter-rust",
            doc_comments=("///", "//!", "/**"),
            self_names=("self", "Self"),
            test_path=r"(^|/)tests/[^/]*\.rs$",
            test_name=r"^test|.",
            case_module_files=("mod.rs", "lib.rs"),
            module_separator="::",
            import_binds_last_segment=True,
        ),
        LanguageSpec(
            "c",
            (".c", ".h"),
            "tree_sitter_c",
            pip_name="tree-sitter-c",
            doc_comments=_C_DOCS,
            test_path=r"(^|/)tests?/|(^|/)test_[^/]*\.c$",
            test_name=r"^test",
            link_time_globals=True,
        ),
        LanguageSpec(
            "cpp",
            (".cpp", ".cc", ".cxx", ".hpp", ".hh", ".hxx", ".ipp"),
            "tree_sitter_cpp",
            pip_name="tree-sitter-cpp",
            doc_comments=_C_DOCS,
            self_names=("this",),
            test_path=r"(^|/)tests?/|(^|/)test_[^/]*\.(cpp|cc|cxx)$|_test\.(cpp|cc)$",
            test_name=r"^test|^TEST|.",
            class_scoped_calls=True,
            link_time_globals=True,
        ),
    )
}

# `typescript` in a config means both .ts and .tsx; `cpp` also claims C headers only via config.
ALIASES: dict[str, tuple[str, ...]] = {
    "typescript": ("typescript", "tsx"),
    "c++": ("cpp",),
    "js": ("javascript",),
}


def expand(names: list[str]) -> list[str]:
    """Config language names -> spec names (typescript brings tsx); unknown names are an error."""
    out: list[str] = []
    for name in names:
        for spec_name in ALIASES.get(name.lower(), (name.lower(),)):
            if spec_name not in LANGUAGES:
                known = ", ".join(sorted(LANGUAGES))
                raise NanodexError(f"unknown language '{name}' in config", f"use some of: {known}")
            if spec_name not in out:
                out.append(spec_name)
    return out


def by_extension(names: list[str]) -> dict[str, LanguageSpec]:
    """File extension -> spec, for the enabled languages."""
    return {ext: LANGUAGES[n] for n in names for ext in LANGUAGES[n].extensions}


@cache
def grammar(name: str) -> Language:
    """Load a language's compiled grammar from its wheel (cached per process)."""
    spec = LANGUAGES[name]
    try:
        module = importlib.import_module(spec.grammar_module)
    except ImportError as err:
        raise NanodexError(
            f"Tree-sitter grammar for {name} is not installed", f"pip install {spec.pip_name} (or make setup)"
        ) from err
    return Language(getattr(module, spec.grammar_function)())


@cache
def query(name: str) -> Query:
    """Compile the language's `.scm` query file against its grammar (cached per process)."""
    spec = LANGUAGES[name]
    if not spec.query_path.is_file():
        raise NanodexError(
            f"no query file for {name}: {spec.query_path}", "add it or drop the language from config"
        )
    return Query(grammar(name), query_source(spec.query_path))


_INCLUDE = re.compile(r"^; include: ([\w.-]+\.scm)[ \t]*$", re.MULTILINE)


def query_source(path: Path) -> str:
    """A query file's text with its `; include: other.scm` lines replaced, in place, by that file
    of the same folder (JavaScript and TypeScript share most patterns; Tree-sitter has no include)."""
    text = path.read_text(encoding="utf-8")

    def expand(m: re.Match[str]) -> str:
        part = path.with_name(m.group(1))
        if not part.is_file():
            raise NanodexError(f"query file {path.name} includes a missing {part.name}", f"add {part}")
        return part.read_text(encoding="utf-8").rstrip("\n")

    return _INCLUDE.sub(expand, text)


@cache
def test_patterns(name: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    spec = LANGUAGES[name]
    return re.compile(spec.test_path), re.compile(spec.test_name)
