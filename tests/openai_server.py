"""A real OpenAI-compatible HTTP server for tests: stdlib http.server on 127.0.0.1, port 0, in a thread.

It speaks the part of the API nanodex uses (GET /v1/models, POST /v1/chat/completions plain and
as server-sent events, the runtime adapter routes) over real sockets, so nanodex.chat_client
and every stage built on it are tested through their real HTTP code. `mode` picks a failure to
serve; `reply` computes the answer from the request (the summarizer and paraphraser tests).
The real vLLM server answers the same requests in tests/test_serve_e2e.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "500", "404", "401", "html", "slow", "null", "no-models")


class FakeOpenAI(ThreadingHTTPServer):
    """Answers /v1/models and /v1/chat/completions; `mode` picks the behaviour under test."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.answer = "It returns the new Item [shop/cart.py:10-13], see [shop/cart.py:90-99]."
        self.reply: Callable[[dict[str, Any]], str] | None = None  # answer from the request body
        self.models = [{"id": "base", "parent": None}, {"id": "expert", "parent": "base"}]
        self.requests: list[dict[str, Any]] = []  # every request: method, path, body, auth
        self.runtime_lora = True  # answers /v1/load_lora_adapter (vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def chats(self) -> list[dict[str, Any]]:
        """The bodies of the chat requests received, in order."""
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _record(self, body: Any) -> None:
        with self.server.lock:
            self.server.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "body": body,
                    "auth": self.headers.get("Authorization"),
                }
            )

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._record(None)
        if self.server.mode == "401":
            return self._send(401, {"error": "Unauthorized"})
        if self.path != "/v1/models":
            return self._send(404, {"detail": "Not Found"})
        models = [] if self.server.mode == "no-models" else self.server.models
        return self._send(200, {"object": "list", "data": models})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._record(body)
        mode = self.server.mode
        if self.path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
            if self.server.runtime_lora:  # vLLM answers these in plain text
                return self._send(200, b"Success: LoRA adapter loaded", "text/plain")
            return self._send(404, {"detail": "Not Found"})  # vLLM without runtime LoRA updating
        if mode == "500":
            return self._send(500, {"error": {"message": "engine\ncrashed", "type": "InternalServerError"}})
        if mode == "404":
            return self._send(404, {"error": {"message": f"The model `{body['model']}` does not exist."}})
        if mode == "401":
            return self._send(401, {"error": "Unauthorized"})
        if mode == "html":
            return self._send(200, b"<html>hello</html>", "text/html")
        if mode == "slow":
            time.sleep(1.5)
        text = (
            None if mode == "null" else self.server.reply(body) if self.server.reply else self.server.answer
        )
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        if body.get("stream"):
            return self._stream(body, text, usage)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return self._send(200, {"model": body["model"], "choices": [choice], "usage": usage})

    def _stream(self, body: dict[str, Any], text: str | None, usage: dict[str, int]) -> None:
        """Server-sent events as vLLM sends them: a role delta, content pieces, finish, usage, [DONE]."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def event(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())

        event({"role": "assistant"})  # carries no content: a null-content stream is only this
        if text is not None:  # vLLM sends an empty content delta when the model stops at once
            for piece in [text[i : i + 7] for i in range(0, len(text), 7)] or [""]:
                event({"content": piece})
        event({}, "stop")
        self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())


@contextmanager
def running() -> Iterator[FakeOpenAI]:
    """A started server, shut down and closed on exit."""
    srv = FakeOpenAI()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
