"""A network model between the client and the stand-in: round trips, per-connection and link bandwidth.

On 127.0.0.1 every answer is instant and every byte free, so a client cannot be tested or
benchmarked there for what a real link costs: a round trip per request, more for a new
connection (TCP and TLS handshakes), a bandwidth cap per connection (a TCP flow through a far
CDN rarely gets more than a few MB/s), and one link that all connections share. The model
plays these on both of the stand-in's servers, in the handler threads:

* every answer waits ``rtt_s`` before its status line is sent; the first answer on a new
  connection waits ``connect_rtts`` round trips more;
* each connection's body bytes are paced at ``connection_bytes_per_s``;
* all connections together share ``link_bytes_per_s``: each body chunk reserves its time on
  the link in arrival order, and a connection asks for its next chunk only once its last one
  is through, so busy connections take turns, each getting an equal share.

A chunk is written when it would have been fully delivered (pacing waits before the write), so
a client never sees a body sooner than the model allows. Times are real (``time.monotonic``),
not the stand-in's wall clock: a fake clock does not speed the network up. Waits are on the
stand-in's stop event, so ``stop()`` never waits for a slow body.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Within a body, a connection that fell behind its schedule (an overslept wait, a write that
# blocked) may catch up by this much, so that sleep overshoot does not lower its rate; never more,
# so that a client that stopped reading does not get a burst when it resumes.
MAX_CATCH_UP_S = 0.05


def _limited(value: float | None) -> float | None:
    return value if value else None  # None and 0 both mean unlimited


@dataclass(frozen=True)
class NetworkModel:
    """What the link is like. None (or 0) for a field: that part is unlimited (free, instant)."""

    rtt_s: float | None = None
    connection_bytes_per_s: float | None = None
    link_bytes_per_s: float | None = None
    connect_rtts: int = 2  # extra round trips before a new connection's first answer (TCP + TLS)

    def describe(self) -> str:
        parts = []
        if self.rtt_s:
            parts.append(f"{self.rtt_s * 1000:g} ms round trip ({self.connect_rtts} more for a new connection)")
        if self.connection_bytes_per_s:
            parts.append(f"{self.connection_bytes_per_s / 1e6:g} MB/s a connection")
        if self.link_bytes_per_s:
            parts.append(f"{self.link_bytes_per_s / 1e6:g} MB/s for the whole link")
        return ", ".join(parts) or "an unlimited link"


# The slow link of the issue: far from the CDN, on a shared uplink.
SLOW_LINK = NetworkModel(rtt_s=0.1, connection_bytes_per_s=4e6, link_bytes_per_s=25e6, connect_rtts=2)


class Connection:
    """One client connection's place in the model (a handler holds one for its connection's lifetime)."""

    def __init__(self) -> None:
        self.answers = 0  # answers started on this connection
        self.scheduled = 0.0  # when its last body chunk was through, on the model's clock


class Network:
    """The model in play: waits for round trips and paces bodies, sharing one link between connections."""

    def __init__(
        self, model: NetworkModel, wait: Callable[[float], object], clock: Callable[[], float] = time.monotonic
    ):
        """`wait(seconds)` waits (the stand-in's stop event's, which returns at stop()); `clock` tells the time."""
        self.model = model
        self.rtt_s = _limited(model.rtt_s)
        self.connection_rate = _limited(model.connection_bytes_per_s)
        self.link_rate = _limited(model.link_bytes_per_s)
        self._wait, self._clock = wait, clock
        self._link_free_at = 0.0  # when the link is through with every chunk reserved on it so far
        self._lock = threading.Lock()

    def answer(self, connection: Connection) -> None:
        """Wait before an answer's status line: a round trip, plus the handshakes on a new connection."""
        rtts = 1 + (self.model.connect_rtts if connection.answers == 0 else 0)
        connection.answers += 1
        if self.rtt_s:
            self._wait(rtts * self.rtt_s)

    def begin_body(self, connection: Connection) -> None:
        """A body starts: the connection was idle until now, whatever its schedule said."""
        connection.scheduled = max(connection.scheduled, self._clock())

    def pace(self, connection: Connection, size: int) -> None:
        """Wait until `size` more body bytes on `connection` would be through, then return (to write them)."""
        if self.connection_rate is None and self.link_rate is None:
            return
        now = self._clock()
        ready = max(connection.scheduled, now - MAX_CATCH_UP_S)
        done = ready + size / self.connection_rate if self.connection_rate else ready
        if self.link_rate:
            with self._lock:
                self._link_free_at = max(self._link_free_at, ready) + size / self.link_rate
                done = max(done, self._link_free_at)
        connection.scheduled = done
        if done > now:
            self._wait(done - now)
