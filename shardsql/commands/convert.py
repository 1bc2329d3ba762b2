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
from .shards import (
    ROW_GROUP_SIZE,
    ROWS_PER_SHARD,
    RowStream,
    ShardInfo,
    TextDigest,
    pin_validation,
    write_shards,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from .catalog import Definition
    from .execute import Scan
    from .plan import Shape, Unit
    from .sources import ParquetFooter, Source

NEXT_STEP = "uv run prepare.py --num-shards {n}"
SPILL_DIR = "spill"  # in the staging folder: where a whole-source query may spill
ENGINES = ("local", "ray")


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
    # Units run at once: threads (local; default the machine's cores) or Ray tasks (ray; default
    # the cluster's CPUs). The shards are the same for any number, and either engine.
    workers: int | None = None
    engine: str = "local"  # "local" or "ray" (ray_engine.py); whole-source definitions always run locally

    def validate(self) -> None:
        for name in ("num_shards", "rows_per_shard", "row_group_size"):
            if getattr(self, name) < 1:
                raise OptionsError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.engine not in ENGINES:
            raise OptionsError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers is not None and self.workers < 1:
            raise OptionsError(f"--workers must be at least 1, got {self.workers}")
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
    shape: Shape

    @property
    def source_rows(self) -> int:
        return sum(f.num_rows for f in self.footers)

    def column_bytes(self) -> int:
        """Compressed bytes of the needed columns in all listed files."""
        from .plan import chunk_ranges

        return sum(
            end - start
            for footer in self.footers
            for index in range(footer.metadata.num_row_groups)
            for start, end in chunk_ranges(footer, index, self.columns)
        )


@dataclass
class _Opened:
    source: Source
    schema: pa.Schema  # of the columns read
    columns: list[str]
    shape: Shape


def _open(definition: Definition, options: ConvertOptions) -> _Opened:
    """Open the source, read the first footer, and check the SQL against its schema; the
    columns it reads get one schema over the source's files (schemas.py)."""
    from .engine import Engine
    from .schemas import source_schema
    from .sources import open_source, read_footer

    options.validate()
    revision = options.revision or definition.revision
    source = open_source(options.source or definition.source, revision, options.num_source, bool(options.revision))
    first = read_footer(source, source.files[0]).metadata.schema.to_arrow_schema()
    engine = Engine(definition)
    try:
        columns = engine.check(first)
    finally:
        engine.close()
    return _Opened(source, source_schema(source, columns), columns, engine.shape)


def plan(definition: Definition, options: ConvertOptions) -> Plan:
    """The dry run: list files and read their footers; no data pages are fetched."""
    from .schemas import unify
    from .sources import read_footers

    opened = _open(definition, options)  # footers are cached: the first is not read again
    rows_wanted = (options.num_shards + 1) * options.rows_per_shard
    footers = read_footers(opened.source, opened.source.files)
    # Every footer is at hand: files whose columns cannot be read as one schema fail here.
    unify([f.metadata.schema.to_arrow_schema() for f in footers], [f.file.url for f in footers], opened.columns)
    return Plan(definition, opened.source, footers, opened.columns, rows_wanted, opened.shape)


class _Output:
    """The definition's output, batch by batch in source order, remembering where each
    batch came from, so that `position_after(pending)` turns "the last batch still has
    `pending` unwritten rows" into the checkpoint position where the next shard starts.

    Row by row, a position is a unit's first row group and the kept rows of that unit
    already written. Whole source, a rerun runs the query again from the start, checks the
    rows of the shards already written against their texts' digest (and does not write them
    again), and a position is the number of output rows already written.
    """

    def __init__(self, scan: Scan, start: Position, progress, row_by_row: bool):
        self.scan, self.start, self.progress, self.row_by_row = scan, start, progress, row_by_row
        self.read = start.rows_read if row_by_row else 0
        self.kept = start.rows_kept if row_by_row else 0
        self._last = Position(start.file, start.row_group, 0, self.read, self.kept)
        self._last_kept = 0

    def feed(self, pairs: Iterator[tuple[Unit | None, pa.Table]], done: list[ShardInfo]) -> Iterator[pa.Table]:
        if not self.row_by_row:
            # The query runs again from the start: the rows of the shards written before are
            # recomputed, checked against those shards, and not written again.
            pairs = self._check_rerun(pairs, done)
        skip = self.start.skip if self.row_by_row else 0
        for unit, out in pairs:
            if unit is not None:
                self._last = Position(unit.file_index, unit.row_groups[0], 0, self.read, self.kept)
                self._last_kept = 0
                self.read += unit.rows
                # The kept rows that shards before a restart already hold, at the start of its first unit.
                skip = skip if unit.start == (self.start.file, self.start.row_group) else 0
            else:
                self.read = self.scan.read
            self._last_kept += out.num_rows
            self.kept += out.num_rows
            self.progress.update(self.read, self.kept, self.scan.source.counter.bytes)
            if skip:
                cut = min(skip, out.num_rows)
                out, skip = out.slice(cut), skip - cut
            if out.num_rows:
                yield out

    def _check_rerun(self, pairs, done: list[ShardInfo]) -> Iterator[tuple[None, pa.Table]]:
        stream = RowStream(table for _, table in pairs)
        for shard in done:
            digest = TextDigest()
            for piece in stream.take(shard.rows):
                digest.update(piece)
            if digest.hexdigest() != shard.texts_sha256:
                raise ConversionError(
                    f"the definition's query gave other rows for {shard.name} than the interrupted run wrote; "
                    "remove the staging folder's checkpoint.json to start afresh"
                )
            self.kept += shard.rows
        while True:
            pieces = list(stream.take(1 << 16))
            if not pieces:
                return
            for piece in pieces:
                yield None, piece

    def position_after(self, pending: int) -> Position:
        if not self.row_by_row:
            return Position(0, 0, self.kept - pending, 0, 0)
        last = self._last
        return Position(last.file, last.row_group, self._last_kept - pending, last.rows_read, last.rows_kept)


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
    from .retries import report_waits

    progress = progress or Progress()
    cache = CacheDir(Path(options.cache_dir).expanduser())
    # Rate-limit waits are said through the progress display, not over it.
    with cache.lock(), report_waits(progress.message):
        return _convert(definition, options, progress, cache, _open(definition, options))


def _run(definition: Definition, opened: _Opened, output: _Output, spill_dir: Path, rows_wanted: int, done,
         executor):  # fmt: skip
    """The definition's output over the source, on the path its shape allows, with the executor chosen."""
    from . import execute
    from .engine import Engine

    if opened.shape.row_by_row:
        yield from output.feed(executor.row_by_row(output.scan, definition, lambda: rows_wanted - output.kept), done)
        return
    spill_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(definition, spill_dir=spill_dir)
    try:
        engine.check(opened.schema)
        yield from output.feed(execute.whole_source(output.scan, engine), done)
    finally:
        engine.close()


def _executor(engine: str, workers: int | None, progress: Progress):
    """The local engine, or Ray (joined or started on entering it, left on leaving it)."""
    if engine == "ray":
        from .ray_engine import RayRun

        return RayRun(workers, progress.message)
    from .execute import LocalRun

    return LocalRun(workers)


def _engine(options: ConvertOptions, opened: _Opened, progress: Progress) -> str:
    """The engine that runs this conversion: Ray only for row-by-row definitions (checked installed now,
    before anything is written); a whole-source query is one DuckDB query, on this machine."""
    if options.engine != "ray":
        return "local"
    if not opened.shape.row_by_row:
        progress.message("A whole-source definition runs as one query on this machine: --engine ray is not used.")
        return "local"
    from . import ray_engine

    ray_engine.require()
    return "ray"


def _convert(definition, options, progress, cache, opened: _Opened) -> ConvertResult:
    from .execute import Scan, available_cores

    source = opened.source
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
    start = (state.next.file, state.next.row_group)
    engine = _engine(options, opened, progress)
    workers = options.workers or (None if engine == "ray" else available_cores())
    scan = Scan(source, opened.columns, opened.schema, start, workers)
    batches = _Output(scan, state.next, progress, opened.shape.row_by_row)
    progress.message(f"{definition.name} runs {opened.shape.path}: {opened.shape.reason}.")

    def on_shard(info: ShardInfo, position: Position) -> None:
        state.shards.append(info)
        state.next = position
        state.save(staging)
        progress.shard(info)

    progress.start(rows_wanted, options.num_shards + 1, kept=batches.kept, shards=len(state.shards))
    try:
        if not state.finished:
            done = list(state.shards)
            with _executor(engine, workers, progress) as executor:
                output = _run(definition, opened, batches, staging / SPILL_DIR, rows_wanted, done, executor)
                try:
                    write_shards(
                        output, staging, options.num_shards, options.rows_per_shard, options.row_group_size,
                        on_shard, done, batches.position_after, writers=executor.shards_in_flight,
                        digest=not opened.shape.row_by_row, encode=executor.encode,
                    )  # fmt: skip
                finally:
                    output.close()  # stops the executor's threads now, not when garbage collected
                    shutil.rmtree(staging / SPILL_DIR, ignore_errors=True)
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
        engine=scan.record.to_dict(),
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
