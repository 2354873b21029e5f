"""Issue 17, dataset stage: a corrupt brain node file (F10) and a kill between the renames of the
output set (F11). Each test failed on the code before the fix (noted per test)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import dataset.build as dataset_build
from brain.build import build_brain
from brain.config import BrainConfig
from dataset.build import build_dataset
from dataset.config import Counts, DatasetConfig
from nanodex.errors import NanodexError
from tests.conftest import FIXTURES, build_graph
from tests.hardening import assert_one_line_error, run_cli
from trainer import data


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> DatasetConfig:
    tmp = tmp_path_factory.mktemp("hardening-dataset")
    repo = tmp / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    graph = tmp / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    build_brain(BrainConfig(graph=str(graph), out_dir=str(tmp / "nodes")))
    out = tmp / "out"
    return DatasetConfig(
        graph=str(graph),
        nodes_dir=str(tmp / "nodes"),
        counts=Counts(discovery=6, explain=10, howto=4, diag=4, architecture=4),
        negatives_per_example=0.25,
        eval_fraction=0.25,
        out_jsonl=str(out / "train.jsonl"),
        eval_jsonl=str(out / "eval.jsonl"),
        stats_json=str(out / "stats.json"),
    )


def test_f10_corrupt_node_file_is_one_line_not_a_silent_drop(small: DatasetConfig, tmp_path: Path) -> None:
    """F10 (failed before: the node was dropped, the output differed, exit 0, no warning)."""
    nodes = tmp_path / "nodes"
    shutil.copytree(small.nodes_dir, nodes)
    victim = sorted(nodes.glob("*.json"))[3]
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])  # cut off mid-write
    out = tmp_path / "out"
    ran = run_cli("dataset", "--graph", small.graph, "--nodes-dir", str(nodes), "--out", str(out))
    assert_one_line_error(ran, victim.name, "damaged", "make brain")
    assert not out.exists(), "no dataset may be written from a brain with a damaged node"
    victim.write_bytes(b"\xff\xfe not utf-8")
    ran = run_cli("dataset", "--graph", small.graph, "--nodes-dir", str(nodes), "--out", str(out))
    assert_one_line_error(ran, victim.name, "damaged")


def test_f11_a_kill_between_the_renames_is_caught_by_the_reader(
    small: DatasetConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F11 (failed before: a new train.jsonl beside the old eval.jsonl and stats.json was read
    as a good set)."""
    out = tmp_path / "out"
    cfg = replace(
        small,
        out_jsonl=str(out / "train.jsonl"),
        eval_jsonl=str(out / "eval.jsonl"),
        stats_json=str(out / "stats.json"),
    )
    build_dataset(cfg)
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats["outputs_sha256"]) == {"train.jsonl", "eval.jsonl"}
    assert data.load_rows(out / "train.jsonl") and data.load_rows(out / "eval.jsonl")
    old_eval = (out / "eval.jsonl").read_bytes()

    real_write = dataset_build._write_jsonl
    calls: list[str] = []

    def killed_after_train(path: str, rows: list) -> str:
        calls.append(path)
        if len(calls) == 2:  # train.jsonl renamed into place, then the process dies
            raise KeyboardInterrupt
        return real_write(path, rows)

    monkeypatch.setattr(dataset_build, "_write_jsonl", killed_after_train)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(replace(cfg, seed=cfg.seed + 1))
    monkeypatch.undo()
    assert (out / "eval.jsonl").read_bytes() == old_eval  # the old eval set is still there
    with pytest.raises(NanodexError, match="interrupted"):
        data.load_rows(out / "train.jsonl")
    ran = run_cli(
        "trainer",
        "--dataset",
        str(out / "train.jsonl"),
        "--eval-dataset",
        str(out / "eval.jsonl"),
        "--out",
        str(tmp_path / "a"),
    )
    assert_one_line_error(ran, "re-run `make dataset`")
    # the next full run writes a consistent set again
    build_dataset(replace(cfg, seed=cfg.seed + 1))
    assert data.load_rows(out / "train.jsonl") and data.load_rows(out / "eval.jsonl")
