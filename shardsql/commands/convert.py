"""Conversion: a definition and options in, shards and a manifest out, for autoresearch or nanochat.

Every conversion takes one path, and this module holds it (`_write`) without any stage's logic:

    the parts (plan.py: a dataset is a mixture of one part)
        -> their rows selected and merged in output order, a `Mode`: one dataset in
           order (in_order.py), a --no-shuffle mixture interleaved (interleaved.py), or a
           shuffled sample (shuffle.py), each running units on an executor (run/)
        -> one shard writer (output/shards.ShardWriter), one checkpoint after every shard
           (output/checkpoint.py: the one resume rule)
        -> the finish: the manifest, then the staging folder swapped in (output/cache_dir.py)

The dry run is preview.py: it reads only parquet footers. A conversion holds the cache
folder's lock; a rerun of an interrupted one resumes after its last complete shard.
The shards are the same for every consumer (`--for`): only the cache folder's layout
(`options.cache`) and the next steps differ, and both come from the consumer (consumers.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import shutil
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..autoresearch import VAL_SHARD_NAME
from ..consumers import DEFAULT, Consumer
from ..definition.analysis import Shape
from ..definition.mixture import Mixture
from ..definition.model import Definition
from ..errors import ConversionError
from ..hub.retries import report_waits
from ..invocation import explain_command
from ..output import checkpoint, durable, manifest
from ..output.cache_dir import CacheDir
from ..output.checkpoint import PartOutcome, WritePosition
from ..output.shards import WRITERS, Rows, ShardInfo, ShardSizes, ShardWriter, pin_validation, write_pieces
from ..output.verify import val_tokens
from ..progress import Progress
from ..run.executor import Executor, available_cores
from ..run.local import LocalExecutor
from ..source.files import Source
from ..wording import count
from .in_order import InOrder
from .interleaved import Interleaved
from .options import ConvertOptions
from .plan import Opened, Part, kept_nothing, open_parts
from .shuffle import Shuffled


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


def _fingerprint(opened: Opened, options: ConvertOptions) -> checkpoint.Fingerprint:
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
    """ENOSPC, from Python's own writes or from Polars' (a Rust io::Error, which reaches Python as
    text only: "No space left on device (os error 28)")."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return f"(os error {errno.ENOSPC})" in str(exc)


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


def _executor_for(engine: str, workers: int | None, progress: Progress) -> Executor[Any]:
    """The local engine, or Ray (joined or started on entering it, left on leaving it)."""
    if engine == "ray":
        # Imported here: Ray is an optional extra, loaded only by a conversion that asks for it.
        from ..run.ray.driver import RayExecutor

        return RayExecutor(workers, progress.message)
    return LocalExecutor(workers or available_cores())


def _order(opened: Opened, options: ConvertOptions) -> str:
    single = opened.single
    if single is None:  # a mixture: shuffled, or its components interleaved in source order
        return "shuffled" if options.shuffle else "source"
    return options.order(single.read()[2])


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
        progress.message(f"Resuming an interrupted run after {count(len(state.shards), 'complete shard')}.")
    staging = cache.staging
    drawn = [(part, part.shape) for part in opened.parts if part.shape is not None]  # not --val-from live's file
    row_by_row = any(shape.row_by_row for _, shape in drawn)
    # Ray is checked to be installed now, before anything is written (RayExecutor loads it on entry).
    engine = options.engine if row_by_row else _choose_engine(options, drawn[0][1], progress)
    executor = _executor_for(engine, options.workers, progress)
    for part, shape in drawn:
        progress.message(f"{part.name} runs {shape.path}: {shape.reason}.")
    if order == "sql":
        progress.message(f"{model.name} has its own ORDER BY: the shards keep its order (not shuffled).")
    elif order == "shuffled":
        progress.message(
            f"Shuffled with seed {options.seed}: units drawn at random over all of each source's files, "
            "duplicate texts removed (--no-shuffle: the first rows in source order)."
        )
    if not single:
        for part, shape in drawn:
            if shape.ordered:
                progress.message(f"{part.name}'s own ORDER BY does not apply in a mixture: its rows are shuffled.")
    try:
        outcome = _write(opened, options, progress, state, staging, executor, order)
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
    return _finish(opened, options, progress, cache, shards, executor, order, outcome)


class Mode(Protocol):
    """How a conversion selects and orders its rows, its mode: one dataset in order
    (in_order.InOrder), a --no-shuffle mixture's components interleaved (interleaved.Interleaved),
    or a shuffled sample of one dataset or a mixture (shuffle.Shuffled). Built from the checkpoint:
    its rows start where `write_at` says."""

    @property
    def uses_executor(self) -> bool:
        """`prepare` or `batches` runs units on the executor (it is entered around them)."""
        ...

    @property
    def rows_here(self) -> bool:
        """Its rows are tables on this machine (a shuffle's piles, a mixture's interleave): the local
        writer encodes them, whatever the engine (its bytes are the Ray engine's too)."""
        ...

    @property
    def digest(self) -> bool:
        """Each shard records its texts' digest (what a whole-source query's rerun checks)."""
        ...

    @property
    def live(self) -> Path | None:
        """--val-from live: this file is the validation shard, byte for byte, after the training shards."""
        ...

    @property
    def sizes(self) -> ShardSizes:
        """How its rows are cut into shards (known once `prepare` has run)."""
        ...

    @property
    def rows_wanted(self) -> int:
        """The rows its shards will hold, all being well (what progress counts towards)."""
        ...

    @property
    def kept_before(self) -> int:
        """Rows an interrupted run already kept (or drew) that this run does not keep again."""
        ...

    @property
    def read_before(self) -> int:
        """Source rows the interrupted runs read for those (`kept_before`): this run's count starts there."""
        ...

    def prepare(self) -> None:
        """What must be done before the first row (a shuffle's select phase)."""

    def batches(self) -> Generator[Rows, None, None]:
        """Its rows in output order, from where the checkpoint says."""
        ...

    def position(self, pending: int) -> WritePosition:
        """Where the rows after the last batch's last `pending` rows start: the checkpoint's `write_at`."""
        ...

    def saved(self, position: WritePosition) -> None:
        """The checkpoint now says the rows before `position` are in complete shards."""

    def finish(self) -> list[PartOutcome]:
        """Each part's account, once every shard is written; its scratch files removed."""
        ...


def _write(opened: Opened, options: ConvertOptions, progress: Progress, state: checkpoint.Checkpoint,
           staging: Path, executor: Executor[Any], order: str) -> list[PartOutcome]:  # fmt: skip
    """Every conversion's one path: its parts' rows selected and merged in output order (a
    `Mode`), cut into shards by one writer, each shard checkpointed as it completes; each
    part's account, kept in the checkpoint once every shard is written."""
    if state.outcome is not None:  # a run that stopped after its last shard: only the finish is left
        return state.outcome
    mode: Mode
    if order == "shuffled":
        mode = Shuffled(opened.plan(options.allow_short), executor=executor, options=options, folder=staging,
                        checkpoint=state, progress=progress)  # fmt: skip
    elif opened.single is not None:
        mode = InOrder(opened.single, executor=executor, options=options, folder=staging, checkpoint=state,
                       progress=progress)  # fmt: skip
    else:
        mode = Interleaved(opened.parts, by=opened.mix_by, executor=executor, options=options, folder=staging,
                           checkpoint=state, progress=progress)  # fmt: skip

    def on_shard(info: ShardInfo, position: WritePosition) -> None:
        state.shards.append(info)
        state.write_at = position
        state.save(staging)
        mode.saved(position)
        progress.shard(info)

    progress.start(mode.rows_wanted, options.num_shards + 1, kept=mode.kept_before, shards=len(state.shards),
                   read=mode.read_before)  # fmt: skip
    with executor if mode.uses_executor else contextlib.nullcontext():
        mode.prepare()
        sizes = mode.sizes
        # Rows read here (from piles, or interleaved) are the local writer's; an executor's, its own.
        if mode.rows_here:
            encode, writers = write_pieces, WRITERS
        else:
            encode, writers = executor.encode, executor.shards_in_flight
        live = mode.live
        batches = mode.batches()
        try:
            with ShardWriter(staging, sizes, done=state.shards, on_shard=on_shard, encode=encode, writers=writers,
                             digest=mode.digest) as writer:  # fmt: skip
                writer.write(batches, mode.position, validation=live is None)
                if live is not None and len(state.shards) == sizes.num_shards:  # --val-from live: its file
                    writer.keep(live, state.write_at)
        finally:
            batches.close()  # stops the executor's threads now, not when garbage collected
    state.outcome = mode.finish()
    state.save(staging)
    return state.outcome


def _finish(opened: Opened, options: ConvertOptions, progress: Progress, cache: CacheDir, shards: list[ShardInfo],
            executor: Executor[Any], order: str, outcome: list[PartOutcome]) -> ConvertResult:  # fmt: skip
    """Check the shards are enough, write the manifest, swap the staging folder in."""
    staging, model = cache.staging, opened.model
    # Rows read from sources and kept by their definitions: a given file (--val-from live) reads none.
    drawn = [o for o, part in zip(outcome, opened.parts, strict=False) if part.given is None]
    read, kept = sum(p.rows_read for p in drawn), sum(p.rows_kept for p in drawn)
    duplicates = sum(p.duplicates for p in drawn)
    # The manifest accounts for each part of a mixture, or of a drawn sample; one dataset in order is its whole.
    parts = outcome if opened.single is None or order == "shuffled" else []
    explain = explain_command(model.name, model.path)
    more_files = "" if options.num_source is None else f", more source files (--num-source, now {options.num_source})"
    if len(shards) < 2:
        shutil.rmtree(staging, ignore_errors=True)
        if kept == 0:
            raise kept_nothing(f"{model.name}'s filter", read, explain)
        distinct, size = kept - duplicates, options.rows_per_shard
        enough = f"less than one shard of {size:,}" if distinct < size else f"which filled only one shard of {size:,}"
        raise ConversionError(
            f"the source ran out: {_went(read, kept, duplicates)}, {enough}; {options.consumer.name} needs at least "
            f"one training shard and the validation shard. Use fewer --rows-per-shard (--rows-per-shard "
            f"{max(1, distinct // (options.num_shards + 1)):,} for {options.num_shards} + 1 shards of these rows), "
            f"or see what the filter removes with `{explain}`{more_files}. Your data folder was not changed."
        )
    ran_out = sum(s.rows for s in shards) < options.rows_wanted and opened.live is None
    validation = next((s for s in shards if s.name == VAL_SHARD_NAME), None)
    tokens = val_tokens(staging / VAL_SHARD_NAME, validation.text_bytes if validation else None)
    source = opened.single.read()[1].source if opened.single else None
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
            f"{cause}: {_went(read, kept, duplicates)}, so {count(len(shards) - 1, 'training shard')} (of "
            f"{options.num_shards} asked) and a validation shard of {count(shards[-1].rows)} were written. "
            f"`{explain}` shows what the filter removes."
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


def _went(read: int, kept: int, duplicates: int) -> str:
    """Where the rows read went: "12,000 rows read, 4,100 removed by the filter, 1,412 duplicate texts
    removed: 6,488 left"."""
    dropped = f", {count(duplicates, 'duplicate text')} removed" if duplicates else ""
    return f"{count(read)} read, {read - kept:,} removed by the filter{dropped}: {kept - duplicates:,} left"


def _component_record(part: Part, outcome: PartOutcome) -> dict[str, object]:
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
