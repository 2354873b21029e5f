"""Load the base model (fp32/bf16, or 4-/8-bit with bitsandbytes) and wrap it with LoRA.

Precision is chosen per device: on a GPU bf16 (fp16 where bf16 is missing); on a CPU fp32,
because bf16 matmuls on a CPU without AMX ran ~15x slower than fp32 in our measurements
(QLoRA step on SmolLM2-135M: 31-48 s with bf16 compute vs ~2 s with fp32). QLoRA keeps the
NF4-quantized weights either way; only the compute dtype changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from nanodex.errors import NanodexError
from nanodex.log import get_logger
from nanodex.models import map_target_modules
from trainer.config import TrainConfig

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def device_kind() -> str:
    """'cuda' when a GPU is visible, else 'cpu' (MPS/XPU are not targets of this project)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_threads(requested: int) -> int:
    """Torch threads for CPU training: `requested` if > 0, else the cores that other jobs leave free.

    OpenMP threads wait for each other at every parallel region; when another process holds one
    of the cores, the thread that shares it stalls all others. Measured on 2 cores with two other
    busy processes: a QLoRA step ran 2x faster with 1 thread than with 2 (102 vs 51 tokens/s),
    while on an idle machine 2 threads are fastest. The 1-minute load average, read before
    training starts, is the other jobs' demand.
    """
    cores = os.cpu_count() or 1
    if requested > 0:
        return requested
    busy = int(round(os.getloadavg()[0])) if hasattr(os, "getloadavg") else 0
    return max(1, min(cores, cores - busy))


def half_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16


def weight_dtype(cfg: TrainConfig) -> torch.dtype:
    """dtype of the unquantized weights (bits 16/32) and of the non-quantized parts of a QLoRA model."""
    if cfg.dtype != "auto":
        return _DTYPES[cfg.dtype]
    if cfg.bits == 32 or device_kind() == "cpu":
        return torch.float32
    return half_dtype()


def compute_dtype(cfg: TrainConfig) -> torch.dtype:
    """bnb_4bit_compute_dtype resolved: bf16/fp16 on GPU, fp32 on CPU unless the config says otherwise."""
    if cfg.bnb_4bit_compute_dtype != "auto":
        return _DTYPES[cfg.bnb_4bit_compute_dtype]
    return half_dtype() if device_kind() == "cuda" else torch.float32


def check_bitsandbytes(bits: int, dtype: torch.dtype) -> None:
    """Quantize and multiply one small matrix with bitsandbytes on this device, or fail in one line.

    Loading a model first and failing deep inside from_pretrained would cost minutes and print a
    page of traceback; this probe takes milliseconds.
    """
    fix = "train plain LoRA instead (CONFIG=config/train_lora.yaml, bits: 16/32) or install a bitsandbytes build for this device"
    try:
        import bitsandbytes as bnb
    except Exception as err:  # ImportError, or a broken native library raising anything
        raise NanodexError(
            f"QLoRA (bits: {bits}) needs bitsandbytes, which does not load: {err}", fix
        ) from err
    device = device_kind()
    try:
        w = torch.randn(64, 64, device=device, dtype=dtype)
        x = torch.randn(2, 64, device=device, dtype=dtype)
        if bits == 4:
            q, state = bnb.functional.quantize_4bit(w, quant_type="nf4", blocksize=64)
            y = bnb.matmul_4bit(x, q.t(), quant_state=state)
        else:
            layer = bnb.nn.Linear8bitLt(64, 64, has_fp16_weights=False, bias=False).to(device)
            y = layer(x)
        ok = bool(torch.isfinite(y).all()) and y.shape == (2, 64)
    except Exception as err:
        raise NanodexError(f"bitsandbytes cannot run {bits}-bit layers on {device}: {err}", fix) from err
    if not ok:
        raise NanodexError(f"bitsandbytes {bits}-bit layers give non-finite results on {device}", fix)


def ddp_device_map() -> dict[str, int] | str:
    """Under `accelerate launch`/torchrun each process loads its copy onto its own GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.cuda.is_available():
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return "auto" if torch.cuda.is_available() else "cpu"


def quiet_transformers() -> None:
    """No per-tensor "Loading weights" bars in logs: follow nanodex's progress setting (TTY, NANODEX_PROGRESS)."""
    import sys

    from transformers.utils import logging as hf_logging

    if os.environ.get("NANODEX_PROGRESS") == "0" or not sys.stderr.isatty():
        hf_logging.disable_progress_bar()


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise NanodexError(f"cannot load the tokenizer of {path}: {err}", "check the model folder") from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(path: Path, cfg: TrainConfig) -> Any:
    """The base model, quantized for QLoRA (bits 4/8) and prepared for k-bit training."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    log = get_logger("trainer.model")
    quiet_transformers()
    kwargs: dict[str, Any] = {"dtype": weight_dtype(cfg)}
    if cfg.bits in (4, 8):
        cdtype = compute_dtype(cfg)
        check_bitsandbytes(cfg.bits, cdtype)
        if cfg.bits == 4:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=cfg.bnb_4bit_quant_type,
                bnb_4bit_compute_dtype=cdtype,
                bnb_4bit_use_double_quant=cfg.bnb_4bit_use_double_quant,
                bnb_4bit_quant_storage=torch.uint8,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = ddp_device_map()
        log.info("loading %s in %d-bit (%s), compute %s", path, cfg.bits, cfg.bnb_4bit_quant_type, cdtype)
    else:
        log.info("loading %s in %s", path, kwargs["dtype"])
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as err:
        raise NanodexError(f"cannot load the base model from {path}: {err}", "check BASE") from err
    model.config.use_cache = False  # the KV cache is useless in training and conflicts with checkpointing
    if cfg.bits in (4, 8):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


def add_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap `model` with a fresh LoRA adapter on the configured (architecture-mapped) modules."""
    from peft import LoraConfig, get_peft_model

    targets = map_target_modules(model, cfg.target_modules)
    lora = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    trainable, total = peft_model.get_nb_trainable_parameters()
    get_logger("trainer.model").info(
        "LoRA r=%d alpha=%d on %s: %.2fM trainable of %.1fM (%.2f%%)",
        cfg.lora_rank,
        cfg.lora_alpha,
        targets,
        trainable / 1e6,
        total / 1e6,
        100 * trainable / max(total, 1),
    )
    return peft_model


def continue_lora(model: Any, adapter: str | Path) -> Any:
    """Wrap `model` with an existing adapter's weights, trainable (rank/targets from its config)."""
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise NanodexError(
            f"init_adapter: no PEFT adapter in {adapter}", "pass a folder written by the trainer"
        )
    peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    trainable, total = peft_model.get_nb_trainable_parameters()
    get_logger("trainer.model").info(
        "continuing LoRA from %s: %.2fM trainable of %.1fM", adapter, trainable / 1e6, total / 1e6
    )
    return peft_model


def load_adapter(base_path: Path, adapter: Path, *, dtype: torch.dtype | None = None) -> Any:
    """Base (unquantized, for evaluation and merging) + the saved adapter, in eval mode."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if not (adapter / "adapter_config.json").is_file():
        raise NanodexError(
            f"no PEFT adapter in {adapter}", "pass ADAPTER= a folder written by `make train-lora`"
        )
    dtype = dtype or (half_dtype() if device_kind() == "cuda" else torch.float32)
    quiet_transformers()
    base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=dtype)
    if device_kind() == "cuda":
        base = base.to("cuda")
    model = PeftModel.from_pretrained(base, str(adapter))
    model.eval()
    return model
