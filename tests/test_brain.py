"""The brain stage on the Python fixture: ontology contents, cited summaries, incremental runs, LLM mode."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from brain.build import build_brain
from brain.config import BrainConfig, index_path
from brain.nodes import file_name, load_nodes
from brain.text import (
    Segmenter,
    citations_in,
    code_identifiers,
    count_tokens,
    identifier_terms,
    split_identifier,
)
from extractor.graph import Graph
from nanodex.config import load_config
from nanodex.errors import NanodexError
from tests.conftest import FIXTURES, build_graph
from tests.openai_server import FakeOpenAI, running

ROOT = Path(__file__).resolve().parents[1]


def _build(tmp: Path, repo: Path, **summary: object) -> tuple[BrainConfig, Path]:
    graph = tmp / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    cfg = BrainConfig(graph=str(graph), out_dir=str(tmp / "nodes"))
    for key, value in summary.items():
        setattr(cfg.summary, key, value)
    return cfg, graph


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory) -> tuple[BrainConfig, dict[str, dict]]:
    tmp = tmp_path_factory.mktemp("brain")
    repo = tmp / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    (repo / "README.md").write_text(
        "# shop\n\nUsage:\n\n```python\ncart = Cart()\ncart.add('a', 2)\nprint(cart.checkout())\n```\n",
        encoding="utf-8",
    )
    cfg, _ = _build(tmp, repo)
    build_brain(cfg)
    return cfg, {n["id"]: n for n in load_nodes(cfg.out_dir)}


def test_text_helpers() -> None:
    assert split_identifier("parseHTTPRequest_v2") == ["parse", "http", "request", "v", "2"]
    terms = identifier_terms("get_user_name(cfg)")
    assert terms[:4] == ["get_user_name", "get", "user", "name"] and "configuration" in terms
    assert count_tokens("Calls total [shop/pricing.py:4-11].") == 14
    assert "return" in identifier_terms("get_size", synonyms=True)
    assert code_identifiers("does test_take call Cart.add() or run() or take") == [
        "test_take",
        "Cart.add",
        "run",
    ]


def test_segmenter_splits_run_together_names() -> None:
    counts = {
        "get": 50,
        "generator": 20,
        "state": 30,
        "is": 80,
        "dir": 40,
        "make": 30,
        "dirs": 10,
        "iterator": 9,
    }
    seg = Segmenter(counts, real={"generator", "state", "iterator"})
    assert seg.split("getgeneratorstate") == ["get", "generator", "state"]
    assert seg.split("isdir") == ["is", "dir"] and seg.split("makedirs") == ["make", "dirs"]
    assert seg.split("iterator") == ["iterator"]  # a real word stays whole
    assert seg.split("qsize") == ["qsize"]  # nothing to split it into
    terms = identifier_terms("os.path.isdir(x)", segmenter=seg)
    assert {"isdir", "is", "dir", "directory"} <= set(terms)


def test_every_type_is_built(brain: tuple[BrainConfig, dict[str, dict]]) -> None:
    _, nodes = brain
    types = {n["type"] for n in nodes.values()}
    assert types == {"module", "capability", "concept", "error", "recipe"}
    assert {"module:shop/cart.py", "module:shop/__init__.py"} <= set(nodes)
    assert "capability:shop/cart.py::Cart.checkout" in nodes
    assert "capability:shop/pricing.py::total.each" not in nodes  # nested helper: not a capability
    assert "concept:shop/models.py::Item" in nodes
    assert "concept:shop/errors.py::ShopError" not in nodes  # errors are error nodes, not concepts
    assert nodes["module:shop/__init__.py"]["facts"]["exported"][0]["id"] == "shop/models.py::Item"


def test_error_nodes_list_raise_sites_with_conditions(brain: tuple[BrainConfig, dict[str, dict]]) -> None:
    _, nodes = brain
    oos = nodes["error:shop/errors.py::OutOfStock"]
    sites = [(s["id"], s["line"], s["if"]) for s in oos["facts"]["raised_at"]]
    assert sites == [("shop/models.py::Item.take", 31, "if n > self.qty")]
    assert (
        "[shop/models.py:31-31]" in oos["summary"]
        and "Raised when an item is not available" in oos["summary"]
    )
    shop = nodes["error:shop/errors.py::ShopError"]
    assert [(s["id"], s["line"], s["if"]) for s in shop["facts"]["raised_at"]] == [
        ("shop/cart.py::Cart.checkout", 17, "if not self.items")
    ]
    assert [s["id"] for s in shop["facts"]["subclasses"]] == ["shop/errors.py::OutOfStock"]
    value = nodes["error:external:ValueError"]
    assert [(s["id"], s["line"], s["if"]) for s in value["facts"]["raised_at"]] == [
        ("shop/pricing.py::price", 16, "if item.qty < 0")
    ]


def test_recipes_from_tests_and_readme(brain: tuple[BrainConfig, dict[str, dict]]) -> None:
    _, nodes = brain
    recipe = nodes["recipe:tests/test_cart.py::TestCart.test_checkout"]
    steps = [(s["id"], s["line"]) for s in recipe["facts"]["steps"]]
    assert steps == [
        ("shop/cart.py::Cart", 9),
        ("shop/cart.py::Cart.add", 10),
        ("shop/cart.py::Cart.checkout", 11),
    ]
    assert recipe["facts"]["test"] == "tests/test_cart.py::TestCart::test_checkout"
    assert '`cart.add("a", 2)`' in recipe["summary"]
    take = nodes["recipe:tests/test_cart.py::test_take"]
    assert [s["id"] for s in take["facts"]["steps"]] == ["shop/models.py::Item", "shop/models.py::Item.take"]
    readme = [n for n in nodes.values() if n["id"].startswith("recipe:README.md")]
    assert len(readme) == 1
    assert [s["id"] for s in readme[0]["facts"]["steps"]] == [
        "shop/cart.py::Cart",
        "shop/cart.py::Cart.add",
        "shop/cart.py::Cart.checkout",
    ]


def test_capability_summary_relations(brain: tuple[BrainConfig, dict[str, dict]]) -> None:
    _, nodes = brain
    s = nodes["capability:shop/cart.py::Cart.checkout"]["summary"]
    assert s.startswith("Method Cart.checkout(self) [shop/cart.py:15-18]")
    assert "Raises ShopError if not self.items [shop/cart.py:17-17]" in s
    assert "total [shop/pricing.py:4-11]" in s
    assert "Tested by tests/test_cart.py::TestCart::test_checkout" in s


def test_summaries_cite_real_lines(brain: tuple[BrainConfig, dict[str, dict]]) -> None:
    cfg, nodes = brain
    with Graph(cfg.graph) as graph:
        for node in nodes.values():
            assert count_tokens(node["summary"]) <= cfg.summary.max_tokens, node["id"]
            cited = citations_in(node["summary"])
            assert cited, f"{node['id']} has no citation in its summary"
            for path, start, end in cited:
                assert graph.resolves(path, start, end), f"{node['id']}: [{path}:{start}-{end}]"
                assert f"{path}:{start}-{end}" in node["citations"] or graph.at(path, start) is not None
            for c in node["citations"]:
                path, span = c.rsplit(":", 1)
                start, end = (int(x) for x in span.split("-"))
                assert graph.resolves(path, start, end), f"{node['id']}: {c}"
            for ref in node["refs"]:
                assert graph.node(ref) is not None, f"{node['id']}: ref {ref}"
        # a cited definition span is exactly the definition's lines
        take = graph.node("shop/models.py::Item.take")
        assert (
            take is not None and take.citation in nodes["capability:shop/models.py::Item.take"]["citations"]
        )


def test_node_files_are_named_safely(brain: tuple[BrainConfig, dict[str, dict]]) -> None:
    cfg, nodes = brain
    for node_id in nodes:
        name = file_name(node_id)
        assert (Path(cfg.out_dir) / name).is_file()
        assert "/" not in name and ":" not in name
    assert file_name("a/b") != file_name("a_b")


def _change(repo: Path, rel: str, old: str, new: str) -> None:
    p = repo / rel
    text = p.read_text(encoding="utf-8")
    assert old in text
    p.write_text(text.replace(old, new), encoding="utf-8")


def test_incremental_rerun_touches_only_changed_nodes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    cfg, graph = _build(tmp_path, repo)
    first = build_brain(cfg)
    assert first.written == first.nodes and first.unchanged == 0
    before = {p.name: p.stat().st_mtime_ns for p in Path(cfg.out_dir).iterdir()}

    again = build_brain(cfg)
    assert again.written == 0 and again.unchanged == again.nodes and again.removed == 0

    # a body change in one function, same lines: only that function's capability is redone
    _change(repo, "shop/pricing.py", '"negative quantity"', '"quantity below zero"')
    build_graph(repo, graph, ["python"])
    third = build_brain(cfg)
    assert third.changed_ids == ["capability:shop/pricing.py::price"]
    after = {p.name: p.stat().st_mtime_ns for p in Path(cfg.out_dir).iterdir()}
    touched = {name for name in after if after[name] != before.get(name)}
    assert touched == {file_name("capability:shop/pricing.py::price")}

    # a new raise site changes the function, its error node; a deleted file removes its nodes
    _change(repo, "shop/cart.py", '        return "cart"', '        raise ShopError("no name")')
    (repo / "shop" / "pricing.py").unlink()
    build_graph(repo, graph, ["python"])
    fourth = build_brain(cfg)
    assert "capability:shop/cart.py::Cart.name" in fourth.changed_ids
    assert "error:shop/errors.py::ShopError" in fourth.changed_ids
    assert "capability:shop/models.py::Item.take" not in fourth.changed_ids
    assert fourth.removed >= 3  # module, total, price (and the ValueError node)
    ids = {n["id"] for n in load_nodes(cfg.out_dir)}
    assert "capability:shop/pricing.py::price" not in ids and "error:external:ValueError" not in ids


def test_config_file_and_bad_values(tmp_path: Path) -> None:
    cfg = load_config(BrainConfig, ROOT / "config" / "brain.yaml")
    assert cfg.node_types == ["module", "capability", "concept", "error", "recipe"]
    assert cfg.summary.style == "extractive" and len(cfg.search.column_weights) == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("summary: {max_tokns: 10}\n", encoding="utf-8")
    with pytest.raises(NanodexError, match="max_tokns"):
        load_config(BrainConfig, bad)
    cfg = BrainConfig(graph=str(tmp_path / "none.sqlite"), out_dir=str(tmp_path / "n"))
    with pytest.raises(NanodexError, match="make extract"):
        build_brain(cfg)
    cfg.node_types = ["module", "widget"]
    with pytest.raises(NanodexError, match="widget"):
        build_brain(cfg)


# ---- LLM summarizer against a fake OpenAI-compatible server ------------------------------------
def _summary(body: dict) -> str:
    """Error nodes: cite a place that does not exist; others: a real foreign place, far too many words."""
    prompt = body["messages"][1]["content"]
    real = prompt.split("[", 1)[1].split("]", 1)[0]
    name = prompt.split("\n", 1)[0].split(" ", 2)[2]  # "Node: <type> <name>"
    if prompt.startswith("Node: error"):
        return f"LLM WROTE THIS about {name} [{real}] and a made-up place [nowhere.py:1-999]."
    return f"LLM WROTE THIS about {name} [{real}], see also [shop/__init__.py:1-1]. " + "word " * 400


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    """A real OpenAI-compatible HTTP server (tests/openai_server.py) answering with `_summary`."""
    with running() as srv:
        srv.models = [{"id": "fake-model"}]
        srv.reply = _summary
        yield srv


def test_llm_summarizer_is_checked_and_incremental(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    cfg, _ = _build(
        tmp_path, FIXTURES / "python", style="llm", endpoint=fake_llm.url, workers=2, max_tokens=60
    )
    report = build_brain(cfg)
    sent = fake_llm.chats()
    assert len(sent) == report.nodes and report.llm_failed == 0
    assert sent[0]["model"] == "fake-model" and sent[0]["temperature"] == 0
    errors = report.by_type["error"]
    assert report.llm_rejected == errors > 0 and report.llm_written == report.nodes - errors
    with Graph(cfg.graph) as graph:
        for node in load_nodes(cfg.out_dir):
            assert node["summarizer"] == "llm-2:fake-model"
            assert count_tokens(node["summary"]) <= 60
            cited = citations_in(node["summary"])
            assert cited and all(graph.resolves(p, s, e) for p, s, e in cited)
            assert "nowhere.py" not in node["summary"]
            if node["type"] == "error":  # invented citation: extractive summary kept, reason recorded
                assert node["summary_by"] == "extractive" and "LLM WROTE" not in node["summary"]
                assert "[nowhere.py:1-999]" in node["fallback"] and "does not resolve" in node["fallback"]
                assert report.fallbacks[node["id"]] == node["fallback"]
            else:  # foreign citation dropped and recorded, the node's own citations kept
                assert node["summary"].startswith("LLM WROTE THIS") and node["summary_by"] == "llm"
                assert (
                    "shop/__init__.py:1-1" not in node["summary"]
                    or "shop/__init__.py:1-1" in node["citations"]
                )
                assert "fallback" not in node
                own = set(node["citations"]) | {f"{node['path']}:{node['start_line']}-{node['end_line']}"}
                assert {f"{p}:{s}-{e}" for p, s, e in cited} <= own | set(node.get("restored_citations", []))
    again = build_brain(cfg)
    assert again.written == 0 and len(fake_llm.chats()) == report.nodes


def test_grounding_check_rules() -> None:
    """Unit rules of brain.grounding: invented -> fallback, foreign -> dropped, missing -> restored."""
    from brain.grounding import check_summary
    from brain.ontology import BrainNode

    node = BrainNode(
        id="capability:a.py::f",
        type="capability",
        name="f",
        path="a.py",
        start_line=3,
        end_line=9,
        citations=["a.py:3-9", "b.py:1-4"],
    )
    extractive = "Function f [a.py:3-9] calls g [b.py:1-4]."
    lines = {"a.py": 20, "b.py": 10, "c.py": 5}

    def resolves(path: str, start: int, end: int) -> bool:
        return 1 <= start <= end <= lines.get(path, 0)

    bad = check_summary("f adds numbers [a.py:3-9] as in [a.py:30-31].", node, extractive, 60, resolves)
    assert not bad.accepted and bad.text == extractive and "[a.py:30-31]" in bad.reason
    ok = check_summary(
        "Here is the summary: f adds two numbers [c.py:2-3] quickly. And then", node, extractive, 60, resolves
    )
    assert ok.accepted and ok.dropped == ["c.py:2-3"] and ok.restored == ["a.py:3-9", "b.py:1-4"]
    assert ok.text == "f adds two numbers quickly. Sources: [a.py:3-9] [b.py:1-4]."
    kept = check_summary("f [a.py:3-9] adds two numbers via g [b.py:1-4].", node, extractive, 60, resolves)
    assert kept.accepted and kept.restored == [] and kept.text.endswith("[b.py:1-4].")
    long = check_summary("f adds numbers " + "very " * 200 + "[a.py:3-9]", node, extractive, 40, resolves)
    assert long.accepted and count_tokens(long.text) <= 40 and long.restored == ["a.py:3-9", "b.py:1-4"]
    assert not check_summary("[a.py:3-9]", node, extractive, 60, resolves).accepted
    cut = check_summary(
        "**Summary:** f adds two numbers. It then " + "goes on " * 30, node, extractive, 40, resolves
    )
    assert cut.accepted and cut.text == "f adds two numbers. Sources: [a.py:3-9] [b.py:1-4]."
    echo = check_summary("Node: capability f Facts (with citations): f", node, extractive, 60, resolves)
    assert not echo.accepted and "echoes" in echo.reason
    off = check_summary("A shopping cart is a game-changer for e-commerce.", node, extractive, 60, resolves)
    assert not off.accepted and "does not name the node" in off.reason
    loop = check_summary(
        "f adds two numbers. f adds two numbers. f adds two numbers.", node, extractive, 60, resolves
    )
    assert loop.accepted and loop.text.startswith("f adds two numbers. Sources:")
    tight = check_summary("f adds two numbers together.", node, extractive, 24, resolves)
    assert not tight.accepted and "no room" in tight.reason


def test_llm_endpoint_down_is_one_clear_error(tmp_path: Path) -> None:
    cfg, _ = _build(tmp_path, FIXTURES / "python", style="llm", endpoint="http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(NanodexError, match="did not answer"):
        build_brain(cfg)
    assert not Path(cfg.out_dir).exists() or not list(Path(cfg.out_dir).iterdir())


# ---- command line ----------------------------------------------------------------------------
def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_cli_help_and_errors(tmp_path: Path) -> None:
    for module in ("brain", "brain.embed", "brain.search"):
        out = _run(module, "--help")
        assert out.returncode == 0 and "--graph" in out.stdout, module
    missing = _run("brain", "--graph", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "n"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "make extract" in missing.stderr
    graph = tmp_path / "g.sqlite"
    build_graph(FIXTURES / "python", graph, ["python"])
    for module in ("brain.search", "brain.embed"):
        extra = ["where is the cart"] if module == "brain.search" else []
        out = _run(module, "--graph", str(graph), *extra)
        assert out.returncode == 2 and "make brain" in out.stderr and "Traceback" not in out.stderr, module
    ok = _run("brain", "--graph", str(graph), "--out", str(tmp_path / "nodes"), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["written"] > 0
    assert index_path(BrainConfig(graph=str(graph))).is_file()


def test_concepts_from_docs_and_docstrings(tmp_path: Path) -> None:
    """Terms used in README/Markdown and docstrings across files become cited concept nodes."""
    from brain.doc_terms import candidates

    assert list(candidates("Pay the shopping cart with Stripe, then ship.", 3)) == ["Stripe", "shopping cart"]
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    (repo / "README.md").write_text(
        "# Shop\n\nEach shopping cart is paid with Stripe.\nThe stock level of every item is checked once.\n\n"
        "```python\nsecret widget = secret widget\n```\n",
        encoding="utf-8",
    )
    (repo / "docs").mkdir()
    (repo / "docs" / "guide.md").write_text(
        "Guide\n\nWhen the stock level drops, Stripe refuses the payment.\nRead `secret widget` docs.\n",
        encoding="utf-8",
    )
    (repo / "shop" / "payments.py").write_text(
        '"""Payments."""\n\n\ndef charge(cart):\n    """Charge a shopping cart through Stripe.\n\n'
        '    Fails when the stock level is too low.\n    """\n    return cart\n\n\n'
        'def stock_level_of(item):\n    """How many are left."""\n    return item.qty\n',
        encoding="utf-8",
    )
    graph = tmp_path / "g.sqlite"
    build_graph(repo, graph, ["python"])
    cfg = BrainConfig(graph=str(graph), out_dir=str(tmp_path / "nodes"))
    build_brain(cfg)
    nodes = {n["id"]: n for n in load_nodes(cfg.out_dir)}
    terms = {n["name"]: n for n in nodes.values() if n["facts"].get("source") == "docs"}
    assert {"stripe", "Stripe", "shopping cart", "stock level"} & set(terms) == {
        "Stripe",
        "shopping cart",
        "stock level",
    }
    assert not any("widget" in t for t in terms)  # code blocks and inline code are not prose
    level = terms["stock level"]
    assert level["facts"]["file_count"] == 3 and level["id"] == "concept:doc:stock level"
    assert "shop/payments.py:7-7" in level["citations"]  # the docstring line that uses the term
    assert [s["name"] for s in level["facts"]["symbols"]] == ["stock_level_of"]
    assert {u.get("doc") for u in level["facts"]["uses"]} >= {"README.md:4", "docs/guide.md:3"}
    assert terms["Stripe"]["citations"] == ["shop/payments.py:5-5"]  # the line of charge's docstring
    with Graph(cfg.graph) as g:
        for t in terms.values():
            assert citations_in(t["summary"]) and all(
                g.resolves(p, s, e) for p, s, e in citations_in(t["summary"])
            )
    cfg.concepts.max_doc_terms = 0
    assert not any(n.facts.get("source") == "docs" for n in _ontology(cfg))


def _ontology(cfg: BrainConfig) -> list:
    from brain.facts import load_facts
    from brain.ontology import Ontology

    with Graph(cfg.graph) as graph:
        return Ontology(load_facts(graph), cfg).build()
