"""What to read of a source, and the one way to open a source for reading.

A `Scan` is a source, the columns to fetch and the one schema they are read with (unified
over the files: schemas.py), from a starting position. `open_scan` is how convert, `sql`
and `explain` all open a source: list it, read the first footer (the first files' others
meanwhile), ask the caller which columns the SQL names, pick the cheapest column when it
names none (a `count(*)` or a constant still needs the row count), and unify those columns' types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from .files import Source, open_source
from .footers import read_footer, reading_footers
from .schemas import SCHEMA_FILES, source_schema


@dataclass(frozen=True)
class Scan:
    source: Source
    columns: list[str]  # fetched; never empty
    schema: pa.Schema  # of `columns`, the same for every file
    start: tuple[int, int] = (0, 0)  # (file index, row group) where reading starts

    def row_bytes(self) -> float:
        """Uncompressed bytes a row of the columns read, in the first file's footer: a mixture's
        first estimate of a component's characters a row (its share of rows by characters)."""
        footer = read_footer(self.source, self.source.files[0])
        return footer.uncompressed_bytes(self.columns) / max(1, footer.num_rows)


def open_scan(
    url: str,
    revision: str | None,
    columns: Callable[[pa.Schema], list[str]],
    max_files: int | None = None,
    override: bool = False,
) -> Scan:
    """Open `url` at `revision` for reading the columns that `columns(first file's schema)` names.

    `columns` may check the SQL against the schema too (convert binds the definition there,
    so bad SQL fails before any data is fetched). `max_files` and `override` are open_source's.
    """
    source = open_source(url, revision, max_files=max_files, override=override)
    # The first file's footer binds the SQL; the others are read meanwhile (on a link with
    # round trips of 100 ms, reading them after it cost a second before the first unit).
    with reading_footers(source, source.files[:SCHEMA_FILES]) as ahead:
        footer = ahead[0].result()
        named = columns(footer.schema) or [footer.cheapest_column()]
        for other in ahead:
            other.result()
    return Scan(source, named, source_schema(source, named))
