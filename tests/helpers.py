"""Small readers for asserting on written parquet files."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def read_texts(path: Path) -> list[str]:
    return pq.read_table(path)["text"].to_pylist()


def row_groups(path: Path) -> list[int]:
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
