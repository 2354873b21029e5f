"""An incremental re-run must give exactly the graph a fresh full run gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from extractor import resolve
from tests.conftest import FIXTURES, build_graph, edge_strings, graph_snapshot, node_meta


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    dst = tmp_path / "repo"
    shutil.copytree(FIXTURES / "python", dst)
    (dst / "expected.yaml").unlink()
    return dst


def _assert_same_as_fresh(
    repo: Path, graph: Path, tmp_path: Path, languages: tuple[str, ...] | None = ("python",)
) -> None:
    fresh = tmp_path / "fresh.sqlite"
    fresh.unlink(missing_ok=True)
    build_graph(repo, fresh, list(languages) if languages else None)
    inc, full = graph_snapshot(graph), graph_snapshot(fresh)
    for table in full:
        assert sorted(inc[table] - full[table]) == [], f"{table}: only in the incremental graph"
        assert sorted(full[table] - inc[table]) == [], f"{table}: only in the fresh graph"


def test_unchanged_rerun_parses_nothing(repo: Path, graph_path: Path) -> None:
    first = build_graph(repo, graph_path, ["python"])
    again = build_graph(repo, graph_path, ["python"])
    assert first.parsed == 6 and first.full
    assert again.parsed == 0 and again.unchanged == 6 and again.resolved_files == 0 and not again.full


def test_touch_without_change_parses_nothing(repo: Path, graph_path: Path) -> None:
    build_graph(repo, graph_path, ["python"])
    target = repo / "shop" / "pricing.py"
    target.write_bytes(target.read_bytes())  # new mtime, same content
    assert build_graph(repo, graph_path, ["python"]).parsed == 0


def test_edit_reparses_one_file_and_matches_fresh(repo: Path, graph_path: Path, tmp_path: Path) -> None:
    build_graph(repo, graph_path, ["python"])
    pricing = repo / "shop" / "pricing.py"
    # `price` moves down two lines and gains a sibling; callers elsewhere must be re-resolved.
    pricing.write_text(
        pricing.read_text().replace(
            "def price(item):", "def discount(item):\n    return 0\n\n\ndef price(item):"
        )
    )
    report = build_graph(repo, graph_path, ["python"])
    assert report.parsed == 1
    assert 1 <= report.resolved_files < 6
    _assert_same_as_fresh(repo, graph_path, tmp_path)


def test_rename_breaks_and_restores_cross_file_edges(repo: Path, graph_path: Path, tmp_path: Path) -> None:
    build_graph(repo, graph_path, ["python"])
    errors = repo / "shop" / "errors.py"
    original = errors.read_text()
    errors.write_text(
        original.replace("class ShopError", "class StoreError").replace("(ShopError)", "(StoreError)")
    )
    build_graph(repo, graph_path, ["python"])
    _assert_same_as_fresh(repo, graph_path, tmp_path)
    errors.write_text(original)
    build_graph(repo, graph_path, ["python"])
    _assert_same_as_fresh(repo, graph_path, tmp_path)


def test_inheritance_change_reaches_subclasses_in_other_files(
    repo: Path, graph_path: Path, tmp_path: Path
) -> None:
    (repo / "shop" / "special.py").write_text(
        "from shop.models import Item\n\n\nclass Special(Item):\n    def run(self):\n        return self.describe()\n"
    )
    build_graph(repo, graph_path, ["python"])
    models = repo / "shop" / "models.py"
    models.write_text(models.read_text().replace("class Item(Base):", "class Item:"))
    build_graph(repo, graph_path, ["python"])
    _assert_same_as_fresh(repo, graph_path, tmp_path)


def test_add_and_delete_files_match_fresh(repo: Path, graph_path: Path, tmp_path: Path) -> None:
    build_graph(repo, graph_path, ["python"])
    (repo / "shop" / "audit.py").write_text(
        "from .cart import Cart\n\n\ndef audit():\n    return Cart().checkout()\n"
    )
    (repo / "shop" / "pricing.py").unlink()
    report = build_graph(repo, graph_path, ["python"])
    assert report.parsed == 1 and report.deleted == 1
    _assert_same_as_fresh(repo, graph_path, tmp_path)


def test_parallel_build_equals_serial(repo: Path, tmp_path: Path) -> None:
    for i in range(30):  # enough files to go through the process pool
        (repo / "shop" / f"gen_{i}.py").write_text(
            f"from .pricing import total\n\n\ndef f{i}(x):\n    return total(x)\n"
        )
    serial, parallel = tmp_path / "s.sqlite", tmp_path / "p.sqlite"
    build_graph(repo, serial, ["python"], workers=1)
    build_graph(repo, parallel, ["python"], workers=2)
    assert graph_snapshot(serial) == graph_snapshot(parallel)


LANG_CASES = sorted(p.parent.name for p in FIXTURES.glob("*/expected.yaml"))


def _edit_and_delete_match_fresh(case: str, tmp_path: Path) -> None:
    repo = tmp_path / case
    shutil.copytree(FIXTURES / case, repo)
    graph = tmp_path / "inc.sqlite"
    build_graph(repo, graph)
    sources = sorted(p for p in repo.rglob("*") if p.is_file() and p.suffix not in (".yaml", ".toml", ".mod"))
    victim, removed = sources[len(sources) // 2], sources[-1]
    victim.write_text("\n\n" + victim.read_text())  # every span in the file moves down two lines
    assert build_graph(repo, graph).parsed == 1
    _assert_same_as_fresh(repo, graph, tmp_path, None)
    removed.unlink()
    build_graph(repo, graph)
    _assert_same_as_fresh(repo, graph, tmp_path, None)


@pytest.mark.parametrize("case", LANG_CASES)
def test_every_language_incremental_equals_fresh(case: str, tmp_path: Path) -> None:
    _edit_and_delete_match_fresh(case, tmp_path)


@pytest.mark.parametrize("case", LANG_CASES)
def test_incremental_reading_the_graph_into_memory_equals_fresh(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Incremental runs that redo many references read the whole graph into memory first
    (`MemorySymbols.from_db`); forced here for every run, the result must not change."""
    used: list[int] = []
    real = resolve.MemorySymbols.from_db.__func__
    monkeypatch.setattr(resolve, "_MEMORY_MIN_REFS", 0)
    monkeypatch.setattr(
        resolve.MemorySymbols, "from_db", classmethod(lambda cls, conn: used.append(1) or real(cls, conn))
    )
    _edit_and_delete_match_fresh(case, tmp_path)
    assert used, "the in-memory resolver was not used"


def test_new_same_named_method_redoes_only_the_guessing_nodes(
    repo: Path, graph_path: Path, tmp_path: Path
) -> None:
    """`obj.take(5)` on an untyped parameter is guessed repo-wide (one `take` method); a second
    `take` in an unrelated file must turn that guess ambiguous, re-resolving that function alone."""
    (repo / "shop" / "guess.py").write_text("def use(obj):\n    return obj.take(5)\n")
    build_graph(repo, graph_path, ["python"])
    pricing = repo / "shop" / "pricing.py"
    original = pricing.read_text()
    pricing.write_text(original + "\n\nclass Ledger:\n    def take(self, n):\n        return n\n")
    report = build_graph(repo, graph_path, ["python"])
    assert report.resolved_nodes >= 1
    _assert_same_as_fresh(repo, graph_path, tmp_path)
    meta = node_meta(graph_path)["shop/guess.py::use"]
    assert [a["name"] for a in meta["ambiguous"]] == ["take"]
    pricing.write_text(original)
    build_graph(repo, graph_path, ["python"])
    _assert_same_as_fresh(repo, graph_path, tmp_path)
    assert "ambiguous" not in node_meta(graph_path)["shop/guess.py::use"]


def _write_repo(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_dependents_redo_only_nodes_that_name_the_changed_files_names(tmp_path: Path) -> None:
    """Files with edges into a changed file are not redone whole: only their nodes whose
    references name something the file defines (before or after), plus their import edges.
    Covers a star import gaining a name (`helper` was unresolved), a rename (`old` -> `new`)
    and a module-attribute call, and must still equal a fresh build."""
    repo, graph = tmp_path / "r", tmp_path / "inc.sqlite"
    _write_repo(
        repo,
        {
            "lib.py": "def base():\n    return 1\n\n\ndef old():\n    return base()\n",
            "star.py": "from lib import *\n\n\ndef uses():\n    return base() + helper()\n\n\n"
            "def unrelated():\n    return len([])\n",
            "attr.py": "import lib\n\n\ndef call():\n    return lib.old()\n\n\ndef other():\n    return 2\n",
        },
    )
    build_graph(repo, graph, ["python"])
    (repo / "lib.py").write_text(
        "def base():\n    return 1\n\n\ndef new():\n    return base()\n\n\ndef helper():\n    return 3\n"
    )
    report = build_graph(repo, graph, ["python"])
    assert report.parsed == 1 and report.resolved_files == 1  # lib.py alone is redone whole
    assert report.resolved_nodes == 2  # star.py::uses and attr.py::call
    _assert_same_as_fresh(repo, graph, tmp_path)


def test_changed_imports_redo_dependents_whole(tmp_path: Path) -> None:
    """When a changed file's own imports change, what it re-exports may change: files that
    import from it are redone whole (here `x` moves from c.py to d.py behind a.py)."""
    repo, graph = tmp_path / "r", tmp_path / "inc.sqlite"
    _write_repo(
        repo,
        {
            "c.py": "def x():\n    return 1\n",
            "d.py": "def x():\n    return 2\n",
            "a.py": "from c import x\n",
            "b.py": "from a import x\n\n\ndef run():\n    return x()\n",
        },
    )
    build_graph(repo, graph, ["python"])
    (repo / "a.py").write_text("from d import x\n")
    report = build_graph(repo, graph, ["python"])
    assert report.parsed == 1 and report.resolved_files == 2  # a.py, and b.py whole
    _assert_same_as_fresh(repo, graph, tmp_path)


def test_parallel_resolution_equals_serial(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh build resolves calls in forked processes when there are many references; with
    the threshold lowered so the small fixture takes that path, the graph must not change."""
    for i in range(30):
        (repo / "shop" / f"gen_{i}.py").write_text(
            f"from .pricing import total\nfrom .models import Item\n\n\n"
            f"def f{i}(x):\n    Item('a', 1).describe()\n    return total(x) + f{(i + 1) % 30}(x)\n"
        )
    serial, parallel = tmp_path / "s.sqlite", tmp_path / "p.sqlite"
    build_graph(repo, serial, ["python"], workers=1)
    monkeypatch.setattr("extractor.resolve._PARALLEL_MIN_REFS", 0)
    calls: list[int] = []
    real_split = resolve._split
    monkeypatch.setattr(resolve, "_split", lambda *a: calls.append(1) or real_split(*a))
    build_graph(repo, parallel, ["python"], workers=2)
    assert calls, "the parallel path was not taken"
    assert graph_snapshot(serial) == graph_snapshot(parallel)


def test_renamed_type_moves_out_of_line_methods_in_other_files(tmp_path: Path) -> None:
    """`double Shape::area()` in shape.cpp belongs (defined_in) to class Shape in shape.hpp; when
    the header renames the class, the .cpp file's structure edges must follow."""
    repo, graph = tmp_path / "r", tmp_path / "inc.sqlite"
    _write_repo(
        repo,
        {
            "shape.hpp": "class Shape {\n public:\n  double area();\n};\n",
            "shape.cpp": '#include "shape.hpp"\n\ndouble Shape::area() {\n  return 1.0;\n}\n',
        },
    )
    build_graph(repo, graph, ["cpp"])
    assert "defined_in shape.cpp::Shape.area -> shape.hpp::Shape" in edge_strings(graph)
    (repo / "shape.hpp").write_text("class Figure {\n public:\n  double area();\n};\n")
    build_graph(repo, graph, ["cpp"])
    _assert_same_as_fresh(repo, graph, tmp_path, ("cpp",))
    assert "defined_in shape.cpp::Shape.area -> shape.hpp::Shape" not in edge_strings(graph)


def test_name_added_to_a_go_package_reaches_the_other_files(tmp_path: Path) -> None:
    """Go files of one folder share their top-level names without imports: `other()` in b.go
    resolves nowhere until a.go defines it, although b.go has no edge into a.go."""
    repo, graph = tmp_path / "r", tmp_path / "inc.sqlite"
    _write_repo(
        repo,
        {
            "go.mod": "module example.com/m\n",
            "a.go": "package main\n\nfunc helper() int {\n\treturn 1\n}\n",
            "b.go": "package main\n\nfunc run() int {\n\treturn other()\n}\n",
        },
    )
    build_graph(repo, graph, ["go"])
    (repo / "a.go").write_text(
        "package main\n\nfunc helper() int {\n\treturn 1\n}\n\nfunc other() int {\n\treturn 2\n}\n"
    )
    build_graph(repo, graph, ["go"])
    _assert_same_as_fresh(repo, graph, tmp_path, ("go",))
    assert "calls b.go::run -> a.go::other" in edge_strings(graph)
