"""`python -m trainer`: fine-tune BASE with LoRA (bits 16/32) or QLoRA (bits 4) on the dataset.

Writes a PEFT adapter folder (adapter_config.json, adapter_model.safetensors, nanodex.json) to
--out; checkpoints go beside it (<out>.checkpoints) and `--resume` continues the newest one.
Several GPUs: `accelerate launch --config_file config/accelerate/ddp.yaml -m trainer --config ...`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from nanodex.config import load_config
from nanodex.errors import run_main
from nanodex.log import get_logger, setup_logging
from trainer.config import TrainConfig


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m trainer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--config", help="YAML config: config/train_lora.yaml or config/train_qlora.yaml")
    ap.add_argument("--base", help="base model: Hugging Face id, local folder or embedded:smollm2-135m")
    ap.add_argument("--dataset", help="training JSONL (default work/dataset/train.jsonl)")
    ap.add_argument(
        "--eval-dataset",
        help="held-out JSONL for the eval loss (default: eval.jsonl beside --dataset, else work/dataset/eval.jsonl; '' = none)",
    )
    ap.add_argument("--out", help="adapter folder to write (overrides `save_dir`)")
    ap.add_argument("--graph", help="code graph whose commit is recorded in nanodex.json")
    ap.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="continue from the newest checkpoint in <out>.checkpoints (or from CHECKPOINT)",
    )
    ap.add_argument("--max-steps", type=int, help="optimizer steps (overrides `max_steps` and `epochs`)")
    ap.add_argument("--seed", type=int, help="random seed (overrides `seed`)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def sibling_eval(dataset: str) -> str:
    """--dataset DIR/train.jsonl without --eval-dataset: use DIR/eval.jsonl, never another project's.

    The config's default eval set belongs to the default dataset; pairing it with a dataset given
    on the command line would measure the adapter on unrelated questions.
    """
    sibling = Path(dataset).with_name("eval.jsonl")
    if sibling.is_file() and sibling.resolve() != Path(dataset).resolve():
        return str(sibling)
    if Path(dataset).is_file():  # (a missing dataset is reported on its own, in one line)
        get_logger("trainer").warning("no %s beside %s: training without an eval loss", sibling.name, dataset)
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    eval_dataset = args.eval_dataset
    if args.dataset and eval_dataset is None:
        eval_dataset = sibling_eval(args.dataset)
    cfg = load_config(
        TrainConfig,
        args.config,
        {
            "base": args.base,
            "dataset": args.dataset,
            "eval_dataset": eval_dataset,
            "save_dir": args.out,
            "graph": args.graph,
            "max_steps": args.max_steps,
            "seed": args.seed,
        },
    )
    from trainer.data import require_dataset

    # before transformers/peft load: they import bitsandbytes, which may log its own warnings first
    require_dataset(cfg.dataset, "training dataset")
    from trainer.run import train  # heavy imports (torch, transformers) after --help

    train(cfg, resume=args.resume)
    return 0


if __name__ == "__main__":
    run_main(main)
