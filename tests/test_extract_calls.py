"""Receiver typing from Python annotations (issue 16): annotation text -> class name, and the
parse-time substitution of a call's receiver by the type its file gives it."""

from __future__ import annotations

import pytest

from extractor import pytypes
from extractor.parse import parse_source


@pytest.mark.parametrize(
    ("annotation", "direct", "element"),
    [
        ("Item", "Item", ""),
        ("models.Item", "models.Item", ""),
        ('"Item"', "Item", ""),
        ("Optional[Item]", "Item", ""),
        ("t.Optional['Item']", "Item", ""),
        ("Item | None", "Item", ""),
        ("None | Item", "Item", ""),
        ("Union[Item, None]", "Item", ""),
        ("Union[Item, Other]", "", ""),
        ("Item | Other", "", ""),
        ("list[Item]", "list", "Item"),
        ("List[Optional[Item]]", "List", "Item"),
        ("typing.Iterator[pkg.Item]", "typing.Iterator", "pkg.Item"),
        ("tuple[Item, ...]", "tuple", "Item"),
        ("tuple[Item, Other]", "tuple", ""),
        ("dict[str, Item]", "dict", ""),
        ("Box[int]", "Box", ""),
        ("type[Item]", "Item", ""),
        ("ClassVar[Optional[Item]]", "Item", ""),
        ("Callable[[int], Item]", "Callable", ""),
    ],
)
def test_annotation_types(annotation: str, direct: str, element: str) -> None:
    assert pytypes.direct(annotation) == direct
    assert pytypes.element(annotation) == element


@pytest.mark.parametrize(
    ("signature", "annotation"),
    [
        ("def f(self) -> list[Item]", "list[Item]"),
        ("def f(x: int = 1) -> 'Item'", "'Item'"),
        ("def f(self, cb: Callable[[], int])", ""),
        ("def f(self)", ""),
    ],
)
def test_return_annotation(signature: str, annotation: str) -> None:
    assert pytypes.return_annotation(signature) == annotation


SOURCE = b"""
import subprocess
from typing import Optional


class Box:
    kind: Kind

    def __init__(self, item: Item, other: Optional["Item"] = None):
        self.item = item
        self.proc = subprocess.Popen(["x"])
        self.maybe: Optional[Item] = other

    def items(self) -> list[Item]:
        return []

    def run(self, ctx: "Context", n: int):
        ctx.invoke()
        self.kind.to_dict()
        self.item.take(1)
        self.maybe.put(2)
        self.proc.terminate()
        for it in self.items():
            it.take(3)
        x = Item("a")
        x.take(4)
        y = ctx.make()
        y.go()
        z = 1
        z = ctx.other()
        z.what()
        n.bit_length()
        unknown.thing()

        def inner():
            ctx.inside()
"""


def test_receivers_are_replaced_by_their_types() -> None:
    refs = {(r[3], r[5]): r[4] for r in parse_source("pkg/box.py", "python", SOURCE).refs if r[2] == "calls"}
    assert refs[("Popen", 11)] == "subprocess"
    assert refs[("invoke", 18)] == "Context"  # a parameter (forward reference)
    assert refs[("to_dict", 19)] == "Kind"  # a class-level annotation
    assert refs[("take", 20)] == "Item"  # self.x = annotated parameter
    assert refs[("put", 21)] == "Item"  # self.x: Optional[T] = ...
    assert refs[("terminate", 22)] == "subprocess.Popen()"  # a call's result, resolved later
    assert refs[("take", 24)] == "self.items()[]"  # an element of a method's result
    assert refs[("take", 26)] == "Item()"
    assert refs[("go", 28)] == "Context.make()"  # the callee's receiver is typed too
    assert refs[("what", 31)] == "Context.other()"  # `z = 1` is no call: the one call type stands
    assert refs[("bit_length", 32)] == "int"
    assert refs[("thing", 33)] == "unknown"
    assert refs[("inside", 36)] == "Context"  # an enclosing function's parameter


def test_two_types_for_one_name_give_none() -> None:
    source = b"def f(flag):\n    x = A()\n    if flag:\n        x = B()\n    x.run()\n"
    refs = [r for r in parse_source("m.py", "python", source).refs if r[3] == "run"]
    assert [r[4] for r in refs] == ["x"]


@pytest.mark.parametrize(
    ("declared", "name"),
    [
        ("Shape", "Shape"),
        ("List<Shape>", "List"),
        ("Map.Entry<K, V>", "Map.Entry"),
        ("Store<User> | undefined", "Store"),
        ("User | null", "User"),
        ("User | Admin", ""),
        ("Shape[]", ""),
        ("var", ""),
    ],
)
def test_declared_types(declared: str, name: str) -> None:
    assert pytypes.declared(declared) == name


def test_java_fields_are_in_scope_unqualified() -> None:
    source = (
        b"class A {\n  private Repo repo;\n  void run() {\n    repo.save();\n    this.repo.load();\n  }\n}\n"
    )
    refs = {r[3]: r[4] for r in parse_source("A.java", "java", source).refs if r[2] == "calls"}
    assert refs == {"save": "Repo", "load": "Repo"}
