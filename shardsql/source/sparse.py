"""The file Polars decodes a unit's text columns from, scanned once a file (decode.py).

Polars reads parquet from a path, and parses the file's whole footer each time a new scan of
it is collected, on the calling thread: 7 ms a unit for the Hub's ~100-row groups (1,200 of
them and a 4.4 MB footer in a 555 MB file), 1.2 ms for 1,000-row groups. A scan collected
again reuses what it parsed. So each file gets one scan, kept for its next units (the last
FILES_KEPT files', and no more than FOOTER_BYTES_KEPT of their footers: a scan holds its
file's parsed metadata, about 10 MB for a 4.4 MB footer; for as long as the source holds the
same footer):

* a local file: its own path (the page cache is already memory);
* a remote one: a sparse copy, a file of its size in memory (memfd) that holds the footer
  and, at their offsets, the fetched ranges of the units being decoded. A unit's ranges are
  removed from it once the unit is decoded (MADV_REMOVE), so it holds a few units' bytes,
  whatever the file's size. Polars, finding zeros outside a unit's ranges, fails rather than
  reading wrong bytes (decode.py then falls back to pyarrow).

Where the system has no memfd (macOS), a remote unit gets a temporary file of its own,
scanned once.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .files import ParquetFooter, Source, SourceFile
from .units import Unit

if TYPE_CHECKING:
    import polars as pl

FILES_KEPT = 8  # files whose scans (and sparse copies) are kept for their next units ...
FOOTER_BYTES_KEPT = 16 << 20  # ... while their footers come to no more than this (files in use stay)
SPARSE = hasattr(os, "memfd_create") and hasattr(mmap, "MADV_REMOVE")  # Linux
_PAGE = mmap.PAGESIZE


def _scan_of(path: str) -> pl.LazyFrame:
    import polars as pl  # (imported by the shard writers too; loading it costs 0.15 s)

    return pl.scan_parquet(path, glob=False, hive_partitioning=False, cache=False)


class _File:
    """A file as Polars reads it: its `path`, its `scan`, and for a sparse copy its memfd and
    a mapping of it (through which a unit's ranges are removed). `users`: units decoding from it."""

    def __init__(self, footer: ParquetFooter, path: str, fd: int = -1):
        self.footer, self.path, self.fd = footer, path, fd
        self.mapping = mmap.mmap(fd, footer.file.size) if fd >= 0 else None
        self.scan = _scan_of(path)
        self.users = 0
        self.retired = False  # replaced or let go while in use: closed by its last user
        self._held: Counter[tuple[int, int]] = Counter()  # the units holding each range (start, end)
        self._lock = threading.Lock()

    def write(self, ranges: tuple[tuple[int, int], ...], data: dict[int, bytes]) -> None:
        """Hold a unit's `ranges`, their bytes (`data`, in pieces) written where no unit held them."""
        with self._lock:
            fresh = not any(self._held[r] for r in ranges)
            self._held.update(ranges)
        if fresh:  # (a unit decoded twice at once: its bytes are there already)
            for start, piece in data.items():
                os.pwrite(self.fd, piece, start)

    def remove(self, ranges: tuple[tuple[int, int], ...]) -> None:
        """Let go of a unit's `ranges`: the pages of those no unit holds any more are freed, but
        for a page shared with a range still held, or with the footer."""
        assert self.mapping is not None
        with self._lock:
            self._held.subtract(ranges)
            done = [r for r in ranges if self._held[r] <= 0]
            for r in done:
                del self._held[r]
            kept = [*self._held, (self.footer.file.size - len(self.footer.tail), self.footer.file.size)]
            for start, end in done:
                first, last = start // _PAGE * _PAGE, -(-end // _PAGE) * _PAGE
                for begin, stop in kept:  # a page another range needs stays
                    if begin < first + _PAGE and stop > first:
                        first += _PAGE
                    if begin < last and stop > last - _PAGE:
                        last -= _PAGE
                if last > first:
                    self.mapping.madvise(mmap.MADV_REMOVE, first, last - first)

    def close(self) -> None:
        if self.mapping is not None:
            self.mapping.close()
        if self.fd >= 0:
            os.close(self.fd)


_kept: dict[tuple[bool, str], _File] = {}  # by (local, path), the most recently used last
_lock = threading.Lock()


def _take(key: tuple[bool, str], footer: ParquetFooter, make: Callable[[], _File]) -> _File:
    """The kept file for `key` if it was made for `footer`, else a new one (`make`); in use until `_release`."""
    with _lock:
        kept = _kept.pop(key, None)
        if kept is not None and kept.footer is not footer:  # the file was read again: it may differ
            _retire(kept)
            kept = None
        if kept is None:
            kept = make()
        kept.users += 1
        _kept[key] = kept
        footers = sum(len(f.footer.tail) for f in _kept.values())
        for old in [k for k, f in _kept.items() if not f.users]:  # the least recently used first
            if len(_kept) <= FILES_KEPT and footers <= FOOTER_BYTES_KEPT:
                break
            footers -= len(_kept[old].footer.tail)
            _retire(_kept.pop(old))
        return kept


def _retire(file: _File) -> None:
    file.retired = True
    if not file.users:
        file.close()


def _release(file: _File) -> None:
    with _lock:
        file.users -= 1
        if file.retired and not file.users:
            file.close()


def _sparse_copy(file: SourceFile, footer: ParquetFooter) -> _File:
    fd = os.memfd_create("shardsql-file", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, file.size)
        os.pwrite(fd, footer.tail, file.size - len(footer.tail))
        return _File(footer, f"/proc/self/fd/{fd}", fd)
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def polars_scan(source: Source, unit: Unit, footer: ParquetFooter, data: dict[int, bytes]) -> Iterator[pl.LazyFrame]:
    """Polars' scan of the unit's file, holding the unit's fetched ranges (`data`) while in use."""
    if source.local:
        local = _take((True, unit.file.path), footer, lambda: _File(footer, unit.file.path))
        try:
            yield local.scan
        finally:
            _release(local)
    elif SPARSE:
        copy = _take((False, unit.file.path), footer, lambda: _sparse_copy(unit.file, footer))
        try:
            copy.write(unit.ranges, data)
            yield copy.scan
        finally:
            try:
                copy.remove(unit.ranges)
            finally:
                _release(copy)
    else:
        with _unit_copy(unit, footer, data) as path:
            yield _scan_of(path)


@contextmanager
def _unit_copy(unit: Unit, footer: ParquetFooter, data: dict[int, bytes]) -> Iterator[str]:
    """A temporary file of the remote file's size holding only the unit's ranges and the footer."""
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(tempfile.NamedTemporaryFile(prefix="shardsql-unit-", suffix=".parquet"))
        os.ftruncate(scratch.fileno(), unit.file.size)
        for start, piece in data.items():
            os.pwrite(scratch.fileno(), piece, start)
        os.pwrite(scratch.fileno(), footer.tail, unit.file.size - len(footer.tail))
        yield scratch.name
