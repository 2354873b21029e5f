"""`python -m inference.serve`: serve BASE plus LoRA adapters with vLLM's OpenAI API until Ctrl-C.

Checks everything it can before starting vLLM (vLLM installed, port free, each adapter a PEFT
LoRA folder trained on BASE with a rank the server accepts), waits for /health, prints the
endpoint and the model names, and on Ctrl-C (or SIGTERM) stops vLLM and its engine processes.

Runtime adapter loading: start with --allow-runtime-lora, then
  curl -X POST http://127.0.0.1:8000/v1/load_lora_adapter -H 'Content-Type: application/json' \\
       -d '{"lora_name": "expert2", "lora_path": "/abs/path/to/adapter"}'
(and /v1/unload_lora_adapter with {"lora_name": ...}); `VllmServer.load_adapter("name=DIR")` does
the same from Python after the same checks.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from inference.config import ServeFile, ServerConfig
from inference.server import VllmServer
from nanodex.config import load_config
from nanodex.errors import NanodexError, run_main
from nanodex.log import setup_logging

DEFAULT_CONFIG = "config/serve.yaml"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m inference.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--config", help=f"YAML config with a `server:` section (e.g. {DEFAULT_CONFIG})")
    ap.add_argument("--base", help="base model: Hugging Face id, local folder or embedded:smollm2-135m")
    ap.add_argument(
        "--adapter",
        action="append",
        metavar="[NAME=]DIR",
        help="LoRA adapter folder to serve as model NAME (default: the folder's name); repeatable",
    )
    ap.add_argument("--served-model-name", help="the base model's name in the API (default: from --base)")
    ap.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 = every interface)")
    ap.add_argument("--port", type=int, help="port (default 8000)")
    ap.add_argument("--api-key-env", metavar="VAR", help="require the key held in environment variable VAR")
    ap.add_argument("--max-lora-rank", type=int, help="largest adapter rank (0 = fit the adapters)")
    ap.add_argument("--max-loras", type=int, help="adapters in one batch (0 = as many as served)")
    ap.add_argument(
        "--allow-runtime-lora",
        action="store_true",
        default=None,
        help="enable POST /v1/load_lora_adapter and /v1/unload_lora_adapter",
    )
    ap.add_argument("--max-model-len", type=int, help="prompt + answer tokens per request")
    ap.add_argument("--dtype", help="weights dtype (auto = float32 on CPU)")
    ap.add_argument("--log-file", help="vLLM's log (default .nanodex/logs/vllm-<port>.log)")
    ap.add_argument("--startup-timeout", type=float, metavar="S", help="seconds to wait for /health")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def server_config(args: argparse.Namespace) -> ServerConfig:
    """config file `server:` section with the flags on top (repeated --adapter replaces the list)."""
    file_cfg = load_config(ServeFile, args.config).server
    overrides = {
        "base": args.base,
        "adapters": args.adapter,
        "served_model_name": args.served_model_name,
        "host": args.host,
        "port": args.port,
        "api_key_env": args.api_key_env,
        "max_lora_rank": args.max_lora_rank,
        "max_loras": args.max_loras,
        "allow_runtime_lora": args.allow_runtime_lora,
        "max_model_len": args.max_model_len,
        "dtype": args.dtype,
        "log_file": args.log_file,
        "startup_timeout_s": args.startup_timeout,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(file_cfg, key, value)
    return file_cfg


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # stop like Ctrl-C: the `with` block shuts vLLM down


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = server_config(args)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    server = VllmServer(cfg)
    try:
        with server:
            names = ", ".join(
                [
                    f"{server.model_name} (base)",
                    *(f"{a.name} (adapter, rank {a.rank})" for a in server.adapters),
                ]
            )
            print(f"serving {names} at {server.base_url}", flush=True)
            print(f"log: {server.log_file}; Ctrl-C stops the server", flush=True)
            status = server.wait()
        raise NanodexError(f"vLLM exited with status {status}", f"see {server.log_file}")
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
