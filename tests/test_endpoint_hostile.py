"""The OpenAI-compatible client against a broken or hostile endpoint: a tiny HTTP server of the test's own on
127.0.0.1 that misbehaves on purpose, and endpoint expressions that hide their host."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sizebench.engines.serving import client
from sizebench.errors import ModelUnavailable, SizebenchError

MIB = 1024 * 1024


class Misbehaving(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict] = []

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.seen.append(
            {
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "body": json.loads(self.rfile.read(length) or b"{}"),
            }
        )
        self._serve()

    def _start(self, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if length is None else "application/json")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()

    def _serve(self) -> None:
        kind = self.path.split("/")[1]
        try:
            if kind == "huge":  # a JSON answer of 100 MiB, 20 MiB of it sent
                self._start(100 * MIB)
                self.wfile.write(b" " * 20 * MIB)
                time.sleep(30)
            elif kind == "trickle":  # a byte at a time, never a whole line
                self._start()
                for _ in range(2000):
                    self.wfile.write(b"d")
                    self.wfile.flush()
                    time.sleep(0.05)
            elif kind == "long-line":  # 8 MiB without a newline, then silence
                self._start()
                self.wfile.write(b"data: " + b"a" * 8 * MIB)
                time.sleep(30)
            elif kind == "not-objects":
                self._start()
                self.wfile.write(b'data: [1, 2]\n\ndata: {"choices": [{"text": "x"}]}\n\ndata: [DONE]\n\n')
            elif kind == "bad-choices":
                self._start()
                self.wfile.write(b'data: {"choices": "abc"}\n\ndata: [DONE]\n\n')
            else:  # two chunks of text, then a second later the usage chunk and [DONE]
                self._start()
                for piece in ("Paris", " is"):
                    self.wfile.write(b"data: " + json.dumps({"choices": [{"text": piece}]}).encode() + b"\n\n")
                    self.wfile.flush()
                time.sleep(1.0)
                usage = {"choices": [], "usage": {"completion_tokens": 2}}
                self.wfile.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        except OSError:
            pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.daemon_threads = True
    Misbehaving.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _within(seconds: float, call):
    """The call's result; fails (instead of hanging the suite) when it has not returned in `seconds`."""
    box = {}
    worker = threading.Thread(target=lambda: box.update(result=_catch(call)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"the client was still waiting after {seconds} s"
    return box["result"]


def _catch(call):
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 (the test looks at what came out)
        return exc


@pytest.mark.long
def test_a_trickling_stream_ends_at_the_request_timeout(endpoint):
    out = _within(15, lambda: client.stream(endpoint + "/trickle/v1", {"prompt": "x"}, timeout=2.0))
    assert isinstance(out, client.Streamed) and "no complete answer within 2 s" in out.error


def test_an_endless_line_and_an_oversized_answer_are_refused(endpoint):
    out = _within(15, lambda: client.stream(endpoint + "/long-line/v1", {"prompt": "x"}, timeout=10.0))
    assert isinstance(out, client.Streamed) and "event line is over" in out.error
    refused = _within(15, lambda: client.require(endpoint + "/huge/v1", "m"))
    assert isinstance(refused, ModelUnavailable) and "is over 16,777,216 bytes" in str(refused)


@pytest.mark.parametrize("kind", ["not-objects", "bad-choices"])
def test_events_of_the_wrong_shape_are_an_error_of_the_request_not_a_crash(endpoint, kind):
    out = _within(10, lambda: client.stream(endpoint + f"/{kind}/v1", {"prompt": "x"}, timeout=5.0))
    assert isinstance(out, client.Streamed) and out.error and "BadAnswer" in out.error


def test_e2e_ends_at_the_last_text_chunk_and_usage_is_read(endpoint):
    out = client.stream(endpoint + "/ok/v1", {"prompt": "x"}, timeout=10.0)
    assert out.error is None and out.text == "Paris is" and out.usage_tokens == 2
    assert out.e2e_s == out.chunk_s[-1]  # not the usage chunk a second later, nor the close


def test_the_api_key_goes_only_over_https_or_to_loopback(endpoint, monkeypatch):
    monkeypatch.setenv("SIZEBENCH_OPENAI_API_KEY", "sk-secret")
    client.stream(endpoint + "/ok/v1", {"prompt": "x"}, timeout=10.0)
    assert Misbehaving.seen[-1]["authorization"] == "Bearer sk-secret"  # this machine
    for url, sent in (
        ("http://evil.example/v1", False),
        ("http://10.0.0.7:8000/v1", False),
        ("https://api.example/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://localhost/v1", True),
    ):
        assert ("Authorization" in client.headers(url)) is sent, url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000@evil.example/v1", "http://user:pw@127.0.0.1:8000/v1"])
def test_an_endpoint_url_with_user_info_is_refused(url):
    from sizebench.planning.registry import resolve

    with pytest.raises(SizebenchError, match="user info"):
        resolve(f"openai:{url}#m")
