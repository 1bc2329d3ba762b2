"""Small readers for asserting on written parquet files and query results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shardsql.commands.query import stream_query


def read_texts(path: Path) -> list[str]:
    return pq.read_table(path)["text"].to_pylist()


def row_groups(path: Path) -> list[int]:
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


@dataclass
class QueryResult:
    table: pa.Table
    truncated: bool  # more rows exist than `limit`
    bytes_fetched: int


def run_query(sql: str, limit: int | None = None, revision: str | None = None, source_url: str | None = None):
    """`shardsql sql`'s library call, its streamed result collected into one table."""
    with stream_query(sql, limit, revision, source_url) as (stream, session):
        table = pa.Table.from_batches(list(stream.batches), stream.schema)
        return QueryResult(table, session.truncated, stream.bytes_fetched)
