"""The test oracle: the seed script's conversion loop (convert_dataset.py, rechunk_to_shards).

Copied here, logic unchanged, because the tests must not depend on anything outside the
repository. It reads local parquet files row by row in Python, exactly as the seed does,
and returns the shards it would write as {file name: [texts]}.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

VAL_SHARD_INDEX = 6542


def seed_shards(
    source_files: list[Path], text_col: str, num_shards: int, rows_per_shard: int, min_score: int | None = None
) -> tuple[dict[str, list[str]], int, int]:
    """Returns (shards by name, docs read, docs filtered) as the seed computes them."""
    score_col = "int_score" if min_score is not None else None
    written: list[list[str]] = []
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
                    written.append(doc_buffer[:rows_per_shard])
                    doc_buffer = doc_buffer[rows_per_shard:]
                    if len(written) >= num_shards + 1:
                        break
            if len(written) >= num_shards + 1:
                break
        if len(written) >= num_shards + 1:
            break
    if doc_buffer and len(written) < num_shards + 1:
        written.append(doc_buffer)
    names = [f"shard_{i:05d}.parquet" for i in range(len(written))]
    if written and len(written) - 1 != VAL_SHARD_INDEX:
        names[-1] = f"shard_{VAL_SHARD_INDEX:05d}.parquet"
    return dict(zip(names, written, strict=True)), total_docs, filtered_docs
