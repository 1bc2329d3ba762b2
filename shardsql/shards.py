"""The shard writer: a stream of `text` batches in, autoresearch shards out.

autoresearch reads `shard_NNNNN.parquet` files with one `text` column, 86,016 rows each,
in 1,024-row row groups, and takes `shard_06542.parquet` as the validation shard. Like
the seed script, we cut the stream into `num_shards + 1` consecutive shards and rename
the last one to the validation name; if the source runs out first, the partial remainder
becomes the last (validation) shard.

Polars streams each shard to disk (memory stays at a few row groups, not a whole shard).
Polars does not promise exact row-group sizes, so every file is checked from its footer
after writing. A shard is written under a temporary name and renamed when complete, so a
file with a shard's name is always whole.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConversionError

if TYPE_CHECKING:
    import pyarrow as pa

ROWS_PER_SHARD = 86_016
# zstd at level 1: about as fast to write as snappy (the seed's) and a third smaller; writing
# is most of a conversion's CPU, and higher levels cost more than they save here.
COMPRESSION, COMPRESSION_LEVEL = "zstd", 1
ROW_GROUP_SIZE = 1_024
VAL_SHARD_INDEX = 6542  # prepare.py's VAL_SHARD
PARTIAL_SUFFIX = ".partial"


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.parquet"


VAL_SHARD_NAME = shard_name(VAL_SHARD_INDEX)
# Training shards are shard_00000 .. shard_06541: one more would take the validation shard's name.
MAX_TRAIN_SHARDS = VAL_SHARD_INDEX


@dataclass(frozen=True)
class ShardInfo:
    name: str
    rows: int
    bytes: int
    sha256: str
    row_groups: list[int]

    def to_dict(self) -> dict:
        return {"name": self.name, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


class RowStream:
    """Splits a stream of Arrow tables into consecutive pieces of exact row counts."""

    def __init__(self, batches: Iterator[pa.Table]):
        self._batches = batches
        self._head: pa.Table | None = None
        self.exhausted = False

    @property
    def pending(self) -> int:
        """Rows pulled from the batches but not yet taken."""
        return self._head.num_rows if self._head is not None else 0

    def take(self, rows: int) -> Iterator[pa.Table]:
        """Yield tables holding the next `rows` rows (fewer only if the stream ends)."""
        while rows > 0:
            if self._head is None:
                self._head = next(self._batches, None)
                if self._head is None:
                    self.exhausted = True
                    return
            piece, rest = self._head.slice(0, rows), self._head.slice(rows)
            self._head = rest if rest.num_rows else None
            rows -= piece.num_rows
            if piece.num_rows:
                yield piece


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_one(pieces: Iterator[pa.Table], path: Path, row_group_size: int) -> int:
    """Stream `pieces` into one parquet file with Polars; return the rows written."""
    import polars as pl
    from polars.io.plugins import register_io_source

    written = 0
    failure: list[BaseException] = []

    def frames(with_columns, predicate, n_rows, batch_size) -> Iterator[pl.DataFrame]:
        nonlocal written
        try:
            for piece in pieces:
                written += piece.num_rows
                yield pl.from_arrow(piece.select(["text"]))
        except Exception as exc:
            # Ends the stream instead of raising through Polars: an exception that crosses
            # into Polars' threads is kept alive there (with our DuckDB objects in its frames)
            # until exit. We raise it ourselves once the sink returns.
            failure.append(exc)

    frame = register_io_source(frames, schema={"text": pl.String})
    try:
        frame.sink_parquet(
            path, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL, row_group_size=row_group_size
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if failure:
        path.unlink(missing_ok=True)
        raise failure.pop()  # popped: the list in this frame must not keep the exception alive
    return written


def check_shard(path: Path, expected_rows: int, row_group_size: int) -> list[int]:
    """The row-group sizes of a shard, after checking the format autoresearch needs."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    names = metadata.schema.to_arrow_schema().names
    if names != ["text"]:
        raise ConversionError(f"{path.name}: columns are {names}, expected ['text']")
    if sum(groups) != expected_rows:
        raise ConversionError(f"{path.name}: {sum(groups)} rows, expected {expected_rows}")
    if any(size != row_group_size for size in groups[:-1]) or (groups and groups[-1] > row_group_size):
        raise ConversionError(f"{path.name}: row groups {groups}, expected {row_group_size} each but the last")
    return groups


def write_shards(
    batches: Iterator[pa.Table],
    out_dir: Path,
    num_shards: int,
    rows_per_shard: int = ROWS_PER_SHARD,
    row_group_size: int = ROW_GROUP_SIZE,
    on_shard: Callable[[ShardInfo, int], None] | None = None,
    done: list[ShardInfo] | None = None,
) -> list[ShardInfo]:
    """Write the training shards and the validation shard from `batches`.

    `done` are shards already written by an interrupted run; writing continues after them.
    `on_shard(info, pending)` is called after each shard, with the rows pulled from
    `batches` but not yet written. Stops pulling from `batches` as soon as the last shard
    is full. Returns the shards in order, the validation shard last.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stream = RowStream(batches)
    shards: list[ShardInfo] = list(done or [])
    while len(shards) < num_shards + 1:
        final = out_dir / shard_name(len(shards))
        partial = final.with_name(final.name + PARTIAL_SUFFIX)
        rows = _write_one(stream.take(rows_per_shard), partial, row_group_size)
        if rows == 0:
            partial.unlink(missing_ok=True)
            break
        groups = check_shard(partial, rows, row_group_size)
        os.replace(partial, final)
        info = ShardInfo(final.name, rows, final.stat().st_size, sha256_file(final), groups)
        shards.append(info)
        if on_shard:
            on_shard(info, stream.pending)
        if stream.exhausted:
            break
    return pin_validation(out_dir, shards)


def pin_validation(out_dir: Path, shards: list[ShardInfo]) -> list[ShardInfo]:
    """Rename the last shard to the validation shard's name (as the seed does); idempotent."""
    if not shards or shards[-1].name == VAL_SHARD_NAME:
        return shards
    last = shards[-1]
    if (out_dir / last.name).exists():
        os.replace(out_dir / last.name, out_dir / VAL_SHARD_NAME)
    return [*shards[:-1], ShardInfo(VAL_SHARD_NAME, last.rows, last.bytes, last.sha256, last.row_groups)]
