"""Answer scoring used by `make eval`: citations, referenced symbols, graph-checked validity."""

from __future__ import annotations

from pathlib import Path

from conftest import FIXTURES, build_graph

from answer.citations import parse
from extractor.graph import Graph
from trainer import metrics

ROW = {
    "id": "e1",
    "prompt": "How does Cart.checkout work?",
    "response": "...",
    "refs": ["shop/cart.py::Cart.checkout", "shop/pricing.py::total"],
    "citations": ["shop/cart.py:15-18"],
}


def test_citations_are_extracted_in_both_forms() -> None:
    text = "See [shop/cart.py:15-18] and [shop/models.py:7], not [nothing] or [a b:1]."
    assert [c.location for c in metrics.extract_citations(text)] == ["shop/cart.py:15-18", "shop/models.py:7"]
    c = parse("shop/cart.py:15-18")
    assert c is not None and (c.path, c.start, c.end) == ("shop/cart.py", 15, 18)
    assert parse("no-lines") is None


def test_reference_hit_needs_the_literal_symbol_or_file() -> None:
    assert metrics.reference_hit("`Cart.checkout()` raises ShopError", ROW) == {
        "symbol": True,
        "file": False,
        "any": True,
    }
    assert metrics.reference_hit("it is in shop/pricing.py", ROW)["file"] is True
    # a fluent answer that never names the code scores zero; substrings of other names do not count
    assert metrics.reference_hit("The cart computes a total when you check out.", ROW)["any"] is False
    assert metrics.reference_hit("MyCart.checkout_all()", ROW)["symbol"] is False
    assert metrics.reference_hit("returns `total(items)`", ROW)["symbol"] is True
    assert metrics.reference_hit("anything", {"prompt": "p", "response": "r"}) is None


def test_citation_validity_against_dataset_and_graph(tmp_path: Path) -> None:
    answer = (
        "Yes [shop/cart.py:16-17], see [shop/models.py:29-33] and [shop/nope.py:1-2] [shop/cart.py:500-501]."
    )
    by_dataset = metrics.score_answer(answer, ROW, metrics.dataset_resolver([ROW]))
    assert (
        by_dataset["citations"] == 4 and by_dataset["valid_citations"] == 1 and by_dataset["cites_reference"]
    )

    graph = tmp_path / "g.sqlite"
    build_graph(FIXTURES / "python", graph, ["python"])
    with Graph(graph) as g:
        by_graph = metrics.score_answer(answer, ROW, metrics.graph_resolver(g))
    # models.py:29-33 exists in the repo although the dataset never cites it; line 500 does not
    assert by_graph["valid_citations"] == 2

    summary = metrics.summarize([by_dataset, metrics.score_answer("no citation here", ROW, lambda c: True)])
    assert summary["citations"] == 4 and summary["citation_validity"] == 0.25
    # the first answer cites shop/cart.py, which names the right file; the second names nothing
    assert summary["answers_with_citation"] == 0.5 and summary["exact_reference_accuracy"] == 0.5
