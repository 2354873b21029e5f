"""One self-tune run, stage by stage (see the package docstring for the loop).

Work that is finished is recorded as it finishes: a module's fingerprint goes into state.json
once all its proposals are answered and verified, every answered proposal is a distill row, and
adapters record the hash of the rows they were trained on. A run that is interrupted and run
again (with --resume) therefore redoes nothing that was done.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from extractor.graph import Graph
from nanodex.log import get_logger
from selftune import changes, curriculum, distill, module_adapters, propose, report
from selftune.answer import Answerer, make_answerer
from selftune.config import SelftuneConfig
from selftune.sandbox import NAMESPACES, choose_mechanism
from selftune.verify_citations import check_citations, subject_spans
from selftune.verify_content import ContentChecker
from selftune.verify_tests import TestRun, mapped_tests, run_tests, verdict

log = get_logger("selftune")


def _lap(t0: float) -> float:
    return round(time.perf_counter() - t0, 2)


def run_selftune(
    cfg: SelftuneConfig,
    *,
    resume: bool = False,
    make_answerer_fn: Callable[[SelftuneConfig, Graph], Answerer] = make_answerer,
) -> dict[str, Any]:
    """Run the loop once; returns the report (also written to <work_dir>/report.json and .md)."""
    t_run = time.perf_counter()
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    extract_info, brain_info = changes.refresh_graph(cfg)
    seconds["extract_and_brain"] = _lap(t0)

    graph = Graph(cfg.graph)
    try:
        current = changes.module_states(graph)
        cs = changes.diff(current, changes.load_state(work), cfg.all)
        ranks = curriculum.order_modules(graph, cs.modules)
        content_checker = ContentChecker(graph) if cfg.verify.check_content else None
        if cfg.max_modules > 0:
            ranks = ranks[: cfg.max_modules]
        log.info("%d module(s) changed; self-tuning %d", len(cs.modules), len(ranks))
        buffer = distill.DistillBuffer(work / "distill.jsonl", cfg.distill_max_rows)
        modules_out, answerer, mechanism = [], None, None
        answered_now: set[str] = set()  # distill keys answered in this run: the refresh's "new" rows
        heldout_dir = work / "heldout"
        run_heldout: list[dict] = []
        for rank in ranks:
            m = rank.path
            fp = current[m].fingerprint
            timing: dict[str, float] = {}
            t0 = time.perf_counter()
            props = propose.propose(graph, m, cs.changed_nodes.get(m, []), cfg.propose)
            held = [propose.eval_row(p) for p in props if p.heldout]
            distill.write_jsonl(heldout_dir / f"{module_adapters.slug(m)}.jsonl", held)
            run_heldout.extend(held)
            todo = [p for p in props if not p.heldout]
            if resume:
                todo = [p for p in todo if not buffer.done(distill.row_key(p.key, fp))]
            skipped = sum(1 for p in props if not p.heldout) - len(todo)
            timing["propose"] = _lap(t0)

            # the module's mapped tests, run once in the sandbox for all its proposals
            t0 = time.perf_counter()
            test_ids = {p.key: mapped_tests(graph, p.subjects, cfg.verify.exclude_tests) for p in todo}
            all_ids = sorted({i for ids in test_ids.values() for i in ids})
            test_run: TestRun | None = None
            if cfg.verify.run_tests:
                if all_ids and mechanism is None:
                    mechanism = choose_mechanism(cfg.sandbox)
                test_run = (
                    run_tests(Path(cfg.repo), all_ids, cfg.sandbox, work / "scratch")
                    if all_ids
                    else TestRun()
                )
            timing["verify_tests"] = _lap(t0)

            rows, t_answer, t_cite = [], 0.0, 0.0
            if todo and answerer is None:
                t0 = time.perf_counter()
                answerer = make_answerer_fn(cfg, graph)
                seconds["load_answerer"] = _lap(t0)
            for p in todo:
                t0 = time.perf_counter()
                ans = answerer.answer(p)
                t_answer += time.perf_counter() - t0
                t0 = time.perf_counter()
                spans = subject_spans(graph, p.subjects)
                prefix = str(ans.adapter_stats.get("forced_prefix") or "")
                cit = check_citations(ans.text, graph, spans, cfg.verify.min_citations, cfg.verify.min_words,
                                      0 if cfg.verify.count_forced_prefix else len(prefix))  # fmt: skip
                content = content_checker.check(ans.text, p.prompt, spans) if content_checker else None
                tv = verdict(test_ids[p.key], test_run)
                t_cite += time.perf_counter() - t0
                keep = cit.passed and (content is None or content.passed) and tv.passed
                row = {
                    "key": distill.row_key(p.key, fp),
                    "proposal_key": p.key,
                    "proposal_kind": p.kind,
                    "scope": p.scope,
                    "module": m,
                    "fingerprint": fp,
                    "prompt": p.prompt,
                    "subjects": p.subjects,
                    "files": p.files,
                    "answer": ans.text,
                    "answerer": ans.answerer,
                    "selected": ans.selected,
                    "windows": ans.windows,
                    "asked": ans.messages,
                    "runner_citations": ans.runner_citations,
                    "adapter_stats": ans.adapter_stats,
                    "verify": {
                        "citations": cit.as_dict(),
                        "content": content.as_dict()
                        if content
                        else {"passed": True, "reason": "not checked"},
                        "tests": tv.as_dict(),
                        "sandbox": test_run.mechanism if test_run else None,
                    },  # fmt: skip
                    "score": distill.score(cit.passed, tv.status),
                    "keep": keep,
                    "answer_seconds": round(ans.seconds, 2),
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                buffer.add(row)
                rows.append(row)
                answered_now.add(row["key"])
            timing["answer"] = round(t_answer, 2)
            timing["verify"] = round(t_cite + timing["verify_tests"], 2)
            state = changes.load_state(work)
            state[m] = current[m]
            changes.save_state(work, state)
            modules_out.append({
                "module": m,
                "rank": rank.as_dict(),
                "changed_nodes": cs.changed_nodes.get(m, []),
                "counts": report.module_summary(rows, len(held), skipped),
                "tests": {"ids": all_ids, "outcomes": test_run.outcomes if test_run else {},
                          "seconds": round(test_run.seconds, 2) if test_run else 0.0,
                          "returncode": test_run.returncode if test_run else None},
                "seconds": timing,
            })  # fmt: skip
            log.info("%s: %s", m, modules_out[-1]["counts"])
        state = changes.load_state(work)
        for gone in cs.removed:
            state.pop(gone, None)
        changes.save_state(work, state)
        dropped_buffer = buffer.compact()
        del answerer  # free the model before training

        # kept rows of the code as it is now -> dataset/selftune.jsonl
        fps = {m: s.fingerprint for m, s in current.items()}
        kept = [r for r in buffer.kept() if fps.get(r["module"]) == r["fingerprint"]]
        heldout_files = sorted(heldout_dir.glob("*.jsonl")) if heldout_dir.is_dir() else []
        ex_facts, ex_prompts = distill.eval_exclusions([Path(cfg.eval_dataset), *heldout_files])
        ds_rows, ds_dropped = distill.dataset_rows(kept, ex_facts, ex_prompts)
        distill.write_jsonl(Path(cfg.dataset_out), ds_rows)

        # per-module adapters for every module with kept rows (unchanged rows: nothing to train)
        t0 = time.perf_counter()
        by_module: dict[str, list[dict]] = {}
        for r in ds_rows:
            by_module.setdefault(r["module"], []).append({k: v for k, v in r.items() if k != "module"})
        adapters: dict[str, dict] = {}
        for m in sorted(by_module):
            deps = {}
            if cfg.include_deps:
                for dep in module_adapters.import_deps(graph, m, cfg.max_deps):
                    if dep in by_module:
                        deps[dep] = by_module[dep]
            adapters[m] = module_adapters.train_module_adapter(cfg, graph, m, by_module[m], deps)
        seconds["module_adapters"] = _lap(t0)
        for entry in modules_out:
            entry["adapter"] = adapters.get(entry["module"], {"status": "skipped", "reason": "no kept rows"})
    finally:
        graph.close()

    # short refresh of the main adapter on this run's new rows + replay, with eval around it
    new_ids = {f"selftune-{k}" for k in answered_now}
    new_rows = [{k: v for k, v in r.items() if k != "module"} for r in ds_rows if r["id"] in new_ids]
    eval_info: dict[str, Any] = {}
    heldout_path = work / "eval" / "heldout-run.jsonl"
    # the changed modules' held-out questions: self-tune's own plus the dataset's eval rows about them
    eval_about = distill.eval_rows_about(Path(cfg.eval_dataset), {e["module"] for e in modules_out})
    if cfg.eval_max_rows > 0:
        eval_about = eval_about[: cfg.eval_max_rows]
    run_heldout = run_heldout + eval_about
    if run_heldout:
        distill.write_jsonl(heldout_path, run_heldout)
    adapter = Path(cfg.adapter) if cfg.adapter else None
    has_adapter = adapter is not None and (adapter / "adapter_config.json").is_file()
    will_train = bool(new_rows) and cfg.refresh.enabled
    if will_train and has_adapter:
        backup = work / "previous-adapter"
        if backup.exists():
            shutil.rmtree(backup)
        shutil.copytree(adapter, backup)
    if cfg.eval_heldout and run_heldout and will_train and has_adapter:
        t0 = time.perf_counter()
        eval_info["before"] = _evaluate(
            cfg, work / "previous-adapter", heldout_path, work / "eval" / "before"
        )
        seconds["eval_before"] = _lap(t0)
    t0 = time.perf_counter()
    refresh = module_adapters.refresh_main_adapter(cfg, new_rows)
    seconds["refresh"] = _lap(t0)
    if cfg.eval_heldout and run_heldout and refresh.get("status") == "trained":
        t0 = time.perf_counter()
        eval_info["after"] = _evaluate(cfg, Path(refresh["adapter"]), heldout_path, work / "eval" / "after")
        seconds["eval_after"] = _lap(t0)
    if eval_info:
        eval_info.update(
            {"dataset": str(heldout_path), "rows": len(run_heldout), "from_eval_dataset": len(eval_about)}
        )
    seconds["total"] = _lap(t_run)

    rep = {
        "repo": cfg.repo,
        "graph": cfg.graph,
        "base": cfg.base,
        "adapter": cfg.adapter,
        "answerer": cfg.answer.answerer,
        "sandbox": mechanism or ("not needed" if cfg.verify.run_tests else "tests disabled"),
        "sandbox_isolated": mechanism == NAMESPACES if mechanism else None,
        "exclude_tests": list(cfg.verify.exclude_tests),
        "all": cfg.all,
        "resume": resume,
        "extract": extract_info,
        "brain": brain_info,
        "changed": cs.modules,
        "removed": cs.removed,
        "modules": modules_out,
        "distill": str(work / "distill.jsonl"),
        "distill_rows": len(buffer.rows),
        "distill_dropped_rolling": dropped_buffer,
        "dataset": {"path": cfg.dataset_out, "rows": len(ds_rows), "dropped": ds_dropped},
        "bank": cfg.bank,
        "refresh": refresh,
        "eval": eval_info,
        "seconds": seconds,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    report.write_report(work, rep)
    return rep


def record_baseline(cfg: SelftuneConfig) -> dict[str, Any]:
    """Extract, then record every module's current fingerprint as self-tuned, proposing nothing.

    For adopting an expert that was trained on the code as it is now: the next run then
    self-tunes only what changes after this point.
    """
    extract_info, _ = changes.refresh_graph(cfg)
    with Graph(cfg.graph) as graph:
        current = changes.module_states(graph)
    changes.save_state(Path(cfg.work_dir), current)
    return {"modules": len(current), "extract": extract_info}


def _evaluate(cfg: SelftuneConfig, adapter: Path, dataset: Path, out: Path) -> dict[str, Any]:
    from trainer.eval import evaluate

    rep = evaluate(adapter=adapter, dataset=str(dataset), base=cfg.base, graph=cfg.graph, out=out,
                   max_new_tokens=cfg.eval_max_new_tokens, write_manifest=False)  # fmt: skip
    return json.loads(json.dumps(rep["metrics"]))
