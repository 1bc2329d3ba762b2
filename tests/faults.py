"""Network faults for the Hub stand-in, injected through its `before_response` hook.

Each fault is a real HTTP behaviour on a real socket: a 5xx status, a 429 with Retry-After
or RateLimit headers, a connection closed with no answer, a body cut off mid-way, or a
"successful" 206 that carries fewer bytes than asked for (the reply that once made
DuckDB's httpfs return short data with no error).
"""

from __future__ import annotations

import random
import threading

KINDS = ("503", "429-retry-after", "429-ratelimit", "drop", "truncated-body", "short-206")
STALL_S = 1.5  # longer than the client timeout the stall test sets


class Faults:
    """Answer a seeded random share of file reads (range GETs of `resolve` or of storage) with faults."""

    def __init__(self, kinds=KINDS, rate: float = 0.15, seed: int = 0, api_too: bool = False, limit: int | None = None,
                 reads: bool = True):  # fmt: skip
        """`api_too`: listing calls (`/api/`) too, with 503 or drop; `reads` False: those only."""
        self.kinds, self.rate, self.api_too, self.limit, self.reads = list(kinds), rate, api_too, limit, reads
        self.rng = random.Random(seed)
        self.injected: list[str] = []
        self.paths: list[str] = []  # the path of each request answered with a fault
        self._lock = threading.Lock()

    def __call__(self, handler) -> bool:
        is_file = handler.server.role == "storage" or "/resolve/" in handler.path
        is_read = self.reads and is_file and handler.command == "GET" and handler.headers.get("Range")
        if not (is_read or (self.api_too and handler.path.startswith("/api/"))):
            return False
        with self._lock:
            if self.limit is not None and len(self.injected) >= self.limit:
                return False
            if self.rng.random() >= self.rate:
                return False
            kind = self.rng.choice(self.kinds if is_read else [k for k in self.kinds if k in ("503", "drop")])
            self.injected.append(kind)
            self.paths.append(handler.path)
        getattr(self, "_" + kind.replace("-", "_"))(handler)
        return True

    @staticmethod
    def _reply(handler, status: int, headers: dict[str, str], body: bytes, declared: int | None = None) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body) if declared is None else declared))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()

    def _503(self, handler) -> None:
        self._reply(handler, 503, {"Content-Type": "text/plain"}, b"Service Unavailable")

    def _429_retry_after(self, handler) -> None:
        self._reply(handler, 429, {"Retry-After": "0"}, b"Too Many Requests")

    def _429_ratelimit(self, handler) -> None:
        headers = {"RateLimit": '"api";r=0;t=0', "RateLimit-Policy": '"fixed window";"api";q=500;w=300'}
        self._reply(handler, 429, headers, b"Too Many Requests")

    def _stall(self, handler) -> None:
        import time

        time.sleep(STALL_S)
        self._drop(handler)

    def _drop(self, handler) -> None:
        handler.close_connection = True
        handler.connection.shutdown(2)

    def _range(self, handler) -> tuple[int, int]:
        start, end = handler.headers["Range"].removeprefix("bytes=").split("-")
        return int(start), int(end)

    def _truncated_body(self, handler) -> None:
        start, end = self._range(handler)
        length = end - start + 1
        headers = {"Content-Range": f"bytes {start}-{end}/*"}
        self._reply(handler, 206, headers, b"\0" * (length // 2), declared=length)
        handler.close_connection = True
        handler.connection.shutdown(2)

    def _short_206(self, handler) -> None:
        start, end = self._range(handler)
        short = max((end - start + 1) // 2, 1)
        self._reply(handler, 206, {"Content-Range": f"bytes {start}-{start + short - 1}/*"}, b"\0" * short)
