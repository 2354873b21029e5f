"""An incremental re-run must give exactly the graph a fresh full run gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, build_graph, graph_snapshot, node_meta


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


@pytest.mark.parametrize("case", LANG_CASES)
def test_every_language_incremental_equals_fresh(case: str, tmp_path: Path) -> None:
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


def test_new_same_named_method_redoes_only_the_guessing_nodes(
    repo: Path, graph_path: Path, tmp_path: Path
) -> None:
    """`item.take(5)` in a test was guessed repo-wide (one `take` method); a second `take` in an
    unrelated file must turn that guess ambiguous, re-resolving the test function alone."""
    build_graph(repo, graph_path, ["python"])
    pricing = repo / "shop" / "pricing.py"
    original = pricing.read_text()
    pricing.write_text(original + "\n\nclass Ledger:\n    def take(self, n):\n        return n\n")
    report = build_graph(repo, graph_path, ["python"])
    assert report.resolved_nodes >= 1
    _assert_same_as_fresh(repo, graph_path, tmp_path)
    meta = node_meta(graph_path)["tests/test_cart.py::test_take"]
    assert [a["name"] for a in meta["ambiguous"]] == ["take"]
    pricing.write_text(original)
    build_graph(repo, graph_path, ["python"])
    _assert_same_as_fresh(repo, graph_path, tmp_path)
    assert "ambiguous" not in node_meta(graph_path)["tests/test_cart.py::test_take"]
