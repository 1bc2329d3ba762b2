"""Where a Hub file's bytes are: the signed storage URL that `/resolve/` redirects to, kept
until shortly before it expires.

The Hub answers `/resolve/` with a 302 to a signed URL on its storage (Xet's cas-bridge
behind a CDN, another origin), valid about an hour. Asking `/resolve/` for every range
costs a round trip to huggingface.co each time and a request of the resolver quota (3,000
per 5 minutes, anonymous), which caps a conversion at about 90 MB/s however fast the link.
So a file is resolved once, and its ranges go straight to the storage URL until that URL
is about to expire (`Location.fresh`), or storage refuses it (reader.py drops it then).

A URL says when it expires: CloudFront's `Expires=<unix seconds>`, or S3's `X-Amz-Date`
plus `X-Amz-Expires`; the Hub's carry both. The expiry is taken relative to the answer's
own `Date` header, so a machine whose clock is off still refreshes in time; a URL that says
nothing is kept `DEFAULT_LIFETIME_S`. Times here are wall-clock seconds (`time.time`): a
location travels from the Ray driver to its workers, on other machines.
"""

from __future__ import annotations

import calendar
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import parse_qs, urlsplit

# A URL that does not say when it expires is resolved again after this long: well below the
# hour the Hub's URLs last, and a resolve every half hour costs nothing.
DEFAULT_LIFETIME_S = 1800.0
# A URL is resolved again this long before it expires (or a quarter of its lifetime, if
# shorter): a range asked just before the expiry must still be answered.
REFRESH_MARGIN_S = 120.0


@dataclass
class Location:
    """A file's signed storage URL and when it stops working (wall-clock seconds).

    `served` turns true once storage has answered a range from it: a later 403 then means the
    URL ran out (or storage forgot it), and resolving again is free; a 403 on a URL that never
    served counts as a failed attempt (reader.py)."""

    url: str
    expires_at: float
    margin: float = REFRESH_MARGIN_S
    served: bool = False

    def fresh(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires_at - self.margin

    def seconds_left(self) -> float:
        return self.expires_at - time.time()


def locate(url: str, date_header: str | None, now: float | None = None) -> Location:
    """The location of a signed storage URL, from the URL's own expiry and the answer's `Date`."""
    now = time.time() if now is None else now
    lifetime = url_lifetime(url, _server_time(date_header) or now)
    lifetime = DEFAULT_LIFETIME_S if lifetime is None else lifetime
    return Location(url, now + lifetime, min(REFRESH_MARGIN_S, max(lifetime, 0.0) / 4))


def url_lifetime(url: str, server_now: float) -> float | None:
    """Seconds a signed URL has left at `server_now`, by its own signature; None if it says nothing.
    With both signatures (the Hub's have CloudFront's and S3's), the earlier expiry wins."""
    query = {k.lower(): v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    ends = []
    if (expires := query.get("expires", "")).isdigit():
        ends.append(float(expires))
    amz_date, amz_expires = query.get("x-amz-date", ""), query.get("x-amz-expires", "")
    if amz_expires.isdigit():
        try:
            signed = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            signed = None
        if signed is not None:
            ends.append(signed + float(amz_expires))
    return min(ends) - server_now if ends else None


def _server_time(date_header: str | None) -> float | None:
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return None


class Locations:
    """The storage locations of a source's files, resolved once per file per URL lifetime.

    Thread-safe: many fetch threads read one file at once, and the first reads of a file
    must not each resolve it (`resolving` lets one of them do it while the others wait)."""

    def __init__(self) -> None:
        self._known: dict[str, Location | None] = {}  # None: the endpoint serves the bytes itself
        self._locks: dict[str, threading.Lock] = {}
        self._refused: dict[str, str] = {}  # the last URL storage refused, by file
        self._lock = threading.Lock()

    def get(self, path: str) -> Location | None | Literal[False]:
        """The file's fresh location; None if its endpoint answers with the bytes (no redirect);
        False if it must be resolved (never was, or expired)."""
        with self._lock:
            if path not in self._known:
                return False
            location = self._known[path]
        return location if location is None or location.fresh() else False

    def put(self, path: str, location: Location | None) -> None:
        with self._lock:
            self._known[path] = location

    def drop(self, path: str, location: Location) -> None:
        """Forget `location` (storage refused it), unless another thread has replaced it already."""
        with self._lock:
            self._refused[path] = location.url
            if self._known.get(path) is location:
                del self._known[path]

    def offer(self, path: str, location: Location) -> None:
        """Take `location`, resolved elsewhere, if it is fresh, new here and not refused here before."""
        if not location.fresh():
            return
        with self._lock:
            known = self._known.get(path)
            if self._refused.get(path) == location.url or (known is not None and known.url == location.url):
                return
            self._known[path] = Location(location.url, location.expires_at, location.margin)

    @contextmanager
    def resolving(self, path: str) -> Iterator[None]:
        """Held while one thread resolves `path`: the others wait for it, then use its answer."""
        with self._lock:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            yield


def same_origin(a: str, b: str) -> bool:
    """Whether two absolute URLs share scheme, host and port (a redirect that keeps the token)."""
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.hostname, x.port) == (y.scheme, y.hostname, y.port)
