"""The dataset run: brain facts -> aspects -> chosen rows + negatives -> checked -> split -> files.

Every row is checked before it is written (schema, citations resolve in the graph, negatives
absent); a row that fails is dropped and counted in the stats, never written. Same config and
seed, same inputs -> byte-identical files (LLM paraphrasing aside).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from answer.prompt import training_messages
from brain.config import search_config
from brain.search import Searcher
from dataset.compose import citations_of, fit
from dataset.config import KINDS, DatasetConfig
from dataset.context import ContextMaker
from dataset.facts import Aspect, FactBuilder
from dataset.knowledge import Knowledge, load_knowledge
from dataset.negatives import NegativeMaker
from dataset.selection import Pick, norm_prompt, select
from dataset.split import crossing, eval_facts
from dataset.stats import summarize
from dataset.validate import bad_citations, leaks, present_negatives, schema_errors
from nanodex.errors import NanodexError
from nanodex.log import get_logger
from nanodex.paths import atomic_write_text

log = get_logger("dataset.build")


def make_row(
    kind: str, fact: str, prompt: str, response: str, refs: list[str], **extra: Any
) -> dict[str, Any]:
    """One row in the DESIGN.md shape plus `messages` (chat form), `fact` (the split unit), `subject` (the
    graph node asked about, for coverage), `aspect`, `negative` (+ `absent`, the name that does not exist)."""
    rid = hashlib.sha1(f"{fact}|{kind}|{prompt}".encode()).hexdigest()[:12]
    row: dict[str, Any] = {
        "id": f"{kind}-{rid}",
        "kind": kind,
        "prompt": prompt,
        "response": response,
        "refs": list(dict.fromkeys(refs)),
        "citations": citations_of(response),
        "messages": training_messages(prompt, [], response),  # dataset.context may add the code shown
        "fact": fact,
        "subject": extra.pop("subject", None),
        "negative": bool(extra.pop("negative", False)),
    }
    row.update(extra)
    return row


def _answer(a: Aspect, cfg: DatasetConfig, memo: dict[int, str | None]) -> str | None:
    key = id(a)
    if key not in memo:
        memo[key] = fit(a.parts, cfg.max_answer_tokens)
    return memo[key]


def _grounded(a: Aspect, answer: str, k: Knowledge) -> bool:
    """Every citation of the answer resolves and every ref is a graph node (checked before choosing)."""
    cites = citations_of(answer)
    return bool(cites) and all(k.resolves(c) for c in cites) and all(r in k.nodes for r in a.refs)


def _searcher(cfg: DatasetConfig) -> Searcher:
    """The search `make query` runs (config/brain.yaml's settings, dense when `brain-embed` ran),
    so a training row shows the code a served question would be shown."""
    bcfg = search_config(cfg.graph)
    if cfg.search_index:
        bcfg.search = replace(bcfg.search, index=cfg.search_index)
    return Searcher(bcfg, dense=cfg.context.search_mode != "lexical")


def _negatives(
    k: Knowledge, cfg: DatasetConfig, picks: dict[str, list[Pick]], seen: set[str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """`negatives_per_example` negatives per positive row of each kind, from that kind's facts."""
    rows: list[dict[str, Any]] = []
    short: dict[str, str] = {}
    if cfg.negatives_per_example <= 0:
        return rows, short
    with _searcher(cfg) as searcher:
        maker = NegativeMaker(k, searcher, cfg.paraphrases)
        for kind in KINDS:
            want = round(len(picks[kind]) * cfg.negatives_per_example)
            sources = [
                a
                for a in {p.aspect.fact: p.aspect for p in picks[kind]}.values()
                if not (
                    a.subject in k.nodes and k.is_test(k.nodes[a.subject])
                )  # names made from tests read oddly
            ]
            random.Random(f"{cfg.seed}:{kind}").shuffle(sources)
            made = 0
            for attempt in range(4):
                for a in sources:
                    if made >= want:
                        break
                    neg = maker.make(a, attempt)
                    if neg is None or norm_prompt(neg.prompt) in seen:
                        continue
                    response = fit(neg.parts, cfg.max_answer_tokens)
                    if response is None:
                        continue
                    seen.add(norm_prompt(neg.prompt))
                    rows.append(
                        make_row(
                            kind,
                            neg.fact,
                            neg.prompt,
                            response,
                            neg.refs,
                            negative=True,
                            absent=neg.absent,
                            aspect="negative",
                        )
                    )
                    made += 1
            if made < want:
                short[f"{kind}-negative"] = (
                    f"{kind}: {made} of {want} negatives: no more checked-absent names could be made from "
                    f"{len(sources)} facts (unused words: {len(maker.verbs)} verbs, {len(maker.errors)} error words, "
                    f"{len(maker.modules)} module words)"
                )
    return rows, short


def build_dataset(cfg: DatasetConfig, paraphraser: object | None = None) -> dict[str, Any]:
    """Run the stage; write train/eval JSONL and the stats JSON; return the stats."""
    if not 0 <= cfg.eval_fraction < 1:
        raise NanodexError(f"eval_fraction {cfg.eval_fraction} is outside [0, 1)", "use e.g. 0.1")
    if not 0 <= cfg.non_library_share <= 1:
        raise NanodexError(f"non_library_share {cfg.non_library_share} is outside [0, 1]", "use e.g. 0.15")
    if cfg.paraphrases < 1 or cfg.max_answer_tokens < 16 or cfg.snippet_max_lines < 1:
        raise NanodexError(
            "paraphrases, max_answer_tokens and snippet_max_lines must be positive", "fix config/dataset.yaml"
        )
    k = load_knowledge(cfg.graph, cfg.nodes_dir)
    try:
        aspects = FactBuilder(k, cfg).build()
        memo: dict[int, str | None] = {}
        over = [a for a in aspects if _answer(a, cfg, memo) is None]
        aspects = [a for a in aspects if _answer(a, cfg, memo) is not None]
        unresolved = [a for a in aspects if not _grounded(a, memo[id(a)] or "", k)]
        for a in unresolved[:5]:
            log.warning(
                "skipped %s/%s of %s: a citation or ref does not resolve in the graph",
                a.kind,
                a.aspect,
                a.fact,
            )
        aspects = [a for a in aspects if _grounded(a, memo[id(a)] or "", k)]
        picks, short, ambiguous = select(aspects, cfg, k.asked_later())
        rows: list[dict[str, Any]] = []
        parts: dict[str, list[str]] = {}  # row id -> answer parts, rebuilt around the code shown
        for kind in KINDS:
            for p in picks[kind]:
                a = p.aspect
                answer = memo[id(a)] or ""
                rows.append(
                    make_row(kind, a.fact, p.prompt, answer, a.refs, subject=a.subject, aspect=a.aspect)
                )
                parts[rows[-1]["id"]] = a.parts
        seen = {norm_prompt(r["prompt"]) for r in rows}
        negs, neg_short = _negatives(k, cfg, picks, seen)
        short.update(neg_short)
        rows += negs
        reworded = rejected = 0
        if paraphraser is not None:
            reworded, rejected = _reword(rows, cfg, paraphraser)
        dropped: dict[str, int] = {"schema": 0, "citation": 0, "present_negative": 0}
        good = []
        for r in rows:
            if schema_errors(r):
                dropped["schema"] += 1
                log.warning("dropped row %s: %s", r["id"], "; ".join(schema_errors(r)))
            elif bad_citations(r, k):
                dropped["citation"] += 1
                log.warning("dropped row %s: unresolved %s", r["id"], ", ".join(bad_citations(r, k)))
            elif present_negatives([r], k):
                dropped["present_negative"] += 1
                log.warning("dropped negative %s: %s exists", r["id"], r["absent"])
            else:
                good.append(r)
        held = eval_facts(good, cfg.seed, cfg.eval_fraction)
        random.Random(cfg.seed).shuffle(good)
        train = [r for r in good if r["fact"] not in held]
        evals = [r for r in good if r["fact"] in held]
        cross = {id(r) for r in crossing(train, evals)}  # no held-out fact's refs in a training row
        dropped["negative_crossing_split"] = len(cross)
        train = [r for r in train if id(r) not in cross]
        if not train:
            raise NanodexError(
                "the dataset has no training rows", "check the brain nodes (`make brain`) and counts"
            )
        context = _add_context(k, cfg, train, evals, parts)
        stats = summarize(
            train,
            evals,
            k,
            {
                "leakage": leaks(train, evals),
                "shortfalls": short,
                "dropped": {
                    **dropped,
                    "over_budget_aspects": len(over),
                    "unresolved_aspects": len(unresolved),
                    "ambiguous_prompts": ambiguous,
                },
                "llm_paraphrase": {"reworded": reworded, "rejected": rejected},
                "context": context,
                "inputs": {"graph": cfg.graph, "nodes_dir": cfg.nodes_dir, "brain_nodes": len(k.brain)},
                "outputs": {"train": cfg.out_jsonl, "eval": cfg.eval_jsonl},
                "config": asdict(cfg),
            },
        )
    finally:
        k.graph.close()
    _write_set(cfg, train, evals, stats)
    return stats


def _write_set(
    cfg: DatasetConfig, train: list[dict[str, Any]], evals: list[dict[str, Any]], stats: dict[str, Any]
) -> None:
    """Write train, eval, then stats.json, which records the sha256 of the other two.

    Three renames cannot be one atomic step; a run killed between them leaves a new file beside
    old ones. stats.json goes last and names the hashes, so a reader (trainer.data.load_rows)
    finds a mixed set and says so instead of training on it.
    """
    hashes: dict[str, str] = {}
    stats_dir = Path(cfg.stats_json).resolve().parent
    for path, rows in ((cfg.out_jsonl, train), (cfg.eval_jsonl, evals)):
        text = _write_jsonl(path, rows)
        if Path(path).resolve().parent == stats_dir:
            hashes[Path(path).name] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    stats["outputs_sha256"] = hashes
    atomic_write_text(cfg.stats_json, json.dumps(stats, indent=1, sort_keys=True) + "\n")


def _add_context(
    k: Knowledge,
    cfg: DatasetConfig,
    train: list[dict[str, Any]],
    evals: list[dict[str, Any]],
    parts: dict[str, list[str]],
) -> dict[str, int]:
    """Code context for `context.share` of the rows (after the split: held-out rows get what
    search retrieves, training rows the code they cite); counts of what was done."""
    if cfg.context.share <= 0:
        return {}
    with _searcher(cfg) as searcher:
        maker = ContextMaker(k, searcher, cfg.context, cfg.max_answer_tokens, cfg.seed)
        maker.add(train, parts, held_out=False)
        maker.add(evals, parts, held_out=True)
    return maker.counts


def _reword(rows: list[dict[str, Any]], cfg: DatasetConfig, paraphraser: Any) -> tuple[int, int]:
    rng = random.Random(f"{cfg.seed}:llm")
    seen = {norm_prompt(r["prompt"]) for r in rows}
    done = rejected = 0
    for r in rows:
        if r["negative"] or rng.random() >= cfg.llm.share:
            continue
        new = paraphraser.reword(r["prompt"])
        if new is None or norm_prompt(new) in seen:
            rejected += 1
            continue
        seen.add(norm_prompt(new))
        r["prompt"] = new
        r["messages"][0]["content"] = new
        r["paraphrased"] = True
        done += 1
    return done, rejected


def _write_jsonl(path: str, rows: list[dict[str, Any]]) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_text(path, text)
    return text
