"""TrainConfig: every key of config/train_lora.yaml and config/train_qlora.yaml, typed.

The key names are the ones DESIGN.md and the README promise (bits, bnb_4bit_compute_dtype,
lora_rank, lora_alpha, target_modules, learning_rate, batch_size, max_steps, max_seq_len,
eval_interval, save_dir); the rest are the knobs a run on a small CPU or a large GPU needs.
Defaults here are the LoRA-on-CPU ones; the YAML files carry the sized values and their GPU
counterparts in comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nanodex.config import at_least
from nanodex.errors import NanodexError
from nanodex.models import DEFAULT_BASE
from nanodex.paths import DEFAULT_EVAL_JSONL, DEFAULT_GRAPH, DEFAULT_TRAIN_JSONL

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class TrainConfig:
    # inputs and output
    base: str = DEFAULT_BASE
    dataset: str = str(DEFAULT_TRAIN_JSONL)
    eval_dataset: str = str(DEFAULT_EVAL_JSONL)
    graph: str = str(DEFAULT_GRAPH)  # only read for its commit, recorded in nanodex.json
    save_dir: str = "models/nanodex-lora"
    checkpoint_dir: str | None = None  # default: <save_dir>.checkpoints

    # precision: bits 4 = QLoRA (bitsandbytes NF4), 8 = LLM.int8, 16/32 = plain LoRA
    bits: int = 32
    dtype: str = "auto"  # weights of a 16/32-bit base: auto = bf16 (or fp16) on GPU, fp32 on CPU
    bnb_4bit_compute_dtype: str = "auto"  # auto = bf16 on GPU, fp32 on CPU (CPU bf16 was ~15x slower)
    bnb_4bit_quant_type: str = "nf4"
    bnb_4bit_use_double_quant: bool = True

    # LoRA
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q", "k", "v", "o", "gate", "up", "down"])
    # continue training an existing PEFT adapter (its rank and targets win over lora_rank/target_modules):
    # self-tune's short refresh of the main adapter starts from the adapter's own weights
    init_adapter: str | None = None

    # optimisation
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"  # GPU QLoRA: paged_adamw_8bit
    batch_size: int = at_least(1, 4)
    grad_accum: int = at_least(1, 1)
    max_steps: int = at_least(0, 0)  # > 0 wins over epochs
    epochs: float = 1.0
    gradient_checkpointing: bool = False

    # data
    max_seq_len: int = at_least(16, 512)
    packing: bool = False  # concatenate rows into max_seq_len blocks (no padding)
    answer_logits_only: bool = True  # logits (and loss) only where an answer token is predicted: memory, time
    group_by_length: bool = True  # batch rows of similar length (less padding); ignored with packing
    system_prompt: str | None = None  # None: the chat template's own default
    eval_rows: int = 0  # rows of eval_dataset used for the eval loss (0 = all)

    # loop
    eval_interval: int = 50  # steps between eval-loss passes (0 = only at start and end)
    eval_on_start: bool = True  # eval loss before training: the "before" number
    save_interval: int = 0  # steps between checkpoints (0 = eval_interval)
    save_total_limit: int = 2
    logging_steps: int = 5
    seed: int = 42
    dataloader_workers: int = 0
    cpu_threads: int = 0  # CPU only: torch threads; 0 = the cores other jobs leave free

    def validate(self) -> None:
        """Reject values that would only fail (or silently misbehave) deep inside the Trainer."""
        if self.bits not in (4, 8, 16, 32):
            raise NanodexError(
                f"bits must be 4, 8, 16 or 32, got {self.bits}", "use 4 for QLoRA, 16/32 for LoRA"
            )
        for key in ("dtype", "bnb_4bit_compute_dtype"):
            if getattr(self, key) not in DTYPES:
                raise NanodexError(f"{key} must be one of {', '.join(DTYPES)}", f"fix `{key}` in the config")
        positive = ("lora_rank", "lora_alpha", "batch_size", "grad_accum", "max_seq_len", "logging_steps")
        for key in positive:
            if getattr(self, key) <= 0:
                raise NanodexError(
                    f"{key} must be > 0, got {getattr(self, key)}", f"fix `{key}` in the config"
                )
        if self.max_steps <= 0 and self.epochs <= 0:
            raise NanodexError("neither max_steps nor epochs is > 0", "set max_steps or epochs")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise NanodexError(
                f"lora_dropout must be in [0, 1), got {self.lora_dropout}", "fix `lora_dropout`"
            )
        if self.learning_rate <= 0:
            raise NanodexError("learning_rate must be > 0", "fix `learning_rate`")
        if not self.target_modules:
            raise NanodexError("target_modules is empty", "list e.g. [q, k, v, o, gate, up, down]")

    @property
    def method(self) -> str:
        return "qlora" if self.bits in (4, 8) else "lora"

    @property
    def checkpoints(self) -> str:
        return self.checkpoint_dir or f"{self.save_dir.rstrip('/')}.checkpoints"
