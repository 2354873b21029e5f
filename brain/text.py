"""Text helpers shared by the summarizer, the index and search: identifier splitting and token budgets.

Users ask in words ("parse the config file") while code says `parseConfigFile` or `load_cfg`, so
every identifier is indexed both whole and split into its parts, and common programming
abbreviations gain their long form. The same functions run on questions, so both sides meet on
the same terms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from answer.citations import CITATION

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"])|\n\s*\n")

# Short words that carry no meaning for search (questions and docs alike).
_STOPWORDS_TEXT = """a an and are as at be been being but by can could do does did for from had has have how i if in
    into is it its may might me my of on or our shall should so such than that the their them then there
    these they this those to was we were what when where which while who whom why will with would you
    your yours any all each every some no not only own same other also just very too via using use used
    given"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

# Abbreviations common in identifiers, mapped to the words people write.
ABBREVIATIONS: dict[str, str] = {
    "abs": "absolute",
    "addr": "address",
    "alloc": "allocate",
    "arg": "argument",
    "args": "arguments",
    "attr": "attribute",
    "attrs": "attributes",
    "auth": "authentication",
    "buf": "buffer",
    "calc": "calculate",
    "cb": "callback",
    "cfg": "configuration",
    "char": "character",
    "chk": "check",
    "cls": "class",
    "cmd": "command",
    "cmp": "compare",
    "cnt": "count",
    "conf": "configuration",
    "config": "configuration",
    "conn": "connection",
    "ctx": "context",
    "cur": "current",
    "db": "database",
    "decl": "declaration",
    "del": "delete",
    "desc": "description",
    "dest": "destination",
    "dict": "dictionary",
    "dir": "directory",
    "dirs": "directories",
    "doc": "documentation",
    "dst": "destination",
    "elem": "element",
    "env": "environment",
    "err": "error",
    "exc": "exception",
    "exe": "executable",
    "expr": "expression",
    "ext": "extension",
    "fd": "descriptor",
    "fmt": "format",
    "fn": "function",
    "func": "function",
    "gen": "generate",
    "hdr": "header",
    "idx": "index",
    "impl": "implementation",
    "info": "information",
    "init": "initialize",
    "iter": "iterate",
    "len": "length",
    "lib": "library",
    "ln": "line",
    "max": "maximum",
    "mem": "memory",
    "min": "minimum",
    "mod": "module",
    "msg": "message",
    "msgs": "messages",
    "num": "number",
    "obj": "object",
    "param": "parameter",
    "params": "parameters",
    "pos": "position",
    "prev": "previous",
    "proc": "process",
    "ptr": "pointer",
    "pkg": "package",
    "recv": "receive",
    "ref": "reference",
    "regex": "expression",
    "repr": "representation",
    "req": "request",
    "res": "result",
    "resp": "response",
    "ret": "return",
    "rm": "remove",
    "seq": "sequence",
    "sock": "socket",
    "src": "source",
    "stat": "status",
    "str": "string",
    "sync": "synchronize",
    "sys": "system",
    "tmp": "temporary",
    "temp": "temporary",
    "tok": "token",
    "txt": "text",
    "usr": "user",
    "util": "utility",
    "val": "value",
    "var": "variable",
    "ws": "whitespace",
    "exec": "execute",
    "eval": "evaluate",
    "stdin": "input",
    "stdout": "output",
    "lineno": "line",
    "mkdir": "make directory",
    "getcwd": "current directory",
    "ns": "namespace",
    "pid": "process",
    "tb": "traceback",
    "ts": "timestamp",
    "tz": "timezone",
    "url": "address",
    "uri": "address",
    "coro": "coroutine",
    "async": "asynchronous",
    "opt": "option",
    "opts": "options",
    "elt": "element",
    "nl": "newline",
    "eof": "end",
    "sep": "separator",
    "delim": "delimiter",
    "prog": "program",
    "lst": "list",
}


# Verbs that start names, and the words docstrings and questions use for them instead.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "get": ("return", "retrieve", "fetch"),
    "fetch": ("get", "retrieve"),
    "is": ("true", "whether", "check"),
    "has": ("true", "whether", "check"),
    "can": ("true", "whether"),
    "set": ("assign", "change"),
    "make": ("create", "build", "new"),
    "create": ("make", "build", "new"),
    "new": ("create", "make"),
    "build": ("create", "make", "construct"),
    "del": ("delete", "remove"),
    "delete": ("remove",),
    "remove": ("delete",),
    "rm": ("remove", "delete"),
    "discard": ("remove",),
    "pop": ("remove", "return"),
    "clear": ("remove", "reset"),
    "add": ("append", "insert"),
    "append": ("add",),
    "insert": ("add",),
    "push": ("add",),
    "to": ("convert",),
    "as": ("convert",),
    "load": ("read",),
    "read": ("load",),
    "dump": ("write", "save"),
    "save": ("write", "store"),
    "write": ("save", "output"),
    "calc": ("compute", "calculate"),
    "compute": ("calculate",),
    "count": ("number",),
    "num": ("number", "count"),
    "size": ("length", "number"),
    "len": ("length", "number"),
    "iter": ("iterate", "iterator"),
    "init": ("initialize",),
    "reset": ("clear",),
    "run": ("execute",),
    "exec": ("execute", "run"),
    "check": ("verify", "validate"),
    "validate": ("check", "verify"),
    "find": ("search", "look"),
    "search": ("find",),
    "lookup": ("find", "look"),
    "match": ("find",),
    "send": ("write", "transmit"),
    "recv": ("read", "receive"),
    "open": ("create",),
    "close": ("shut",),
    "copy": ("duplicate",),
    "str": ("string", "text"),
    "repr": ("representation", "string"),
    "fmt": ("format",),
    "format": ("string",),
}


def split_identifier(ident: str) -> list[str]:
    """'parseHTTPRequest_v2' -> ['parse', 'http', 'request', 'v', '2'] (lower case, in order)."""
    parts: list[str] = []
    for chunk in ident.split("_"):
        parts.extend(p.lower() for p in _CAMEL.findall(chunk))
    return parts


class Segmenter:
    """Splits run-together lower-case names (`getgeneratorstate`, `isdir`) into words.

    A unigram model over the indexed code itself, so no dictionary is needed: `counts` says how
    often each word occurs (as a part of snake/camel identifiers, or in comments and strings), and
    `real` holds the words seen in prose or as such a part. A real word stays whole; any other
    name is split into the cheapest sequence of known words, when one exists.
    """

    MIN_LEN = 5
    SHORT_WORDS = frozenset(
        ["is", "by", "to", "of", "id", "io", "os", "fd", "no", "get", "set", "add", "put", "has", "new"]
    )
    SPLIT_COST = 1.0  # nats per extra piece, so fewer pieces win among similar costs

    def __init__(self, counts: dict[str, int], real: set[str]) -> None:
        self.counts = {
            w: c
            for w, c in counts.items()
            if c >= 2 and w.isalpha() and (len(w) >= 3 or w in self.SHORT_WORDS)
        }
        self.real = real
        self.total = float(sum(self.counts.values()) or 1)
        self.max_len = max((len(w) for w in self.counts), default=0)
        self._memo: dict[str, list[str]] = {}
        self.memo: dict[tuple[str, bool, bool], list[str]] = {}  # identifier_terms per identifier

    def _cost(self, word: str) -> float:
        c = self.counts.get(word)
        return math.log(self.total / c) if c else math.inf

    def split(self, word: str) -> list[str]:
        """The pieces of `word`, or [word] when it is a real word or cannot be split."""
        if len(word) < self.MIN_LEN or word in self.real or not word.isalpha():
            return [word]
        found = self._memo.get(word)
        if found is not None:
            return found
        n = len(word)
        best = [0.0] + [math.inf] * n
        back = [0] * (n + 1)
        for i in range(1, n + 1):
            for j in range(max(0, i - self.max_len), i):
                if best[j] == math.inf or (j == 0 and i == n):  # not a real word: never keep it whole
                    continue
                cost = best[j] + self._cost(word[j:i]) + (self.SPLIT_COST if j else 0.0)
                if cost < best[i]:
                    best[i], back[i] = cost, j
        pieces: list[str] = []
        i = n
        while i > 0 and best[n] < math.inf:
            pieces.insert(0, word[back[i] : i])
            i = back[i]
        result = pieces if 1 < len(pieces) <= 4 else [word]
        self._memo[word] = result
        return result


def _ident_terms(ident: str, expand: bool, segmenter: Segmenter | None, synonyms: bool) -> list[str]:
    parts = split_identifier(ident)
    whole = ident.lower().strip("_")
    out: list[str] = [whole] if whole and (len(parts) != 1 or parts[0] != whole) else []
    if segmenter is not None:
        pieces = []
        for p in parts:
            pieces.append(p)
            split = segmenter.split(p)
            if len(split) > 1:
                pieces.extend(split)
        parts = pieces
    out.extend(parts)
    if expand:
        out.extend(ABBREVIATIONS[p] for p in parts if p in ABBREVIATIONS)
    if synonyms:
        for p in parts:
            out.extend(SYNONYMS.get(p, ()))
    return out


def identifier_terms(
    text: str, *, expand: bool = True, segmenter: Segmenter | None = None, synonyms: bool = False
) -> list[str]:
    """Every identifier of `text` whole (lower case) and split into parts, abbreviations expanded.

    `get_user_name` gives `get_user_name get user name`; `cfg` adds `configuration`; with a
    segmenter `isdir` adds `is dir`; with synonyms `get` adds `return retrieve fetch`. Order
    follows the text, duplicates are kept (term frequency matters to bm25). Results per
    identifier are memoized in the segmenter, since the same names recur all over a codebase.
    """
    memo = segmenter.memo if segmenter is not None else None
    out: list[str] = []
    for ident in _IDENT.findall(text):
        if memo is None:
            out.extend(_ident_terms(ident, expand, None, synonyms))
            continue
        key = (ident, expand, synonyms)
        found = memo.get(key)
        if found is None:
            found = memo[key] = _ident_terms(ident, expand, segmenter, synonyms)
        out.extend(found)
    return out


def query_terms(question: str) -> list[str]:
    """The distinct content terms of a question, in order: identifiers split, stop words dropped."""
    seen: dict[str, None] = {}
    for term in identifier_terms(question):
        if term not in STOPWORDS and (len(term) > 1 or term.isdigit()):
            seen.setdefault(term, None)
    return list(seen)


_CODE_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def code_identifiers(question: str) -> list[str]:
    """Tokens of a question that are written like code (`test_take`, `OutOfStock`, `Cart.add`, `run()`)."""
    out: list[str] = []
    for m in _CODE_LIKE.finditer(question):
        tok = m.group(0)
        called = question[m.end() : m.end() + 1] == "("
        if "_" in tok.strip("_") or "." in tok or called or re.search(r"[a-z][A-Z]", tok):
            out.append(tok)
    return out


def count_tokens(text: str) -> int:
    """A tokenizer-free token count: words and punctuation marks, which errs high against BPE."""
    return len(_TOKEN.findall(text))


def clip_tokens(text: str, max_tokens: int) -> str:
    """`text` cut at the last whole token that keeps it within `max_tokens`."""
    if count_tokens(text) <= max_tokens:
        return text
    end = 0
    for i, m in enumerate(_TOKEN.finditer(text)):
        if i >= max_tokens:
            break
        end = m.end()
    cut = text[:end].rstrip()
    if cut.rfind("[") > cut.rfind("]"):  # never leave half a citation behind
        cut = cut[: cut.rfind("[")].rstrip()
    return cut


def first_sentence(doc: str, max_chars: int = 240) -> str:
    """The first sentence (or first paragraph line) of a docstring, whitespace collapsed."""
    doc = doc.strip()
    if not doc:
        return ""
    head = _SENTENCE_END.split(doc, maxsplit=1)[0]
    head = " ".join(head.split())
    if len(head) > max_chars:
        head = head[:max_chars].rsplit(" ", 1)[0] + " ..."
    return head


def strip_citations(text: str) -> str:
    """`text` without its `[path:start-end]` citations (they are noise to a search index)."""
    return CITATION.sub(" ", text)


def citations_in(text: str) -> list[tuple[str, int, int]]:
    """The `[path:start-end]` / `[path:line]` citations of `text` as (path, start, end)."""
    out = []
    for m in CITATION.finditer(text):
        start = int(m.group(2))
        out.append((m.group(1), start, int(m.group(3) or start)))
    return out


def join_terms(parts: Iterable[str]) -> str:
    return " ".join(p for p in parts if p)
