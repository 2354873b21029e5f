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
from nanodex.errors import NanodexError, run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m inference.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(ap, ServeFile, "serve", section="server")
    config_flag(
        ap, "--base", key="base", help="base model: Hugging Face id, local folder or embedded:smollm2-135m"
    )
    config_flag(
        ap,
        "--adapter",
        key="adapters",
        action="append",
        metavar="[NAME=]DIR",
        help="LoRA adapter folder to serve as model NAME (default: the folder's name); repeatable, replaces the file's list",
    )
    config_flag(ap, "--served-model-name", key="served_model_name", help="the base model's name in the API")
    config_flag(ap, "--host", key="host", help="address to listen on (0.0.0.0 = every interface)")
    config_flag(ap, "--port", key="port", help="port")
    config_flag(
        ap,
        "--api-key-env",
        key="api_key_env",
        metavar="VAR",
        help="require the key held in environment variable VAR",
    )
    config_flag(
        ap, "--max-lora-rank", key="max_lora_rank", help="largest adapter rank (0 = fit the adapters)"
    )
    config_flag(ap, "--max-loras", key="max_loras", help="adapters in one batch (0 = as many as served)")
    config_flag(
        ap,
        "--allow-runtime-lora",
        key="allow_runtime_lora",
        action="store_true",
        help="enable POST /v1/load_lora_adapter and /v1/unload_lora_adapter",
    )
    config_flag(ap, "--max-model-len", key="max_model_len", help="prompt + answer tokens per request")
    config_flag(ap, "--dtype", key="dtype", help="weights dtype (auto = float32 on CPU)")
    config_flag(ap, "--log-file", key="log_file", help="vLLM's log (default .nanodex/logs/vllm-<port>.log)")
    config_flag(
        ap, "--startup-timeout", key="startup_timeout_s", metavar="S", help="seconds to wait for /health"
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The config file's `server:` section with the given flags on top."""
    return load_from_args(args)


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
