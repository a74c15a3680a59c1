"""The judging page's HTTP server: loopback by default, a random token required on every request.

As Jupyter's: the token is in the printed URL; the page sends it back in a header on every API call.
Model output reaches the page only as JSON strings that page.js sets as text (`textContent`), and the
Content-Security-Policy allows scripts from this server's page.js alone, so an answer holding
`<script>` or `<img onerror=...>` stays inert twice over. A malformed request gets a 4xx and nothing
is stored; a vote on a screen already voted on gets 409 (sizebench.judging.screens).
"""

from __future__ import annotations

import hmac
import json
import secrets
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from sizebench.judging.screens import Judging, Refused

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_BODY = 64 * 1024
STATIC = {"/": ("page.html", "text/html; charset=utf-8"), "/page.js": ("page.js", "text/javascript; charset=utf-8"),
          "/page.css": ("page.css", "text/css; charset=utf-8")}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Cache-Control": "no-store",
}


class JudgingServer(ThreadingHTTPServer):
    daemon_threads = True  # a request in flight does not hold up a stop

    def __init__(self, address: tuple[str, int], judging: Judging, token: str | None = None):
        self.judging = judging
        self.token = token or secrets.token_urlsafe(24)
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/?token={self.token}"


class Handler(BaseHTTPRequestHandler):
    server: JudgingServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # no access log on the terminal (it would show the token)
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._authorised(url):
            return
        if url.path in STATIC:
            name, content_type = STATIC[url.path]
            body = resources.files("sizebench.judging").joinpath(name).read_text(encoding="utf-8")
            self._send(200, body.replace("{{token}}", self.server.token).encode(), content_type)
        elif url.path == "/api/next":
            rater = parse_qs(url.query).get("rater", [""])[0]
            self._answer(lambda: self.server.judging.next(rater))
        else:
            self._error(404, "no such page")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if not self._authorised(url):
            return
        actions = {"/api/vote": lambda b: self.server.judging.vote(b.get("screen"), b.get("choice"), b.get("rater"),
                                                                  b.get("comment", "")),
                   "/api/undo": lambda b: self.server.judging.undo(b.get("rater"))}
        if url.path not in actions:
            self._error(404, "no such action")
            return
        body = self._body()
        if body is not None:
            self._answer(lambda: actions[url.path](body))

    def _authorised(self, url) -> bool:
        given = self.headers.get("X-Sizebench-Token") or parse_qs(url.query).get("token", [""])[0]
        if given and hmac.compare_digest(given.encode(), self.server.token.encode()):
            return True
        self._error(403, "this page needs the token of the URL `sizebench judge` printed")
        return False

    def _body(self) -> dict | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(411, "a request body needs its Content-Length")
            return None
        if not 0 < length <= MAX_BODY:
            self._error(413 if length > MAX_BODY else 400, f"the body must be 1 to {MAX_BODY} bytes of JSON")
            return None
        if "application/json" not in self.headers.get("Content-Type", ""):
            self._error(415, "the body must be application/json")
            return None
        try:
            body = json.loads(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._error(400, "the body is not valid JSON")
            return None
        if not isinstance(body, dict):
            self._error(400, "the body must be a JSON object")
            return None
        return body

    def _answer(self, action) -> None:
        try:
            result = action()
        except Refused as exc:
            self._error(exc.status, str(exc))
            return
        self._send(200, json.dumps(result, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self.close_connection = True  # a body left unread must not be taken for the next request
        self._send(status, json.dumps({"error": message, "status": HTTPStatus(status).phrase}).encode(),
                   "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
