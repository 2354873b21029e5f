"""The one OpenAI-compatible client (chat completions over urllib): no dependency, every failure one line.

vLLM (and any OpenAI-compatible server) is reached over plain HTTP; the only things this needs
are JSON bodies, a Bearer token and server-sent events for streaming, all in the standard
library. Transport failures (connection refused, timeouts) and server errors (HTTP 4xx/5xx with
an OpenAI error body) become a NanodexError naming the endpoint and the fix, never a traceback.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nanodex.errors import NanodexError

_URL_FIX = "pass e.g. http://127.0.0.1:8000/v1"
_SERVE_FIX = "start the server with `make serve` (or `python -m inference.serve`), or pass ENDPOINT=<url>"


def normalize_endpoint(endpoint: str) -> str:
    """`http://host:8000`, `.../v1` or `.../v1/chat/completions` -> `http://host:8000/v1`.

    The host and port are checked here, before any request: urllib would report port 99999 as a
    refused connection and a non-numeric port as a traceback, neither of which names the typo.
    """
    base = endpoint.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise NanodexError(f"endpoint '{endpoint}' is not an http(s) URL", _URL_FIX)
    parts = urllib.parse.urlsplit(base)
    if not parts.hostname:
        raise NanodexError(f"endpoint '{endpoint}' names no host", _URL_FIX)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        given = parts.netloc.rsplit(":", 1)[-1]
        raise NanodexError(
            f"endpoint '{endpoint}' has an invalid port '{given}'", "use a port from 1 to 65535, " + _URL_FIX
        )
    parts = urllib.parse.urlsplit(base)
    try:
        port = parts.port
    except ValueError:  # out of 0-65535, or not a number
        port = -1
    if not parts.hostname or port == -1 or port == 0:
        raise NanodexError(
            f"endpoint '{endpoint}' has no valid host and port (a port is 1-65535)",
            "pass e.g. http://127.0.0.1:8000/v1",
        )
    for suffix in ("/chat/completions", "/completions", "/models"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base if base.endswith("/v1") else base + "/v1"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Completion:
    """One chat completion: the text and what the server said about it."""

    text: str
    model: str
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    token_ids: list[int] | None = None  # vLLM's `return_token_ids` extension, when asked for


class ChatClient:
    """Chat completions, model listing and runtime adapter loading against one endpoint.

    Every stage that talks to a served model (query, the LLM summarizer, the paraphraser, the
    serving benchmark) uses this one class, so they share the endpoint rules, the key header and
    the one-line errors. It holds no connection state: one instance may serve many threads.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        key_env: str = "NANODEX_API_KEY",
    ) -> None:
        self.base = normalize_endpoint(endpoint)
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.key_env = key_env  # named in the fix of an HTTP 401

    @classmethod
    def from_env(cls, endpoint: str, key_env: str, *, timeout_s: float = 120.0) -> ChatClient:
        """A client sending the key held in the environment variable `key_env`, if it is set."""
        return cls(endpoint, api_key=os.environ.get(key_env) or None, timeout_s=timeout_s, key_env=key_env)

    # ---- transport ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        url = self._url(path)
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout_s)
        except urllib.error.HTTPError as err:
            raise self._http_error(err, url) from err
        except TimeoutError as err:
            raise self._timeout(url) from err
        except urllib.error.URLError as err:
            raise self._unreachable(url, err.reason) from err
        except OSError as err:  # connection reset while sending, ...
            raise self._unreachable(url, err) from err

    def _url(self, path: str) -> str:
        if path.startswith("/v1/"):
            return self.base + path[3:]
        return self.base[: -len("/v1")] + path if path.startswith("/") else f"{self.base}/{path}"

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = self._request(method, path, body)
        url = resp.geturl()
        try:
            with resp:
                raw = resp.read()
        except TimeoutError as err:
            raise self._timeout(url) from err
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise NanodexError(
                f"{url} answered something that is not JSON ({_one_line(raw[:120].decode('utf-8', 'replace'))})",
                "point ENDPOINT at an OpenAI-compatible server (vLLM: http://host:port/v1)",
            ) from err

    def _http_error(self, err: urllib.error.HTTPError, url: str) -> NanodexError:
        try:
            body = err.read().decode("utf-8", "replace")
        except OSError:
            body = ""
        message = body
        try:
            data = json.loads(body)
            if isinstance(data, dict):
                inner = data.get("error", data)
                message = (
                    inner.get("message") or inner.get("detail") or body
                    if isinstance(inner, dict)
                    else str(inner)
                )
        except json.JSONDecodeError:
            pass
        message = _one_line(message or err.reason or "no details")
        if err.code == 401:
            return NanodexError(
                f"{url} refused the request: HTTP 401 ({message})",
                f"export the server's key in {self.key_env} (or name another variable with --api-key-env)",
            )
        if err.code == 404 and "model" in message.lower():
            return NanodexError(
                f"{url}: HTTP 404, {message}",
                "pass --model with a name from the server's /v1/models (or leave it out)",
            )
        fix = (
            "check the request"
            if 400 <= err.code < 500
            else "see the server's log (`make serve` prints where it is)"
        )
        return NanodexError(f"{url}: server error HTTP {err.code} ({message})", fix)

    def _timeout(self, url: str) -> NanodexError:
        return NanodexError(
            f"no answer from {url} within {self.timeout_s:g} s",
            "raise --timeout, lower --max-tokens, or check the server",
        )

    def _unreachable(self, url: str, reason: object) -> NanodexError:
        if isinstance(reason, TimeoutError):
            return self._timeout(url)
        what = "connection refused" if isinstance(reason, ConnectionRefusedError) else _one_line(str(reason))
        return NanodexError(f"no server answers at {url} ({what})", _SERVE_FIX)

    # ---- API ---------------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """The server's /v1/models entries (vLLM marks adapters with `parent` = the base's name)."""
        data = self._json("GET", "/v1/models")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise NanodexError(
                f"{self.base}/models answered no model list", "point ENDPOINT at an OpenAI-compatible server"
            )
        return [m for m in items if isinstance(m, dict) and "id" in m]

    def default_model(self, *, prefer_adapter: bool = True) -> str:
        """The first adapter the server serves (the expert), else its first model (the base).

        `prefer_adapter=False` takes the first model listed, whatever it is (vLLM lists the base
        first): the summarizer and the paraphraser want the base, not the code expert.
        """
        items = self.models()
        if not items:
            raise NanodexError(
                f"{self.base} serves no model", "start it with `make serve BASE=... ADAPTER=...`"
            )
        adapters = [m for m in items if m.get("parent")] if prefer_adapter else []
        return str((adapters or items)[0]["id"])

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        model: str,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stream: bool = False,
        on_delta: Callable[[str], None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Completion:
        """One chat completion; with `stream`, `on_delta` gets each piece of text as it arrives."""
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            **(extra or {}),
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            return self._stream(body, on_delta)
        data = self._json("POST", "/v1/chat/completions", body)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as err:
            raise NanodexError(
                f"{self.base}/chat/completions answered an unexpected shape: {_one_line(str(data), 160)}",
                "point ENDPOINT at an OpenAI-compatible server",
            ) from err
        if not isinstance(text, str):  # null: tool calls or reasoning only, or a broken server
            raise self._no_text(choice.get("finish_reason"))
        return Completion(
            text=text,
            model=str(data.get("model", model)),
            finish_reason=choice.get("finish_reason"),
            usage=dict(data.get("usage") or {}),
            token_ids=choice.get("token_ids"),
        )

    def _no_text(self, finish_reason: object) -> NanodexError:
        return NanodexError(
            f"{self.base}/chat/completions answered no text (content is null, finish_reason {finish_reason})",
            "ask a chat model the server lists at /v1/models, or see the server's log",
        )

    def _events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        resp = self._request("POST", "/v1/chat/completions", body)
        url = resp.geturl()
        with resp:
            while True:
                try:
                    line = resp.readline()
                except TimeoutError as err:
                    raise self._timeout(url) from err
                if not line:
                    return
                text = line.decode("utf-8", "replace").strip()
                if not text.startswith("data:"):
                    continue
                payload = text[len("data:") :].strip()
                if payload == "[DONE]":
                    return
                try:
                    event = json.loads(payload)
                except json.JSONDecodeError as err:
                    raise NanodexError(
                        f"{url} streamed a malformed event: {_one_line(payload, 120)}", "check the server"
                    ) from err
                if isinstance(event, dict) and "error" in event:
                    err_body = event["error"]
                    msg = err_body.get("message") if isinstance(err_body, dict) else err_body
                    raise NanodexError(
                        f"{url}: server error while streaming ({_one_line(str(msg))})", "see the server's log"
                    )
                yield event

    def _stream(self, body: dict[str, Any], on_delta: Callable[[str], None] | None) -> Completion:
        parts: list[str] = []
        said = False  # some delta carried text (possibly ""): the streamed form of non-null content
        out = Completion(text="", model=str(body["model"]))
        for event in self._events(body):
            out.model = str(event.get("model") or out.model)
            if event.get("usage"):
                out.usage = dict(event["usage"])
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if isinstance(piece, str):
                    said = True
                    if piece:
                        parts.append(piece)
                        if on_delta:
                            on_delta(piece)
                if choice.get("finish_reason"):
                    out.finish_reason = choice["finish_reason"]
        if not said:
            raise self._no_text(out.finish_reason)
        out.text = "".join(parts)
        return out

    def load_adapter(self, name: str, path: str) -> None:
        """Add an adapter to a running vLLM (started with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)."""
        self._post_plain("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})

    def unload_adapter(self, name: str) -> None:
        self._post_plain("/v1/unload_lora_adapter", {"lora_name": name})

    def _post_plain(self, path: str, body: dict[str, Any]) -> None:
        try:
            self._request("POST", path, body).close()
        except NanodexError as err:
            if "HTTP 404" in err.cause and "model" not in err.cause.lower():
                raise NanodexError(
                    f"{self.base[:-3]}{path} does not exist on this server",
                    "start the server with allow_runtime_lora (python -m inference.serve --allow-runtime-lora)",
                ) from err
            raise
