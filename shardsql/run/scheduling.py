"""Running units in parallel with their results in order, within limits.

`in_order` is the one scheduler: work started ahead, results handed on in the items'
order, a window saying how much may be in flight. Both engines use it: threads here
(`ordered`), Ray tasks in ray/driver.py. `fetching` starts a unit's fetch on the source's
fetch streams (source/fetch.py) the moment the unit is admitted, so the network works while
the cores decode and filter the units admitted before it.

The limits on what is in flight (`Admission`, `Window`) are here too, the same for both
engines (under Ray, the streams are those of its fetch actors, together). The bytes of the
units in flight, fetched or being fetched, stay under BYTES_PER_WORKER a worker: most of a
conversion's memory. Within that, two sides hold the job back in turn, and each has its
limit: the cores, by the units fetched and waiting for or in a worker (one a worker and
`ahead_units` more; under Ray, one more a worker); the link, by the bytes still being fetched, which stay under what the
streams can take (`fetch_ahead` times the streams' pieces), so that every stream has a piece
when the link is the slower side, and nothing piles up when the cores are. A unit also
starts only while the kept rows the units in flight are expected to give, at the keep
ratio seen so far (`KeepRatio`), are fewer than the rows still wanted. The unit then started holds
at most the source rows that the rest of the rows wanted are expected to need
(`Admission.most_rows`, read by source/units.py as it closes the unit): near the end of a
job, the last units are cut to what it still needs. So a small job fetches about what its
shards need, whatever the number of workers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, TypeVar

from .. import tuning
from ..source.decode import start_fetch
from ..source.fetch import Parts
from ..source.files import Source
from ..source.units import Unit

T = TypeVar("T")
R = TypeVar("R")
H = TypeVar("H")  # what starting an item gives: its handle (a Future; under Ray, an ObjectRef)
# Units fetched and in flight: a unit per worker and `ahead_units` more (tuning.py: done and
# waiting for a worker or the consumer), and at most BYTES_PER_WORKER compressed bytes a worker
# in flight, fetched or being fetched. Fetched bytes, decoded units and their kept rows are most
# of a conversion's memory; more would not be faster where the cores are the slower side.
BYTES_PER_WORKER = 24 << 20
# A shuffle's select phase (Window's `staging`): more may wait, since each unit is staged to
# disk as it finishes. Units fetched and waiting: STAGING_AHEAD_UNITS beyond one a worker; bytes
# in flight: STAGING_LINK_BYTES beyond the workers', the same for any number of cores. On the
# bench's modelled link (shuffled main job, 2 workers, one run each) the reads' share of the
# link was 89 to 90% without, 89% with three units ahead alone (88% with 40 MB a worker
# alone), and with both, as here, 93 to 96% (92% in `just bench` at 4ef1a9f).
STAGING_AHEAD_UNITS = 3
STAGING_LINK_BYTES = 32 << 20
# A unit cut to the rows still needed holds this many times the source rows they are expected
# to need at the keep ratio so far: a filter that keeps a little less than so far does not
# cost another, small, request.
CUT_MARGIN = 1.1


def in_order(
    items: Iterator[T],
    start: Callable[[T], H],
    finish: Callable[[H], R],
    may_start: Callable[[list[T]], bool],
    cancel: Callable[[H], object],
) -> Iterator[tuple[T, R]]:
    """(item, finish(start(item))) for each item, in the items' order, with work started ahead.

    `may_start(in_flight)` says whether another item may start while `in_flight` (items
    started and not yet yielded) are pending; with nothing in flight an item always starts,
    since the consumer is asking for one. Stopping the iteration cancels what is pending.
    Both engines run units this way: threads here (`ordered`), Ray tasks in ray/driver.py.
    """
    pending: deque[tuple[T, H]] = deque()
    try:
        while True:
            # may_start is asked first even with nothing in flight: what it sees sizes the next item.
            while may_start([item for item, _ in pending]) or not pending:
                item = next(items, None)
                if item is None:
                    break
                pending.append((item, start(item)))
            if not pending:
                return
            item, handle = pending.popleft()
            result = finish(handle)
            del handle  # a Ray result is held only until it is handed on
            yield item, result
    finally:
        for _, handle in pending:
            cancel(handle)


def ordered(
    items: Iterator[T],
    work: Callable[[T], R],
    workers: int,
    may_submit: Callable[[list[T]], bool],
) -> Iterator[tuple[T, R]]:
    """`work(item)` for each item on `workers` threads, yielded in the items' order (see
    `in_order`). Stopping the iteration cancels what has not started and waits for what has."""
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="shardsql-unit")
    try:
        yield from in_order(items, lambda item: pool.submit(work, item), Future.result, may_submit, Future.cancel)
    finally:
        pool.shutdown(wait=True)


def fetching(source: Source, units: Iterator[Unit]) -> Iterator[tuple[Unit, Future[Parts]]]:
    """(unit, the future of its fetched ranges): a unit's fetch starts when the unit is taken
    from here, that is when the scheduler admits it, never before. Every fetch started
    belongs to an admitted unit, whose work may still wait for it: none is cancelled (the
    window bounds how many there are)."""
    for unit in units:
        yield unit, start_fetch(source, unit)


class KeepRatio:
    """The share of the source rows read so far that the definition kept (1.0 before any):
    what a unit in flight is expected to keep, per row."""

    def __init__(self) -> None:
        self.read = self.kept = 0

    def add(self, read: int, kept: int) -> None:
        self.read, self.kept = self.read + read, self.kept + kept

    def __call__(self) -> float:
        return self.kept / self.read if self.read else 1.0


class Admission:
    """Whether another unit may start after the units in flight, and how large it may be.

    A unit may start while fewer than `window` units are fetched and in flight, fewer than
    `limit` bytes are in flight (fetched or not), fewer than `fetch_limit` bytes are still
    being fetched, and the kept rows they are expected to give (their source rows times
    `ratio()`, the keep ratio so far) are fewer than the rows still wanted. Both engines
    start units by this rule; `most_rows` is what the units' iterator reads to cut the unit
    it starts next."""

    def __init__(self, rows_wanted: Callable[[], float], window: int, limit: int,
                 ratio: Callable[[], float] = lambda: 1.0):  # fmt: skip
        self.rows_wanted, self.window, self.limit, self.ratio = rows_wanted, window, limit, ratio
        self.room = math.inf  # the kept rows wanted beyond those expected of the units in flight, when last asked

    def __call__(self, units: list[Unit], fetching: list[Unit] | None = None, fetch_limit: float = math.inf) -> bool:
        """Whether a unit may start after `units`; of them, `fetching` are still being fetched
        (None: unknown, all count against the window), which stay under `fetch_limit` bytes."""
        expected = sum(u.rows for u in units) * self.ratio()
        self.room = self.rows_wanted() - expected
        fetching = fetching or []
        ready = [u for u in units if all(u is not f for f in fetching)] if fetching else units
        if len(ready) >= self.window or sum(u.fetch_bytes for u in units) >= self.limit:
            return False
        if sum(u.fetch_bytes for u in fetching) >= fetch_limit:
            return False
        return self.room > 0

    def most_rows(self) -> float:
        """The source rows the next unit needs hold at most: the room left, at the keep ratio, with a margin."""
        ratio = self.ratio()
        return math.inf if ratio <= 0 or self.room == math.inf else max(1.0, self.room / ratio * CUT_MARGIN)


class StreamLimit(Protocol):
    """What a Window reads of the fetch side: how many range requests may be in flight now
    (a source's fetch.Streams; under Ray, its fetch actors' together)."""

    @property
    def limit(self) -> int: ...


class Done(Protocol):
    """A fetch in flight, as a Window sees it: done or not (a Future; under Ray, its fetch's)."""

    def done(self) -> bool: ...


class Window:
    """The Admission of both engines, over their (unit, its fetch) items: the units fetched
    count against the workers' window (a unit a worker and `ahead` more), their bytes against
    BYTES_PER_WORKER a worker and `link_bytes` more, those being fetched against what the
    `streams` take. With `staging` (a shuffle's select phase), more may be in flight:
    STAGING_AHEAD_UNITS and STAGING_LINK_BYTES."""

    def __init__(self, workers: int, streams: StreamLimit, rows_wanted: Callable[[], float],
                 ratio: Callable[[], float] = lambda: 1.0, *, ahead: int | None = None, link_bytes: int = 0,
                 staging: bool = False):  # fmt: skip
        ahead = tuning.current().ahead_units if ahead is None else ahead
        if staging:
            ahead, link_bytes = max(ahead, STAGING_AHEAD_UNITS), max(link_bytes, STAGING_LINK_BYTES)
        self.admission = Admission(rows_wanted, workers + ahead, workers * BYTES_PER_WORKER + link_bytes, ratio)
        self.streams = streams

    def __call__(self, flight: Sequence[tuple[Unit, Done]]) -> bool:
        fetching = [unit for unit, data in flight if not data.done()]
        knobs = tuning.current()
        limit = knobs.fetch_ahead * self.streams.limit * knobs.piece_bytes
        return self.admission([unit for unit, _ in flight], fetching, limit)
