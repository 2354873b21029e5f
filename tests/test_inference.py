"""inference (fast): citations, context packing, preflight errors, the HTTP client, the server
lifecycle and both CLIs, without starting vLLM (tests/test_serve_e2e.py does that, slowly).

What stands in for what, and why:
  - the OpenAI server: a stdlib HTTP server in a thread (tests/openai_server.py, `FakeOpenAI`),
    asked by `ask` and the query CLI over real sockets; the client's own handling of answers,
    streams, error bodies and timeouts is tested in tests/test_chat_client.py, and the real vLLM
    server answers the same requests in tests/test_serve_e2e.py.
  - the server process: a small Python HTTP server script run through `ServerProcess`, the same
    lifecycle code `VllmServer` uses (process group, /health, SIGINT then SIGKILL).
  - model and adapter folders for the preflight checks: folders with the files the checks read
    (config.json, adapter_config.json, nanodex.json); vLLM never starts in these tests.
  - "vLLM not installed": vLLM is installed here, so its absence is simulated (find_spec).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from answer.blocks import estimate_tokens, pack_blocks
from answer.prompt import LAYOUT
from brain.search import Hit
from extractor.graph import Graph
from inference import preflight
from inference.config import QueryConfig, ServeFile, ServerConfig
from inference.preflight import free_port
from inference.query import ask
from inference.serve import build_parser, server_config
from inference.server import ServerProcess, VllmServer
from nanodex.config import load_config
from nanodex.errors import NanodexError
from tests.conftest import FIXTURES, build_graph
from tests.openai_server import FakeOpenAI, running

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python fixture repo (shop/cart.py has 21 lines) indexed into a real graph."""
    import shutil

    tmp = tmp_path_factory.mktemp("inference-graph")
    shutil.copytree(FIXTURES / "python", tmp / "repo")
    graph = tmp / "graph.sqlite"
    build_graph(tmp / "repo", graph, ["python"])
    return graph


@pytest.fixture(scope="module")
def brain_graph(graph_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same graph with its brain search index (lexical + graph; no embeddings)."""
    from brain.build import build_brain
    from brain.config import BrainConfig

    build_brain(BrainConfig(graph=str(graph_file), out_dir=str(tmp_path_factory.mktemp("nodes"))))
    return graph_file


def model_folder(path: Path) -> Path:
    """The files nanodex.models.check_model_folder looks for (vLLM never loads it here)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "model.safetensors").write_bytes(b"")
    (path / "tokenizer.json").write_text("{}")
    return path


def adapter_folder(
    path: Path,
    *,
    rank: int = 8,
    base: str | None = "embedded:smollm2-135m",
    layout: str | None = LAYOUT,
    **cfg: Any,
) -> Path:
    """A PEFT LoRA folder as the trainer writes it (weights file empty: only the checks read it)."""
    path.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "base_model_name_or_path": None}
    config.update(cfg)
    (path / "adapter_config.json").write_text(json.dumps(config))
    (path / "adapter_model.safetensors").write_bytes(b"")
    if base is not None:
        manifest = {"base": base, "base_path": "/elsewhere/smollm2-135m", "prompt_layout": layout}
        (path / "nanodex.json").write_text(json.dumps(manifest))
    return path


# --------------------------------------------------------------------------------------------------
# context packing


def _hit(path: str, start: int, end: int) -> Hit:
    return Hit(id=f"{path}:{start}", type="function", name="x", qualname="x", path=path,
               start_line=start, end_line=end, score=1.0)  # fmt: skip


def test_pack_blocks_respects_budget_and_labels(graph_file: Path) -> None:
    hits = [
        _hit("shop/cart.py", 10, 13),  # Cart.add
        _hit("shop/cart.py", 6, 21),  # class Cart: overlaps Cart.add, skipped
        _hit("shop/models.py", 14, 33),
        _hit("shop/pricing.py", 1, 17),
    ]
    with Graph(graph_file) as g:
        for budget in (40, 90, 150, 10_000):
            blocks = pack_blocks(hits, g.source, budget)
            used = sum(estimate_tokens(b.render() + "\n\n") for b in blocks)
            assert used <= budget, (budget, used)
            for b in blocks:  # every label names exactly the lines shown
                assert b.code == g.source(b.path, b.start, b.end).rstrip("\n")
                assert b.end - b.start + 1 == len(b.code.splitlines())
                assert g.resolves(b.path, b.start, b.end)
            assert "[shop/cart.py:6-21]" not in [b.label for b in blocks]
        everything = pack_blocks(hits, g.source, 10_000)
        assert [b.label for b in everything] == [
            "[shop/cart.py:10-13]",
            "[shop/models.py:14-33]",
            "[shop/pricing.py:1-17]",
        ]
        cut = pack_blocks([_hit("shop/models.py", 14, 33)], g.source, 10_000, max_block_lines=5)
        assert [b.label for b in cut] == ["[shop/models.py:14-18]"]
        tight = pack_blocks(hits, g.source, 90)
        assert tight and tight[0].label == "[shop/cart.py:10-13]"  # the best hit comes first
        assert any(
            b.end < h.end_line for b in tight for h in hits if h.path == b.path and h.start_line == b.start
        )
        assert pack_blocks(hits, g.source, 5) == []  # not even a label fits


# --------------------------------------------------------------------------------------------------
# preflight


def test_port_in_use_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(NanodexError, match=f"port {port} on 127.0.0.1 is already in use"):
            preflight.check_port("127.0.0.1", port)
    preflight.check_port("127.0.0.1", port)  # free again
    with pytest.raises(NanodexError, match="not a TCP port"):
        preflight.check_port("127.0.0.1", 70000)


def test_adapter_spec_parsing(tmp_path: Path) -> None:
    assert preflight.parse_adapter_spec("expert=models/x") == ("expert", Path("models/x"))
    assert preflight.parse_adapter_spec("models/nanodex-lora") == (
        "nanodex-lora",
        Path("models/nanodex-lora"),
    )
    with pytest.raises(NanodexError, match="names no folder"):
        preflight.parse_adapter_spec("expert=")
    with pytest.raises(NanodexError, match="not a plain name"):
        preflight.parse_adapter_spec("my expert=models/x")


def test_adapter_folder_errors(tmp_path: Path) -> None:
    base = model_folder(tmp_path / "base")
    with pytest.raises(NanodexError, match="adapter folder not found") as err:
        preflight.adapters_from_specs([str(tmp_path / "missing")], "embedded:smollm2-135m", base, set())
    assert "make train-lora" in str(err.value)
    (tmp_path / "plain").mkdir()
    with pytest.raises(NanodexError, match="not a PEFT adapter folder"):
        preflight.inspect_adapter("plain", tmp_path / "plain")
    ia3 = adapter_folder(tmp_path / "ia3", peft_type="IA3")
    with pytest.raises(NanodexError, match="vLLM serves LoRA adapters only"):
        preflight.inspect_adapter("ia3", ia3)
    noweights = adapter_folder(tmp_path / "noweights")
    (noweights / "adapter_model.safetensors").unlink()
    with pytest.raises(NanodexError, match="has no adapter_model.safetensors"):
        preflight.inspect_adapter("noweights", noweights)
    a = adapter_folder(tmp_path / "a")
    with pytest.raises(NanodexError, match="model name 'a' is used twice"):
        preflight.adapters_from_specs([str(a), f"a={a}"], "embedded:smollm2-135m", base, set())
    with pytest.raises(NanodexError, match="model name 'smollm2-135m' is used twice"):
        preflight.adapters_from_specs([f"smollm2-135m={a}"], "embedded:smollm2-135m", base, {"smollm2-135m"})


def test_adapter_trained_on_another_prompt_layout_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = model_folder(tmp_path / "base")
    with caplog.at_level("WARNING"):
        preflight.adapters_from_specs(
            [str(adapter_folder(tmp_path / "now"))], "embedded:smollm2-135m", base, set()
        )
    assert "prompt layout" not in caplog.text
    old = adapter_folder(tmp_path / "old", layout="nanodex-answer-v0")
    with caplog.at_level("WARNING"):
        preflight.adapters_from_specs([str(old)], "embedded:smollm2-135m", base, set())
    assert (
        f"adapter old was trained on prompt layout nanodex-answer-v0, but questions are asked in {LAYOUT}"
        in caplog.text
    )


def test_base_mismatch(tmp_path: Path) -> None:
    base = model_folder(tmp_path / "base")
    other = preflight.inspect_adapter("o", adapter_folder(tmp_path / "o", base="HuggingFaceTB/SmolLM2-360M"))
    with pytest.raises(
        NanodexError, match="adapter o was trained on HuggingFaceTB/SmolLM2-360M, not on BASE"
    ) as err:
        preflight.check_base(other, "embedded:smollm2-135m", base)
    assert "pass BASE=HuggingFaceTB/SmolLM2-360M" in str(err.value)
    same = preflight.inspect_adapter("s", adapter_folder(tmp_path / "s"))
    preflight.check_base(same, "embedded:smollm2-135m", base)  # same spec
    by_path = preflight.inspect_adapter(
        "p", adapter_folder(tmp_path / "p", base=None, base_model_name_or_path=str(base))
    )
    preflight.check_base(by_path, str(base), base)  # PEFT's own record: the same folder
    with pytest.raises(NanodexError, match="not on BASE embedded:smollm2-135m"):
        preflight.check_base(by_path, "embedded:smollm2-135m", model_folder(tmp_path / "base2"))
    hub_cache = model_folder(tmp_path / "models--org--coder" / "snapshots" / "abc")
    hub = preflight.inspect_adapter(
        "h", adapter_folder(tmp_path / "h", base=None, base_model_name_or_path="org/coder")
    )
    preflight.check_base(hub, str(hub_cache), hub_cache)  # Hub id vs its cache folder


def test_rank_checks() -> None:
    def ad(rank: int) -> preflight.Adapter:
        return preflight.Adapter(f"r{rank}", Path("/x"), rank, None, None)

    assert preflight.choose_max_rank(0, [ad(8)]) == 8
    assert preflight.choose_max_rank(0, [ad(8), ad(48)]) == 64
    assert preflight.choose_max_rank(0, []) == 16
    assert preflight.choose_max_rank(32, [ad(8)]) == 32
    with pytest.raises(
        NanodexError, match="adapter r64 has LoRA rank 64, above the server's --max-lora-rank 16"
    ) as err:
        preflight.choose_max_rank(16, [ad(8), ad(64)])
    assert "pass --max-lora-rank 64" in str(err.value)
    with pytest.raises(NanodexError, match="--max-lora-rank 12 is not a value vLLM accepts"):
        preflight.choose_max_rank(12, [ad(8)])
    with pytest.raises(NanodexError, match="rank 1024, above the 512 vLLM supports"):
        preflight.choose_max_rank(0, [ad(1024)])


def test_rank_pattern_counts(tmp_path: Path) -> None:
    a = preflight.inspect_adapter("a", adapter_folder(tmp_path / "a", rank=8, rank_pattern={"q_proj": 32}))
    assert a.rank == 32


def test_vllm_missing_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    with pytest.raises(NanodexError, match="vLLM is not installed") as err:
        VllmServer(ServerConfig())
    assert "make setup" in str(err.value)


def test_vllm_server_checks_before_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = model_folder(tmp_path / "base")
    adapter = adapter_folder(tmp_path / "expert", rank=16, base=str(base))
    port = free_port()
    cfg = ServerConfig(
        base=str(base), adapters=[f"expert={adapter}"], port=port, log_file=str(tmp_path / "v.log")
    )
    with pytest.raises(NanodexError, match="above the server's --max-lora-rank 8"):
        VllmServer(ServerConfig(**{**cfg.__dict__, "max_lora_rank": 8}))
    monkeypatch.delenv("NX_TEST_KEY", raising=False)
    with pytest.raises(NanodexError, match="api_key_env is NX_TEST_KEY but that variable is not set"):
        VllmServer(ServerConfig(**{**cfg.__dict__, "api_key_env": "NX_TEST_KEY"}))
    monkeypatch.setenv("NX_TEST_KEY", "s3cret")
    srv = VllmServer(ServerConfig(**{**cfg.__dict__, "api_key_env": "NX_TEST_KEY"}))
    assert srv.proc is None, "constructing the server must not start it"
    cmd = srv.cmd
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--model") + 1] == str(base)
    assert cmd[cmd.index("--served-model-name") + 1] == "base"
    assert cmd[cmd.index("--max-lora-rank") + 1] == "16"
    assert cmd[cmd.index("--lora-modules") + 1] == f"expert={adapter.resolve()}"
    assert cmd[cmd.index("--port") + 1] == str(port) and "--enable-lora" in cmd
    assert "s3cret" not in " ".join(cmd) and srv.env["VLLM_API_KEY"] == "s3cret"
    if "VLLM_CPU_KVCACHE_SPACE" in srv.env:  # CPU machine: float32, and no minutes-long inductor compile
        assert cmd[cmd.index("--dtype") + 1] == "float32"
        assert json.loads(cmd[cmd.index("--compilation-config") + 1]) == {"mode": 0}
    assert srv.models == ["base", "expert"] and srv.default_model == "expert"
    assert srv.base_url == f"http://127.0.0.1:{port}/v1"
    plain = VllmServer(ServerConfig(base=str(base), port=port))
    assert "--enable-lora" not in plain.cmd and plain.default_model == "base"
    runtime = VllmServer(ServerConfig(base=str(base), port=port, allow_runtime_lora=True))
    assert "--enable-lora" in runtime.cmd and runtime.env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    with pytest.raises(NanodexError, match="started without runtime adapter loading"):
        plain.load_adapter(f"x={adapter}")
    with socket.socket() as s:  # the port is checked last, after the adapters
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(NanodexError, match="already in use"):
            VllmServer(ServerConfig(base=str(base), port=port))


# --------------------------------------------------------------------------------------------------
# ask and the query CLI against a real OpenAI-compatible HTTP server (client tests: test_chat_client.py)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with running() as srv:
        yield srv


def test_ask_with_graph_packs_context_and_checks_citations(fake: FakeOpenAI, brain_graph: Path) -> None:
    ans = ask(
        "What does Cart.add return?", endpoint=fake.url, graph=str(brain_graph), k=3, search_mode="lexical"
    )
    sent = fake.requests[-1]["body"]
    assert sent["model"] == "expert" and len(sent["messages"]) == 1
    prompt = sent["messages"][0]["content"]
    labels = [b.label for b in ans.context]
    assert labels and labels[0] == "[shop/cart.py:10-13]"
    for label in labels:
        assert label in prompt
    assert "def add(self, sku, qty):" in prompt and prompt.endswith("Question: What does Cart.add return?")
    assert [(c.text, c.resolves) for c in ans.citations] == [
        ("[shop/cart.py:10-13]", True),
        ("[shop/cart.py:90-99]", False),
    ]
    assert ans.marked.endswith("[shop/cart.py:90-99] (unresolved).")
    assert "frequency_penalty" not in sent, "greedy by default: no penalty sent unless configured"
    # vLLM structured outputs: a citation may only name a shown block (or a sub-range of one)
    regex = re.compile(sent["structured_outputs"]["regex"], re.S)
    assert regex.fullmatch("It returns the Item [shop/cart.py:10-13].\n\nSee [shop/cart.py:11].")
    assert not regex.fullmatch("See [shop/cart.py:90-99].") and not regex.fullmatch("See [shop/nothing.py:1]")
    ask("What does Cart.add return?", endpoint=fake.url, frequency_penalty=0.5)
    assert fake.requests[-1]["body"]["frequency_penalty"] == 0.5
    with pytest.raises(NanodexError, match="ask\\(\\): unknown config key 'nonsense'"):
        ask("q", endpoint=fake.url, nonsense=1)
    with pytest.raises(NanodexError, match="the question is empty"):
        ask("  ", endpoint=fake.url)


def _query_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NANODEX_PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / "inference" / "query.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_query_search_reads_config_brain_yaml_from_the_working_directory(
    brain_graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make query` without --brain-config searches with config/brain.yaml when it is there (the
    default-config policy of every stage), --brain-config wins over it, and without either the
    defaults hold; the graph is always the one queried."""
    from brain.config import SearchConfig
    from inference.query import Retriever

    (tmp_path / "config").mkdir()
    own = tmp_path / "config" / "brain.yaml"
    own.write_text("graph: elsewhere.sqlite\nsearch:\n  k: 3\n  lexical_weight: 0.25\n")
    named = tmp_path / "named.yaml"
    named.write_text("search:\n  k: 5\n")
    monkeypatch.chdir(tmp_path)
    cfg = QueryConfig(search_mode="lexical")
    with Retriever(brain_graph, cfg) as r:
        assert (r.searcher.scfg.k, r.searcher.scfg.lexical_weight) == (3, 0.25)
        assert r.searcher.cfg.graph == str(brain_graph)
        assert r.blocks("What does Cart.add return?")  # the index beside the graph still answers
    with Retriever(brain_graph, QueryConfig(search_mode="lexical", brain_config=str(named))) as r:
        assert (r.searcher.scfg.k, r.searcher.scfg.lexical_weight) == (5, SearchConfig().lexical_weight)
    own.unlink()
    with Retriever(brain_graph, cfg) as r:
        assert r.searcher.scfg == SearchConfig()


def test_query_cli_json_and_text(fake: FakeOpenAI, brain_graph: Path, tmp_path: Path) -> None:
    # run from another folder: `python inference/query.py` must find the package by itself
    proc = _query_cli("--endpoint", fake.url, "-q", "What does Cart.add return?", "--graph", str(brain_graph),
                      "--json", "--k", "3", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (
        out["raw_answer"] == fake.answer and out["model"] == "expert" and out["usage"]["total_tokens"] == 12
    )
    assert out["answer"] == fake.answer.replace("99].", "99] (unresolved).") and out["provenance"]["layout"]
    assert [c["resolves"] for c in out["citations"]] == [True, False]
    bad = out["citations"][1]
    assert (bad["text"], bad["path"], bad["start"], bad["end"], bad["resolves"]) == (
        "[shop/cart.py:90-99]", "shop/cart.py", 90, 99, False)  # fmt: skip
    proc = _query_cli("--endpoint", fake.url, "-q", "What does Cart.add return?", "--graph", str(brain_graph),
                      "--stream", "--model", "base")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(fake.answer + "\n")
    assert "BAD  shop/cart.py:90-99 (the file has 21 lines)" in proc.stdout
    assert fake.requests[-1]["body"]["model"] == "base" and fake.requests[-1]["body"]["stream"] is True


def test_query_cli_failures_exit_non_zero_with_one_line(fake: FakeOpenAI) -> None:
    port = free_port()
    proc = _query_cli("--endpoint", f"http://127.0.0.1:{port}", "-q", "hi")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        f"nanodex: error: no server answers at http://127.0.0.1:{port}"
    )
    fake.mode = "500"
    proc = _query_cli("--endpoint", fake.url, "-q", "hi", "--model", "expert")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "server error HTTP 500" in lines[0]
    # a typo in the port is named as such, not reported as a refused connection
    proc = _query_cli("--endpoint", "http://127.0.0.1:99999/v1", "-q", "hi")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "has an invalid port '99999'" in lines[0]
    # a reply without text is an error, not an empty answer with exit 0
    fake.mode = "null"
    for stream in ([], ["--stream"]):
        proc = _query_cli("--endpoint", fake.url, "-q", "hi", "--model", "expert", *stream)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and "answered no text" in lines[0], proc.stderr
        assert not proc.stdout.strip()


# --------------------------------------------------------------------------------------------------
# server lifecycle with a real child process

_CHILD = textwrap.dedent(
    """
    import http.server, signal, subprocess, sys, time
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "crash":
        print("loading the model...", flush=True)
        print("ValueError: max_model_len 99999 is larger than the model's 8192", flush=True)
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a grandchild in the same process group, like vLLM's engine process
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    time.sleep(0.5)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


def _child(tmp_path: Path, mode: str, grace: float = 10.0) -> ServerProcess:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    port = free_port()
    return ServerProcess(
        [sys.executable, str(script), mode, str(port)],
        health_url=f"http://127.0.0.1:{port}/health",
        log_file=tmp_path / "logs" / f"{mode}.log",
        name="test server",
        startup_timeout_s=60,
        stop_grace_s=grace,
    )


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_server_process_starts_and_stops_its_group(tmp_path: Path) -> None:
    srv = _child(tmp_path, "ok")
    with srv:
        assert srv.healthy() and srv.startup_seconds is not None
        pgid = srv.proc.pid  # type: ignore[union-attr]
        assert os.getpgid(pgid) == pgid, "the server leads its own process group"
        assert not _group_gone(pgid)
    assert _group_gone(pgid), "the grandchild must be stopped too"
    assert srv.proc is not None and srv.proc.returncode is not None
    assert srv.log_file.read_text().startswith("$ ")


def test_server_ignoring_sigint_is_killed_after_grace(tmp_path: Path) -> None:
    srv = _child(tmp_path, "stubborn", grace=1.0)
    srv.start()
    srv.wait_ready()
    pgid = srv.proc.pid  # type: ignore[union-attr]
    t0 = time.monotonic()
    srv.stop()
    assert _group_gone(pgid) and srv.proc.returncode == -signal.SIGKILL  # type: ignore[union-attr]
    assert time.monotonic() - t0 < 15


def test_server_dying_during_startup_reports_its_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv = _child(tmp_path, "crash")
    with pytest.raises(NanodexError) as err, srv:
        pass
    msg = str(err.value)
    assert msg.startswith("test server exited with status 3 during start-up: ValueError: max_model_len 99999")
    assert str(srv.log_file) in msg
    assert "loading the model..." in caplog.text, "the log tail is shown before the one-line error"


# --------------------------------------------------------------------------------------------------
# configuration and command lines


def test_shipped_config_and_unknown_keys(tmp_path: Path) -> None:
    cfg = load_config(ServeFile, ROOT / "config" / "serve.yaml")
    assert cfg.server.port == 8000 and cfg.server.host == "127.0.0.1"
    assert cfg.query.endpoint == f"http://127.0.0.1:{cfg.server.port}/v1", "both sections must agree"
    bad = tmp_path / "s.yaml"
    bad.write_text("server:\n  prot: 8001\n")
    with pytest.raises(NanodexError, match="unknown config key 'prot'"):
        load_config(ServeFile, bad)


def test_serve_flags_override_config(tmp_path: Path) -> None:
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text("server:\n  port: 9000\n  adapters: [old=models/old]\n  max_lora_rank: 64\n")
    args = build_parser().parse_args(
        [
            "--config",
            str(yaml_file),
            "--adapter",
            "a=models/a",
            "--adapter",
            "models/b",
            "--allow-runtime-lora",
        ]
    )
    cfg = server_config(args)
    assert cfg.adapters == ["a=models/a", "models/b"] and cfg.port == 9000 and cfg.max_lora_rank == 64
    assert cfg.allow_runtime_lora is True
    cfg = server_config(build_parser().parse_args(["--config", str(yaml_file), "--port", "8123"]))
    assert cfg.port == 8123 and cfg.adapters == ["old=models/old"] and cfg.allow_runtime_lora is False


def test_query_config_overrides() -> None:
    from nanodex.config import apply_overrides

    cfg = apply_overrides(QueryConfig(k=9), {"endpoint": "http://x:1/v1", "k": None, "max_tokens": 12})
    assert cfg.k == 9 and cfg.max_tokens == 12 and cfg.endpoint == "http://x:1/v1"


def test_serve_cli_error_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "inference.serve", "--adapter", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2
    assert lines == [f"nanodex: error: adapter folder not found: {tmp_path / 'nope'} (fix: train one with "
                     "`make train-lora` (or `make train-qlora`), or pass ADAPTER=<adapter folder>)"]  # fmt: skip


@pytest.mark.parametrize(
    "cmd",
    [["-m", "inference.serve"], ["-m", "inference.query"], [str(ROOT / "inference" / "query.py")]],
)
def test_help(cmd: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, *cmd, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0 and "usage:" in proc.stdout


def test_failure_reason_picks_the_cause_from_a_vllm_log() -> None:
    from inference.server import failure_reason

    pydantic = [
        '  File "/x/vllm/engine/arg_utils.py", line 1955, in create_model_config',
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig",
        "  Value error, User-specified max_model_len (100000) is greater than the derived max_model_len",
        "    For further information visit https://errors.pydantic.dev/2.14/v/value_error",
    ]
    assert failure_reason(pydantic) == (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig: "
        "Value error, User-specified max_model_len (100000) is greater than the derived max_model_len"
    )
    engine = [
        "(EngineCore pid=7) ValueError: No available memory for the cache blocks.",
        "Traceback (most recent call last):",
        '  File "/x/vllm/v1/engine/core_client.py", line 9, in __init__',
        "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
    ]
    assert failure_reason(engine) == "ValueError: No available memory for the cache blocks."
    argparse_err = ["usage: api_server.py [-h]", "api_server.py: error: unrecognized arguments: --nope"]
    assert failure_reason(argparse_err) == "api_server.py: error: unrecognized arguments: --nope"
    assert failure_reason(["Killed"]) == "Killed" and failure_reason([]) == "no output"


def test_pack_blocks_symbol_windows_label_exactly_the_lines_shown(graph_file: Path) -> None:
    from answer.blocks import enclosing_definitions, local_token_counter, symbol_window

    hits = [_hit("shop/models.py", 14, 33), _hit("shop/cart.py", 6, 21), _hit("shop/cart.py", 10, 13)]
    question = "what happens when the stock is not enough to take?"
    with Graph(graph_file) as g:
        whole = pack_blocks(hits, g.source, 10_000)
        texts: list[str] = []

        def counting(text: str) -> int:
            texts.append(text)
            return estimate_tokens(text)

        windows = pack_blocks(
            hits, g.source, 10_000, count_tokens=counting, question=question, window_lines=7
        )
        assert len(texts) == len(set(texts))  # each block counted once, however often its window was tried
        assert all(b.tokens == estimate_tokens(b.render() + "\n\n") for b in windows)
        for b in windows:  # every label is exactly true, windows or not
            assert b.code == g.source(b.path, b.start, b.end).rstrip("\n")
            assert b.end - b.start + 1 == len(b.code.splitlines())
        shown = sum(b.end - b.start + 1 for b in windows)
        assert shown < sum(b.end - b.start + 1 for b in whole)
        # the symbol's first line (its signature) and a line using the question's words are shown
        assert any(b.path == "shop/models.py" and b.start == 14 for b in windows)
        text = "\n".join(b.code for b in windows if b.path == "shop/models.py")
        assert "stock" in text.lower()
        # Cart.add (10-13) lies inside Cart's span: shown once, not twice
        lines = [(b.path, n) for b in windows for n in range(b.start, b.end + 1)]
        assert len(lines) == len(set(lines))
    src = [
        "def f(a,",
        "      b):",
        '    """Do it."""',
        *[f"    x{i} = {i}" for i in range(20)],
        "    return stock",
    ]
    keep = symbol_window(src, frozenset({"stock"}), 6)
    assert keep[:3] == [0, 1, 2] and len(src) - 1 in keep and len(keep) <= 6
    assert len(src) - 2 in keep  # a matching line comes with its neighbour: it reads as code
    # a match whose context does not fit is left out, not shown as a lone line
    assert symbol_window(src, frozenset({"stock"}), 4) == [0, 1, 2]
    assert symbol_window(src[:5], frozenset(), 6) == [0, 1, 2, 3, 4]
    # a match inside a method of a class window comes with that method's `def`, not the `if`
    # above it nor the close of its signature
    cls = [
        "class Retrying:",
        '    """Retry."""',
        *[f"    x{i} = {i}" for i in range(8)],
        "    def __call__(",
        "        self,",
        "    ) -> int:",
        "        if self.enabled:",
        *[f"            y{i} = {i}" for i in range(6)],
        "            return self.stock",
    ]
    keep = symbol_window(cls, frozenset({"stock"}), 8)
    assert cls.index("    def __call__(") in keep and len(cls) - 1 in keep
    assert cls.index("    ) -> int:") not in keep and cls.index("        if self.enabled:") not in keep
    assert enclosing_definitions(cls, 2)[4] is None  # a class attribute: held by the class itself
    count = local_token_counter("/nonexistent/model")
    assert count is None  # nothing local: the caller keeps the estimate
