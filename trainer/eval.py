"""`python -m trainer.eval`: does the adapter help? Base vs base + adapter on held-out questions.

Both models answer every question greedily from the same chat prompt (the adapter switched off
for the base answers, so the weights are loaded once). Reported for both: exact-reference
accuracy (the answer names the right symbol or file), citation validity (against --graph when
given, else against the dataset's own citations), held-out answer perplexity, and five
side-by-side examples. Writes report.json, report.md and loss.png (train/eval loss from training)
to --out (default <adapter>/eval), and merges the summary into the adapter's nanodex.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from answer.blocks import Block
from answer.citations import parse
from answer.generate import generate
from nanodex.errors import NanodexError, run_main
from nanodex.log import get_logger, setup_logging
from nanodex.models import DEFAULT_BASE
from nanodex.paths import DEFAULT_EVAL_JSONL, atomic_path


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m trainer.eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--adapter", required=True, help="adapter folder written by `make train-lora`/`train-qlora`"
    )
    ap.add_argument("--base", help="base model (default: the one recorded in the adapter's nanodex.json)")
    ap.add_argument(
        "--dataset",
        help="held-out JSONL (default: the eval set recorded in the adapter's nanodex.json, else work/dataset/eval.jsonl)",
    )
    ap.add_argument(
        "--graph", help="code graph to check citations against (default: the dataset's citations)"
    )
    ap.add_argument("--out", help="report folder (default <adapter>/eval)")
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N rows (0 = all)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="answer length cap for greedy decoding")
    ap.add_argument("--batch-size", type=int, default=8, help="questions decoded together")
    ap.add_argument("--examples", type=int, default=5, help="side-by-side examples in the report")
    ap.add_argument("--no-manifest", action="store_true", help="do not write the results into nanodex.json")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    report = evaluate(
        adapter=Path(args.adapter),
        dataset=args.dataset,
        base=args.base,
        graph=args.graph,
        out=Path(args.out) if args.out else None,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        n_examples=args.examples,
        write_manifest=not args.no_manifest,
    )
    print(render_summary(report))
    return 0


def evaluate(
    *,
    adapter: Path,
    dataset: str | None = None,
    base: str | None = None,
    graph: str | None = None,
    out: Path | None = None,
    limit: int = 0,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    n_examples: int = 5,
    write_manifest: bool = True,
) -> dict[str, Any]:
    """Run the comparison and write the reports; returns the JSON report."""
    from nanodex.models import resolve_model
    from trainer import data, metrics
    from trainer.manifest import read_manifest, update_manifest
    from trainer.model import cpu_threads, device_kind, load_adapter, load_tokenizer

    log = get_logger("trainer.eval")
    t0 = time.perf_counter()
    if not (adapter / "adapter_config.json").is_file():
        raise NanodexError(
            f"no PEFT adapter in {adapter}", "run `make train-qlora` first, or pass ADAPTER=<folder>"
        )
    manifest = read_manifest(adapter)
    trained_on = manifest.get("base")
    base = base or trained_on or DEFAULT_BASE
    if trained_on and base != trained_on:
        log.warning("adapter was trained on %s but is evaluated on %s", trained_on, base)
    cfg = manifest.get("config", {})
    if not dataset:
        recorded = ((manifest.get("dataset") or {}).get("eval") or {}).get("path")
        dataset = recorded if recorded and Path(recorded).is_file() else str(DEFAULT_EVAL_JSONL)
    system_prompt = cfg.get("system_prompt")
    max_seq_len = int(cfg.get("max_seq_len") or 1024)

    rows = data.load_rows(dataset, what="eval dataset", limit=limit)
    if device_kind() == "cpu":
        import torch

        torch.set_num_threads(cpu_threads(0))
    base_path = resolve_model(base)
    tok = load_tokenizer(base_path)
    model = load_adapter(base_path, adapter)

    encoded, _ = data.encode_rows(tok, rows, max_seq_len, system_prompt)
    ppl_adapter = metrics.answer_perplexity(model, encoded, tok.pad_token_id, batch_size)
    with model.disable_adapter():
        ppl_base = metrics.answer_perplexity(model, encoded, tok.pad_token_id, batch_size)
    log.info(
        "answer perplexity: base %.3f, adapter %.3f",
        ppl_base["answer_perplexity"],
        ppl_adapter["answer_perplexity"],
    )

    prompts = [data.prompt_messages(r, system_prompt) for r in rows]
    shown = [shown_blocks(r) for r in rows]
    log.info("%d questions, %d with code shown (greedy)", len(rows), sum(1 for b in shown if b))
    ask = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "blocks": shown}
    answers_adapter = generate(model, tok, prompts, desc="adapter answers", **ask)
    with model.disable_adapter():
        answers_base = generate(model, tok, prompts, desc="base answers", **ask)

    if graph:
        from extractor.graph import Graph

        g = Graph(graph)
        resolves = metrics.graph_resolver(g)
        checked_against = f"graph {graph}"
    else:
        g = None
        resolves = metrics.dataset_resolver(rows)
        checked_against = f"citations of {dataset}"
    try:
        per_row = []
        for row, a_base, a_ad in zip(rows, answers_base, answers_adapter, strict=True):
            per_row.append(
                {
                    "id": row.get("id"),
                    "kind": row.get("kind"),
                    "prompt": data.prompt_messages(row)[-1]["content"],
                    "reference": data.reference_answer(row),
                    "base": {"answer": a_base, **metrics.score_answer(a_base, row, resolves)},
                    "adapter": {"answer": a_ad, **metrics.score_answer(a_ad, row, resolves)},
                }
            )
    finally:
        if g is not None:
            g.close()

    summary = {
        "base": {**metrics.summarize([r["base"] for r in per_row]), **ppl_base},
        "adapter": {**metrics.summarize([r["adapter"] for r in per_row]), **ppl_adapter},
    }
    report = {
        "adapter": str(adapter),
        "base_model": base,
        "dataset": dataset,
        "dataset_sha256": data.file_sha256(dataset),
        "rows": len(rows),
        "citations_checked_against": checked_against,
        "max_new_tokens": max_new_tokens,
        "metrics": summary,
        "by_kind": by_kind(per_row),
        "examples": pick_examples(per_row, n_examples),
        "training": _training_summary(manifest),
        "seconds": round(time.perf_counter() - t0, 1),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = out or adapter / "eval"
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "report.json").write_text(json.dumps({**report, "answers": per_row}, indent=2) + "\n", "utf-8")
        plotted = plot_losses(manifest, tmp / "loss.png")
        (tmp / "report.md").write_text(render_markdown(report, plotted), encoding="utf-8")
    if write_manifest:
        update_manifest(
            adapter,
            "eval",
            {k: report[k] for k in ("dataset", "dataset_sha256", "rows", "metrics", "created_at")},
        )
    log.info("reports written to %s (%.0f s)", out, report["seconds"])
    report["out"] = str(out)
    return report


def shown_blocks(row: dict[str, Any]) -> list[Block]:
    """The code blocks a row's prompt shows (its `context` labels): what its citations may name."""
    found = (parse(str(label)) for label in row.get("context") or [])
    return [Block(c.path, c.start, c.end, "") for c in found if c is not None]


def by_kind(per_row: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from trainer.metrics import summarize

    kinds = sorted({str(r.get("kind")) for r in per_row})
    out = {}
    for kind in kinds:
        rows = [r for r in per_row if str(r.get("kind")) == kind]
        b, a = summarize([r["base"] for r in rows]), summarize([r["adapter"] for r in rows])
        out[kind] = {
            "rows": len(rows),
            "base_exact_reference": b["exact_reference_accuracy"],
            "adapter_exact_reference": a["exact_reference_accuracy"],
            "base_citation_validity": b["citation_validity"],
            "adapter_citation_validity": a["citation_validity"],
        }
    return out


def pick_examples(per_row: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """n side-by-side examples, one per kind first so the sample is not all one question type."""
    chosen: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in per_row:
        if len(chosen) < n and str(r.get("kind")) not in seen:
            chosen.append(r)
            seen.add(str(r.get("kind")))
    for r in per_row:
        if len(chosen) >= n:
            break
        if r not in chosen:
            chosen.append(r)
    return [
        {"id": r["id"], "kind": r["kind"], "prompt": r["prompt"], "reference": r["reference"],
         "base": r["base"]["answer"], "adapter": r["adapter"]["answer"]}
        for r in chosen
    ]  # fmt: skip


def _training_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    t = manifest.get("training") or {}
    keys = ("global_step", "train_loss_first", "train_loss_last", "eval_loss_first", "eval_loss_last")
    return {k: t.get(k) for k in (*keys, "tokens_per_second", "train_seconds")}


def plot_losses(manifest: dict[str, Any], path: Path) -> bool:
    """PNG of train and eval loss against step, from the training history in nanodex.json."""
    t = manifest.get("training") or {}
    train, evals = t.get("train_loss_history") or [], t.get("eval_loss_history") or []
    if not train and not evals:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", color="tab:blue")
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], "o-", label="eval loss", color="tab:orange")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_title(f"{manifest.get('method', 'lora')} on {manifest.get('base', '?')}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def render_summary(report: dict[str, Any]) -> str:
    m = report["metrics"]
    lines = [f"eval of {report['adapter']} on {report['rows']} rows of {report['dataset']}"]
    lines.append(f"{'':28}{'base':>12}{'adapter':>12}")
    for key, label, fmt in _ROWS:
        lines.append(f"{label:28}{fmt(m['base'].get(key)):>12}{fmt(m['adapter'].get(key)):>12}")
    lines.append(f"reports: {report.get('out', '')}")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


_ROWS = [
    ("answer_perplexity", "answer perplexity", _num),
    ("exact_reference_accuracy", "exact-reference accuracy", _pct),
    ("symbol_accuracy", "  names the symbol", _pct),
    ("file_accuracy", "  names the file", _pct),
    ("citation_validity", "citation validity", _pct),
    ("answers_with_citation", "answers with a citation", _pct),
    ("cites_reference", "cites the reference lines", _pct),
]


def render_markdown(report: dict[str, Any], plotted: bool) -> str:
    m = report["metrics"]
    out = [
        f"# Adapter evaluation: {report['adapter']}",
        "",
        f"Base model `{report['base_model']}`; {report['rows']} held-out rows of `{report['dataset']}` "
        f"(sha256 `{report['dataset_sha256'][:12]}`); greedy decoding, at most {report['max_new_tokens']} new "
        f"tokens; citations checked against {report['citations_checked_against']}.",
        "",
        "| metric | base | base + adapter |",
        "|---|---|---|",
    ]
    for key, label, fmt in _ROWS:
        out.append(f"| {label.strip()} | {fmt(m['base'].get(key))} | {fmt(m['adapter'].get(key))} |")
    out.append(f"| citations made | {m['base']['citations']} | {m['adapter']['citations']} |")
    t = report.get("training") or {}
    if t.get("global_step") is not None:
        out += [
            "",
            f"Training: {t['global_step']} steps; eval loss {_num(t.get('eval_loss_first'))} -> "
            f"{_num(t.get('eval_loss_last'))}; train loss {_num(t.get('train_loss_first'))} -> "
            f"{_num(t.get('train_loss_last'))}; {t.get('tokens_per_second')} tokens/s.",
        ]
    if plotted:
        out += ["", "![train and eval loss](loss.png)"]
    out += [
        "",
        "## By kind",
        "",
        "| kind | rows | exact ref. base | exact ref. adapter | cit. valid base | cit. valid adapter |",
    ]
    out.append("|---|---|---|---|---|---|")
    for kind, k in report["by_kind"].items():
        out.append(
            f"| {kind} | {k['rows']} | {_pct(k['base_exact_reference'])} | {_pct(k['adapter_exact_reference'])} "
            f"| {_pct(k['base_citation_validity'])} | {_pct(k['adapter_citation_validity'])} |"
        )
    out += ["", "## Side by side", ""]
    for ex in report["examples"]:
        out += [
            f"### {ex['id']} ({ex['kind']})",
            "",
            f"**Question:** {ex['prompt']}",
            "",
            f"**Reference:** {ex['reference']}",
            "",
            f"**Base:** {ex['base']}",
            "",
            f"**Base + adapter:** {ex['adapter']}",
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    run_main(main)
