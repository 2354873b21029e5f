"""Artifacts: read a `python -m pca_otf.build` folder back, checking it against its manifest.

The runner, the evaluation and self-tune all trust these files (an adapter built for another model
or a stale index would give wrong answers quietly), so opening a folder verifies the sha256 of every
artifact the manifest lists; any mismatch or missing file is a one-line error telling the user to
rebuild. The knobs the build used come back as typed configs, so query-time embeddings and
subgraph adapters are made exactly like the build's.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nanodex.config import from_dict
from nanodex.errors import NanodexError
from pca_otf.manifest import MANIFEST, SCHEMA_VERSION, manifest_sha, read_jsonl, read_npz, sha256_file

ARTIFACT_FILES = (
    "adapters.npz",
    "embedding.npz",
    "symbol_index.jsonl",
    "windows_index.jsonl",
    "facts.jsonl",
    "rerank_features.npz",
    "self_queries.jsonl",
    "sources.jsonl",
)
REBUILD = "rebuild with `python -m pca_otf.build` (make pca-build)"


class Artifacts:
    """A verified pca_otf build folder. Loaders are lazy; the hash check is not (`verify=False` skips it)."""

    def __init__(self, folder: str | Path, *, verify: bool = True) -> None:
        self.folder = Path(folder)
        mf = self.folder / MANIFEST
        if not mf.is_file():
            raise NanodexError(f"no pca_otf build in {self.folder} (manifest.json missing)", REBUILD)
        try:
            self.manifest: dict[str, Any] = json.loads(mf.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise NanodexError(f"{mf} is not valid JSON", REBUILD) from err
        if self.manifest.get("schema_version") != SCHEMA_VERSION:
            raise NanodexError(
                f"{self.folder} was built with schema {self.manifest.get('schema_version')}, this code reads {SCHEMA_VERSION}",
                REBUILD,
            )
        if verify:
            self.verify()

    def verify(self) -> None:
        listed = self.manifest.get("artifacts") or {}
        missing = [n for n in ARTIFACT_FILES if n not in listed]
        if missing:
            raise NanodexError(f"{self.folder}/manifest.json does not list {missing[0]}", REBUILD)
        for name, info in sorted(listed.items()):
            p = self.folder / name
            if not p.is_file():
                raise NanodexError(f"artifact {p} is missing", REBUILD)
            if sha256_file(p) != info.get("sha256"):
                raise NanodexError(
                    f"artifact {p} does not match its manifest hash (changed since the build)", REBUILD
                )

    # ---- identity ---------------------------------------------------------------------------------
    @cached_property
    def manifest_sha(self) -> str:
        """The build's identity (manifest without created_at), stamped into answer provenance."""
        return manifest_sha(self.manifest)

    @property
    def commit(self) -> str | None:
        return self.manifest.get("commit")

    @property
    def tree(self) -> str:
        return str(self.manifest.get("tree") or "")

    def check_base(self, model_config: Any) -> None:
        """Raise when `model_config` (a loaded model's config, a dict or a path) differs in shape from the build's."""
        from pca_otf.shapes import infer_target_shapes

        overrides = self.manifest["knobs"]["synth"].get("target_shapes") or None
        have = {
            k: v.to_dict() for k, v in infer_target_shapes(model_config, list(self.shapes), overrides).items()
        }
        want = self.manifest["shapes"]
        if have != want:
            raise NanodexError(
                f"the base model's layer shapes differ from those {self.folder} was built for "
                f"({self.manifest['base'].get('name')})",
                "pass the same --base as the build, or rebuild for this base",
            )

    def check_graph(self, pg: Any) -> None:
        """Raise when the program graph's content is not the one the build read."""
        from pca_otf.manifest import graph_content_hash

        h, _ = graph_content_hash(pg)
        if h != self.tree:
            raise NanodexError(f"the code graph changed since {self.folder} was built", REBUILD)

    # ---- typed configs ----------------------------------------------------------------------------
    def embed_config(self) -> Any:
        from pca_otf.embedding import EmbedConfig

        return from_dict(EmbedConfig, self.manifest["knobs"]["embed"], f"{self.folder}/manifest.json embed")

    def synth_config(self) -> Any:
        from pca_otf.synth import SynthConfig

        return from_dict(SynthConfig, self.manifest["knobs"]["synth"], f"{self.folder}/manifest.json synth")

    @cached_property
    def shapes(self) -> dict[str, Any]:
        from pca_otf.shapes import shapes_from_json

        return shapes_from_json(self.manifest["shapes"])

    # ---- artifacts --------------------------------------------------------------------------------
    def embedding(self) -> Any:
        from pca_otf.embedding import Embedding

        return Embedding.load(self.folder / "embedding.npz")

    def adapters(self) -> Any:
        from pca_otf.synth import AdapterSet

        return AdapterSet.load(self.folder / "adapters.npz")

    def symbols(self) -> list[dict[str, Any]]:
        return read_jsonl(self.folder / "symbol_index.jsonl")

    def windows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.folder / "windows_index.jsonl")

    def facts(self) -> list[dict[str, Any]]:
        return read_jsonl(self.folder / "facts.jsonl")

    def self_queries(self) -> list[dict[str, Any]]:
        return read_jsonl(self.folder / "self_queries.jsonl")

    def sources(self) -> list[dict[str, Any]]:
        return read_jsonl(self.folder / "sources.jsonl")

    def rerank(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
        """(entity ids, feature names, features [N x F], sketches [N x rerank_dim])."""
        arrays, meta = read_npz(self.folder / "rerank_features.npz")
        return list(meta["ids"]), list(meta["feature_names"]), arrays["features"], arrays["sketch"]

    def peft_dir(self) -> Path | None:
        """The whole-program adapter as a PEFT folder, when built with --export-peft."""
        p = self.folder / "peft"
        return p if (p / "adapter_config.json").is_file() else None
