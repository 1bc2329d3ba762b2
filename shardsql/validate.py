"""Checks that every batch headed for a shard is text prepare.py can read.

autoresearch's prepare.py calls `len(text)` on every row and tokenizes it as a Python
`str`: a NULL stops tokenizer training, and bytes that are not UTF-8 fail to decode (or,
read by a lenient reader, train on garbage). Neither pyarrow's parquet reader, DuckDB's
scan of a registered Arrow table nor Polars' writer checks UTF-8 (tested in
tests/test_validate.py), so a source column holding invalid bytes flows into the shards
unnoticed. `check_text` is run on each batch of the definition's output before it is
written: the first bad batch stops the conversion, before any shard holding it exists.

Cost: a NULL count is free (Arrow keeps it); UTF-8 validation is Arrow's SIMD validator,
about 0.1 s for 350 MB of text on one core (README, Performance), small next to decoding
and compressing the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConversionError

if TYPE_CHECKING:
    import pyarrow as pa

TEXT_COLUMN = "text"
UNCHANGED = "Your data folder was not changed."


def check_text(table: pa.Table, where: str) -> None:
    """Raise ConversionError unless `table`'s `text` column has no NULL and only valid UTF-8.

    `where` names the rows for a person, e.g. "hf://.../0001.parquet, row group 3".
    """
    import pyarrow as pa

    column = table.column(TEXT_COLUMN)
    if column.null_count:
        raise ConversionError(
            f"{where}: the definition keeps {column.null_count:,} NULL text(s) here, and prepare.py fails on a "
            f"NULL; add `WHERE text IS NOT NULL` (or `AND text IS NOT NULL`) to it. {UNCHANGED}"
        )
    offset = 0
    for chunk in column.chunks:
        try:
            # Full validation is what checks UTF-8; the cheap one checks only offsets and sizes.
            chunk.validate(full=True)
        except pa.ArrowInvalid as exc:
            index = _bad_index(str(exc))
            row = f" (row {offset + index:,} of this batch)" if index is not None else ""
            raise ConversionError(
                f"{where}: a text is not valid UTF-8{row}, so prepare.py cannot read it; fix that source file or "
                f"leave it out (--source, --num-source). {UNCHANGED}"
            ) from None
        offset += len(chunk)


def _bad_index(message: str) -> int | None:
    """The row index in Arrow's 'Invalid UTF8 sequence at string index N' message."""
    import re

    found = re.search(r"string index (\d+)", message)
    return int(found.group(1)) if found else None
