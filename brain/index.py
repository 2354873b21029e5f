"""The search index: one card per graph node, in an SQLite file of its own beside the graph.

Tables of `<graph stem>.search.sqlite` (the extractor's graph file is never written to, so an
incremental `make extract` cannot leave it half-consistent):
  cards(rowid, id, type, name, qualname, path, start_line, end_line, prior, embed_text, text_hash)
  fts   FTS5(name, qual, sig, doc, summary, rel, body), rowid = cards.rowid, porter + unicode61
  adj(src, dst, kind)   graph edges between cards (both directions are derived at load)
  meta(key, value)      graph it was built from (path, updated_at, node count), format
Every text column holds identifiers whole and split (`get_user_name get user name`), because
FTS5's tokenizer splits at `_` but not at case changes, and questions are written in words.
`embed_text` is what `brain.embed` embeds; `text_hash` lets it skip unchanged cards.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from brain.config import BrainConfig, index_path
from brain.facts import CALLABLES, GraphFacts
from brain.text import (
    STOPWORDS,
    Segmenter,
    first_sentence,
    identifier_terms,
    join_terms,
    split_identifier,
    strip_citations,
)
from nanodex.errors import NanodexError
from nanodex.log import progress
from nanodex.paths import atomic_path

INDEX_FORMAT = "nanodex-search/1"
COLUMNS = ("name", "qual", "sig", "doc", "summary", "rel", "body")
EDGE_KINDS = {
    "calls": 0,
    "defined_in": 1,
    "extends": 2,
    "implements": 2,
    "throws": 3,
    "tests": 4,
    "imports": 5,
}
_MAX_BODY_LINES = 400
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD_RE = re.compile(r"[A-Za-z]{2,}")
_STRING_START = re.compile(r"^[rbuRBU]{0,2}(\"\"\"|'''|\"|')")
# Words so common in code that they say nothing about what a function does.
_CODE_NOISE_TEXT = """self cls def return if else elif for while in not none true false and or is import from as
    class pass break continue try except finally raise with yield lambda global nonlocal assert del
    async await print len str int float bool dict list tuple set object isinstance super range
    var let const function new this null undefined void public private protected static final"""
CODE_NOISE = frozenset(_CODE_NOISE_TEXT.split())


@dataclass
class Card:
    """The searchable text of one graph node."""

    id: str
    type: str
    name: str
    qualname: str
    path: str
    start_line: int
    end_line: int
    cols: dict[str, str]
    embed_text: str
    prior: float = 0.0


def _docstring_span(lines: list[str], start: int, end: int) -> tuple[int, int]:
    """0-based [a, b) lines of a Python docstring right after the signature, or (0, 0)."""
    i = start - 1
    while i < end and i < len(lines) and not lines[i].rstrip().endswith(":"):
        i += 1
    i += 1
    while i < end and i < len(lines) and not lines[i].strip():
        i += 1
    if i >= min(end, len(lines)):
        return (0, 0)
    m = _STRING_START.match(lines[i].strip())
    if not m:
        return (0, 0)
    quote = m.group(1)
    rest = lines[i].strip()[m.end() :]
    if quote in rest:
        return (i, i + 1)
    j = i + 1
    while j < min(end, len(lines)) and quote not in lines[j]:
        j += 1
    return (i, j + 1)


def _outside(lines: list[str], start: int, end: int, holes: list[tuple[int, int]]) -> list[str]:
    """Lines start..end (1-based) not inside any of the (1-based, inclusive) `holes`."""
    end = min(end, len(lines))
    covered = bytearray(end + 2)
    for a, b in holes:
        if b >= a:
            covered[max(a, 0) : min(b, end) + 1] = b"\x01" * (min(b, end) + 1 - max(a, 0))
    keep = [lines[no - 1] for no in range(start, end + 1) if not covered[no]]
    return keep[:_MAX_BODY_LINES]


def body_lines(facts: GraphFacts, node_id: str) -> list[str]:
    """The code of a node that belongs to it: docstring left out, nested definitions left out for
    classes and modules (their members have cards of their own)."""
    node = facts.nodes[node_id]
    lines = facts.lines(node.path)
    if not lines:
        return []
    if node.type in CALLABLES:
        a, b = _docstring_span(lines, node.start_line, node.end_line) if node.lang == "python" else (0, 0)
        out = [
            ln
            for i, ln in enumerate(lines[node.start_line : node.end_line], node.start_line)
            if not a <= i < b
        ]
        return out[:_MAX_BODY_LINES]
    kids = [facts.nodes[k] for k in facts.children.get(node_id, [])]
    holes = [(k.start_line, k.end_line) for k in kids]
    if node.type == "module":
        a, b = _docstring_span(["x:", *lines], 1, len(lines) + 1) if node.lang == "python" else (0, 0)
        holes.append((a, b - 1) if b else (0, 0))
        return _outside(lines, 1, len(lines), holes)
    return _outside(lines, node.start_line + 1, node.end_line, holes)


def key_terms(terms: list[str], limit: int) -> list[str]:
    """Distinct meaningful words of some code's terms, most frequent first (for the dense text)."""
    counts: Counter[str] = Counter(
        t for t in terms if len(t) > 2 and t not in CODE_NOISE and t not in STOPWORDS and not t.isdigit()
    )
    return [t for t, _ in counts.most_common(limit)]


def code_terms(text: str, seg: Segmenter | None) -> list[str]:
    """identifier_terms of code without keywords and builtins (`return`, `self`, `len` ...)."""
    return [t for t in identifier_terms(text, segmenter=seg) if t not in CODE_NOISE]


def words(text: str, seg: Segmenter | None) -> str:
    """An identifier as plain words, for the dense text: `getElementsByTagName` -> `get elements by tag name`."""
    out: list[str] = []
    for part in split_identifier(text):
        out.extend(seg.split(part) if seg is not None else [part])
    return " ".join(out)


def make_card(facts: GraphFacts, node_id: str, summaries: list[str], seg: Segmenter | None = None) -> Card:
    """The card of one graph node (see the module docstring for the columns)."""
    f = facts
    node = f.nodes[node_id]
    module = f.nodes.get(node.path)
    mod_name = module.qualname if module is not None else node.path
    owner_part = node.qualname[: -len(node.name)].rstrip(".") if node.qualname.endswith(node.name) else ""
    sig = node.signature or ""
    params = sig[sig.find(node.name) + len(node.name) :] if node.name in sig else sig
    callees = [f.nodes[r.other].qualname for r in f.outgoing(node_id, "calls")]
    callers = [f.nodes[r.other].qualname for r in f.incoming(node_id, "calls")]
    raised = [f.nodes[r.other].name for r in f.outgoing(node_id, "throws")] + [
        str(x) for x in node.meta.get("raises", []) or []
    ]
    bases = [f.nodes[r.other].name for r in f.outgoing(node_id, "extends")] + [
        str(x) for x in node.meta.get("external_bases", []) or []
    ]
    kids = [f.nodes[k].name for k in f.children.get(node_id, [])]
    body = body_lines(f, node_id) if node.type != "module" or len(kids) < 2000 else []

    def terms(text: str, synonyms: bool = False) -> str:
        return join_terms(identifier_terms(text, segmenter=seg, synonyms=synonyms))

    def _w(text: str) -> str:
        return words(text, seg)

    body_terms = code_terms("\n".join(body), seg)
    cols = {
        "name": terms(node.name if node.type != "module" else mod_name, synonyms=True),
        "qual": terms(f"{owner_part} {mod_name}"),
        "sig": join_terms(code_terms(params, seg)),
        "doc": join_terms([node.doc, *identifier_terms(node.doc, expand=False)]) if node.doc else "",
        "summary": terms(strip_citations(" ".join(summaries))),
        "rel": terms(" ".join(callees + callers[:20] + raised + bases + kids[:60])),
        "body": join_terms(body_terms),
    }
    kind = node.type
    parts = [f"{kind} {_w(node.qualname) if node.type != 'module' else _w(mod_name)}"]
    if params.strip():
        parts.append(f"({_w(params)})")
    doc = first_sentence(node.doc)
    if doc:
        parts.append(doc)
    if node.type != "module":
        parts.append(f"in {_w(mod_name)}")
    if callees:
        parts.append("calls " + ", ".join(_w(c.rsplit(".", 1)[-1]) for c in callees[:8]))
    if raised:
        parts.append("raises " + ", ".join(_w(r) for r in raised[:4]))
    if bases:
        parts.append("extends " + ", ".join(_w(b.rsplit(".", 1)[-1]) for b in bases[:4]))
    if kids and node.type != "module":
        parts.append("has " + ", ".join(_w(k) for k in kids[:12]))
    elif kids:
        parts.append("defines " + ", ".join(_w(k) for k in kids[:16]))
    terms_ = key_terms(body_terms, 12)
    if terms_:
        parts.append("uses " + " ".join(terms_))
    embed_text = ". ".join(parts)
    return Card(
        id=node.id,
        type=node.type,
        name=node.name,
        qualname=node.qualname,
        path=node.path,
        start_line=node.start_line,
        end_line=node.end_line,
        cols=cols,
        embed_text=embed_text,
    )


_PROSE = re.compile(r"#(.*)$|//(.*)$|\"([^\"]*)\"|'([^']*)'")


def build_segmenter(facts: GraphFacts) -> Segmenter:
    """Word statistics of the indexed code for splitting run-together names (see `Segmenter`).

    A word is taken as a real word when it occurs as a part of snake/camel identifiers or in
    comments and strings at least as often as it occurs as a bare name in code (`generator` yes,
    `makedirs` no).
    """
    counts: Counter[str] = Counter()
    parts_seen: Counter[str] = Counter()
    prose: Counter[str] = Counter()
    bare: Counter[str] = Counter()
    split_memo: dict[str, list[str]] = {}
    for path in sorted(facts.file_lines):
        for line in facts.lines(path):
            code = _PROSE.sub(" ", line)
            for ident in _IDENT_RE.findall(code):
                parts = split_memo.get(ident)
                if parts is None:
                    parts = split_memo[ident] = split_identifier(ident)
                if len(parts) > 1:
                    parts_seen.update(parts)
                elif parts:
                    bare[parts[0]] += 1
            for m in _PROSE.finditer(line):
                prose.update(
                    w.lower() for w in _WORD_RE.findall(next(g for g in m.groups() if g is not None))
                )
    counts.update(parts_seen)
    counts.update(prose)
    words = parts_seen + prose
    real = {w for w, c in words.items() if c >= 2 and c >= bare.get(w, 0)}
    return Segmenter(dict(counts), real)


def centrality(facts: GraphFacts) -> dict[str, float]:
    """A cheap, query-independent prior in [0, 1]: log in-degree over calls, tests and imports."""
    deg = {
        i: len(facts.incoming(i, "calls"))
        + len(facts.incoming(i, "tests"))
        + len(facts.incoming(i, "imports"))
        for i in facts.nodes
    }
    top = math.log1p(max(deg.values(), default=0)) or 1.0
    return {i: math.log1p(d) / top for i, d in deg.items()}


def build_index(
    facts: GraphFacts, summaries: dict[str, list[str]], out: Path, graph_meta: dict
) -> tuple[int, int]:
    """Write the whole index to `out` atomically; returns (cards, edges)."""
    prior = centrality(facts)
    seg = build_segmenter(facts)
    order = sorted(facts.nodes, key=lambda i: (facts.nodes[i].path, facts.nodes[i].start_line, i))
    with atomic_path(out) as tmp:
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript(
                f"""
                PRAGMA journal_mode=OFF;
                CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
                CREATE TABLE cards(rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, type TEXT, name TEXT,
                    qualname TEXT, path TEXT, start_line INTEGER, end_line INTEGER, prior REAL,
                    embed_text TEXT, text_hash TEXT);
                CREATE VIRTUAL TABLE fts USING fts5({", ".join(COLUMNS)}, tokenize='porter unicode61');
                CREATE TABLE adj(src INTEGER NOT NULL, dst INTEGER NOT NULL, kind INTEGER NOT NULL);
                """
            )
            rowid_of: dict[str, int] = {}
            for rowid, node_id in enumerate(progress(order, total=len(order), desc="index", unit="node"), 1):
                card = make_card(facts, node_id, summaries.get(node_id, []), seg)
                rowid_of[node_id] = rowid
                digest = hashlib.sha1(card.embed_text.encode()).hexdigest()
                conn.execute(
                    "INSERT INTO cards VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        rowid,
                        card.id,
                        card.type,
                        card.name,
                        card.qualname,
                        card.path,
                        card.start_line,
                        card.end_line,
                        prior.get(node_id, 0.0),
                        card.embed_text,
                        digest,
                    ),
                )
                conn.execute(
                    f"INSERT INTO fts(rowid, {', '.join(COLUMNS)}) VALUES(?{',?' * len(COLUMNS)})",
                    (rowid, *(card.cols[c] for c in COLUMNS)),
                )
            edges = set()
            for src, kinds in facts.out.items():
                for kind, rels in kinds.items():
                    code = EDGE_KINDS.get(kind)
                    if code is None or src not in rowid_of:
                        continue
                    for r in rels:
                        if r.other in rowid_of and r.other != src:
                            edges.add((rowid_of[src], rowid_of[r.other], code))
            conn.executemany("INSERT INTO adj VALUES(?,?,?)", sorted(edges))
            conn.execute("CREATE INDEX adj_src ON adj(src)")
            conn.execute("CREATE INDEX cards_name ON cards(name)")
            conn.execute("CREATE INDEX cards_qualname ON cards(qualname)")
            conn.execute("INSERT INTO fts(fts) VALUES('optimize')")
            meta = {"format": INDEX_FORMAT, **graph_meta, "cards": len(order), "edges": len(edges)}
            conn.executemany("INSERT INTO meta VALUES(?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            conn.commit()
        finally:
            conn.close()
    return len(order), len(edges)


def open_index(cfg: BrainConfig) -> sqlite3.Connection:
    """The search index, read-only; one clear error when the graph or the brain is missing."""
    if not Path(cfg.graph).is_file():
        raise NanodexError(f"code graph not found: {cfg.graph}", "run `make extract REPO=<repo>` first")
    path = index_path(cfg)
    if not path.is_file():
        raise NanodexError(f"search index not found: {path}", "run `make brain` first")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        fmt = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.DatabaseError as err:
        conn.close()
        raise NanodexError(
            f"{path} is not a nanodex search index ({err})", "run `make brain` to rebuild it"
        ) from err
    if not fmt or json.loads(fmt[0]) != INDEX_FORMAT:
        conn.close()
        raise NanodexError(f"{path} was written by another nanodex version", "run `make brain` to rebuild it")
    return conn
