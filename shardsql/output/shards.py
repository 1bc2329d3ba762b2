"""The shard writer: a stream of `text` batches in, autoresearch shards out.

autoresearch reads `shard_NNNNN.parquet` files with one `text` column, 86,016 rows each,
in 1,024-row row groups, and takes `shard_06542.parquet` as the validation shard. Like
the seed script, we cut the stream into `num_shards + 1` consecutive shards and rename
the last one to the validation name; if the source runs out first, the partial remainder
becomes the last (validation) shard.

Polars streams each shard to disk (memory stays at a few row groups, not a whole shard):
`write_pieces` is the one writer, which the local engine runs here and the Ray engine in
its tasks; a `ShardWriter` cuts the shards and hands each one's pieces to the executor's
`encode`. Polars does not promise exact row-group sizes, so every file is checked from its
footer after writing. A shard is written under a temporary name and renamed when complete,
so a file with a shard's name is always whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import io
import queue
import shutil
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..autoresearch import ROW_GROUP_SIZE, ROWS_PER_SHARD, TEXT_COLUMN, VAL_SHARD_NAME, shard_name
from ..errors import ConversionError
from ..wording import count
from . import durable
from .views import utf8_bytes

# snappy, as the seed wrote and the hand-written Polars pipeline does: writing is most of a
# conversion's CPU, and zstd at level 1 cost about a third more CPU to write (and more to
# read, in autoresearch's loader) for shards about a quarter smaller. Disk is cheaper than time.
COMPRESSION: Final = "snappy"
COMPRESSION_LEVEL: Final = None
PARTIAL_SUFFIX = ".partial"
WRITERS = 2  # shards compressed at once: one is fed while the one before it finishes
QUEUED_TABLES = 1  # tables waiting for a shard writer, at most


class Rows(Protocol):
    """Kept rows as an executor hands them on and the shard writer cuts them: a pyarrow Table, or
    the Ray engine's rows held in its object store (run/ray/driver.RemoteRows), which only its
    own `encode` reads."""

    @property
    def num_rows(self) -> int: ...

    def slice(self, offset: int = 0, length: int | None = None) -> Rows: ...


class Written(NamedTuple):
    """What an encoder wrote into one shard: its rows, and their texts' UTF-8 bytes, counted as
    they went in (the validation shard's token estimate: no shard is read back for it)."""

    rows: int
    text_bytes: int


# Writes one shard from its pieces (slices of kept rows) to a path; says what it wrote
# (an executor's `encode`: write_pieces here, a Ray task on the Ray engine).
Encoder = Callable[[Iterator[Any], Path, int], Written]


@dataclass(frozen=True)
class ShardInfo:
    name: str
    rows: int
    bytes: int
    sha256: str
    row_groups: list[int]
    texts_sha256: str = ""  # of the rows' texts (TextDigest); kept for whole-source definitions
    text_bytes: int | None = None  # the texts' UTF-8 bytes, as written (None: a kept file, an older checkpoint)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


class TextDigest:
    """A sha256 of a sequence of texts that does not depend on how they are batched: the
    texts' lengths and their bytes are hashed as two streams, then together."""

    def __init__(self) -> None:
        self._lengths, self._values = hashlib.sha256(), hashlib.sha256()

    def update(self, table: pa.Table) -> None:
        for chunk in table.column(0).cast(pa.large_string()).chunks:
            lengths = pc.binary_length(chunk).fill_null(-1)  # a fresh int64 array: its buffer starts at row 0
            self._lengths.update(memoryview(lengths.buffers()[1])[: len(lengths) * 8])
            offsets = memoryview(chunk.buffers()[1]).cast("q")
            data = chunk.buffers()[2]
            if data is not None and len(chunk):
                self._values.update(memoryview(data)[offsets[chunk.offset] : offsets[chunk.offset + len(chunk)]])

    def hexdigest(self) -> str:
        return hashlib.sha256(self._lengths.digest() + self._values.digest()).hexdigest()


class RowStream:
    """Splits a stream of rows (Arrow tables, or any `Rows`) into consecutive pieces of exact row counts."""

    def __init__(self, batches: Iterator[Rows]):
        self._batches = batches
        self._head: Rows | None = None
        self.exhausted = False

    @property
    def pending(self) -> int:
        """Rows pulled from the batches but not yet taken."""
        return self._head.num_rows if self._head is not None else 0

    def take(self, rows: int) -> Iterator[Rows]:
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


def char_counts(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each text's length in characters (Unicode code points, as Python's `len` and DuckDB's
    `length` count them) as int64, NULL for NULL. Counted by Polars: pyarrow's utf8_length
    took 0.37 CPU-s for 555 MB of the benchmark's prose, Polars 0.06 (the shuffle counts
    every kept text, a --no-shuffle mixture every text it draws)."""
    import polars as pl  # as write_pieces: loaded with the first shard's writer anyway

    return pl.Series(texts).str.len_chars().cast(pl.Int64).to_arrow()


def sha256_file(path: Path) -> str:
    """A file's sha256, read through one reused buffer: a fresh 1 MiB block a read cost a page
    fault a page and an munmap, 1.75 s of the 6.4 s of py-spy samples in hashing 41 shards."""
    with open(path, "rb") as handle:
        return _sha256(handle)


def _sha256(handle: io.BufferedReader) -> str:
    return hashlib.file_digest(handle, "sha256").hexdigest()


def write_pieces(pieces: Iterator[pa.Table], path: Path, row_group_size: int) -> Written:
    """Stream `pieces` into one parquet file with Polars; what it wrote."""
    # Imported here, by the first shard's writer thread: Polars takes about half a second to
    # import, which then overlaps the first units' decoding instead of delaying it.
    import polars as pl
    from polars.io.plugins import register_io_source

    written = written_bytes = 0
    failure: list[BaseException] = []

    def frames(with_columns: object, predicate: object, n_rows: object, batch_size: object) -> Iterator[pl.DataFrame]:
        nonlocal written, written_bytes
        try:
            for piece in pieces:
                written += piece.num_rows
                yield cast(pl.DataFrame, pl.from_arrow(piece.select([TEXT_COLUMN])))  # a table's: a DataFrame
                # Counted once Polars took it: a piece that is not text is Polars' to refuse.
                written_bytes += utf8_bytes(piece.column(TEXT_COLUMN))
        except Exception as exc:
            # Ends the stream instead of raising through Polars: an exception that crosses
            # into Polars' threads is kept alive there (with our DuckDB objects in its frames)
            # until exit. We raise it ourselves once the sink returns.
            failure.append(exc)

    frame = register_io_source(frames, schema={TEXT_COLUMN: pl.String})
    try:
        frame.sink_parquet(
            path,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            statistics=False,  # min/max over long texts cost ~0.26 s a shard, and nothing reads them
            row_group_size=row_group_size,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if failure:
        path.unlink(missing_ok=True)
        raise failure.pop()  # popped: the list in this frame must not keep the exception alive
    return Written(written, written_bytes)


def check_shard(path: Path, expected_rows: int, row_group_size: int) -> list[int]:
    """The row-group sizes of a shard, after checking the format autoresearch needs."""
    metadata = pq.ParquetFile(path).metadata
    groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    names = metadata.schema.to_arrow_schema().names
    if names != [TEXT_COLUMN]:
        raise ConversionError(f"{path.name}: columns are {names}, expected ['{TEXT_COLUMN}']")
    if sum(groups) != expected_rows:
        raise ConversionError(f"{path.name}: {count(sum(groups))}, expected {expected_rows:,}")
    if any(size != row_group_size for size in groups[:-1]) or (groups and groups[-1] > row_group_size):
        raise ConversionError(f"{path.name}: row groups {groups}, expected {row_group_size} each but the last")
    return groups


class _Aborted(Exception):
    """The feeding side failed: the shard being written is abandoned."""


class _Signal(enum.Enum):
    """What follows a shard's last piece in its queue: the end, or an abort (the feeder failed)."""

    END = "end"
    ABORT = "abort"


Pieces = queue.Queue["Rows | _Signal"]  # a shard's pieces on their way to its writer, then a _Signal


def _from_queue(pieces: Pieces, digest: TextDigest | None) -> Iterator[Rows]:
    while True:
        item = pieces.get()
        if item is _Signal.END:
            return
        if item is _Signal.ABORT:
            raise _Aborted
        if digest is not None:
            digest.update(item)
        yield item


def _write_shard(pieces: Pieces, out_dir: Path, index: int, row_group_size: int, digest: bool,
                 encode: Encoder) -> ShardInfo | None:  # fmt: skip
    """Write shard `index` from the tables in `pieces` (a thread of its own); None if it got no rows."""
    final = out_dir / shard_name(index)
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    texts = TextDigest() if digest else None
    rows, text_bytes = encode(_from_queue(pieces, texts), partial, row_group_size)
    if rows == 0:
        partial.unlink(missing_ok=True)
        return None
    groups = check_shard(partial, rows, row_group_size)
    # On the disk before the checkpoint that lists it; hashed meanwhile.
    sha256 = _hashed_during(partial, lambda: durable.replace(partial, final))
    texts_sha256 = texts.hexdigest() if texts else ""
    return ShardInfo(final.name, rows, final.stat().st_size, sha256, groups, texts_sha256, text_bytes)


def _hashed_during(path: Path, action: Callable[[], None]) -> str:
    """The sha256 of the file at `path`, read on a thread of its own while `action` runs (it may
    rename the file: it is opened first). A shard's sync waits on the disk and its hash on a
    core: one after the other, they were the conversion's tail, with the other core idle (the
    last shard's: 126 and 243 ms, the ~100-row layout's main job)."""
    with open(path, "rb") as handle, ThreadPoolExecutor(1, thread_name_prefix="shardsql-hash") as pool:
        digest = pool.submit(_sha256, handle)
        action()
        return digest.result()


@dataclass
class _InFlight:
    """A shard being written: its writer's future, its pieces' queue, where the next shard starts
    (`token`, once marked) and whether every piece is queued (`fed`)."""

    future: Future[ShardInfo | None]
    pieces: Pieces
    token: Any = None
    fed: bool = False


class _Writers:
    """Shards written on threads, a few at a time, and finished in order.

    Compressing a shard is most of a conversion's CPU and runs on one thread per file, so
    shard k+1 is fed while shard k is still being compressed. Each shard's queue is
    bounded: a slow writer holds back the feeder, never memory.
    """

    def __init__(self, out_dir: Path, row_group_size: int, writers: int, digest: bool, encode: Encoder):
        self.out_dir, self.row_group_size, self.digest, self.encode = out_dir, row_group_size, digest, encode
        self.pool = ThreadPoolExecutor(max(1, writers), thread_name_prefix="shardsql-write")
        self.limit = max(1, writers)
        self.flight: deque[_InFlight] = deque()  # per shard, in order
        self.failed = False  # a shard's writer failed: the shards after it are not recorded

    def write(self, index: int, pieces: Iterator[Rows]) -> None:
        """Start shard `index` and feed it `pieces`; returns once every piece is queued."""
        tables: Pieces = queue.Queue(maxsize=QUEUED_TABLES)
        future = self.pool.submit(
            _write_shard, tables, self.out_dir, index, self.row_group_size, self.digest, self.encode
        )
        shard = _InFlight(future, tables)
        self.flight.append(shard)
        for piece in pieces:
            self._put(future, tables, piece)
        self._put(future, tables, _Signal.END)
        shard.fed = True

    @staticmethod
    def _put(future: Future[ShardInfo | None], tables: Pieces, item: Rows | _Signal) -> None:
        while True:
            try:
                tables.put(item, timeout=0.05)
                return
            except queue.Full:
                if future.done():
                    future.result()  # the writer failed: raise its error here
                    return  # it stopped without failing (aborted): nothing more to hand it

    def mark(self, token: Any) -> None:
        """Attach `token` (where the next shard starts) to the shard just fed."""
        self.flight[-1].token = token

    def finished(self, wait_for_room: bool) -> Iterator[tuple[ShardInfo | None, Any]]:
        """(shard, token) of the shards done, in order: all of them, or until there is room for one more.

        A shard whose writer failed raises its error here; no shard after it is handed out
        again (a checkpoint must never skip a shard)."""
        while (
            not self.failed
            and self.flight
            and (self.flight[0].future.done() or not wait_for_room or len(self.flight) >= self.limit)
        ):
            shard = self.flight.popleft()
            try:
                info = shard.future.result()
            except BaseException:
                self.failed = True
                raise
            yield info, shard.token

    def abort(self) -> None:
        """Abandon the shard being fed (its partial file is removed); let the fed ones finish."""
        for shard in self.flight:
            if not shard.fed:
                with contextlib.suppress(Exception):
                    self._put(shard.future, shard.pieces, _Signal.ABORT)
        self.flight = deque(shard for shard in self.flight if shard.fed)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


@dataclass(frozen=True)
class ShardSizes:
    """How rows are cut into shards: `num_shards` training shards of `rows_per_shard` rows, then
    the validation shard of `val_rows` (None: `rows_per_shard`), in row groups of `row_group_size`."""

    num_shards: int
    rows_per_shard: int = ROWS_PER_SHARD
    row_group_size: int = ROW_GROUP_SIZE
    val_rows: int | None = None

    def rows(self, index: int) -> int:
        """Rows of shard `index` (the validation shard is index `num_shards`)."""
        return self.val_rows if index == self.num_shards and self.val_rows is not None else self.rows_per_shard


class ShardWriter:
    """Cuts a stream of rows into shards in `folder`, a few being compressed at once, and says
    when each is complete; a context manager, like datatrove's writers.

    `done` are the shards an interrupted run wrote: writing continues after them. Each shard is
    written by `encode(pieces, path, row_group_size)` (an executor's: `write_pieces` by default,
    a Ray task on the Ray engine), `writers` at once. With `digest`, each shard records a
    TextDigest of its texts. `on_shard(info, position)` is called in shard order once a shard is
    complete on disk, with where the rows after it start (`write`'s `position`). Leaving the
    writer on an error finishes the shards fed in full (each still reported) and abandons the one
    being fed; a rerun resumes after the last one reported.
    """

    def __init__(self, folder: Path, sizes: ShardSizes, *, done: Sequence[ShardInfo] = (),
                 on_shard: Callable[[ShardInfo, Any], None] | None = None, encode: Encoder = write_pieces,
                 writers: int = WRITERS, digest: bool = False):  # fmt: skip
        self.folder, self.sizes, self.on_shard = folder, sizes, on_shard
        self.shards: list[ShardInfo] = list(done)
        self._pool = _Writers(folder, sizes.row_group_size, writers, digest, encode)
        self._ended = False

    def __enter__(self) -> ShardWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if exc_type is not None:
                # Shards fed in full are finished and recorded (a rerun resumes after them); the
                # one being fed is abandoned. The error that stopped us is the one raised.
                self._pool.abort()
                with contextlib.suppress(Exception):
                    self._collect(wait_for_room=False)
        finally:
            self._pool.close()

    def write(self, rows: Iterator[Rows], position: Callable[[int], Any] = lambda pending: pending, *,
              validation: bool = True) -> list[ShardInfo]:  # fmt: skip
        """Write the training shards and then the validation shard from `rows`, stopping as soon
        as the last is full; the shards in order, the validation shard last and pinned to its name.
        Once a shard's rows are all taken, `position(pending)` is asked where the next shard starts,
        `pending` being the rows pulled from `rows` but not yet written. Without `validation`,
        only the training shards (the caller adds the last: `keep`)."""
        stream = RowStream(rows)
        index = len(self.shards)
        while index < self.sizes.num_shards + validation and not stream.exhausted:
            self._pool.write(index, stream.take(self.sizes.rows(index)))
            self._pool.mark(position(stream.pending))
            index += 1
            self._collect(wait_for_room=True)
        self._collect(wait_for_room=False)
        if validation:
            self.shards = pin_validation(self.folder, self.shards)
        return self.shards

    def keep(self, path: Path, position: Any) -> None:
        """The file at `path`, byte for byte, as the next shard (--val-from live's validation shard)."""
        self._add(keep_shard(path, self.folder, shard_name(len(self.shards))), position)

    def _collect(self, wait_for_room: bool) -> None:
        for info, token in self._pool.finished(wait_for_room):
            if info is None or self._ended:
                self._ended = True  # an empty shard: the stream ended exactly at a shard's end
                continue
            self._add(info, token)

    def _add(self, info: ShardInfo, position: Any) -> None:
        self.shards.append(info)
        if self.on_shard is not None:
            self.on_shard(info, position)


def keep_shard(path: Path, out_dir: Path, name: str) -> ShardInfo:
    """A copy of the file at `path`, byte for byte, as the shard `name` in `out_dir`: the live
    validation shard that --val-from live keeps."""
    target = out_dir / name
    tmp = target.with_suffix(".kept")
    shutil.copyfile(path, tmp)
    durable.replace(tmp, target)
    metadata = pq.ParquetFile(target).metadata
    groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    return ShardInfo(name, metadata.num_rows, target.stat().st_size, sha256_file(target), groups)


def pin_validation(out_dir: Path, shards: list[ShardInfo]) -> list[ShardInfo]:
    """Rename the last shard to the validation shard's name (as the seed does); idempotent."""
    if not shards or shards[-1].name == VAL_SHARD_NAME:
        return shards
    last = shards[-1]
    if (out_dir / last.name).exists():
        durable.replace(out_dir / last.name, out_dir / VAL_SHARD_NAME)
    return [*shards[:-1], dataclasses.replace(last, name=VAL_SHARD_NAME)]
