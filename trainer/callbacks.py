"""HF Trainer callbacks: tokens/s over pure training time, loss history, peak memory.

The Trainer's own `train_tokens_per_second` divides by wall time including eval passes and
checkpoint writes; on a CPU where an eval pass can take a minute that understates throughput
badly, so the time between step begin and step end is summed here instead.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TrainerCallback

from nanodex.log import get_logger


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_gpu_mb() -> float:
    return torch.cuda.max_memory_allocated() / (1024 * 1024) if torch.cuda.is_available() else 0.0


@dataclass
class History:
    """What the run reports: loss curves, token counts and pure step time."""

    train_loss: list[tuple[int, float]] = field(default_factory=list)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)
    step_seconds: float = 0.0
    tokens_start: int = 0
    tokens_end: int = 0
    start_step: int = 0

    @property
    def tokens(self) -> int:
        return self.tokens_end - self.tokens_start

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.step_seconds if self.step_seconds > 0 else 0.0


class ProgressCallback(TrainerCallback):
    """Records History and logs one line per logging step: loss, eval loss, tokens/s."""

    def __init__(self, history: History) -> None:
        self.h = history
        self.log = get_logger("trainer")
        self._t0: float | None = None
        self._window_tokens = 0
        self._window_seconds = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.h.tokens_start = self.h.tokens_end = state.num_input_tokens_seen
        self.h.start_step = state.global_step
        self._window_tokens = state.num_input_tokens_seen

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t0 = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._t0 is not None:
            dt = time.perf_counter() - self._t0
            self.h.step_seconds += dt
            self._window_seconds += dt
            self._t0 = None
        self.h.tokens_end = state.num_input_tokens_seen

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if not logs:
            return
        step = state.global_step
        if "loss" in logs:
            self.h.train_loss.append((step, float(logs["loss"])))
            tokens = state.num_input_tokens_seen - self._window_tokens
            tps = tokens / self._window_seconds if self._window_seconds > 0 else 0.0
            self._window_tokens, self._window_seconds = state.num_input_tokens_seen, 0.0
            if state.is_world_process_zero:
                self.log.info(
                    "step %d/%d  loss %.4f  lr %.2e  %.0f tokens/s  (peak RSS %.0f MB)",
                    step,
                    state.max_steps,
                    logs["loss"],
                    logs.get("learning_rate", 0.0),
                    tps,
                    peak_rss_mb(),
                )
        if "eval_loss" in logs:
            self.h.eval_loss.append((step, float(logs["eval_loss"])))
            if state.is_world_process_zero:
                self.log.info("step %d/%d  eval loss %.4f", step, state.max_steps, logs["eval_loss"])
