"""`python -m pca_otf.build` on the Python fixture's real graph with the embedded SmolLM2's config.

Only the base's config.json is read (no weights are loaded), so these tests stay fast. They check
the build as a cache: identical bytes for identical inputs, a no-op rebuild, a rebuild when a
knob changes, manifest hashes that match the files and catch tampering, and windows whose byte
offsets point at the right code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from nanodex.errors import NanodexError
from pca_otf.artifacts import ARTIFACT_FILES, Artifacts
from pca_otf.build import main
from pca_otf.manifest import sha256_file
from pca_otf.program_graph import SqliteProgramGraph
from pca_otf.synth import AdapterSet
from tests.conftest import FIXTURES, build_graph

BASE = "embedded:smollm2-135m"
SMALL = ["--embed-dim", "128", "--rank", "2", "--self-queries", "40"]


@pytest.fixture(scope="module")
def repo_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("pcabuild")
    repo = tmp / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    graph = tmp / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    return repo, graph


def run_build(graph: Path, out: Path, *extra: str, capsys: pytest.CaptureFixture | None = None) -> str:
    assert main(["--graph", str(graph), "--base", BASE, "--out", str(out), *SMALL, *extra]) == 0
    return capsys.readouterr().out if capsys else ""


def without_created_at(path: Path) -> dict:
    m = json.loads(path.read_text())
    m.pop("created_at")
    return m


def test_build_writes_every_artifact_and_hashes_match(repo_graph: tuple[Path, Path], tmp_path: Path) -> None:
    _repo, graph = repo_graph
    out = tmp_path / "pca"
    run_build(graph, out)
    art = Artifacts(out)
    m = art.manifest
    for name in ARTIFACT_FILES:
        assert m["artifacts"][name]["sha256"] == sha256_file(out / name)
    # model dims come from SmolLM2's config.json: GQA k/v of 3 heads x 64
    assert (m["base"]["n_layers"], m["base"]["hidden_size"], m["base"]["n_kv_heads"]) == (30, 576, 3)
    assert art.shapes["k"].out_features == 192 and art.shapes["down"].in_features == 1536
    assert m["graph"]["counts"]["entities"] == 27 and m["rank"] == 2
    assert m["targets"] == sorted(["q", "k", "v", "o", "gate", "up", "down"])
    adapters = art.adapters()
    assert isinstance(adapters, AdapterSet) and len(adapters.pairs) == 30 * 7
    assert art.embedding().dim == 128 and art.embed_config().embed_dim == 128
    assert art.synth_config().rank == 2
    ids = {s["id"] for s in art.symbols()}
    assert "shop/cart.py::Cart.checkout" in ids
    assert len(art.self_queries()) == 40
    assert all(q["refs"] and q["citations"] for q in art.self_queries())
    assert {s["path"] for s in art.sources()} >= {"shop/cart.py", "shop/pricing.py"}
    rr_ids, names, feats, sketch = art.rerank()
    assert len(rr_ids) == feats.shape[0] == sketch.shape[0] == 27 and feats.shape[1] == len(names)
    facts = art.facts()
    assert any(
        f["predicate"] == "raises" or f["predicate"] == "throws"
        for f in facts
        if f["subject_id"] == "shop/cart.py::Cart.checkout"
    )


def test_windows_point_at_the_code(repo_graph: tuple[Path, Path], tmp_path: Path) -> None:
    repo, graph = repo_graph
    out = tmp_path / "pca"
    run_build(graph, out, "--window-lines", "3")
    windows = {w["id"]: w for w in Artifacts(out).windows()}
    for w in windows.values():
        data = (repo / w["path"]).read_bytes()[w["byte_start"] : w["byte_end"]]
        assert hashlib.sha256(data).hexdigest() == w["sha256"]
        lines = (repo / w["path"]).read_text().splitlines()[w["start_line"] - 1 : w["end_line"]]
        assert data.decode() == "\n".join(lines)
    cart = windows["shop/cart.py::Cart"]  # class spanning lines 6-21, capped at 3 lines
    assert (cart["start_line"], cart["end_line"], cart["truncated"]) == (6, 8, True)
    assert windows["shop/cart.py"]["kind"] == "head"


def test_same_inputs_give_identical_bytes(repo_graph: tuple[Path, Path], tmp_path: Path) -> None:
    _repo, graph = repo_graph
    run_build(graph, tmp_path / "a", "--include-text")
    run_build(graph, tmp_path / "b", "--include-text")
    for name in ARTIFACT_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert without_created_at(tmp_path / "a" / "manifest.json") == without_created_at(
        tmp_path / "b" / "manifest.json"
    )


def test_rebuild_is_a_noop_until_inputs_change(
    repo_graph: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _repo, graph = repo_graph
    out = tmp_path / "pca"
    assert "built" in run_build(graph, out, capsys=capsys)
    before = {n: (out / n).stat().st_mtime_ns for n in [*ARTIFACT_FILES, "manifest.json"]}
    assert "up to date" in run_build(graph, out, capsys=capsys)
    assert before == {n: (out / n).stat().st_mtime_ns for n in before}
    # a changed knob rebuilds, and the manifest records it
    assert "built" in run_build(graph, out, "--knowledge-preset", capsys=capsys)
    assert Artifacts(out).manifest["target_weights"]["down"] == 1.5
    # a tampered artifact fails verification in one line; the next build repairs it
    with open(out / "facts.jsonl", "a") as fh:
        fh.write("{}\n")
    with pytest.raises(NanodexError, match="does not match its manifest hash"):
        Artifacts(out)
    assert "built" in run_build(graph, out, "--knowledge-preset", capsys=capsys)
    Artifacts(out)


def test_graph_change_rebuilds(
    repo_graph: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    repo, _graph = repo_graph
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    graph = tmp_path / "g.sqlite"
    build_graph(copy, graph, ["python"])
    out = tmp_path / "pca"
    run_build(graph, out)
    first = Artifacts(out)
    z0 = first.embedding().z
    (copy / "shop" / "extra.py").write_text(
        'def refund(order):\n    """Give the money back."""\n    return order\n'
    )
    build_graph(copy, graph, ["python"])
    assert "built" in run_build(graph, out, capsys=capsys)
    second = Artifacts(out)
    assert second.tree != first.tree and second.manifest["graph"]["counts"]["entities"] == 29
    assert not (second.embedding().z == z0).all()
    with SqliteProgramGraph(graph) as pg:
        second.check_graph(pg)
        with pytest.raises(NanodexError, match="code graph changed"):
            first.check_graph(pg)


def test_check_base_and_peft_export(repo_graph: tuple[Path, Path], tmp_path: Path) -> None:
    _repo, graph = repo_graph
    out = tmp_path / "pca"
    run_build(graph, out, "--export-peft")
    art = Artifacts(out)
    peft_dir = art.peft_dir()
    assert peft_dir is not None and "peft/adapter_model.safetensors" in art.manifest["artifacts"]
    cfg = json.loads((peft_dir / "adapter_config.json").read_text())
    assert cfg["r"] == 2 and cfg["target_modules"] == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    art.check_base({"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
                    "num_key_value_heads": 3, "head_dim": 64, "intermediate_size": 1536})  # fmt: skip
    with pytest.raises(NanodexError, match="layer shapes differ"):
        art.check_base(
            {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
        )


def test_cli_errors(tmp_path: Path, repo_graph: tuple[Path, Path]) -> None:
    _repo, graph = repo_graph
    with pytest.raises(NanodexError, match="graph not found"):
        main(["--graph", str(tmp_path / "none.sqlite"), "--base", BASE, "--out", str(tmp_path / "o")])
    with pytest.raises(NanodexError, match="unknown layer schedule"):
        main(
            [
                "--graph",
                str(graph),
                "--base",
                BASE,
                "--out",
                str(tmp_path / "o"),
                "--layer-schedule",
                "zigzag",
            ]
        )
    assert not (tmp_path / "o").exists()  # nothing half-written
    with pytest.raises(NanodexError, match="no pca_otf build"):
        Artifacts(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


@pytest.mark.slow
def test_smollm2_peft_export_equals_in_place_and_restores(
    repo_graph: tuple[Path, Path], tmp_path: Path
) -> None:
    """On the real embedded SmolLM2: the build's program adapter mixed in place gives the logits
    PEFT computes from the exported folder, and removal restores all 135M weights bit for bit."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from nanodex.models import resolve_model
    from pca_otf import mix

    _repo, graph = repo_graph
    out = tmp_path / "pca"
    run_build(graph, out, "--export-peft", "--delta-rms", "0.004")
    art = Artifacts(out)
    folder = resolve_model(BASE)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    art.check_base(model.config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.tensor([[1, 504, 3158, 42, 7, 900, 12, 77]])
    with torch.no_grad():
        base = model(x).logits
        with mix.mixed(model, art.adapters()) as handle:
            in_place = model(x).logits
            assert handle.info()["modules"] == 30 * 7
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert (in_place - base).abs().max() > 1e-3
    peft_model = PeftModel.from_pretrained(model, art.peft_dir()).eval()
    with torch.no_grad():
        via_peft = peft_model(x).logits
    assert torch.allclose(via_peft, in_place, atol=2e-3, rtol=1e-3), (via_peft - in_place).abs().max()


def test_flags_override_config(tmp_path: Path) -> None:
    from nanodex.flags import load_from_args
    from pca_otf.build import build_parser

    yaml_file = tmp_path / "pca.yaml"
    yaml_file.write_text(
        "build:\n  synth:\n    rank: 6\n    layer_schedule: linear\n  embed:\n    embed_dim: 64\n"
    )
    args = build_parser().parse_args(
        [
            "--config",
            str(yaml_file),
            "--rank",
            "3",
            "--target-weights",
            "o=2,up=0.5",
            "--per-target-rank-schedule",
            "q=5",
        ]
        + ["--channel-budgets", "symbols=7", "--no-include-text", "--targets", "q,o,up", "--components", "2"]
    )
    cfg = load_from_args(args)
    assert cfg.synth.rank == 3 and cfg.synth.layer_schedule == "linear"  # flag wins, file kept elsewhere
    assert cfg.synth.target_weights == {"o": 2.0, "up": 0.5} and cfg.synth.per_target_rank_schedule == {
        "q": 5
    }
    assert cfg.synth.targets == ["q", "o", "up"] and cfg.synth.components == 2
    assert cfg.embed.embed_dim == 64 and cfg.embed.channel_budgets["symbols"] == 7
    assert cfg.embed.channel_budgets["docs"] == 20000 and cfg.embed.include_text is False
    yaml_file.write_text("build:\n  synth:\n    rnak: 6\n")
    with pytest.raises(NanodexError, match="unknown config key 'rnak'"):
        load_from_args(build_parser().parse_args(["--config", str(yaml_file)]))


def test_self_queries_and_facts_carry_the_right_references(repo_graph: tuple[Path, Path]) -> None:
    from pca_otf.build import fact_rows, self_query_rows
    from pca_otf.embedding import EmbedIndex

    _repo, graph = repo_graph
    with SqliteProgramGraph(graph) as pg:
        index = EmbedIndex(pg)
    queries = {q["question"]: q for q in self_query_rows(index, 10_000, 0)}
    callers = queries["Which functions call `Base.describe`?"]
    assert callers["refs"] == ["shop/models.py::Item.take"] and callers["citations"] == [
        "shop/models.py:29-33"
    ]
    assert queries["Where is `Cart.add` defined?"]["citations"] == ["shop/cart.py:10-13"]
    facts = fact_rows(index)
    assert {
        "subject": "Cart.add",
        "subject_id": "shop/cart.py::Cart.add",
        "predicate": "defined_at",
        "object": "shop/cart.py:10-13",
        "citation": "shop/cart.py:10-13",
    } in facts
    # the sample is a stable subset: a smaller limit keeps a prefix of the same order
    assert self_query_rows(index, 5, 0) == self_query_rows(index, 10_000, 0)[:5]
