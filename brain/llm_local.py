"""The local LLM summarizer backend: a transformers causal LM in this process, greedy, fp32 on CPU.

For machines without a served model: `summary.backend: local` loads `summary.model` (default the
embedded SmolLM2-135M-Instruct, `embedded:smollm2-135m`, converted once by nanodex.models) and
writes summaries in batches of `summary.batch_size` prompts, at most `summary.max_new_tokens`
new tokens each. Greedy decoding keeps a re-run on unchanged input identical, which is what lets
the build skip nodes whose content hash did not change. Prompts are sorted by length before
batching so that left padding wastes little work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from brain.config import SummaryConfig
from brain.llm import SYSTEM, local_fingerprint
from nanodex.errors import NanodexError
from nanodex.log import get_logger
from nanodex.models import DEFAULT_BASE, resolve_model

log = get_logger("brain.llm_local")


class LocalSummarizer:
    """Batched greedy generation with a local model (see the module docstring)."""

    def __init__(self, cfg: SummaryConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self.model_name = cfg.model or DEFAULT_BASE
        folder = resolve_model(self.model_name)  # NanodexError (one line) when it cannot be had
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.tok: Any = AutoTokenizer.from_pretrained(str(folder))
        if not self.tok.chat_template:
            raise NanodexError(
                f"model {self.model_name} has no chat template",
                f"use an instruct model with a chat template, such as {DEFAULT_BASE}",
            )
        self.tok.padding_side = "left"  # decoder-only batches: pad on the left, generate on the right
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        self.model.eval()
        self.fingerprint = local_fingerprint(self.model_name, cfg.max_new_tokens)
        self.batch_size = max(1, cfg.batch_size)
        log.info("local summarizer %s from %s", self.model_name, folder)

    def _encode(self, prompt: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]

    def complete_many(self, prompts: Sequence[str]) -> list[str | Exception]:
        """Greedy answers to `prompts`, in their order (answer.generate: the one decoding loop)."""
        from answer.generate import generate

        out: list[str | Exception] = []
        for b in range(0, len(prompts), self.batch_size):  # a failure costs one batch, not the run
            chunk = prompts[b : b + self.batch_size]
            try:
                out += generate(
                    self.model,
                    self.tok,
                    [self._encode(p) for p in chunk],
                    max_new_tokens=self.cfg.max_new_tokens,
                    batch_size=self.batch_size,
                )
            except (RuntimeError, ValueError) as err:  # e.g. out of memory, a prompt too long
                out += [err] * len(chunk)
        return out
