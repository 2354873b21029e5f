"""What a block of code does, read from the code shown: the first sentence of a training answer.

An answer is trained to open with the symbol and the label of the block that answers
(`Pool.acquire` [src/pkg/pool.py:40-88]) and to say what that code does. The words come from
the lines in the block, the same lines the model is shown: the docstring's first sentence (or a
comment right above or below the signature), the exceptions it raises, what it returns and the
calls it makes. A template that never looks at the code teaches the model to ignore it.

The code is read as text (never imported, parsed by an interpreter or run), so this works, more
roughly, for every language the extractor indexes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dataset.compose import clean, tick
from dataset.templates import DOC_VERBS

_DEF = re.compile(
    r"^\s*(?:@\S+\s*)?(?:export\s+)?(?:pub(?:\(\w+\))?\s+)?(?:async\s+)?"
    r"(?:def|class|func|fn|function|interface|struct|enum|trait|type)\b"
)
_DOC_OPEN = re.compile(r'^\s*[rbuRBU]?("""|\'\'\'|"|\')')
_COMMENT = re.compile(r"^\s*(?:#|//+|/\*+|\*)\s?(.*?)\s*(?:\*/)?$")
_RAISE = re.compile(r"\b(?:raise|throw(?:\s+new)?)\s+([A-Za-z_][\w.]*)")
_RETURN = re.compile(r"^\s*return\s+(.+?)\s*;?\s*$")
_CALL = re.compile(r"(?<![\w.])((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)\s*\(")
_NOT_CALLS = frozenset(
    [
        "if",
        "elif",
        "while",
        "for",
        "return",
        "raise",
        "assert",
        "print",
        "len",
        "isinstance",
        "issubclass",
        "str",
        "int",
        "float",
        "bool",
        "list",
        "dict",
        "set",
        "tuple",
        "frozenset",
        "range",
        "enumerate",
        "zip",
        "sorted",
        "reversed",
        "any",
        "all",
        "min",
        "max",
        "sum",
        "super",
        "getattr",
        "setattr",
        "hasattr",
        "type",
        "repr",
        "iter",
        "next",
        "open",
        "map",
        "filter",
        "not",
        "and",
        "or",
        "in",
        "is",
        "lambda",
        "def",
        "class",
        "func",
        "fn",
        "function",
        "new",
        "throw",
        "catch",
        "switch",
        "case",
        "with",
        "except",
        "yield",
        "await",
        "self",
        "cls",
        "this",
    ]
)
# methods of builtin containers and strings: calls on local values, not what the code is about
_VALUE_METHODS = frozenset(
    [
        "get",
        "pop",
        "append",
        "extend",
        "insert",
        "remove",
        "items",
        "keys",
        "values",
        "update",
        "add",
        "discard",
        "setdefault",
        "copy",
        "clear",
        "join",
        "split",
        "rsplit",
        "strip",
        "lstrip",
        "rstrip",
        "partition",
        "rpartition",
        "format",
        "startswith",
        "endswith",
        "replace",
        "lower",
        "upper",
        "encode",
        "decode",
        "splitlines",
        "read",
        "write",
        "read_text",
        "write_text",
        "sort",
        "index",
        "count",
        "group",
        "groups",
        "match",
        "search",
        "finditer",
        "findall",
        "sub",
        "exists",
        "is_file",
        "is_dir",
        "mkdir",
        "unlink",
    ]
)
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)`'\"])[.!?](?=\s|$)")


@dataclass
class CodeFacts:
    """What the lines of one block say about the symbol at its top."""

    doc: str = ""  # first sentence of the docstring or leading comment, cleaned
    raises: list[str] = field(default_factory=list)
    returns: list[str] = field(default_factory=list)  # returned expressions, short ones only
    calls: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)  # functions defined inside (a class's methods)
    signature: str = ""


def read_code(code: str, name: str = "", module: bool = False) -> CodeFacts:
    """The facts of `code` (the block's text); `name` (the symbol's own name) is not a call it
    makes; `module`: the block is the head of a file (its docstring is at the top)."""
    lines = code.splitlines()
    facts = CodeFacts()
    head = None if module else next((i for i, t in enumerate(lines) if _DEF.match(t)), None)
    if head is not None:
        sig = []
        for t in lines[head : head + 12]:
            sig.append(t.strip())
            if t.rstrip().endswith((":", "{")):
                break
        facts.signature = re.sub(r"\(\s+", "(", re.sub(r",?\s+\)", ")", " ".join(sig))).rstrip(":{ ")
    facts.doc = _doc(lines, head)
    inner = (
        r"^(?:async\s+)?(?:def|class|func|fn|function)\s+(\w+)"
        if module
        else r"^\s+(?:async\s+)?(?:def|func|fn|function)\s+(\w+)"
    )
    for t in lines[(head or 0) + 1 :]:
        m = re.match(inner, t)
        if m and not m.group(1).startswith("_") and m.group(1) not in facts.methods:
            facts.methods.append(m.group(1))
    own = name.rsplit(".", 1)[-1]
    body = lines[head + 1 :] if head is not None else lines
    in_doc = False
    for t in body:
        s = t.strip()
        if in_doc:  # skip docstring lines: their words are not code
            in_doc = not s.endswith(('"""', "'''"))
            continue
        if s.startswith(('"""', "'''")):
            in_doc = not (len(s) > 3 and s.endswith(s[:3]))
            continue
        if s.startswith(("#", "//", "*", "/*")):
            continue
        for m in _RAISE.finditer(s):
            err = m.group(1).rsplit(".", 1)[-1]
            if err[:1].isupper() and err not in facts.raises:
                facts.raises.append(err)
        r = _RETURN.match(t)
        ret = r.group(1) if r else ""
        if (
            ret
            and len(ret) <= 48
            and "`" not in ret
            and ret.count("(") == ret.count(")")
            and ret.count("[") == ret.count("]")
            and ret not in facts.returns
        ):
            facts.returns.append(ret)
        for m in _CALL.finditer(s.split("#", 1)[0]):
            call = m.group(1)
            last = call.rsplit(".", 1)[-1]
            if (
                last in _NOT_CALLS
                or last == own
                or last.startswith("__")
                or ("." in call and last in _VALUE_METHODS)
                or last in facts.raises
            ):
                continue
            call = call.removeprefix("self.").removeprefix("cls.").removeprefix("this.")
            if call not in facts.calls:
                facts.calls.append(call)
    return facts


def _doc(lines: list[str], head: int | None) -> str:
    """The first sentence of the docstring under the signature, else of the comment above it."""
    start = 0 if head is None else head + 1
    if head is not None:  # a signature spread over several lines ends at its ':' / '{'
        while start < len(lines) and not lines[start - 1].rstrip().endswith((":", "{")):
            start += 1
            if start - head > 12:
                start = head + 1
                break
    text: list[str] = []
    if start < len(lines):
        m = _DOC_OPEN.match(lines[start])
        if m:
            quote = m.group(1)
            first = lines[start][m.end() :]
            text.append(first.split(quote, 1)[0])
            if quote not in first:
                for t in lines[start + 1 : start + 6]:
                    text.append(t.split(quote, 1)[0])
                    if quote in t or not t.strip():
                        break
    if not "".join(text).strip():  # a comment block right above the signature (Go, Rust, JS)
        text = []
        for t in reversed(lines[: head or 0]):
            m = _COMMENT.match(t)
            if not m or not t.strip():
                break
            text.insert(0, m.group(1))
    joined = " ".join(" ".join(text).split())
    if not joined or not joined[0].isalpha():
        return ""
    end = _SENTENCE_END.search(joined)
    first = joined[: end.start() + 1] if end else joined
    if len(first.split()) > 30:
        return ""
    return clean(first)


def _conjugate(doc: str) -> str:
    """'Read a JSONL file.' -> 'reads a JSONL file.' (only for imperative verbs we know)."""
    word, _, rest = doc.partition(" ")
    low = word.lower()
    if not word[:1].isupper() or low not in DOC_VERBS or not rest:
        return ""
    if low.endswith(("s", "sh", "ch", "x", "z", "o")):
        verb = low + "es"
    elif low.endswith("y") and low[-2:-1] not in "aeiou":
        verb = low[:-1] + "ies"
    else:
        verb = low + "s"
    return f"{verb} {rest}"


def _names(items: list[str], limit: int) -> str:
    shown = [tick(x) for x in items[:limit]]
    return ", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0]


def what_it_does(f: CodeFacts) -> tuple[str, str]:
    """(joiner, predicate) for "`name` [label]<joiner><predicate>": 'reads a file.', ': Doc.' ..."""
    said = _conjugate(f.doc) if f.doc else ""
    if said:
        return " ", said
    if f.doc:
        return ": ", f.doc
    if f.signature and "`" not in f.signature:
        return " is defined as ", f"{tick(f.signature)}."
    return " is the code shown", "."


def describe(
    name: str,
    label: str,
    code: str,
    focus: str = "",
    extra: int = 2,
    kind: str = "function",
    skip: frozenset[str] = frozenset(),
) -> str:
    """`name` [label] + what the code shown does, in one to three short sentences.

    `focus` ('raises', 'returns', 'calls', 'methods') puts that statement first, for questions
    about it; at most `extra` statements follow the opening one, none of those in `skip` (the
    answer says them otherwise). `kind` is the graph node type ('module': the docstring is at
    the top; a class: its methods, not its calls).
    """
    f = read(code, name, kind)
    own = name.rsplit(".", 1)[-1]
    if f.doc.startswith(own + " ") and len(f.doc) > len(own) + 1:  # Go style: "Open dials ..."
        joiner, predicate = " ", f.doc[len(own) + 1 :]
    else:
        joiner, predicate = what_it_does(f)
    opening = f"{tick(name)} {label}{joiner}{predicate}"
    classy = kind not in ("function", "method")
    stmts = {
        "raises": f"It raises {_names(f.raises, 3)}." if f.raises and not classy else "",
        "returns": f"It returns {_names(f.returns, 2)}." if f.returns and not classy else "",
        "calls": f"It calls {_names(f.calls, 3)}." if f.calls and not classy else "",
        "methods": f"It defines {_names(f.methods, 4)}." if f.methods and classy else "",
    }
    order = [focus] if focus in stmts else []
    order += [k for k in ("methods", "raises", "returns", "calls") if k not in order]
    said_more = [stmts[k] for k in order if stmts[k] and k not in skip][:extra]
    return " ".join([opening, *said_more])


def read(code: str, name: str, kind: str) -> CodeFacts:
    """`read_code` for a graph node type, with a long parameter list elided from the signature."""
    f = read_code(code, name, module=kind == "module")
    if len(f.signature) > 90:  # a long parameter list says little in an answer
        f.signature = re.sub(r"\(.*\)", "(...)", f.signature, count=1)
    return f
