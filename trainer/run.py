"""One training run: data -> base + LoRA -> HF Trainer -> adapter folder with nanodex.json.

Checkpoints go to `<save_dir>.checkpoints/` (every save_interval steps, rotated) so that a killed
run continues with `--resume`; the adapter itself is written to a temporary folder and renamed
onto `save_dir` only when training finished, so a half-trained adapter never looks like a good
one. Under `accelerate launch` every process runs this same code; only the main process writes.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from answer.prompt import LAYOUT
from nanodex.config import to_dict
from nanodex.errors import NanodexError
from nanodex.log import get_logger
from nanodex.models import resolve_model
from nanodex.paths import atomic_path
from trainer import data
from trainer.callbacks import History, ProgressCallback, peak_gpu_mb, peak_rss_mb
from trainer.checkpoints import checkpoint_damage
from trainer.config import TrainConfig
from trainer.manifest import FORMAT, environment, graph_commit, write_manifest
from trainer.model import (
    add_lora,
    continue_lora,
    cpu_threads,
    device_kind,
    load_base,
    load_tokenizer,
    weight_dtype,
)

_CKPT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class RunResult:
    adapter: Path | None  # None on non-main processes under DDP
    manifest: dict[str, Any]


def checkpoints_in(folder: str | Path) -> list[Path]:
    """checkpoint-N folders (with a trainer_state.json, i.e. complete), oldest first."""
    root = Path(folder)
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _CKPT.match(p.name)) and (p / "trainer_state.json").is_file()
    ]
    return [p for _, p in sorted(found)]


def resume_point(cfg: TrainConfig, resume: bool | str) -> str | None:
    """The checkpoint to resume from: `--resume` = newest in the checkpoint folder, `--resume DIR` = DIR."""
    if not resume:
        return None
    if isinstance(resume, str):
        if not (Path(resume) / "trainer_state.json").is_file():
            raise NanodexError(
                f"{resume} is not a training checkpoint", f"pass a checkpoint-N folder of {cfg.checkpoints}"
            )
        damage = checkpoint_damage(resume)
        if damage:
            raise NanodexError(
                f"checkpoint {resume} is damaged: {damage}", "pass an older checkpoint-N, or plain --resume"
            )
        return resume
    found = checkpoints_in(cfg.checkpoints)
    if not found:
        raise NanodexError(
            f"no checkpoint to resume from in {cfg.checkpoints}", "run without --resume to start fresh"
        )
    damaged: list[str] = []
    for ckpt in reversed(found):  # newest first; a damaged one is passed over, never silently
        damage = checkpoint_damage(ckpt)
        if damage is None:
            if damaged:
                get_logger("trainer").warning(
                    "skipping damaged checkpoint(s) %s: resuming from %s", "; ".join(damaged), ckpt.name
                )
            return str(ckpt)
        damaged.append(f"{ckpt.name} ({damage})")
    raise NanodexError(
        f"every checkpoint in {cfg.checkpoints} is damaged: {'; '.join(damaged)}",
        "run without --resume to start fresh",
    )


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _oom_error(cfg: TrainConfig, where: str) -> NanodexError:
    return NanodexError(
        f"out of memory while {where} (batch_size={cfg.batch_size}, max_seq_len={cfg.max_seq_len}, bits={cfg.bits})",
        "lower batch_size (raise grad_accum to keep the effective batch) or max_seq_len, "
        "set gradient_checkpointing: true, or use bits: 4 (QLoRA)",
    )


def _mixed_precision(cfg: TrainConfig) -> dict[str, bool]:
    """Trainer autocast flags: only on GPU, matching the weight dtype (CPU runs stay in fp32)."""
    if device_kind() != "cuda":
        return {}
    dtype = weight_dtype(cfg)
    return {"bf16": dtype == torch.bfloat16, "fp16": dtype == torch.float16}


def training_args(cfg: TrainConfig, has_eval: bool, total_steps_hint: int, resuming: bool = False) -> Any:
    from transformers import TrainingArguments

    eval_every = cfg.eval_interval if cfg.eval_interval > 0 else 0
    save_every = cfg.save_interval or cfg.eval_interval or max(total_steps_hint // 4, 1)
    show_bars = sys.stderr.isatty() and os.environ.get("NANODEX_PROGRESS") != "0"
    return TrainingArguments(
        output_dir=cfg.checkpoints,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # < 1: a fraction of the total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim=cfg.optim,
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        num_train_epochs=cfg.epochs,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval and eval_every else "no",
        eval_steps=eval_every or None,
        eval_on_start=has_eval and cfg.eval_on_start and not resuming,  # a resumed run has its "before"
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        include_num_input_tokens_seen="non_padding",
        train_sampling_strategy="group_by_length" if cfg.group_by_length and not cfg.packing else "random",
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=cfg.dataloader_workers,
        use_cpu=device_kind() == "cpu",
        disable_tqdm=not show_bars,
        ddp_find_unused_parameters=False,
        **_mixed_precision(cfg),
    )


def _encode(
    tok: Any, cfg: TrainConfig, rows: list[dict], path: str, what: str
) -> tuple[list[dict], dict[str, Any]]:
    examples, stats = data.encode_rows(tok, rows, cfg.max_seq_len, cfg.system_prompt)
    if not examples:
        raise NanodexError(
            f"{what} {path}: every answer was cut away by max_seq_len={cfg.max_seq_len}", "raise max_seq_len"
        )
    if stats.truncated:
        get_logger("trainer").warning(
            "%s: %d of %d rows longer than max_seq_len=%d were truncated (%d dropped: no answer left)",
            what,
            stats.truncated,
            stats.rows,
            cfg.max_seq_len,
            stats.dropped_no_answer,
        )
    features = data.pack(examples, cfg.max_seq_len, cfg.seed) if cfg.packing else data.as_features(examples)
    info = {"path": path, "sha256": data.file_sha256(path), **vars(stats), "sequences": len(features)}
    return features, info


def train(cfg: TrainConfig, *, resume: bool | str = False, callbacks: Sequence[Any] = ()) -> RunResult:
    """Run training as configured and return the adapter folder and its manifest."""
    from transformers import Trainer, set_seed

    cfg.validate()
    log = get_logger("trainer")
    t_start = time.perf_counter()
    set_seed(cfg.seed)
    resume_from = resume_point(cfg, resume)

    # cheap checks first: a missing dataset should not wait for a model download
    train_rows = data.load_rows(cfg.dataset, what="training dataset")
    eval_rows = (
        data.load_rows(cfg.eval_dataset, what="eval dataset", limit=cfg.eval_rows) if cfg.eval_dataset else []
    )
    base_path = resolve_model(cfg.base)
    if device_kind() == "cpu":
        threads = cpu_threads(cfg.cpu_threads)
        torch.set_num_threads(threads)
        log.info("CPU training with %d torch thread(s) (load average %.1f)", threads, os.getloadavg()[0])
    tok = load_tokenizer(base_path)
    train_set, train_info = _encode(tok, cfg, train_rows, cfg.dataset, "training dataset")
    eval_set: list[dict] = []
    eval_info: dict[str, Any] = {}
    if eval_rows:
        eval_set, eval_info = _encode(tok, cfg, eval_rows, cfg.eval_dataset, "eval dataset")
    log.info(
        "train: %d rows -> %d sequences, %d tokens (%d answer tokens); eval: %d sequences",
        train_info["rows"],
        train_info["sequences"],
        train_info["tokens"],
        train_info["answer_tokens"],
        len(eval_set),
    )

    try:
        base_model = load_base(base_path, cfg)
        model = continue_lora(base_model, cfg.init_adapter) if cfg.init_adapter else add_lora(base_model, cfg)
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
        if _is_oom(err):
            raise _oom_error(cfg, "loading the base model") from err
        raise

    if not resume_from and checkpoints_in(cfg.checkpoints):
        log.info(
            "starting fresh: removing old checkpoints in %s (use --resume to continue them)", cfg.checkpoints
        )
        shutil.rmtree(cfg.checkpoints, ignore_errors=True)

    steps_per_epoch = math.ceil(len(train_set) / (cfg.batch_size * cfg.grad_accum))
    total_hint = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    args = training_args(cfg, bool(eval_set), total_hint, resuming=bool(resume_from))
    history = History()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data.ListDataset(train_set),
        eval_dataset=data.ListDataset(eval_set) if eval_set else None,
        data_collator=data.Collator(pad_id=tok.pad_token_id, answer_logits_only=cfg.answer_logits_only),
        processing_class=tok,
        callbacks=[ProgressCallback(history), *callbacks],
    )
    quiet_trainer_output(trainer)
    log.info(
        "training %s (%s, bits=%d) for %d steps on %s; checkpoints in %s%s",
        cfg.base,
        cfg.method,
        cfg.bits,
        total_hint,
        device_kind(),
        cfg.checkpoints,
        f"; resuming from {resume_from}" if resume_from else "",
    )
    t_train = time.perf_counter()
    try:
        out = trainer.train(resume_from_checkpoint=resume_from)
        state = trainer.state
        if eval_set and (not history.eval_loss or history.eval_loss[-1][0] != state.global_step):
            trainer.evaluate()  # the final eval loss, when the last step was not an eval step
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
        if _is_oom(err):
            raise _oom_error(cfg, "training") from err
        raise
    train_seconds = time.perf_counter() - t_train

    manifest = {
        "format": FORMAT,
        "base": cfg.base,
        "base_path": str(base_path),
        "base_model_type": getattr(model.config, "model_type", None),
        "method": cfg.method,
        "bits": cfg.bits,
        "prompt_layout": LAYOUT,  # the answer.prompt wording the rows were written in; serving checks it
        "dataset": {"train": train_info, "eval": eval_info},
        "graph": {"path": cfg.graph, "commit": graph_commit(cfg.graph)},
        "config": to_dict(cfg),
        "training": _training_metrics(history, state, out.metrics, train_seconds, t_start, resume_from),
        "environment": environment(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not trainer.is_world_process_zero():
        trainer.accelerator.wait_for_everyone()
        return RunResult(None, manifest)
    with atomic_path(cfg.save_dir, is_dir=True) as tmp:
        trainer.model.save_pretrained(str(tmp))
        (tmp / "README.md").unlink(missing_ok=True)  # PEFT's empty model-card template
        write_manifest(tmp, manifest)
    trainer.accelerator.wait_for_everyone()
    t = manifest["training"]
    log.info(
        "adapter written to %s: %d steps, train loss %s -> %s, eval loss %s -> %s, %.0f tokens/s",
        cfg.save_dir,
        t["global_step"],
        _fmt(t["train_loss_first"]),
        _fmt(t["train_loss_last"]),
        _fmt(t["eval_loss_first"]),
        _fmt(t["eval_loss_last"]),
        t["tokens_per_second"],
    )
    return RunResult(Path(cfg.save_dir), manifest)


def quiet_trainer_output(trainer: Any) -> None:
    """Drop the Trainer's printing of raw log dicts; ProgressCallback logs one readable line instead."""
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_callback import ProgressCallback as BarCallback

    class BarOnly(BarCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            return None

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(BarCallback) is not None:
        trainer.add_callback(BarOnly())


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _training_metrics(
    h: History,
    state: Any,
    metrics: dict[str, float],
    train_seconds: float,
    t_start: float,
    resumed: str | None,
) -> dict[str, Any]:
    # curves from the Trainer's log history: on --resume it holds the logs restored from the
    # checkpoint as well, so the curves cover the whole run, not just this session
    train_loss = [(int(e["step"]), float(e["loss"])) for e in state.log_history if "loss" in e]
    eval_loss = [(int(e["step"]), float(e["eval_loss"])) for e in state.log_history if "eval_loss" in e]
    return {
        "global_step": state.global_step,
        "epoch": state.epoch,
        "resumed_from": resumed,
        "resumed_from_step": h.start_step if resumed else None,
        "steps_this_run": state.global_step - h.start_step,
        "first_logged_step_this_run": h.train_loss[0][0] if h.train_loss else None,
        "train_loss_first": train_loss[0][1] if train_loss else None,
        "train_loss_last": train_loss[-1][1] if train_loss else None,
        "train_loss_mean": metrics.get("train_loss"),
        "eval_loss_first": eval_loss[0][1] if eval_loss else None,
        "eval_loss_last": eval_loss[-1][1] if eval_loss else None,
        "eval_loss_best": min(v for _, v in eval_loss) if eval_loss else None,
        "train_loss_history": train_loss,
        "eval_loss_history": eval_loss,
        "tokens_seen": state.num_input_tokens_seen,
        "tokens_this_run": h.tokens,
        "tokens_per_second": round(h.tokens_per_second, 1),
        "step_seconds": round(h.step_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_gpu_mb": round(peak_gpu_mb(), 1),
    }
