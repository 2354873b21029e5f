"""Serving benchmark (issue 6): vLLM tokens/s with 1 and 8 concurrent requests, base vs adapter.

One server (the real `VllmServer`) serves the base and a LoRA adapter side by side, so both are
measured in the same run on the same engine, interleaved (base 1, adapter 1, base 8, adapter 8,
then again for each round) so that load from other processes hits both alike. The adapter has
rank 16 on every projection (q k v o gate up down), as the trainer's default config writes it,
with random weights built in code: serving cost depends on the adapter's shapes, not its values,
and nothing has to be trained first. Every request generates exactly `max_tokens` tokens
(vLLM's `ignore_eos`), so both sides do the same work; throughput = generated tokens / wall time
from the first request sent to the last answer received. The questions are the fixture
dataset's prompts, one per request, so the prefix cache does not turn requests into copies.

`python -m scripts.bench_serve [--quick] [--max-tokens N] [--rounds R]`, or the `serve` section
of `make bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from scripts.bench import Section, table

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "tests" / "fixtures" / "dataset" / "train.jsonl"
ADAPTER_RANK = 16
CONCURRENCY = (1, 8)


@dataclass
class Measure:
    model: str  # "base" or "adapter"
    concurrency: int
    requests: int
    tokens: int
    seconds: float
    mean_latency_s: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def make_adapter(base: str, out: Path, rank: int = ADAPTER_RANK) -> Path:
    """A PEFT LoRA folder with random (non-zero) weights on every projection of BASE."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from nanodex.models import CANONICAL_TARGETS, map_target_modules, resolve_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(base), dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=map_target_modules(model, CANONICAL_TARGETS),
        init_lora_weights=False,  # random A and B: the adapter really changes every projection
        task_type="CAUSAL_LM",
    )
    get_peft_model(model, config).save_pretrained(str(out))
    (out / "nanodex.json").write_text(json.dumps({"format": 1, "base": base, "method": "lora"}) + "\n")
    return out


def load_prompts() -> list[str]:
    return [json.loads(line)["prompt"] for line in PROMPTS.read_text().splitlines() if line.strip()]


def measure(
    client: object, model: str, label: str, prompts: list[str], conc: int, n: int, max_tokens: int
) -> Measure:
    """`n` requests, `conc` at a time; wall time from the first send to the last answer."""

    def one(i: int) -> tuple[int, float]:
        t = time.perf_counter()
        done = client.chat(  # type: ignore[attr-defined]
            [{"role": "user", "content": prompts[i % len(prompts)]}],
            model=model,
            max_tokens=max_tokens,
            temperature=0.0,
            extra={"ignore_eos": True},
        )
        return int(done.usage.get("completion_tokens", 0)), time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=conc) as pool:
        results = list(pool.map(one, range(n)))
    seconds = time.perf_counter() - t0
    tokens = sum(r[0] for r in results)
    if tokens != n * max_tokens:
        raise RuntimeError(f"{label}: expected {n * max_tokens} generated tokens, got {tokens}")
    return Measure(label, conc, n, tokens, seconds, sum(r[1] for r in results) / n)


def bench(base: str, max_tokens: int, rounds: int, requests_per_slot: int) -> tuple[list[Measure], dict]:
    """Start one server with base + adapter and measure every (model, concurrency) `rounds` times."""
    from inference.config import ServerConfig
    from inference.preflight import free_port
    from inference.server import VllmServer

    prompts = load_prompts()
    with tempfile.TemporaryDirectory(prefix="nanodex-bench-serve-") as tmp:
        t = time.perf_counter()
        adapter = make_adapter(base, Path(tmp) / "bench-lora")
        adapter_seconds = time.perf_counter() - t
        cfg = ServerConfig(
            base=base,
            adapters=[f"bench-lora={adapter}"],
            port=free_port(),
            log_file=str(Path(tmp) / "vllm.log"),
        )
        server = VllmServer(cfg)
        with server:
            client = server.client(timeout_s=600)
            names = {"base": server.model_name, "adapter": "bench-lora"}
            for name in names.values():  # warm-up: first requests compile and allocate
                measure(client, name, "warmup", prompts, 1, 1, 8)
            runs: list[Measure] = []
            for _ in range(rounds):
                for conc in CONCURRENCY:
                    n = max(2, conc * requests_per_slot)
                    for label, name in names.items():
                        runs.append(measure(client, name, label, prompts, conc, n, max_tokens))
            info = {
                "server_start_seconds": round(server.startup_seconds or 0.0, 1),
                "adapter_build_seconds": round(adapter_seconds, 1),
                "max_lora_rank": server.max_lora_rank,
            }
    return runs, info


def best(runs: list[Measure], label: str, conc: int) -> Measure:
    """The fastest round of one configuration: other jobs on the machine only ever slow a round down."""
    return max(
        (r for r in runs if r.model == label and r.concurrency == conc), key=lambda r: r.tokens_per_second
    )


def report(runs: list[Measure], info: dict, max_tokens: int) -> dict:
    rows = []
    metrics: dict = {**info, "max_tokens": max_tokens}
    for conc in CONCURRENCY:
        b, a = best(runs, "base", conc), best(runs, "adapter", conc)
        ratio = a.tokens_per_second / b.tokens_per_second if b.tokens_per_second else 0.0
        for m in (b, a):
            rows.append(
                [
                    m.model,
                    conc,
                    m.requests,
                    m.tokens,
                    round(m.seconds, 2),
                    round(m.tokens_per_second, 1),
                    round(m.mean_latency_s, 2),
                    round(ratio, 3) if m is a else "",
                ]
            )
        metrics[f"base_tokens_per_s_c{conc}"] = round(b.tokens_per_second, 1)
        metrics[f"adapter_tokens_per_s_c{conc}"] = round(a.tokens_per_second, 1)
        metrics[f"adapter_base_ratio_c{conc}"] = round(ratio, 3)
    table(
        ["model", "concurrent", "requests", "tokens", "seconds", "tokens/s", "latency s", "adapter/base"],
        rows,
        title=f"vLLM serving, {max_tokens} generated tokens per request (best of {len(runs) // 4} round(s)); "
        f"server start {info['server_start_seconds']} s",
    )
    for label in ("base", "adapter"):
        one, eight = best(runs, label, 1), best(runs, label, 8)
        metrics[f"{label}_batching_speedup"] = round(eight.tokens_per_second / one.tokens_per_second, 2)
    print(
        f"batching: 8 concurrent vs 1 = {metrics['base_batching_speedup']}x (base), "
        f"{metrics['adapter_batching_speedup']}x (adapter)",
        flush=True,
    )
    return metrics


def run(quick: bool = False) -> Section:
    os.environ.setdefault("NANODEX_PROGRESS", "0")
    max_tokens = 32 if quick else 64
    rounds = 1 if quick else 2
    runs, info = bench("embedded:smollm2-135m", max_tokens, rounds, 1 if quick else 2)
    metrics = report(runs, info, max_tokens)
    return Section(name="serve", metrics=metrics)


def main(argv: Sequence[str] | None = None) -> int:
    from nanodex.log import setup_logging

    ap = argparse.ArgumentParser(prog="python -m scripts.bench_serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="embedded:smollm2-135m", help="base model (default: the embedded one)")
    ap.add_argument("--max-tokens", type=int, default=64, help="generated tokens per request")
    ap.add_argument("--rounds", type=int, default=2, help="measurements per configuration (best is kept)")
    ap.add_argument("--requests", type=int, default=2, help="requests per concurrent slot (8 slots: 8x this)")
    ap.add_argument("--quick", action="store_true", help="32 tokens, one round, one request per slot")
    ap.add_argument("--json", metavar="PATH", help="also write the metrics as JSON")
    args = ap.parse_args(argv)
    setup_logging()
    if args.quick:
        args.max_tokens, args.rounds, args.requests = 32, 1, 1
    runs, info = bench(args.base, args.max_tokens, args.rounds, args.requests)
    metrics = report(runs, info, args.max_tokens)
    metrics["base"] = args.base
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
