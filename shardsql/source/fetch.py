"""Fetching byte ranges with as many requests in flight as the link rewards.

A conversion is bound by the network, and one TCP stream to a CDN is slower than the link
(hf_transfer and hf_xet open many for that reason). So every range a unit needs is split
into pieces of `piece_bytes` (tuning.py) or more (`pieces`), and one pool of threads per source
(`Fetcher`) fetches the pieces of every unit admitted, in the order they were asked for,
at most `Streams.limit` at once, whatever the number of cores.

`Streams` sets that limit from what the link gives, as hf_xet adapts its concurrency. It
starts at START_STREAMS. While pieces wait for a stream (the link, not the cores, holds the
job back) it estimates the rate all streams give together from the pieces started at the
current limit, once as many have arrived as there are streams (an epoch). It then tries half
as many streams again (up to MAX_STREAMS, a polite ceiling), and keeps growing while each
step raises that rate by GAIN or more; a step that does not is undone, and the limit holds,
trying a step up again every REPROBE_EPOCHS epochs (a link that got faster). A rate limit,
a 5xx or a timeout (`fault`) halves it, and the probing starts again. How many
bytes may be in flight is the scheduler's to say (run/scheduling.py): it admits units while
the pieces being fetched are fewer than the streams can take.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from .. import tuning

START_STREAMS = 8
MAX_STREAMS = 32
GAIN = 0.05  # a step up is kept only if it raised the rate this much
REPROBE_EPOCHS = 16  # a settled limit tries a step up again after this many epochs

Read = Callable[[int, int], bytes]  # bytes [start, end) of one file, retried (Source.fetch)
Parts = dict[int, bytes]  # a job's pieces, {start: bytes}


def pieces(ranges: tuple[tuple[int, int], ...] | list[tuple[int, int]],
           size: int | None = None) -> list[tuple[int, int]]:  # fmt: skip
    """Each range cut into equal pieces of at least `size` (`piece_bytes`) bytes; a shorter range is one piece."""
    size = size or tuning.current().piece_bytes
    out = []
    for start, end in ranges:
        n = max(1, (end - start) // size)
        cuts = [start + (end - start) * i // n for i in range(n + 1)]
        out += list(zip(cuts, cuts[1:], strict=False))
    return out


class Streams:
    """How many range requests of a source may be in flight: more while the rate they give
    grows, half on a fault. Thread-safe; `limit` is read by the fetch threads and the scheduler."""

    def __init__(self, start: int = START_STREAMS, most: int = MAX_STREAMS):
        self.limit, self.most = start, most
        self.peak = start  # the most this source's streams were allowed (tests/test_fetch.py reads it)
        self._samples: list[tuple[int, float]] = []  # (bytes, seconds) of pieces started busy at `limit`
        self._reference: float | None = None  # the rate at the limit a step up is measured against
        self._probing_from: int | None = None  # the limit before a step up still being measured
        self._settled = 0  # epochs since the limit settled
        self._lock = threading.Lock()

    def done(self, nbytes: int, seconds: float, limit: int, busy: bool) -> None:
        """A piece of `nbytes` arrived in `seconds`; it started under `limit`, `busy` if pieces
        were still waiting for a stream then (every stream was in use)."""
        with self._lock:
            if limit != self.limit or not busy:
                return  # a piece of another limit, or one the link was not short of streams for
            self._samples.append((nbytes, max(seconds, 1e-6)))
            if len(self._samples) < self.limit:
                return
            rate = self.limit * sum(b for b, _ in self._samples) / sum(s for _, s in self._samples)
            self._samples = []
            # (a step up is being measured: `_reference` is the rate it is measured against)
            if self._probing_from is not None and self._reference is not None and rate < self._reference * (1 + GAIN):
                self._set(self._probing_from)  # the step up gave nothing: undo it, and hold
                self._probing_from, self._settled = None, 0
            elif self._probing_from is None and self._reference is not None and self._settled < REPROBE_EPOCHS:
                self._reference, self._settled = rate, self._settled + 1
            else:  # the first epoch, a step that paid, or time to try again
                self._reference = rate
                self._step_up()

    def _step_up(self) -> None:
        if self.limit < self.most:
            self._probing_from = self.limit
            self._set(min(self.most, self.limit + max(1, self.limit // 2)))
        else:
            self._probing_from, self._settled = None, 0

    def fault(self, exc: BaseException | None = None) -> None:
        """A rate limit, a 5xx or a timeout: half as many streams, and probe again from there."""
        with self._lock:
            self._reference = self._probing_from = None
            self._set(max(1, self.limit // 2))

    def _set(self, limit: int) -> None:
        self.limit, self._samples = limit, []
        self.peak = max(self.peak, limit)


@dataclass
class _Job:
    """One request to the fetcher: its pieces as they arrive, then all of them ({start: bytes}).
    They are not joined into their ranges: that would copy every byte (decode.RangeFile reads
    across adjacent pieces)."""

    waiting: int
    future: Future[Parts] = field(default_factory=Future)
    parts: Parts = field(default_factory=dict)
    failed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, start: int, data: bytes) -> None:
        with self.lock:
            self.parts[start] = data
            self.waiting -= 1
            if self.waiting or self.failed:
                return
        self.future.set_result(self.parts)

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.failed:
                return
            self.failed = True
        self.future.set_exception(exc)


class Fetcher:
    """One source's fetch threads: the pieces of every job, in the order asked, `streams.limit`
    at once. Threads are started as pieces wait and end when none does: nothing idles."""

    def __init__(self, streams: Streams | None = None):
        self.streams = streams or Streams()
        self._queue: deque[tuple[_Job, tuple[int, int], Read]] = deque()
        self._cv = threading.Condition()
        self._active = self._threads = 0

    def submit(self, read: Read, ranges: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> Future[Parts]:
        """A future of {start: bytes} for each piece of `ranges`, fetched by `read`. The first
        failure of a piece fails it; the job's pieces not yet started are skipped."""
        cut = pieces(ranges)
        job = _Job(len(cut))
        if not cut:
            job.future.set_result({})
            return job.future
        with self._cv:
            self._queue.extend((job, piece, read) for piece in cut)
            self._start_threads()
            self._cv.notify_all()
        return job.future

    def _start_threads(self) -> None:
        wanted = min(self.streams.limit, self._active + len(self._queue))
        while self._threads < wanted:
            self._threads += 1
            threading.Thread(target=self._run, name="shardsql-fetch", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue or self._active >= self.streams.limit:
                    if not self._queue:
                        self._threads -= 1
                        return
                    self._cv.wait()
                job, (start, end), read = self._queue.popleft()
                self._active += 1
                limit, busy = self.streams.limit, bool(self._queue)
            try:
                if not job.failed:
                    began = time.monotonic()
                    data = read(start, end)
                    self.streams.done(len(data), time.monotonic() - began, limit, busy)
                    job.put(start, data)
            except BaseException as exc:  # handed to whoever waits for the job, as it was raised
                job.fail(exc)
            finally:
                with self._cv:
                    self._active -= 1
                    self._start_threads()
                    self._cv.notify_all()
