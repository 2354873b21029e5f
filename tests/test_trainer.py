"""Trainer: a tiny Llama built in code trains, saves, reloads, merges and resumes for real.

The tiny model (2 layers, head size 64, random init) and its byte-level BPE tokenizer (trained on
the fixture dataset, with SmolLM2-Instruct's chat template) are built here, so these tests need no
download. The slow test at the end runs QLoRA on the embedded SmolLM2-135M.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from nanodex.errors import NanodexError
from nanodex.models import SMOLLM2_CHAT_TEMPLATE
from trainer import data
from trainer.config import TrainConfig
from trainer.run import _is_oom, _oom_error, checkpoints_in, train

FIXTURE = Path(__file__).parent / "fixtures" / "dataset"
TRAIN = FIXTURE / "train.jsonl"
EVAL = FIXTURE / "eval.jsonl"
ROOT = Path(__file__).resolve().parents[1]


def build_tiny_model(folder: Path) -> Path:
    """A 2-layer Llama (head size 64) with a 512-token BPE tokenizer, saved as a model folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [f"{r['prompt']} {r['response']}" for r in data.load_rows(TRAIN)]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        texts * 3,
        trainers.BpeTrainer(
            vocab_size=512,
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = SMOLLM2_CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def tiny_config(base: Path, out: Path, **kw: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "base": str(base),
        "dataset": str(TRAIN),
        "eval_dataset": str(EVAL),
        "graph": str(out.parent / "no-graph.sqlite"),
        "save_dir": str(out),
        "bits": 32,
        "lora_rank": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "learning_rate": 3e-3,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "batch_size": 4,
        "max_steps": 24,
        "max_seq_len": 256,
        "eval_interval": 12,
        "logging_steps": 2,
        "seed": 7,
    }
    values.update(kw)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def trained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("run") / "adapter"
    result = train(tiny_config(tiny_base, out))
    assert result.adapter == out
    return out, result.manifest


def test_training_lowers_train_and_eval_loss(trained: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = trained
    t = manifest["training"]
    assert t["global_step"] == 24
    assert t["eval_loss_history"][0][0] == 0, "eval loss is measured before the first step"
    assert t["eval_loss_last"] < t["eval_loss_first"] - 0.3, t["eval_loss_history"]
    assert t["train_loss_last"] < t["train_loss_first"] - 0.3, t["train_loss_history"]
    assert t["tokens_per_second"] > 0 and t["tokens_this_run"] > 0
    for name in ("adapter_config.json", "adapter_model.safetensors", "nanodex.json"):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "nanodex.json").read_text())
    assert on_disk["dataset"]["train"]["sha256"] == data.file_sha256(TRAIN)
    assert on_disk["dataset"]["eval"]["rows"] == 6
    assert on_disk["base"] == manifest["base"] and on_disk["method"] == "lora"
    assert on_disk["graph"]["commit"] is None  # no graph at that path
    assert not list(out.parent.glob(".adapter.tmp-*")), "temporary output folder left behind"


def test_adapter_saves_loads_and_merges(trained: tuple[Path, dict[str, Any]], tiny_base: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _ = trained
    ids = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 2, 50, 60]])
    base_logits = AutoModelForCausalLM.from_pretrained(tiny_base)(input_ids=ids).logits
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), str(out)).eval()
    with torch.no_grad():
        adapter_logits = model(input_ids=ids).logits
        merged = model.merge_and_unload()
        merged_logits = merged(input_ids=ids).logits
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-3), "the trained adapter changes nothing"
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-4, rtol=1e-4)


def test_resume_continues_from_the_checkpoint_step(tiny_base: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        """Raise at the end of step 3, after checkpoint-2 was written: a run killed mid-way."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 3:
                raise KeyboardInterrupt

    out = tmp_path / "adapter"
    cfg = tiny_config(tiny_base, out, max_steps=6, save_interval=2, eval_interval=0, logging_steps=1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[Crash()])
    assert not out.exists(), "an interrupted run must not leave an adapter folder"
    assert [p.name for p in checkpoints_in(cfg.checkpoints)] == ["checkpoint-2"]

    result = train(cfg, resume=True)
    t = result.manifest["training"]
    assert t["resumed_from_step"] == 2
    assert t["global_step"] == 6
    assert t["steps_this_run"] == 4 and t["first_logged_step_this_run"] == 3, "steps 1-2 must not be repeated"
    # the loss curve covers the whole run: steps 1-2 restored from the checkpoint, 3-6 trained now
    assert [s for s, _ in t["train_loss_history"]] == [1, 2, 3, 4, 5, 6]
    assert (out / "adapter_model.safetensors").is_file()


def test_resume_without_checkpoint_is_a_clear_error(tiny_base: Path, tmp_path: Path) -> None:
    with pytest.raises(NanodexError, match="no checkpoint to resume from"):
        train(tiny_config(tiny_base, tmp_path / "adapter"), resume=True)


def test_packed_batches_do_not_attend_across_examples(tiny_base: Path) -> None:
    """Packed loss (block-diagonal mask from position_ids) equals the loss of each row alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    examples, _ = data.encode_rows(tok, data.load_rows(TRAIN, limit=3), 256)
    blocks = data.pack(examples, 1024, seed=0)
    assert len(blocks) == 1 and sum(len(e.input_ids) for e in examples) == len(blocks[0]["input_ids"])

    def nll_sum(batch: dict[str, torch.Tensor]) -> float:
        # use_cache=False as in training: with a KV cache transformers does not detect packed rows
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
        return float(
            torch.nn.functional.cross_entropy(
                logits[0, :-1], batch["labels"][0, 1:], ignore_index=data.IGNORE, reduction="sum"
            )
        )

    collate = data.Collator(pad_id=tok.pad_token_id)
    with torch.no_grad():
        packed = nll_sum(collate(blocks))
        # in a block, each example's first label predicts from the previous example's last token:
        # that token is masked (prompt), so the per-example sums must add up exactly
        alone = sum(nll_sum(collate(data.as_features([e]))) for e in examples)
    assert packed == pytest.approx(alone, rel=1e-4)


def test_answer_logits_only_gives_the_same_loss_and_gradient(tiny_base: Path) -> None:
    """Logits kept only where an answer token is predicted: the loss and the gradient are the
    full-logits ones, padded and packed batches alike (prompt positions carry IGNORE anyway)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    examples, _ = data.encode_rows(tok, data.load_rows(TRAIN, limit=4), 256)
    for feats in (data.as_features(examples), data.pack(examples, 200, seed=0)):
        full = data.Collator(pad_id=tok.pad_token_id)(feats)
        kept = data.Collator(pad_id=tok.pad_token_id, answer_logits_only=True)(feats)
        answers = int((full["labels"][:, 1:] != data.IGNORE).any(0).sum())
        assert kept["logits_to_keep"].numel() == answers < full["labels"].shape[1]
        results = []
        for batch in (full, kept):
            model.zero_grad()
            out = model(**batch, use_cache=False)
            out.loss.backward()
            assert out.logits.shape[1] == batch.get("logits_to_keep", full["labels"][0]).numel()
            results.append((float(out.loss.detach()), model.lm_head.weight.grad.clone()))
        assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
        assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_labels_cover_exactly_the_answer(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    row = {"id": "x", "prompt": "Where is Cart.add?", "response": "In shop/cart.py [shop/cart.py:10-13]."}
    enc, truncated = data.encode_messages(tok, data.row_messages(row, "Answer with citations."), 512)
    assert not truncated
    answer = tok.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != data.IGNORE])
    assert answer == "In shop/cart.py [shop/cart.py:10-13].<|im_end|>\n"
    prompt = tok.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab == data.IGNORE])
    assert prompt.endswith("<|im_start|>assistant\n") and "Answer with citations." in prompt
    # the masked prefix is token for token what generation is prompted with
    gen = tok.apply_chat_template(
        data.prompt_messages(row, "Answer with citations."), add_generation_prompt=True
    )
    gen_ids = gen["input_ids"] if isinstance(gen, dict) or hasattr(gen, "keys") else gen
    assert enc.input_ids[: len(gen_ids)] == list(gen_ids)


def test_rows_cut_to_nothing_by_max_seq_len_are_dropped(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    examples, stats = data.encode_rows(tok, data.load_rows(TRAIN), 30)
    assert stats.truncated == stats.rows and stats.dropped_no_answer == stats.rows and not examples


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "training dataset not found"),
        ("", "training dataset is empty"),
        ("{bad json\n", "not valid JSON"),
    ],
)
def test_dataset_errors(tiny_base: Path, tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / "train.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(NanodexError, match=match) as err:
        train(tiny_config(tiny_base, tmp_path / "adapter", dataset=str(path)))
    assert "make dataset" in str(err.value)


def test_cli_missing_dataset_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "--dataset",
            str(tmp_path / "nope.jsonl"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NANODEX_CACHE": str(tmp_path / "cache")},
        timeout=300,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"nanodex: error: training dataset not found: {tmp_path / 'nope.jsonl'} "
                     "(fix: run `make dataset` first, or pass DATASET=<file.jsonl>)"]  # fmt: skip
    assert not (tmp_path / "cache").exists(), "no model may be fetched before the dataset is checked"


@pytest.mark.parametrize("module", ["trainer", "trainer.eval"])
def test_help(module: str) -> None:
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "usage:" in proc.stdout


def test_unknown_config_key_and_bad_values(tmp_path: Path) -> None:
    from nanodex.config import load_config

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("lora_rnak: 8\n")
    with pytest.raises(NanodexError, match="unknown config key 'lora_rnak'"):
        load_config(TrainConfig, cfg_file)
    with pytest.raises(NanodexError, match="bits must be 4, 8, 16 or 32"):
        TrainConfig(bits=3).validate()
    for name in ("train_lora.yaml", "train_qlora.yaml"):  # the shipped configs load and validate
        load_config(TrainConfig, ROOT / "config" / name).validate()


def test_qlora_where_bitsandbytes_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # bitsandbytes does run on this CPU, so its failure is simulated: quantization raising like a
    # build without a backend for this device does.
    import bitsandbytes.functional as bnbf

    from trainer.model import check_bitsandbytes

    check_bitsandbytes(4, torch.float32)  # the real probe passes here

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no kernel image is available for this device")

    monkeypatch.setattr(bnbf, "quantize_4bit", broken)
    with pytest.raises(NanodexError, match="bitsandbytes cannot run 4-bit layers") as err:
        check_bitsandbytes(4, torch.float32)
    assert "train_lora.yaml" in str(err.value)


def test_out_of_memory_names_the_knobs() -> None:
    # A real allocation failure cannot be provoked safely here; the classifier sees the real messages.
    assert _is_oom(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    )
    assert _is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not _is_oom(RuntimeError("shape mismatch"))
    text = str(_oom_error(TrainConfig(batch_size=16, max_seq_len=2048), "training"))
    assert "batch_size=16" in text and "max_seq_len=2048" in text and "lower batch_size" in text


def test_eval_reports_and_manifest(
    trained: tuple[Path, dict[str, Any]], tiny_base: Path, tmp_path: Path
) -> None:
    from trainer.eval import evaluate
    from trainer.manifest import read_manifest

    out, _ = trained
    report = evaluate(
        adapter=out,
        dataset=str(EVAL),
        base=str(tiny_base),
        out=tmp_path / "ev",
        max_new_tokens=12,
        batch_size=4,
    )
    m = report["metrics"]
    assert report["rows"] == 6 and len(report["examples"]) == 5
    for side in ("base", "adapter"):
        assert m[side]["answers"] == 6 and m[side]["answer_tokens"] > 0
    # the adapter was trained on the same shop facts: reference answers must be likelier with it
    assert m["adapter"]["answer_perplexity"] < m["base"]["answer_perplexity"]
    for name in ("report.json", "report.md", "loss.png"):
        assert (tmp_path / "ev" / name).stat().st_size > 0, name
    assert (tmp_path / "ev" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = read_manifest(out)
    assert manifest["eval"]["metrics"] == m and manifest["training"]["global_step"] == 24


@pytest.mark.slow
def test_qlora_steps_on_embedded_smollm2(tmp_path: Path) -> None:
    """A few real QLoRA steps (bitsandbytes NF4, fp32 compute on CPU) on SmolLM2-135M."""
    from transformers import TrainerCallback

    seen: dict[str, Any] = {}

    class Inspect(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            import bitsandbytes as bnb

            seen["4bit"] = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())

    out = tmp_path / "qlora"
    cfg = TrainConfig(
        dataset=str(TRAIN),
        eval_dataset=str(EVAL),
        save_dir=str(out),
        bits=4,
        batch_size=4,
        max_steps=3,
        max_seq_len=192,
        learning_rate=5e-4,
        eval_interval=3,
        eval_rows=4,
        logging_steps=1,
    )
    result = train(cfg, callbacks=[Inspect()])
    t = result.manifest["training"]
    assert seen["4bit"] == 30 * 7, "every targeted projection of the 30 layers is a 4-bit layer"
    assert t["global_step"] == 3 and result.manifest["bits"] == 4
    assert t["eval_loss_last"] < t["eval_loss_first"], t["eval_loss_history"]
    assert (out / "adapter_model.safetensors").is_file()
