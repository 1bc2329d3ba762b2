"""The stand-in's state: the served repos, its settings and faults, and its counters.

Everything a request reads (what is served, how to answer it: redirects, signatures, faults,
budgets, the network model) or records (requests, bytes, transfers) is here, in `HubState`.
It lives below the request handling (handler.py and the answers it routes to), which reads
and writes it, and apart from the two HTTP servers that run it (server.py, whose `HubStandIn`
is a `HubState` that can start and stop): so that the answers can name the state's type
without importing the server, and the modules import each other in one direction only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from .limits import Budget
from .network import Network, NetworkModel
from .records import Transfer
from .signing import STYLES, Signer
from .store import Repo, Snapshot

# One request as `HubState.requests` holds it: (method, path with query, Range header, status, body bytes).
RequestEntry = tuple[str, str, str | None, int, int]

# The Hub's page sizes: HfFileSystem changes its listing strategy once a tree needs several pages.
TREE_PAGE_SIZE = 1000
TREE_PAGE_SIZE_EXPANDED = 50
STALL_S = 60.0  # a stalled request gets no answer for this long (or until stop()), then a closed connection
STALL_KINDS = ("resolve", "api", "storage")
STORAGE_FAULTS = ("access-denied", "stale-416")  # what storage_fault() sets and storage.py plays
RATE_LIMIT_WINDOW_S = 300  # the Hub's window
URL_LIFETIME_S = 3600  # how long the Hub's signed storage URLs stay valid


class HubState:
    """The served repos, the settings and faults that shape the answers, and the counters of what was
    answered: all that a request reads or records. `HubStandIn` (server.py) adds the servers."""

    def __init__(self, token: str | None = None):
        self.token = token  # the one token that may read gated repos
        self.repos: dict[str, Repo] = {}
        self.tree_page_size = TREE_PAGE_SIZE
        self.tree_page_size_expanded = TREE_PAGE_SIZE_EXPANDED
        # Like the real Hub, answer `resolve` with a 302 to the storage host, which serves the bytes.
        self.redirect_files = False
        self.storage_ignores_range = False  # the storage host answers 200 with the whole file to a Range
        # The storage URLs' signatures ("amz": S3's X-Amz-*, "cloudfront": Expires/Signature/Key-Pair-Id), checked
        # by storage; () gives unsigned URLs that never expire. Each lives url_lifetime_s from its 302.
        self.signed_url_styles: tuple[str, ...] = STYLES
        self.url_lifetime_s = URL_LIFETIME_S
        self.signer = Signer()
        # The 302 carries X-Xet-Hash and the Link to Xet's routes, as the Hub's does. hf_hub_download then takes
        # its Xet path, which needs routes the stand-in does not serve: set False to have it follow the URL.
        self.advertise_xet = True
        self.storage_gzips = False  # storage answers 200 + the whole file gzipped to a GET that accepts gzip
        self.resolve_via_cache = False  # `resolve` answers a relative 307 to /api/resolve-cache/..., at the commit
        # The stand-in's wall clock (unix seconds): signs URLs and checks their expiry, and gives every answer's Date.
        self.clock: Callable[[], float] = time.time
        self.stall_s = STALL_S
        self.budgets: dict[str, Budget] = {}  # "resolvers", "api": see limit_rate()
        # Both are updated as a response starts, before the client can see it (so a caller may check them
        # right after a call), and corrected down if the client hangs up mid-body. bytes_served only counts
        # file content bodies (resolve and storage GETs); requests holds (method, path, Range header, status,
        # body bytes) per request, on either server.
        self.bytes_served = 0
        self.requests: list[RequestEntry] = []
        # (server: "hub" or "storage", path, Authorization header or None) for every request.
        self.authorizations: list[tuple[str, str, str | None]] = []
        # Every answer the stand-in sends itself (not a before_response hook's), with its timings: records.py.
        self.transfers: list[Transfer] = []
        self.network: Network | None = None  # the network model in play: see model_network()
        self.renames: dict[str, str] = {}  # old repo id -> new, see rename()
        # Called with the request handler before each request is routed (its body already read into
        # `handler.body`). Return True if the hook has sent the whole response itself (an error, a stall, a
        # truncated body...): it is then not routed, and logged by its send_response() call with 0 body bytes.
        self.before_response: Callable[[BaseHTTPRequestHandler], bool] | None = None
        self._stalls = dict.fromkeys(STALL_KINDS, 0)
        self._storage_faults: dict[str, deque[int]] = {kind: deque() for kind in STORAGE_FAULTS}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)  # notified as each answer's body has gone out
        self._urls: dict[str, str] = {}  # "hub", "storage": where each server listens while they run (server.py)
        self._connections: set[socket.socket] = set()

    def add_dataset(self, repo_id: str, folder: Path, revision: str = "main", gated: bool = False) -> str:
        """Serve the files under ``folder`` as dataset ``repo_id`` at ``revision``; return its commit sha.

        Files are read now. Add the same repo again for more revisions; ``gated`` applies to the whole repo.
        """
        snapshot = Snapshot(repo_id, revision, Path(folder))
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo(gated))
            repo.gated = gated
            repo.revisions[revision] = snapshot
        return snapshot.sha

    def limit_rate(self, resolvers: int | None = None, api: int | None = None, window_s: int = RATE_LIMIT_WINDOW_S,
                   clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        """Answer 429 past `resolvers` file requests or `api` API calls in each window (None: no limit).
        `clock` tells the windows' time (seconds)."""
        budgets = {"resolvers": resolvers, "api": api}
        self.budgets = {
            name: Budget(name, quota, window_s, clock) for name, quota in budgets.items() if quota is not None
        }

    def stall(self, kind: str, times: int = 1) -> None:
        """Leave the next `times` requests of `kind` ("resolve", "api", "storage") unanswered for `stall_s`."""
        if kind not in STALL_KINDS:
            raise ValueError(f"kind must be one of {STALL_KINDS}, got {kind!r}")
        with self._lock:
            self._stalls[kind] += times

    def storage_fault(self, kind: str, times: int = 1, total: int | None = None) -> None:
        """Answer the next `times` storage GETs (that pass the signature check) with a fault of `kind`:

        * "access-denied": 403 with S3's AccessDenied XML, "Access Denied", for a valid, unexpired URL;
        * "stale-416": only GETs with a Range: 416, `Content-Range: bytes */{total}` and S3's InvalidRange
          XML, as a stale object in a CDN edge cache answers. `total` (the stale object's size) defaults
          to the start of the range asked for, so the range is just past its end.
        """
        if kind not in STORAGE_FAULTS:
            raise ValueError(f"kind must be one of {STORAGE_FAULTS}, got {kind!r}")
        with self._lock:
            self._storage_faults[kind].extend([-1 if total is None else total] * times)

    def take_storage_fault(self, kind: str) -> int | None:
        """Take the next pending fault of `kind`: its `total` (-1 when none was given), or None if none is pending."""
        with self._lock:
            pending = self._storage_faults[kind]
            return pending.popleft() if pending else None

    def model_network(self, rtt_s: float | None = None, connection_bytes_per_s: float | None = None,
                      link_bytes_per_s: float | None = None, connect_rtts: int = 2) -> NetworkModel:  # fmt: skip
        """Play a network between the client and both servers (None or 0: unlimited; all of them: no model).

        Every answer waits `rtt_s` before its status line (a new connection's first, `connect_rtts` more);
        each connection's body is paced at `connection_bytes_per_s`; all connections share `link_bytes_per_s`.
        """
        model = NetworkModel(rtt_s, connection_bytes_per_s, link_bytes_per_s, connect_rtts)
        self.play_network(model)
        return model

    def play_network(self, model: NetworkModel | None) -> None:
        """Play `model` (e.g. network.SLOW_LINK) from the next answer on, with a fresh link; None: no model."""
        if model is None or not (model.rtt_s or model.connection_bytes_per_s or model.link_bytes_per_s):
            self.network = None  # unlimited
        else:
            self.network = Network(model, self._stopping.wait)

    def rename(self, old_repo: str, new_repo: str) -> None:
        """Serve `old_repo` as `new_repo`, as after a rename on the Hub: every route of the old name answers a
        relative 307 to the same route of the new one (commits are unchanged). Adding `old_repo` again ends that."""
        with self._lock:
            if old_repo not in self.repos:
                raise ValueError(f"{old_repo} is not served")
            if new_repo in self.repos:
                raise ValueError(f"{new_repo} is already served")
            self.repos[new_repo] = self.repos.pop(old_repo)
            self.renames[old_repo] = new_repo

    def renamed_to(self, repo_id: str) -> str | None:
        """The name `repo_id` was renamed to, if it was and no repo is served under it now."""
        with self._lock:
            return None if repo_id in self.repos else self.renames.get(repo_id)

    def current_repo_id(self, repo_id: str) -> str:
        """`repo_id` after its renames, if any (storage URLs made before a rename stay valid)."""
        for _ in range(len(self.renames)):
            if (new := self.renamed_to(repo_id)) is None:
                break
            repo_id = new
        return repo_id

    def take_stall(self, kind: str) -> bool:
        with self._lock:
            if self._stalls.get(kind, 0) <= 0:
                return False
            self._stalls[kind] -= 1
            return True

    @property
    def stopping(self) -> bool:
        """stop() has been called: waits (stalls, the network model) end, and nothing more is answered."""
        return self._stopping.is_set()

    def wait_stalled(self) -> None:
        self._stopping.wait(self.stall_s)  # returns early at stop(): nothing hangs a test's teardown

    @property
    def url(self) -> str:
        return self._url("hub")

    @property
    def storage_url(self) -> str:
        return self._url("storage")

    def _url(self, role: str) -> str:
        if role not in self._urls:
            raise RuntimeError("HubStandIn is not started")
        return self._urls[role]

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_served = 0
            self.requests = []
            self.authorizations = []
            self.transfers = []

    def requests_per_file(self, kind: str = "storage", method: str = "GET") -> Counter[str]:
        """How many `method` requests of `kind` ("storage", "resolve" or "api") each file got: {"repo/path": n}.

        Counts answers of every status (a 302, a 403, a 416 too); since the last reset_counters()."""
        with self._lock:
            transfers = list(self.transfers)
        return Counter(t.file for t in transfers if t.kind == kind and t.method == method and t.file is not None)

    def most_reads_at_once(self) -> int:
        """The most file reads (answers that carried a file's bytes: 200 or 206 of resolve or storage)
        the stand-in was sending at once, since the last reset_counters()."""
        with self._lock:
            reads = [t for t in self.transfers if t.file is not None and t.status in (200, 206)]
        events = sorted([(t.received, 1) for t in reads] + [(t.finished or t.received, -1) for t in reads])
        running = most = 0
        for _, step in events:
            running += step
            most = max(most, running)
        return most

    def record(self, entry: RequestEntry, served: int, replaces: RequestEntry | None = None) -> None:
        with self._lock:
            if replaces is None:
                self.requests.append(entry)
            else:  # a correction, dropped if reset_counters() has run in between
                index = next((i for i, e in enumerate(self.requests) if e is replaces), None)
                if index is None:
                    return
                self.requests[index] = entry
            self.bytes_served += served

    def record_transfer(self, transfer: Transfer) -> None:
        with self._lock:
            self.transfers.append(transfer)

    def transfer_finished(self, transfer: Transfer) -> None:
        """Its answer is done (sent, or cut short): `settle` may return."""
        with self._finished:
            transfer.finished = time.monotonic()
            self._finished.notify_all()

    def settle(self, timeout_s: float = 30) -> None:
        """Wait until every answer recorded has finished going out: a client has its bytes a moment
        before the stand-in's thread records that it sent them, so a test reads `transfers` after this."""
        with self._finished:
            if not self._finished.wait_for(lambda: all(t.finished is not None for t in self.transfers), timeout_s):
                raise TimeoutError(f"answers still going out after {timeout_s} s")

    def record_authorization(self, role: str, path: str, authorization: str | None) -> None:
        with self._lock:
            self.authorizations.append((role, path, authorization))

    def track(self, connection: socket.socket, open: bool) -> None:
        with self._lock:
            if open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)
