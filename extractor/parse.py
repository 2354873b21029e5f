"""Parse one file with Tree-sitter and its language's query into plain facts.

This runs in worker processes, so it takes and returns only picklable plain data and touches no
database. Names are not resolved here: a file's facts depend on that file alone, which is what
makes incremental re-indexing exact.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Node, Parser, Query, QueryCursor

from extractor import languages

CLASS_LIKE = {"class", "struct", "interface", "enum", "trait"}
_DEF_KINDS = CLASS_LIKE | {"function", "method"}
_WS = re.compile(r"\s+")
_GENERIC = re.compile(r"<.*>$|\[.*\]$")
_MAX_DOC = 2000
_MAX_SIG = 300


@dataclass
class NodeFact:
    id: str
    type: str
    name: str
    qualname: str
    start_line: int
    end_line: int
    signature: str
    doc: str
    hash: str
    parent: str  # id of the enclosing node (file id for top level)
    owner: str = ""  # owning type's name when not lexically enclosing (Go receiver, impl block, Foo::bar)
    meta: dict = field(default_factory=dict)


@dataclass
class RefFact:
    src: str  # node id the reference is made from
    kind: str  # calls | throws | extends | implements
    name: str
    receiver: str
    line: int


@dataclass
class ImportFact:
    module: str
    name: str
    alias: str
    wildcard: bool
    line: int


@dataclass
class FileFacts:
    path: str
    lang: str
    sha256: str
    bytes: int
    lines: int
    parse_errors: int
    nodes: list[NodeFact]
    refs: list[RefFact]
    imports: list[ImportFact]


@dataclass
class _Def:
    kind: str
    node: Node
    name: str
    body: Node | None
    doc: Node | None
    owner: str
    emit: bool = True  # False for scopes that are no node of their own (Rust impl blocks)
    fact: NodeFact | None = None
    parent: _Def | None = None


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


def _end_line(node: Node) -> int:
    row, col = node.end_point
    return row if col == 0 and row > node.start_point[0] else row + 1


def split_name(text: str) -> tuple[str, str]:
    """'pkg.mod.Err' / 'ns::Foo<T>' -> ('pkg.mod', 'Err') / ('ns', 'Foo'): receiver and last name."""
    text = _WS.sub("", text)
    text = _GENERIC.sub("", text).replace("::", ".").replace("->", ".")
    head, _, last = text.rpartition(".")
    return head, last


def module_name(path: str, lang: str) -> str:
    """A file's dotted module name (Python: package path; others: path without extension)."""
    stem = path.rsplit(".", 1)[0]
    if lang == "python" and stem.endswith("/__init__"):
        stem = stem[: -len("/__init__")]
    return stem.replace("/", ".")


def _clean_doc(raw: str) -> str:
    raw = raw.strip()
    for q in ('"""', "'''"):
        if raw.startswith(q) or raw[1:].startswith(q) or raw[2:].startswith(q):
            raw = raw[raw.index(q) + 3 :]
            raw = raw[:-3] if raw.endswith(q) else raw
            break
    else:
        if raw[:1] in "\"'" and raw[-1:] == raw[:1]:
            raw = raw[1:-1]
    lines = [ln.strip() for ln in raw.strip().splitlines()]
    return "\n".join(lines).strip()[:_MAX_DOC]


def _comment_doc(node: Node, prefixes: tuple[str, ...]) -> str:
    """The contiguous comment lines right above a definition (or above its export/template wrapper)."""
    anchor = node
    while (
        anchor.parent is not None
        and anchor.prev_named_sibling is None
        and anchor.parent.type in ("export_statement", "decorated_definition", "template_declaration")
    ):
        anchor = anchor.parent
    lines: list[str] = []
    expect_row = anchor.start_point[0]
    prev = anchor.prev_sibling
    while prev is not None and prev.type in ("attribute_item", "inner_attribute_item"):  # Rust #[derive(..)]
        expect_row = prev.start_point[0]
        prev = prev.prev_sibling
    while prev is not None and "comment" in prev.type and prev.end_point[0] >= expect_row - 1:
        text = _text(prev).strip()
        if not text.startswith(prefixes):
            break
        lines.insert(0, text)
        expect_row = prev.start_point[0]
        prev = prev.prev_sibling
    cleaned = []
    for ln in "\n".join(lines).splitlines():
        ln = ln.strip()
        for p in ("///", "//!", "//", "/**", "/*", "*/", "*"):
            if ln.startswith(p):
                ln = ln[len(p) :]
                break
        ln = ln.removesuffix("*/").strip()
        if ln:
            cleaned.append(ln)
    return "\n".join(cleaned)[:_MAX_DOC]


def _signature(d: _Def, source: bytes) -> str:
    start = d.node.start_byte
    end = d.body.start_byte if d.body is not None and d.body.start_byte > start else d.node.end_byte
    sig = source[start:end].decode("utf-8", "replace")
    if d.body is None:
        sig = sig.split("\n", 1)[0]
    return _WS.sub(" ", sig).strip().rstrip("{:").strip()[:_MAX_SIG]


def _count_errors(root: Node, query: Query | None) -> int:
    if not root.has_error or query is None:
        return 0
    return sum(len(nodes) for nodes in QueryCursor(query).captures(root).values())


def parse_source(path: str, lang: str, source: bytes) -> FileFacts:
    """Extract the facts of one file's bytes; never raises on bad syntax (Tree-sitter recovers)."""
    spec = languages.LANGUAGES[lang]
    parser = Parser(languages.grammar(lang))
    tree = parser.parse(source)
    root = tree.root_node
    matches = QueryCursor(languages.query(lang)).matches(root)

    defs: list[_Def] = []
    seen_defs: set[tuple[int, int]] = set()
    refs_raw: list[tuple[str, Node, str, str, str]] = []  # kind, anchor node, name, receiver, source-type
    imports: list[ImportFact] = []
    seen_imports: set[tuple] = set()
    for _, caps in matches:
        role = next(
            (
                c
                for c in caps
                if c.startswith(("definition.", "scope.", "reference.", "inherit.")) or c == "import"
            ),
            None,
        )
        if role is None:
            continue
        main = caps[role][0]
        first = {k: v[0] for k, v in caps.items()}
        if role.startswith(("definition.", "scope.")):
            kind = role.split(".", 1)[1]
            key = (main.start_byte, main.end_byte)
            if key in seen_defs or "name" not in first:
                continue
            seen_defs.add(key)
            name = _text(first["name"])
            if role.startswith("scope."):
                defs.append(_Def(kind, main, split_name(name)[1], first.get("body"), None, "", emit=False))
            elif kind in _DEF_KINDS:
                owner = split_name(_text(first["owner"]))[1] if "owner" in first else ""
                defs.append(_Def(kind, main, name, first.get("body"), first.get("doc"), owner))
        elif role == "import":
            module = _text(first.get("import.module")).strip().strip("\"'<>`")
            fact = ImportFact(
                module=module,
                name=_text(first.get("import.name")),
                alias=_text(first.get("import.alias")),
                wildcard="import.wildcard" in first,
                line=main.start_point[0] + 1,
            )
            key = (fact.module, fact.name, fact.alias, fact.wildcard, fact.line)
            if module and key not in seen_imports:
                seen_imports.add(key)
                imports.append(fact)
        else:
            kind = {
                "reference.call": "calls",
                "reference.throw": "throws",
                "inherit.extends": "extends",
                "inherit.implements": "implements",
            }.get(role)
            if kind is None:
                continue
            if role.startswith("inherit."):
                receiver, name = split_name(_text(main))
            else:
                if "name" not in first:
                    continue
                receiver, name = split_name(_text(first["name"]))
                if "receiver" in first:
                    receiver = _WS.sub("", _text(first["receiver"]))[:120]
            if name:
                refs_raw.append((kind, main, name, receiver, _text(first.get("source"))))

    # Nesting: sort by start (outer first on ties) and keep a stack of open definitions.
    defs.sort(key=lambda d: (d.node.start_byte, -d.node.end_byte))
    stack: list[_Def] = []
    for d in defs:
        while stack and stack[-1].node.end_byte <= d.node.start_byte:
            stack.pop()
        d.parent = stack[-1] if stack else None
        stack.append(d)

    file_id = path
    mod_qual = module_name(path, lang)
    test_path_re, test_name_re = languages.test_patterns(lang)
    is_test_file = bool(test_path_re.search(path))
    nodes: list[NodeFact] = []
    used_ids: dict[str, int] = {}
    for d in defs:
        if not d.emit:
            continue
        parent = d.parent
        while parent is not None and not parent.emit and parent.kind != "impl":
            parent = parent.parent
        kind = d.kind
        owner = d.owner
        if parent is not None and not parent.emit:  # inside an impl block
            owner = owner or parent.name
            parent_fact = None
        else:
            parent_fact = parent.fact if parent is not None else None
        if kind == "function" and (owner or (parent_fact is not None and parent_fact.type in CLASS_LIKE)):
            kind = "method"
        if parent_fact is not None:
            qualname = f"{parent_fact.qualname}.{d.name}"
        elif owner:
            qualname = f"{owner}.{d.name}"
        else:
            qualname = d.name
        node_id = f"{file_id}::{qualname}"
        count = used_ids.get(node_id, 0) + 1
        used_ids[node_id] = count
        if count > 1:
            node_id = f"{node_id}~{count}"
        doc = (
            _clean_doc(_text(d.doc))
            if d.doc is not None
            else (_comment_doc(d.node, spec.doc_comments) if spec.doc_comments else "")
        )
        meta: dict = {}
        if is_test_file and kind in ("function", "method") and test_name_re.search(d.name):
            meta["test"] = True
            if lang == "python":
                meta["pytest_id"] = f"{path}::{qualname.replace('.', '::')}"
        d.fact = NodeFact(
            id=node_id,
            type=kind,
            name=d.name,
            qualname=qualname,
            start_line=d.node.start_point[0] + 1,
            end_line=_end_line(d.node),
            signature=_signature(d, source),
            doc=doc,
            hash=hashlib.sha1(source[d.node.start_byte : d.node.end_byte]).hexdigest(),
            parent=parent_fact.id if parent_fact is not None else file_id,
            owner=owner if parent_fact is None else "",
            meta=meta,
        )
        nodes.append(d.fact)

    # Attribute each reference to the innermost emitted definition that contains it.
    starts = [d.node.start_byte for d in defs]
    refs: list[RefFact] = []
    seen_refs: set[tuple] = set()
    for kind, anchor, name, receiver, source_type in refs_raw:
        src = file_id
        i = bisect.bisect_right(starts, anchor.start_byte) - 1
        d = defs[i] if i >= 0 else None
        while d is not None and not (d.node.end_byte >= anchor.end_byte and d.fact is not None):
            d = d.parent
        if d is not None and d.fact is not None:
            src = d.fact.id
        if source_type:  # `impl Trait for Type`: the relation belongs to Type
            src = f"@type:{split_name(source_type)[1]}"
        line = anchor.start_point[0] + 1
        key = (src, kind, name, receiver)
        if key in seen_refs:
            continue
        seen_refs.add(key)
        refs.append(RefFact(src, kind, name, receiver, line))

    file_doc = ""
    if lang == "python" and root.named_child_count:
        first_stmt = root.named_children[0]
        if (
            first_stmt.type == "expression_statement"
            and first_stmt.named_child_count
            and first_stmt.named_children[0].type == "string"
        ):
            file_doc = _clean_doc(_text(first_stmt.named_children[0]))
    lines = source.count(b"\n") + (0 if source.endswith(b"\n") or not source else 1)
    meta = {"test": True} if is_test_file else {}
    file_node = NodeFact(
        id=file_id,
        type="module",
        name=path.rsplit("/", 1)[-1],
        qualname=mod_qual,
        start_line=1,
        end_line=max(lines, 1),
        signature="",
        doc=file_doc,
        hash=hashlib.sha1(source).hexdigest(),
        parent="",
        meta=meta,
    )
    return FileFacts(
        path=path,
        lang=lang,
        sha256=hashlib.sha256(source).hexdigest(),
        bytes=len(source),
        lines=lines,
        parse_errors=_count_errors(root, _error_query(lang)),
        nodes=[file_node, *nodes],
        refs=refs,
        imports=imports,
    )


_ERROR_QUERIES: dict[str, Query | None] = {}


def _error_query(lang: str) -> Query | None:
    if lang not in _ERROR_QUERIES:
        try:
            _ERROR_QUERIES[lang] = Query(languages.grammar(lang), "(ERROR) @error (MISSING) @missing")
        except Exception:  # older grammars without MISSING support
            _ERROR_QUERIES[lang] = Query(languages.grammar(lang), "(ERROR) @error")
    return _ERROR_QUERIES[lang]


def parse_file(root: str, path: str, lang: str) -> FileFacts:
    """Read and parse `root/path` (worker entry point)."""
    source = Path(root, path).read_bytes()
    return parse_source(path, lang, source)
