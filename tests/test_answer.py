"""The one answer path (answer/): prompt, citations (find, check, repair, bind, attribute, mark).

Citations are checked against a real graph of the Python fixture repo (shop/cart.py has 21 lines;
Cart.add is 10-13, Cart.checkout 15-18; shop/pricing.py's price() is 14-17).
"""

from __future__ import annotations

import shutil

import pytest
from conftest import FIXTURES, build_graph

from answer.blocks import Block, estimate_tokens, fit_block, question_words
from answer.citations import (
    UNRESOLVED_MARK,
    UNVERIFIED_MARK,
    Checker,
    GraphSymbols,
    check,
    find,
    mark,
    names_in,
    report,
    support,
)
from answer.names import KnownNames, code_names
from answer.prompt import LAYOUT, build_messages, training_messages
from extractor.graph import Graph


@pytest.fixture(scope="module")
def symbols(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("answer-graph")
    shutil.copytree(FIXTURES / "python", tmp / "repo")
    build_graph(tmp / "repo", tmp / "graph.sqlite", ["python"])
    with Graph(tmp / "graph.sqlite") as g:
        yield GraphSymbols(g)


def _block(g: Graph, path: str, start: int, end: int) -> Block:
    return Block(path, start, end, g.source(path, start, end))


# ---- prompt --------------------------------------------------------------------------------------
def test_training_row_and_served_prompt_are_identical() -> None:
    blocks = [
        Block("shop/cart.py", 10, 13, "def add(self, sku, qty):\n    ..."),
        Block("a.py", 1, 2, "x = 1"),
    ]
    served = build_messages("What does Cart.add return?", blocks)
    row = training_messages(
        "What does Cart.add return?", blocks, "`Cart.add` [shop/cart.py:10-13] returns it."
    )
    assert row[:-1] == served and row[-1]["role"] == "assistant"
    assert served[0]["content"].endswith("Question: What does Cart.add return?")
    assert "[shop/cart.py:10-13]\n```\ndef add" in served[0]["content"]
    assert build_messages("Q?", []) == [{"role": "user", "content": "Q?"}], "no code: the bare question"
    msgs = build_messages("Q?", blocks, system_prompt="Be brief.")
    assert msgs[0] == {"role": "system", "content": "Be brief."} and LAYOUT


# ---- finding and checking ------------------------------------------------------------------------
def test_fit_block_keeps_the_longest_prefix_that_fits_each_packers_way() -> None:
    """One cutter for answer.blocks and pca_otf.pack: the separator counted, a floor of lines,
    and (for a block that already failed to fit) never the whole block back."""
    code = "\n".join(f"value_{i} = compute_{i}(value_{i - 1})" for i in range(1, 11))
    block = Block("pkg/mod.py", 20, 29, code, symbol="pkg.mod", score=0.7)
    size = estimate_tokens(block.render() + "\n\n")
    same = fit_block(block, size, estimate_tokens)
    assert same is not None and (same.end, same.code, same.tokens) == (29, code, size)
    assert fit_block(block, size, estimate_tokens, whole=False).end < 29  # type: ignore[union-attr]
    part = fit_block(block, size // 2, estimate_tokens, sep="")
    assert part is not None and part.start == 20 and part.end < 29 and part.symbol == "pkg.mod"
    assert part.code == "\n".join(code.split("\n")[: part.end - 19])
    assert part.tokens == estimate_tokens(part.render()) <= size // 2
    one = fit_block(
        block,
        estimate_tokens(Block("pkg/mod.py", 20, 20, code.split("\n")[0]).render()),
        estimate_tokens,
        sep="",
        min_lines=1,
    )
    assert one is not None and one.end == 20
    assert (
        fit_block(block, one.tokens, estimate_tokens, sep="") is None
    )  # fewer than 3 lines: not worth a label


def test_questions_and_answer_paragraphs_drop_their_own_stop_words() -> None:
    """One shared stop list (answer.words) plus each side's own: a question keeps the words an
    answer uses about any code ("function", "value"), an answer paragraph keeps Python's."""
    assert question_words("Where is the function that sets the value?") == {"function", "value"}
    # stop words are dropped before stemming: "this" and "does" are not searched for as thi, doe
    assert question_words("Does this cache expire items?") == {"cache", "expire", "item"}
    block = Block("pkg/mod.py", 1, 2, "def function(value):\n    return value")
    assert support("The function returns the value of the call.", block) == 0.0
    assert support("The def returns self and none.", block) > 0.0


def test_find_citations_forms() -> None:
    text = (
        "Cart.add builds an Item [shop/cart.py:10-13] and appends it [shop/cart.py:12]; see also "
        "[./shop/models.py:14-33] and again [shop/cart.py:10-13]. Not citations: [1], [link](http://x:80), "
        "[a b.py:3], [shop/cart.py:ten]."
    )
    assert [(c.text, c.path, c.start, c.end) for c in find(text)] == [
        ("[shop/cart.py:10-13]", "shop/cart.py", 10, 13),
        ("[shop/cart.py:12]", "shop/cart.py", 12, 12),
        ("[./shop/models.py:14-33]", "shop/models.py", 14, 33),
    ]


def test_check_and_mark_against_the_graph(symbols: GraphSymbols) -> None:
    answer = (
        "It returns the Item [shop/cart.py:10-13]. The total is computed in [shop/pricing.py:1-99], "
        "errors live in [shop/nothing.py:1-2] and [shop/cart.py:13-10]."
    )
    cits = check(find(answer), symbols)
    assert [c.resolves for c in cits] == [True, False, False, False]
    assert [c.reason for c in cits[1:]] == [
        "the file has 17 lines",
        "no such file in the graph",
        "not a line range",
    ]
    marked = mark(answer, cits)
    assert "[shop/cart.py:10-13]." in marked and marked.count(UNRESOLVED_MARK) == 3
    assert mark("See [x.py:1-2].", find("See [x.py:1-2].")) == "See [x.py:1-2].", "unchecked: not marked"


def test_names_in_paragraph() -> None:
    assert names_in("`Cart.add` calls m.Item( and compute_total() [shop/cart.py:1]") == [
        "Cart.add",
        "m.Item",
        "compute_total",
    ]


# ---- repair without blocks (the pca_otf runner's symbol repair) ----------------------------------
def test_valid_citations_kept(symbols: GraphSymbols) -> None:
    text = "Cart.checkout raises ShopError on an empty cart [shop/cart.py:15-18].\n\nIt also sums [shop/cart.py:18]."
    checked = Checker(symbols).check(text)
    assert [c.resolves for c in checked.citations] == [True, True]
    assert not any(c.repaired for c in checked.citations)
    assert checked.text == text and checked.missing == []


def test_repair_snaps_line_into_named_symbol(symbols: GraphSymbols) -> None:
    checked = Checker(symbols).check(
        "`Cart.checkout` raises `ShopError` when the cart is empty [shop/cart.py:95]."
    )
    c = checked.citations[0]
    assert (c.resolves, c.repaired, c.path, c.start, c.end) == (True, True, "shop/cart.py", 15, 18)
    assert "[shop/cart.py:15-18]" in checked.text and "[shop/cart.py:95]" not in checked.text


def test_repair_fixes_dropped_folder(symbols: GraphSymbols) -> None:
    checked = Checker(symbols).check("The total is computed by summing each item's price [pricing.py:14-99].")
    c = checked.citations[0]
    assert c.resolves and c.repaired and (c.path, c.start, c.end) == ("shop/pricing.py", 14, 17)


def test_unrepairable_is_marked_and_enforcement_marks_uncited_claims(symbols: GraphSymbols) -> None:
    checked = Checker(symbols).check(
        "This paragraph talks about nothing in the code at all [nowhere/x.py:3]."
    )
    assert not checked.citations[0].resolves and "[nowhere/x.py:3]" + UNRESOLVED_MARK in checked.text
    assert checked.missing == [0] and checked.all_resolved_or_marked
    text = "Cart.add appends a new item and returns it [shop/cart.py:10-13].\n\nThe checkout also handles taxes in a helper.\n\nOk."
    loose = Checker(symbols).check(text)
    assert loose.needs == [0, 1] and loose.missing == [1] and UNVERIFIED_MARK not in loose.text
    strict = Checker(symbols).check(text, enforce=True)
    paras = strict.text.split("\n\n")
    assert paras[1].endswith(UNVERIFIED_MARK) and not paras[0].endswith(UNVERIFIED_MARK)
    assert paras[2] == "Ok." and strict.marked == [1]


# ---- bound to the code shown ---------------------------------------------------------------------
def test_citations_must_name_a_shown_block(symbols: GraphSymbols) -> None:
    g = symbols.graph
    shown = [_block(g, "shop/cart.py", 10, 18)]
    checker = Checker(symbols, shown)
    # inside the block (a sub-range): kept as written
    ok = checker.check("`Cart.checkout` raises ShopError on an empty cart [shop/cart.py:15-18].")
    assert ok.citations[0].resolves and not ok.citations[0].repaired
    # resolves in the graph but lies outside what was shown, and nothing named is shown: marked
    out = checker.check("The price of one item is its unit price times the quantity [shop/pricing.py:14-17].")
    assert not out.citations[0].resolves and out.citations[0].reason == "not in the code shown"
    assert "[shop/pricing.py:14-17]" + UNRESOLVED_MARK in out.text
    # overruns the block: clipped to the shown lines
    over = checker.check("`Cart.add` stores the item and returns it [shop/cart.py:10-40].")
    assert (over.citations[0].start, over.citations[0].end) == (
        10,
        18,
    ) and "[shop/cart.py:10-18]" in over.text
    # a bare `path:line` is bracketed (a repair)
    bare = checker.check("`Cart.add` returns the new item, see shop/cart.py:13 for it.")
    assert bare.citations[0].resolves and bare.citations[0].repaired and "[shop/cart.py:13-13]" in bare.text


def test_a_label_after_a_name_is_bound_to_that_name_s_block(symbols: GraphSymbols) -> None:
    g = symbols.graph
    add, checkout = _block(g, "shop/cart.py", 10, 13), _block(g, "shop/cart.py", 15, 18)
    checker = Checker(symbols, [add, checkout])
    # the name and the label disagree, both shown: the label follows the name
    wrong = checker.check("`Cart.checkout` [shop/cart.py:10-13] raises ShopError on an empty cart.")
    assert "`Cart.checkout` [shop/cart.py:15-18]" in wrong.text and wrong.citations[0].repaired
    # they agree: unchanged
    right = checker.check("`Cart.add` [shop/cart.py:10-13] stores the item and returns it.")
    assert right.text.startswith("`Cart.add` [shop/cart.py:10-13]") and not right.citations[0].repaired
    # the named symbol is not shown: the label stays on the code that was shown
    unshown = Checker(symbols, [add]).check("`Cart.checkout` [shop/cart.py:10-13] raises ShopError.")
    assert "[shop/cart.py:10-13]" in unshown.text and not unshown.citations[0].repaired
    # a label not right after a name is the paragraph's, not the name's
    loose = checker.check("`Cart.checkout` raises; items are added here [shop/cart.py:10-13].")
    assert "[shop/cart.py:10-13]" in loose.text


def test_names_nothing_backs_are_reported(symbols: GraphSymbols) -> None:
    g = symbols.graph
    shown = [_block(g, "shop/cart.py", 15, 18)]
    answer = (
        "`Cart.checkout` calls `compute_total` and raises `ShopError`; see `shop.pricing`, "
        "`functools.reduce`, `len(items)` and `obj.__name__`.\n\n"
        "```python\ndef my_checkout(cart):\n    basket = cart\n```\n\n"
        "Then call `cart.apply_discount(code)`, `Cart.empty_items` or `@cart_cached`, e.g. like this."
    )
    assert "my_checkout" not in code_names(answer) and "basket" not in code_names(answer)
    assert "e.g" not in code_names(answer) and "cart_cached" in code_names(answer)
    known = KnownNames(symbols, "Can a `Cart` be checked out twice?", shown)
    assert known.unknown(answer) == ["cart.apply_discount", "Cart.empty_items", "cart_cached"]
    assert known("Cart.add") and known("pricing.py") and known("self.items"), (
        "graph symbols, files, shown code"
    )

    checked = Checker(symbols, shown, question="Can a `Cart` be checked out twice?").check(answer)
    assert checked.unknown_names == ["cart.apply_discount", "Cart.empty_items", "cart_cached"]
    assert "names not found in the code graph" in report(checked, shown) and "`Cart.empty_items`" in report(
        checked, shown
    )
    assert Checker(symbols, shown).check(answer).unknown_names == [], "no question: names are not judged"


def test_uncited_paragraph_gets_the_supporting_block_or_is_unverified(symbols: GraphSymbols) -> None:
    g = symbols.graph
    cart, pricing = _block(g, "shop/cart.py", 15, 18), _block(g, "shop/pricing.py", 1, 17)
    assert support("`checkout` raises ShopError when the items are empty.", cart) > support(
        "`checkout` raises ShopError when the items are empty.", pricing
    )
    checker = Checker(symbols, [pricing, cart])
    checked = checker.check(
        "`checkout` raises `ShopError` when the items list is empty.\n\n"
        "The weather in the mountains changes quickly every single afternoon.",
        enforce=True,
    )
    first, second = checked.text.split("\n\n")
    assert first.endswith("[shop/cart.py:15-18]") and checked.attributed == [0]
    assert second.endswith(UNVERIFIED_MARK) and checked.marked == [1]
    lines = report(checked, [pricing, cart])
    assert "context: [shop/pricing.py:1-17] [shop/cart.py:15-18]" in lines
    assert "ok   shop/cart.py:15-18 (attributed)" in lines and "unverified paragraphs: 1" in lines


# ---- bound while decoding ------------------------------------------------------------------------
SHOWN = [Block("a/b.py", 10, 13, ""), Block("c.py", 95, 120, "")]


@pytest.mark.parametrize(
    ("open_inner", "piece", "ok"),
    [
        (None, " the", True),  # prose is free
        (None, " [", True),
        (None, "[a", True),
        (None, "[x", False),  # no shown path starts with x
        ("", "a/b.py", True),
        ("a/b.py", ":1", True),  # 1.. can still become 10-13
        ("a/b.py:", "9", False),
        ("a/b.py:1", "4", False),  # 14 is past the block
        ("a/b.py:12", "-1", True),
        ("a/b.py:12-1", "1", False),  # 11 < start 12
        ("a/b.py:12-1", "3].", True),
        ("a/b.py:12-13", "]", True),
        ("c.py:9", "9]", True),  # a single line inside the block
        ("c.py:121", "]", False),
        ("c.py:10", "0] [", True),  # closes a valid one, opens the next
    ],
)
def test_constraint_allows_only_shown_spans(open_inner: str | None, piece: str, ok: bool) -> None:
    from answer.constrain import Spans

    assert Spans(SHOWN).allows(open_inner, piece) is ok


def test_number_and_citation_regex_match_exactly_the_shown_spans() -> None:
    import random
    import re

    from answer.constrain import citation_regex, number_regex

    rng = random.Random(7)
    for _ in range(60):
        lo = rng.randint(1, 2000)
        hi = lo + rng.choice([0, 7, 90, 1500])
        rx = re.compile(number_regex(lo, hi))
        assert all(bool(rx.fullmatch(str(n))) == (lo <= n <= hi) for n in range(1, 4000))
    rx = re.compile(citation_regex(SHOWN), re.S)
    assert rx.fullmatch("`f` [a/b.py:10-13] does it.\n\nSee [c.py:99] and [c.py:100-120].")
    for bad in ("[a/b.py:9-13]", "[x.py:1]", "[a/b.py:10", "[c.py:121]"):
        assert not rx.fullmatch(f"see {bad}"), bad
    # inside backticks a `[` is code: free, in inline code, in a fence and in a cut-off span
    assert rx.fullmatch("`key: Callable[[int], str]` [a/b.py:10]\n```py\nx = items[0]\n```\nthen `d[k")
    assert not rx.fullmatch("`d[k]` and d[k]")  # outside backticks it must be a label
    first = re.compile(citation_regex(SHOWN, open_with_citation=True), re.S)
    assert first.fullmatch("`f` [a/b.py:10-13] does it.\n\nMore.")
    assert first.fullmatch("No such thing; the closest block shown is `g` [c.py:99-100].")
    assert not first.fullmatch("`f` does it.\n\nSee [a/b.py:10].")  # the first line cites nothing
    assert not first.fullmatch("`f` [x.py:1] does it.")
    assert not first.fullmatch("x" * 301 + " [a/b.py:10]")  # the first label comes early
    assert first.fullmatch("x" * 299 + " [a/b.py:10] and then " + "y" * 2000)


def test_open_citation_ignores_brackets_inside_code() -> None:
    from answer.constrain import open_citation

    assert open_citation("see [a/b.py:1") == "a/b.py:1"
    assert open_citation("see [a/b.py:10-13] done") is None
    assert open_citation("it takes `key: Callable[") is None  # code, not a citation
    assert open_citation("`Callable[int]` is cited [c.py:9") == "c.py:9"


@pytest.mark.parametrize(
    ("text", "piece", "ok"),
    [
        ("`f` does", " it", True),
        ("`f` does", " it.\n", False),  # the first line ends without a label
        ("`f` does it", " [a", True),  # the label opens
        ("x" * 299, "y", False),  # no room left for the `[`
        ("x" * 299, " [", True),
        ("x" * 300, "[", True),
        ("x" * 300, " [", False),  # the `[` would be unit 301
        ("`" + "y" * 400, "z", True),  # an open code span is one unit, however long
        ("`" + "y" * 400, "\n", False),  # ... and ends no first line
        ("`d[k]` is", " `x`", True),  # a `[` in code opens no label and counts in its span
    ],
)
def test_first_line_rule_matches_the_served_regex(text: str, piece: str, ok: bool) -> None:
    from answer.constrain import first_line_allows

    assert first_line_allows(text, piece) is ok


@pytest.fixture(scope="module")
def smollm() -> tuple:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nanodex.models import resolve_model

    folder = resolve_model("embedded:smollm2-135m")
    return AutoTokenizer.from_pretrained(str(folder)), AutoModelForCausalLM.from_pretrained(
        str(folder)
    ).eval()


@pytest.mark.slow
def test_local_generation_opens_with_a_shown_label_when_asked(smollm: tuple) -> None:
    """With `open_with_citation` every local answer opens as the regex a served model gets asks:
    a shown label on the first line within 300 units. The prompts are ones the embedded model
    answers without any label on its first line."""
    import re

    from answer.constrain import citation_regex
    from answer.generate import generate

    tok, model = smollm
    shown = [Block("shop/cart.py", 10, 13, ""), Block("shop/pricing.py", 14, 17, "")]
    ask = [
        [{"role": "user", "content": "Tell me a long story about a cat."}],
        [{"role": "user", "content": "Explain what a shopping cart is, in detail."}],
    ]
    free = generate(model, tok, ask, max_new_tokens=100)
    assert not any("[shop/" in a.split("\n")[0] for a in free), free
    bound = generate(model, tok, ask, max_new_tokens=100, blocks=[shown] * 2, open_with_citation=True)
    first = re.compile(citation_regex(shown, open_with_citation=True), re.S)
    for answer in bound:  # up to its first label (an answer may stop at max_new_tokens in a later one)
        assert "]" in answer and first.fullmatch(answer[: answer.index("]") + 1]), answer


@pytest.mark.slow
def test_local_generation_cannot_cite_outside_the_shown_code(smollm: tuple) -> None:
    """The embedded SmolLM2 asked to repeat invented citations: unconstrained it copies them,
    constrained every citation it writes names a shown block or a sub-range of one."""
    from answer.generate import generate

    tok, model = smollm
    shown = [Block("shop/cart.py", 10, 13, ""), Block("shop/pricing.py", 14, 17, "")]
    ask = [
        [{"role": "user", "content": "Repeat exactly: see [shop/cart.py:90-99] and [shop/models.py:3-4]."}]
    ]
    free = generate(model, tok, ask, max_new_tokens=32)[0]
    assert "[shop/cart.py:90-99]" in free or "[shop/models.py" in free, free  # the model does copy them
    bound = generate(model, tok, ask, max_new_tokens=32, blocks=[shown])[0]
    cites = find(bound)
    assert cites, bound
    assert all(any(c.within(b) for b in shown) for c in cites), bound


def test_frequency_penalty_counts_the_answer_s_tokens_only() -> None:
    """The served `frequency_penalty` (OpenAI/vLLM): each logit falls by the penalty times the
    token's count in the answer so far; tokens of the prompt are not counted."""
    import torch

    from answer.generate import FrequencyPenalty

    proc = FrequencyPenalty(0.5)
    prompt = torch.tensor([[5, 5, 9]])
    scores = torch.zeros(1, 12)
    assert torch.equal(proc(prompt, scores.clone()), scores)  # nothing answered yet
    answered = torch.cat([prompt, torch.tensor([[5, 7, 5]])], dim=1)
    out = proc(answered, scores.clone())
    expected = torch.zeros(1, 12)
    expected[0, 5], expected[0, 7] = -1.0, -0.5
    assert torch.equal(out, expected)
