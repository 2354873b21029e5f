"""Adapter bank: trained PEFT LoRA adapters (the trainer's, self-tune's per-module ones) picked per question.

A bank is a folder of PEFT adapter folders. Each may say which part of the program it was trained
on in its nanodex.json (`"region": {"node_ids": [...], "paths": [...]}`); one without a region
covers the whole program. A question's region embedding is compared (cosine) with each adapter's
region embedding, computed with the same EmbedConfig as the build, and the top M are mixed in,
weighted by similarity normalised to sum to 1. Their LoRA weights go through the same in-place
MixHandle as synthesized adapters, so removal is just as exact.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nanodex.errors import NanodexError
from nanodex.log import get_logger
from pca_otf.embedding import EmbedConfig, EmbedIndex, cosine, embed_program
from pca_otf.manifest import canonical_json
from pca_otf.mix import Mixture

_PREFIX = "base_model.model."


def _pattern_value(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    """PEFT's rank_pattern / alpha_pattern lookup: a key matches a module name ending in it."""
    for key in sorted(patterns, key=len, reverse=True):
        if re.match(rf"(.*\.)?({key})$", module):
            return patterns[key]
    return default


@dataclass
class BankAdapter:
    """One PEFT LoRA folder of the bank, with its region and (lazily) its factors."""

    name: str
    path: Path
    config: dict[str, Any]
    region_ids: list[str] | None = None  # explicit node ids
    region_paths: list[str] | None = None  # files (or folders, ending in /) the adapter covers
    info: dict[str, Any] = field(default_factory=dict)
    _factors: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    _z: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def base_model(self) -> str:
        return str(self.config.get("base_model_name_or_path") or "")

    @property
    def whole_program(self) -> bool:
        return not self.region_ids and not self.region_paths

    def region(self, index: EmbedIndex) -> list[str] | None:
        """Entity ids of the adapter's region in this graph (None = the whole program)."""
        if self.whole_program:
            return None
        ids = {i for i in (self.region_ids or []) if i in index.by_id}
        for p in self.region_paths or []:
            p = p.strip().removeprefix("./")
            for e in index.entities:
                if e.path == p or (p.endswith("/") and e.path.startswith(p)):
                    ids.add(e.id)
        return sorted(ids)

    def embedding(self, pg: Any, cfg: EmbedConfig, index: EmbedIndex) -> np.ndarray | None:
        """z of the adapter's region (cached per config); None when the region is gone from the graph."""
        key = canonical_json(cfg.to_dict())
        if key not in self._z:
            ids = self.region(index)
            if ids is not None and not ids:
                return None
            self._z[key] = embed_program(pg, cfg, ids, index=index).z
        return self._z[key]

    def factors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per full module name, (A, B) with the LoRA scaling (alpha / r, or / sqrt(r)) folded into B."""
        if self._factors is None:
            self._factors = _read_factors(self.path, self.config)
        return self._factors


def _read_factors(folder: Path, config: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from safetensors.numpy import load_file

    st = folder / "adapter_model.safetensors"
    if st.is_file():
        tensors = {k: np.asarray(v, dtype=np.float32) for k, v in load_file(str(st)).items()}
    elif (folder / "adapter_model.bin").is_file():
        import torch

        raw = torch.load(folder / "adapter_model.bin", map_location="cpu", weights_only=True)
        tensors = {k: v.float().numpy() for k, v in raw.items()}
    else:
        raise NanodexError(f"{folder} has no adapter_model.safetensors", "re-save the adapter with PEFT")
    fix = "use plain LoRA adapters (no DoRA, no embedding LoRA) in the bank"
    lora_a: dict[str, np.ndarray] = {}
    lora_b: dict[str, np.ndarray] = {}
    for key, val in tensors.items():
        name = key.removeprefix(_PREFIX)
        if ".lora_A." in name:
            lora_a[name.split(".lora_A.")[0]] = val
        elif ".lora_B." in name:
            lora_b[name.split(".lora_B.")[0]] = val
        else:
            raise NanodexError(f"{folder.name}: unsupported adapter tensor '{key}'", fix)
    if config.get("use_dora"):
        raise NanodexError(f"{folder.name} is a DoRA adapter", fix)
    r_default = int(config.get("r") or 8)
    alpha_default = float(config.get("lora_alpha") or r_default)
    rank_pattern = config.get("rank_pattern") or {}
    alpha_pattern = config.get("alpha_pattern") or {}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for module in sorted(lora_a):
        if module not in lora_b:
            raise NanodexError(f"{folder.name}: {module} has lora_A but no lora_B", "re-save the adapter")
        A, B = lora_a[module], lora_b[module]
        r = int(_pattern_value(rank_pattern, module, r_default))
        if A.shape[0] != r:
            r = A.shape[0]
        alpha = float(_pattern_value(alpha_pattern, module, alpha_default))
        scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        out[module] = (A, (B.astype(np.float64) * scaling).astype(np.float32))
    if not out:
        raise NanodexError(f"{folder.name} holds no LoRA weights", "re-save the adapter with PEFT")
    return out


def _read_adapter(folder: Path) -> BankAdapter:
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise NanodexError(
            f"{folder}/adapter_config.json is unreadable ({err})", "re-save the adapter"
        ) from err
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise NanodexError(
            f"{folder.name} is a {config.get('peft_type')} adapter", "the bank takes LoRA adapters"
        )
    info: dict[str, Any] = {}
    meta_file = folder / "nanodex.json"
    if meta_file.is_file():
        try:
            info = json.loads(meta_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise NanodexError(f"{meta_file}: invalid JSON ({err.msg})", "fix or delete the file") from err
    region = info.get("region") or {}
    if not isinstance(region, dict):
        raise NanodexError(
            f"{meta_file}: region must be a mapping", 'write {"node_ids": [...], "paths": [...]}'
        )
    return BankAdapter(
        name=folder.name,
        path=folder,
        config=config,
        region_ids=list(region.get("node_ids") or []) or None,
        region_paths=list(region.get("paths") or []) or None,
        info=info,
    )


def load_bank(bank_dir: str | Path) -> list[BankAdapter]:
    """Every PEFT adapter folder in `bank_dir` (the folder itself, or its sub-folders), sorted by name."""
    root = Path(bank_dir)
    if not root.is_dir():
        raise NanodexError(f"adapters bank {root} not found", "pass --bank with a folder of PEFT adapters")
    if (root / "adapter_config.json").is_file():
        return [_read_adapter(root)]
    out = [_read_adapter(p) for p in sorted(root.iterdir()) if (p / "adapter_config.json").is_file()]
    if not out:
        raise NanodexError(
            f"adapters bank {root} holds no PEFT adapter folder", "train or copy adapters into it"
        )
    return out


@dataclass(frozen=True)
class BankChoice:
    adapter: BankAdapter
    similarity: float
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"adapter": self.adapter.name, "similarity": self.similarity, "weight": self.weight}


def select(
    bank: Sequence[BankAdapter],
    z_query: np.ndarray,
    pg: Any,
    m: int,
    *,
    embed_cfg: EmbedConfig | None = None,
    index: EmbedIndex | None = None,
) -> list[BankChoice]:
    """The top-`m` adapters by cosine(region z, z_query), weights = similarity / sum of similarities.

    Adapters with similarity <= 0 are never mixed (a negative weight would subtract an adapter);
    adapters whose region no longer exists in the graph are skipped. Both are logged.
    """
    if m <= 0 or not bank:
        return []
    cfg = embed_cfg or EmbedConfig(embed_dim=int(np.asarray(z_query).shape[0]))
    if cfg.embed_dim != int(np.asarray(z_query).shape[0]):
        raise NanodexError(
            f"question embedding has {np.asarray(z_query).shape[0]} dims, the bank config {cfg.embed_dim}",
            "embed the bank with the build's EmbedConfig (Artifacts.embed_config())",
        )
    index = index or EmbedIndex(pg)
    log = get_logger("pca_otf.bank")
    scored: list[tuple[float, str, BankAdapter]] = []
    for adapter in bank:
        z = adapter.embedding(pg, cfg, index)
        if z is None:
            log.warning("bank adapter %s: its region is not in the graph; skipped", adapter.name)
            continue
        scored.append((cosine(z, z_query), adapter.name, adapter))
    scored.sort(key=lambda t: (-t[0], t[1]))
    top = scored[:m]
    kept = [(s, a) for s, _n, a in top if s > 0]
    if len(kept) < len(top):
        log.info(
            "bank: %d of the top %d adapters have similarity <= 0; not mixed", len(top) - len(kept), len(top)
        )
    total = sum(s for s, _a in kept)
    return [BankChoice(a, s, s / total) for s, a in kept]


def add_bank(mixture: Mixture, choices: Sequence[BankChoice], scale: float = 1.0) -> Mixture:
    """Add the chosen adapters' LoRA deltas to `mixture`, each times its weight and `scale`."""
    for c in choices:
        mixture.add_factors(c.adapter.factors(), c.weight * scale, source=f"bank:{c.adapter.name}")
    return mixture
