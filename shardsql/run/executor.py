"""What every executor offers, and what it records of a run.

An executor runs a row-by-row definition over the source's units and hands each unit's
kept rows on in unit order (`row_by_row`), or each unit's rows staged for a shuffle
(`stage_units`); the shard writer cuts the shards from the kept rows and asks the executor to
compress each shard (`encode`). The kept rows are the executor's own kind (`RowsT`): Arrow
tables here, rows held in Ray's object store there; only its `encode` reads them, and
`to_table` brings them here where rows must be read on this machine (a mixture's interleave).
A whole-source query is not an executor's work: it is one DuckDB query, on this machine
whatever the engine (run/local.whole_source). The local engine (local.py) runs units on this
machine's threads; the Ray engine (ray/driver.py) in Ray tasks. convert.py chooses by
`--engine` and sees only this interface, so the shards are the same whichever runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import pyarrow as pa

from ..definition.model import Definition
from ..output.shards import Rows, Written
from ..output.staging import StagedUnit
from ..source.scan import Scan
from ..source.units import Unit


def available_cores() -> int:
    """The CPUs this process may run on: its affinity set where the OS has one (taskset, a
    container's cpuset), so `--workers` defaults to the cores we can use, not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass
class RunRecord:
    """Which engine ran a conversion, on how many workers and nodes, in how many tasks (units),
    and how many source rows it read: written by the executor, read by convert and the manifest."""

    engine: str = "local"
    workers: int = 1
    tasks: int = 0  # units run by this run (a resumed run counts its own)
    nodes: set[str] = field(default_factory=set)  # where tasks ran
    rows_read: int = 0  # source rows of the units handed on (whole source: streamed into the query)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.engine, "workers": self.workers, "tasks": self.tasks, "nodes": max(1, len(self.nodes))}


RowsT = TypeVar("RowsT", bound=Rows)  # an executor's kept rows


class Executor(Protocol[RowsT]):
    """Runs units and compresses shards; entered for the length of a conversion's writing."""

    record: RunRecord

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    @property
    def shards_in_flight(self) -> int:
        """Shards the writer may have being compressed at once."""
        ...

    def row_by_row(
        self, scan: Scan, definition: Definition, rows_wanted: Callable[[], int], *, drawn: Iterator[Unit] | None = None
    ) -> Generator[tuple[Unit, RowsT], None, None]:
        """(unit, the definition's kept rows of it) in unit order: the units of `drawn` when
        given, else the source's from `scan.start`.

        `rows_wanted()` is how many more kept rows the consumer can use; units start only
        while the source rows in flight are fewer, and the consumer may stop at any point."""
        ...

    def stage_units(
        self,
        scan: Scan,
        definition: Definition,
        rows_wanted: Callable[[], int],
        *,
        drawn: Iterator[Unit],
        seed: int,
        pile_bits: int,
        compress: bool = False,
    ) -> Generator[tuple[Unit, StagedUnit], None, None]:
        """As `row_by_row` over a shuffled conversion's draw (source/draw.py), each unit's kept
        rows staged by the unit's own work, wherever it ran (run/unit.py): its keys and
        compressed texts, ready for the piles (output/staging/: keyed by `seed`, the piles
        chosen by the key's top `pile_bits` bits; every text compressed with `compress`, else
        where it pays)."""
        ...

    def encode(self, pieces: Iterator[RowsT], path: Path, row_group_size: int) -> Written:
        """Write one shard made of `pieces` (slices of this executor's kept rows) to `path`; what it wrote."""
        ...

    def to_table(self, rows: RowsT) -> pa.Table:
        """Kept rows as an Arrow table on this machine."""
        ...
