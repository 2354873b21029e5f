"""Issue 17, query side (smaller items): an impossible port is named as such, and a reply with
null content is an error, not an empty answer with exit 0. Each failed before (noted per test)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.hardening import ROOT, Ran, assert_one_line_error


class _NullContent(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # /v1/models
        self._send({"data": [{"id": "expert", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for delta in ({"role": "assistant", "content": None}, {"content": None}):
                chunk = {"model": "expert", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        choice = {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}
        self._send({"model": "expert", "choices": [choice], "usage": {}})


@pytest.fixture
def null_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _NullContent)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _query(*args: str) -> Ran:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "inference" / "query.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("stream", [False, True])
def test_null_content_is_an_error_not_an_empty_answer(null_server: str, stream: bool) -> None:
    """Failed before: an empty answer was printed and the exit status was 0."""
    ran = _query(
        "--endpoint", null_server, "--question", "What does add do?", *(["--stream"] if stream else [])
    )
    assert_one_line_error(ran, "no text")


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_impossible_port_is_named(port: str) -> None:
    """Failed before: port 99999 was reported as `connection refused`."""
    ran = _query("--endpoint", f"http://127.0.0.1:{port}/v1", "--question", "q")
    line = assert_one_line_error(ran, "port")
    assert "connection refused" not in line
