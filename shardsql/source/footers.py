"""Parquet footers: read once per file, in two exact range reads, and cached on the source.

A footer says where every column chunk of every row group lies, so that a conversion
fetches only the byte ranges it needs (units.py). Reading it costs two small requests:
the last 8 bytes (the footer's length and the magic), then the footer itself.

What a footer is (`ParquetFooter`) is defined in files.py, beside the `Source` that keeps
them (`Source.footers`); this module reads them through `Source.fetch`, so it imports
files.py and files.py never imports it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SourceError, describe
from ..wording import count
from .files import ParquetFooter, Source, SourceFile

FOOTER_THREADS = 4  # footers read in parallel by a dry run: hides network latency without hammering the Hub
PARQUET_MAGIC = b"PAR1"


def read_footer(source: Source, file: SourceFile) -> ParquetFooter:
    """The parquet footer of a file, in two exact range reads (length, then metadata); cached."""
    if file.path not in source.footers:
        source.footers[file.path] = _fetch_footer(source, file)
    return source.footers[file.path]


def _fetch_footer(source: Source, file: SourceFile) -> ParquetFooter:
    if file.size < 12:
        raise SourceError(f"{file.url} is not a parquet file ({count(file.size, 'byte')})")
    tail = source.fetch(file, file.size - 8, file.size)
    if tail[4:] != PARQUET_MAGIC:
        raise SourceError(f"{file.url} is not a parquet file (no PAR1 footer); it may be truncated")
    length = struct.unpack("<I", tail[:4])[0]
    if length + 12 > file.size:
        raise SourceError(f"{file.url} has a corrupt parquet footer (length {length} > file size)")
    start = file.size - 8 - length
    footer = source.fetch(file, start, file.size - 8)
    try:
        # The footer alone parses as a parquet "file": pyarrow only needs its last 8 bytes
        # and the metadata before them, and so reads nothing more from the network.
        metadata = pq.ParquetFile(pa.BufferReader(footer + tail)).metadata
    except Exception as exc:
        raise SourceError(f"{file.url} has a corrupt parquet footer: {describe(exc)}") from exc
    return ParquetFooter(file, metadata, footer + tail)


def read_footers(source: Source, files: list[SourceFile]) -> list[ParquetFooter]:
    """The footers of `files`, fetched in parallel (for dry runs and estimates)."""
    with reading_footers(source, files) as ahead:
        return [footer.result() for footer in ahead]


@contextmanager
def reading_footers(source: Source, files: list[SourceFile]) -> Iterator[list[Future[ParquetFooter]]]:
    """The footers of `files` being read in parallel while the block runs: their futures, in
    order. A caller that needs the first one soon gets it while the others are read (each costs
    round trips, not bytes); those not started when the block ends are not read."""
    pool = ThreadPoolExecutor(FOOTER_THREADS, thread_name_prefix="shardsql-footer")
    try:
        yield [pool.submit(read_footer, source, file) for file in files]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
