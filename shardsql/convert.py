"""Conversion: a definition and options in, autoresearch shards and a manifest out.

This module wires the stages together and holds no stage's logic itself:

    catalog.Definition -> sources (lazy row groups) -> engine (DuckDB view)
        -> shards (Polars writer, in a staging folder) -> manifest -> backups (swap in)

`plan` is the dry run: it reads only parquet footers.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import manifest
from .backups import DEFAULT_CACHE_DIR, CacheDir
from .errors import ConversionError, OptionsError
from .progress import Progress
from .shards import ROW_GROUP_SIZE, ROWS_PER_SHARD, ShardInfo, write_shards

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
    from .sources import read_footers

    source, first, columns, engine = _open(definition, options)
    engine.close()
    rows_wanted = (options.num_shards + 1) * options.rows_per_shard
    return Plan(definition, source, [first, *read_footers(source, source.files[1:])], columns, rows_wanted)


def convert(definition: Definition, options: ConvertOptions, progress: Progress | None = None) -> ConvertResult:
    """Convert `definition` into shards in `options.cache_dir/data`, the old data backed up."""
    from .sources import iter_row_groups

    progress = progress or Progress()
    source, _, columns, engine = _open(definition, options)
    cache = CacheDir(Path(options.cache_dir).expanduser())
    rows_wanted = (options.num_shards + 1) * options.rows_per_shard
    counts = {"read": 0, "kept": 0}

    def batches() -> Iterator[pa.Table]:
        wanted = lambda: rows_wanted - counts["kept"]  # noqa: E731
        for group in iter_row_groups(source, columns, wanted):
            out = engine.run(group.table)
            counts["read"] += group.num_rows
            counts["kept"] += out.num_rows
            progress.update(counts["read"], counts["kept"], source.counter.bytes)
            yield out

    staging = cache.fresh_staging()
    progress.start(rows_wanted, options.num_shards + 1)
    try:
        shards = write_shards(
            batches(), staging, options.num_shards, options.rows_per_shard, options.row_group_size, progress.shard
        )
        written = sum(s.rows for s in shards)
        if len(shards) < 2:
            raise ConversionError(
                f"the source ran out: {counts['read']:,} rows read, {counts['kept']:,} kept, which is "
                f"{'no' if not shards else 'only one'} shard; autoresearch needs at least one training shard "
                "and the validation shard. Use more source files or fewer --rows-per-shard. "
                "Your data folder was not changed."
            )
        ran_out = written < rows_wanted
        record = manifest.build(
            definition=definition,
            source=source,
            options=options.recorded(),
            rows_read=counts["read"],
            rows_kept=counts["kept"],
            shards=shards,
            ran_out=ran_out,
        )
        manifest.write(staging, record)
    except BaseException:
        progress.stop()
        shutil.rmtree(staging, ignore_errors=True)
        engine.close()
        raise
    progress.stop()
    engine.close()
    if ran_out:
        progress.message(
            f"The source ran out: {counts['read']:,} rows read and {counts['kept']:,} kept, so "
            f"{len(shards) - 1} training shards (of {options.num_shards} asked) and a validation shard of "
            f"{shards[-1].rows:,} rows were written."
        )
    backup = cache.install(staging, backup=not options.skip_backup)
    return ConvertResult(
        definition=definition,
        source=source,
        data_dir=cache.data,
        shards=shards,
        rows_read=counts["read"],
        rows_kept=counts["kept"],
        ran_out=ran_out,
        backup=backup,
        manifest_path=cache.data / manifest.MANIFEST_NAME,
    )
