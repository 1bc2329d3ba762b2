"""Conversion: a definition and options in, autoresearch shards and a manifest out.

This module wires the stages together and holds no stage's logic itself:

    catalog.Definition -> sources (lazy row groups) -> engine (DuckDB view)
        -> shards (Polars writer, in a staging folder) -> manifest -> backups (swap in)

`plan` is the dry run: it reads only parquet footers. A conversion holds the cache
folder's lock, and checkpoints after every shard so that a rerun resumes (checkpoint.py).
"""

from __future__ import annotations

import dataclasses
import errno
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import checkpoint, manifest
from .backups import DEFAULT_CACHE_DIR, CacheDir
from .checkpoint import Position
from .errors import ConversionError, OptionsError
from .progress import Progress
from .shards import ROW_GROUP_SIZE, ROWS_PER_SHARD, ShardInfo, pin_validation, write_shards

if TYPE_CHECKING:
    import pyarrow as pa

    from .catalog import Definition
    from .sources import ParquetFooter, Source

NEXT_STEP = "uv run prepare.py --num-shards {n}"


@dataclass
class ConvertOptions:
    num_shards: int = 10
    num_source: int | None = None  # at most this many source files; None: as many as needed
    rows_per_shard: int = ROWS_PER_SHARD
    row_group_size: int = ROW_GROUP_SIZE
    revision: str | None = None  # overrides the definition's revision
    source: str | None = None  # overrides the definition's source URL
    cache_dir: Path = DEFAULT_CACHE_DIR
    skip_backup: bool = False

    def validate(self) -> None:
        for name in ("num_shards", "rows_per_shard", "row_group_size"):
            if getattr(self, name) < 1:
                raise OptionsError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.num_source is not None and self.num_source < 1:
            raise OptionsError(f"--num-source must be at least 1, got {self.num_source}")
        from .shards import MAX_TRAIN_SHARDS, VAL_SHARD_NAME

        if self.num_shards > MAX_TRAIN_SHARDS:
            # Training shards are numbered from 0; shard_06542 is the validation shard's fixed
            # name, so training shard 6542 would overwrite it (and the manifest list it twice).
            raise OptionsError(
                f"--num-shards must be at most {MAX_TRAIN_SHARDS:,}, got {self.num_shards:,}: training shards are "
                f"shard_00000 to shard_{MAX_TRAIN_SHARDS - 1:05d} and must stop before the validation shard's "
                f"number ({VAL_SHARD_NAME}, which autoresearch's prepare.py fixes)"
            )

    def recorded(self) -> dict:
        """The options as the manifest records them."""
        values = dataclasses.asdict(self)
        values["cache_dir"] = str(self.cache_dir)
        return values


@dataclass
class ConvertResult:
    definition: Definition
    source: Source
    data_dir: Path
    shards: list[ShardInfo]
    rows_read: int
    rows_kept: int
    ran_out: bool
    backup: Path | None
    manifest_path: Path

    @property
    def train_shards(self) -> int:
        return len(self.shards) - 1

    @property
    def next_step(self) -> str:
        return NEXT_STEP.format(n=self.train_shards)


@dataclass
class Plan:
    """What a conversion would read and write, from parquet footers alone."""

    definition: Definition
    source: Source
    footers: list[ParquetFooter]
    columns: list[str]
    rows_wanted: int

    @property
    def source_rows(self) -> int:
        return sum(f.num_rows for f in self.footers)

    def column_bytes(self) -> int:
        """Compressed bytes of the needed columns in all listed files."""
        return sum(
            end - start
            for footer in self.footers
            for index in range(footer.metadata.num_row_groups)
            for start, end in footer.chunk_ranges(index, self.columns)
        )


def _open(definition: Definition, options: ConvertOptions) -> tuple[Source, ParquetFooter, list[str], object]:
    """Open the source, read the first footer, and check the SQL against its schema."""
    from .engine import Engine
    from .sources import open_source, read_footer

    options.validate()
    revision = options.revision or definition.revision
    source = open_source(options.source or definition.source, revision, options.num_source)
    first = read_footer(source, source.files[0])
    engine = Engine(definition)
    columns = engine.check(first.metadata.schema.to_arrow_schema())
    return source, first, columns, engine


def plan(definition: Definition, options: ConvertOptions) -> Plan:
    """The dry run: list files and read their footers; no data pages are fetched."""
    from .schemas import unify
    from .sources import read_footers

    source, _, columns, engine = _open(definition, options)  # footers are cached: the first is not read again
    engine.close()
    rows_wanted = (options.num_shards + 1) * options.rows_per_shard
    footers = read_footers(source, source.files)
    # Every footer is at hand: files whose columns cannot be read as one schema fail here (issue 10).
    unify([f.metadata.schema.to_arrow_schema() for f in footers], [f.file.url for f in footers], columns)
    return Plan(definition, source, footers, columns, rows_wanted)


class _Batches:
    """The definition's output, batch by batch in source order, remembering which row group
    each batch came from.

    `position_after(pending)` turns "the last batch still has `pending` unwritten rows"
    into the checkpoint position where the next shard starts.
    """

    def __init__(self, source: Source, columns: list[str], engine, start: Position, rows_wanted: int, progress):
        self.source, self.columns, self.engine, self.start = source, columns, engine, start
        self.rows_wanted, self.progress = rows_wanted, progress
        self.read, self.kept = start.rows_read, start.rows_kept
        self._last = Position(start.file, start.row_group, 0, start.rows_read, start.rows_kept)
        self._last_kept = 0

    def __iter__(self) -> Iterator[pa.Table]:
        from .schemas import conform, source_schema
        from .sources import iter_pieces
        from .validate import check_text

        schema = source_schema(self.source, self.columns)  # issue 10: one schema for files that differ
        start = (self.start.file, self.start.row_group)
        current, skip = None, 0
        for group, piece in iter_pieces(self.source, self.columns, lambda: self.rows_wanted - self.kept, start):
            if group is not current:
                current = group
                self._last = Position(group.file_index, group.index, 0, self.read, self.kept)
                self._last_kept = 0
                self.read += group.num_rows
                # Rows the shards before a restart already hold, at the start of its first row group.
                skip = self.start.skip if (group.file_index, group.index) == start else 0
            out = self.engine.run(conform(piece, schema, group.file.url))
            check_text(out, f"{group.file.url}, row group {group.index}")  # issue 10: before anything is written
            self._last_kept += out.num_rows
            self.kept += out.num_rows
            self.progress.update(self.read, self.kept, self.source.counter.bytes)
            if skip:
                cut = min(skip, out.num_rows)
                out, skip = out.slice(cut), skip - cut
            if out.num_rows:
                yield out

    def position_after(self, pending: int) -> Position:
        return Position(
            self._last.file, self._last.row_group, self._last_kept - pending, self._last.rows_read, self._last.rows_kept
        )


def _fingerprint(definition: Definition, source: Source, options: ConvertOptions) -> dict:
    """What must be the same for a rerun to continue an interrupted one."""
    return {
        "definition": definition.sha256,
        "source": source.url,
        "commit": source.commit,
        "files": [[f.url, f.size] for f in source.files],
        "num_shards": options.num_shards,
        "rows_per_shard": options.rows_per_shard,
        "row_group_size": options.row_group_size,
    }


def _disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc)


def convert(definition: Definition, options: ConvertOptions, progress: Progress | None = None) -> ConvertResult:
    """Convert `definition` into shards in `options.cache_dir/data`, the old data backed up.

    Resumes an interrupted run of the same conversion from its last complete shard.
    """
    progress = progress or Progress()
    cache = CacheDir(Path(options.cache_dir).expanduser())
    with cache.lock():
        source, _, columns, engine = _open(definition, options)
        try:
            return _convert(definition, options, progress, cache, source, columns, engine)
        finally:
            engine.close()


def _convert(definition, options, progress, cache, source, columns, engine) -> ConvertResult:
    rows_wanted = (options.num_shards + 1) * options.rows_per_shard
    fingerprint = _fingerprint(definition, source, options)
    state, why_not = checkpoint.load(cache.staging, fingerprint)
    if why_not:
        progress.message(f"Starting afresh: {why_not}.")
    if state is None:
        state = checkpoint.Checkpoint(fingerprint)
        cache.fresh_staging()
        state.save(cache.staging)
    elif state.shards:
        progress.message(f"Resuming an interrupted run after {len(state.shards)} complete shards.")
    staging = cache.staging
    batches = _Batches(source, columns, engine, state.next, rows_wanted, progress)

    def on_shard(info: ShardInfo, pending: int) -> None:
        state.shards.append(info)
        state.next = batches.position_after(pending)
        state.save(staging)
        progress.shard(info)

    progress.start(rows_wanted, options.num_shards + 1, kept=batches.kept, shards=len(state.shards))
    try:
        if not state.finished:
            done = list(state.shards)
            write_shards(
                iter(batches), staging, options.num_shards, options.rows_per_shard, options.row_group_size,
                on_shard, done,
            )  # fmt: skip
            state.finished = True
            state.save(staging)
        shards = pin_validation(staging, state.shards)
    except BaseException as exc:
        progress.stop()
        if _disk_full(exc):
            raise ConversionError(
                f"the disk is full while writing shards in {staging}. Free some space and run the same "
                "command again: it resumes from the last complete shard. Your data folder was not changed."
            ) from exc
        raise
    progress.stop()
    if len(shards) < 2:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConversionError(
            f"the source ran out: {batches.read:,} rows read, {batches.kept:,} kept, which is "
            f"{'no' if not shards else 'only one'} shard; autoresearch needs at least one training shard "
            "and the validation shard. Use more source files or fewer --rows-per-shard. "
            "Your data folder was not changed."
        )
    written = sum(s.rows for s in shards)
    ran_out = written < rows_wanted
    record = manifest.build(
        definition=definition,
        source=source,
        options=options.recorded(),
        rows_read=batches.read,
        rows_kept=batches.kept,
        shards=shards,
        ran_out=ran_out,
    )
    manifest.write(staging, record)
    if ran_out:
        progress.message(
            f"The source ran out: {batches.read:,} rows read and {batches.kept:,} kept, so "
            f"{len(shards) - 1} training shards (of {options.num_shards} asked) and a validation shard of "
            f"{shards[-1].rows:,} rows were written."
        )
    backup = cache.install(staging, backup=not options.skip_backup)
    # Removed only now: a run killed during the swap above finds its finished checkpoint and
    # completes the swap when run again.
    (cache.data / checkpoint.CHECKPOINT_NAME).unlink()
    return ConvertResult(
        definition=definition,
        source=source,
        data_dir=cache.data,
        shards=shards,
        rows_read=batches.read,
        rows_kept=batches.kept,
        ran_out=ran_out,
        backup=backup,
        manifest_path=cache.data / manifest.MANIFEST_NAME,
    )
