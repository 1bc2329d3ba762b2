"""Conversion: a definition and options in, shards and a manifest out, for autoresearch or nanochat.

This module wires the stages together and holds no stage's logic itself:

    definition (catalog, evaluator) -> source (scan, units, decode) -> run (an executor)
        -> output (shards in a staging folder, checkpoint, manifest) -> cache_dir (swap in)

`preview` is the dry run: it reads only parquet footers. A conversion holds the cache
folder's lock, and checkpoints after every shard so that a rerun resumes (checkpoint.py).
The shards are the same for every consumer (`--for`): only the cache folder's layout
(`options.cache`) and the next steps differ, and both come from the consumer (consumers.py).
"""

from __future__ import annotations

import dataclasses
import errno
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pyarrow as pa

from ..autoresearch import MAX_TRAIN_SHARDS, ROW_GROUP_SIZE, ROWS_PER_SHARD, VAL_SHARD_NAME
from ..consumers import DEFAULT, Consumer
from ..definition.analysis import Shape
from ..definition.evaluator import Evaluator
from ..definition.mixture import Mixture, for_one_dataset
from ..definition.model import Definition
from ..errors import ConversionError, OptionsError
from ..hub.retries import report_waits
from ..output import checkpoint, durable, manifest
from ..output.cache_dir import CacheDir
from ..output.checkpoint import Position
from ..output.shards import RowStream, ShardInfo, TextDigest, pin_validation, write_shards
from ..output.verify import val_tokens
from ..progress import Progress
from ..run.executor import Executor, RunRecord, available_cores
from ..run.local import LocalExecutor
from ..source.files import ParquetFooter, Source, top_column
from ..source.footers import read_footers
from ..source.scan import Scan
from ..source.schemas import unify
from ..source.units import Unit, chunk_ranges
from .interleaved import convert_interleaved
from .plan import LIVE, Opened, Part, PartOutcome, open_part, open_parts
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
    consumer: Consumer = DEFAULT  # who reads the shards (--for): where they go, and what to run next
    cache_dir: Path | None = None  # the consumer's base folder; None: its own (consumer.base_dir())
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
    # Where the validation shard's rows come from (commands/shuffle.py): None, this conversion's
    # own rows; a dataset or mixture (a name or a .sql file), drawn by the same seed; or "live",
    # the validation shard already in the cache folder, kept byte for byte.
    val_from: str | None = None
    allow_short: bool = False  # a mixture whose component runs out writes fewer rows, in the same proportions

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir).expanduser() if self.cache_dir is not None else self.consumer.base_dir()

    @property
    def cache(self) -> CacheDir:
        """The cache folder the shards go to, laid out for the consumer."""
        return CacheDir(self.cache_dir, self.consumer)

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
        if self.val_from is not None and not self.shuffle:
            raise OptionsError("--val-from draws the validation shard with the shuffle's seed: drop --no-shuffle")
        if self.val_from == LIVE and self.val_rows is not None:
            raise OptionsError("--val-from live keeps the live validation shard as it is: drop --val-rows")
        if self.num_shards > MAX_TRAIN_SHARDS:
            # Training shards are numbered from 0; shard_06542 is the validation shard's fixed
            # name, so training shard 6542 would overwrite it (and the manifest list it twice).
            raise OptionsError(
                f"--num-shards must be at most {MAX_TRAIN_SHARDS:,}, got {self.num_shards:,}: training shards are "
                f"shard_00000 to shard_{MAX_TRAIN_SHARDS - 1:05d} and must stop before the validation shard's "
                f"number ({self.consumer.validation})"
            )

    def recorded(self) -> dict:
        """The options as the manifest records them."""
        values = dataclasses.asdict(self)
        values["cache_dir"] = str(self.cache_dir)
        values["consumer"] = self.consumer.name  # what `verify`, `backups` and `restore` find the layout from
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
    definition: Definition | Mixture
    source: Source | None  # a mixture's, or with --val-from, the parts' sources are in `parts`
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
    parts: list[PartOutcome] = dataclasses.field(default_factory=list)  # a mixture's or --val-from's parts
    val_from: str | None = None
    consumer: Consumer = DEFAULT

    @property
    def train_shards(self) -> int:
        return len(self.shards) - 1

    def next_lines(self) -> list[str]:
        """What to run next in the consumer's checkout, and its downloader's trap."""
        return self.consumer.next_lines(self.train_shards, self.data_dir.parent)


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
            if top_column(rg.column(j)).lower() in wanted
        )


@dataclass
class ComponentPreview:
    """A mixture component's dry run, and its expected share of the work."""

    preview: Preview
    weight: Fraction
    chars_per_row: float  # the needed columns' uncompressed bytes a source row: its characters, roughly
    rows: int  # rows it is expected to give
    bytes: int  # compressed bytes it is expected to fetch for them, if its filter kept every row


@dataclass
class MixturePreview:
    mixture: Mixture
    components: list[ComponentPreview]


def preview_mixture(mixture: Mixture, options: ConvertOptions) -> MixturePreview:
    """The dry run of a mixture: each component's footers, and the rows and bytes it is expected
    to need for its share (by characters: in inverse proportion to its mean row length)."""
    for_one_dataset(mixture, "convert", revision=options.revision, source=options.source)
    previews = [preview(c.definition, options) for c in mixture.components]
    lengths = [p.text_bytes() / max(1, p.source_rows) for p in previews]
    weights = [c.weight for c in mixture.components]
    if mixture.mix_by == "characters":
        scale = [float(w) / max(1.0, n) for w, n in zip(weights, lengths, strict=True)]
    else:
        scale = [float(w) for w in weights]
    rows = [round(options.rows_wanted * x / sum(scale)) for x in scale]
    return MixturePreview(mixture, [
        ComponentPreview(p, w, n, r, int(r * p.column_bytes() / max(1, p.source_rows)))
        for p, w, n, r in zip(previews, weights, lengths, rows, strict=True)
    ])  # fmt: skip


def preview(definition: Definition, options: ConvertOptions) -> Preview:
    """The dry run: list files and read their footers; no data pages are fetched."""
    options.validate()
    part = open_part(definition, options)  # footers are cached: the first ones are not read again
    scan, shape = part.scan, part.shape
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


def _fingerprint(opened: Opened, options: ConvertOptions) -> dict:
    """What must be the same for a rerun to continue an interrupted one."""
    return opened.fingerprint() | {
        "num_shards": options.num_shards,
        "rows_per_shard": options.rows_per_shard,
        "row_group_size": options.row_group_size,
        "shuffle": options.shuffle,
        "seed": options.seed if options.shuffle else None,
        # A shuffled run's staged piles are kept until the machine restarts (output/durable.py).
        "machine_boot": durable.boot_id() if options.shuffle else None,
        "val_rows": options.val_rows,
        "val_from": options.val_from,
        "allow_short": options.allow_short,
    }


def _disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc)


def convert(model: Definition | Mixture, options: ConvertOptions, progress: Progress | None = None) -> ConvertResult:
    """Convert a dataset or a mixture into shards in the consumer's data folder in `options.cache_dir`,
    the old data and tokenizer backed up.

    Resumes an interrupted run of the same conversion where it stopped.
    """
    progress = progress or Progress()
    cache = options.cache
    # Rate-limit waits are said through the progress display, not over it.
    with cache.lock(), report_waits(progress.message):
        opened = open_parts(model, options, cache.data)
        return _convert(opened, options, progress, cache)


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


def _order(opened: Opened, options: ConvertOptions) -> str:
    single = opened.single
    if single is None:  # a mixture: shuffled, or its components interleaved in source order
        return "shuffled" if options.shuffle else "source"
    return options.order(single.shape)


def _convert(opened: Opened, options: ConvertOptions, progress: Progress, cache: CacheDir) -> ConvertResult:
    model, single = opened.model, opened.single
    order = _order(opened, options)
    fingerprint = _fingerprint(opened, options)
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
    drawn = [p for p in opened.parts if p.shape is not None]
    row_by_row = any(p.shape.row_by_row for p in drawn)
    # Ray is checked to be installed now, before anything is written (RayExecutor loads it on entry).
    engine = options.engine if row_by_row else _choose_engine(options, drawn[0].shape, progress)
    executor = _executor_for(engine, options.workers, progress)
    for part in drawn:
        progress.message(f"{part.name} runs {part.shape.path}: {part.shape.reason}.")
    if order == "sql":
        progress.message(f"{model.name} has its own ORDER BY: the shards keep its order (not shuffled).")
    elif order == "shuffled":
        progress.message(
            f"Shuffled with seed {options.seed}: units drawn at random over all of each source's files, "
            "duplicate texts removed (--no-shuffle: the first rows in source order)."
        )
    if not single:
        for part in drawn:
            if part.shape.ordered:
                progress.message(f"{part.name}'s own ORDER BY does not apply in a mixture: its rows are shuffled.")
    write = _write_shuffled if order == "shuffled" else _write_in_order if single else _write_interleaved
    try:
        written = write(opened, options, progress, state, staging, executor)
        shards = pin_validation(staging, state.shards)
    except BaseException as exc:
        progress.stop()
        raise _clean_disk_error(exc, staging) from exc
    progress.stop()
    return _finish(opened, options, progress, cache, shards, executor, order, written)


@dataclass
class _Written:
    """What writing the shards read and kept (summed over the parts) and, shuffled, each part's account."""

    rows_read: int
    rows_kept: int
    duplicates: int = 0
    parts: list[PartOutcome] = dataclasses.field(default_factory=list)


def _write_shuffled(opened: Opened, options: ConvertOptions, progress: Progress, state: checkpoint.Checkpoint,
                    staging: Path, executor: Executor) -> _Written:  # fmt: skip
    """The shuffle's two phases (commands/shuffle.py); its account kept in the checkpoint once done."""
    if not state.finished:
        parts = convert_shuffled(opened.plan(options.allow_short), executor, options, staging, state, progress)
        state.shuffle["outcome"] = [dataclasses.asdict(p) for p in parts]
        state.finished = True
        state.save(staging)
    parts = [PartOutcome(**p) for p in state.shuffle["outcome"]]
    return _Written(sum(p.rows_read for p in parts), sum(p.rows_kept for p in parts),
                    sum(p.duplicates for p in parts), parts)  # fmt: skip


def _write_interleaved(opened: Opened, options: ConvertOptions, progress: Progress, state: checkpoint.Checkpoint,
                       staging: Path, executor: Executor) -> _Written:  # fmt: skip
    """A mixture's components in source order, interleaved (commands/interleaved.py)."""
    if not state.finished:
        parts = convert_interleaved(opened.parts, opened.mix_by, executor, options, staging, state, progress)
        state.interleave["outcome"] = [dataclasses.asdict(p) for p in parts]
        state.finished = True
        state.save(staging)
    parts = [PartOutcome(**p) for p in state.interleave["outcome"]]
    return _Written(sum(p.rows_read for p in parts), sum(p.rows_kept for p in parts), 0, parts)


def _write_in_order(opened: Opened, options: ConvertOptions, progress: Progress, state: checkpoint.Checkpoint,
                    staging: Path, executor: Executor) -> _Written:  # fmt: skip
    """One dataset's kept rows in source order (--no-shuffle) or its ORDER BY's, resuming after the last shard."""
    definition, scan, shape = opened.single.definition, opened.single.scan, opened.single.shape
    scan = dataclasses.replace(scan, start=(state.next.file, state.next.row_group) if shape.row_by_row else (0, 0))
    tracker = _Tracker(scan.source, state.next, progress, shape.row_by_row)

    def on_shard(info: ShardInfo, position: Position) -> None:
        state.shards.append(info)
        state.next = position
        state.save(staging)
        progress.shard(info)

    progress.start(options.rows_wanted, options.num_shards + 1, kept=tracker.kept, shards=len(state.shards))
    if not state.finished:
        done = list(state.shards)
        with executor:
            rows = _rows(definition, scan, shape, tracker, executor, options.rows_wanted, done, staging / SPILL_DIR)
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
    return _Written(tracker.read, tracker.kept)


def _clean_disk_error(exc: BaseException, staging: Path) -> BaseException:
    if _disk_full(exc):
        return ConversionError(
            f"the disk is full while writing shards in {staging}. Free some space and run the same "
            "command again: it resumes from the last complete shard. Your data folder was not changed."
        )
    return exc


def _finish(opened: Opened, options: ConvertOptions, progress: Progress, cache: CacheDir, shards: list[ShardInfo],
            executor: Executor, order: str, written: _Written) -> ConvertResult:  # fmt: skip
    """Check the shards are enough, write the manifest, swap the staging folder in."""
    staging, model = cache.staging, opened.model
    read, kept, duplicates, parts = written.rows_read, written.rows_kept, written.duplicates, written.parts
    if len(shards) < 2:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConversionError(
            f"the source ran out: {read:,} rows read, {kept:,} kept, which is "
            f"{'no' if not shards else 'only one'} shard; {options.consumer.name} needs at least one training shard "
            "and the validation shard. Use more source files or fewer --rows-per-shard. "
            "Your data folder was not changed."
        )
    ran_out = sum(s.rows for s in shards) < options.rows_wanted and opened.live is None
    tokens = val_tokens(staging / VAL_SHARD_NAME)
    source = opened.single.scan.source if opened.single else None
    seed = options.seed if order == "shuffled" else None
    record = manifest.build(
        definition=model,
        source=source,
        options=options.recorded(),
        rows_read=read,
        rows_kept=kept,
        shards=shards,
        ran_out=ran_out,
        engine=executor.record.to_dict(),
        order={"order": order, "seed": seed, "duplicates_removed": duplicates},
        val_tokens=tokens,
        components=[_component_record(p, o) for p, o in zip(opened.parts, parts, strict=True)] if parts else None,
        val_from=opened.val_from,
        mix_by=opened.mix_by if opened.single is None else None,
    )
    manifest.write(staging, record)
    if ran_out:
        cause = "The source ran out" if opened.single else "A component ran out (--allow-short)"
        progress.message(
            f"{cause}: {read:,} rows read and {kept:,} kept, so "
            f"{len(shards) - 1} training shards (of {options.num_shards} asked) and a validation shard of "
            f"{shards[-1].rows:,} rows were written."
        )
    backup = cache.install(staging, backup=not options.skip_backup)
    # Removed only now: a run killed during the swap above finds its finished checkpoint and
    # completes the swap when run again.
    (cache.data / checkpoint.CHECKPOINT_NAME).unlink()
    return ConvertResult(
        definition=model,
        source=source,
        data_dir=cache.data,
        shards=shards,
        rows_read=read,
        rows_kept=kept,
        ran_out=ran_out,
        backup=backup,
        manifest_path=cache.data / manifest.MANIFEST_NAME,
        order=order,
        duplicates_removed=duplicates,
        seed=seed,
        val_tokens=tokens,
        parts=parts if opened.single is None else [],
        val_from=opened.val_from,
        consumer=options.consumer,
    )


def _component_record(part: Part, outcome: PartOutcome) -> dict:
    source = part.scan.source if part.scan else None
    return {
        "name": part.name,
        "role": "validation" if part.validation else "training",
        "weight": str(part.weight),
        "definition": {"path": str(part.definition.path), "sha256": part.definition.sha256}
        if part.definition
        else None,
        "source": {"url": source.url, "revision": source.revision, "commit": source.commit} if source else None,
        "rows": {
            "read": outcome.rows_read,
            "kept": outcome.rows_kept,
            "duplicates": outcome.duplicates,
            "written": outcome.rows_written,
        },  # fmt: skip
        "characters_written": outcome.chars_written,
    }
