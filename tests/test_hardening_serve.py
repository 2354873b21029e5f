"""Issue 17, serving: with an API key set, no route of vLLM's app answers without it (F2).

The app is vLLM 0.32's real FastAPI app, built by vLLM's own `build_app` from the argv nanodex's
VllmServer starts it with (no model is loaded: a request that passes the key check would reach a
handler, which is what the test must never see). Every route the app exposes is enumerated from
`app.routes`, not listed here by hand. Failed before: /invocations, /tokenize, /detokenize,
/metrics, /version, /ping, /health and the docs answered keyless requests.
"""

from __future__ import annotations

import os
import re
import sys
import typing
from pathlib import Path

import pytest

pytest.importorskip("vllm")

KEY = "s3cret-test-key"


def _server_argv(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], dict[str, str]]:
    """The vLLM argv and environment VllmServer would use with a key (model checks skipped)."""
    from inference.config import ServerConfig
    from inference.server import VllmServer

    monkeypatch.setenv("NANODEX_TEST_KEY", KEY)
    srv = object.__new__(VllmServer)
    srv.cfg = ServerConfig(api_key_env="NANODEX_TEST_KEY")
    srv.base_path = Path("/nonexistent/model")
    srv.model_name = "m"
    srv.adapters = []
    srv.lora = True
    srv.max_lora_rank = 8
    srv.api_key = KEY
    cmd = srv.command(sys.executable, cuda=False)
    argv = cmd[cmd.index("--model") :]
    env = {"VLLM_API_KEY": KEY}
    import inference.auth as auth

    env[auth.KEY_ENV] = KEY  # what VllmServer.__init__ puts in the server's environment
    return argv, env


@pytest.fixture(scope="module")
def vllm_app():
    """vLLM's app for every task it supports, with runtime LoRA routes on (the most routes)."""
    mp = pytest.MonkeyPatch()
    try:
        argv, env = _server_argv(mp)
        for k, v in {**env, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}.items():
            mp.setenv(k, v)
        from vllm.entrypoints.launchers.app import build_app
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
        from vllm.tasks import SupportedTask
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
        tasks = tuple(typing.get_args(SupportedTask))
        yield build_app(args, tasks, None)
    finally:
        mp.undo()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_f2_every_route_refuses_a_keyless_request(vllm_app) -> None:
    from starlette.routing import Mount, WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    client = TestClient(vllm_app, raise_server_exceptions=False)  # no lifespan: no engine needed
    tried: list[str] = []
    answered: list[str] = []
    for route in vllm_app.routes:
        path = _concrete(route.path)
        if isinstance(route, WebSocketRoute) or type(route).__name__ == "APIWebSocketRoute":
            tried.append(f"WS {path}")
            try:
                with client.websocket_connect(path):
                    answered.append(f"WS {path}")
            except WebSocketDisconnect:
                pass
            continue
        methods = sorted(getattr(route, "methods", None) or ["GET", "POST"]) + ["OPTIONS"]
        if isinstance(route, Mount):
            path = path.rstrip("/") + "/"
        for method in methods:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
                resp = client.request(method, path, headers=headers, json={})
                tried.append(f"{method} {path}")
                if resp.status_code != 401:
                    answered.append(f"{method} {path} {headers} -> {resp.status_code}")
    paths = {t.split(" ", 1)[1] for t in tried}
    assert {"/invocations", "/tokenize", "/v1/chat/completions", "/metrics", "/health"} <= paths
    print(f"F2: {len(tried)} keyless requests to {len(paths)} paths, {len(answered)} answered")
    assert answered == [], answered
    # the key itself opens the door (the check is not simply "refuse all")
    ok = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code != 401


def test_f2_middleware_never_comes_up_open(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference.auth import KEY_ENV, RequireApiKey

    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(RuntimeError, match="refusing to serve open"):
        RequireApiKey(lambda *a: None)
    assert os.environ.get(KEY_ENV) is None
