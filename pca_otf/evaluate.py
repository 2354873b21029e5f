"""`python -m pca_otf.evaluate`: does a program-conditioned adapter help? Six arms, same questions.

  (a) base                      the question alone
  (b) + packed context          the selected code as labelled blocks
  (c) + synthesized adapter     (b) plus the region's synthesized adapter (blended with the
                                build's whole-program adapter by gsub)
  (d) + random LoRA, same norm  (b) plus a seeded random adapter with the same shapes, ranks and
                                per-matrix delta norms as (c)'s: the control. Whatever (c) adds
                                beyond "any perturbation of this size" is (c) minus (d).
  (e) + trained adapter         (b) plus a LoRA trained by `python -m trainer` (--trained)
  (f) + adapters bank           (c) plus the top-M adapters of a bank (--bank)

Every arm runs through the same Runner (same selection, prompt, greedy decoding, citation
check), so arms differ only in what they say they differ in. Scores come from trainer.metrics,
the trainer's own evaluation functions: exact-reference accuracy (the answer names the symbol
or file the question is about) and citation validity (citations resolve in the graph). Both
are reported for what the model wrote (raw) and, for citations, also after the
CitationManager's repair, because repair is part of the product but must not hide what the
model itself did. No knob here is tuned per arm.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from nanodex.errors import NanodexError, run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import get_logger, progress, setup_logging
from nanodex.paths import atomic_path
from pca_otf.config import PcaConfig, RunConfig
from pca_otf.run import Controls, Runner

log = get_logger("pca_otf.evaluate")
ARMS = {
    "a": "base",
    "b": "+ packed context",
    "c": "+ synthesized adapter",
    "d": "+ random LoRA (same norm)",
    "e": "+ trained adapter",
    "f": "+ adapters bank",
}


def arm_config(arm: str, base: RunConfig, *, bank: str | None, mixture_m: int) -> RunConfig:
    """The run config of one arm: (a) no context, (b) context, (c)-(f) context + adapters."""
    if arm == "a":
        return replace(base, pack_context=False, adapter=False, adapters_bank=None, mixture_m=0)
    if arm in ("b", "e"):
        return replace(base, pack_context=True, adapter=False, adapters_bank=None, mixture_m=0)
    if arm in ("c", "d"):
        return replace(base, pack_context=True, adapter=True, adapters_bank=None, mixture_m=0)
    if arm == "f":
        return replace(base, pack_context=True, adapter=True, adapters_bank=bank, mixture_m=mixture_m)
    raise NanodexError(f"unknown arm '{arm}'", f"use letters among: {''.join(ARMS)}")


def random_control(seed: int) -> Any:
    """transform for arm (d): each synthesized set -> a random set of the same norms (seed per role)."""
    from pca_otf.synth import random_like

    def transform(aset: Any, role: str) -> Any:
        sub_seed = int.from_bytes(hashlib.sha256(f"{seed}:{role}".encode()).digest()[:4], "little")
        return random_like(aset, sub_seed)

    return transform


def trained_factors(adapter_dir: Path) -> list[tuple[str, dict, float]]:
    """A PEFT LoRA folder as full-module (A, B) factors, scaling folded in (read by the bank's reader)."""
    from pca_otf.bank import load_bank

    if not (adapter_dir / "adapter_config.json").is_file():
        raise NanodexError(f"no PEFT adapter in {adapter_dir}", "train one: python -m trainer --out DIR")
    adapter = load_bank(adapter_dir)[0]
    return [(f"trained:{adapter.name}", adapter.factors(), 1.0)]


def rows_from_graph(graph: str, n: int, seed: int) -> list[dict]:
    """Discovery questions generated from documented functions of the graph (when no dataset exists).

    "Which function does this: <first docstring sentence>?"; the reference is the function. Rows
    whose docstring names the function itself are skipped (the question would give the answer).
    """
    from pca_otf.program_graph import SqliteProgramGraph

    with SqliteProgramGraph(graph) as pg:
        cands = []
        for e in pg.entities():
            if e.kind not in ("function", "method") or e.path.startswith("tests/") or not e.doc:
                continue
            first = e.doc.strip().split("\n\n")[0].replace("\n", " ").split(". ")[0].strip().rstrip(".")
            if len(first.split()) < 5 or e.name.lower() in first.lower():
                continue
            cands.append((e, first))
    random.Random(seed).shuffle(cands)
    return [
        {
            "id": f"graph-{i}",
            "kind": "discovery",
            "prompt": f"Which function does this: {first}?",
            "response": f"`{e.qualname}` [{e.path}:{e.start_line}-{e.end_line}]",
            "refs": [e.id],
            "citations": [f"{e.path}:{e.start_line}-{e.end_line}"],
        }
        for i, (e, first) in enumerate(cands[:n])
    ]


def evaluate(
    *,
    cfg: RunConfig,
    rows: list[dict],
    arms: Sequence[str],
    trained: Path | None,
    bank: str | None,
    mixture_m: int,
    seed: int,
    dataset_label: str,
) -> dict[str, Any]:
    from extractor.graph import Graph
    from trainer import metrics

    for arm in arms:
        if arm not in ARMS:
            raise NanodexError(f"unknown arm '{arm}'", f"use letters among: {''.join(ARMS)}")
    if "e" in arms and trained is None:
        raise NanodexError("arm (e) needs a trained adapter", "pass --trained DIR (from `python -m trainer`)")
    if "f" in arms and (not bank or mixture_m <= 0):
        raise NanodexError("arm (f) needs a bank", "pass --bank DIR and --mixture-m M")
    factors = trained_factors(trained) if trained is not None else []
    t0 = time.perf_counter()
    runner = Runner(cfg)
    graph = Graph(cfg.graph)
    resolves = metrics.graph_resolver(graph)
    results: dict[str, Any] = {}
    per_row: list[dict] = [{"id": r.get("id"), "kind": r.get("kind"), "prompt": r["prompt"]} for r in rows]
    try:
        for arm in arms:
            runner.cfg = arm_config(arm, cfg, bank=bank, mixture_m=mixture_m)
            controls = None
            if arm == "d":
                controls = Controls(transform=random_control(seed))
            elif arm == "e":
                controls = Controls(factors=factors)
            raw_scores, fixed_scores, secs, region_hits, norms = [], [], [], [], []
            for i, row in enumerate(progress(rows, desc=f"arm {arm}", unit="q")):
                ta = time.perf_counter()
                ans = runner.answer(row["prompt"], controls=controls)
                secs.append(time.perf_counter() - ta)
                raw = metrics.score_answer(ans.raw, row, resolves)
                fixed = metrics.score_answer(ans.body, row, resolves)
                raw_scores.append(raw)
                fixed_scores.append(fixed)
                refs = set(row.get("refs") or [])
                region_hits.append(bool(refs & {n["id"] for n in ans.selected_nodes}))
                if ans.adapter_stats.get("norm") is not None:
                    norms.append(float(ans.adapter_stats["norm"]))
                per_row[i][arm] = {
                    "answer": ans.raw,
                    "reference_hit": raw["reference"],
                    "citations": raw["citations"],
                    "valid_raw": raw["valid_citations"],
                    "valid_repaired": fixed["valid_citations"],
                    "region_hit": region_hits[-1],
                    "adapter_norm": ans.adapter_stats.get("norm"),
                }
            s_raw = metrics.summarize(raw_scores)
            s_fix = metrics.summarize(fixed_scores)
            results[arm] = {
                "label": ARMS[arm],
                "exact_reference_accuracy": s_raw["exact_reference_accuracy"],
                "symbol_accuracy": s_raw["symbol_accuracy"],
                "file_accuracy": s_raw["file_accuracy"],
                "citations": s_raw["citations"],
                "citation_validity": s_raw["citation_validity"],
                "citation_validity_repaired": s_fix["citation_validity"],
                "answers_with_citation": s_raw["answers_with_citation"],
                "cites_reference": s_raw["cites_reference"],
                "cites_reference_repaired": s_fix["cites_reference"],
                "region_recall": round(sum(region_hits) / max(len(region_hits), 1), 4),
                "mean_adapter_norm": round(sum(norms) / len(norms), 4) if norms else None,
                "seconds_per_answer": round(sum(secs) / max(len(secs), 1), 2),
            }
            log.info("arm %s done: %s", arm, results[arm])
    finally:
        graph.close()
        runner.close()
    return {
        "dataset": dataset_label,
        "rows": len(rows),
        "graph": cfg.graph,
        "artifacts": cfg.artifacts,
        "base": cfg.base,
        "trained": str(trained) if trained else None,
        "adapters_bank": bank,
        "mixture_m": mixture_m,
        "seed": seed,
        "run_config": {
            k: getattr(cfg, k)
            for k in (
                "retrieval_policy",
                "context_tokens",
                "pack_mode",
                "max_new_tokens",
                "require_citations",
                "gsub",
            )
        },
        "arms": results,
        "answers": per_row,
        "seconds": round(time.perf_counter() - t0, 1),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


_COLS = [
    ("exact_reference_accuracy", "exact ref.", _pct),
    ("symbol_accuracy", "symbol", _pct),
    ("file_accuracy", "file", _pct),
    ("citations", "citations", str),
    ("citation_validity", "cit. valid (raw)", _pct),
    ("citation_validity_repaired", "cit. valid (repaired)", _pct),
    ("cites_reference", "cites ref.", _pct),
    ("region_recall", "region recall", _pct),
    ("seconds_per_answer", "s/answer", str),
]


def render_table(report: dict[str, Any]) -> str:
    head = "| arm | " + " | ".join(label for _, label, _ in _COLS) + " |"
    out = [head, "|" + "---|" * (len(_COLS) + 1)]
    for arm, r in report["arms"].items():
        out.append(f"| ({arm}) {r['label']} | " + " | ".join(fmt(r[k]) for k, _, fmt in _COLS) + " |")
    return "\n".join(out)


def render_markdown(report: dict[str, Any]) -> str:
    rc = report["run_config"]
    return (
        f"# pca_otf evaluation\n\n{report['rows']} questions from {report['dataset']}; graph "
        f"`{report['graph']}`; base `{report['base']}`; greedy, at most {rc['max_new_tokens']} new tokens; "
        f"context {rc['context_tokens']} tokens ({rc['pack_mode']}); policy {rc['retrieval_policy']}; "
        f"citations required: {rc['require_citations']}. Scores: trainer.metrics (exact reference on the "
        "model's own text; citation validity in the graph, raw and after repair). Region recall: the "
        "question's reference symbol is in the selected region.\n\n" + render_table(report) + "\n"
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m pca_otf.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--dataset",
        "--eval",
        dest="eval",
        help="held-out JSONL (dataset rows); default: questions made from the graph",
    )
    ap.add_argument(
        "--from-graph", type=int, default=0, help="without --eval: N questions from documented functions"
    )
    config_option(ap, PcaConfig, "pca", section="run")
    config_flag(ap, "--graph", key="graph", help="code graph (its brain search index beside it)")
    config_flag(ap, "--pca", "--artifacts", key="artifacts", help="build folder of `python -m pca_otf.build`")
    config_flag(ap, "--base", key="base", help="base model")
    ap.add_argument("--arms", default="abcdef", help="arms to run, e.g. abcd (default: all)")
    ap.add_argument("--adapter", "--trained", dest="trained", help="PEFT adapter folder for arm (e)")
    ap.add_argument("--bank", "--adapters-bank", dest="adapters_bank", help="bank folder for arm (f)")
    ap.add_argument("--mixture-m", type=int, default=2, help="bank adapters mixed in arm (f)")
    ap.add_argument("--limit", type=int, default=0, help="first N rows only (0 = all)")
    ap.add_argument("--sample", type=int, default=0, help="N rows drawn at random (seeded by --seed) instead")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random control and of --from-graph")
    config_flag(ap, "--max-new-tokens", key="max_new_tokens", help="answer length cap")
    config_flag(ap, "--context-tokens", key="context_tokens", help="packing budget")
    config_flag(
        ap,
        "--require-citations",
        key="require_citations",
        action=argparse.BooleanOptionalAction,
        help="ask for citations (--no-require-citations: do not)",
    )
    ap.add_argument("--out", help="report folder (report.json, report.md)")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_from_args(args)
    arms = [a for a in args.arms.strip().lower() if a.strip()]
    if "e" in arms and not args.trained:
        log.warning("no --trained adapter: arm (e) is left out")
        arms.remove("e")
    if "f" in arms and not args.adapters_bank:
        log.warning("no --bank: arm (f) is left out")
        arms.remove("f")
    if args.eval:
        from trainer.data import load_rows

        rows = load_rows(args.eval, what="eval dataset", limit=args.limit)
        label = f"`{args.eval}`"
        if args.sample and args.sample < len(rows):
            rows = random.Random(args.seed).sample(rows, args.sample)
            label += f" ({args.sample} rows sampled with seed {args.seed})"
    elif args.from_graph > 0:
        rows = rows_from_graph(cfg.graph, args.from_graph, args.seed)
        label = f"{len(rows)} discovery questions generated from the graph's docstrings (seed {args.seed})"
    else:
        raise NanodexError("no questions", "pass --dataset work/dataset/eval.jsonl or --from-graph N")
    if not rows:
        raise NanodexError("no evaluation rows", "check --dataset / --from-graph")
    report = evaluate(
        cfg=cfg,
        rows=rows,
        arms=arms,
        trained=Path(args.trained) if args.trained else None,
        bank=args.adapters_bank,
        mixture_m=args.mixture_m,
        seed=args.seed,
        dataset_label=label,
    )
    table = render_table(report)
    if args.out:
        with atomic_path(Path(args.out), is_dir=True) as tmp:
            (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            (tmp / "report.md").write_text(render_markdown(report), encoding="utf-8")
    print(table)
    print(f"{report['rows']} rows, {report['seconds']} s" + (f"; reports in {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
