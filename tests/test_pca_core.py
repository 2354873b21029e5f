"""pca_otf model-side core: target shapes, program embedding, adapter synthesis, in-place mixing.

Models are tiny ones built in code from transformers configs (Llama with GQA, Qwen2, GPT-2) with
random weights: what is tested is arithmetic on real nn.Linear / Conv1D modules and real PEFT
loading, which does not depend on trained weights. The embedding runs on the real SQLite graph
of the Python fixture (built with Tree-sitter here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config

from nanodex.errors import NanodexError
from pca_otf import mix
from pca_otf.bank import BankChoice, add_bank, load_bank, select
from pca_otf.embedding import EmbedConfig, Embedding, EmbedIndex, cosine, embed_program, subwords
from pca_otf.manifest import sha256_file
from pca_otf.program_graph import SqliteProgramGraph
from pca_otf.shapes import infer_target_shapes, parse_shape_overrides
from pca_otf.synth import (
    AdapterSet,
    CapacityStats,
    SynthConfig,
    capacity_for,
    capacity_stats,
    random_like,
    rank_plan,
    synthesize,
    synthesize_cones,
)
from tests.conftest import FIXTURES, build_graph

LLAMA = LlamaConfig(
    vocab_size=96,
    hidden_size=64,
    intermediate_size=112,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)
GPT2 = GPT2Config(
    vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0
)


def unit(dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def tiny(config, cls) -> torch.nn.Module:
    torch.manual_seed(0)
    return cls(config).eval()


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> SqliteProgramGraph:
    tmp = tmp_path_factory.mktemp("pcacore")
    shutil.copytree(FIXTURES / "python", tmp / "repo")
    build_graph(tmp / "repo", tmp / "graph.sqlite", ["python"])
    return SqliteProgramGraph(tmp / "graph.sqlite")


# ---- shapes ---------------------------------------------------------------------------------------


def test_shapes_llama_gqa() -> None:
    s = infer_target_shapes(LLAMA)
    assert {k: (v.in_features, v.out_features) for k, v in s.items()} == {
        "q": (64, 64),
        "k": (64, 32),  # 2 kv heads x head_dim 16
        "v": (64, 32),
        "o": (64, 64),
        "gate": (64, 112),
        "up": (64, 112),
        "down": (112, 64),
    }
    assert s["k"].module_name(2) == "model.layers.2.self_attn.k_proj"
    assert s["down"].n_layers == 3
    # the shapes name modules that exist with exactly these sizes
    model = tiny(LLAMA, LlamaForCausalLM)
    for shape in s.values():
        w = model.get_submodule(shape.module_name(1)).weight
        assert tuple(w.shape) == (shape.out_features, shape.in_features)


def test_shapes_qwen2_and_explicit_head_dim() -> None:
    cfg = Qwen2Config(
        vocab_size=64,
        hidden_size=96,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
    )
    s = infer_target_shapes(cfg, targets=("q", "k", "down"))
    assert set(s) == {"q", "k", "down"}
    assert (s["k"].in_features, s["k"].out_features) == (96, 32)
    assert s["q"].suffix == "self_attn.q_proj"
    # SmolLM2-style config as a dict: head_dim given explicitly, 9 heads / 3 kv heads
    smol = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9}
    smol |= {"num_key_value_heads": 3, "head_dim": 64, "intermediate_size": 1536}
    s2 = infer_target_shapes(smol)
    assert (s2["v"].out_features, s2["o"].in_features, s2["up"].out_features) == (192, 576, 1536)


def test_shapes_gpt2_fused_and_transposed() -> None:
    s = infer_target_shapes(GPT2)
    assert "gate" not in s  # GPT-2 has no gate projection
    assert [s[t].out_offset for t in ("q", "k", "v")] == [0, 32, 64]
    assert all(s[t].module_out == 96 and s[t].suffix == "attn.c_attn" for t in ("q", "k", "v"))
    assert (s["up"].in_features, s["up"].out_features, s["down"].in_features) == (32, 128, 128)
    assert s["o"].module_name(1) == "transformer.h.1.attn.c_proj" and s["o"].conv1d
    model = tiny(GPT2, GPT2LMHeadModel)
    w = model.get_submodule(s["up"].module_name(0)).weight
    assert tuple(w.shape) == (32, 128)  # Conv1D: (in, out)


def test_shape_overrides_and_errors() -> None:
    s = infer_target_shapes(LLAMA, overrides="k=64x48")
    assert s["k"].out_features == 48
    assert parse_shape_overrides({"q": [8, 16]}) == {"q": (8, 16)}
    with pytest.raises(NanodexError, match="unknown adapter target"):
        infer_target_shapes(LLAMA, targets=("q", "qq"))
    with pytest.raises(NanodexError, match="no known adapter layout"):
        infer_target_shapes({"model_type": "t5", "d_model": 8, "num_layers": 2, "num_heads": 2})
    with pytest.raises(NanodexError, match="bad target shape"):
        parse_shape_overrides("k:64x48")


# ---- embedding ------------------------------------------------------------------------------------


def test_subwords() -> None:
    assert subwords("parse_HTTPResponse2") == ["parse", "http", "response", "2"]


def test_embedding_deterministic_bytes(pg: SqliteProgramGraph, tmp_path: Path) -> None:
    cfg = EmbedConfig(embed_dim=256, include_text=True)
    a = embed_program(pg, cfg)
    b = embed_program(pg, EmbedConfig(embed_dim=256, include_text=True))
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b.npz")
    assert sha256_file(tmp_path / "a.npz") == sha256_file(tmp_path / "b.npz")
    assert a.z.dtype == np.float32 and abs(float(np.linalg.norm(a.z)) - 1.0) < 1e-5
    assert set(a.channels) == {"symbols", "docs", "modules", "topology", "text"}
    back = Embedding.load(tmp_path / "a.npz")
    assert np.array_equal(back.z, a.z) and back.meta == a.meta
    # another seed hashes differently
    c = embed_program(pg, EmbedConfig(embed_dim=256, include_text=True, seed=1))
    assert not np.array_equal(c.z, a.z)


def test_embedding_regions_are_distinct_and_stable(pg: SqliteProgramGraph) -> None:
    idx = EmbedIndex(pg)
    ents = list(pg.entities())
    cart = [e.id for e in ents if e.path == "shop/cart.py"]
    pricing = [e.id for e in ents if e.path == "shop/pricing.py"]
    cfg = EmbedConfig(embed_dim=512)
    zc = embed_program(pg, cfg, cart, index=idx).z
    zp = embed_program(pg, cfg, pricing, index=idx).z
    zc_minus = embed_program(pg, cfg, cart[:-1], index=idx).z
    # a region is much closer to itself minus one member than to another file's region
    assert cosine(zc, zc_minus) > cosine(zc, zp) + 0.3
    # the index is only a cache: same vector without it
    assert np.array_equal(embed_program(pg, cfg, cart).z, zc)
    with pytest.raises(NanodexError, match="holds no entity"):
        embed_program(pg, cfg, ["no/such.py::x"])
    assert embed_program(pg, cfg, [*cart, "no/such.py::x"], index=idx).meta["missing_ids"] == 1


def test_embedding_propagation_and_budgets(pg: SqliteProgramGraph) -> None:
    idx = EmbedIndex(pg)
    one = ["shop/cart.py::Cart.checkout"]
    no_prop = embed_program(pg, EmbedConfig(graph_prop_hops=0), one, index=idx)
    prop = embed_program(pg, EmbedConfig(graph_prop_hops=2), one, index=idx)
    # propagation reaches the neighbours: more topology features, symbols untouched
    assert prop.meta["features"]["topology"] > no_prop.meta["features"]["topology"]
    assert np.array_equal(prop.channels["symbols"], no_prop.channels["symbols"])
    small = embed_program(pg, EmbedConfig(channel_budgets={"symbols": 3}), index=idx)
    assert small.meta["features"]["symbols"] == 3
    text = embed_program(pg, EmbedConfig(include_text=True, max_text_tokens=10), index=idx)
    assert text.meta["text"]["tokens"] <= 10
    with pytest.raises(NanodexError, match="unknown embedding channel"):
        embed_program(pg, EmbedConfig(channel_weights={"sym": 1.0}), index=idx)


# ---- synthesis ------------------------------------------------------------------------------------


def test_synthesis_deterministic_and_z_dependent(tmp_path: Path) -> None:
    shapes = infer_target_shapes(LLAMA)
    cfg = SynthConfig(rank=4)
    a = synthesize(unit(128, 0), shapes, cfg)
    b = synthesize(unit(128, 0), shapes, SynthConfig(rank=4))
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b.npz")
    assert sha256_file(tmp_path / "a.npz") == sha256_file(tmp_path / "b.npz")
    back = AdapterSet.load(tmp_path / "a.npz")
    assert back.pairs.keys() == a.pairs.keys()
    assert all(np.array_equal(back.pairs[k].A, a.pairs[k].A) for k in a.pairs)
    c = synthesize(unit(128, 1), shapes, cfg)
    assert not np.allclose(c.pairs[(0, "q")].A, a.pairs[(0, "q")].A)
    # a nearby z gives a nearby adapter (smooth in z), a far one does not
    near = unit(128, 0) + 0.05 * unit(128, 1)
    d = synthesize(near / np.linalg.norm(near), shapes, cfg)
    da, dd, dc = (s.pairs[(1, "v")].delta() for s in (a, d, c))
    assert np.linalg.norm(da - dd) < 0.5 * np.linalg.norm(da - dc)
    # every pair's delta has the configured norm: delta_rms * sqrt(in * out)
    q = a.pairs[(0, "q")]
    assert q.delta_norm() == pytest.approx(1e-3 * 64, rel=1e-4)
    assert np.linalg.norm(q.delta()) == pytest.approx(q.delta_norm(), rel=1e-4)


def test_synthesis_knobs() -> None:
    shapes = infer_target_shapes(LLAMA)
    z = unit(64, 3)
    base = synthesize(z, shapes, SynthConfig(rank=4))
    know = synthesize(z, shapes, SynthConfig(rank=4, knowledge_preset=True))
    assert know.pairs[(0, "down")].delta_norm() == pytest.approx(
        1.5 * base.pairs[(0, "down")].delta_norm(), rel=1e-4
    )
    assert know.pairs[(0, "q")].delta_norm() == pytest.approx(base.pairs[(0, "q")].delta_norm(), rel=1e-4)
    late = synthesize(z, shapes, SynthConfig(rank=4, layer_schedule="late"))
    assert not any(layer == 0 for layer, _t in late.pairs)
    tiers = synthesize(
        z, shapes, SynthConfig(rank=4, layer_rank_tiers="0.5:2,1.0:6", per_target_rank_schedule={"v": 3})
    )
    assert (
        tiers.pairs[(0, "q")].rank == 2
        and tiers.pairs[(2, "q")].rank == 6
        and tiers.pairs[(2, "v")].rank == 3
    )
    budget = rank_plan(shapes, SynthConfig(rank=8, rank_budget=42))
    assert sum(budget.values()) <= 42
    rounded = synthesize(z, shapes, SynthConfig(rank=4, round_lora=True, round_threshold=0.5))
    A = rounded.pairs[(1, "o")].A
    assert len(np.unique(A)) < A.size / 4  # snapped to a coarse grid
    weights = synthesize(z, shapes, SynthConfig(rank=4, target_weights={"k": 0.0}))
    assert not any(t == "k" for _l, t in weights.pairs)
    with pytest.raises(NanodexError, match="kbann_priors needs"):
        synthesize(z, shapes, SynthConfig(kbann_priors=True))
    stats = CapacityStats(n_nodes=10, mean_fan_in=2.0, question_bits=4.0, n_relations=40, n_documented=0)
    kb = synthesize(z, shapes, SynthConfig(rank=4, kbann_priors=True), capacity_for(stats))
    # dense relations, no docs: attention weighted up, MLP down
    ratio = kb.pairs[(0, "q")].delta_norm() / kb.pairs[(0, "up")].delta_norm() / np.sqrt(64 / 112)
    assert ratio == pytest.approx((0.75 + 0.5 * 4 / 5) / 0.75, rel=1e-4)  # rho = 4 relations per node


def test_capacity_scales_with_region_and_question() -> None:
    rels = [("a", "b", "calls"), ("c", "b", "calls"), ("b", "d", "imports"), ("a", "m", "defined_in")]
    st = capacity_stats(["b", "d"], rels, "where is b called?")
    assert st.n_nodes == 2 and st.mean_fan_in == 1.5  # 3 edges into {b, d}, defined_in ignored
    small = capacity_for(CapacityStats(n_nodes=1, mean_fan_in=0.0, question_bits=1.0))
    big = capacity_for(CapacityStats(n_nodes=200, mean_fan_in=6.0, question_bits=5.5))
    assert small.rank_scale < 1.0 < big.rank_scale <= 2.0
    assert small.gsub_scale < big.gsub_scale and 0.0 <= big.gsub(0.9) <= 1.0
    shapes = infer_target_shapes(LLAMA)
    z = unit(64, 2)
    assert (
        synthesize(z, shapes, SynthConfig(rank=4), big).total_rank()
        > synthesize(z, shapes, SynthConfig(rank=4), small).total_rank()
    )


# ---- mixing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_apply_then_remove_restores_bits(arch: str) -> None:
    config, cls = (LLAMA, LlamaForCausalLM) if arch == "llama" else (GPT2, GPT2LMHeadModel)
    model = tiny(config, cls)
    shapes = infer_target_shapes(config)
    aset = synthesize(unit(64, 0), shapes, SynthConfig(rank=4, delta_rms=0.02))
    before = snapshot(model)
    x = torch.randint(0, 90, (1, 9))
    with torch.no_grad():
        base = model(x).logits
        with mix.mixed(model, aset, gsub=0.8) as h:
            adapted = model(x).logits
            assert h.info()["modules"] == len(
                {s.module_name(i) for s in shapes.values() for i in range(s.n_layers)}
            )
            changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
            assert changed and all(("proj" in k or "c_" in k) for k in changed)
    assert (adapted - base).abs().max() > 1e-3  # the adapter changes the output
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_in_place_delta_matches_the_adapter_set() -> None:
    model = tiny(LLAMA, LlamaForCausalLM)
    shapes = infer_target_shapes(LLAMA)
    aset = synthesize(unit(64, 4), shapes, SynthConfig(rank=3))
    name = shapes["k"].module_name(1)
    w0 = model.get_submodule(name).weight.detach().clone()
    h = mix.apply(model, aset, gsub=0.5, alpha_scale=2.0)
    got = model.get_submodule(name).weight.detach() - w0
    assert torch.allclose(got, torch.from_numpy(aset.pairs[(1, "k")].delta()), atol=1e-6)
    h.remove()
    # blend with a program-wide set: gsub * sub + (1 - gsub) * program
    prog = synthesize(unit(64, 5), shapes, SynthConfig(rank=3))
    h = mix.apply(model, aset, gsub=0.25, program_set=prog)
    got = model.get_submodule(name).weight.detach() - w0
    want = 0.25 * aset.pairs[(1, "k")].delta() + 0.75 * prog.pairs[(1, "k")].delta()
    assert torch.allclose(got, torch.from_numpy(want), atol=1e-6)
    h.remove()
    assert torch.equal(model.get_submodule(name).weight, w0)


def test_delta_cap_holds() -> None:
    model = tiny(LLAMA, LlamaForCausalLM)
    shapes = infer_target_shapes(LLAMA)
    aset = synthesize(unit(64, 0), shapes, SynthConfig(rank=4, delta_rms=0.05))
    before = snapshot(model)
    names = sorted({s.module_name(i) for s in shapes.values() for i in range(s.n_layers)})
    originals = {n: before[f"{n}.weight"] for n in names}
    free = mix.apply(model, aset)
    uncapped = mix.total_delta_norm(model, originals, names)
    free.remove()
    cap = uncapped / 4
    h = mix.apply(model, aset, delta_cap=cap)
    assert h.cap_factor == pytest.approx(0.25, rel=1e-3)
    assert mix.total_delta_norm(model, originals, names) <= cap * (1 + 1e-4)
    h.remove()
    # a cap above the norm changes nothing
    h = mix.apply(model, aset, delta_cap=uncapped * 2)
    assert h.cap_factor == 1.0
    h.remove()
    assert mix.env_delta_cap({"NANODEX_DELTA_CAP": "0.5"}) == 0.5
    assert mix.env_delta_cap({}) is None
    with pytest.raises(NanodexError, match="bad delta cap"):
        mix.env_delta_cap({"NANODEX_DELTA_CAP": "lots"})


def test_alpha_warmup_and_suspend() -> None:
    model = tiny(LLAMA, LlamaForCausalLM)
    shapes = infer_target_shapes(LLAMA)
    aset = synthesize(unit(64, 0), shapes, SynthConfig(rank=4, delta_rms=0.02))
    before = snapshot(model)
    h = mix.apply(model, aset)
    full = h.delta_norm
    warm = mix.AlphaWarmup(h, 4)
    assert h.scale == 0.25 and h.delta_norm == pytest.approx(full / 4)
    for _ in range(5):
        warm.step()
    assert h.scale == 1.0
    mixed_weights = snapshot(model)
    with h.suspended():
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(v, mixed_weights[k]) for k, v in model.state_dict().items())
    h.remove()
    h.remove()  # idempotent
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_wrong_shapes_refused_before_touching_the_model() -> None:
    model = tiny(LLAMA, LlamaForCausalLM)
    before = snapshot(model)
    other = infer_target_shapes(LLAMA, overrides="k=64x48")
    with pytest.raises(NanodexError, match="adapters built for this base model"):
        mix.apply(model, synthesize(unit(32, 0), other, SynthConfig(rank=2)))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_peft_export_equals_in_place_mixing(arch: str, tmp_path: Path) -> None:
    from peft import PeftModel

    config, cls = (LLAMA, LlamaForCausalLM) if arch == "llama" else (GPT2, GPT2LMHeadModel)
    shapes = infer_target_shapes(config)
    aset = synthesize(
        unit(64, 7), shapes, SynthConfig(rank=4, delta_rms=0.03, layer_rank_tiers="0.5:2,1.0:4")
    )
    x = torch.randint(0, 90, (2, 11))
    model = tiny(config, cls)
    with torch.no_grad(), mix.mixed(model, aset, gsub=0.7):
        in_place = model(x).logits
    aset.to_peft(tmp_path / "peft", "tiny-test-model", scale=0.7)
    assert (tmp_path / "peft" / "adapter_config.json").is_file()
    peft_model = PeftModel.from_pretrained(tiny(config, cls), tmp_path / "peft").eval()
    with torch.no_grad():
        via_peft = peft_model(x).logits
        base = tiny(config, cls)(x).logits
    assert (in_place - base).abs().max() > 1e-3
    assert torch.allclose(via_peft, in_place, atol=1e-4, rtol=1e-4)


def test_random_like_matches_norms() -> None:
    shapes = infer_target_shapes(LLAMA)
    a = synthesize(unit(64, 0), shapes, SynthConfig(rank=4))
    r = random_like(a, seed=11)
    assert r.pairs.keys() == a.pairs.keys()
    for k in a.pairs:
        assert r.pairs[k].delta_norm() == pytest.approx(a.pairs[k].delta_norm(), rel=1e-4)
        assert not np.allclose(r.pairs[k].A, a.pairs[k].A)


# ---- adapters bank and cones ----------------------------------------------------------------------


def _peft_adapter(folder: Path, region: dict | None, seed: int) -> None:
    """A real PEFT LoRA (random non-zero B, per-module rank/alpha patterns) saved by PEFT itself."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "down_proj"],
        rank_pattern={"down_proj": 2},
        alpha_pattern={"down_proj": 6},
        init_lora_weights=False,
    )
    peft_model = get_peft_model(tiny(LLAMA, LlamaForCausalLM), cfg)
    peft_model.save_pretrained(folder)
    if region is not None:
        (folder / "nanodex.json").write_text(json.dumps({"region": region}))


def test_bank_mix_equals_peft_and_selects_by_region(pg: SqliteProgramGraph, tmp_path: Path) -> None:
    from peft import PeftModel

    ents = list(pg.entities())
    cart = sorted(e.id for e in ents if e.path == "shop/cart.py")
    bank_dir = tmp_path / "bank"
    _peft_adapter(bank_dir / "cart", {"node_ids": cart}, seed=1)
    _peft_adapter(bank_dir / "pricing", {"paths": ["shop/pricing.py"]}, seed=2)
    _peft_adapter(bank_dir / "whole", None, seed=3)
    bank = load_bank(bank_dir)
    assert [a.name for a in bank] == ["cart", "pricing", "whole"]
    assert bank[2].whole_program and not bank[0].whole_program
    # scaling read from the patterns: down_proj uses rank 2 and alpha 6
    factors = bank[0].factors()
    assert factors["model.layers.0.mlp.down_proj"][0].shape[0] == 2

    cfg = EmbedConfig(embed_dim=256)
    idx = EmbedIndex(pg)
    zq = embed_program(pg, cfg, [i for i in cart if "checkout" in i or "add" in i], index=idx).z
    choices = select(bank, zq, pg, 2, embed_cfg=cfg, index=idx)
    assert choices[0].adapter.name == "cart"
    assert len(choices) == 2 and sum(c.weight for c in choices) == pytest.approx(1.0)
    assert choices[0].weight > choices[1].weight

    # mixing one bank adapter in place gives the logits PEFT computes for it
    model = tiny(LLAMA, LlamaForCausalLM)
    before = snapshot(model)
    x = torch.randint(0, 90, (1, 8))
    one = [BankChoice(bank[0], 1.0, 1.0)]
    h = mix.MixHandle(model, add_bank(mix.Mixture(), one), delta_cap=None)
    with torch.no_grad():
        in_place = model(x).logits
    h.remove()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    peft_model = PeftModel.from_pretrained(tiny(LLAMA, LlamaForCausalLM), bank_dir / "cart").eval()
    with torch.no_grad():
        assert torch.allclose(peft_model(x).logits, in_place, atol=1e-4, rtol=1e-4)

    # bank + synthesized adapter under one handle and one cap
    shapes = infer_target_shapes(LLAMA)
    aset = synthesize(zq, shapes, SynthConfig(rank=2))
    extra = add_bank(mix.Mixture(), choices)
    h = mix.apply(model, aset, extra=extra, delta_cap=0.5)
    assert h.info()["terms"]["subgraph"] > 0 and any(k.startswith("bank:") for k in h.info()["terms"])
    assert h.delta_norm <= 0.5 + 1e-9
    h.remove()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_bank_errors(tmp_path: Path) -> None:
    with pytest.raises(NanodexError, match="not found"):
        load_bank(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NanodexError, match="holds no PEFT adapter"):
        load_bank(tmp_path / "empty")


def test_cones(pg: SqliteProgramGraph) -> None:
    shapes = infer_target_shapes(LLAMA)
    windows = [
        ["shop/cart.py::Cart.checkout"],
        ["shop/pricing.py::total", "shop/pricing.py::total.each"],
        ["gone"],
    ]
    cones = synthesize_cones(
        pg, windows, shapes, embed_cfg=EmbedConfig(embed_dim=128), synth_cfg=SynthConfig(rank=8), rank=2
    )
    assert len(cones) == 2  # the unknown window is skipped
    assert all(p.rank == 2 for c in cones for p in c.pairs.values())
    assert cones[0].meta["window"] == ["shop/cart.py::Cart.checkout"]
    model = tiny(LLAMA, LlamaForCausalLM)
    before = snapshot(model)
    mixture = mix.add_cones(mix.Mixture(), cones, weight=0.25)
    assert {t.weight for t in mixture.terms} == {0.125}
    h = mix.MixHandle(model, mixture)
    h.remove()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_weight_snapshot_reused_across_mixes() -> None:
    model = tiny(LLAMA, LlamaForCausalLM)
    shapes = infer_target_shapes(LLAMA)
    before = snapshot(model)
    snap = mix.WeightSnapshot()
    first = mix.apply(model, synthesize(unit(64, 0), shapes, SynthConfig(rank=2)), snapshot=snap)
    with pytest.raises(NanodexError, match="still applied"):
        mix.apply(model, synthesize(unit(64, 1), shapes, SynthConfig(rank=2)), snapshot=snap)
    first.remove()
    kept = dict(snap._tensors)
    second = mix.apply(model, synthesize(unit(64, 1), shapes, SynthConfig(rank=2)), snapshot=snap)
    assert all(snap._tensors[k] is v for k, v in kept.items())  # cloned once, reused
    assert not torch.equal(
        model.state_dict()["model.layers.0.self_attn.q_proj.weight"],
        before["model.layers.0.self_attn.q_proj.weight"],
    )
    second.remove()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_bfloat16_model_mixes_and_restores_exactly() -> None:
    model = tiny(LLAMA, LlamaForCausalLM).to(torch.bfloat16)
    shapes = infer_target_shapes(LLAMA)
    aset = synthesize(unit(64, 0), shapes, SynthConfig(rank=4, delta_rms=0.02))
    before = snapshot(model)
    name = shapes["up"].module_name(2)
    with mix.mixed(model, aset):
        got = model.get_submodule(name).weight.float() - before[f"{name}.weight"].float()
        want = torch.from_numpy(aset.pairs[(2, "up")].delta())
        # bf16 keeps ~3 significant digits of W0 + delta: the delta survives within a few percent
        assert torch.linalg.norm(got - want) < 0.05 * torch.linalg.norm(want)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
