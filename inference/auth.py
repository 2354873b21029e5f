"""The API key on every route of the served model, as an ASGI middleware nanodex adds to vLLM.

vLLM's own key check (`--api-key` / VLLM_API_KEY) guards only paths under /v1, /v2, /inference
and /cohere: /invocations (a chat completion under another name), /tokenize, /detokenize,
/metrics, /version, /ping and the docs answer anyone. nanodex therefore starts vLLM with
`--middleware inference.auth.RequireApiKey` whenever a key is set: vLLM adds it to the app in
every API-server process (it is an import path, not a patch of this process), as the outermost
of its own middlewares, and it refuses every HTTP request and WebSocket without the bearer key,
whatever the path or method. Nothing is exempt, /health included: nanodex's own readiness check
sends the key too.

The key comes from the environment variable KEY_ENV, which nanodex sets for the server process
only (never on the command line, where `ps` shows it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

KEY_ENV = "NANODEX_SERVE_API_KEY"
MIDDLEWARE = "inference.auth.RequireApiKey"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UNAUTHORIZED = json.dumps(
    {"error": "Unauthorized: send the API key as `Authorization: Bearer <key>`"}
).encode()


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class RequireApiKey:
    """Pure ASGI middleware: a request passes only with `Authorization: Bearer <key>`.

    Constructed with no key, it reads KEY_ENV; with neither it refuses to start (a server told to
    require a key must never come up open).
    """

    def __init__(self, app: ASGIApp, key: str | None = None) -> None:
        key = key if key is not None else os.environ.get(KEY_ENV, "")
        if not key:
            raise RuntimeError(f"{MIDDLEWARE}: no API key ({KEY_ENV} is not set); refusing to serve open")
        self.app = app
        self._key = _digest(key)

    def authorized(self, scope: Scope) -> bool:
        values = [v for k, v in scope.get("headers") or [] if k.lower() == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, token = values[0].decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(_digest(token.strip()), self._key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.authorized(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})
