"""The judging page's HTTP server: loopback by default, a random token required on every request.

As Jupyter's: the printed URL holds the token; opening it trades the token for an HttpOnly, SameSite=Strict
cookie, and page.js replaces the URL with the bare one, so the token leaves the address bar and the
history (a script may also send it in the X-Sizebench-Token header). Model output reaches the page only
as JSON strings that page.js sets as text (`textContent`), and the Content-Security-Policy allows scripts
from this server's page.js alone, so an answer holding `<script>` or `<img onerror=...>` stays inert
twice over.

Every request is answered: a malformed one with a 4xx and nothing stored, a vote on a screen already voted
on with 409 (sizebench.judging.screens), a failure of the server's own (a full disk) with a 500, each with
a JSON body. A client gets REQUEST_TIMEOUT_S per read and write, and at most MAX_CONNECTIONS are served at
once (the next ones get 503 at once), so idle or half-sent requests cannot hold the page.
"""

from __future__ import annotations

import hmac
import json
import socket
import secrets
import sys
import threading
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from sizebench.judging.screens import Judging, Refused

MAX_BODY = 64 * 1024
REQUEST_TIMEOUT_S = 10.0  # per read or write on a connection
MAX_CONNECTIONS = 32  # served at once; a browser opens about six
STATIC = {
    "/": ("page.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the printed URL holds the token
    "Cache-Control": "no-store",
}


class JudgingServer(ThreadingHTTPServer):
    daemon_threads = True  # a request in flight does not hold up a stop
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], judging: Judging, token: str | None = None):
        self.judging = judging
        self.token = token or secrets.token_urlsafe(24)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.address_family = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM)[0][0]
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                body = json.dumps(
                    {"error": "too many connections to the judging page; try again", "status": "Service Unavailable"}
                ).encode()
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        print(f"judging page: a request failed: {sys.exc_info()[1]!r}"[:300], file=sys.stderr)

    @property
    def cookie(self) -> str:  # cookies are per host, not per port: one name per page
        return f"sizebench_judge_{self.server_address[1]}"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/?token={self.token}"


class Handler(BaseHTTPRequestHandler):
    server: JudgingServer
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_S  # a client that stops sending (or reading) loses its connection

    def log_message(self, format, *args) -> None:  # no access log on the terminal (it would show the token)
        pass

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _guarded(self, serve) -> None:
        """Every request gets an answer: a failure of this server's own is a 500 with a JSON body."""
        self.answered = False
        try:
            serve()
        except TimeoutError:  # the client stopped sending mid-request
            if not self.answered:
                self._error(408, f"the request did not arrive within {REQUEST_TIMEOUT_S:g} s")
        except ConnectionError:
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 (the page must answer whatever broke)
            print(
                f"judging page: {self.command} {urlsplit(self.path).path} failed: {type(exc).__name__}: {exc}"[:300],
                file=sys.stderr,
            )
            if not self.answered:
                self._error(500, f"the judging page failed ({type(exc).__name__}); nothing was stored, try again")

    def _get(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._authorised(url):
            return
        if url.path in STATIC:
            name, content_type = STATIC[url.path]
            body = resources.files("sizebench.judging").joinpath(name).read_bytes()
            cookie = f"{self.server.cookie}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
            self._send(200, body, content_type, {"Set-Cookie": cookie} if "token" in query else None)
        elif url.path == "/api/next":
            rater = query.get("rater", [""])[0]
            self._answer(lambda: self.server.judging.next(rater))
        else:
            self._error(404, "no such page")

    def _post(self) -> None:
        url = urlsplit(self.path)
        if not self._authorised(url):
            return
        actions = {
            "/api/vote": lambda b: self.server.judging.vote(
                b.get("screen"), b.get("choice"), b.get("rater"), b.get("comment", "")
            ),
            "/api/undo": lambda b: self.server.judging.undo(b.get("rater")),
        }
        if url.path not in actions:
            self._error(404, "no such action")
            return
        body = self._body()
        if body is not None:
            self._answer(lambda: actions[url.path](body))

    def _authorised(self, url) -> bool:
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except CookieError:
            pass
        from_cookie = cookie[self.server.cookie].value if self.server.cookie in cookie else ""
        given = self.headers.get("X-Sizebench-Token") or from_cookie or parse_qs(url.query).get("token", [""])[0]
        if given and hmac.compare_digest(given.encode(errors="replace"), self.server.token.encode()):
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
        raw = self.rfile.read(length)
        if len(raw) < length:
            self._error(400, f"the body ended after {len(raw)} of its {length} bytes")
            return None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # bad UTF-8 or JSON, nesting too deep, a number too long
            self._error(400, "the body is not valid JSON of the page's shape")
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
        self._send(
            status,
            json.dumps({"error": message, "status": HTTPStatus(status).phrase}).encode(),
            "application/json; charset=utf-8",
        )

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.answered = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
