"""Per-module LoRA adapters for the bank, and the short refresh of the main adapter.

Each module with kept rows gets a short LoRA run on them (plus, with --include-deps, a bounded
share of its import dependencies' rows) written to <bank>/<module-slug>/ in PEFT format, with
`region: {node_ids, paths}` in its nanodex.json so `pca_otf.bank.load_bank` can mix it by
similarity to a question's region. The main adapter is then refreshed: a few steps *starting
from its own weights* (trainer `init_adapter`) on the new rows plus replayed earlier rows, so
it follows the code without forgetting what it knew. Both skip themselves when their input rows
are unchanged (the rows' hash is recorded), which is what makes `--resume` redo nothing.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from pathlib import Path
from typing import Any

from extractor.graph import Graph
from nanodex.config import load_config
from nanodex.log import get_logger
from selftune.config import LoraRunConfig, RefreshConfig, SelftuneConfig
from selftune.distill import write_jsonl

log = get_logger("selftune.adapters")


def slug(module: str) -> str:
    """calc/arith.py -> calc-arith-py (a folder name that cannot collide with another module's)."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", module).strip("-").lower()
    return f"{s}-{hashlib.sha1(module.encode()).hexdigest()[:6]}"


def rows_sha(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def import_deps(graph: Graph, module: str, limit: int) -> list[str]:
    """Modules `module` depends on (depends_on edges), most-referenced first, at most `limit`."""
    rows = graph.conn.execute(
        "SELECT e.dst_id, (SELECT COUNT(*) FROM edges i JOIN nodes n ON n.id = i.dst_id "
        "WHERE i.src_id = e.src_id AND i.kind = 'imports' AND n.path = e.dst_id) AS c "
        "FROM edges e WHERE e.src_id = ? AND e.kind = 'depends_on' ORDER BY c DESC, e.dst_id",
        (module,),
    ).fetchall()
    return [r[0] for r in rows][:limit]


def region(graph: Graph, modules: list[str]) -> dict[str, list[str]]:
    ids = [n.id for m in modules for n in graph.in_file(m)]
    return {"node_ids": ids, "paths": list(modules)}


def _train_cfg(cfg: SelftuneConfig, run: LoraRunConfig | RefreshConfig, dataset: Path, out: str) -> Any:
    from trainer.config import TrainConfig

    tcfg = load_config(TrainConfig, cfg.train_config, {})
    tcfg.base = cfg.base
    tcfg.dataset = str(dataset)
    tcfg.eval_dataset = ""
    tcfg.graph = cfg.graph
    tcfg.save_dir = out
    tcfg.max_steps = run.max_steps
    tcfg.learning_rate = run.learning_rate
    tcfg.batch_size = run.batch_size
    tcfg.max_seq_len = run.max_seq_len
    tcfg.eval_interval = 0
    tcfg.eval_on_start = False
    tcfg.save_interval = run.max_steps
    tcfg.logging_steps = 1
    tcfg.warmup_ratio = 0.0
    if isinstance(run, LoraRunConfig):
        tcfg.lora_rank, tcfg.lora_alpha = run.rank, run.alpha
    return tcfg


def train_module_adapter(
    cfg: SelftuneConfig, graph: Graph, module: str, own: list[dict], deps: dict[str, list[dict]]
) -> dict[str, Any]:
    """Train <bank>/<slug(module)> on `own` rows (+ bounded dependency rows); returns what happened."""
    from trainer.manifest import read_manifest, update_manifest

    run = cfg.module_lora
    dep_rows: list[dict] = []
    for dep in sorted(deps):
        dep_rows.extend(deps[dep])
    dep_rows = dep_rows[: len(own)]  # bounded: never more dependency rows than the module's own
    rows = own + dep_rows
    out = Path(cfg.bank) / slug(module)
    info: dict[str, Any] = {
        "adapter": str(out),
        "rows": len(own),
        "dep_rows": len(dep_rows),
        "deps": sorted(deps),
    }
    if len(own) < run.min_rows:
        return {**info, "status": "skipped", "reason": f"{len(own)} kept row(s), min_rows is {run.min_rows}"}
    digest = rows_sha(rows)
    if (out / "nanodex.json").is_file() and (read_manifest(out).get("selftune") or {}).get(
        "rows_sha"
    ) == digest:
        return {**info, "status": "unchanged", "reason": "same rows as the adapter in the bank"}
    from trainer.run import train  # torch/transformers only when there is something to train

    data = Path(cfg.work_dir) / "train" / f"{slug(module)}.jsonl"
    write_jsonl(data, rows)
    t0 = time.perf_counter()
    res = train(_train_cfg(cfg, run, data, str(out)))
    reg = region(graph, [module, *sorted(deps)] if dep_rows else [module])
    update_manifest(out, "region", reg)
    update_manifest(
        out, "selftune", {"module": module, "rows_sha": digest, "rows": len(own), "dep_rows": len(dep_rows)}
    )
    t = res.manifest["training"]
    return {**info, "status": "trained", "steps": t["global_step"], "train_loss_first": t["train_loss_first"],
            "train_loss_last": t["train_loss_last"], "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def replay_rows(path: str, n: int, seed: int = 0) -> list[dict]:
    """n rows sampled (seeded) from an earlier training set; none when the file is missing."""
    p = Path(path)
    if n <= 0 or not p.is_file():
        return []
    rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("kind") != "selftune"]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def refresh_main_adapter(cfg: SelftuneConfig, new_rows: list[dict]) -> dict[str, Any]:
    """A few steps on new + replayed rows, starting from the main adapter's weights."""
    from trainer.manifest import read_manifest, update_manifest

    r = cfg.refresh
    out = r.out or cfg.adapter
    if not r.enabled or not out:
        return {"status": "skipped", "reason": "refresh disabled or no adapter path"}
    if not new_rows:
        return {"status": "skipped", "reason": "no new kept rows"}
    replay = replay_rows(r.replay_from, r.replay_rows)
    rows = new_rows + replay
    digest = rows_sha(rows)
    out_p = Path(out)
    if (out_p / "nanodex.json").is_file() and (read_manifest(out_p).get("selftune_refresh") or {}).get(
        "rows_sha"
    ) == digest:
        return {
            "status": "unchanged",
            "reason": "the adapter was already refreshed on these rows",
            "adapter": out,
        }
    from trainer.run import train

    init = cfg.adapter if cfg.adapter and (Path(cfg.adapter) / "adapter_config.json").is_file() else None
    data = Path(cfg.work_dir) / "train" / "refresh.jsonl"
    write_jsonl(data, rows)
    t0 = time.perf_counter()
    tcfg = _train_cfg(cfg, r, data, out)
    tcfg.init_adapter = init
    res = train(tcfg)
    update_manifest(out_p, "selftune_refresh", {"rows_sha": digest, "new_rows": len(new_rows), "replayed": len(replay),
                                                "started_from": init})  # fmt: skip
    t = res.manifest["training"]
    return {"status": "trained", "adapter": out, "started_from": init, "new_rows": len(new_rows),
            "replayed": len(replay), "steps": t["global_step"], "train_loss_first": t["train_loss_first"],
            "train_loss_last": t["train_loss_last"], "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
