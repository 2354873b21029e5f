"""`python -m pca_otf.build`: graph + base model config -> the pca_otf artifact folder (a cache).

Everything an answer needs that does not depend on the question is computed here once: the
whole-program embedding and adapter, the symbol and window indexes packing reads, facts and
self-queries for evaluation and self-tune, rerank features, and the list of indexed sources. The
folder is written atomically (a half-built folder never replaces a good one) and described by
manifest.json, whose `inputs_key` hashes what went in: the graph's content, the base's
config.json and every knob. A rebuild whose inputs hash the same does nothing and says so.

Only the base's config.json is read (dims, layers, heads): building needs no weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from nanodex.config import to_dict
from nanodex.errors import NanodexError, run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import get_logger, setup_logging
from nanodex.paths import atomic_path
from pca_otf.artifacts import ARTIFACT_FILES, Artifacts
from pca_otf.config import BuildConfig, PcaConfig
from pca_otf.embedding import EmbedIndex, doc_head, embed_program, entity_sketches
from pca_otf.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    canonical_json,
    graph_content_hash,
    inputs_key,
    sha256_bytes,
    sha256_file,
    write_jsonl,
    write_npz,
)
from pca_otf.shapes import infer_target_shapes, load_model_config, shapes_to_json
from pca_otf.synth import Capacity, capacity_stats, effective_target_weights, synthesize

WINDOW_KINDS_SKIP = ("module",)
_TEST_HINT = ("test", "tests", "spec")


# --------------------------------------------------------------------------------------------------
# inputs


def base_config_path(base: str) -> Path:
    """The base's config.json: a config file, a folder holding one, or whatever resolve_model gives."""
    p = Path(base).expanduser()
    if p.is_file() and p.suffix == ".json":
        return p
    if p.is_dir() and (p / "config.json").is_file():
        return p / "config.json"
    from nanodex.models import EMBEDDED_PREFIX, MARKER_NAME, embedded_cache_path, resolve_model

    if base.startswith(EMBEDDED_PREFIX):
        # A converted embedded model's marker lists its files and sizes: when config.json matches,
        # read it without resolve_model's full check (which imports torch and costs seconds).
        folder = embedded_cache_path(base[len(EMBEDDED_PREFIX) :])
        try:
            files = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))["files"]
            if (folder / "config.json").stat().st_size == files["config.json"]:
                return folder / "config.json"
        except (OSError, ValueError, KeyError, TypeError):
            pass
    folder = resolve_model(base)
    return folder / "config.json"


def model_summary(cfg: dict[str, Any]) -> dict[str, Any]:
    keys = {
        "model_type": ("model_type",),
        "hidden_size": ("hidden_size", "n_embd"),
        "n_layers": ("num_hidden_layers", "n_layer"),
        "n_heads": ("num_attention_heads", "n_head"),
        "n_kv_heads": ("num_key_value_heads",),
        "head_dim": ("head_dim",),
        "intermediate_size": ("intermediate_size", "n_inner"),
        "vocab_size": ("vocab_size",),
    }
    out: dict[str, Any] = {}
    for name, candidates in keys.items():
        out[name] = next((cfg[c] for c in candidates if cfg.get(c) is not None), None)
    return out


# --------------------------------------------------------------------------------------------------
# the artifacts


class _Files:
    """Whole-file text of the program's sources through pg.source(), read once per path."""

    def __init__(self, pg: Any) -> None:
        self.pg = pg
        self.lines: dict[str, list[str]] = {}
        self.offsets: dict[str, list[int]] = {}

    def load(self, path: str) -> None:
        if path in self.lines:
            return
        text = self.pg.source(path, 1, 10**9)
        lines = text.split("\n")
        offs = [0]
        for line in lines:
            offs.append(offs[-1] + len(line.encode("utf-8")) + 1)
        self.lines[path] = lines
        self.offsets[path] = offs

    def window(self, path: str, start: int, end: int) -> tuple[int, int, int, int, str]:
        """(start, end, byte_start, byte_end, sha256) of lines start..end clipped to the file."""
        self.load(path)
        lines = self.lines[path]
        start = max(1, min(start, len(lines)))
        end = max(start, min(end, len(lines)))
        body = "\n".join(lines[start - 1 : end]).encode("utf-8")
        offs = self.offsets[path]
        return start, end, offs[start - 1], offs[start - 1] + len(body), sha256_bytes(body)


def _degrees(index: EmbedIndex) -> tuple[dict[str, int], dict[str, int]]:
    fan_in: dict[str, int] = {}
    fan_out: dict[str, int] = {}
    for s, d, k in index.edges:
        if k == "defined_in":
            continue
        fan_out[s] = fan_out.get(s, 0) + 1
        fan_in[d] = fan_in.get(d, 0) + 1
    return fan_in, fan_out


def symbol_rows(index: EmbedIndex) -> list[dict[str, Any]]:
    fan_in, fan_out = _degrees(index)
    return [
        {
            "id": e.id,
            "kind": e.kind,
            "name": e.name,
            "qualname": e.qualname,
            "path": e.path,
            "start_line": e.start_line,
            "end_line": e.end_line,
            "signature": e.signature,
            "doc_head": doc_head(e.doc) if e.doc else "",
            "lang": e.lang,
            "hash": e.hash,
            "fan_in": fan_in.get(e.id, 0),
            "fan_out": fan_out.get(e.id, 0),
        }
        for e in index.entities
    ]


def window_rows(index: EmbedIndex, files: _Files, window_lines: int, head_lines: int) -> list[dict[str, Any]]:
    """Symbol-local windows (each definition, capped at window_lines) and file heads.

    Byte offsets count UTF-8 bytes of the file's lines joined by "\\n" (the file's own bytes for
    LF-terminated UTF-8 files); `sha256` is of the window's text, so a packer can tell a window
    whose code changed since the build.
    """
    rows: list[dict[str, Any]] = []
    for e in index.entities:
        if e.start_line < 1 or e.end_line < e.start_line:
            continue
        if e.kind in WINDOW_KINDS_SKIP:
            kind, want_end = "head", e.start_line + head_lines - 1
        else:
            kind, want_end = "symbol", e.start_line + window_lines - 1
        end = min(e.end_line, want_end)
        start, end, b0, b1, digest = files.window(e.path, e.start_line, end)
        rows.append(
            {
                "id": e.id,
                "kind": kind,
                "path": e.path,
                "start_line": start,
                "end_line": end,
                "byte_start": b0,
                "byte_end": b1,
                "sha256": digest,
                "truncated": end < e.end_line,
                "citation": f"{e.path}:{start}-{end}",
            }
        )
    return rows


def fact_rows(index: EmbedIndex) -> list[dict[str, Any]]:
    """(subject, predicate, object, citation) facts straight from the graph: exact references."""
    rows: list[dict[str, Any]] = []
    for e in index.entities:
        subject = e.qualname or e.name
        cite = f"{e.path}:{e.start_line}-{e.end_line}"
        rows.append(
            {
                "subject": subject,
                "subject_id": e.id,
                "predicate": "defined_at",
                "object": cite,
                "citation": cite,
            }
        )
        if e.signature:
            rows.append(
                {
                    "subject": subject,
                    "subject_id": e.id,
                    "predicate": "signature",
                    "object": e.signature,
                    "citation": cite,
                }
            )
        head = doc_head(e.doc) if e.doc else ""
        if head:
            rows.append(
                {"subject": subject, "subject_id": e.id, "predicate": "doc", "object": head, "citation": cite}
            )
    for s, d, k in index.edges:
        src, dst = index.by_id[s], index.by_id[d]
        rows.append(
            {
                "subject": src.qualname or src.name,
                "subject_id": s,
                "predicate": k,
                "object": dst.qualname or dst.name,
                "object_id": d,
                "citation": f"{src.path}:{src.start_line}-{src.end_line}",
            }
        )
    rows.sort(key=lambda r: (r["subject_id"], r["predicate"], r.get("object_id", ""), r["object"]))
    return rows


def self_query_rows(index: EmbedIndex, limit: int, seed: int) -> list[dict[str, Any]]:
    """Questions the program can answer about itself, with the references a right answer cites.

    Three templates: what a definition does, where it is defined, who calls it. `limit` of them
    are kept, chosen by a stable hash (a fixed, repository-wide sample, not the first files).
    """
    callers: dict[str, list[str]] = {}
    for s, d, k in index.edges:
        if k == "calls":
            callers.setdefault(d, []).append(s)
    rows: list[dict[str, Any]] = []
    for e in index.entities:
        if e.kind == "module" or not e.name:
            continue
        name = e.qualname or e.name
        cite = f"{e.path}:{e.start_line}-{e.end_line}"
        rows.append(
            {"kind": "explain", "question": f"What does `{name}` do?", "refs": [e.id], "citations": [cite]}
        )
        rows.append(
            {"kind": "locate", "question": f"Where is `{name}` defined?", "refs": [e.id], "citations": [cite]}
        )
        cs = sorted(set(callers.get(e.id, [])))
        if cs:
            rows.append(
                {
                    "kind": "callers",
                    "question": f"Which functions call `{name}`?",
                    "refs": cs,
                    "citations": [
                        f"{index.by_id[c].path}:{index.by_id[c].start_line}-{index.by_id[c].end_line}"
                        for c in cs
                    ],
                }
            )
    for r in rows:
        r["id"] = hashlib.blake2b(f"{seed}:{r['kind']}:{r['question']}".encode(), digest_size=8).hexdigest()
    rows.sort(key=lambda r: r["id"])
    return rows[: max(0, limit)]


RERANK_FEATURES = (
    "fan_in",
    "fan_out",
    "log_lines",
    "depth",
    "is_test",
    "has_doc",
    "kind_module",
    "kind_class",
    "kind_function",
    "kind_method",
    "kind_other",
)


def rerank_arrays(index: EmbedIndex, dim: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    fan_in, fan_out = _degrees(index)
    feats = np.zeros((len(index.entities), len(RERANK_FEATURES)), dtype=np.float32)
    for row, e in enumerate(index.entities):
        parts = set(e.path.lower().replace(".", "/").split("/"))
        kinds = {"module": 6, "class": 7, "function": 8, "method": 9}
        values = [
            fan_in.get(e.id, 0),
            fan_out.get(e.id, 0),
            float(np.log1p(max(0, e.end_line - e.start_line + 1))),
            (e.qualname or e.name).count("."),
            1.0 if parts & set(_TEST_HINT) or e.name.startswith("test_") else 0.0,
            1.0 if e.doc else 0.0,
        ]
        feats[row, : len(values)] = values
        feats[row, kinds.get(e.kind, 10)] = 1.0
    arrays = {"features": feats, "sketch": entity_sketches(index, dim, seed)}
    meta = {"ids": [e.id for e in index.entities], "feature_names": list(RERANK_FEATURES), "sketch_dim": dim}
    return arrays, meta


# --------------------------------------------------------------------------------------------------
# build


def build(cfg: BuildConfig, *, force: bool = False) -> dict[str, Any]:
    """Build (or confirm up to date) the artifact folder cfg.out_dir; returns a short report."""
    from pca_otf.program_graph import load_program_graph

    log = get_logger("pca_otf.build")
    t0 = time.perf_counter()
    graph = Path(cfg.graph)
    if not cfg.pg_backend and not graph.is_file():
        raise NanodexError(f"graph not found: {graph}", "run `make extract` first, or pass --graph")
    cfg.embed.validate()
    cfg.synth.validate()
    config_path = base_config_path(cfg.base)
    model_cfg = load_model_config(config_path)
    shapes = infer_target_shapes(model_cfg, cfg.synth.targets, cfg.synth.target_shapes or None)
    if not shapes:
        raise NanodexError("no adapter target exists in this model", "choose targets the architecture has")
    pg = load_program_graph(graph, cfg.pg_backend)
    graph_hash, counts = graph_content_hash(pg)
    if counts["entities"] == 0:
        raise NanodexError(f"graph {graph} holds no entities", "run `make extract` on a repository with code")
    knobs = {k: v for k, v in to_dict(cfg).items() if k not in ("graph", "out_dir", "pg_backend")}
    config_sha = sha256_bytes(canonical_json(model_cfg).encode("utf-8"))
    key = inputs_key({"graph": graph_hash, "base_config": config_sha, "knobs": knobs})
    out = Path(cfg.out_dir)

    if not force and (out / MANIFEST).is_file():
        try:
            existing = Artifacts(out)
        except NanodexError as err:
            log.info("existing build at %s is unusable (%s); rebuilding", out, err.cause)
        else:
            if existing.manifest.get("inputs_key") == key:
                return {
                    "status": "up-to-date",
                    "out": str(out),
                    "inputs_key": key,
                    "seconds": time.perf_counter() - t0,
                }
            log.info("inputs changed since the build at %s; rebuilding", out)

    index = EmbedIndex(pg)
    files = _Files(pg)
    emb = embed_program(pg, cfg.embed, index=index)
    stats = capacity_stats(
        None,
        index.edges,
        documented=[e.id for e in index.entities if e.doc],
    )
    stats = replace(stats, n_nodes=len(index.entities))
    capacity = Capacity(rank_scale=1.0, gsub_scale=1.0, stats=stats)  # the build's adapter: neutral capacity
    adapters = synthesize(emb.z, shapes, cfg.synth, capacity)
    adapters.meta["graph_hash"] = graph_hash
    with atomic_path(out, is_dir=True) as tmp:
        emb.save(tmp / "embedding.npz")
        adapters.save(tmp / "adapters.npz")
        write_jsonl(tmp / "symbol_index.jsonl", symbol_rows(index))
        write_jsonl(tmp / "windows_index.jsonl", window_rows(index, files, cfg.window_lines, cfg.head_lines))
        write_jsonl(tmp / "facts.jsonl", fact_rows(index))
        write_jsonl(tmp / "self_queries.jsonl", self_query_rows(index, cfg.self_queries, cfg.synth.seed))
        rr_arrays, rr_meta = rerank_arrays(index, cfg.rerank_dim, cfg.embed.seed)
        write_npz(tmp / "rerank_features.npz", rr_arrays, rr_meta)
        sources = sorted(pg.artifacts("file"), key=lambda f: f["path"])
        write_jsonl(
            tmp / "sources.jsonl", ({k: f[k] for k in ("path", "sha256", "bytes", "lang")} for f in sources)
        )
        names = list(ARTIFACT_FILES)
        if cfg.export_peft:
            adapters.to_peft(tmp / "peft", cfg.base)
            names += ["peft/adapter_config.json", "peft/adapter_model.safetensors", "peft/nanodex.json"]
        artifacts = {
            n: {"sha256": sha256_file(tmp / n), "bytes": (tmp / n).stat().st_size} for n in sorted(names)
        }
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "inputs_key": key,
            "commit": pg.commit(),
            "tree": graph_hash,
            "graph": {"path": str(graph), "backend": cfg.pg_backend, "counts": counts},
            "base": {"name": cfg.base, "config_sha256": config_sha, **model_summary(model_cfg)},
            "rank": cfg.synth.rank,
            "alpha": cfg.synth.alpha,
            "total_rank": adapters.total_rank(),
            "pairs": len(adapters.pairs),
            "delta_norm": adapters.delta_norm(),
            "targets": sorted(shapes),
            "shapes": shapes_to_json(shapes),
            "target_weights": effective_target_weights(cfg.synth, stats),
            "embedding": {"dim": emb.dim, "features": emb.meta["features"]},
            "knobs": knobs,
            "artifacts": artifacts,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return {
        "status": "built",
        "out": str(out),
        "inputs_key": key,
        "entities": counts["entities"],
        "edges": counts["edges"],
        "pairs": len(adapters.pairs),
        "total_rank": adapters.total_rank(),
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pca_otf.build",
        description="Build the pca_otf artifact folder (embedding, synthesized adapters, indexes, manifest) "
        "from a code graph and a base model's config. Flags override config/pca.yaml's build: section.",
    )
    config_option(p, PcaConfig, "pca", section="build")
    config_flag(p, "--graph", key="graph", help="code graph")
    config_flag(
        p, "--base", key="base", help="base model: HF id, folder, config.json, or embedded:smollm2-135m"
    )
    config_flag(p, "--out", "--pca", key="out_dir", help="artifact folder")
    config_flag(p, "--pg-backend", key="pg_backend", help="ProgramGraph backend as module:Factory")
    p.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    config_flag(p, "--window-lines", key="window_lines")
    config_flag(p, "--head-lines", key="head_lines")
    config_flag(p, "--self-queries", key="self_queries", help="most self-queries written")
    config_flag(p, "--rerank-dim", key="rerank_dim")
    config_flag(p, "--export-peft", key="export_peft", action=argparse.BooleanOptionalAction)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--verbose", action="store_true")
    e = p.add_argument_group("embedding")
    config_flag(e, "--embed-dim", key="embed.embed_dim")
    config_flag(e, "--graph-prop-hops", key="embed.graph_prop_hops")
    config_flag(e, "--graph-prop-damp", key="embed.graph_prop_damp")
    config_flag(e, "--text-max-bytes", key="embed.text_max_bytes")
    config_flag(e, "--max-text-tokens", key="embed.max_text_tokens")
    config_flag(e, "--include-text", key="embed.include_text", action=argparse.BooleanOptionalAction)
    config_flag(e, "--text-weight", key="embed.text_weight")
    config_flag(e, "--text-ngram", key="embed.text_ngram")
    config_flag(e, "--channel-weights", key="embed.channel_weights", help="e.g. symbols=1,docs=0.5")
    config_flag(
        e,
        "--channel-budgets",
        key="embed.channel_budgets",
        help="distinct features kept per channel, e.g. symbols=50000",
    )
    config_flag(e, "--embed-seed", key="embed.seed")
    s = p.add_argument_group("synthesis")
    config_flag(s, "--rank", key="synth.rank")
    config_flag(s, "--alpha", key="synth.alpha")
    config_flag(s, "--targets", key="synth.targets", help="comma list of q,k,v,o,gate,up,down")
    config_flag(s, "--target-weights", key="synth.target_weights", help="e.g. o=1.5,up=1.2")
    B = argparse.BooleanOptionalAction
    config_flag(s, "--knowledge-preset", key="synth.knowledge_preset", action=B)
    config_flag(s, "--code-recall-preset", key="synth.code_recall_preset", action=B)
    config_flag(s, "--kbann-priors", key="synth.kbann_priors", action=B)
    config_flag(s, "--round-lora", key="synth.round_lora", action=B)
    config_flag(
        s, "--layer-schedule", key="synth.layer_schedule", help="uniform | linear | early | middle | late"
    )
    config_flag(s, "--layer-rank-tiers", key="synth.layer_rank_tiers", help='e.g. "0.5:4,1.0:8"')
    config_flag(s, "--rank-budget", key="synth.rank_budget")
    config_flag(s, "--round-threshold", key="synth.round_threshold")
    config_flag(
        s, "--per-target-rank-schedule", key="synth.per_target_rank_schedule", help="e.g. q=4,down=16"
    )
    config_flag(s, "--target-shapes", key="synth.target_shapes", help="explicit sizes, e.g. k=576x192")
    config_flag(
        s, "--delta-rms", key="synth.delta_rms", help="RMS of each synthesized delta entry at weight 1"
    )
    config_flag(s, "--components", key="synth.components", help="Gaussian bases mixed by z per matrix")
    config_flag(s, "--seed", key="synth.seed", help="synthesis seed")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_from_args(args)
    report = build(cfg, force=args.force)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    elif report["status"] == "up-to-date":
        print(f"{report['out']} is up to date (graph, base config and knobs unchanged); nothing to do")
    else:
        print(
            f"built {report['out']}: {report['entities']} entities, {report['edges']} edges, "
            f"{report['pairs']} adapter pairs (total rank {report['total_rank']}) in {report['seconds']:.1f}s"
        )
    return 0


if __name__ == "__main__":
    run_main(main)
