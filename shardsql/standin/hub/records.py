"""What the stand-in records of each answer it sends, with timings, for tests and the benchmark.

``HubStandIn.requests`` says what was asked and answered; a ``Transfer`` also says when (on
``time.monotonic``, like the network model), which file it was for, and how far its body got, so
that a benchmark can tell resolve requests from storage requests, count the storage requests
each file got, and draw bytes over time (a body's bytes went out between ``answered`` and
``finished``; the network model paces them evenly in between).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Transfer:
    server: str  # "hub" or "storage"
    kind: str  # "api", "resolve" (also `/api/resolve-cache/`) or "storage"
    method: str
    path: str  # as requested, query string included
    status: int
    file: str | None  # "{repo}/{path in repo}" for file answers (resolve, resolve-cache, storage), else None
    received: float  # the request was read (monotonic seconds)
    answered: float | None = None  # the status line went out (after the network model's round trips)
    finished: float | None = None  # the body went out (None: still going)
    body_bytes: int = 0  # body bytes the socket accepted so far (0 for HEAD)
