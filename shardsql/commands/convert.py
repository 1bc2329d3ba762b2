"""Conversion: a definition and options in, autoresearch shards and a manifest out.

This module wires the stages together and holds no stage's logic itself:

    definition (catalog, evaluator) -> source (scan, units, decode) -> run (an executor)
        -> output (shards in a staging folder, checkpoint, manifest) -> cache_dir (swap in)

`preview` is the dry run: it reads only parquet footers. A conversion holds the cache
folder's lock, and checkpoints after every shard so that a rerun resumes (checkpoint.py).
"""

from __future__ import annotations

import dataclasses
import errno
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..autoresearch import (
    DEFAULT_CACHE_DIR,
    MAX_TRAIN_SHARDS,
    NEXT_STEP,
    ROW_GROUP_SIZE,
    ROWS_PER_SHARD,
    VAL_SHARD_NAME,
)
from ..definition.analysis import Shape
from ..definition.catalog import Definition
from ..definition.evaluator import Evaluator
from ..errors import ConversionError, OptionsError
from ..hub.retries import report_waits
from ..output import checkpoint, manifest
from ..output.cache_dir import CacheDir
from ..output.checkpoint import Position
from ..output.shards import RowStream, ShardInfo, TextDigest, pin_validation, write_shards
from ..output.verify import val_tokens
from ..progress import Progress
from ..run.executor import Executor, RunRecord, available_cores
from ..run.local import LocalExecutor
from ..source.files import Source
from ..source.footers import ParquetFooter, read_footers
from ..source.scan import Scan, open_scan
from ..source.schemas import unify
from ..source.units import Unit, chunk_ranges
from .shuffle import convert_shuffled

SPILL_DIR = "spill"  # in the staging folder: where a whole-source query may spill
ENGINES = ("local", "ray")  # --engine: where row-by-row definitions run


@dataclass
class ConvertOptions:
    num_shards: int = 10
    num_source: int | None = None  # at most this many source files; None: as many as needed
    rows_per_shard: int = ROWS_PER_SHARD
    row_group_size: int = ROW_GROUP_SIZE
    revision: str | None = None  # overrides the definition's revision
    source: str | None = None  # overrides the definition's source URL
    cache_dir: Path = DEFAULT_CACHE_DIR.expanduser()
    skip_backup: bool = False
    # Units run at once: threads (local; default the machine's cores) or Ray tasks (ray; default
    # the cluster's CPUs). The shards are the same for any number, and either engine.
    workers: int | None = None
    engine: str = "local"  # "local" or "ray" (run/ray/); whole-source definitions always run locally
    # Shuffled (commands/shuffle.py): a seeded random, deduplicated sample over the whole source.
    # shuffle=False is the in-order conversion: the first kept rows, in source order, no deduplication.
    shuffle: bool = True
    seed: int = 0
    val_rows: int | None = None  # rows of the validation shard; None: rows_per_shard

    def validate(self) -> None:
        for name in ("num_shards", "rows_per_shard", "row_group_size"):
            if getattr(self, name) < 1:
                raise OptionsError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.engine not in ENGINES:
            raise OptionsError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers is not None and self.workers < 1:
            raise OptionsError(f"--workers must be at least 1, got {self.workers}")
        if self.val_rows is not None and self.val_rows < 1:
            raise OptionsError(f"--val-rows must be at least 1, got {self.val_rows}")
        if self.seed < 0:
            raise OptionsError(f"--seed must be at least 0, got {self.seed}")
        if self.num_source is not None and self.num_source < 1:
            raise OptionsError(f"--num-source must be at least 1, got {self.num_source}")
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

    @property
    def rows_wanted(self) -> int:
        """Training shards' rows and the validation shard's."""
        return self.num_shards * self.rows_per_shard + (self.val_rows or self.rows_per_shard)

    def order(self, shape: Shape) -> str:
        """The output's order: "shuffled", "source" (--no-shuffle) or "sql" (the definition's ORDER BY)."""
        if shape.ordered:
            return "sql"
        return "shuffled" if self.shuffle else "source"


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
    order: str = "source"  # "shuffled", "source" or "sql"
    duplicates_removed: int = 0
    seed: int | None = None
    val_tokens: int = 0  # the validation shard's estimated tokens (UTF-8 bytes / 4)

    @property
    def train_shards(self) -> int:
        return len(self.shards) - 1

    @property
    def next_step(self) -> str:
        return NEXT_STEP.format(n=self.train_shards)


@dataclass
class Preview:
    """What a conversion would read and write (the dry run), from parquet footers alone."""

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
        return sum(
            end - start
            for footer in self.footers
            for index in range(footer.metadata.num_row_groups)
            for start, end in chunk_ranges(footer, index, self.columns)
        )

    def text_bytes(self) -> int:
        """Uncompressed bytes of the needed columns in all listed files (the text's size, roughly)."""
        wanted = {c.lower() for c in self.columns}
        return sum(
            rg.column(j).total_uncompressed_size
            for footer in self.footers
            for rg in (footer.metadata.row_group(i) for i in range(footer.metadata.num_row_groups))
            for j in range(rg.num_columns)
            if rg.column(j).path_in_schema.split(".")[0].lower() in wanted
        )


def _open(definition: Definition, options: ConvertOptions) -> tuple[Scan, Shape]:
    """Open the source for the definition: the SQL is bound to the first file's schema (bad
    SQL fails here, before any data is fetched), the columns it reads get one schema."""
    options.validate()
    evaluator = Evaluator(definition)
    try:
        url, revision = options.source or definition.source, options.revision or definition.revision
        scan = open_scan(url, revision, evaluator.check, options.num_source, override=bool(options.revision))
    finally:
        evaluator.close()
    return scan, evaluator.shape


def preview(definition: Definition, options: ConvertOptions) -> Preview:
    """The dry run: list files and read their footers; no data pages are fetched."""
    scan, shape = _open(definition, options)  # footers are cached: the first ones are not read again
    rows_wanted = options.rows_wanted
    footers = read_footers(scan.source, scan.source.files)
    # Every footer is at hand: files whose columns cannot be read as one schema fail here.
    unify([f.schema for f in footers], [f.file.url for f in footers], scan.columns)
    return Preview(definition, scan.source, footers, scan.columns, rows_wanted, shape)


class _Tracker:
    """The definition's output in source order, tracking where each batch came from, so
    that `position_after(pending)` turns "the last batch still has `pending` unwritten rows"
    into the checkpoint position where the next shard starts.

    Row by row, a position is a unit's first row group and the kept rows of that unit
    already written. Whole source, a rerun runs the query again from the start, checks the
    rows of the shards already written against their texts' digest and does not write them
    again: it needs no position.
    """

    def __init__(self, source: Source, start: Position, progress: Progress, row_by_row: bool):
        self.source, self.start, self.progress, self.row_by_row = source, start, progress, row_by_row
        self.read = start.rows_read
        self.kept = start.rows_kept
        self._last = Position(start.file, start.row_group, 0, self.read, self.kept)
        self._last_kept = 0

    def from_units(self, pairs: Iterator[tuple[Unit, pa.Table]]) -> Iterator[pa.Table]:
        """The kept rows of each unit, less those the shards before a restart already hold."""
        skip = self.start.unit_rows_written
        for unit, out in pairs:
            self._last = Position(unit.file_index, unit.row_groups[0], 0, self.read, self.kept)
            self._last_kept = 0
            self.read += unit.rows
            # The kept rows that shards before a restart already hold, at the start of its first unit.
            skip = skip if unit.start == (self.start.file, self.start.row_group) else 0
            self._last_kept += out.num_rows
            self.kept += out.num_rows
            self.progress.update(self.read, self.kept, self.source.counter.bytes)
            if skip:
                cut = min(skip, out.num_rows)
                out, skip = out.slice(cut), skip - cut
            if out.num_rows:
                yield out

    def from_query(self, batches: Iterator[pa.Table], done: list[ShardInfo], record: RunRecord) -> Iterator[pa.Table]:
        """The query's result, less the rows of the shards written before a restart: the query
        runs again from the start, so those rows are recomputed, checked against the shards'
        digests, and not written again."""
        stream = RowStream(batches)
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
        while pieces := list(stream.take(1 << 16)):
            for piece in pieces:
                self.read = record.rows_read
                self.kept += piece.num_rows
                self.progress.update(self.read, self.kept, self.source.counter.bytes)
                yield piece

    def position_after(self, pending: int) -> Position:
        if not self.row_by_row:
            return Position()
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
        "shuffle": options.shuffle,
        "seed": options.seed if options.shuffle else None,
        "val_rows": options.val_rows,
    }


def _disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc)


def convert(definition: Definition, options: ConvertOptions, progress: Progress | None = None) -> ConvertResult:
    """Convert `definition` into shards in `options.cache_dir/data`, the old data backed up.

    Resumes an interrupted run of the same conversion from its last complete shard.
    """
    progress = progress or Progress()
    cache = CacheDir(Path(options.cache_dir).expanduser())
    # Rate-limit waits are said through the progress display, not over it.
    with cache.lock(), report_waits(progress.message):
        scan, shape = _open(definition, options)
        return _convert(definition, options, progress, cache, scan, shape)


def _choose_engine(options: ConvertOptions, shape: Shape, progress: Progress) -> str:
    """The engine that runs this conversion: Ray only for row-by-row definitions; a
    whole-source query is one DuckDB query, on this machine."""
    if options.engine == "ray" and not shape.row_by_row:
        progress.message("A whole-source definition runs as one query on this machine: --engine ray is not used.")
        return "local"
    return options.engine


def _executor_for(engine: str, workers: int | None, progress: Progress) -> Executor:
    """The local engine, or Ray (joined or started on entering it, left on leaving it)."""
    if engine == "ray":
        # Imported here: Ray is an optional extra, loaded only by a conversion that asks for it.
        from ..run.ray.driver import RayExecutor

        return RayExecutor(workers, progress.message)
    return LocalExecutor(workers or available_cores())


def _rows(definition, scan: Scan, shape: Shape, tracker: _Tracker, executor: Executor, rows_wanted: int,
          done: list[ShardInfo], spill_dir: Path) -> Iterator[pa.Table]:  # fmt: skip
    """The definition's output over the source, on the path its shape allows."""
    if shape.row_by_row:
        yield from tracker.from_units(executor.row_by_row(scan, definition, lambda: rows_wanted - tracker.kept))
        return
    # A whole-source query is one DuckDB query on this machine (_choose_engine): the local executor.
    assert isinstance(executor, LocalExecutor)
    spill_dir.mkdir(parents=True, exist_ok=True)
    evaluator = Evaluator(definition, spill_dir=spill_dir)
    try:
        batches = (table for _, table in executor.whole_source(scan, evaluator))
        yield from tracker.from_query(batches, done, executor.record)
    finally:
        evaluator.close()


def _convert(definition: Definition, options: ConvertOptions, progress: Progress, cache: CacheDir, scan: Scan,
             shape: Shape) -> ConvertResult:  # fmt: skip
    source = scan.source
    rows_wanted = options.rows_wanted
    order = options.order(shape)
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
    # Ray is checked to be installed now, before anything is written (RayExecutor loads it on entry).
    executor = _executor_for(_choose_engine(options, shape, progress), options.workers, progress)
    scan = dataclasses.replace(scan, start=(state.next.file, state.next.row_group) if shape.row_by_row else (0, 0))
    tracker = _Tracker(source, state.next, progress, shape.row_by_row)
    progress.message(f"{definition.name} runs {shape.path}: {shape.reason}.")
    if order == "sql":
        progress.message(f"{definition.name} has its own ORDER BY: the shards keep its order (not shuffled).")
    elif order == "shuffled":
        progress.message(
            f"Shuffled with seed {options.seed}: units drawn at random over all {len(source.files)} source files, "
            "duplicate texts removed (--no-shuffle: the first rows in source order)."
        )
    duplicates = 0

    def on_shard(info: ShardInfo, position: Position) -> None:
        state.shards.append(info)
        state.next = position
        state.save(staging)
        progress.shard(info)

    if order != "shuffled":
        progress.start(rows_wanted, options.num_shards + 1, kept=tracker.kept, shards=len(state.shards))
    try:
        if not state.finished and order == "shuffled":
            outcome = convert_shuffled(definition, scan, shape, executor, options, staging, state, progress)
            tracker.read, tracker.kept = outcome.rows_read, outcome.rows_kept
            state.finished = True
            state.save(staging)
        elif not state.finished:
            done = list(state.shards)
            with executor:
                rows = _rows(definition, scan, shape, tracker, executor, rows_wanted, done, staging / SPILL_DIR)
                try:
                    write_shards(
                        rows, staging, options.num_shards, options.rows_per_shard, options.row_group_size,
                        on_shard, done, tracker.position_after, writers=executor.shards_in_flight,
                        digest=not shape.row_by_row, encode=executor.encode, last_rows=options.val_rows,
                    )  # fmt: skip
                finally:
                    rows.close()  # stops the executor's threads now, not when garbage collected
                    shutil.rmtree(staging / SPILL_DIR, ignore_errors=True)
            state.finished = True
            state.save(staging)
        if order == "shuffled":
            tracker.read, tracker.kept = state.shuffle["read"], state.shuffle["staged"]
            duplicates = state.shuffle["duplicates"]
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
            f"the source ran out: {tracker.read:,} rows read, {tracker.kept:,} kept, which is "
            f"{'no' if not shards else 'only one'} shard; autoresearch needs at least one training shard "
            "and the validation shard. Use more source files or fewer --rows-per-shard. "
            "Your data folder was not changed."
        )
    written = sum(s.rows for s in shards)
    ran_out = written < rows_wanted
    tokens = val_tokens(staging / VAL_SHARD_NAME)
    record = manifest.build(
        definition=definition,
        source=source,
        options=options.recorded(),
        rows_read=tracker.read,
        rows_kept=tracker.kept,
        shards=shards,
        ran_out=ran_out,
        engine=executor.record.to_dict(),
        order={
            "order": order,
            "seed": options.seed if order == "shuffled" else None,
            "duplicates_removed": duplicates,
        },  # fmt: skip
        val_tokens=tokens,
    )
    manifest.write(staging, record)
    if ran_out:
        progress.message(
            f"The source ran out: {tracker.read:,} rows read and {tracker.kept:,} kept, so "
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
        rows_read=tracker.read,
        rows_kept=tracker.kept,
        ran_out=ran_out,
        backup=backup,
        manifest_path=cache.data / manifest.MANIFEST_NAME,
        order=order,
        duplicates_removed=duplicates,
        seed=options.seed if order == "shuffled" else None,
        val_tokens=tokens,
    )
