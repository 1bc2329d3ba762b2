"""The contenders: the seed's per-row loop, the hand-written Polars one-liner, and shardsql.

Each writes `num_shards` training shards and the validation shard of `rows_per_shard`
rows from the same files, keeping the same rows (the fineweb-edu definition: text not
null and at least 50 characters; fineweb-edu-high also keeps int_score >= 3 or null), so
their shards can be compared row for row, and each in shardsql's codec and row groups
(shard_format): a contender that wrote a cheaper codec would win on the codec, not on its
work.

Each is timed as its user starts it, a fresh process (its `*_command`): the `shardsql`
command, `python seed_loop.py`, `python -c "<the Polars one-liner>"`. The in-process
calls (`seed_loop`, `polars_pipeline`, `shardsql_convert`) run the same code after the
imports: the benchmark's references and its in-process diagnostic, profiling and scaling.

This is the only module of the benchmark that imports shardsql (the others reach it
through the functions and strings here), so a move of shardsql's modules is one edit here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import seed_loop as seed

BENCH_DIR = Path(__file__).resolve().parent
DATASET = "fineweb-edu"  # sql/fineweb-edu.sql: text IS NOT NULL AND length(text) >= 50
HIGH = "fineweb-edu-high"  # sql/fineweb-edu-high.sql: and (int_score IS NULL OR int_score >= 3)
MIN_SCORE = {DATASET: None, HIGH: 3}

# shardsql as a fresh process sees it: its CLI, and the modules a conversion imports.
CLI_CODE = "from shardsql.cli import main\nsys.argv = ['shardsql', *sys.argv[1:]]\nmain()\n"
IMPORTS_CODE = "import duckdb, polars, pyarrow.parquet, huggingface_hub, shardsql.commands.convert\n"

# What one writes by hand with Polars: scan, filter, take the rows, partitioned sink, and the
# last shard renamed to the validation shard. Filled in by polars_code.
POLARS_CODE = """\
import pathlib, polars as pl
text, score = pl.col("text"), pl.col("int_score")
pl.scan_parquet({files!r}).filter({keep}).select("text").head({rows}).sink_parquet(
    pl.PartitionBy({out!r}, file_path_provider=lambda args: f"shard_{{args.index_in_partition:05d}}.parquet",
                   max_rows_per_file={rows_per_shard}, approximate_bytes_per_file=None),
    compression={compression!r}, compression_level={compression_level!r}, row_group_size={row_group_size},
    mkdir=True)
last = sorted(pathlib.Path({out!r}).glob("shard_*.parquet"))[-1]
last.rename(last.with_name("shard_{val:05d}.parquet"))
"""


def shard_format() -> dict:
    """shardsql's shards' codec and row-group size, which every contender writes."""
    from shardsql.autoresearch import ROW_GROUP_SIZE
    from shardsql.output.shards import COMPRESSION, COMPRESSION_LEVEL

    return {"compression": COMPRESSION, "compression_level": COMPRESSION_LEVEL, "row_group_size": ROW_GROUP_SIZE}


def seed_loop(
    output_dir: Path, *, files: list[Path], num_shards: int, rows_per_shard: int, dataset: str = DATASET
) -> int:
    """The seed loop (seed_loop.py) in this process, writing shardsql's format; returns the documents read."""
    read, _ = seed.rechunk_to_shards(files, output_dir=output_dir, num_shards=num_shards,
                                     rows_per_shard=rows_per_shard, min_score=MIN_SCORE[dataset],
                                     **shard_format())  # fmt: skip
    return read


def seed_command(
    output_dir: Path, *, source_dir: Path, num_shards: int, rows_per_shard: int, dataset: str = DATASET
) -> list[str]:
    """`python seed_loop.py SOURCE_DIR OUTPUT_DIR NUM_SHARDS ...`, writing shardsql's format.
    seed_loop.documents_read reads the documents read from its output."""
    fmt = shard_format()
    command = [sys.executable, str(BENCH_DIR / "seed_loop.py"), str(source_dir), str(output_dir), str(num_shards),
               "--rows-per-shard", str(rows_per_shard), "--compression", fmt["compression"],
               "--row-group-size", str(fmt["row_group_size"])]  # fmt: skip
    if fmt["compression_level"] is not None:
        command += ["--compression-level", str(fmt["compression_level"])]
    if MIN_SCORE[dataset] is not None:
        command += ["--min-score", str(MIN_SCORE[dataset])]
    return command


def polars_code(
    output_dir: Path, *, files: list[Path], num_shards: int, rows_per_shard: int, dataset: str = DATASET
) -> str:
    """The Polars one-liner for this job (POLARS_CODE), in shardsql's format."""
    keep = "text.is_not_null() & (text.str.len_chars() >= 50)"
    if MIN_SCORE[dataset] is not None:
        keep = f"(score.is_null() | (score >= {MIN_SCORE[dataset]})) & {keep}"
    return POLARS_CODE.format(files=[str(p) for p in sorted(files)], keep=keep, rows=(num_shards + 1) * rows_per_shard,
                              out=str(output_dir), rows_per_shard=rows_per_shard, val=seed.VAL_SHARD_INDEX,
                              **shard_format())  # fmt: skip


def polars_command(output_dir: Path, **job) -> list[str]:
    """`python -c "<the Polars one-liner>"`; `job` as polars_code's."""
    return [sys.executable, "-c", polars_code(output_dir, **job)]


def polars_pipeline(output_dir: Path, **job) -> None:
    """The Polars one-liner in this process; `job` as polars_code's."""
    exec(compile(polars_code(output_dir, **job), "<the Polars one-liner>", "exec"), {})


def shardsql_cli() -> list[str]:
    """The installed `shardsql` command, as a user runs it (beside this Python), else its CLI through `python -c`."""
    script = Path(sys.executable).parent / "shardsql"
    return [str(script)] if script.exists() else [sys.executable, "-c", "import sys\n" + CLI_CODE]


def shardsql_command(
    cache_dir: Path,
    *,
    num_shards: int,
    rows_per_shard: int,
    source: str | None,
    dataset: str = DATASET,
    shuffle: bool = False,
) -> list[str]:
    """`shardsql convert ...`, with the options shardsql_convert gives its library call
    (source None: the definition's, through HF_ENDPOINT)."""
    command = shardsql_cli() + ["convert", dataset, "--num-shards", str(num_shards), "--rows-per-shard",
                                str(rows_per_shard), "--cache-dir", str(cache_dir), "--yes", "--quiet"]  # fmt: skip
    command += [] if source is None else ["--source", source]
    return command + ([] if shuffle else ["--no-shuffle"])


def shardsql_convert(
    cache_dir: Path,
    num_shards: int,
    rows_per_shard: int,
    source: str | None,
    workers: int | None = None,
    dataset: str = DATASET,
    engine: str | None = None,
    shuffle: bool = False,
):
    """shardsql's `convert`, as a library call (source None: the definition's, through HF_ENDPOINT).

    In source order (`--no-shuffle`) unless `shuffle`: that is the seed loop's work, row for row,
    so that every run can be checked against it; the shuffled default is its own contender."""
    from shardsql.commands.convert import convert
    from shardsql.commands.options import ConvertOptions
    from shardsql.definition.catalog import resolve

    options = ConvertOptions(num_shards=num_shards, rows_per_shard=rows_per_shard, source=source,
                             cache_dir=cache_dir, shuffle=shuffle)  # fmt: skip
    if workers:
        options.workers = workers
    if engine:
        options.engine = engine
    return convert(resolve(dataset), options)


def import_shardsql() -> None:
    """Import what a conversion needs, before any clock starts."""
    import shardsql.commands.convert  # noqa: F401


def ray_module():
    """Ray, as shardsql's Ray engine loads it."""
    from shardsql.run.ray.adapter import load_ray

    return load_ray()


def hub_stand_in():
    """shardsql's local Hub stand-in (not started)."""
    from shardsql.standin.hub import HubStandIn

    return HubStandIn()
