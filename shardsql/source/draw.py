"""The shuffled draw: the source's units in a seeded random order, spread over all its files.

A shuffled conversion must not take its rows from the source's first files (autoresearch
reads shards in order, and the first files of a dataset are rarely representative), yet
it must fetch no more than an in-order run and in requests as large. So each file is cut
into *slots* of SLOT bytes by its size from the listing (no footer needed to plan), and
the draw order is a seeded permutation of every (file, slot) pair. Drawing a slot reads
its file's footer (cached: two small requests per file drawn, the only extra requests a
shuffled run makes) and yields one unit of the row groups whose first byte lies in the
slot; a slot holding no row group's start yields nothing. Every row group starts in
exactly one slot, so drawing every slot covers the source exactly once.

SLOT is chosen so that a unit's needed column bytes are about `unit_bytes` (tuning.py): the
file bytes per needed byte of the first file's footer, times `unit_bytes`. The order depends
only on the files listed, their sizes and the seed (never on the number of workers), so
a rerun draws the same units; `slot_index` positions are what a checkpoint records.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import tuning
from .files import ParquetFooter, Source
from .footers import read_footer
from .units import Unit, chunk_ranges, coalesce


def _rank(seed: int, file_index: int, slot: int) -> bytes:
    """A slot's place in the seed's order: a keyed hash, fixed across versions and processes."""
    key = seed.to_bytes(16, "little", signed=True)
    return hashlib.blake2b(f"{file_index}:{slot}".encode(), digest_size=16, key=key).digest()


def slot_bytes(footer: ParquetFooter, columns: list[str]) -> int:
    """File bytes per slot: about `unit_bytes` of the needed columns, as the first file has them."""
    metadata = footer.metadata
    needed = sum(
        end - start for index in range(metadata.num_row_groups) for start, end in chunk_ranges(footer, index, columns)
    )
    ratio = footer.file.size / needed if needed else 1.0
    knobs = tuning.current()
    return max(knobs.min_slot_bytes, int(knobs.unit_bytes * ratio))


def slot_order(sizes: list[int], slot: int, seed: int) -> list[tuple[int, int]]:
    """Every (file index, slot index) of files of these sizes, in the seed's random order."""
    pairs = [(f, s) for f, size in enumerate(sizes) for s in range(max(1, math.ceil(size / slot)))]
    pairs.sort(key=lambda p: (_rank(seed, *p), p))
    return pairs


def _row_group_start(footer: ParquetFooter, index: int) -> int:
    row_group = footer.metadata.row_group(index)
    starts = []
    for j in range(row_group.num_columns):
        chunk = row_group.column(j)
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and chunk.dictionary_page_offset is not None:
            start = min(start, chunk.dictionary_page_offset)
        starts.append(start)
    return min(starts) if starts else 0


@dataclass
class Draw:
    """The units of a source in the seed's order. Iterate `units(start)` from a slot index;
    `drawn` holds the slot index of each unit yielded and not yet claimed with `claim()`,
    so that the consumer (which gets units back in the order they were yielded) knows the
    slot after each one."""

    source: Source
    columns: list[str]
    seed: int
    slot: int
    order: list[tuple[int, int]] = field(init=False)
    drawn: deque[int] = field(default_factory=deque, init=False)
    _by_slot: dict[int, list[list[int]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.order = slot_order([f.size for f in self.source.files], self.slot, self.seed)

    @classmethod
    def open(cls, source: Source, columns: list[str], seed: int) -> Draw:
        first = read_footer(source, source.files[0])
        return cls(source, columns, seed, slot_bytes(first, columns))

    def _groups(self, file_index: int) -> list[list[int]]:
        """Row groups of a file by slot (cached per file: a file's slots are drawn at different times)."""
        if file_index not in self._by_slot:
            footer = read_footer(self.source, self.source.files[file_index])
            slots = max(1, math.ceil(footer.file.size / self.slot))
            groups: list[list[int]] = [[] for _ in range(slots)]
            for index in range(footer.metadata.num_row_groups):
                groups[min(slots - 1, _row_group_start(footer, index) // self.slot)].append(index)
            self._by_slot[file_index] = groups
        return self._by_slot[file_index]

    def unit(self, position: int) -> Unit | None:
        """The unit of the slot at `position` in the draw order; None for an empty slot."""
        file_index, slot = self.order[position]
        groups = self._groups(file_index)[slot]
        if not groups:
            return None
        footer = read_footer(self.source, self.source.files[file_index])
        ranges = [r for index in groups for r in chunk_ranges(footer, index, self.columns)]
        rows = sum(map(footer.group_rows, groups))
        return Unit(file_index, footer.file, tuple(groups), rows, tuple(coalesce(ranges)))

    def units(self, start: int = 0) -> Iterator[Unit]:
        """The units from slot position `start` on, in draw order."""
        self.drawn.clear()
        for position in range(start, len(self.order)):
            unit = self.unit(position)
            if unit is not None:
                self.drawn.append(position)
                yield unit

    def claim(self) -> int:
        """The slot position just after the oldest unit yielded and not yet claimed."""
        return self.drawn.popleft() + 1
