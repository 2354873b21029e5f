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
from nanodex.flags import config_file, config_flag, config_option, overrides_from
from nanodex.log import get_logger, setup_logging
from trainer.config import TrainConfig


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m trainer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(ap, TrainConfig, "train_lora")  # config/train_qlora.yaml: QLoRA (bits 4)
    config_flag(
        ap, "--base", key="base", help="base model: Hugging Face id, local folder or embedded:smollm2-135m"
    )
    config_flag(ap, "--dataset", key="dataset", help="training JSONL")
    config_flag(
        ap,
        "--eval-dataset",
        key="eval_dataset",
        help="held-out JSONL for the eval loss (default with --dataset: eval.jsonl beside it; '' = none)",
    )
    config_flag(ap, "--out", key="save_dir", help="adapter folder to write")
    config_flag(ap, "--graph", key="graph", help="code graph whose commit is recorded in nanodex.json")
    ap.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="continue from the newest checkpoint in <out>.checkpoints (or from CHECKPOINT)",
    )
    config_flag(ap, "--max-steps", key="max_steps", help="optimizer steps (> 0 wins over `epochs`)")
    config_flag(ap, "--seed", key="seed", help="random seed")
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
    overrides = overrides_from(args)
    if "dataset" in overrides and "eval_dataset" not in overrides:
        overrides["eval_dataset"] = sibling_eval(overrides["dataset"])
    cfg = load_config(TrainConfig, config_file(args), overrides)
    from trainer.data import require_dataset

    # before transformers/peft load: they import bitsandbytes, which may log its own warnings first
    require_dataset(cfg.dataset, "training dataset")
    from trainer.run import train  # heavy imports (torch, transformers) after --help

    train(cfg, resume=args.resume)
    return 0


if __name__ == "__main__":
    run_main(main)
