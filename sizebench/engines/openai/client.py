"""HTTP to an OpenAI-compatible server: reachability, one streamed request timed chunk by chunk, the logprobs probe.

Only the address given is contacted. The API key comes from SIZEBENCH_OPENAI_API_KEY (else OPENAI_API_KEY)
and goes in the request headers only, never into a record, a job file or a log.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sizebench.errors import ModelUnavailable

KEY_VARIABLES = ("SIZEBENCH_OPENAI_API_KEY", "OPENAI_API_KEY")
PROBE_TEXT = "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid."


def headers() -> dict[str, str]:
    key = next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)
    return {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}


def _connection(url: str, timeout: float):
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.hostname, parts.port, timeout=timeout), parts.path.rstrip("/")


def _request(method: str, base_url: str, path: str, payload: dict | None, timeout: float) -> dict:
    connection, prefix = _connection(base_url, timeout)
    try:
        connection.request(method, prefix + path, None if payload is None else json.dumps(payload), headers())
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"HTTP {response.status} from {method} {path}: {body[:300].decode(errors='replace')}")
        return json.loads(body)
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
    except (OSError, ValueError, http.client.HTTPException):
        return False


def require(base_url: str, served: str) -> list[str]:
    """The served model names; ModelUnavailable (one line: the URL and the error) when the endpoint does not answer."""
    try:
        listed = get_json(base_url, "/models", timeout=10.0)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise ModelUnavailable(f"endpoint {base_url} does not answer: {type(exc).__name__}: {exc}") from None
    return [m.get("id", "") for m in listed.get("data", []) if isinstance(m, dict)]


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


def stream(base_url: str, payload: dict, timeout: float, chat: bool = False) -> Streamed:
    """One streamed completion (or chat completion), timed from the request's start; errors are returned, not raised."""
    path = "/chat/completions" if chat else "/completions"
    out = Streamed()
    started = time.perf_counter()
    connection, prefix = _connection(base_url, timeout)
    try:
        connection.request("POST", prefix + path, json.dumps({**payload, "stream": True}), headers())
        response = connection.getresponse()
        if response.status != 200:
            out.error = f"HTTP {response.status}: {response.read()[:200].decode(errors='replace').strip()}"
            return out
        pieces = []
        while True:
            line = response.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            if event.get("usage"):
                out.usage_tokens = event["usage"].get("completion_tokens")
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                if piece:
                    now = time.perf_counter() - started
                    out.ttft_s = now if out.ttft_s is None else out.ttft_s
                    out.chunk_s.append(now)
                    pieces.append(piece)
                out.finish_reason = choice.get("finish_reason") or out.finish_reason
        out.text = "".join(pieces)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        out.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        connection.close()
        out.e2e_s = time.perf_counter() - started
    return out


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
    except (OSError, ValueError, KeyError, IndexError, TypeError, http.client.HTTPException) as exc:
        return f"echo with logprobs was refused: {type(exc).__name__}: {str(exc)[:200]}"
    if not tokens or not values or not tops:
        return "echo with logprobs returned no prompt log-probabilities"
    if not "".join(tokens).startswith(PROBE_TEXT):
        return "the echoed tokens do not rebuild the prompt text (no prompt tokens in the logprobs)"
    if len(values) != len(tokens) or not all(v is None or math.isfinite(v) for v in values) or \
            sum(v is not None for v in values) < len(tokens) - 1:
        return "the prompt's log-probabilities are missing or not finite"
    rebuilt = "".join(tokens)
    if rebuilt == PROBE_TEXT:
        return "the echo has no generated token after the prompt (lm-eval drops the last token as the generated one)"
    last, last_top = values[-1], tops[-1] or {}
    if last is None or not last_top or last < max(last_top.values()) - 1e-4:
        return ("the prompt log-probabilities are misaligned: the greedy token generated after the text is not the "
                "top choice at its own position (the server scores each token with the distribution of the next)")
    return None
