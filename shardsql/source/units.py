"""The source split into units of work, in order, each with the byte ranges to fetch.

A unit is a run of consecutive row groups of one file, closed once its needed column
chunks reach `unit_bytes` (compressed; tuning.py): large requests, since the Hub counts requests, not
bytes, and enough rows to amortise one DuckDB call. Its byte ranges are the needed column
chunks of its row groups, merged across the gaps between them where that costs few extra
bytes, so that a unit is one or a few large requests instead of one per column chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .. import tuning
from .files import ParquetFooter, Source, SourceFile
from .footers import read_footer

UNIT_MAX_ROWS = 1 << 17  # ... or this many rows (tiny columns): bounds a unit's decoded size
# Gaps between needed chunks are fetched too, smallest first, while the bytes fetched stay
# within this factor of the bytes needed ...
GAP_BUDGET = 1.15
SMALL_GAP = 8 << 10  # ... and a gap this small is always cheaper to fetch than to skip


@dataclass(frozen=True)
class Unit:
    """A run of consecutive row groups of one file: fetched, decoded and filtered as one."""

    file_index: int
    file: SourceFile
    row_groups: tuple[int, ...]
    rows: int
    ranges: tuple[tuple[int, int], ...]  # the byte ranges to fetch, merged

    @property
    def fetch_bytes(self) -> int:
        return sum(end - start for start, end in self.ranges)

    @property
    def start(self) -> tuple[int, int]:
        return self.file_index, self.row_groups[0]


def chunk_ranges(footer: ParquetFooter, row_group: int, columns: list[str]) -> list[tuple[int, int]]:
    """Byte ranges [start, end) of the column chunks of `columns` in one row group."""
    ranges = []
    for chunk in footer.row_group_chunks(row_group, columns):
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and chunk.dictionary_page_offset is not None:
            start = min(start, chunk.dictionary_page_offset)
        ranges.append((start, start + chunk.total_compressed_size))
    return ranges


def coalesce(ranges: list[tuple[int, int]], budget: float = GAP_BUDGET) -> list[tuple[int, int]]:
    """Merge byte ranges into few requests: overlapping and small gaps always, then the
    smallest gaps first while the total fetched stays within `budget` x the bytes needed."""
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + SMALL_GAP:
            merged[-1][1] = max(end, merged[-1][1])
        else:
            merged.append([start, end])
    needed = sum(end - start for start, end in ranges)
    spare = budget * needed - sum(end - start for start, end in merged)
    gaps = sorted((merged[i + 1][0] - merged[i][1], i) for i in range(len(merged) - 1))
    joined = set()
    for gap, i in gaps:
        if gap > spare:
            break
        spare -= gap
        joined.add(i)
    out: list[tuple[int, int]] = []
    for i, (start, end) in enumerate(merged):
        if i - 1 in joined:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def units(source: Source, columns: list[str], start: tuple[int, int] = (0, 0), grow: bool = False,
          most_rows: Callable[[], float] | None = None) -> Iterator[Unit]:  # fmt: skip
    """The source's row groups from `start` (file index, row group), in order, as units.

    With `grow`, the first unit is one row group and each next one up to twice as large
    (until `unit_bytes`): an interactive query that needs only the first rows reads only
    those. With `most_rows`, asked as each unit starts (when the scheduler admits it), a
    unit is closed once it holds that many source rows (at least one row group): the last
    units of a job hold what it still needs. Footers are read as the iteration reaches
    each file, so a conversion that needs the first files of a large dataset never reads
    the others' footers.
    """
    unit_bytes = tuning.current().unit_bytes
    target = 1 if grow else unit_bytes
    for file_index in range(start[0], len(source.files)):
        footer = read_footer(source, source.files[file_index])
        first = start[1] if file_index == start[0] else 0
        groups: list[int] = []
        ranges: list[tuple[int, int]] = []
        rows = size = 0
        cap = math.inf
        for index in range(first, footer.metadata.num_row_groups):
            if not groups and most_rows is not None:
                cap = most_rows()  # the unit starts now: what the rows still wanted need
            chunks = chunk_ranges(footer, index, columns)
            groups.append(index)
            ranges += chunks
            rows += footer.group_rows(index)
            size += sum(end - begin for begin, end in chunks)
            if size >= target or rows >= UNIT_MAX_ROWS or rows >= cap:
                yield Unit(file_index, footer.file, tuple(groups), rows, tuple(coalesce(ranges)))
                target = min(unit_bytes, 2 * max(target, size)) if grow else target
                groups, ranges, rows, size = [], [], 0, 0
        if groups:
            yield Unit(file_index, footer.file, tuple(groups), rows, tuple(coalesce(ranges)))
