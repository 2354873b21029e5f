"""Serving end to end with the real vLLM server (slow: about three minutes on 2 CPU cores).

A tiny LoRA adapter is trained here on the embedded SmolLM2-135M (4 steps on the fixture
dataset), served by vLLM next to its base, and asked through `python inference/query.py` with
context from brain search over the Python fixture repo. The served adapter's greedy tokens must
equal transformers + PEFT's greedy tokens for the same chat-templated prompt, and differ from the
base's (so the adapter is really applied). Runtime adapter loading and a server that dies during
start-up are exercised on the real server too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from extractor.graph import Graph
from inference.config import ServerConfig
from inference.preflight import check_port, free_port
from inference.server import VllmServer
from nanodex.errors import NanodexError
from tests.conftest import FIXTURES, build_graph

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATASET = FIXTURES / "dataset"
QUESTION = "What does Cart.add return?"
GREEDY_TOKENS = 24


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-8 LoRA on the embedded model, a few steps: enough to change its greedy answers."""
    from trainer.config import TrainConfig
    from trainer.run import train

    out = tmp_path_factory.mktemp("serve-e2e") / "expert"
    cfg = TrainConfig(
        dataset=str(DATASET / "train.jsonl"),
        eval_dataset="",
        graph=str(out.parent / "no-graph.sqlite"),
        save_dir=str(out),
        bits=32,
        lora_rank=8,
        lora_alpha=16,
        lora_dropout=0.0,
        learning_rate=2e-3,
        lr_scheduler="constant",
        warmup_ratio=0.0,
        batch_size=4,
        max_steps=4,
        max_seq_len=192,
        eval_interval=0,
        eval_on_start=False,
        logging_steps=1,
        seed=3,
    )
    assert train(cfg).adapter == out
    return out


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from brain.build import build_brain
    from brain.config import BrainConfig

    tmp = tmp_path_factory.mktemp("serve-e2e-graph")
    shutil.copytree(FIXTURES / "python", tmp / "repo")
    path = tmp / "graph.sqlite"
    build_graph(tmp / "repo", path, ["python"])
    build_brain(BrainConfig(graph=str(path), out_dir=str(tmp / "nodes")))
    return path


@pytest.fixture(scope="module")
def server(adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    log_file = tmp_path_factory.mktemp("serve-e2e-log") / "vllm.log"
    cfg = ServerConfig(
        adapters=[f"expert={adapter}"],
        port=free_port(),
        allow_runtime_lora=True,
        max_model_len=1024,
        log_file=str(log_file),
    )
    srv = VllmServer(cfg)
    with srv:
        yield srv
    pgid = srv.proc.pid  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # vLLM's engine and worker processes are gone as well
    check_port(cfg.host, cfg.port)  # and the port is free again for the next server


def served_greedy(srv: VllmServer, model: str, question: str = QUESTION) -> list[int]:
    done = srv.client().chat(
        [{"role": "user", "content": question}],
        model=model,
        max_tokens=GREEDY_TOKENS,
        temperature=0.0,
        extra={"return_token_ids": True},
    )
    assert done.token_ids, "vLLM's return_token_ids extension gave no ids"
    return list(done.token_ids)


def transformers_greedy(base: Path, adapter: Path, question: str = QUESTION) -> tuple[list[int], list[int]]:
    """Greedy tokens of the base, then of base + adapter (PEFT), for the chat-templated question."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    enc = tok.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    n = enc["input_ids"].shape[1]
    with torch.no_grad():
        plain = model.generate(**enc, max_new_tokens=GREEDY_TOKENS, do_sample=False)[0, n:].tolist()
        peft = PeftModel.from_pretrained(model, str(adapter)).eval()  # wraps `model`: base first
        adapted = peft.generate(**enc, max_new_tokens=GREEDY_TOKENS, do_sample=False)[0, n:].tolist()
    return plain, adapted


def _strip_eos(ids: list[int], eos: set[int]) -> list[int]:
    while ids and ids[-1] in eos:
        ids = ids[:-1]
    return ids


def test_served_adapter_is_greedy_identical_to_peft(server: VllmServer, adapter: Path) -> None:
    from transformers import AutoTokenizer

    eos = {AutoTokenizer.from_pretrained(server.base_path).eos_token_id}
    served = _strip_eos(served_greedy(server, "expert"), eos)
    base_served = _strip_eos(served_greedy(server, server.model_name), eos)
    plain, adapted = transformers_greedy(server.base_path, adapter)
    assert served == _strip_eos(adapted, eos)
    assert base_served == _strip_eos(plain, eos)
    assert base_served != served, "the adapter changes nothing: is it applied?"


def _query(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "inference" / "query.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NANODEX_PROGRESS": "0"},
        timeout=300,
    )


def test_query_cli_answers_with_checked_citations(server: VllmServer, graph: Path) -> None:
    args = [
        "--endpoint",
        server.base_url,
        "--question",
        QUESTION,
        "--graph",
        str(graph),
        "--max-tokens",
        "40",
    ]
    proc = _query(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"] == "expert", "without --model the served adapter answers"
    assert out["answer"].strip() and 0 < out["usage"]["completion_tokens"] <= 40
    assert out["usage"]["prompt_tokens"] > 100, "the packed code context was sent"
    assert out["context"] and out["context"][0] == "[shop/cart.py:10-13]"
    with Graph(graph) as g:
        for label in out["context"]:
            path, lines = label.strip("[]").rsplit(":", 1)
            assert g.resolves(path, *map(int, lines.split("-")))
        for c in out["citations"]:  # whatever the tiny model cites: a valid one resolves and was shown
            assert not c["resolves"] or (
                g.resolves(c["path"], c["start"], c["end"])
                and any(label.startswith(f"[{c['path']}:") for label in out["context"])
            )
            assert c["resolves"] or c["text"] + " (unresolved)" in out["answer"]
    streamed = _query(*args, "--stream")
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.startswith(out["raw_answer"]), "greedy: streaming gives the same answer"
    assert "citations:" in streamed.stdout


def test_unknown_model_is_a_one_line_error(server: VllmServer) -> None:
    proc = _query("--endpoint", server.base_url, "--question", "hi", "--model", "nope")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1
    assert "HTTP 404" in lines[0] and "nope" in lines[0]


def test_runtime_adapter_loading(server: VllmServer, adapter: Path) -> None:
    server.load_adapter(f"expert-live={adapter}")
    listed = {m["id"]: m.get("parent") for m in server.client().models()}
    assert listed["expert-live"] == server.model_name
    assert served_greedy(server, "expert-live") == served_greedy(server, "expert")
    with pytest.raises(NanodexError, match="already served"):
        server.load_adapter(f"expert-live={adapter}")


def test_server_dying_during_startup_is_reported(tmp_path: Path) -> None:
    cfg = ServerConfig(port=free_port(), extra_args=["--no-such-flag"], log_file=str(tmp_path / "v.log"))
    srv = VllmServer(cfg)
    with (
        pytest.raises(NanodexError, match=r"vLLM exited with status \d+ during start-up: .*--no-such-flag"),
        srv,
    ):
        pass
    assert not srv.running
