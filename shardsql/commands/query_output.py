"""`shardsql sql`'s result written out: as csv, as json, or as a table, a batch at a time.

csv and json are written batch by batch as DuckDB produces them, so memory stays bounded
whatever the result's size; a table needs all its rows to lay them out (rich, imported only
for it). Text that is not valid UTF-8 in the result is one clean error, not a traceback.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from ..errors import QueryError

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("table", "csv", "json")
TABLE_WIDTH = 200  # a table's width where the output is not a terminal
MIN_TABLE_WIDTH = 80  # on a terminal: its width, at least this
MAX_COLUMN_WIDTH = 60  # a table's column: longer values end in an ellipsis


def write(batches: Iterable[pa.RecordBatch], *, names: list[str], fmt: str, out: TextIO) -> int:
    """A result's rows (its columns `names`) written to `out` in `fmt` (one of FORMATS); the rows written."""
    writer = {"csv": _write_csv, "json": _write_json, "table": _write_table}[fmt]
    try:
        return writer(names, batches, out)
    except UnicodeDecodeError as exc:
        raise QueryError(
            f"the result holds text that is not valid UTF-8 ({exc.reason}); the source has such bytes "
            "(cast the column to BLOB to see them)"
        ) from None


def _write_csv(names: list[str], batches: Iterable[pa.RecordBatch], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(names)
    count = 0
    for batch in batches:
        columns = [column.to_pylist() for column in batch.columns]
        writer.writerows(zip(*columns, strict=True))
        count += batch.num_rows
    out.flush()
    return count


def _write_json(names: list[str], batches: Iterable[pa.RecordBatch], out: TextIO) -> int:
    """A JSON array of row objects, written row by row (one object per row, as json.dumps
    with indent=1 would lay out the whole array)."""
    count = 0
    for batch in batches:
        for row in batch.to_pylist():
            text = json.dumps(row, ensure_ascii=False, indent=1, default=str).replace("\n", "\n ")
            out.write(("[\n " if count == 0 else ",\n ") + text)
            count += 1
    out.write("[]\n" if count == 0 else "\n]\n")
    out.flush()
    return count


def _write_table(names: list[str], batches: Iterable[pa.RecordBatch], out: TextIO) -> int:
    from rich.console import Console  # rich's import costs: only tables use it
    from rich.table import Table

    view = Table(*names, show_lines=False)
    for column in view.columns:
        column.overflow, column.no_wrap, column.max_width = "ellipsis", True, MAX_COLUMN_WIDTH
    count = 0
    for batch in batches:
        for row in batch.to_pylist():
            view.add_row(*("NULL" if v is None else str(v) for v in row.values()))
            count += 1
    width = max(MIN_TABLE_WIDTH, shutil.get_terminal_size()[0]) if out.isatty() else TABLE_WIDTH
    Console(file=out, width=width).print(view)
    return count
