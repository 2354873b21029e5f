"""Adapter synthesis: per-layer low-rank A/B matrices generated deterministically from an embedding z.

No training happens here. For each (layer, target) a generator seeded by (seed, layer, target)
draws K fixed Gaussian bases for A and for B; z enters through two fixed random projections that
give the mixing coefficients of those bases, so the adapter is a smooth function of z (nearby
programs get nearby adapters) and the same z always gives the same bytes. Each pair is then scaled
to a fixed Frobenius norm: `delta_rms * sqrt(in * out)` times the target's and the layer's
weight, so the knobs say how strongly each part of the network is touched, independent of z.

Which parts, and how strongly:
  target weights      per canonical target (q k v o gate up down), multiplied by the presets:
                      knowledge (boost o/up/down, where factual recall lives in the MLP/output path),
                      code recall (boost q/k/v, which route attention to identifiers in context), and
                      KBANN priors (attention vs MLP weighted from the graph's structure: relation
                      density drives attention, documented-definition share drives the MLP)
  layer schedule      uniform | linear | early | middle | late weight per layer depth
  ranks               `rank`, per-depth tiers (`0.5:4,1.0:8`), per-target overrides (`q=4,down=16`),
                      scaled by the entropy-aware capacity, then fitted under `rank_budget`
  rounding            `round_lora` snaps A and B entries to a grid of `round_threshold` x RMS
                      (entries below half a step become 0)

The set saves to a byte-stable adapters.npz and exports to a PEFT folder (uniform rank, zero-padded,
scaling folded into B, so vLLM and peft load it as is and compute exactly the same delta).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nanodex.errors import NanodexError
from pca_otf.manifest import read_npz, write_npz
from pca_otf.shapes import ATTENTION, CANONICAL, MLP, TargetShape, shapes_from_json, shapes_to_json

LAYER_SCHEDULES = ("uniform", "linear", "early", "middle", "late")
KNOWLEDGE_BOOST = {"o": 1.5, "up": 1.5, "down": 1.5}
CODE_RECALL_BOOST = {"q": 1.5, "k": 1.5, "v": 1.5}
_WORD = re.compile(r"\w+")


@dataclass
class SynthConfig:
    """Knobs of adapter synthesis (the `build.synth` section of config/pca.yaml)."""

    rank: int = 8
    alpha: float = 16.0
    targets: list[str] = field(default_factory=lambda: list(CANONICAL))
    target_weights: dict[str, float] = field(default_factory=dict)  # missing targets weigh 1.0
    knowledge_preset: bool = False
    code_recall_preset: bool = False
    kbann_priors: bool = False
    layer_schedule: str = "uniform"
    layer_rank_tiers: str = ""  # "0.5:4,1.0:8": layers up to half depth rank 4, the rest rank 8
    rank_budget: int = 0  # most total rank over all (layer, target) pairs; 0 = no limit
    round_lora: bool = False
    round_threshold: float = 0.05
    per_target_rank_schedule: dict[str, int] = field(default_factory=dict)
    target_shapes: str = ""  # "k=576x192,...": explicit (in x out) overrides
    delta_rms: float = 1e-3  # RMS of each synthesized delta entry at weight 1
    components: int = 4  # Gaussian bases mixed by z per matrix
    seed: int = 0

    def validate(self) -> None:
        if self.rank < 1:
            raise NanodexError(f"rank must be >= 1, got {self.rank}", "pass --rank 1 or more")
        if self.layer_schedule not in LAYER_SCHEDULES:
            raise NanodexError(
                f"unknown layer schedule '{self.layer_schedule}'", f"use one of: {', '.join(LAYER_SCHEDULES)}"
            )
        for name in list(self.target_weights) + list(self.per_target_rank_schedule) + list(self.targets):
            if name not in CANONICAL:
                raise NanodexError(f"unknown adapter target '{name}'", f"use one of: {', '.join(CANONICAL)}")
        if any(r < 1 for r in self.per_target_rank_schedule.values()):
            raise NanodexError("per-target ranks must be >= 1", "fix --per-target-rank-schedule")
        if self.rank_budget < 0 or self.components < 1 or self.delta_rms < 0:
            raise NanodexError(
                "rank_budget, components and delta_rms must be positive", "fix the synth config"
            )
        if self.round_lora and self.round_threshold <= 0:
            raise NanodexError(
                "round_threshold must be > 0 with round_lora", "pass e.g. --round-threshold 0.05"
            )
        parse_rank_tiers(self.layer_rank_tiers)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_rank_tiers(spec: str) -> list[tuple[float, int]]:
    """`"0.5:4,1.0:8"` -> [(0.5, 4), (1.0, 8)]: layer depth fraction t (0..1) up to which a rank applies."""
    tiers: list[tuple[float, int]] = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            frac, rank = part.split(":")
            tiers.append((float(frac), int(rank)))
        except ValueError as err:
            raise NanodexError(
                f"bad layer rank tier '{part}'", "write tiers as depth:rank, e.g. 0.5:4,1.0:8"
            ) from err
    if any(not 0 < f <= 1 or r < 1 for f, r in tiers):
        raise NanodexError(f"bad layer rank tiers '{spec}'", "depths in (0, 1], ranks >= 1")
    return sorted(tiers)


def parse_kv(spec: str | Mapping[str, Any] | None, cast: type = float) -> dict[str, Any]:
    """`"q=4,down=16"` (or a mapping) -> {"q": 4, "down": 16}; used for flag values of dict knobs."""
    if not spec:
        return {}
    if isinstance(spec, Mapping):
        return {k: cast(v) for k, v in spec.items()}
    out: dict[str, Any] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep:
            raise NanodexError(f"bad entry '{part}'", "write entries as name=value, e.g. q=4,down=16")
        try:
            out[key.strip()] = cast(val.strip())
        except ValueError as err:
            raise NanodexError(f"bad value in '{part}'", f"the value must be a {cast.__name__}") from err
    return out


def layer_weight(schedule: str, layer: int, n_layers: int) -> float:
    t = layer / (n_layers - 1) if n_layers > 1 else 1.0
    if schedule == "uniform":
        return 1.0
    if schedule == "linear":
        return 0.5 + t
    if schedule == "early":
        return 1.5 - t
    if schedule == "middle":
        return 0.5 + math.exp(-(((t - 0.5) / 0.25) ** 2))
    if schedule == "late":
        return 0.0 if t < 0.5 else 2.0 * t
    raise NanodexError(f"unknown layer schedule '{schedule}'", f"use one of: {', '.join(LAYER_SCHEDULES)}")


# --------------------------------------------------------------------------------------------------
# capacity


@dataclass(frozen=True)
class CapacityStats:
    """What decides how much adapter a region gets: its size, how much points into it, the question."""

    n_nodes: int
    mean_fan_in: float
    question_bits: float  # Shannon entropy (bits) of the question's word distribution
    n_relations: int = 0  # relations other than defined_in inside the region's graph
    n_documented: int = 0  # region entities with a docstring


@dataclass(frozen=True)
class Capacity:
    """Multipliers for rank (at synthesis) and gsub (at mixing), plus the stats they came from."""

    rank_scale: float
    gsub_scale: float
    stats: CapacityStats | None = None

    def gsub(self, base: float) -> float:
        """`base` gsub scaled by this capacity, kept within [0, 1]."""
        return min(1.0, max(0.0, base * self.gsub_scale))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def question_bits(question: str) -> float:
    words = [w.lower() for w in _WORD.findall(question or "")]
    if not words:
        return 0.0
    counts = Counter(words)
    n = len(words)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def capacity_stats(
    ids: Sequence[str] | None,
    relations: Iterable[tuple[str, str, str]],
    question: str = "",
    documented: Iterable[str] = (),
) -> CapacityStats:
    """Stats of a region (`ids`; None = every node seen in `relations`) from (src, dst, kind) triples.

    Fan-in counts relations other than defined_in whose target lies in the region, per region node.
    """
    rels = [(s, d, k) for s, d, k in relations if k != "defined_in"]
    region = set(ids) if ids is not None else {x for s, d, _ in rels for x in (s, d)}
    fan_in = sum(1 for _s, d, _k in rels if d in region)
    n = max(1, len(region))
    inside = sum(1 for s, d, _k in rels if s in region or d in region)
    return CapacityStats(
        n_nodes=len(region),
        mean_fan_in=fan_in / n,
        question_bits=question_bits(question),
        n_relations=inside,
        n_documented=sum(1 for i in documented if i in region),
    )


def capacity_for(
    stats: CapacityStats,
    *,
    ref_nodes: int = 24,
    ref_fan_in: float = 2.0,
    ref_bits: float = 4.0,
) -> Capacity:
    """Entropy-aware capacity: more rank (and more subgraph weight) for bigger, busier regions and
    more complex questions; less for a single leaf function asked about in three words.

    Each factor is a ratio of bits (log2 sizes, question entropy) to a reference, so doubling a
    region adds a constant amount rather than doubling the rank. The rank multiplier is the
    geometric mean of the three factors, clipped to [0.5, 2]; the gsub multiplier its square root,
    clipped to [0.5, 1.5]. A missing factor (no question) counts as the reference.
    """
    size = math.log2(1 + stats.n_nodes) / math.log2(1 + ref_nodes)
    fan = math.log2(1 + stats.mean_fan_in) / math.log2(1 + ref_fan_in)
    bits = stats.question_bits / ref_bits if stats.question_bits > 0 else 1.0
    factors = [max(f, 1e-3) for f in (size, fan if stats.mean_fan_in > 0 else 1.0, bits)]
    info = math.exp(sum(math.log(f) for f in factors) / len(factors))
    return Capacity(
        rank_scale=min(2.0, max(0.5, info)),
        gsub_scale=min(1.5, max(0.5, math.sqrt(info))),
        stats=stats,
    )


def kbann_weights(stats: CapacityStats) -> dict[str, float]:
    """Target weights from graph structure (KBANN-style priors: the network shaped by domain structure).

    Relation density rho (relations per entity) raises attention (q k v o) from 0.75 towards 1.25;
    the share of documented definitions raises the MLP (gate up down) the same way.
    """
    rho = stats.n_relations / max(1, stats.n_nodes)
    attn = 0.75 + 0.5 * rho / (1.0 + rho)
    mlp = 0.75 + 0.5 * (stats.n_documented / max(1, stats.n_nodes))
    return {t: attn for t in ATTENTION} | {t: mlp for t in MLP}


def effective_target_weights(cfg: SynthConfig, stats: CapacityStats | None = None) -> dict[str, float]:
    weights = {t: float(cfg.target_weights.get(t, 1.0)) for t in CANONICAL}
    if cfg.knowledge_preset:
        weights = {t: w * KNOWLEDGE_BOOST.get(t, 1.0) for t, w in weights.items()}
    if cfg.code_recall_preset:
        weights = {t: w * CODE_RECALL_BOOST.get(t, 1.0) for t, w in weights.items()}
    if cfg.kbann_priors:
        if stats is None:
            raise NanodexError(
                "kbann_priors needs the graph's structure stats",
                "pass a Capacity built from the region's stats",
            )
        prior = kbann_weights(stats)
        weights = {t: w * prior[t] for t, w in weights.items()}
    return weights


def rank_plan(
    shapes: Mapping[str, TargetShape], cfg: SynthConfig, capacity: Capacity | None = None
) -> dict[tuple[int, str], int]:
    """The rank of every (layer, target): tiers / per-target overrides, capacity, then the budget."""
    tiers = parse_rank_tiers(cfg.layer_rank_tiers)
    scale = capacity.rank_scale if capacity else 1.0
    plan: dict[tuple[int, str], int] = {}
    for name in cfg.targets:
        shape = shapes.get(name)
        if shape is None:
            continue
        for layer in range(shape.n_layers):
            t = layer / (shape.n_layers - 1) if shape.n_layers > 1 else 1.0
            r = cfg.rank
            for frac, tier_rank in tiers:
                if t <= frac + 1e-9:
                    r = tier_rank
                    break
            r = cfg.per_target_rank_schedule.get(name, r)
            r = max(1, int(round(r * scale)))
            plan[(layer, name)] = min(r, shape.in_features, shape.out_features)
    total = sum(plan.values())
    if cfg.rank_budget and total > cfg.rank_budget:
        factor = cfg.rank_budget / total
        plan = {k: max(1, int(math.floor(r * factor))) for k, r in plan.items()}
    return plan


# --------------------------------------------------------------------------------------------------
# the adapter set


@dataclass
class LoraPair:
    """delta W = (alpha / rank) * B @ A with A (rank, in) and B (out, rank), float32."""

    A: np.ndarray
    B: np.ndarray
    alpha: float

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def delta(self) -> np.ndarray:
        return (self.scale * (self.B.astype(np.float64) @ self.A.astype(np.float64))).astype(np.float32)

    def delta_norm(self) -> float:
        """||scale * B A||_F from r x r products (never forms the out x in matrix)."""
        a = self.A.astype(np.float64)
        b = self.B.astype(np.float64)
        return abs(self.scale) * math.sqrt(max(0.0, float(np.trace((b.T @ b) @ (a @ a.T)))))


@dataclass
class AdapterSet:
    """Synthesized low-rank pairs by (layer, canonical target), the shapes they fit, and provenance."""

    shapes: dict[str, TargetShape]
    pairs: dict[tuple[int, str], LoraPair]
    meta: dict[str, Any] = field(default_factory=dict)

    def delta_norm(self) -> float:
        return math.sqrt(sum(p.delta_norm() ** 2 for p in self.pairs.values()))

    def total_rank(self) -> int:
        return sum(p.rank for p in self.pairs.values())

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        alphas: dict[str, float] = {}
        for (layer, target), pair in sorted(self.pairs.items()):
            key = f"{layer:04d}.{target}"
            arrays[f"{key}.A"] = pair.A.astype(np.float32)
            arrays[f"{key}.B"] = pair.B.astype(np.float32)
            alphas[key] = float(pair.alpha)
        meta = {"shapes": shapes_to_json(self.shapes), "alphas": alphas, "info": self.meta}
        write_npz(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path) -> AdapterSet:
        arrays, meta = read_npz(path)
        if "shapes" not in meta or "alphas" not in meta:
            raise NanodexError(f"{path} is not an adapters.npz", "rebuild with `python -m pca_otf.build`")
        pairs: dict[tuple[int, str], LoraPair] = {}
        for key, alpha in meta["alphas"].items():
            layer, target = key.split(".")
            pairs[(int(layer), target)] = LoraPair(arrays[f"{key}.A"], arrays[f"{key}.B"], float(alpha))
        return cls(shapes_from_json(meta["shapes"]), pairs, meta.get("info", {}))

    def scaled(self, factor: float) -> AdapterSet:
        """A copy whose every delta is multiplied by `factor` (B scaled; A and alpha unchanged)."""
        pairs = {
            k: LoraPair(p.A, (p.B * np.float32(factor)).astype(np.float32), p.alpha)
            for k, p in self.pairs.items()
        }
        return AdapterSet(self.shapes, pairs, dict(self.meta))

    # ---- PEFT export -------------------------------------------------------------------------------
    def module_factors(self, scale: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per full module name, (A, B) with the pair scaling (and `scale`) folded into B.

        Targets fused into one module (GPT-2's c_attn holds q, k, v) are stacked: A's rows are
        concatenated and B is block-placed at each target's output offset, which is exactly the sum
        of the targets' deltas.
        """
        groups: dict[str, list[tuple[TargetShape, LoraPair]]] = {}
        for (layer, target), pair in sorted(self.pairs.items()):
            shape = self.shapes[target]
            groups.setdefault(shape.module_name(layer), []).append((shape, pair))
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for module, items in groups.items():
            r_total = sum(p.rank for _s, p in items)
            in_f = items[0][0].in_features
            out_f = items[0][0].module_out or items[0][0].out_features
            A = np.zeros((r_total, in_f), dtype=np.float64)
            B = np.zeros((out_f, r_total), dtype=np.float64)
            r0 = 0
            for shape, pair in items:
                r = pair.rank
                A[r0 : r0 + r] = pair.A
                B[shape.out_offset : shape.out_offset + shape.out_features, r0 : r0 + r] = (
                    pair.B * pair.scale * scale
                )
                r0 += r
            out[module] = (A.astype(np.float32), B.astype(np.float32))
        return out

    def to_peft(self, out_dir: str | Path, base_model_name: str, *, scale: float = 1.0) -> Path:
        """Write a PEFT LoRA folder computing the same delta (times `scale`) as in-place mixing.

        Every module of every layer of the adapted kinds gets a LoRA of one rank R (the largest
        needed), zero-padded, with lora_alpha = R so PEFT's scaling is 1: vLLM needs one rank per
        adapter, and zero rows/columns add nothing. Writing is atomic.
        """
        from safetensors.numpy import save_file

        from nanodex.paths import atomic_path

        factors = self.module_factors(scale)
        if not factors:
            raise NanodexError(
                "the adapter set is empty", "synthesize with at least one target of weight > 0"
            )
        r_max = max(a.shape[0] for a, _b in factors.values())
        suffixes = sorted({s.suffix for s in self.shapes.values()})
        n_layers = max(s.n_layers for s in self.shapes.values())
        prefix = next(iter(self.shapes.values())).layer_prefix
        dims: dict[str, tuple[int, int]] = {}
        for s in self.shapes.values():
            dims[s.suffix] = (s.in_features, s.module_out or s.out_features)
        tensors: dict[str, np.ndarray] = {}
        for layer in range(n_layers):
            for suffix in suffixes:
                module = f"{prefix}.{layer}.{suffix}"
                in_f, out_f = dims[suffix]
                A = np.zeros((r_max, in_f), dtype=np.float32)
                B = np.zeros((out_f, r_max), dtype=np.float32)
                if module in factors:
                    a, b = factors[module]
                    A[: a.shape[0]] = a
                    B[:, : b.shape[1]] = b
                tensors[f"base_model.model.{module}.lora_A.weight"] = A
                tensors[f"base_model.model.{module}.lora_B.weight"] = B
        conv1d = any(s.conv1d for s in self.shapes.values())
        config = {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model_name,
            "r": int(r_max),
            "lora_alpha": float(r_max),
            "lora_dropout": 0.0,
            "bias": "none",
            "fan_in_fan_out": conv1d,
            "target_modules": sorted({s.rsplit(".", 1)[-1] for s in suffixes}),
            "inference_mode": True,
            "use_rslora": False,
            "use_dora": False,
            "init_lora_weights": True,
        }
        nanodex = {
            "kind": "pca_otf.synthesized",
            "base_model": base_model_name,
            "scale": scale,
            "delta_norm": self.delta_norm() * abs(scale),
            "info": self.meta,
        }
        out_dir = Path(out_dir)
        with atomic_path(out_dir, is_dir=True) as tmp:
            save_file(tensors, str(tmp / "adapter_model.safetensors"))
            (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            (tmp / "nanodex.json").write_text(json.dumps(nanodex, indent=2, sort_keys=True) + "\n")
        return out_dir


# --------------------------------------------------------------------------------------------------
# synthesis


def _rng(seed: int, *parts: object) -> np.random.Generator:
    digest = hashlib.blake2b(":".join(str(p) for p in (seed, *parts)).encode(), digest_size=16).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "little")))


def _round(m: np.ndarray, threshold: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(m.astype(np.float64) ** 2)))
    if rms == 0.0:
        return m
    step = threshold * rms
    return (np.round(m / step) * step).astype(np.float32)


def synthesize(
    z: np.ndarray,
    shapes: Mapping[str, TargetShape],
    cfg: SynthConfig | None = None,
    capacity: Capacity | None = None,
) -> AdapterSet:
    """The adapter set for embedding `z` (unit vector) over `shapes`, deterministic in (z, cfg)."""
    cfg = cfg or SynthConfig()
    cfg.validate()
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(z)) or float(np.linalg.norm(z)) == 0.0:
        raise NanodexError("embedding z is zero or not finite", "rebuild the embedding")
    z = z / np.linalg.norm(z)
    dim = z.shape[0]
    stats = capacity.stats if capacity else None
    tw = effective_target_weights(cfg, stats)
    plan = rank_plan(shapes, cfg, capacity)
    K = cfg.components
    pairs: dict[tuple[int, str], LoraPair] = {}
    for (layer, target), r in sorted(plan.items()):
        shape = shapes[target]
        weight = tw.get(target, 1.0) * layer_weight(cfg.layer_schedule, layer, shape.n_layers)
        if weight == 0.0 or cfg.delta_rms == 0.0:
            continue
        rng = _rng(cfg.seed, "pair", layer, target, r, dim)
        proj = rng.standard_normal((2 * K, dim))
        coef = proj @ z  # ~N(0, 1) each: z is a unit vector
        ca, cb = coef[:K], coef[K:]
        basis_a = rng.standard_normal((K, r, shape.in_features), dtype=np.float32)
        basis_b = rng.standard_normal((K, shape.out_features, r), dtype=np.float32)
        A = np.tensordot(ca, basis_a, axes=1) / math.sqrt(K * shape.in_features)
        B = np.tensordot(cb, basis_b, axes=1) / math.sqrt(K * r)
        pair = LoraPair(A.astype(np.float32), B.astype(np.float32), float(cfg.alpha))
        norm = pair.delta_norm()
        if norm == 0.0:
            continue
        target_norm = cfg.delta_rms * math.sqrt(shape.in_features * shape.out_features) * weight
        pair.B = (pair.B.astype(np.float64) * (target_norm / norm)).astype(np.float32)
        if cfg.round_lora:
            pair.A = _round(pair.A, cfg.round_threshold)
            pair.B = _round(pair.B, cfg.round_threshold)
        pairs[(layer, target)] = pair
    z_hash = hashlib.blake2b(np.ascontiguousarray(z.astype(np.float32)).tobytes(), digest_size=16).hexdigest()
    meta = {
        "z_hash": z_hash,
        "synth": cfg.to_dict(),
        "target_weights": tw,
        "capacity": capacity.to_dict() if capacity else None,
        "total_rank": sum(p.rank for p in pairs.values()),
    }
    return AdapterSet(dict(shapes), pairs, meta)


def random_like(reference: AdapterSet, seed: int) -> AdapterSet:
    """A seeded random adapter set with the same shapes, ranks and per-pair delta norms as `reference`.

    The evaluation's control (d): whatever a synthesized adapter adds beyond "any perturbation of
    this size" shows up as a difference against this one.
    """
    pairs: dict[tuple[int, str], LoraPair] = {}
    for (layer, target), ref in sorted(reference.pairs.items()):
        rng = _rng(seed, "random", layer, target)
        A = rng.standard_normal(ref.A.shape).astype(np.float32)
        B = rng.standard_normal(ref.B.shape).astype(np.float32)
        pair = LoraPair(A, B, ref.alpha)
        norm = pair.delta_norm()
        pair.B = (
            (pair.B.astype(np.float64) * (ref.delta_norm() / norm)).astype(np.float32) if norm else pair.B
        )
        pairs[(layer, target)] = pair
    return AdapterSet(reference.shapes, pairs, {"random_seed": seed, "like": reference.meta.get("z_hash")})


def synthesize_cones(
    pg: Any,
    windows: Sequence[Sequence[str]],
    shapes: Mapping[str, TargetShape],
    *,
    embed_cfg: Any,
    synth_cfg: SynthConfig,
    rank: int,
    index: Any = None,
) -> list[AdapterSet]:
    """Small local adapters, one per top function window (a list of node ids), rank `rank` each.

    Each is synthesized like the subgraph adapter but from its own window's embedding, so the
    function the question is most about gets a nudge of its own (`--function-first --cone-rank`).
    Windows whose ids are all unknown to the graph are skipped.
    """
    from dataclasses import replace

    from pca_otf.embedding import EmbedIndex, embed_program

    if rank < 1:
        raise NanodexError(f"cone rank must be >= 1, got {rank}", "pass --cone-rank 1 or more")
    index = index or EmbedIndex(pg)
    cfg = replace(synth_cfg, rank=rank, layer_rank_tiers="", per_target_rank_schedule={}, rank_budget=0)
    out: list[AdapterSet] = []
    for ids in windows:
        known = [i for i in ids if i in index.by_id]
        if not known:
            continue
        z = embed_program(pg, embed_cfg, known, index=index).z
        cone = synthesize(z, shapes, cfg)
        cone.meta["window"] = sorted(known)
        out.append(cone)
    return out
