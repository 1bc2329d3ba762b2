"""The seed's conversion loop as its user runs it: `python seed_loop.py SOURCE_DIR OUTPUT_DIR NUM_SHARDS`.

    python bench/seed_loop.py SOURCE_DIR OUTPUT_DIR NUM_SHARDS [--rows-per-shard 86016]
        [--min-score 3] [--compression snappy] [--compression-level N] [--row-group-size 1024]

The seed script's rechunk_to_shards and _write_shard (convert_dataset.py), logic unchanged,
as tests/seed_reference.py has them: the source folder's parquet files in name order, row
group by row group, each text checked in a Python loop, shards of `rows_per_shard` written
with pyarrow in row groups of 1,024, the last shard renamed to the validation shard. Two
things are options here that are constants in the seed, so that the benchmark can make this
contender write what shardsql's shards are (contenders.shard_format): the rows a shard (the
seed's TARGET_ROWS_PER_SHARD) and the codec, which the seed leaves to pyarrow's default
(snappy). The benchmark times this file as a fresh process (contenders.seed_command), and
calls rechunk_to_shards in its own process for its references and its in-process diagnostic.

Standalone on purpose (pyarrow only, no shardsql): it is the seed user's program, and the
benchmark's clean-clone CI has nothing else to run it from.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys

import pyarrow as pa
import pyarrow.parquet as pq

VAL_SHARD_INDEX = 6542
REPORT = "Documents: {read:,} read, {filtered:,} filtered, {kept:,} kept"  # the seed's last line


def rechunk_to_shards(
    source_files: list,
    *,
    output_dir,
    num_shards: int,
    rows_per_shard: int = 86_016,
    min_score: int | None = None,
    compression: str = "snappy",
    compression_level: int | None = None,
    row_group_size: int = 1024,
) -> tuple[int, int]:
    """Write `num_shards` + 1 shards of the kept texts into `output_dir`; return the documents read and filtered."""
    text_col = "text"
    score_col = "int_score" if min_score is not None else None

    def write_shard(shard_idx: int, texts: list[str]) -> None:
        path = os.path.join(output_dir, f"shard_{shard_idx:05d}.parquet")
        schema = pa.schema([("text", pa.string())])
        writer = pq.ParquetWriter(path, schema, compression=compression, compression_level=compression_level)
        for rg_start in range(0, len(texts), row_group_size):
            writer.write_table(pa.table({"text": texts[rg_start : rg_start + row_group_size]}, schema=schema))
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
    return total_docs, filtered_docs


def documents_read(output: str) -> int:
    """The documents read, from the output of a run of this file."""
    found = re.findall("^" + re.escape(REPORT.split("{")[0]) + r"([\d,]+)", output, re.MULTILINE)
    if not found:
        raise ValueError(f"no '{REPORT.split(':')[0]}:' line in the seed loop's output:\n{output}")
    return int(found[-1].replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source_dir", help="folder of source parquet files (read in name order)")
    parser.add_argument("output_dir")
    parser.add_argument("num_shards", type=int, help="training shards (plus one validation shard)")
    parser.add_argument("--rows-per-shard", type=int, default=86_016)
    parser.add_argument("--min-score", type=int, help="also drop rows whose int_score is below this (not null)")
    parser.add_argument("--compression", default="snappy", help="parquet codec (pyarrow's default, as the seed)")
    parser.add_argument("--compression-level", type=int)
    parser.add_argument("--row-group-size", type=int, default=1024)
    args = parser.parse_args(argv)
    # As the seed lists its download folder: parquet files, not the .tmp ones of unfinished downloads.
    files = [os.path.join(args.source_dir, f) for f in os.listdir(args.source_dir) if f.endswith(".parquet")]
    if not files:
        print("ERROR: No source parquet files found!", file=sys.stderr)
        return 1
    read, filtered = rechunk_to_shards(files, output_dir=args.output_dir, num_shards=args.num_shards,
                      rows_per_shard=args.rows_per_shard, min_score=args.min_score, compression=args.compression,
                      compression_level=args.compression_level, row_group_size=args.row_group_size)  # fmt: skip
    print(REPORT.format(read=read, filtered=filtered, kept=read - filtered))
    return 0


if __name__ == "__main__":
    sys.exit(main())
