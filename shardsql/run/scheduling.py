"""Running units in parallel with their results in order, within limits.

`in_order` is the one scheduler: work started ahead, results handed on in the items'
order, a window saying how much may be in flight. Both engines use it: threads here
(`ordered`), Ray tasks in ray/driver.py. `prefetched` fetches units' bytes a couple of
units ahead on I/O threads, so the network works while the cores decode and filter.

The limits on what is in flight (`window`) are here too: a unit starts only while fewer
than a worker's worth of units and bytes are in flight, and while the source rows in
flight are fewer than the kept rows still wanted (a unit keeps at most its rows), so
nothing is read that the shards cannot need beyond the units already started.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..source.decode import fetch_unit
from ..source.files import Source
from ..source.units import Unit

T = TypeVar("T")
R = TypeVar("R")
# Units in flight (running, or done and waiting for the consumer): a unit per worker and
# WAITING_UNITS more, and at most BYTES_PER_WORKER compressed bytes a worker. Decoded units
# and their kept rows are most of a conversion's memory; more would not be faster, since
# the shard writer is the slowest stage.
WAITING_UNITS = 1
BYTES_PER_WORKER = 24 << 20
FETCH_THREADS = 4  # range requests at once: hides the network's latency without hammering the Hub
FETCH_AHEAD = 2  # units fetched ahead of the work started on them


def in_order(
    items: Iterator[T],
    start: Callable[[T], Any],
    finish: Callable[[Any], R],
    may_start: Callable[[list[T]], bool],
    cancel: Callable[[Any], None],
) -> Iterator[tuple[T, R]]:
    """(item, finish(start(item))) for each item, in the items' order, with work started ahead.

    `may_start(in_flight)` says whether another item may start while `in_flight` (items
    started and not yet yielded) are pending; with nothing in flight an item always starts,
    since the consumer is asking for one. Stopping the iteration cancels what is pending.
    Both engines run units this way: threads here (`ordered`), Ray tasks in ray/driver.py.
    """
    pending: deque[tuple[T, Any]] = deque()
    try:
        while True:
            while not pending or may_start([item for item, _ in pending]):
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


def prefetched(source: Source, units: Iterator[Unit], ahead: int | None = None) -> Iterator[tuple[Unit, Future]]:
    """(unit, the future of its fetched ranges), with the fetches of up to `ahead` more units
    already under way: the network works while the cores decode and filter.

    Items are pulled as work starts, so at most `ahead` units are fetched beyond the work
    started (the bound on reading past what the shards need).
    """
    ahead = FETCH_AHEAD if ahead is None else ahead
    pool = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="shardsql-fetch")
    waiting: deque[tuple[Unit, Future]] = deque()
    try:
        for unit in units:
            waiting.append((unit, pool.submit(fetch_unit, source, unit)))
            if len(waiting) > ahead:
                yield waiting.popleft()
        while waiting:
            yield waiting.popleft()
    finally:
        for _, future in waiting:
            future.cancel()
        pool.shutdown(wait=True)


def may_submit(rows_wanted: Callable[[], float], window: int, limit: int) -> Callable[[list[Unit]], bool]:
    """Whether another unit may start after the units in flight: fewer than `window` of them,
    fewer than `limit` bytes fetched, and fewer source rows than the kept rows still wanted (a
    unit keeps at most its rows). Both engines start units by this rule."""
    return lambda units: (
        len(units) < window and sum(u.fetch_bytes for u in units) < limit and sum(u.rows for u in units) < rows_wanted()
    )


def window(workers: int, rows_wanted: Callable[[], float]) -> Callable[[list[tuple[Unit, Future]]], bool]:
    """`may_submit` for the (unit, fetched data) items of the local executor's threads."""
    allowed = may_submit(rows_wanted, workers + WAITING_UNITS, workers * BYTES_PER_WORKER)
    return lambda flight: allowed([unit for unit, _ in flight])
