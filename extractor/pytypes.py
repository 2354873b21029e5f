"""Receiver types from annotations: the text of an annotation -> the name of a class.

Python annotations (`direct`, `element`), and the declared types of Java and TypeScript
(`declared`: `List<Shape>` -> `List`, `Store<User> | undefined` -> `Store`).

A call `x.m()` resolves precisely when `x`'s class is known; annotations (`x: Item`,
`-> list[Item]`, `self.kind: Kind`) say it, where the code has them. This module only turns
annotation text into the dotted name of a class (or of a container's element class); whether
that name is a repository class is the resolver's question, asked in the annotation's own file.

Receiver type expressions (stored as a reference's receiver after parse-time substitution):
  `Name` / `mod.Name`   an instance (or the class) named by an annotation;
  `callee()`            the result of calling `callee` (a class: its instance; a function: its
                        return annotation);
  `callee()[]`          an element of that result (`for x in callee():`).
"""

from __future__ import annotations

import re

_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
# Wrappers whose first argument is the type itself (an optional value, a class object, an alias).
_TRANSPARENT = {"Optional", "Type", "type", "Final", "ClassVar", "Annotated", "Required", "NotRequired"}
# Containers whose first argument is the element type (`for x in c`).
_CONTAINERS = {
    "list",
    "List",
    "set",
    "Set",
    "frozenset",
    "FrozenSet",
    "tuple",
    "Tuple",
    "Sequence",
    "MutableSequence",
    "Iterable",
    "Iterator",
    "Collection",
    "AbstractSet",
    "MutableSet",
    "Generator",
    "AsyncIterator",
    "AsyncIterable",
    "AsyncGenerator",
    "Deque",
    "deque",
}
_NONE = {"None", "NoneType"}


def _split_args(text: str) -> list[str]:
    """Top-level comma-separated parts of `text` (brackets nest)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _head(text: str) -> tuple[str, list[str]]:
    """'typing.Optional[X]' -> ('Optional', ['X']); 'Foo' -> ('Foo', [])."""
    if text.endswith("]") and "[" in text:
        base, _, inner = text[:-1].partition("[")
        return base.strip(), _split_args(inner)
    return text, []


def _strip(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()  # a forward reference "Item"
    return text


def _non_none(text: str) -> str:
    """`X | None`, `Union[X, None]`, `Optional[X]` (and Final/ClassVar/type[X]) -> 'X'; '' if no
    single type remains."""
    text = _strip(text)
    for _ in range(4):  # wrappers nest: Optional[ClassVar["X"]]
        parts = [_strip(p) for p in _split_args(text.replace("|", ","))] if "|" in text else [text]
        parts = [p for p in parts if p not in _NONE]
        if len(parts) != 1:
            return ""
        text = parts[0]
        base, args = _head(text)
        last = base.rpartition(".")[2]
        if last == "Union":
            args = [a for a in (_strip(a) for a in args) if a not in _NONE]
            if len(args) != 1:
                return ""
            text = args[0]
        elif last in _TRANSPARENT and args:
            text = _strip(args[0])
        else:
            return text
    return ""


def direct(annotation: str) -> str:
    """The class an annotated value is an instance of: 'Optional[pkg.Item]' -> 'pkg.Item',
    'list[Item]' -> 'list', 'Box[int]' -> 'Box'; '' when it names no single class."""
    text = _non_none(annotation)
    base, _ = _head(text)
    return base if _DOTTED.fullmatch(base) else ""


def element(annotation: str) -> str:
    """The class of an element when iterating the annotated value: 'list[Item]' -> 'Item',
    'Iterator[Optional[Item]]' -> 'Item'; '' for anything else (dicts iterate keys: left out)."""
    base, args = _head(_non_none(annotation))
    if base.rpartition(".")[2] not in _CONTAINERS or not args:
        return ""
    if base.rpartition(".")[2] in ("tuple", "Tuple") and not (len(args) == 2 and args[1] == "..."):
        return ""
    return direct(args[0])


_GENERIC_ARGS = re.compile(r"<.*>")
_NO_CLASS = {"var", "let", "const", "auto", "null", "undefined", "void"}


def declared(text: str) -> str:
    """A Java/TypeScript declared type -> the class it names ('' for arrays, unions of several
    types, inferred `var`, primitives' keywords are kept: they are no repo class either way)."""
    parts = [p.strip() for p in "".join(text.split()).split("|")]
    parts = [_GENERIC_ARGS.sub("", p).removeprefix("readonly") for p in parts if p not in _NO_CLASS]
    if len(parts) != 1 or "[" in parts[0]:
        return ""
    return parts[0] if _DOTTED.fullmatch(parts[0]) else ""


def return_annotation(signature: str) -> str:
    """The `-> X` of a def's signature text ('' when it has none)."""
    head, arrow, ann = signature.rpartition("->")
    if not arrow or ")" not in head:
        return ""
    return ann.strip().rstrip(":").strip()
