"""Parse one file with Tree-sitter and its language's query into plain facts.

This runs in worker processes, so it takes and returns only picklable plain data and touches no
database. Names are not resolved here: a file's facts depend on that file alone, which is what
makes incremental re-indexing exact.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tree_sitter import Node, Parser, Query, QueryCursor

from extractor import languages, pytypes
from extractor.receivers import Binding, ReceiverTypes

CLASS_LIKE = {"class", "struct", "interface", "enum", "trait"}
_DEF_KINDS = CLASS_LIKE | {"function", "method"}
_WS = re.compile(r"\s+")
_GENERIC = re.compile(r"<.*>$|\[.*\]$")
_MAX_DOC = 2000
_MAX_SIG = 300


@dataclass(slots=True)
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


# Facts travel from worker processes to the parent as plain tuples, in the column order of the
# graph's tables (see store.py): pickling ~10^5 dataclass instances costs more than parsing.
NODE_COLUMNS = (
    "id",
    "type",
    "name",
    "qualname",
    "path",
    "lang",
    "start_line",
    "end_line",
    "signature",
    "doc",
    "hash",
    "parent",
    "owner",
    "meta_json",
)
NODE_ID, NODE_TYPE, NODE_NAME = 0, 1, 2
REF_COLUMNS = ("path", "src_id", "kind", "name", "receiver", "line")
IMPORT_COLUMNS = ("path", "module", "name", "alias", "wildcard", "line")


@dataclass
class FileFacts:
    """One file's facts: `nodes`, `refs` and `imports` are rows in NODE/REF/IMPORT_COLUMNS order."""

    path: str
    lang: str
    sha256: str
    bytes: int
    lines: int
    parse_errors: int
    nodes: list[tuple]
    refs: list[tuple]
    imports: list[tuple]


@dataclass(slots=True)
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
    start: int = 0  # node.start_byte / end_byte, read once (each read is a call into the binding)
    end: int = 0

    def __post_init__(self) -> None:
        self.start, self.end = self.node.start_byte, self.node.end_byte


def node_text(node: Node | None) -> str:
    """A Tree-sitter node's source text ("" for none)."""
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
        text = node_text(prev).strip()
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


_ROLE_PREFIXES = ("definition.", "scope.", "reference.", "inherit.")
_REF_KINDS = {
    "reference.call": "calls",
    "reference.throw": "throws",
    "inherit.extends": "extends",
    "inherit.implements": "implements",
}


_BIND_KINDS = ("annotation", "call", "alias", "iter_call", "iter", "field_annotation")
_BIND_CAPTURES = tuple((k, f"bind.{k}") for k in _BIND_KINDS)


def _is_role(capture: str) -> bool:
    return capture.startswith(_ROLE_PREFIXES) or capture == "import" or capture == "binding"


@cache
def _pattern_roles(lang: str) -> tuple[str | None, ...]:
    """Per query pattern, its role capture when that is fixed: the pattern has exactly one role
    capture and it is not optional. Other patterns (None) find their role per match."""
    query = languages.query(lang)
    names = [query.capture_name(i) for i in range(query.capture_count)]
    out: list[str | None] = []
    for pattern in range(query.pattern_count):
        roles = []
        for i, name in enumerate(names):
            try:
                quantifier = query.capture_quantifier(pattern, i)
            except SystemError:  # tree-sitter 0.26 raises for "not in this pattern" (quantifier zero)
                continue
            if _is_role(name):
                roles.append((name, quantifier))
        out.append(roles[0][0] if len(roles) == 1 and roles[0][1] == "" else None)
    return tuple(out)


def _identifier_parts(text: str) -> tuple[str, str]:
    """split_name for the common case of a plain identifier, without the regex work."""
    return ("", text) if text.isidentifier() else split_name(text)


def parse_source(path: str, lang: str, source: bytes) -> FileFacts:
    """Extract the facts of one file's bytes; never raises on bad syntax (Tree-sitter recovers).

    This loop runs once per query match (hundreds of thousands on a large repo), so it avoids
    per-match allocations: roles are looked up per pattern, captures read in place.
    """
    spec = languages.LANGUAGES[lang]
    parser = Parser(languages.grammar(lang))
    tree = parser.parse(source)
    root = tree.root_node
    matches = QueryCursor(languages.query(lang)).matches(root)
    pattern_roles = _pattern_roles(lang)

    defs: list[_Def] = []
    seen_defs: set[tuple[int, int]] = set()
    refs_raw: list[tuple[str, Node, str, str, str]] = []  # kind, anchor node, name, receiver, source-type
    imports: list[tuple] = []
    seen_imports: set[tuple] = set()
    bindings_raw: list[tuple[Node, str, str, str]] = []  # anchor, name, kind, text (receiver types)
    ws_sub = _WS.sub
    for pattern, caps in matches:
        role = pattern_roles[pattern]
        if role is None:
            role = next((c for c in caps if _is_role(c)), None)
            if role is None:
                continue
        main = caps[role][0]
        ref_kind = _REF_KINDS.get(role)
        if ref_kind is not None:
            if ref_kind == "extends" or ref_kind == "implements":
                receiver, name = _identifier_parts(main.text.decode("utf-8", "replace"))
            else:
                name_nodes = caps.get("name")
                if name_nodes is None:
                    continue
                receiver, name = _identifier_parts(name_nodes[0].text.decode("utf-8", "replace"))
                receiver_nodes = caps.get("receiver")
                if receiver_nodes is not None:
                    receiver = receiver_nodes[0].text.decode("utf-8", "replace")
                    if not receiver.isidentifier():
                        receiver = ws_sub("", receiver)
                    receiver = receiver[:120]
            if name:
                source_nodes = caps.get("source")
                refs_raw.append(
                    (ref_kind, main, name, receiver, node_text(source_nodes[0]) if source_nodes else "")
                )
        elif role == "import":
            module_nodes = caps.get("import.module")
            module = node_text(module_nodes[0]).strip().strip("\"'<>`") if module_nodes else ""
            if not module:
                continue
            name_nodes, alias_nodes = caps.get("import.name"), caps.get("import.alias")
            key = (
                path,
                module,
                node_text(name_nodes[0]) if name_nodes else "",
                node_text(alias_nodes[0]) if alias_nodes else "",
                1 if "import.wildcard" in caps else 0,
                main.start_point[0] + 1,
            )
            if key not in seen_imports:
                seen_imports.add(key)
                imports.append(key)
        elif role == "binding":
            for kind, capture in _BIND_CAPTURES:
                value_nodes = caps.get(capture)
                if value_nodes is not None:
                    name_text = caps["bind.name"][0].text.decode("utf-8", "replace")
                    if kind == "field_annotation":  # a constructor's parameter property: this.x
                        name_text, kind = f"{spec.self_names[0]}.{name_text}", "annotation"
                    bindings_raw.append(
                        (main, name_text, kind, value_nodes[0].text.decode("utf-8", "replace"))
                    )
                    break
        elif role.startswith(("definition.", "scope.")):
            kind = role.split(".", 1)[1]
            key = (main.start_byte, main.end_byte)
            name_nodes = caps.get("name")
            if key in seen_defs or name_nodes is None:
                continue
            seen_defs.add(key)
            name = node_text(name_nodes[0])
            body_nodes = caps.get("body")
            body = body_nodes[0] if body_nodes else None
            if role.startswith("scope."):
                defs.append(_Def(kind, main, split_name(name)[1], body, None, "", emit=False))
            elif kind in _DEF_KINDS:
                owner_nodes = caps.get("owner")
                owner = split_name(node_text(owner_nodes[0]))[1] if owner_nodes else ""
                doc_nodes = caps.get("doc")
                defs.append(_Def(kind, main, name, body, doc_nodes[0] if doc_nodes else None, owner))

    # Nesting: sort by start (outer first on ties) and keep a stack of open definitions.
    defs.sort(key=lambda d: (d.start, -d.end))
    stack: list[_Def] = []
    for d in defs:
        while stack and stack[-1].end <= d.start:
            stack.pop()
        d.parent = stack[-1] if stack else None
        stack.append(d)

    file_id = path
    mod_qual = module_name(path, lang)
    test_path_re, test_name_re = languages.test_patterns(lang)
    is_test_file = bool(test_path_re.search(path))
    nodes: list[tuple] = []
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
            _clean_doc(node_text(d.doc))
            if d.doc is not None
            else (_comment_doc(d.node, spec.doc_comments) if spec.doc_comments else "")
        )
        meta: dict = {}
        if is_test_file and kind in ("function", "method") and test_name_re.search(d.name):
            meta["test"] = True
            if lang == "python":
                meta["pytest_id"] = f"{path}::{qualname.replace('.', '::')}"
        d.fact = fact = NodeFact(
            id=node_id,
            type=kind,
            name=d.name,
            qualname=qualname,
            start_line=d.node.start_point[0] + 1,
            end_line=_end_line(d.node),
            signature=_signature(d, source),
            doc=doc,
            hash=hashlib.sha1(source[d.start : d.end]).hexdigest(),
            parent=parent_fact.id if parent_fact is not None else file_id,
            owner=owner if parent_fact is None else "",
            meta=meta,
        )
        nodes.append(_node_row(fact, path, lang))

    # Attribute each reference to the innermost emitted definition that contains it.
    starts = [d.start for d in defs]

    def holder(anchor: Node) -> str:
        a_start = anchor.start_byte
        i = bisect.bisect_right(starts, a_start) - 1
        d = defs[i] if i >= 0 else None
        if d is not None:
            a_end = anchor.end_byte
            while d is not None and not (d.end >= a_end and d.fact is not None):
                d = d.parent
            if d is not None:
                return d.fact.id
        return file_id

    types = None
    if bindings_raw:
        scopes = {file_id: ("module", "")}
        scopes.update((d.fact.id, (d.fact.type, d.fact.parent)) for d in defs if d.fact is not None)
        wanted = _wanted_bindings(bindings_raw, refs_raw, spec.self_names)
        binds = [Binding(holder(a), n, k, t) for a, n, k, t in bindings_raw if _bind_key(n) in wanted]
        if spec.typed_receivers:  # Python annotations; call results resolved later
            types = ReceiverTypes(scopes, binds, spec.self_names)
        else:  # Java/TypeScript declared types
            types = ReceiverTypes(
                scopes,
                binds,
                spec.self_names,
                pytypes.declared,
                lambda _: "",
                fields_in_scope=spec.class_scoped_calls,
            )
    refs: list[tuple] = []
    seen_refs: set[tuple] = set()
    for kind, anchor, name, receiver, source_type in refs_raw:
        src = holder(anchor)
        if types is not None and receiver and kind == "calls":
            receiver = types.rewrite(src, receiver)
        if source_type:  # `impl Trait for Type`: the relation belongs to Type
            src = f"@type:{split_name(source_type)[1]}"
        key = (src, kind, name, receiver)
        if key in seen_refs:
            continue
        seen_refs.add(key)
        refs.append((path, src, kind, name, receiver, anchor.start_point[0] + 1))

    file_doc = ""
    if lang == "python" and root.named_child_count:
        first_stmt = root.named_children[0]
        if (
            first_stmt.type == "expression_statement"
            and first_stmt.named_child_count
            and first_stmt.named_children[0].type == "string"
        ):
            file_doc = _clean_doc(node_text(first_stmt.named_children[0]))
    lines = source.count(b"\n") + (0 if source.endswith(b"\n") or not source else 1)
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
        meta={"test": True} if is_test_file else {},
    )
    return FileFacts(
        path=path,
        lang=lang,
        sha256=hashlib.sha256(source).hexdigest(),
        bytes=len(source),
        lines=lines,
        parse_errors=_count_errors(root, _error_query(lang)),
        nodes=[_node_row(file_node, path, lang), *nodes],
        refs=refs,
        imports=imports,
    )


def _bind_key(name: str) -> str:
    """`x` for a name `x` and for an attribute `self.x` (a binding's lookup key)."""
    return name.rpartition(".")[2]


def _wanted_bindings(
    bindings: list[tuple[Node, str, str, str]], refs_raw: list[tuple], self_names: tuple[str, ...]
) -> set[str]:
    """The binding keys that can change a call's receiver: the names and self attributes calls
    use as receivers, and what their own bindings read (`self.x = p` reads `p`), transitively.
    Most bindings (every annotated parameter) never type a receiver: skipping them is exact."""
    wanted: set[str] = set()
    for kind, _, _, receiver, _ in refs_raw:
        if kind == "calls" and receiver:
            head, _, rest = receiver.partition(".")
            wanted.add(rest.partition(".")[0] if head in self_names and rest else head)
    while True:
        more = set()
        for _, name, _, text in bindings:
            if _bind_key(name) in wanted:
                head, _, rest = text.partition(".")
                more.add(rest.partition(".")[0] if head in self_names and rest else head.strip())
        if more <= wanted:
            return wanted
        wanted |= more


def _node_row(n: NodeFact, path: str, lang: str) -> tuple:
    """A node as a row of the nodes table (NODE_COLUMNS order)."""
    return (
        n.id,
        n.type,
        n.name,
        n.qualname,
        path,
        lang,
        n.start_line,
        n.end_line,
        n.signature,
        n.doc,
        n.hash,
        n.parent,
        n.owner,
        # Compact, as SQLite's json functions write it: an incremental run rewrites meta_json
        # through them, and a fresh build must store the same text.
        json.dumps(n.meta, sort_keys=True, separators=(",", ":")) if n.meta else "{}",
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
