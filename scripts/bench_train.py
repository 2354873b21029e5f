"""Training benchmark (issue 5): tokens/s and peak memory of LoRA and QLoRA steps.

Each configuration runs in its own process (`python -m trainer`, the real training path, eval
off) so that peak RSS is that configuration's alone, for a handful of optimizer steps on the
fixture dataset (tests/fixtures/dataset, ~84 tokens per row, batch 8). Throughput counts
non-padding tokens over pure step time (forward, backward, optimizer; not model loading), as
the trainer logs it. The LoRA run is the baseline of the ratio column.

On CUDA a larger model is added: a Llama with TinyLlama-1.1B's shapes and random weights, built
in code (throughput and memory depend on shapes, not on weight values, and nothing has to be
downloaded), in bf16 LoRA and NF4 QLoRA.

`python -m scripts.bench_train [--steps N] [--quick]`, or as the `train` section of `make bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.bench import Check, Section, table

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "dataset" / "train.jsonl"
DEFAULT_STEPS = 80  # config/train_qlora.yaml's max_steps, for the projected run time
DEFAULT_BATCH = 8


@dataclass
class Result:
    name: str
    base: str
    bits: int
    steps: int
    tokens: int
    tokens_per_second: float
    seconds_per_step: float
    peak_rss_mb: float
    peak_gpu_mb: float
    threads: int


def run_one(
    name: str, base: str, bits: int, steps: int, batch: int, work: Path, extra: Sequence[str] = ()
) -> Result:
    """Train `steps` steps in a fresh process and read the numbers back from its nanodex.json."""
    out = work / name
    cfg = work / f"{name}.yaml"
    cfg.write_text(
        "\n".join(
            [
                f"bits: {bits}",
                f"batch_size: {batch}",
                "max_seq_len: 384",
                "eval_interval: 0",
                "eval_on_start: false",
                f"save_interval: {steps}",
                "logging_steps: 1",
                "warmup_ratio: 0.0",
                *extra,
            ]
        )
        + "\n"
    )
    cmd = [sys.executable, "-m", "trainer", "--config", str(cfg), "--base", base, "--dataset", str(FIXTURE)]
    cmd += ["--eval-dataset", "", "--out", str(out), "--max-steps", str(steps)]
    env = {**os.environ, "NANODEX_PROGRESS": "0"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    manifest = json.loads((out / "nanodex.json").read_text())
    t = manifest["training"]
    return Result(
        name=name,
        base=base,
        bits=bits,
        steps=t["global_step"],
        tokens=t["tokens_this_run"],
        tokens_per_second=t["tokens_per_second"],
        seconds_per_step=t["step_seconds"] / max(t["global_step"], 1),
        peak_rss_mb=t["peak_rss_mb"],
        peak_gpu_mb=t["peak_gpu_mb"],
        threads=int(manifest["environment"]["threads"]),
    )


def build_large_random_llama(folder: Path, tokenizer_from: Path) -> Path:
    """TinyLlama-1.1B shapes, random bf16 weights, SmolLM2's tokenizer (vocab 49152)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_from)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        head_dim=64,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return folder


def measure(steps: int, batch: int, large: bool, threads: int = 0) -> list[Result]:
    import torch

    from nanodex.models import DEFAULT_BASE, resolve_model

    embedded = resolve_model(DEFAULT_BASE)  # convert once, outside the timed runs
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="nanodex-bench-train-") as tmp:
        work = Path(tmp)
        cpu = [f"cpu_threads: {threads}"]
        results.append(run_one("lora-smollm2-135m", DEFAULT_BASE, 32, steps, batch, work, cpu))
        results.append(run_one("qlora-smollm2-135m", DEFAULT_BASE, 4, steps, batch, work, cpu))
        if large and torch.cuda.is_available():
            folder = build_large_random_llama(work / "llama-1.1b-random", embedded)
            extra = ["gradient_checkpointing: true"]
            results.append(run_one("lora-llama-1.1b", str(folder), 16, steps, batch, work, extra))
            results.append(run_one("qlora-llama-1.1b", str(folder), 4, steps, batch, work, extra))
    return results


def report(results: list[Result]) -> None:
    baseline = {r.base: r.tokens_per_second for r in results if r.bits in (16, 32)}
    rows = [
        [
            r.name,
            r.bits,
            r.steps,
            r.tokens,
            r.tokens_per_second,
            r.tokens_per_second / baseline[r.base] if baseline.get(r.base) else float("nan"),
            r.seconds_per_step,
            r.peak_rss_mb,
            r.peak_gpu_mb,
            r.threads,
        ]
        for r in results
    ]
    headers = [
        "run",
        "bits",
        "steps",
        "tokens",
        "tokens/s",
        "x LoRA",
        "s/step",
        "peak RSS MB",
        "peak GPU MB",
        "threads",
    ]
    table(headers, rows, title="training throughput (non-padding tokens over step time)")


def projected_minutes(result: Result, batch: int) -> float:
    """Minutes of pure training for config/train_qlora.yaml's max_steps (DEFAULT_STEPS) at the fixture's row length."""
    tokens_per_step = result.tokens / max(result.steps, 1)
    return (
        DEFAULT_STEPS * tokens_per_step * (DEFAULT_BATCH / batch) / max(result.tokens_per_second, 1e-9) / 60
    )


def run(quick: bool = False) -> Section:
    import torch

    steps = 3 if quick else 8
    results = measure(steps, DEFAULT_BATCH, large=not quick)
    report(results)
    section = Section(name="train", metrics={r.name: vars(r) for r in results})
    qlora = next(r for r in results if r.name == "qlora-smollm2-135m")
    minutes = projected_minutes(qlora, DEFAULT_BATCH)
    section.metrics["qlora_default_projected_minutes"] = minutes
    device = "GPU" if torch.cuda.is_available() else "CPU"
    section.checks.append(
        Check(
            f"train-qlora default config on {device}, projected training minutes",
            minutes,
            30.0,
            False,
            " min",
        )
    )
    if not torch.cuda.is_available():
        section.skipped.append("larger model: needs CUDA")
    return section


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench_train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps per configuration")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--no-large", action="store_true", help="skip the 1.1B model on CUDA")
    ap.add_argument(
        "--threads", type=int, default=0, help="CPU torch threads (0 = trainer's choice from the load)"
    )
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    results = measure(args.steps, args.batch_size, large=not args.no_large, threads=args.threads)
    report(results)
    qlora = next(r for r in results if r.name == "qlora-smollm2-135m")
    print(f"\nprojected pure training time of config/train_qlora.yaml ({DEFAULT_STEPS} steps): "
          f"{projected_minutes(qlora, args.batch_size):.1f} min")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps([vars(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
