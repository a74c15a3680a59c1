"""HTTP to an OpenAI-compatible server: reachability, one streamed request timed chunk by chunk, the logprobs probe.

Only the address given is contacted. The API key comes from SIZEBENCH_OPENAI_API_KEY (else OPENAI_API_KEY)
and goes in the request headers only, never into a record, a job file or a log, and only to an https URL
or to this machine's loopback (never in clear text over a network).

The server is not trusted: a JSON answer is at most MAX_BODY bytes, a streamed event line at most MAX_LINE
and a whole stream MAX_STREAM, every request ends by its `timeout` in total (not per read: a server
trickling a byte at a time is cut off), and an event of the wrong shape is an error of that request.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sizebench.errors import ModelUnavailable

KEY_VARIABLES = ("SIZEBENCH_OPENAI_API_KEY", "OPENAI_API_KEY")
PROBE_TEXT = "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid."
MAX_BODY = 16 * 1024 * 1024
MAX_LINE = 1024 * 1024
MAX_STREAM = 64 * 1024 * 1024


class BadAnswer(ValueError):
    """The server's answer broke a bound or is not of the protocol's shape."""


def headers(base_url: str) -> dict[str, str]:
    key = next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)
    if key and not key_allowed(base_url):
        key = None
    return {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}


def key_allowed(base_url: str) -> bool:
    """The API key travels over https, or over plain http to this machine only."""
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def _deadline(connection, seconds: float):
    """Connect, and cut the connection when `seconds` have passed, whatever it is doing then."""
    connection.connect()
    sock = connection.sock  # the response keeps reading it after the connection object lets it go
    fired = threading.Event()

    def cut() -> None:
        fired.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def _connection(url: str, timeout: float):
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.hostname, parts.port, timeout=timeout), parts.path.rstrip("/")


def _request(method: str, base_url: str, path: str, payload: dict | None, timeout: float) -> dict:
    connection, prefix = _connection(base_url, timeout)
    fired = None
    try:
        with _deadline(connection, timeout) as fired:
            connection.request(
                method, prefix + path, None if payload is None else json.dumps(payload), headers(base_url)
            )
            response = connection.getresponse()
            body = response.read(MAX_BODY + 1)
        if fired.is_set():
            raise TimeoutError(f"no complete answer to {method} {path} within {timeout:g} s")
        if len(body) > MAX_BODY:
            raise BadAnswer(f"the answer to {method} {path} is over {MAX_BODY:,} bytes")
        if response.status != 200:
            hint = (
                "; the API key goes only over https or to loopback"
                if response.status == 401 and not key_allowed(base_url)
                else ""
            )
            raise OSError(f"HTTP {response.status} from {method} {path}: {body[:300].decode(errors='replace')}{hint}")
        return json.loads(body)
    except (OSError, http.client.HTTPException):
        if fired is not None and fired.is_set():
            raise TimeoutError(f"no complete answer to {method} {path} within {timeout:g} s") from None
        raise
    finally:
        connection.close()


def get_json(base_url: str, path: str, timeout: float = 5.0) -> dict:
    return _request("GET", base_url, path, None, timeout)


def post_json(base_url: str, path: str, payload: dict, timeout: float) -> dict:
    return _request("POST", base_url, path, payload, timeout)


def healthy(base_url: str) -> bool:
    try:
        get_json(base_url, "/models", timeout=2.0)
        return True
    except (OSError, ValueError, RecursionError, http.client.HTTPException):
        return False


def require(base_url: str, served: str) -> list[str]:
    """The served model names; ModelUnavailable (one line: the URL and the error) when the endpoint does not answer."""
    try:
        listed = get_json(base_url, "/models", timeout=10.0)
    except (OSError, ValueError, RecursionError, http.client.HTTPException) as exc:
        raise ModelUnavailable(f"endpoint {base_url} does not answer: {type(exc).__name__}: {exc}") from None
    data = listed.get("data") if isinstance(listed, dict) else None
    return (
        [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if isinstance(data, list)
        else []
    )


@dataclass
class Streamed:
    text: str = ""
    ttft_s: float | None = None
    e2e_s: float = 0.0
    chunk_s: list[float] = field(default_factory=list)  # arrival of each chunk with text, from the request's start
    usage_tokens: int | None = None  # completion_tokens where the server reports usage
    finish_reason: str | None = None
    error: str | None = None

    @property
    def itl_s(self) -> list[float]:
        return [b - a for a, b in zip(self.chunk_s, self.chunk_s[1:])]


def stream(base_url: str, payload: dict, timeout: float, chat: bool = False, started: float | None = None) -> Streamed:
    """One streamed completion (or chat completion); errors are returned, not raised.

    Times are from `started` (a time.perf_counter() value: the load sweep's scheduled send), else from now;
    E2E is the arrival of the last chunk with text (as `vllm bench serve`), not of [DONE] or the close.
    """
    path = "/chat/completions" if chat else "/completions"
    out = Streamed()
    started = time.perf_counter() if started is None else started
    connection, prefix = _connection(base_url, timeout)
    fired = None
    try:
        with _deadline(connection, timeout) as fired:
            connection.request("POST", prefix + path, json.dumps({**payload, "stream": True}), headers(base_url))
            response = connection.getresponse()
            if response.status != 200:
                out.error = f"HTTP {response.status}: {response.read(300)[:200].decode(errors='replace').strip()}"
                return out
            _read_events(response, out, chat, started)
    except (OSError, ValueError, RecursionError, http.client.HTTPException) as exc:
        out.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        connection.close()
        if fired is not None and fired.is_set():
            out.error = f"no complete answer within {timeout:g} s" + (f" ({out.error})" if out.error else "")
        out.e2e_s = out.chunk_s[-1] if out.chunk_s and not out.error else time.perf_counter() - started
    return out


def _read_events(response, out: Streamed, chat: bool, started: float) -> None:
    pieces, total = [], 0
    while True:
        line = response.readline(MAX_LINE + 1)
        total += len(line)
        if len(line) > MAX_LINE:
            raise BadAnswer(f"an event line is over {MAX_LINE:,} bytes")
        if total > MAX_STREAM:
            raise BadAnswer(f"the stream is over {MAX_STREAM:,} bytes")
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        event = json.loads(data)
        if not isinstance(event, dict):
            raise BadAnswer(f"an event is not a JSON object: {data[:80].decode(errors='replace')}")
        usage = event.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            out.usage_tokens = usage["completion_tokens"]
        choices = event.get("choices") or []
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise BadAnswer("an event's choices are not a list of objects")
        for choice in choices:
            delta = choice.get("delta") if chat else None
            piece = (delta.get("content") if isinstance(delta, dict) else None) if chat else choice.get("text")
            if piece is not None and not isinstance(piece, str):
                raise BadAnswer("an event's text is not a string")
            if piece:
                now = time.perf_counter() - started
                out.ttft_s = now if out.ttft_s is None else out.ttft_s
                out.chunk_s.append(now)
                pieces.append(piece)
            reason = choice.get("finish_reason")
            out.finish_reason = reason if isinstance(reason, str) else out.finish_reason
    out.text = "".join(pieces)


def prompt_logprobs_problem(base_url: str, served: str, timeout: float = 60.0) -> str | None:
    """Why the endpoint cannot score a text for lm-eval (None when it can).

    lm-eval's local-completions scores a continuation from `echo` with `logprobs` and `max_tokens=1`. The probe
    sends exactly that on a fixed text and asks three things: the echoed tokens rebuild the text, their
    log-probabilities are finite, and each is the log-probability of that token under the distribution that
    precedes it, checked where the server's own greedy next token must come out as the top choice: the token
    generated after the text has to be the argmax of the distribution reported at its position. A server
    pairing token i with the distribution that predicts token i+1 (llama-cpp-python's own echo) fails the third.
    """
    payload = {"model": served, "prompt": PROBE_TEXT, "max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": True}
    try:
        answer = post_json(base_url, "/completions", payload, timeout)
        choice = answer["choices"][0]
        logprobs = choice.get("logprobs") or {}
        tokens, values, tops = logprobs.get("tokens"), logprobs.get("token_logprobs"), logprobs.get("top_logprobs")
    except (
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        RecursionError,
        http.client.HTTPException,
    ) as exc:
        return f"echo with logprobs was refused: {type(exc).__name__}: {str(exc)[:200]}"
    if not tokens or not values or not tops:
        return "echo with logprobs returned no prompt log-probabilities"
    if not "".join(tokens).startswith(PROBE_TEXT):
        return "the echoed tokens do not rebuild the prompt text (no prompt tokens in the logprobs)"
    if (
        len(values) != len(tokens)
        or not all(v is None or math.isfinite(v) for v in values)
        or sum(v is not None for v in values) < len(tokens) - 1
    ):
        return "the prompt's log-probabilities are missing or not finite"
    rebuilt = "".join(tokens)
    if rebuilt == PROBE_TEXT:
        return "the echo has no generated token after the prompt (lm-eval drops the last token as the generated one)"
    last, last_top = values[-1], tops[-1] or {}
    if last is None or not last_top or last < max(last_top.values()) - 1e-4:
        return (
            "the prompt log-probabilities are misaligned: the greedy token generated after the text is not the "
            "top choice at its own position (the server scores each token with the distribution of the next)"
        )
    return None
