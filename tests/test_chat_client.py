"""nanodex.chat_client, the one OpenAI-compatible client, against a real HTTP server on 127.0.0.1.

The server (tests/openai_server.py) is a stdlib http.server in a thread speaking /v1/models and
/v1/chat/completions, plain and streamed as server-sent events, over real sockets: every byte
goes through the client's real urllib code. Each failure the client can meet (HTTP 401/404/500,
a non-JSON body, a timeout, a refused connection, a bad port, a reply without text) must come
out as one NanodexError line with a fix. The real vLLM server is asked in tests/test_serve_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inference.preflight import free_port
from nanodex.chat_client import ChatClient, normalize_endpoint
from nanodex.errors import NanodexError
from tests.openai_server import FakeOpenAI, running

Q = [{"role": "user", "content": "q"}]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with running() as srv:
        yield srv


def _one_line(err: pytest.ExceptionInfo[NanodexError]) -> str:
    text = str(err.value)
    assert "\n" not in text and err.value.fix, text
    return text


def test_endpoint_normalization() -> None:
    for given in (
        "http://h:1",
        "http://h:1/",
        "http://h:1/v1",
        "http://h:1/v1/chat/completions",
        "http://h:1/v1/models",
    ):
        assert normalize_endpoint(given) == "http://h:1/v1"
    assert normalize_endpoint("https://api.example.com/v1/") == "https://api.example.com/v1"
    with pytest.raises(NanodexError, match="not an http"):
        normalize_endpoint("localhost:8000")
    with pytest.raises(NanodexError, match="names no host"):
        normalize_endpoint("http:///v1")


@pytest.mark.parametrize("port", ["99999", "0", "8x", "65536"])
def test_invalid_port_is_named_before_any_request(port: str) -> None:
    """urllib calls port 99999 a refused connection and '8x' a traceback: both hide the typo."""
    with pytest.raises(NanodexError, match=f"has an invalid port '{port}'") as err:
        ChatClient(f"http://127.0.0.1:{port}/v1")
    assert "1 to 65535" in _one_line(err)


def test_model_discovery(fake: FakeOpenAI) -> None:
    c = ChatClient(fake.url)
    assert [m["id"] for m in c.models()] == ["base", "expert"]
    assert c.default_model() == "expert", "the first adapter (a model with a parent) is the default"
    assert c.default_model(prefer_adapter=False) == "base", "the first model listed, whatever it is"
    fake.models = [{"id": "only-base"}, {"no-id": True}]
    assert c.default_model() == "only-base" and len(c.models()) == 1
    fake.mode = "no-models"
    with pytest.raises(NanodexError, match="serves no model") as err:
        c.default_model()
    assert "make serve" in _one_line(err)


def test_chat_sends_the_request_and_reads_the_answer(fake: FakeOpenAI) -> None:
    c = ChatClient(fake.url)
    done = c.chat(Q, model="expert", max_tokens=9, extra={"frequency_penalty": 0.5})
    assert done.text == fake.answer and done.model == "expert" and done.finish_reason == "stop"
    assert done.usage == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    req = fake.requests[-1]
    assert req["method"] == "POST" and req["path"] == "/v1/chat/completions" and req["auth"] is None
    assert req["body"] == {
        "model": "expert",
        "messages": Q,
        "max_tokens": 9,
        "temperature": 0.0,
        "frequency_penalty": 0.5,
    }


def test_streaming_delivers_deltas_in_order(fake: FakeOpenAI) -> None:
    pieces: list[str] = []
    done = ChatClient(fake.url).chat(Q, model="expert", stream=True, on_delta=pieces.append)
    assert len(pieces) > 3 and "".join(pieces) == done.text == fake.answer
    assert all(len(p) <= 7 for p in pieces), "each delta arrives as its own piece"
    assert done.usage["total_tokens"] == 12 and done.finish_reason == "stop" and done.model == "expert"
    body = fake.requests[-1]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_api_key_header_is_sent(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    ChatClient(fake.url, api_key="k").chat(Q, model="expert")
    assert fake.requests[-1]["auth"] == "Bearer k"
    monkeypatch.setenv("MY_KEY", "s3cret")
    c = ChatClient.from_env(fake.url, "MY_KEY")
    c.default_model()
    c.chat(Q, model="expert", stream=True)
    assert [r["auth"] for r in fake.requests[-2:]] == ["Bearer s3cret", "Bearer s3cret"], "GET and POST"
    monkeypatch.delenv("MY_KEY")
    ChatClient.from_env(fake.url, "MY_KEY").chat(Q, model="expert")
    assert fake.requests[-1]["auth"] is None, "no variable, no header"


@pytest.mark.parametrize(
    ("mode", "match", "fix"),
    [
        ("500", r"chat/completions: server error HTTP 500 \(engine crashed\)", "server's log"),
        ("404", r"HTTP 404, The model `nope` does not exist", "pass --model"),
        ("401", r"refused the request: HTTP 401 \(Unauthorized\)", "export the server's key in MY_KEY"),
        ("html", "answered something that is not JSON", "OpenAI-compatible"),
        ("slow", r"no answer from .*/v1/chat/completions within 0.5 s", "raise --timeout"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_server_failures_are_one_line(
    fake: FakeOpenAI, mode: str, match: str, fix: str, stream: bool
) -> None:
    if mode == "html" and stream:  # read line by line: no `data:` line, so no text at all
        match, fix = "answered no text", "/v1/models"
    fake.mode = mode
    c = ChatClient(fake.url, timeout_s=0.5, key_env="MY_KEY")
    with pytest.raises(NanodexError, match=match) as err:
        c.chat(Q, model="nope", stream=stream)
    assert fix in (err.value.fix or "")
    _one_line(err)


def test_unauthorized_model_listing_is_one_line(fake: FakeOpenAI) -> None:
    fake.mode = "401"
    with pytest.raises(NanodexError, match=r"/v1/models refused the request: HTTP 401") as err:
        ChatClient(fake.url).default_model()
    assert "NANODEX_API_KEY" in _one_line(err)


def test_refused_connection() -> None:
    port = free_port()  # free now: nothing listens there
    with pytest.raises(
        NanodexError, match=rf"no server answers at http://127.0.0.1:{port}/v1/models \(connection refused\)"
    ) as err:
        ChatClient(f"http://127.0.0.1:{port}/v1").default_model()
    assert "make serve" in _one_line(err)


@pytest.mark.parametrize("stream", [False, True])
def test_null_content_is_an_error_not_an_empty_answer(fake: FakeOpenAI, stream: bool) -> None:
    fake.mode = "null"
    with pytest.raises(
        NanodexError, match=r"answered no text \(content is null, finish_reason stop\)"
    ) as err:
        ChatClient(fake.url).chat(Q, model="expert", stream=stream)
    assert "/v1/models" in _one_line(err)


def test_empty_text_is_an_answer(fake: FakeOpenAI) -> None:
    """An empty string is what the model said (it stopped at once): not the same as no content."""
    fake.answer = ""
    c = ChatClient(fake.url)
    assert c.chat(Q, model="expert").text == ""
    assert c.chat(Q, model="expert", stream=True).text == ""


def test_runtime_adapter_routes(fake: FakeOpenAI) -> None:
    c = ChatClient(fake.url)
    c.load_adapter("extra", "/adapters/extra")
    c.unload_adapter("extra")
    assert [(r["path"], r["body"]) for r in fake.requests] == [
        ("/v1/load_lora_adapter", {"lora_name": "extra", "lora_path": "/adapters/extra"}),
        ("/v1/unload_lora_adapter", {"lora_name": "extra"}),
    ]
    fake.runtime_lora = False
    with pytest.raises(NanodexError, match="load_lora_adapter does not exist on this server") as err:
        c.load_adapter("extra", "/adapters/extra")
    assert "allow-runtime-lora" in _one_line(err)


def test_one_client_serves_many_threads(fake: FakeOpenAI) -> None:
    """The summarizer sends `workers` requests at once through one client: no shared state."""
    from concurrent.futures import ThreadPoolExecutor

    fake.reply = lambda body: f"answer to {body['messages'][0]['content']}"
    c = ChatClient(fake.url)
    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(
            pool.map(lambda i: c.chat([{"role": "user", "content": str(i)}], model="base").text, range(32))
        )
    assert texts == [f"answer to {i}" for i in range(32)]
