"""The contenders: the seed's per-row loop, a hand-written Polars pipeline, and shardsql.

Each writes `num_shards` training shards and the validation shard of `rows_per_shard`
rows from the same files, keeping the same rows (the fineweb-edu definition: text not
null and at least 50 characters; fineweb-edu-high also keeps int_score >= 3 or null), so
their shards can be compared row for row.

This is the only module of the benchmark that imports shardsql (the others reach it
through the functions and strings here), so a move of shardsql's modules is one edit here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

VAL_SHARD_INDEX = 6542
DATASET = "fineweb-edu"  # sql/fineweb-edu.sql: text IS NOT NULL AND length(text) >= 50
HIGH = "fineweb-edu-high"  # sql/fineweb-edu-high.sql: and (int_score IS NULL OR int_score >= 3)
MIN_SCORE = {DATASET: None, HIGH: 3}

# shardsql as a fresh process sees it: its CLI, and the modules a conversion imports.
CLI_CODE = "from shardsql.cli import main\nsys.argv = ['shardsql', *sys.argv[1:]]\nmain()\n"
IMPORTS_CODE = "import duckdb, polars, pyarrow.parquet, huggingface_hub, shardsql.commands.convert\n"


def seed_loop(
    source_files: list[Path], output_dir: Path, num_shards: int, rows_per_shard: int, dataset: str = DATASET
) -> int:
    """The seed's rechunk_to_shards (convert_dataset.py), logic unchanged, as in tests/seed_reference.py,
    writing shards with pyarrow as the seed's _write_shard does. Returns the documents read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text_col, min_score = "text", MIN_SCORE[dataset]  # fineweb-edu: no score filter; -high: 3
    score_col = "int_score" if min_score is not None else None

    def write_shard(shard_idx: int, texts: list[str]) -> None:
        path = os.path.join(output_dir, f"shard_{shard_idx:05d}.parquet")
        schema = pa.schema([("text", pa.string())])
        writer = pq.ParquetWriter(path, schema)
        for rg_start in range(0, len(texts), 1024):
            writer.write_table(pa.table({"text": texts[rg_start : rg_start + 1024]}, schema=schema))
        writer.close()

    os.makedirs(output_dir, exist_ok=True)
    shard_idx = 0
    doc_buffer: list[str] = []
    total_docs = filtered_docs = 0
    for src_path in sorted(source_files):
        pf = pq.ParquetFile(src_path)
        for rg_idx in range(pf.num_row_groups):
            rg = pf.read_row_group(rg_idx, columns=[text_col] + ([score_col] if score_col else []))
            texts = rg.column(text_col).to_pylist()
            scores = rg.column(score_col).to_pylist() if score_col else [None] * len(texts)
            for text, score in zip(texts, scores, strict=True):
                total_docs += 1
                if min_score is not None and score is not None and score < min_score:
                    filtered_docs += 1
                    continue
                if not text or len(text) < 50:
                    filtered_docs += 1
                    continue
                doc_buffer.append(text)
                if len(doc_buffer) >= rows_per_shard:
                    write_shard(shard_idx, doc_buffer[:rows_per_shard])
                    doc_buffer = doc_buffer[rows_per_shard:]
                    shard_idx += 1
                    if shard_idx >= num_shards + 1:
                        break
            if shard_idx >= num_shards + 1:
                break
        if shard_idx >= num_shards + 1:
            break
    if doc_buffer and shard_idx < num_shards + 1:
        write_shard(shard_idx, doc_buffer)
        shard_idx += 1
    if shard_idx > 0:
        last_path = os.path.join(output_dir, f"shard_{shard_idx - 1:05d}.parquet")
        if shard_idx - 1 != VAL_SHARD_INDEX:
            shutil.move(last_path, os.path.join(output_dir, f"shard_{VAL_SHARD_INDEX:05d}.parquet"))
    return total_docs


def polars_pipeline(
    source_files: list[Path], output_dir: Path, num_shards: int, rows_per_shard: int, dataset: str = DATASET
) -> None:
    """What one would write by hand with Polars: scan, filter, take the rows, partitioned sink."""
    import polars as pl

    text, score = pl.col("text"), pl.col("int_score")
    keep = text.is_not_null() & (text.str.len_chars() >= 50)
    if MIN_SCORE[dataset] is not None:
        keep = (score.is_null() | (score >= MIN_SCORE[dataset])) & keep
    (
        pl.scan_parquet(source_files)
        .filter(keep)
        .select("text")
        .head((num_shards + 1) * rows_per_shard)
        .sink_parquet(
            pl.PartitionBy(
                output_dir,
                file_path_provider=lambda args: f"shard_{args.index_in_partition:05d}.parquet",
                max_rows_per_file=rows_per_shard,
                approximate_bytes_per_file=None,
            ),
            row_group_size=1024,
            mkdir=True,
        )
    )
    last = sorted(output_dir.glob("shard_*.parquet"))[-1]
    last.rename(output_dir / f"shard_{VAL_SHARD_INDEX:05d}.parquet")


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
    from shardsql.commands.convert import ConvertOptions, convert
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
