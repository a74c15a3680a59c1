"""The load sweep's clocks against a slow server of the test's own on 127.0.0.1: no client pool hides queueing,
latencies count from each request's due time, the level's clock starts at its first send, usage is asked for."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from sizebench.analysis import serving
from sizebench.specs.settings import ServeSettings
from sizebench.runstore.frames import Frames
from sizebench.stages import sweep

HOLD_S = 2.0


class Slow(BaseHTTPRequestHandler):
    """Every chat completion: HOLD_S of silence, then one token of text, usage and [DONE]; counts requests in flight."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    in_flight = most = 0
    bodies: list[dict] = []

    def log_message(self, format, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Slow.lock:
            Slow.bodies.append(body)
            Slow.in_flight += 1
            Slow.most = max(Slow.most, Slow.in_flight)
        time.sleep(HOLD_S)
        with Slow.lock:
            Slow.in_flight -= 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        events = [
            {"choices": [{"delta": {"content": "Paris"}, "finish_reason": "length"}]},
            {"choices": [], "usage": {"completion_tokens": 1}},
        ]
        self.wfile.write(b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


@pytest.fixture
def slow_endpoint():
    server = Server(("127.0.0.1", 0), Slow)
    Slow.in_flight = Slow.most = 0
    Slow.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _session(base_url: str):
    from sizebench.engines.serving.session import EndpointSession
    from sizebench.planning.registry import resolve

    spec = resolve(f"openai:{base_url}#m")[0]
    return EndpointSession(spec, base_url, "m", None, "chat", None, request_timeout_s=30.0)


@pytest.mark.long
def test_poisson_requests_are_all_sent_on_time_and_timed_from_when_they_were_due(slow_endpoint):
    session = _session(slow_endpoint)
    settings = ServeSettings(request_rates=(100.0,), requests=80, seconds=60, output_tokens=4, seed=3)
    records = []
    bodies = sweep.payloads(session, None, settings)
    sent, errors, wall, _, behind = sweep.run_level(session, bodies, "rate", 100.0, settings, "a1", records.append)
    assert (sent, errors) == (80, 0)
    assert Slow.most > 64  # no client pool caps what is in flight (it was 64 threads)
    gaps = np.random.default_rng(3).exponential(1 / 100.0, 80)
    due = np.concatenate(([0.0], np.cumsum(gaps)[:-1]))  # the first at once: the level's clock starts there
    by_index = sorted(records, key=lambda r: r.index)
    assert [r.scheduled_s for r in by_index] == [round(float(d), 6) for d in due]
    for r in by_index:
        assert r.sent_s >= r.scheduled_s and r.e2e_s >= r.ttft_s >= HOLD_S
        assert r.e2e_s >= (r.sent_s - r.scheduled_s) + HOLD_S  # a late send is in the latency, not hidden
    assert behind == pytest.approx(max(r.sent_s - r.scheduled_s for r in by_index), abs=1e-5)
    assert all(b.get("stream_options") == {"include_usage": True} for b in Slow.bodies)


def test_the_completions_path_asks_for_usage_too():
    from sizebench.engines import formats
    from sizebench.engines.serving.session import EndpointSession
    from sizebench.specs.settings import GenSettings

    session = EndpointSession(None, "http://127.0.0.1:1/v1", "m", object(), "plain", None)
    body = session.payload(formats.Rendered("Paris is", (), False), GenSettings(), 4)
    assert body["prompt"] == "Paris is" and body["stream_options"] == {"include_usage": True}


def _frames(behind_s: float | None) -> Frames:
    level = {
        "model": "m",
        "attempt": "a1",
        "mode": "rate",
        "load": 4.0,
        "requests": 2,
        "errors": 0,
        "wall_s": 1.0,
        "output_tokens_asked": 4,
        "serving": "s",
        "slo": {},
    }
    if behind_s is not None:
        level["behind_s"] = behind_s
    requests = [
        {
            "model": "m",
            "attempt": "a1",
            "mode": "rate",
            "load": 4.0,
            "index": i,
            "sent_s": 0.1 * i,
            "ttft_s": 0.2,
            "e2e_s": 0.5,
            "output_tokens": 4,
            "itl_s": [0.1],
            "error": None,
        }
        for i in range(2)
    ]
    return Frames([], pd.DataFrame(), {"sweep_level": pd.DataFrame([level]), "served_request": pd.DataFrame(requests)})


def test_a_level_where_the_client_fell_behind_is_flagged_in_the_report():
    from sizebench.report.serving_section import serving_section

    late, on_time, before = (serving.levels(_frames(b))[0] for b in (0.3, 0.001, None))
    assert late.fell_behind and not on_time.fell_behind and not before.fell_behind
    assert "⚠ client 300 ms behind" in serving_section([late]) and "⚠" not in serving_section([on_time])
