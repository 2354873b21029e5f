"""`python -m pca_otf.run`: answer a question about the program, conditioned on the part of it
the question is about, with citations checked against the code graph.

One answer: select the region (brain search + graph distance, or a zoomed symbol), pack its code
as labelled blocks within a token budget, synthesize the region's adapter from the build's
artifacts and mix it into the loaded model, answer greedily, remove the adapter (weights
restored bit for bit), then validate, repair and mark every citation and stamp provenance.
`Runner` keeps the graph, search index, model and artifacts loaded across answers (self-tune
asks it many questions); the CLI answers one.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from answer.citations import UNVERIFIED_MARK, Checked, Checker, footer, provenance_footer
from answer.generate import generate
from answer.prompt import LAYOUT, build_messages
from nanodex.errors import NanodexError, run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import get_logger, setup_logging
from pca_otf.config import PcaConfig, RunConfig
from pca_otf.decoding import intent_target_weights, question_intent, warmup_scale
from pca_otf.pack import ModelRelevance, Packed, TokenCounter, candidate_blocks, pack
from pca_otf.program_graph import EntityIndex, EntitySymbols, ProgramGraph, load_program_graph
from pca_otf.select import Selection, select_question, select_zoom

log = get_logger("pca_otf.run")
SOURCES = ("question", "zoom")


@dataclass
class Answer:
    """One answer and everything needed to audit it."""

    prompt: str
    text: str  # repaired, marked, with the provenance footer
    body: str  # `text` without the footer
    report: str  # the citation report and provenance footer, as `make query` prints them
    messages: list[dict]  # the conversation the model was asked (answer.prompt)
    raw: str  # what the model wrote (last attempt), before repair and marking
    citations: list[
        dict
    ]  # answer.citations.Citation.to_dict(): {text, path, start, end, resolves, repaired, ...}
    selected_nodes: list[dict]
    windows: list[dict]  # the packed blocks
    adapter_stats: dict
    provenance: dict
    timings: dict
    unverified_paragraphs: list[int] = field(default_factory=list)
    paragraphs_needing_citation: int = 0
    intent: str | None = None

    @property
    def valid_citations(self) -> int:
        return sum(1 for c in self.citations if c["resolves"])

    @property
    def all_citations_ok(self) -> bool:
        """Every citation resolves, or is marked unresolved in the text."""
        return all(c["resolves"] or f"{c['text']} (unresolved)" in self.body for c in self.citations)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Controls:
    """Evaluation hooks (pca_otf.evaluate): what to mix instead of, or beside, the synthesized adapter.

    `transform(adapter_set, role)` replaces each synthesized set (role: subgraph, program,
    cone:<id>), e.g. by a random set of the same norms; `factors` adds full-module (A, B) pairs
    (a trained PEFT adapter) as (name, factors, weight).
    """

    transform: Any = None
    factors: list[tuple[str, dict, float]] = field(default_factory=list)


def load_model(base: str, threads: int = 0) -> tuple[Any, Any]:
    """The base model in fp32 on CPU (or the GPU when there is one) and its tokenizer, eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    from nanodex.models import resolve_model
    from trainer.model import load_tokenizer, quiet_transformers

    if threads > 0:
        torch.set_num_threads(threads)
    path = resolve_model(base)
    quiet_transformers()
    tok = load_tokenizer(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise NanodexError(f"cannot load the base model from {path}: {err}", "check --base") from err
    model.eval()
    return model, tok


class Runner:
    """Answers questions about one program with one base model and one build's artifacts.

    `graph`: a ProgramGraph, a graph path, or None (cfg.graph through cfg.pg_backend).
    `base`: a (model, tokenizer) pair already loaded, a BASE string, or None (cfg.base).
    `artifacts`: a pca_otf.artifacts.Artifacts, a build folder, or None (cfg.artifacts); only
    read when an adapter is applied (`cfg.adapter`).
    """

    def __init__(
        self,
        cfg: RunConfig,
        *,
        graph: ProgramGraph | str | Path | None = None,
        base: tuple[Any, Any] | str | None = None,
        artifacts: Any | str | Path | None = None,
    ) -> None:
        if cfg.of_sources not in SOURCES:
            raise NanodexError(
                f"unknown --of-sources '{cfg.of_sources}'", f"use one of: {', '.join(SOURCES)}"
            )
        if cfg.of_sources == "zoom" and not cfg.zoom_symbol:
            raise NanodexError("--of-sources zoom needs a symbol", "pass --zoom-symbol NAME")
        self.cfg = cfg
        t0 = time.perf_counter()
        self.graph_path = Path(graph) if isinstance(graph, str | Path) else Path(cfg.graph)
        if graph is None or isinstance(graph, str | Path):
            self.pg = load_program_graph(self.graph_path, cfg.pg_backend)
        else:
            self.pg = graph
        self.index = EntityIndex(self.pg)
        self.symbols = EntitySymbols(self.pg, self.index)
        self._searcher: Any = None
        t1 = time.perf_counter()
        if isinstance(base, tuple):
            self.model, self.tok = base
            self.base_name = cfg.base
        else:
            self.base_name = base or cfg.base
            self.model, self.tok = load_model(self.base_name, cfg.threads)
        self.count = TokenCounter(self.tok)
        t2 = time.perf_counter()
        self._artifacts_arg = artifacts if artifacts is not None else cfg.artifacts
        self._artifacts: Any = None
        self._contrast_model: Any = None
        self._eidx: Any = None
        self._bank: Any = None
        self._build: dict[str, Any] = {}
        self.load_timings = {"graph_s": round(t1 - t0, 3), "model_s": round(t2 - t1, 3)}

    # ---- lazily loaded parts -----------------------------------------------------------------
    @property
    def searcher(self) -> Any:
        if self._searcher is None:
            from brain.config import search_config
            from brain.search import Searcher

            # config/brain.yaml's search settings when present, as `make query` uses them
            self._searcher = Searcher(search_config(self.graph_path), dense=self.cfg.search_mode != "lexical")
        return self._searcher

    @property
    def artifacts(self) -> Any:
        """The build's Artifacts, verified against its manifest, the model and the graph on first use."""
        if self._artifacts is None:
            arg = self._artifacts_arg
            if isinstance(arg, str | Path):
                from pca_otf.artifacts import Artifacts

                arts = Artifacts(Path(arg))
            else:
                arts = arg
            arts.check_base(self.model.config)
            arts.check_graph(self.pg)
            self._build = {
                "embed": arts.embed_config(),
                "synth": arts.synth_config(),
                "program": arts.adapters(),
            }
            self._artifacts = arts
        return self._artifacts

    def close(self) -> None:
        if self._searcher is not None:
            self._searcher.close()
        close = getattr(self.pg, "close", None)
        if callable(close):
            close()

    # ---- the answer --------------------------------------------------------------------------
    def select(self, prompt: str, scope_paths: Sequence[str] | None = None) -> Selection:
        c = self.cfg
        if c.of_sources == "zoom":
            return select_zoom(
                self.index,
                self.pg,
                str(c.zoom_symbol),
                radius=c.zoom_radius,
                temp=c.retrieval_temp,
                max_nodes=c.max_nodes,
                function_windows=c.function_windows,
                scope_paths=scope_paths,
            )
        return select_question(
            self.index,
            self.searcher,
            prompt,
            policy=c.retrieval_policy,
            temp=c.retrieval_temp,
            k=c.retrieval_k,
            seeds=c.retrieval_seeds,
            radius=c.retrieval_radius,
            max_nodes=c.max_nodes,
            function_windows=c.function_windows,
            scope_paths=scope_paths,
            search_mode=c.search_mode,
        )

    def pack(self, prompt: str, selection: Selection) -> Packed:
        c = self.cfg
        blocks = candidate_blocks(
            selection,
            self.pg,
            self.index,
            mode=c.pack_mode,
            window_lines=c.window_lines,
            head_lines=c.head_lines,
            function_first=c.function_first,
        )
        judge = ModelRelevance(self.model, self.tok, prompt) if c.pack_relevance else None
        return pack(
            blocks,
            c.context_tokens,
            self.count,
            mode=c.pack_mode,
            relevance=judge,
            relevance_candidates=c.relevance_candidates,
        )

    def messages(self, prompt: str, packed: Packed | None) -> list[dict[str, str]]:
        """The chat the model answers: the one prompt (answer.prompt), the same as `make query`'s."""
        blocks = packed.blocks if packed is not None else []
        return build_messages(prompt, blocks, self.cfg.system_prompt)

    def answer(
        self, prompt: str, *, scope_paths: Sequence[str] | None = None, controls: Controls | None = None
    ) -> Answer:
        c = self.cfg
        if not prompt.strip():
            raise NanodexError("empty question", 'pass --question "..."')
        timings: dict[str, float] = {}
        t = time.perf_counter()
        selection = self.select(prompt, scope_paths)
        timings["select_s"] = _lap(t)
        t = time.perf_counter()
        packed = self.pack(prompt, selection) if c.pack_context else None
        timings["pack_s"] = _lap(t)
        intent = question_intent(prompt)
        with self._adapted(prompt, selection, timings, controls) as (stats, on_step_scale):
            t = time.perf_counter()
            raw = self._generate(prompt, packed, on_step_scale)
            timings["generate_s"] = _lap(t)
        checked = self._check(raw, packed, prompt, enforce=c.citations_enforce)
        provenance = self.provenance()
        body = checked.text
        text = body + "\n\n" + provenance_footer(provenance)
        timings["total_s"] = round(sum(v for k, v in timings.items() if k.endswith("_s")), 3)
        ans = Answer(
            prompt=prompt,
            text=text,
            body=body,
            report=footer(checked, packed.blocks if packed is not None else [], provenance),
            messages=self.messages(prompt, packed),
            raw=raw,
            citations=[r.to_dict() for r in checked.citations],
            selected_nodes=[s.to_dict() for s in selection.nodes],
            windows=[b.to_dict() for b in packed.blocks] if packed is not None else [],
            adapter_stats=stats,
            provenance=provenance,
            timings=timings,
            unverified_paragraphs=list(checked.marked),
            paragraphs_needing_citation=len(checked.needs),
            intent=intent,
        )
        if c.telemetry:
            append_telemetry(c.telemetry, self._telemetry(ans, selection, packed))
        return ans

    def _check(self, raw: str, packed: Packed | None, question: str, *, enforce: bool) -> Checked:
        """Repair, bind to the packed blocks, attribute, mark and name-check: answer.citations, as
        `make query`."""
        blocks = packed.blocks if packed is not None else []
        return Checker(self.symbols, blocks, question=question).check(raw, enforce=enforce)

    def _generate(self, prompt: str, packed: Packed | None, scale: Any) -> str:
        c = self.cfg
        on_step = None
        if c.alpha_warmup > 0 and scale is not None:

            def on_step(step: int) -> None:
                scale(warmup_scale(step, c.alpha_warmup))

        contrast = self._contrast() if c.adapter_aware_decoding and scale is not None else None
        blocks = packed.blocks if packed is not None else []
        return generate(
            self.model,
            self.tok,
            [self.messages(prompt, packed)],
            max_new_tokens=c.max_new_tokens,
            blocks=[blocks] if c.require_citations and blocks else None,
            open_with_citation=c.open_with_citation,
            on_step=on_step,
            contrast=contrast,
            beta=c.contrast_beta,
            no_repeat_ngram=c.no_repeat_ngram,
        )[0]

    def _contrast(self) -> Any:
        """A frozen copy of the base model (taken before any adapter is mixed in), for contrast."""
        if self._contrast_model is None:
            raise NanodexError("adapter-aware decoding has no base copy", "this is a bug: report it")
        return self._contrast_model

    # ---- adapters ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _adapted(
        self, prompt: str, selection: Selection, timings: dict, controls: Controls | None
    ) -> Iterator[tuple[dict, Any]]:
        """Mix the region's adapter in for the duration of the block; always restore the weights.

        Yields (adapter stats, scale setter or None). Without an adapter the model is untouched.
        """
        controls = controls or Controls()
        if not self.cfg.adapter and not controls.factors:
            timings["adapter_s"] = 0.0
            yield {"applied": False}, None
            return
        t = time.perf_counter()
        if self.cfg.adapter_aware_decoding and self._contrast_model is None:
            import copy

            self._contrast_model = copy.deepcopy(self.model)  # before any delta touches the weights
        handle, stats = self._apply_adapters(prompt, selection, controls)
        timings["adapter_s"] = _lap(t)
        try:
            yield stats, handle.set_scale
        finally:
            t = time.perf_counter()
            handle.remove()
            timings["restore_s"] = _lap(t)

    def _embed_index(self) -> Any:
        if self._eidx is None:
            from pca_otf.embedding import EmbedIndex

            self._eidx = EmbedIndex(self.pg)
        return self._eidx

    def _apply_adapters(self, prompt: str, selection: Selection, controls: Controls) -> tuple[Any, dict]:
        """Synthesize the region's adapter and mix it (with the program's, cones, bank) into the model."""
        from pca_otf import mix
        from pca_otf.embedding import embed_program
        from pca_otf.synth import capacity_for, capacity_stats, synthesize

        c = self.cfg
        extra = mix.Mixture()
        for name, factors, weight in controls.factors:
            extra.add_factors(factors, weight, source=name)
        sub = program = None
        capacity = None
        tw = intent_target_weights(prompt) if c.q_aware_weights else None
        stats: dict[str, Any] = {"applied": True, "intent_weights": tw}
        if c.adapter:
            arts = self.artifacts
            ecfg, scfg = self._build["embed"], self._build["synth"]
            eidx = self._embed_index()
            ids = selection.ids()
            emb = embed_program(self.pg, ecfg, ids, index=eidx)
            documented = [e.id for e in eidx.entities if e.doc]
            cstats = capacity_stats(ids, eidx.edges, prompt, documented)
            capacity = capacity_for(cstats)
            sub = synthesize(emb.z, arts.shapes, scfg, capacity)
            program = self._build["program"]
            if controls.transform is not None:
                sub = controls.transform(sub, "subgraph")
                program = controls.transform(program, "program") if program is not None else None
            if c.function_first and c.cone_weight > 0:
                from dataclasses import replace

                cone_cfg = replace(
                    scfg,
                    rank=max(1, c.cone_rank),
                    layer_rank_tiers="",
                    per_target_rank_schedule={},
                    rank_budget=0,
                )
                for s in selection.functions:
                    cone_ids = [s.entity.id, *sorted(self.index.adj.get(s.entity.id, ()))]
                    z = embed_program(self.pg, ecfg, cone_ids, index=eidx).z
                    cone = synthesize(z, arts.shapes, cone_cfg)
                    if controls.transform is not None:
                        cone = controls.transform(cone, f"cone:{s.entity.id}")
                    extra.add_adapter_set(
                        cone, c.cone_weight, target_weights=tw, source=f"cone:{s.entity.id}"
                    )
            if c.adapters_bank and c.mixture_m > 0:
                from pca_otf.bank import add_bank, load_bank
                from pca_otf.bank import select as bank_select

                if self._bank is None:
                    self._bank = load_bank(c.adapters_bank)
                chosen = bank_select(self._bank, emb.z, self.pg, c.mixture_m, embed_cfg=ecfg, index=eidx)
                add_bank(extra, chosen)
                stats["bank"] = [ch.to_dict() for ch in chosen]
            stats.update(
                {
                    "rank": sub.total_rank(),
                    "targets": sorted(arts.shapes),
                    "gsub": capacity.gsub(c.gsub),
                    "capacity": {"rank_scale": capacity.rank_scale, "gsub_scale": capacity.gsub_scale},
                    "z_hash": sub.meta.get("z_hash"),
                    "function_cones": [s.entity.id for s in selection.functions] if c.function_first else [],
                }
            )
        delta_cap = c.delta_cap if c.delta_cap is not None else mix.env_delta_cap()
        handle = mix.apply(
            self.model,
            sub,
            gsub=capacity.gsub(c.gsub) if capacity is not None else 1.0,
            alpha_scale=c.alpha_scale,
            delta_cap=delta_cap,
            target_weights=tw,
            program_set=program,
            extra=extra if extra.terms else None,
        )
        info = handle.info()
        stats.update({"norm": info["delta_norm"], "raw_norm": info["raw_delta_norm"], "mix": info})
        stats.setdefault(
            "targets", sorted({t.target or t.module.rsplit(".", 1)[-1] for t in handle.mixture.terms})
        )
        stats.setdefault("gsub", None)
        stats.setdefault("rank", None)
        return handle, stats

    # ---- provenance and telemetry ------------------------------------------------------------
    def provenance(self) -> dict:
        """{program_id, manifest_sha, commit, policy}: the program (content hash of the graph the
        build read, else of the indexed files), the build, the revision, the selection policy."""
        c = self.cfg
        manifest_sha = program_id = None
        if c.adapter:
            arts = self.artifacts
            manifest_sha, program_id = arts.manifest_sha, arts.tree or None
        if program_id is None:
            program_id = _graph_program_id(self.pg)
        policy = c.retrieval_policy if c.of_sources == "question" else f"zoom:{c.zoom_symbol}@{c.zoom_radius}"
        return {
            "program_id": program_id,
            "manifest_sha": manifest_sha,
            "commit": self.pg.commit(),
            "policy": policy,
            "layout": LAYOUT,
        }

    def _telemetry(self, ans: Answer, selection: Selection, packed: Packed | None) -> dict:
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "prompt": ans.prompt,
            "selection": {"mode": selection.mode, "seeds": selection.seeds, "policy": selection.policy},
            "modules": selection.paths(),
            "nodes": [n["id"] for n in ans.selected_nodes],
            "windows": [w["label"] for w in ans.windows],
            "citations": [
                {k: c[k] for k in ("text", "path", "start", "end", "resolves", "repaired", "paragraph")}
                for c in ans.citations
            ],
            "unverified_paragraphs": ans.unverified_paragraphs,
            "adapter": ans.adapter_stats,
            "provenance": ans.provenance,
            "timings": ans.timings,
        }


def append_telemetry(path: str | Path, record: dict) -> None:
    """One JSON line per answer; appended whole in one write so concurrent readers see lines."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def _lap(t: float) -> float:
    return round(time.perf_counter() - t, 3)


def _graph_program_id(pg: ProgramGraph) -> str:
    """Without a build: a digest of the program's files (path + sha256), stable across runs."""
    h = hashlib.sha256()
    for f in pg.artifacts("file"):
        h.update(f"{f['path']}\0{f['sha256']}\n".encode())
    return h.hexdigest()[:16]


# ---- CLI -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m pca_otf.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    B = argparse.BooleanOptionalAction
    ap.add_argument("--question", "--prompt", dest="prompt", required=True, help="the question")
    config_option(ap, PcaConfig, "pca", section="run")
    config_flag(ap, "--graph", key="graph", help="code graph (its brain search index lies beside it)")
    config_flag(
        ap, "--pca", "--artifacts", key="artifacts", help="build folder written by `python -m pca_otf.build`"
    )
    config_flag(ap, "--base", key="base", help="base model (default: embedded:smollm2-135m)")
    config_flag(
        ap, "--pg-backend", key="pg_backend", help="ProgramGraph backend as module:Factory (default: SQLite)"
    )
    config_flag(ap, "--threads", key="threads", help="torch CPU threads (0 = default)")
    g = ap.add_argument_group("selection")
    config_flag(
        g,
        "--of-sources",
        key="of_sources",
        choices=SOURCES,
        help="region from the question or a zoomed symbol",
    )
    config_flag(
        g, "--zoom-symbol", key="zoom_symbol", help="symbol to zoom on (qualname, node id or path:line)"
    )
    config_flag(g, "--zoom-radius", key="zoom_radius", help="hops around the zoomed symbol")
    config_flag(g, "--retrieval-policy", key="retrieval_policy", help='blend, e.g. "sim:0.6,struct:0.4"')
    config_flag(g, "--retrieval-temp", key="retrieval_temp", help="softmax temperature of the region weights")
    config_flag(g, "--retrieval-k", key="retrieval_k", help="search hits taken")
    config_flag(
        g, "--search-mode", key="search_mode", choices=("hybrid", "lexical"), help="brain search rankers"
    )
    config_flag(
        g, "--function-first", key="function_first", action=B, help="top function windows get local adapters"
    )
    g = ap.add_argument_group("context packing")
    config_flag(g, "--pack-context", key="pack_context", action=B, help="show the selected code to the model")
    config_flag(
        g, "--pack-mode", key="pack_mode", choices=("heads", "windows"), help="file heads or symbol windows"
    )
    config_flag(g, "--context-tokens", key="context_tokens", help="context budget in the model's tokens")
    config_flag(
        g,
        "--pack-relevance",
        key="pack_relevance",
        action=B,
        help="model-scored window relevance when the budget is tight",
    )
    g = ap.add_argument_group("adapters")
    config_flag(
        g,
        "--adapter",
        key="adapter",
        action=B,
        help="apply the synthesized adapter (--no-adapter: context only)",
    )
    config_flag(g, "--gsub", key="gsub", help="blend of whole-program (0) and subgraph (1) adapter")
    config_flag(g, "--alpha-scale", key="alpha_scale", help="multiplier of the adapter's alpha")
    config_flag(g, "--delta-cap", key="delta_cap", help="global delta-norm cap (also NANODEX_DELTA_CAP)")
    config_flag(
        g, "--bank", "--adapters-bank", key="adapters_bank", help="folder of PEFT adapters to mix from"
    )
    config_flag(g, "--mixture-m", key="mixture_m", help="top-M bank adapters to mix")
    config_flag(g, "--cone-rank", key="cone_rank", help="rank of each --function-first local adapter")
    config_flag(g, "--cone-weight", key="cone_weight", help="weight of each local adapter")
    config_flag(
        g,
        "--q-aware-weights",
        key="q_aware_weights",
        action=B,
        help="weight target groups by the question's intent",
    )
    config_flag(
        g,
        "--alpha-warmup",
        key="alpha_warmup",
        nargs="?",
        const=8,
        help="ramp alpha in over N new tokens (default N: 8)",
    )
    config_flag(
        g,
        "--adapter-aware-decoding",
        key="adapter_aware_decoding",
        action=B,
        help="contrast adapted and base logits",
    )
    g = ap.add_argument_group("answer")
    config_flag(g, "--max-new-tokens", key="max_new_tokens", help="answer length cap (greedy decoding)")
    config_flag(
        g,
        "--require-citations",
        key="require_citations",
        action=B,
        help="citations can only name a packed block while decoding",
    )
    config_flag(
        g,
        "--citations-enforce",
        key="citations_enforce",
        action=B,
        help="mark claim paragraphs without a valid citation [unverified]",
    )
    config_flag(g, "--telemetry", key="telemetry", metavar="FILE", help="append one JSON record per answer")
    g.add_argument("--json", action="store_true", help="print the whole answer record as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    t0 = time.perf_counter()
    cfg = load_from_args(args)
    runner = Runner(cfg)
    try:
        ans = runner.answer(args.prompt)
    finally:
        runner.close()
    wall = round(time.perf_counter() - t0, 3)
    ans.timings["wall_s"] = wall
    ans.timings.update({f"load_{k}": v for k, v in runner.load_timings.items()})
    if args.json:
        print(json.dumps(ans.to_dict(), indent=2))
        return 0
    print(ans.body)
    print()
    print(ans.report)
    print(
        f"[{len(ans.unverified_paragraphs)} paragraph(s) marked{UNVERIFIED_MARK}; "
        f"{len(ans.windows)} windows; {wall:.1f} s]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    run_main(main)
