"""A definition evaluated by DuckDB as a view over source rows.

A definition is parsed once by DuckDB itself, which gives its shape (row by row, or whole
source: see analysis.py) and the columns it reads. Then:

* row by row, `run` evaluates it on one unit of source rows at a time (each executor
  thread has its own Evaluator, and so its own connection);
* whole source, `stream` evaluates it once over a stream of all the source's units, and
  yields the result as DuckDB produces it. DuckDB runs single-threaded there, so that
  the output order of DISTINCT, GROUP BY or ORDER BY ties is the same on every run (the
  manifest promises a reproducible conversion), and may spill to disk.

The connection is sandbox.py's: locked down before the definition runs, so a hostile
definition can only read `source`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..autoresearch import TEXT_COLUMN
from ..errors import DefinitionError, describe
from . import analysis, sandbox
from .mask import mask_sql
from .model import Definition
from .statement import body_line, definition_tree

WHOLE_MEMORY_LIMIT = "1GB"  # whole-source queries spill to disk past this (sorts, hash tables)
RESULT_BATCH_ROWS = 8192  # rows per batch of a whole-source result
# A mask that drops at most one row in this many keeps the rest as slices of the decoded column
# (`kept_rows`), not as a copy.
SLICE_EVERY = 32
# What a failed DuckDB call raises: its error, or a UnicodeDecodeError when its message quotes
# bytes that are not valid UTF-8 (Python 3.11.5+; errors.describe says more).
DUCKDB_ERRORS = (duckdb.Error, UnicodeDecodeError)


def _is_text(kind: pa.DataType) -> bool:
    """Whether DuckDB reads a column of this Arrow type as VARCHAR."""
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


class Evaluator:
    """A definition's SQL, parsed and classified, ready to run on source rows."""

    def __init__(self, definition: Definition, spill_dir: Path | None = None):
        self.definition = definition
        memory = WHOLE_MEMORY_LIMIT if spill_dir is not None else None
        self._con = sandbox.connect(memory_limit=memory, spill_dir=spill_dir)
        # Parsed by DuckDB itself: the only parser that agrees with DuckDB on what the SQL means.
        statements = definition_tree(self._con, definition)["statements"]  # one SELECT; errors at file:line
        self.statement = statements[0]
        self.shape = analysis.classify(self.statement)
        # `source` is a stream that can be scanned once: a definition reading it twice (a
        # self-join, a subquery over source) reads it once into a buffer instead.
        self._twice = analysis.reads_source_twice(self.statement)
        # `SELECT text FROM source WHERE ...`: DuckDB evaluates the WHERE alone, a boolean a row,
        # and the kept texts are taken from the source's own column, never copied through DuckDB.
        self._kept = analysis.kept_column(self.statement)
        self._masks: dict[frozenset[str], str | None] = {}  # mask.py's query, by the source's text columns
        self._view_ready = False
        self._source_schema: pa.Schema | None = None  # the full source schema, for error messages

    def _error(self, exc: Exception, hint: str = "") -> DefinitionError:
        """A DuckDB error as a DefinitionError pointing at the line in the .sql file."""
        found = re.search(r"LINE (\d+):", str(exc))
        line = body_line(self.definition, int(found.group(1))) if found else None
        return DefinitionError(describe(exc) + hint, self.definition.path, line)

    def _register(self, source: pa.Table | pa.RecordBatchReader) -> None:
        # As an Arrow stream capsule, scanned once, by the one query that follows. Given the
        # table itself, DuckDB checks whether it is a Polars frame, and so waits for Polars
        # while another thread imports it: at the start of a conversion the units would wait
        # there for the first shard's writer (output/shards.write_pieces imports Polars).
        self._con.register("__stream" if self._twice else "source", source.__arrow_c_stream__())
        if not self._view_ready:
            sql = self.definition.sql
            if self._twice:
                sql = f"WITH source AS MATERIALIZED (SELECT * FROM __stream) SELECT * FROM ({sql})"
            try:
                self._con.execute(f"CREATE TEMP VIEW dataset AS {sql}")  # this connection's own (sandbox.py)
            except DUCKDB_ERRORS as exc:
                raise self._error_with_columns(exc, source.schema) from exc
            self._view_ready = True

    def _error_with_columns(self, exc: Exception, schema: pa.Schema) -> DefinitionError:
        missing_column = "column" in str(exc).lower() and "not found" in str(exc).lower()
        names = (self._source_schema or schema).names
        hint = f"\nThe source has these columns: {', '.join(names)}" if missing_column else ""
        return self._error(exc, hint)

    def check(self, schema: pa.Schema) -> list[str]:
        """Bind the SQL against the source schema; return the columns it names (only these are
        fetched; none for SQL that names no column, such as a constant).

        Fails with a DefinitionError unless the result is exactly one text column named `text`.
        """
        self._source_schema = schema
        columns = analysis.columns_needed(self.statement, list(schema.names))
        # A table to bind against needs a column, even when the SQL names none.
        bound = columns or list(schema.names[:1])
        empty = pa.schema([schema.field(name) for name in bound]).empty_table()
        self._register(empty)
        try:
            result = self._con.sql("SELECT * FROM dataset LIMIT 0")
            names, types = result.columns, [str(t) for t in result.types]
        except DUCKDB_ERRORS as exc:
            raise self._error_with_columns(exc, schema) from exc
        if names != [TEXT_COLUMN] or types != ["VARCHAR"]:
            found = ", ".join(f"{n} {t}" for n, t in zip(names, types, strict=True))
            raise DefinitionError(
                f"must yield exactly one column, `text` of type VARCHAR; it yields: {found}",
                self.definition.path,
            )
        return columns

    def run(self, table: pa.Table) -> pa.Table:
        """The definition's result on some source rows, in source order (row-by-row definitions)."""
        masked = self._masked(table)
        if masked is not None:
            return masked
        self._register(table)
        try:
            return self._con.sql(f"SELECT {TEXT_COLUMN} FROM dataset").to_arrow_table()
        except DUCKDB_ERRORS as exc:
            raise self._error_with_columns(exc, table.schema) from exc

    def _masked(self, table: pa.Table) -> pa.Table | None:
        """`run`'s result for a definition that keeps a source column as it is (`kept_column`):
        the rows its WHERE holds TRUE for (NULL drops a row, as WHERE does). None where that
        does not apply (another definition, a column that is not text) or DuckDB fails: `run`
        then evaluates the definition itself, and an error names the definition's own line."""
        if self._kept is None or table.schema.get_field_index(self._kept) < 0:
            return None
        column = table.column(self._kept)
        if not _is_text(column.type):
            return None
        texts = frozenset(f.name for f in table.schema if _is_text(f.type))
        if texts not in self._masks:
            self._masks[texts] = mask_sql(self._con, self.statement, text_columns=texts)
        mask = self._masks[texts]
        if mask is None:
            return pa.table({TEXT_COLUMN: column})
        self._con.register(analysis.SOURCE_VIEW, table.__arrow_c_stream__())  # as in _register: never waits for Polars
        try:
            keep = self._con.sql(mask).to_arrow_table().column(0)
        except DUCKDB_ERRORS:
            return None
        if keep.type != pa.bool_() or len(keep) != len(column):
            return None
        return pa.table({TEXT_COLUMN: kept_rows(column, keep)})

    def stream(self, reader: pa.RecordBatchReader) -> Iterator[pa.Table]:
        """The definition's result over the whole `reader`, batch by batch as DuckDB makes it."""
        self._register(reader)
        try:
            result = self._con.sql(f"SELECT {TEXT_COLUMN} FROM dataset").to_arrow_reader(RESULT_BATCH_ROWS)
            for batch in result:
                yield pa.Table.from_batches([batch])
        except DUCKDB_ERRORS as exc:
            raise self._error_with_columns(exc, reader.schema) from exc

    def close(self) -> None:
        self._con.close()


def kept_rows(column: pa.ChunkedArray, keep: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """The rows of `column` where `keep` is true (NULL drops a row, as WHERE does).

    String views (decode.py's) are filtered: only their 16-byte views are copied, never a text.
    Strings are filtered where many rows are dropped (more than one in SLICE_EVERY): a filter
    copies every kept text. Where few are, the runs of kept rows between them are zero-copy
    slices of `column`: a filter cost FineWeb-Edu (2.5% dropped) 0.3 CPU-s a 555 MB file, and
    the shard writer reads the slices as they are. (Slicing views too held the GIL for a loop
    over every dropped row: 6% of a shuffle's GIL-held time, and a table of hundreds of chunks.)
    """
    keep = keep.combine_chunks() if isinstance(keep, pa.ChunkedArray) else keep
    kept = pc.sum(keep).as_py() or 0  # (NULL counts as not kept)
    if kept == len(column):
        return column
    if pa.types.is_string_view(column.type):
        return _filter_views(column, keep)
    if (len(column) - kept) * SLICE_EVERY > len(column):
        return column.filter(keep, null_selection_behavior="drop")
    dropped = pc.indices_nonzero(pc.invert(keep.fill_null(False))).to_pylist()
    pieces, start = [], 0
    for end in [*dropped, len(column)]:
        if end > start:
            pieces.extend(column.slice(start, end - start).chunks)
        start = end + 1
    return pa.chunked_array(pieces, column.type)


def _filter_views(column: pa.ChunkedArray, keep: pa.Array) -> pa.ChunkedArray:
    """`column.filter(keep)` for string views, which Arrow cannot filter (pyarrow 26): Polars'
    filter copies the views and shares the texts."""
    import polars as pl

    kept = pl.Series(column).filter(pl.Series(keep).fill_null(False))
    return pa.chunked_array([kept.to_arrow(compat_level=pl.CompatLevel.newest())], column.type)
