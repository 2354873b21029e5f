"""Bad-input probe (issue 17): run a corpus of hostile-but-fair cases against the stages' CLIs.

Each case builds its bad input in a temporary folder, runs the stage as a user would
(`python -m <stage> ...`, `python inference/query.py ...`) and checks the outcome:

- an expected failure must exit non-zero with exactly one `nanodex: error: ... (fix: ...)` line
  on stderr and no traceback, and must leave the files it was pointed at unchanged;
- an expected success (an unreadable folder, a hostile .git/config) must exit 0 with the bad
  part counted, and nothing the bad input asked for may have happened (no marker file).

Prints one row per case and the table: cases tried, handled, failed, tracebacks. Exit status 1
when any case failed. `--skip-vllm` leaves out the API-key case, which imports vLLM (slow).

    PYTHONPATH=. .venv/bin/python scripts/probe.py
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "python"


@dataclass
class Outcome:
    case: str
    stage: str
    handled: bool
    traceback: bool
    detail: str


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


class Probe:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.results: list[Outcome] = []
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "NANODEX_CACHE": str(work / "cache")}

    # ---- running ---------------------------------------------------------------------------
    def run(self, argv: list[str], prefix: list[str] | None = None, timeout: float = 300) -> Ran:
        try:
            proc = subprocess.run(
                [*(prefix or []), *argv],
                capture_output=True,
                text=True,
                cwd=self.work,
                env=self.env,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return Ran(-1, "", f"timed out after {timeout:g} s")
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    def stage(self, module: str, *args: str, prefix: list[str] | None = None) -> Ran:
        if module == "inference/query.py":
            return self.run([sys.executable, str(ROOT / module), *args], prefix)
        return self.run([sys.executable, "-m", module, *args], prefix)

    def record(self, case: str, stage: str, handled: bool, ran: Ran | None, detail: str) -> None:
        tb = ran is not None and "Traceback" in ran.stderr + ran.stdout
        self.results.append(Outcome(case, stage, handled and not tb, tb, detail))

    def expect_error(
        self,
        case: str,
        module: str,
        args: list[str],
        needles: tuple[str, ...] = (),
        keep: tuple[Path, ...] = (),
    ) -> None:
        """Non-zero exit, one `nanodex: error:` line with a fix, no traceback, `keep` files unchanged."""
        before = {p: _fingerprint(p) for p in keep}
        ran = self.stage(module, *args)
        lines = [ln for ln in ran.stderr.splitlines() if ln.startswith("nanodex: error:")]
        problems = []
        if ran.returncode == 0:
            problems.append("exit 0")
        if len(lines) != 1:
            problems.append(f"{len(lines)} error lines")
        elif "(fix: " not in lines[0]:
            problems.append("no fix")
        problems += [f"missing {n!r}" for n in needles if not lines or n not in lines[0]]
        problems += [f"{p.name} changed" for p in keep if _fingerprint(p) != before[p]]
        detail = lines[0][len("nanodex: error: ") :] if lines else _last(ran)
        self.record(
            case, module, not problems, ran, "; ".join(problems) + (" | " if problems else "") + detail
        )

    def expect_ok(
        self,
        case: str,
        module: str,
        args: list[str],
        check: Callable[[Ran], str | None],
        prefix: list[str] | None = None,
    ) -> None:
        """Exit 0 and `check(ran)` returns None (else what is wrong)."""
        ran = self.stage(module, *args, prefix=prefix)
        problem = f"exit {ran.returncode}: {_last(ran)}" if ran.returncode != 0 else check(ran)
        self.record(case, module, problem is None, ran, problem or "ok")

    # ---- table -----------------------------------------------------------------------------
    def table(self) -> str:
        out = [f"{'stage':<22} {'case':<48} result"]
        for r in self.results:
            mark = "handled" if r.handled else ("TRACEBACK" if r.traceback else "FAILED")
            out.append(f"{r.stage:<22} {r.case:<48} {mark}: {r.detail[:110]}")
        tried = len(self.results)
        handled = sum(r.handled for r in self.results)
        tracebacks = sum(r.traceback for r in self.results)
        out.append("")
        out.append(
            f"cases tried {tried}, handled {handled}, failed {tried - handled}, tracebacks {tracebacks}"
        )
        return "\n".join(out)


def _fingerprint(p: Path) -> tuple | None:
    if p.is_dir():
        return tuple(sorted((str(q.relative_to(p)), q.read_bytes()) for q in p.rglob("*") if q.is_file()))
    return (p.read_bytes(),) if p.exists() else None


def _last(ran: Ran) -> str:
    lines = [ln for ln in (ran.stderr or ran.stdout).splitlines() if ln.strip()]
    return lines[-1][:200] if lines else f"exit {ran.returncode}, no output"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _sql(db: Path, statement: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(statement)
    conn.commit()
    conn.close()


# ---- the corpus ------------------------------------------------------------------------------
def extraction_cases(p: Probe) -> Path:
    w = p.work
    repo = w / "repo"
    shutil.copytree(FIXTURE, repo)
    graph = w / "graph.sqlite"
    ran = p.stage("extractor", "--repo", str(repo), "--out", str(graph), "--languages", "python")
    if ran.returncode != 0:
        raise SystemExit(f"probe: the good graph could not be built: {_last(ran)}")
    ext = ["--languages", "python"]

    p.expect_error(
        "repository path missing", "extractor", ["--repo", str(w / "nope"), "--out", str(w / "g1.sqlite")]
    )
    (w / "afile").write_text("x")
    p.expect_error(
        "repository path is a file", "extractor", ["--repo", str(w / "afile"), "--out", str(w / "g1.sqlite")]
    )
    (w / "empty").mkdir()
    p.expect_error(
        "repository with no source",
        "extractor",
        ["--repo", str(w / "empty"), "--out", str(w / "g1.sqlite"), *ext],
    )
    p.expect_error(
        "unknown language",
        "extractor",
        ["--repo", str(repo), "--out", str(w / "g1.sqlite"), "--languages", "cobol"],
    )
    bad_yaml = w / "bad.yaml"
    bad_yaml.write_text("languages: [python\nexclude: {")
    p.expect_error("config that is not YAML", "extractor", ["--config", str(bad_yaml), "--repo", str(repo)])
    odd_key = w / "odd.yaml"
    odd_key.write_text("languages: [python]\nnot_a_key: 1\n")
    p.expect_error("config with an unknown key", "extractor", ["--config", str(odd_key), "--repo", str(repo)])

    # hostile .git/config (F1)
    hostile = w / "hostile"
    shutil.copytree(FIXTURE, hostile)
    _git(hostile, "init", "-q")
    _git(hostile, "-c", "user.email=p@p", "-c", "user.name=p", "add", "-A")
    _git(hostile, "-c", "user.email=p@p", "-c", "user.name=p", "commit", "-q", "-m", "x")
    (hostile / "new_untracked.py").write_text("def n():\n    pass\n")
    marker = w / "PWNED"
    hooks = hostile / "hooks"
    hooks.mkdir()
    for name in ("pre-commit", "post-checkout", "post-index-change", "reference-transaction"):
        (hooks / name).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (hooks / name).chmod(0o755)
    for key, value in (
        ("core.fsmonitor", f"touch {marker}; false"),
        ("core.pager", f"touch {marker}; cat"),
        ("core.hooksPath", str(hooks)),
        ("credential.helper", f"!touch {marker}"),
        ("core.sshCommand", f"touch {marker}"),
        ("diff.external", f"touch {marker}"),
    ):
        _git(hostile, "config", key, value)
    p.expect_ok(
        "hostile .git/config (fsmonitor, pager, hooks)",
        "extractor",
        ["--repo", str(hostile), "--out", str(w / "hostile.sqlite"), *ext],
        lambda ran: "a command from .git/config ran" if marker.exists() else None,
    )

    # an unreadable folder (F4): as an unprivileged user, else chmod means nothing to root
    prefix: list[str] | None = []
    if os.geteuid() == 0:
        ok = (
            shutil.which("unshare")
            and subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode == 0
        )
        prefix = ["unshare", "--user"] if ok else None
    if prefix is not None:
        open_base = Path(tempfile.mkdtemp(prefix="nanodex-probe-open-"))
        open_base.chmod(0o777)
        locked_repo = open_base / "repo"
        shutil.copytree(FIXTURE, locked_repo)
        for q in [locked_repo, *locked_repo.rglob("*")]:
            q.chmod(0o755 if q.is_dir() else 0o644)
        (locked_repo / "locked").mkdir()
        (locked_repo / "locked" / "x.py").write_text("def x():\n    pass\n")
        (locked_repo / "locked").chmod(0)
        (open_base / "out").mkdir(mode=0o777)
        (open_base / "out").chmod(0o777)

        def counted(ran: Ran) -> str | None:
            report = json.loads(ran.stdout)
            return None if "locked" in report["skipped"] else f"not counted: {report['skipped']}"

        p.expect_ok(
            "chmod-000 folder",
            "extractor",
            ["--repo", str(locked_repo), "--out", str(open_base / "out" / "g.sqlite"), "--json", *ext],
            counted,
            prefix=prefix,
        )
        (locked_repo / "locked").chmod(0o755)
        shutil.rmtree(open_base, ignore_errors=True)

    # binary, non-UTF-8, symlink loop, link outside, dangling link
    messy = w / "messy"
    shutil.copytree(FIXTURE, messy)
    (messy / "bin.py").write_bytes(b"\x00\x01def x(): pass\n")
    (messy / "latin.py").write_bytes("def caf\xe9():\n    pass\n".encode("latin-1"))
    os.symlink(messy, messy / "loop")
    os.symlink("/etc/passwd", messy / "passwd.py")
    os.symlink(messy / "missing.py", messy / "dangling.py")
    p.expect_ok(
        "binary, latin-1, loops and outside links",
        "extractor",
        ["--repo", str(messy), "--out", str(w / "messy.sqlite"), "--json", *ext],
        lambda ran: None if len(json.loads(ran.stdout)["skipped"]) >= 4 else "not all skipped",
    )

    # --out that is not a graph (F5)
    notes = w / "notes.txt"
    notes.write_text("precious notes\n")
    p.expect_error(
        "--out is a text file",
        "extractor",
        ["--repo", str(repo), "--out", str(notes), *ext],
        ("refusing",),
        (notes,),
    )
    p.expect_error(
        "--out is a text file, --full",
        "extractor",
        ["--repo", str(repo), "--out", str(notes), "--full", *ext],
        ("refusing",),
        (notes,),
    )
    other = w / "other.sqlite"
    _sql(other, "CREATE TABLE accounts(id INTEGER)")
    p.expect_error(
        "--out is another SQLite db, --full",
        "extractor",
        ["--repo", str(repo), "--out", str(other), "--full", *ext],
        ("refusing",),
        (other,),
    )
    (w / "outdir").mkdir()
    p.expect_error(
        "--out is a folder", "extractor", ["--repo", str(repo), "--out", str(w / "outdir"), *ext], ("folder",)
    )
    p.expect_error(
        "--out under a file", "extractor", ["--repo", str(repo), "--out", str(w / "afile" / "g.sqlite"), *ext]
    )

    # damaged graphs (F6, F7)
    def damaged(name: str, how: Callable[[Path], None]) -> Path:
        g = w / f"{name}.sqlite"
        shutil.copy(graph, g)
        how(g)
        return g

    truncated = damaged("truncated", lambda g: g.write_bytes(g.read_bytes()[: g.stat().st_size // 2]))
    flipped = damaged(
        "flipped",
        lambda g: g.write_bytes(
            bytes(b ^ 0xFF if i > 4096 and i % 89 == 0 else b for i, b in enumerate(g.read_bytes()))
        ),
    )
    no_edges = damaged("noedges", lambda g: _sql(g, "DROP TABLE edges"))
    old_version = damaged(
        "oldversion", lambda g: _sql(g, "UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    )
    bad_text = damaged("badtext", lambda g: _sql(g, "UPDATE nodes SET signature = CAST(X'C3FFFE' AS TEXT)"))
    garbage = w / "garbage.sqlite"
    garbage.write_bytes(secrets.token_bytes(8192))
    for name, g in (
        ("truncated", truncated),
        ("bytes flipped", flipped),
        ("edges table dropped", no_edges),
        ("other schema version", old_version),
    ):
        p.expect_error(
            f"extract onto a graph: {name}",
            "extractor",
            ["--repo", str(repo), "--out", str(g), *ext],
            ("--full",),
            (g,),
        )
        p.expect_error(f"inspect a graph: {name}", "extractor.inspect", ["--graph", str(g)], ("--full",))
    p.expect_error(
        "extract onto random bytes",
        "extractor",
        ["--repo", str(repo), "--out", str(garbage), *ext],
        (),
        (garbage,),
    )
    p.expect_error("inspect random bytes", "extractor.inspect", ["--graph", str(garbage)])
    p.expect_error(
        "export a graph with non-UTF-8 text",
        "extractor.export",
        ["--graph", str(bad_text), "--out", str(w / "x.jsonl")],
        ("damaged",),
    )
    p.expect_error("inspect a missing graph", "extractor.inspect", ["--graph", str(w / "none.sqlite")])
    p.expect_error(
        "brain on a graph without edges",
        "brain",
        ["--graph", str(no_edges), "--out", str(w / "nodes-x")],
        ("damaged",),
    )
    p.expect_ok(
        "--full over a truncated graph rebuilds it",
        "extractor",
        ["--repo", str(repo), "--out", str(truncated), "--full", *ext],
        lambda ran: None,
    )
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = w / f".graph.sqlite.tmp-{dead.pid}-x1"
    stale.write_bytes(b"half")
    p.expect_ok(
        "stale temporary of a killed run",
        "extractor",
        ["--repo", str(repo), "--out", str(graph), "--full", *ext],
        lambda ran: "left behind" if stale.exists() else None,
    )
    return graph


def dataset_cases(p: Probe, graph: Path) -> None:
    w = p.work
    nodes = w / "nodes"
    ran = p.stage("brain", "--graph", str(graph), "--out", str(nodes))
    if ran.returncode != 0:
        raise SystemExit(f"probe: brain failed: {_last(ran)}")
    for name, damage in (
        ("a brain node file cut off", lambda f: f.write_bytes(f.read_bytes()[:40])),
        ("a brain node file not UTF-8", lambda f: f.write_bytes(b"\xff\xfe\x00")),
    ):
        broken = w / f"nodes-{len(name)}-{secrets.token_hex(2)}"
        shutil.copytree(nodes, broken)
        damage(sorted(broken.glob("*.json"))[2])
        out = w / f"ds-{broken.name}"
        p.expect_error(
            name,
            "dataset",
            ["--graph", str(graph), "--nodes-dir", str(broken), "--out", str(out)],
            ("make brain",),
        )
    p.expect_error(
        "dataset without brain nodes",
        "dataset",
        ["--graph", str(graph), "--nodes-dir", str(w / "none"), "--out", str(w / "ds0")],
    )
    p.expect_error(
        "dataset without a graph",
        "dataset",
        ["--graph", str(w / "none.sqlite"), "--nodes-dir", str(nodes), "--out", str(w / "ds0")],
    )


def config_cases(p: Probe, graph: Path) -> None:
    """Bad configuration, from a flag or a YAML file: one line naming the key, every stage alike."""
    w = p.work
    search = ["--graph", str(graph), "--question", "where is the cart?"]
    p.expect_error(
        "flag with a value of the wrong type", "brain.search", [*search, "--k", "many"], ("search.k",)
    )
    p.expect_error(
        "flag with a count that is not a number", "dataset", ["--graph", str(graph), "--count", "explain=x"]
    )
    p.expect_error("flag below its floor (k -2)", "brain.search", [*search, "--k", "-2"], ("at least 1",))
    p.expect_error(
        "flag below its floor (count -3)",
        "dataset",
        ["--graph", str(graph), "--count", "explain=-3"],
        ("at least 0",),
    )
    files = {
        "config key that does not exist": ("nope: 1\n", "unknown config key 'nope'"),
        "config value of the wrong type": ("seed: seven\n", "must be int"),
        "config file not YAML": ("seed: [1\n", "invalid YAML"),
        "config file a list": ("- 1\n- 2\n", "top level must be a mapping"),
    }
    for case, (text, needle) in files.items():
        bad = w / f"config-{secrets.token_hex(3)}.yaml"
        bad.write_text(text, encoding="utf-8")
        out = w / f"ds-{bad.stem}"
        p.expect_error(
            case, "dataset", ["--config", str(bad), "--graph", str(graph), "--out", str(out)], (needle,)
        )
    p.expect_error(
        "config file missing", "trainer", ["--config", str(w / "none.yaml")], ("config file not found",)
    )


def trainer_cases(p: Probe) -> None:
    w = p.work
    good = {
        "prompt": "What does add do?",
        "response": "It adds [calc.py:1-2].",
        "messages": [
            {"role": "user", "content": "What does add do?"},
            {"role": "assistant", "content": "It adds [calc.py:1-2]."},
        ],
    }
    cases = {
        "train rows not UTF-8": (json.dumps(good) + "\n").encode() + b'{"prompt": "caf\xe9"}\n',
        "train row with an empty answer": (
            json.dumps({**good, "messages": [good["messages"][0], {"role": "assistant", "content": " "}]})
            + "\n"
        ).encode(),
        "train file empty": b"",
        "train row not JSON": b"{bad\n",
        "train row a list": b"[1, 2]\n",
    }
    for i, (name, raw) in enumerate(cases.items()):
        f = w / f"train-{i}.jsonl"
        f.write_bytes(raw)
        p.expect_error(name, "trainer", ["--dataset", str(f), "--out", str(w / f"adapter-{i}")])
    mixed = w / "mixed"
    mixed.mkdir()
    (mixed / "train.jsonl").write_text(json.dumps(good) + "\n")
    (mixed / "stats.json").write_text(json.dumps({"outputs_sha256": {"train.jsonl": "0" * 64}}))
    p.expect_error(
        "train.jsonl from another run than stats.json",
        "trainer",
        ["--dataset", str(mixed / "train.jsonl"), "--out", str(w / "adapter-m")],
        ("make dataset",),
    )
    ckpts = w / "adapter-r.checkpoints"
    for step in (2, 4):
        ck = ckpts / f"checkpoint-{step}"
        ck.mkdir(parents=True)
        (ck / "trainer_state.json").write_text('{"global_step": ')
        (ck / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    ok_train = w / "train-ok.jsonl"
    ok_train.write_text(json.dumps(good) + "\n")
    p.expect_error(
        "--resume with every checkpoint damaged",
        "trainer",
        ["--dataset", str(ok_train), "--out", str(w / "adapter-r"), "--resume"],
        ("damaged",),
    )
    p.expect_error(
        "eval without an adapter",
        "trainer.eval",
        ["--adapter", str(w / "no-adapter"), "--dataset", str(ok_train)],
    )


class _Fake(BaseHTTPRequestHandler):
    mode = "null"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._send(200, {"data": [{"id": "expert"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.mode == "401":  # type: ignore[attr-defined]
            return self._send(401, {"error": "Unauthorized"})
        if self.server.mode == "500":  # type: ignore[attr-defined]
            return self._send(500, {"error": {"message": "engine died"}})
        choice = {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}
        return self._send(200, {"model": "expert", "choices": [choice]})


def query_cases(p: Probe) -> None:
    q = "inference/query.py"
    for port in ("99999", "0", "abc"):
        p.expect_error(
            f"endpoint port {port}",
            q,
            ["--endpoint", f"http://127.0.0.1:{port}/v1", "--question", "q"],
            ("port",),
        )
    p.expect_error("endpoint not http", q, ["--endpoint", "localhost:8000", "--question", "q"])
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    p.expect_error(
        "no server on the port",
        q,
        ["--endpoint", f"http://127.0.0.1:{free}/v1", "--question", "q"],
        ("connection refused",),
    )
    for mode in ("null", "401", "500"):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
        srv.mode = mode  # type: ignore[attr-defined]
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        p.expect_error(f"server answers {mode}", q, ["--endpoint", url, "--question", "q"])
        srv.shutdown()
        srv.server_close()
    p.expect_error(
        "serve a base that does not exist", "inference.serve", ["--base", str(p.work / "no-model")]
    )


SANDBOX_PEEK = """
import os, sys
home, secret = sys.argv[1], sys.argv[2]
seen = []
for d in (home, "/root", "/home"):
    try:
        seen += [f"{d}/{n}" for n in os.listdir(d)]
    except OSError:
        pass
try:
    seen.append(open(secret).read())
except OSError:
    pass
print(repr(seen))
"""


def sandbox_case(p: Probe) -> None:
    """F3, in a child process: a sandboxed script lists the homes and reads a secret in home."""
    secret = Path.home() / f".nanodex-probe-{secrets.token_hex(6)}"
    secret.write_text("TOP-SECRET")
    script = f"""
import sys
from pathlib import Path
from selftune.config import SandboxConfig
from selftune.sandbox import kept_paths, probe_namespaces, run_in_sandbox
if probe_namespaces():
    print("NO-NAMESPACES"); sys.exit(0)
scratch = Path(sys.argv[1]); scratch.mkdir()
(scratch / "peek.py").write_text({SANDBOX_PEEK!r})
res = run_in_sandbox([sys.executable, "peek.py", str(Path.home()), {str(secret)!r}], scratch, SandboxConfig(isolation="namespaces"))
seen = eval(res.stdout.strip() or "[]")
kept = kept_paths(scratch.resolve(), [sys.executable])
leaks = [s for s in seen if s == "TOP-SECRET" or not any(k.startswith(s) for k in kept)]
print("LEAKS", leaks)
"""
    try:
        ran = p.run([sys.executable, "-c", script, str(p.work / "scratch")])
    finally:
        secret.unlink()
    if "NO-NAMESPACES" in ran.stdout:
        p.record("sandboxed test reads home", "self-tune sandbox", True, ran, "skipped: no namespaces here")
        return
    ok = ran.returncode == 0 and "LEAKS []" in ran.stdout
    p.record(
        "sandboxed test lists and reads home",
        "self-tune sandbox",
        ok,
        ran,
        "ok" if ok else _last(ran) + ran.stdout[-200:],
    )


def vllm_case(p: Probe) -> None:
    """F2: every route of vLLM's real app, built from the argv nanodex starts it with, refuses a
    keyless request (no model loaded: a request that got through would reach a handler)."""
    script = r"""
import os, re, sys, typing
from pathlib import Path
from inference.auth import KEY_ENV
from inference.config import ServerConfig
from inference.server import VllmServer
os.environ.update({"K": "key1", "VLLM_API_KEY": "key1", KEY_ENV: "key1", "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"})
srv = object.__new__(VllmServer)
srv.cfg = ServerConfig(api_key_env="K"); srv.base_path = Path("/none"); srv.model_name = "m"
srv.adapters = []; srv.lora = True; srv.max_lora_rank = 8; srv.api_key = "key1"
cmd = srv.command(sys.executable, cuda=False)
from vllm.entrypoints.launchers.app import build_app
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.tasks import SupportedTask
from vllm.utils.argparse_utils import FlexibleArgumentParser
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
app = build_app(make_arg_parser(FlexibleArgumentParser()).parse_args(cmd[cmd.index("--model"):]), tuple(typing.get_args(SupportedTask)), None)
c = TestClient(app, raise_server_exceptions=False)
tried = answered = 0
for r in app.routes:
    path = re.sub(r"\{[^}]+\}", "x", r.path)
    if "WebSocket" in type(r).__name__:
        tried += 1
        try:
            with c.websocket_connect(path):
                answered += 1
        except WebSocketDisconnect:
            pass
        continue
    for m in sorted(getattr(r, "methods", None) or ["GET", "POST"]) + ["OPTIONS"]:
        tried += 1
        answered += c.request(m, path, json={}).status_code != 401
print(f"ROUTES {len(app.routes)} REQUESTS {tried} ANSWERED {answered}")
"""
    ran = p.run([sys.executable, "-c", script], timeout=600)
    line = next((ln for ln in ran.stdout.splitlines() if ln.startswith("ROUTES")), "")
    ok = ran.returncode == 0 and line.endswith("ANSWERED 0")
    p.record("keyless request to every vLLM route", "inference.serve", ok, ran, line or _last(ran))


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/probe.py", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--skip-vllm", action="store_true", help="leave out the API-key case (imports vLLM: slow)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nanodex-probe-"))
    probe = Probe(work)
    t0 = time.perf_counter()
    try:
        graph = extraction_cases(probe)
        dataset_cases(probe, graph)
        config_cases(probe, graph)
        trainer_cases(probe)
        query_cases(probe)
        sandbox_case(probe)
        if not args.skip_vllm:
            vllm_case(probe)
    finally:
        if args.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(probe.table())
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0 if all(r.handled for r in probe.results) else 1


if __name__ == "__main__":
    sys.exit(main())
