"""One request: read it, apply the faults the stand-in is set to (hook, invalid token, stall,
rate limit), route it, and send the answer while counting what was sent. The network model, if
any, delays each answer and paces its body here; the `Date` header is the stand-in's clock.

`Server` is one of the stand-in's two HTTP servers (the Hub or the storage host), each request
on it a `Handler`. The handler routes requests (routes.py) to the answers, which see it as a
`request.Request`; both read and record in the stand-in's state (state.py). server.py starts
the servers: it imports this module, and this module imports nothing that imports it back."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from .errors import HubError
from .files import CACHE_PREFIX
from .network import Connection
from .records import Transfer
from .routes import dispatch
from .state import HubState
from .store import Repo, Snapshot

# Bodies are written in chunks so that `bytes_served` only counts what the socket has accepted.
WRITE_CHUNK = 64 * 1024
# A ref sent unquoted spans several path segments (refs/convert/parquet is 3); try up to this many.
MAX_REVISION_SEGMENTS = 4
INVALID_TOKEN = "Invalid credentials in Authorization header"  # the real Hub's words


class Server(ThreadingHTTPServer):
    """One of the stand-in's two HTTP servers: the Hub or its storage host (`role`)."""

    block_on_close = False  # idle keep-alive connections would otherwise make server_close() hang
    daemon_threads = True  # a stalled request must not keep the process alive
    hub: HubState
    role: str  # "hub" or "storage"

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        # Clients hang up mid-response on purpose (a stream closed early): only report real errors.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client pools its connections
    server: Server
    status, in_hook = 0, False
    extra_headers: dict[str, str]  # added to the answer (RateLimit headers)
    file: str | None = None  # "{repo}/{path}" once a file route has found the file (for `transfers`)
    body: bytes  # read before the request is routed
    received = 0.0  # when the request was read (monotonic)
    link: Connection  # this connection's place in the network model

    @property
    def hub(self) -> HubState:
        return self.server.hub

    @property
    def role(self) -> str:
        """The server the request came to: "hub" or "storage"."""
        return self.server.role

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: with Nagle + delayed ACK each request would cost ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.link = Connection()
        self.hub.track(self.connection, open=True)

    def finish(self) -> None:
        self.hub.track(self.connection, open=False)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header, from the stand-in's clock (a test may move it)."""
        return formatdate(self.hub.clock() if timestamp is None else timestamp, usegmt=True)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status = code
        if self.in_hook:  # logged while the status line is still buffered, i.e. before the client sees it
            self.hub.record((self.command, self.path, self.headers.get("Range"), code, 0), 0)
        if (network := self.hub.network) is not None:
            network.answer(self.link)  # a round trip (more on a new connection) before the status line
        super().send_response(code, message)

    def do_GET(self) -> None:
        self.status, self.extra_headers, self.file, self.received = 0, {}, None, time.monotonic()
        # An unread body would be parsed as the next request on this keep-alive connection.
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.hub.record_authorization(self.role, self.path, self.headers.get("Authorization"))
        try:
            if self.hub.before_response is not None and self._run_hook(self.hub.before_response):
                return
            if self._stalled():
                return
            self._check_token()
            self._take_budget()
            dispatch(self)
        except HubError as err:
            self.send_error_json(err)
        except Exception as exc:
            if not self.status:  # a bug in the stand-in: answer, then let handle_error print the traceback
                self.send_error_json(HubError(500, None, f"stand-in internal error: {exc!r}"))
            raise

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _run_hook(self, hook: Callable[[BaseHTTPRequestHandler], bool]) -> bool:
        self.in_hook = True
        try:
            return hook(self)
        finally:
            self.in_hook = False

    def kind(self) -> str:
        """ "storage", "resolve" (`/resolve/` and `/api/resolve-cache/`) or "api": what the request is, for stalls."""
        if self.role == "storage":
            return "storage"
        return "resolve" if "/resolve/" in self.path or self.path.startswith(CACHE_PREFIX) else "api"

    def bucket(self) -> str | None:
        """The rate-limit budget the request counts against: "resolvers" (a `/resolve/` segment, as the Hub
        counts them), "api", or None: storage is another service, and `resolve-cache` is not a `/resolve/`."""
        if self.role == "storage" or self.path.startswith(CACHE_PREFIX):
            return None
        return "resolvers" if "/resolve/" in self.path else "api"

    def _stalled(self) -> bool:
        if not self.hub.take_stall(self.kind()):
            return False
        self.hub.wait_stalled()
        self.close_connection = True  # no answer at all: the client sees its read time out, or a hang-up
        return True

    def _check_token(self) -> None:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token and self.role == "hub" and not token.startswith("hf_"):
            raise HubError(401, None, INVALID_TOKEN)

    def _take_budget(self) -> None:
        budget = self.hub.budgets.get(self.bucket() or "")
        if budget is None:
            return
        allowed, self.extra_headers = budget.take()
        if not allowed:
            raise HubError(429, None, "Too Many Requests", self.extra_headers)

    def lookup(self, repo_id: str, rest: str | None, exact: bool = False) -> tuple[Repo, Snapshot, str]:
        """The repo, the snapshot of the revision that `rest` starts with, and the path after it.

        `exact`: `rest` is a revision and nothing else (e.g. `/revision/{rev}`). Raises the Hub's 404s.
        """
        with self.hub._lock:
            repo = self.hub.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "RepoNotFound", "Repository not found")
        segments = (rest or "main").split("/")
        counts = [len(segments)] if exact else range(1, min(MAX_REVISION_SEGMENTS, len(segments)) + 1)
        for n in counts if segments[0] else ():
            if snapshot := repo.snapshot("/".join(map(unquote, segments[:n]))):
                return repo, snapshot, unquote("/".join(segments[n:]))
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {unquote(rest or '')}")

    def send_error_json(self, err: HubError) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": err.message, **err.headers}
        headers |= {"X-Error-Code": err.code} if err.code else {}
        self.send(err.status, json.dumps({"error": err.message}).encode(), headers)

    def send_json(self, payload: object, headers: dict[str, str] | None = None) -> None:
        self.send(200, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def send(self, status: int, body: bytes, headers: dict[str, str], count: bool = False) -> None:
        """Answer; `count`: the body is file content, counted in `bytes_served`."""
        hub, size = self.hub, 0 if self.command == "HEAD" else len(body)
        # Logged and counted up front, then corrected to what the socket accepted if the client hangs up.
        entry = (self.command, self.path, self.headers.get("Range"), status, size)
        hub.record(entry, size if count else 0)
        transfer = Transfer(self.role, self.kind(), self.command, self.path, status, self.file, self.received)
        hub.record_transfer(transfer)
        sent, network = 0, hub.network
        try:
            self.send_response(status)
            for name, value in (self.extra_headers | headers | {"Content-Length": str(len(body))}).items():
                self.send_header(name, value)
            self.end_headers()
            transfer.answered = time.monotonic()
            if network is not None and size:
                network.begin_body(self.link)
            for offset in range(0, size, WRITE_CHUNK):
                chunk = body[offset : offset + WRITE_CHUNK]
                if network is not None:
                    network.pace(self.link, len(chunk))
                    if hub.stopping:  # the pacing wait was cut short: the body ends here, unsent
                        raise ConnectionAbortedError("the Hub stand-in is stopping")
                sent += self.wfile.write(chunk) or 0
                transfer.body_bytes = sent
        except OSError:
            hub.record(entry[:4] + (sent,), sent - size if count else 0, replaces=entry)
            raise
        finally:
            hub.transfer_finished(transfer)
