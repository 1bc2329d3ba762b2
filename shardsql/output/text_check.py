"""Checks that every batch headed for a shard is text prepare.py can read.

autoresearch's prepare.py calls `len(text)` on every row and tokenizes it as a Python
`str`: a NULL stops tokenizer training, and bytes that are not UTF-8 fail to decode (or,
read by a lenient reader, train on garbage). Neither pyarrow's parquet reader, DuckDB's
scan of a registered Arrow table nor Polars' writer checks UTF-8 (tested in
tests/test_text_check.py), so a source column holding invalid bytes would flow into the
shards unnoticed. Polars' reader does check, but source/decode.py gives a row group it
refuses to pyarrow, so that a text the definition drops is no error: only the kept ones
are checked, here. `check_text` is run on each batch of the definition's output before it is
written: the first bad batch stops the conversion, before any shard holding it exists.

Cost: a NULL count is free (Arrow keeps it); UTF-8 validation is Arrow's validator, about
0.1 s for 100,000 texts of 3,500 characters (406 MB) on one core, `python -m
shardsql.output.text_check`. A whole conversion of 100,000 such rows took 1.49 s with the check and
1.54 s without (medians of 4): the check is within the noise of decoding and compressing.
"""

from __future__ import annotations

import random
import re
import time

import pyarrow as pa

from ..autoresearch import TEXT_COLUMN
from ..errors import ConversionError

UNCHANGED = "Your data folder was not changed."


def check_text(table: pa.Table, where: str, *, utf8_checked: bool = False) -> None:
    """Raise ConversionError unless `table`'s `text` column has no NULL and only valid UTF-8.

    `where` names the rows for a person, e.g. "hf://.../0001.parquet, row group 3".
    `utf8_checked`: the definition read only text that is known to be valid UTF-8 (Polars
    decoded it: source/decode.Part), so its output is too, and only NULLs are looked for:
    DuckDB makes no invalid VARCHAR from valid input (a BLOB cast to VARCHAR is escaped,
    `decode` refuses invalid bytes: tests/test_text_check.py).
    """
    column = table.column(TEXT_COLUMN)
    if column.null_count:
        raise ConversionError(
            f"{where}: the definition keeps {column.null_count:,} NULL text(s) here, and prepare.py fails on a "
            f"NULL; add `WHERE text IS NOT NULL` (or `AND text IS NOT NULL`) to it. {UNCHANGED}"
        )
    bad = None if utf8_checked else first_invalid_utf8(column)
    if bad is not None:
        row = f" (row {bad:,} of this batch)" if bad >= 0 else ""
        raise ConversionError(
            f"{where}: a text is not valid UTF-8{row}, so prepare.py cannot read it; fix that source file or "
            f"leave it out (--source, --num-source). {UNCHANGED}"
        )


def first_invalid_utf8(column: pa.ChunkedArray | pa.Array) -> int | None:
    """The index of the first text in `column` (any kind of text) that is not valid UTF-8:
    None when all are valid, -1 when Arrow does not say which."""
    offset = 0
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        try:
            # Full validation is what checks UTF-8; the cheap one checks only offsets and sizes.
            chunk.validate(full=True)
        except pa.ArrowInvalid as exc:
            # "Invalid UTF8 sequence at string index N" (for a dictionary, N is in its values).
            found = re.search(r"string index (\d+)", str(exc))
            return offset + int(found.group(1)) if found and not pa.types.is_dictionary(chunk.type) else -1
        offset += len(chunk)
    return None


def _measure(rows: int = 100_000, chars: int = 3_500, batch_rows: int = 2_048) -> None:
    """Print check_text's cost on `rows` texts of `chars` characters: `python -m shardsql.output.text_check`."""
    rng = random.Random(0)
    base = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz      éü—数") for _ in range(chars))
    table = pa.table({TEXT_COLUMN: pa.array([base[i % 97 :] + base[: i % 97] for i in range(rows)], pa.large_string())})
    batches = [table.slice(i, batch_rows) for i in range(0, rows, batch_rows)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for batch in batches:
            check_text(batch, "measure")
        best = min(best, time.perf_counter() - start)
    size = table.column(TEXT_COLUMN).nbytes / 1e6
    print(f"check_text: {rows:,} texts of {chars:,} characters ({size:,.0f} MB) in {batch_rows:,}-row batches: "
          f"{best:.3f} s (best of 3, one core), {size / best:,.0f} MB/s")  # fmt: skip


if __name__ == "__main__":
    _measure()
