"""Target shapes: which projections of which layers a program-conditioned adapter touches, and their sizes.

Synthesis must know every adapted matrix's (in, out) size before any weight is loaded (a build reads
only the base's config.json), and mixing must find the same matrices in a loaded model. Both read
the answer from here, so the two can never disagree about what "k of layer 3" is.

Canonical targets are q, k, v, o (attention) and gate, up, down (MLP). Sizes follow the config:
k and v are GQA-aware (`num_key_value_heads * head_dim` outputs). GPT-2-style models fuse q, k and
v into one `c_attn` Conv1D (hidden -> 3*hidden): each canonical target there is a slice of the
fused module's outputs (`out_offset`), and Conv1D stores its weight transposed (in, out), which the
mixer handles. Architectures without a projection (GPT-2 has no gate) simply have no such target.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nanodex.errors import NanodexError

CANONICAL = ("q", "k", "v", "o", "gate", "up", "down")
ATTENTION = ("q", "k", "v", "o")
MLP = ("gate", "up", "down")

_LLAMA_TYPES = {
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "olmo",
    "olmo2",
    "granite",
    "smollm3",
    "cohere",
    "stablelm",
    "ministral",
}
_GPT2_TYPES = {"gpt2"}

_LLAMA_SUFFIX = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj",
    "up": "mlp.up_proj",
    "down": "mlp.down_proj",
}
_GPT2_SUFFIX = {"q": "attn.c_attn", "k": "attn.c_attn", "v": "attn.c_attn", "o": "attn.c_proj"}
_GPT2_SUFFIX |= {"up": "mlp.c_fc", "down": "mlp.c_proj"}


@dataclass(frozen=True)
class TargetShape:
    """One canonical target: module `suffix` under every layer `layer_prefix.{i}`, its (in, out) size.

    `out_offset`/`module_out` place the target inside a fused module (GPT-2's c_attn): the target's
    delta occupies output rows [out_offset, out_offset + out_features) of a module with
    `module_out` outputs. For unfused modules out_offset is 0 and module_out == out_features.
    """

    name: str
    suffix: str
    in_features: int
    out_features: int
    n_layers: int
    layer_prefix: str = "model.layers"
    out_offset: int = 0
    module_out: int = 0
    conv1d: bool = False  # GPT-2 Conv1D: weight stored as (in, out)

    def module_name(self, layer: int) -> str:
        """Full module name in the causal-LM model (what named_modules() and PEFT call it)."""
        return f"{self.layer_prefix}.{layer}.{self.suffix}"

    @property
    def fused(self) -> bool:
        return self.module_out != self.out_features

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TargetShape:
        return cls(**dict(d))


def load_model_config(source: Any) -> dict[str, Any]:
    """A plain dict from a transformers config object, a dict, a model folder or a config.json path."""
    if isinstance(source, Mapping):
        return dict(source)
    if hasattr(source, "to_dict") and callable(source.to_dict):
        return dict(source.to_dict())
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise NanodexError(f"model config not found: {path}", "pass a model folder holding config.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise NanodexError(f"{path}: invalid JSON ({err.msg})", "re-save the model's config.json") from err


def _get(cfg: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if cfg.get(n) is not None:
            return cfg[n]
    return default


def parse_shape_overrides(spec: str | Mapping[str, Any] | None) -> dict[str, tuple[int, int]]:
    """`"q=576x576,k=576x192"` (or a mapping of name -> "INxOUT" / [in, out]) -> {name: (in, out)}."""
    if not spec:
        return {}
    items: list[tuple[str, Any]]
    if isinstance(spec, str):
        items = []
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, dims = part.partition("=")
            if not sep:
                raise NanodexError(f"bad target shape '{part}'", "write it as name=INxOUT, e.g. k=576x192")
            items.append((name.strip(), dims.strip()))
    else:
        items = list(spec.items())
    out: dict[str, tuple[int, int]] = {}
    for name, dims in items:
        if name not in CANONICAL:
            raise NanodexError(
                f"unknown target '{name}' in target shapes", f"use one of: {', '.join(CANONICAL)}"
            )
        try:
            if isinstance(dims, str):
                a, b = dims.lower().split("x")
                pair = (int(a), int(b))
            else:
                a, b = dims
                pair = (int(a), int(b))
        except (ValueError, TypeError) as err:
            raise NanodexError(
                f"bad size '{dims}' for target {name}", "write it as INxOUT, e.g. 576x192"
            ) from err
        if pair[0] <= 0 or pair[1] <= 0:
            raise NanodexError(f"target {name} size must be positive, got {dims}", "fix --target-shapes")
        out[name] = pair
    return out


def infer_target_shapes(
    model_config: Any,
    targets: Sequence[str] = CANONICAL,
    overrides: str | Mapping[str, Any] | None = None,
) -> dict[str, TargetShape]:
    """The shapes of `targets` in a model described by `model_config` (no weights needed).

    Targets the architecture lacks (gate on GPT-2) are left out; unknown target names and unknown
    architectures are one-line errors. `overrides` replaces (in, out) of named targets, for
    configs whose sizes do not follow the usual keys.
    """
    cfg = load_model_config(model_config)
    model_type = str(cfg.get("model_type") or "")
    bad = [t for t in targets if t not in CANONICAL]
    if bad:
        raise NanodexError(f"unknown adapter target(s) {bad}", f"use names among: {', '.join(CANONICAL)}")
    if model_type not in _LLAMA_TYPES | _GPT2_TYPES:
        raise NanodexError(
            f"model type '{model_type}' has no known adapter layout",
            "use a Llama/Qwen2/Mistral-style or GPT-2 model, or extend pca_otf.shapes",
        )
    over = parse_shape_overrides(overrides)
    n_layers = int(_get(cfg, "num_hidden_layers", "n_layer", "num_layers", default=0))
    hidden = int(_get(cfg, "hidden_size", "n_embd", "d_model", default=0))
    n_heads = int(_get(cfg, "num_attention_heads", "n_head", default=0))
    if not (n_layers and hidden and n_heads):
        raise NanodexError(
            f"model config ({model_type or 'unknown type'}) lacks layer count, hidden size or heads",
            "pass a transformers config.json, or give every size with --target-shapes",
        )
    shapes: dict[str, TargetShape] = {}
    if model_type in _GPT2_TYPES:
        inner = int(_get(cfg, "n_inner", default=0) or 4 * hidden)
        sizes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden)}
        sizes |= {"o": (hidden, hidden), "up": (hidden, inner), "down": (inner, hidden)}
        offsets = {"q": 0, "k": hidden, "v": 2 * hidden}
        for t in targets:
            if t not in _GPT2_SUFFIX:
                continue  # GPT-2 has no gate projection
            fin, fout = over.get(t, sizes[t])
            fused = t in offsets
            shapes[t] = TargetShape(
                name=t,
                suffix=_GPT2_SUFFIX[t],
                in_features=fin,
                out_features=fout,
                n_layers=n_layers,
                layer_prefix="transformer.h",
                out_offset=offsets.get(t, 0),
                module_out=3 * fout if fused else fout,
                conv1d=True,
            )
        return shapes
    head_dim = int(_get(cfg, "head_dim", default=0) or hidden // n_heads)
    n_kv = int(_get(cfg, "num_key_value_heads", default=0) or n_heads)
    inter = int(_get(cfg, "intermediate_size", default=0) or 4 * hidden)
    sizes = {
        "q": (hidden, n_heads * head_dim),
        "k": (hidden, n_kv * head_dim),
        "v": (hidden, n_kv * head_dim),
        "o": (n_heads * head_dim, hidden),
        "gate": (hidden, inter),
        "up": (hidden, inter),
        "down": (inter, hidden),
    }
    for t in targets:
        fin, fout = over.get(t, sizes[t])
        shapes[t] = TargetShape(
            name=t,
            suffix=_LLAMA_SUFFIX[t],
            in_features=fin,
            out_features=fout,
            n_layers=n_layers,
            module_out=fout,
        )
    return shapes


def shapes_to_json(shapes: Mapping[str, TargetShape]) -> dict[str, dict[str, Any]]:
    return {k: v.to_dict() for k, v in shapes.items()}


def shapes_from_json(d: Mapping[str, Mapping[str, Any]]) -> dict[str, TargetShape]:
    return {k: TargetShape.from_dict(v) for k, v in d.items()}
