"""A local stand-in for the Hugging Face Hub HTTP API.

shardsql reads datasets through the real, unmodified ``huggingface_hub`` client (``HfFileSystem``, ``HfApi``).
Tests and the offline ``shardsql demo`` must not touch the network, so instead of mocking the client we serve
local folders over HTTP with the routes, headers, JSON fields and error codes that huggingface_hub 2.4.0 uses:
the client code that runs against this server is the code that runs in production.

Routes (dataset repos only; every ``add_dataset`` call is an immutable in-memory snapshot):

* ``GET /api/datasets/{repo}[/revision/{rev}]``: repo info (``sha``, ``siblings``, ``gated``).
* ``GET /api/datasets/{repo}/tree/{rev}[/{dir}]``: listing, ``recursive``/``expand``, ``Link`` pagination.
* ``POST /api/datasets/{repo}/paths-info/{rev}``: info for some paths (form or JSON body).
* ``GET``/``HEAD /datasets/{repo}/resolve/{rev}/{path}``: file content with one ``Range`` (206, 416).

A revision is a branch (``main``), a ref (``refs/convert/parquet``, quoted as ``refs%2Fconvert%2Fparquet`` or
not) or a 40-hex commit sha. Errors carry the ``X-Error-Code`` that the client turns into exceptions:
``RepoNotFound`` (the spelling 2.4.0 checks; "RepositoryNotFound" would give a plain HfHubHTTPError) ->
RepositoryNotFoundError, ``RevisionNotFound`` -> RevisionNotFoundError, ``EntryNotFound`` ->
RemoteEntryNotFoundError, ``GatedRepo`` -> GatedRepoError. HfFileSystem checks repo info and listings before
reading, so it reports a missing repo, revision or file as FileNotFoundError. As on the real Hub, a gated
repo's info and listings are public; only file content needs ``Authorization: Bearer <token>``: 401 without a
token, 403 with another one (GatedRepoError either way, also from HfFileSystem reads).

Pointing the client at it:

* Pass ``endpoint=hub.url``: ``HfFileSystem(endpoint=hub.url, token=...)``, ``HfApi(endpoint=hub.url)``.
  This is the reliable way.
* ``HF_ENDPOINT`` is read once, when ``huggingface_hub`` is imported (``constants.ENDPOINT`` and the resolve
  URL template ``constants.HUGGINGFACE_CO_URL_TEMPLATE``). It only works for a process that imports
  huggingface_hub after the stand-in has started, e.g. a subprocess. In-process, patching both constants
  works; patching only ``constants.ENDPOINT`` is a trap: listings reach the stand-in, file URLs still point
  at https://huggingface.co.
* HfFileSystem caches instances (per endpoint and token) and their directory listings: create it with
  ``skip_instance_cache=True`` or call ``HfFileSystem.clear_instance_cache()`` when the stand-in or its data
  changes. ``token=None`` sends an implicit token (``HF_TOKEN`` or a saved login); ``token=False`` sends none.
* Reads: ``fs.open(path, "rb", cache_type="none")`` requests exactly the ranges read (pyarrow works on it);
  the default read-ahead cache asks for up to 5 MiB past each read; ``block_size=0`` streams a single GET
  and refuses to seek, so pyarrow cannot read Parquet from it.
* Offline use: on its first request a 2.4.0 process also fetches ``{constants.ENDPOINT}/api/agent-harnesses``
  (https://huggingface.co unless HF_ENDPOINT was set at import; this stand-in answers 404) unless
  ``HF_HUB_DISABLE_TELEMETRY=1`` is in the environment or ``constants.HF_HUB_DISABLE_TELEMETRY`` is True.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

# The Hub's page sizes: HfFileSystem changes its listing strategy once a tree needs several pages.
TREE_PAGE_SIZE = 1000
TREE_PAGE_SIZE_EXPANDED = 50
# Bodies are written in chunks so that `bytes_served` only counts what the socket has accepted.
WRITE_CHUNK = 64 * 1024
# Fixed metadata keeps every response, and so every test, deterministic.
COMMIT_DATE = "2024-01-01T00:00:00.000Z"
COMMIT_TITLE = "Snapshot served by shardsql.hubstub"
# A ref sent unquoted spans several path segments (refs/convert/parquet is 3); try up to this many.
MAX_REVISION_SEGMENTS = 4
# shutdown() waits for the serve loop to notice; the default 0.5 s would dominate short tests.
POLL_INTERVAL = 0.05
REPO = r"(?P<repo>[^/]+/[^/]+)"
API_ROUTE = re.compile(rf"^/api/datasets/{REPO}(/(?P<action>revision|tree|paths-info)/(?P<rest>.*))?$")
RESOLVE_ROUTE = re.compile(rf"^/datasets/{REPO}/resolve/(?P<rest>.*)$")
# Where `redirect_files` sends file reads, as the Hub sends them to its storage (LFS or Xet).
STORAGE_ROUTE = re.compile(rf"^/__storage/{REPO}/(?P<sha>[0-9a-f]{{40}})/(?P<path>.+)$")
# Paths without "datasets/" mean model repos: a RepoNotFound makes HfFileSystem raise FileNotFoundError.
OTHER_REPO_ROUTE = re.compile(r"^/(api/(models|spaces)/.*|[^/]+/[^/]+/resolve/.*)$")
RANGE_HEADER = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Snapshot:
    """The files of one repo revision, with git-like oids so that ETags and shas are stable across runs."""

    def __init__(self, repo_id: str, revision: str, folder: Path):
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
        self.files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in paths}
        self.oids = {p: _git_blob_oid(data) for p, data in self.files.items()}
        self.dirs = {p.rsplit("/", i)[0] for p in self.files for i in range(1, p.count("/") + 1)}
        listing = "".join(f"{p}\0{oid}\n" for p, oid in self.oids.items())
        self.sha = hashlib.sha1(f"{repo_id}\0{revision}\0{listing}".encode()).hexdigest()

    def entry(self, path: str, expand: bool) -> dict:
        commit = {"id": self.sha, "title": COMMIT_TITLE, "date": COMMIT_DATE}
        if path in self.files:
            out = {"type": "file", "oid": self.oids[path], "size": len(self.files[path]), "path": path}
            if expand:
                scan = {"status": "safe", "avScan": {"virusFound": False, "virusNames": None}}
                out |= {"lastCommit": commit, "securityFileStatus": scan | {"pickleImportScan": None}}
            return out
        oid = hashlib.sha1(f"tree\0{self.sha}\0{path}".encode()).hexdigest()  # not git's, but stable
        out = {"type": "directory", "oid": oid, "size": 0, "path": path}
        return {**out, "lastCommit": commit} if expand else out

    def children(self, path: str, recursive: bool) -> list[str]:
        prefix = path + "/" if path else ""
        below = [p for p in sorted(self.dirs | self.files.keys()) if p.startswith(prefix)]
        return below if recursive else [p for p in below if "/" not in p[len(prefix) :]]


class _Repo:
    def __init__(self, gated: bool):
        self.gated = gated
        self.revisions: dict[str, _Snapshot] = {}

    def snapshot(self, revision: str) -> _Snapshot | None:
        found = self.revisions.get(revision)
        return found or next((s for s in self.revisions.values() if s.sha == revision), None)


class HubStandIn:
    """Serve local folders as Hub dataset repos on ``http://127.0.0.1:<free port>``."""

    def __init__(self, token: str | None = None):
        self.token = token  # the one token that may read gated repos
        self.repos: dict[str, _Repo] = {}
        self.tree_page_size = TREE_PAGE_SIZE
        self.tree_page_size_expanded = TREE_PAGE_SIZE_EXPANDED
        # Like the real Hub, answer `resolve` with a 302 to a storage URL that serves the bytes.
        self.redirect_files = False
        # Both are updated as a response starts, before the client can see it (so a caller may check them
        # right after a call), and corrected down if the client hangs up mid-body. bytes_served only counts
        # resolve GET bodies; requests holds (method, path, Range header, status, body bytes) per request.
        self.bytes_served = 0
        self.requests: list[tuple[str, str, str | None, int, int]] = []
        # EXTENSION POINT for fault injection (not built yet): called with the request handler before each
        # request is routed (its body already read into `handler.body`). Return True if the hook has sent the
        # whole response itself (an error, a stall, a truncated body...): it is then not routed, and logged
        # by its send_response() call with 0 body bytes (not counted in bytes_served).
        self.before_response: Callable[[BaseHTTPRequestHandler], bool] | None = None
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._connections: set[socket.socket] = set()

    def add_dataset(self, repo_id: str, folder: Path, revision: str = "main", gated: bool = False) -> str:
        """Serve the files under ``folder`` as dataset ``repo_id`` at ``revision``; return its commit sha.

        Files are read now. Add the same repo again for more revisions; ``gated`` applies to the whole repo.
        """
        snapshot = _Snapshot(repo_id, revision, Path(folder))
        with self._lock:
            repo = self.repos.setdefault(repo_id, _Repo(gated))
            repo.gated = gated
            repo.revisions[revision] = snapshot
        return snapshot.sha

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("HubStandIn is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubStandIn:
        if self._server is None:
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.hub = self
            serve = self._server.serve_forever
            threading.Thread(target=serve, args=(POLL_INTERVAL,), name="hubstub", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        # Clients keep pooled keep-alive connections open: close them so nothing is answered after stop().
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> HubStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_served = 0
            self.requests = []

    def _record(self, entry: tuple, served: int, replaces: tuple | None = None) -> None:
        with self._lock:
            if replaces is None:
                self.requests.append(entry)
            else:  # a correction, dropped if reset_counters() has run in between
                index = next((i for i, e in enumerate(self.requests) if e is replaces), None)
                if index is None:
                    return
                self.requests[index] = entry
            self.bytes_served += served


class _Server(ThreadingHTTPServer):
    block_on_close = False  # idle keep-alive connections would otherwise make server_close() hang
    hub: HubStandIn

    def handle_error(self, request, client_address) -> None:
        # Clients hang up mid-response on purpose (a stream closed early): only report real errors.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client pools its connections
    server: _Server
    status, in_hook = 0, False

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: with Nagle + delayed ACK each request would cost ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.hub._lock:
            self.server.hub._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.hub._lock:
            self.server.hub._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status = code
        if self.in_hook:  # logged while the status line is still buffered, i.e. before the client sees it
            self.server.hub._record((self.command, self.path, self.headers.get("Range"), code, 0), 0)
        super().send_response(code, message)

    def do_GET(self) -> None:
        hub = self.server.hub
        self.status = 0
        # An unread body would be parsed as the next request on this keep-alive connection.
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if hub.before_response is None or not self._run_hook(hub.before_response):
                self._route(hub)
        except _HubError as err:
            self._send_error(err)
        except Exception as exc:
            if not self.status:  # a bug in the stand-in: answer, then let handle_error print the traceback
                self._send_error(_HubError(500, None, f"hubstub internal error: {exc!r}"))
            raise

    do_HEAD = do_POST = do_GET

    def _run_hook(self, hook: Callable[[BaseHTTPRequestHandler], bool]) -> bool:
        self.in_hook = True
        try:
            return hook(self)
        finally:
            self.in_hook = False

    def _route(self, hub: HubStandIn) -> None:
        path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
        if match := API_ROUTE.match(path):
            action, rest = match["action"], (match["rest"] or "main").split("/")
            repo, snapshot, rest = self._lookup(hub, unquote(match["repo"]), rest)
            if action == "tree":
                return self._tree(hub, snapshot, unquote("/".join(rest)).strip("/"), query)
            if action == "paths-info":
                return self._paths_info(snapshot)
            return self._repo_info(unquote(match["repo"]), repo, snapshot, self._flag(query.get("blobs")))
        if match := RESOLVE_ROUTE.match(path):
            repo, snapshot, rest = self._lookup(hub, unquote(match["repo"]), match["rest"].split("/"))
            return self._resolve(hub, unquote(match["repo"]), repo, snapshot, unquote("/".join(rest)))
        if match := STORAGE_ROUTE.match(path):
            repo, snapshot, _ = self._lookup(hub, unquote(match["repo"]), [match["sha"]])
            return self._serve_file(snapshot, unquote(match["path"]))
        if OTHER_REPO_ROUTE.match(path):
            raise _HubError(404, "RepoNotFound", "Repository not found")  # only datasets are served
        raise _HubError(404, None, "Sorry, we can't find the page you are looking for.")

    @staticmethod
    def _lookup(hub: HubStandIn, repo_id: str, segments: list[str]) -> tuple[_Repo, _Snapshot, list[str]]:
        """Split path segments into a known revision and the rest, or raise the Hub's 404s."""
        with hub._lock:
            repo = hub.repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        for n in range(1, MAX_REVISION_SEGMENTS + 1 if segments[0] else 1):
            if snapshot := repo.snapshot("/".join(map(unquote, segments[:n]))):
                return repo, snapshot, segments[n:]
        raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {unquote(segments[0])}")

    def _repo_info(self, repo_id: str, repo: _Repo, snapshot: _Snapshot, blobs: bool) -> None:
        siblings = [
            {"rfilename": p, **({"size": len(data), "blobId": snapshot.oids[p]} if blobs else {})}
            for p, data in snapshot.files.items()
        ]
        info = {"_id": snapshot.sha[:24], "id": repo_id, "author": repo_id.split("/")[0], "sha": snapshot.sha}
        info.update(lastModified=COMMIT_DATE, createdAt=COMMIT_DATE, private=False, disabled=False, tags=[])
        info.update(gated="auto" if repo.gated else False, downloads=0, likes=0, siblings=siblings)
        self._send_json(info | {"usedStorage": sum(map(len, snapshot.files.values()))})

    def _tree(self, hub: HubStandIn, snapshot: _Snapshot, path: str, query: dict[str, list[str]]) -> None:
        if path and path not in snapshot.dirs:  # a file too: HfFileSystem.ls relies on that
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on this revision")
        recursive, expand = self._flag(query.get("recursive")), self._flag(query.get("expand"))
        page_size = hub.tree_page_size_expanded if expand else hub.tree_page_size
        paths, start = snapshot.children(path, recursive), int(query.get("cursor", ["0"])[0])
        headers = {}
        if start + page_size < len(paths):
            query_string = f"recursive={str(recursive).lower()}&expand={str(expand).lower()}"
            next_url = f"{hub.url}{urlsplit(self.path).path}?{query_string}&cursor={start + page_size}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._send_json([snapshot.entry(p, expand) for p in paths[start : start + page_size]], headers)

    def _paths_info(self, snapshot: _Snapshot) -> None:
        if "json" in (self.headers.get("Content-Type") or ""):
            body = json.loads(self.body or b"{}")
            paths, expand = body.get("paths", []), bool(body.get("expand"))
        else:  # what the client sends: paths=a&paths=b&expand=false
            form = parse_qs(self.body.decode())
            paths, expand = form.get("paths", []), self._flag(form.get("expand"))
        found = [p for p in (p.strip("/") for p in paths) if p in snapshot.files or p in snapshot.dirs]
        self._send_json([snapshot.entry(p, expand) for p in found])

    def _resolve(self, hub: HubStandIn, repo_id: str, repo: _Repo, snapshot: _Snapshot, path: str) -> None:
        auth = self.headers.get("Authorization")
        if repo.gated and (hub.token is None or auth != f"Bearer {hub.token}"):
            status, need = (401, "be authenticated") if auth is None else (403, "be in the authorized list")
            message = f"Access to dataset {repo_id} is restricted. You must {need}."
            raise _HubError(status, "GatedRepo", message)
        if path not in snapshot.files:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on this revision")
        if hub.redirect_files:
            location = f"/__storage/{quote(repo_id)}/{snapshot.sha}/{quote(path)}"
            headers = {"Location": location, "ETag": f'"{snapshot.oids[path]}"', "X-Repo-Commit": snapshot.sha}
            return self._send(302, b"", headers)
        self._serve_file(snapshot, path)

    def _serve_file(self, snapshot: _Snapshot, path: str) -> None:
        if path not in snapshot.files:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on this revision")
        data = snapshot.files[path]
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        headers |= {"ETag": f'"{snapshot.oids[path]}"', "X-Repo-Commit": snapshot.sha}
        byte_range = self._parse_range(self.headers.get("Range"), len(data))
        if byte_range is None:
            return self._send(200, data, headers, count=True)
        start, end = byte_range
        if start > end:
            return self._send(416, b"", headers | {"Content-Range": f"bytes */{len(data)}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(206, data[start : end + 1], headers, count=True)

    @staticmethod
    def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
        """Inclusive (start, end) of a single range; start > end means 416, None means serve it all."""
        match = RANGE_HEADER.match(header or "")
        if match is None or match.groups() == ("", ""):
            return None  # absent or malformed (multi-range too): RFC 9110 lets us ignore it
        first, last = match.groups()
        if not first:  # suffix range: the last n bytes
            return (max(0, size - int(last)), size - 1) if int(last) else (1, 0)
        if last and int(last) < int(first):
            return None
        return int(first), min(int(last), size - 1) if last else size - 1

    @staticmethod
    def _flag(values: list[str] | None) -> bool:
        return bool(values) and values[0].lower() in ("true", "1")

    def _send_error(self, err: _HubError) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": err.message}
        headers |= {"X-Error-Code": err.code} if err.code else {}
        self._send(err.status, json.dumps({"error": err.message}).encode(), headers)

    def _send_json(self, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _send(self, status: int, body: bytes, headers: dict[str, str], count: bool = False) -> None:
        hub, size = self.server.hub, 0 if self.command == "HEAD" else len(body)
        # Logged and counted up front, then corrected to what the socket accepted if the client hangs up.
        entry = (self.command, self.path, self.headers.get("Range"), status, size)
        hub._record(entry, size if count else 0)
        sent = 0
        try:
            self.send_response(status)
            for name, value in (headers | {"Content-Length": str(len(body))}).items():
                self.send_header(name, value)
            self.end_headers()
            for offset in range(0, size, WRITE_CHUNK):
                sent += self.wfile.write(body[offset : offset + WRITE_CHUNK]) or 0
        except OSError:
            hub._record(entry[:4] + (sent,), sent - size if count else 0, replaces=entry)
            raise
