"""Typed receivers (Python): replace a call's receiver variable by the type the file says it has.

`def run(ctx: Context): ctx.invoke()` stores the reference `invoke` with receiver `Context`, so the
resolver looks `invoke` up in class `Context` (or knows that `str`/an imported stdlib class is
external) instead of guessing among every `invoke` in the repository. Runs at parse time on one
file's facts: a reference's facts still depend on its file alone.

What gives a type (flow-insensitive: a name bound to two different types gets none):
  - parameters `p: T`, annotated assignments `x: T = ...`, `self.x: T = ...`, class-level `x: T`;
  - `x = Callee(...)` / `self.x = Callee(...)`: the call's result (`Callee()`, resolved later);
  - `self.x = p` for an annotated parameter `p` of the method;
  - `for x in e`: an element of an annotated `e` (`list[T]` -> `T`) or of a call's result.
Lookup for a receiver `x.rest` in def D: D's names, then enclosing defs', then the module's;
`self.x.rest`: the attributes of D's class. Types of names in other files (inherited attributes)
are not followed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from extractor import pytypes

_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_CONFLICT = ""  # a name with two different types: unknown
_CLASS_LIKE = {"class", "struct", "interface", "enum", "trait"}


@dataclass(slots=True)
class Binding:
    """One fact about a name's type: `kind` annotation/call/alias/iter_call/iter, with its text."""

    scope: str  # the innermost definition (node id) or the file id holding it
    name: str  # `x` or `self.x`
    kind: str
    text: str


@dataclass
class Scope:
    type: str  # node type: function/method/class/module
    parent: str  # enclosing node id ('' for the file)
    names: dict[str, str] = field(default_factory=dict)  # name -> type expression
    annotations: dict[str, str] = field(default_factory=dict)  # name -> raw annotation text


def _put(table: dict[str, str], name: str, value: str, strong: bool, strong_names: set[str]) -> None:
    """Record `name: value`; annotations (strong) win over inferred call types."""
    if not value:
        return
    if strong:
        if name in strong_names and table.get(name) != value:
            table[name] = _CONFLICT
            return
        strong_names.add(name)
        table[name] = value
        return
    if name in strong_names:
        return
    old = table.get(name)
    table[name] = value if old is None or old == value else _CONFLICT


class ReceiverTypes:
    """The types one file gives its names, by scope; `rewrite` applies them to a receiver."""

    def __init__(
        self,
        scopes: dict[str, tuple[str, str]],
        bindings: list[Binding],
        self_names: tuple[str, ...],
        direct: Callable[[str], str] = pytypes.direct,
        element: Callable[[str], str] = pytypes.element,
        fields_in_scope: bool = False,
    ) -> None:
        """`scopes`: node id -> (type, parent id) for every definition and the file itself;
        `direct`/`element`: the language's annotation -> class name; `fields_in_scope`: a bare
        name may be a field of the enclosing class (Java)."""
        self.self_names = self_names
        self.direct, self.element, self.fields_in_scope = direct, element, fields_in_scope
        self.scopes = {i: Scope(t, p) for i, (t, p) in scopes.items()}
        self.attrs: dict[str, dict[str, str]] = {}  # class id -> attribute -> type expression
        self.attr_ann: dict[str, dict[str, str]] = {}
        strong: dict[int, set[str]] = {}
        later: list[Binding] = []
        for b in bindings:
            if b.kind in ("alias", "iter"):
                later.append(b)  # they read other names' types: after every direct one
                continue
            self._bind(b, strong)
        for b in later:
            self._bind(b, strong)

    def _target(self, b: Binding) -> tuple[dict[str, str], dict[str, str], str] | None:
        """Where binding `b` writes: (types, annotations, name) of a scope or of a class."""
        head, _, attr = b.name.partition(".")
        scope = self.scopes.get(b.scope)
        if scope is None:
            return None
        if attr:
            if head not in self.self_names or "." in attr:
                return None
            cls = self._class_of(b.scope)
            if cls is None:
                return None
            return self.attrs.setdefault(cls, {}), self.attr_ann.setdefault(cls, {}), attr
        if scope.type in _CLASS_LIKE:  # class-level `x: T` / `x = T()`: what `self.x` is
            return self.attrs.setdefault(b.scope, {}), self.attr_ann.setdefault(b.scope, {}), b.name
        return scope.names, scope.annotations, b.name

    def _bind(self, b: Binding, strong: dict[int, set[str]]) -> None:
        target = self._target(b)
        if target is None:
            return
        types, anns, name = target
        strong_names = strong.setdefault(id(types), set())  # per table: the tables live as long as self
        text = "".join(b.text.split())
        if b.kind == "annotation":
            anns[name] = text
            _put(types, name, self.direct(text), True, strong_names)
        elif b.kind == "call" and _DOTTED.fullmatch(text):
            _put(types, name, self._substitute(b.scope, text) + "()", False, strong_names)
        elif b.kind == "iter_call" and _DOTTED.fullmatch(text):
            _put(types, name, self._substitute(b.scope, text) + "()[]", False, strong_names)
        elif b.kind == "alias" and text.isidentifier():
            ann = self._annotation(b.scope, text)
            if ann:
                _put(types, name, self.direct(ann), False, strong_names)
        elif b.kind == "iter" and _DOTTED.fullmatch(text):
            ann = self._annotation(b.scope, text)
            if ann:
                _put(types, name, self.element(ann), False, strong_names)

    def _class_of(self, scope_id: str) -> str | None:
        """The class whose methods (or nested functions of them) `scope_id` is in."""
        while scope_id in self.scopes:
            s = self.scopes[scope_id]
            if s.type in _CLASS_LIKE:
                return scope_id
            scope_id = s.parent
        return None

    def _annotation(self, scope_id: str, text: str) -> str:
        """The raw annotation of a name (`x`) or of a self attribute (`self.x`) seen from a scope."""
        head, _, attr = text.partition(".")
        if attr:
            if head not in self.self_names or "." in attr:
                return ""
            cls = self._class_of(scope_id)
            return self.attr_ann.get(cls, {}).get(attr, "") if cls else ""
        while scope_id in self.scopes:
            s = self.scopes[scope_id]
            if text in s.annotations:
                return s.annotations[text]
            scope_id = s.parent
        return ""

    def _lookup(self, scope_id: str, head: str, attr: str) -> str:
        if head in self.self_names:
            cls = self._class_of(scope_id)
            return self.attrs.get(cls, {}).get(attr, "") if cls else ""
        while scope_id in self.scopes:
            s = self.scopes[scope_id]
            if s.type in _CLASS_LIKE:  # class bodies do not enclose their methods' names...
                if self.fields_in_scope and head in self.attrs.get(scope_id, {}):
                    return self.attrs[scope_id][head]  # ...but Java's fields are in scope
            elif head in s.names:
                return s.names[head]
            scope_id = s.parent
        return ""

    def _substitute(self, scope_id: str, text: str) -> str:
        """`text` with its head replaced by a plain (annotation) type: `ctx.make` -> `Context.make`."""
        head, _, rest = text.partition(".")
        if head in self.self_names:
            attr, _, rest2 = rest.partition(".")
            t = self._lookup(scope_id, head, attr) if attr and rest2 else ""
            return f"{t}.{rest2}" if t and _DOTTED.fullmatch(t) else text
        t = self._lookup(scope_id, head, "") if rest else ""
        return f"{t}.{rest}" if t and _DOTTED.fullmatch(t) else text

    def rewrite(self, scope_id: str, receiver: str) -> str:
        """The receiver with its variable replaced by its type, or unchanged when none is known."""
        if not receiver or not _DOTTED.fullmatch(receiver):
            return receiver
        head, _, rest = receiver.partition(".")
        if head in self.self_names:
            if not rest:
                return receiver
            attr, _, rest = rest.partition(".")
            t = self._lookup(scope_id, head, attr)
        else:
            t = self._lookup(scope_id, head, "")
        if not t:
            return receiver
        if rest:
            return f"{t}.{rest}" if _DOTTED.fullmatch(t) else receiver
        return t
