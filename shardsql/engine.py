"""The SQL engine: DuckDB evaluates a definition as a view over the `source` rows.

A definition is parsed once by DuckDB itself, which gives its shape (row by row, or whole
source: see plan.py) and the columns it reads. Then:

* row by row, `run` evaluates it on one unit of source rows at a time (each executor
  thread has its own Engine, and so its own connection);
* whole source, `stream` evaluates it once over a stream of all the source's units, and
  yields the result as DuckDB produces it. DuckDB runs single-threaded there, so that
  the output order of DISTINCT, GROUP BY or ORDER BY ties is the same on every run (the
  manifest promises a reproducible conversion), and may spill to disk.

The connection is locked down before any definition runs: no file or network access, and
the configuration cannot be changed back, so a hostile definition can only read `source`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from . import plan
from .errors import DefinitionError
from .retries import describe
from .statements import body_line, definition_tree

if TYPE_CHECKING:
    import pyarrow as pa

    from .catalog import Definition

OUTPUT_COLUMN = "text"
DUCKDB_THREADS = 1  # per unit: the executors run units in parallel, one connection each
WHOLE_MEMORY_LIMIT = "1GB"  # whole-source queries spill to disk past this (sorts, hash tables)
RESULT_BATCH_ROWS = 8192  # rows per batch of a whole-source result


class Engine:
    """A definition's SQL, parsed and classified, ready to run on source rows."""

    def __init__(self, definition: Definition, spill_dir: Path | None = None):
        import duckdb

        self.definition = definition
        # What a failed DuckDB call raises: its error, or a UnicodeDecodeError when its message
        # quotes bytes that are not valid UTF-8 (Python 3.11.5+; retries.describe says more).
        self._errors = (duckdb.Error, UnicodeDecodeError)
        config = {"threads": DUCKDB_THREADS}
        if spill_dir is not None:
            config |= {"temp_directory": str(spill_dir), "memory_limit": WHOLE_MEMORY_LIMIT}
        self._con = duckdb.connect(":memory:", config=config)
        # Parse with DuckDB itself: the only parser that agrees with the engine on what the SQL means.
        statements = definition_tree(self._con, definition)["statements"]  # one SELECT; errors at file:line
        self.statement = statements[0]
        self.shape = plan.classify(self.statement)
        self._con.execute("SET enable_external_access = false")
        self._con.execute("SET lock_configuration = true")
        self._view_ready = False
        self._source_schema: pa.Schema | None = None  # the full source schema, for error messages

    def _error(self, exc: Exception, hint: str = "") -> DefinitionError:
        """A DuckDB error as a DefinitionError pointing at the line in the .sql file."""
        found = re.search(r"LINE (\d+):", str(exc))
        line = body_line(self.definition, int(found.group(1))) if found else None
        return DefinitionError(describe(exc) + hint, self.definition.path, line)

    def columns_needed(self, schema: pa.Schema) -> list[str]:
        """The source columns the SQL reads: only these are fetched from the network."""
        # SQL naming no column (a constant) still needs the row count: the first column gives it.
        return plan.columns_needed(self.statement, list(schema.names)) or list(schema.names[:1])

    def _sql(self) -> str:
        """The definition, with `source` read once into a buffer if it reads `source` twice
        (a self-join, a subquery over source): the stream can be scanned only once."""
        refs = [
            item
            for item in plan.walk(self.statement)
            if item.get("type") == "BASE_TABLE" and item.get("table_name", "").lower() == plan.SOURCE_VIEW
        ]
        if len(refs) < 2:
            return self.definition.sql
        return f"WITH source AS MATERIALIZED (SELECT * FROM __stream) SELECT * FROM ({self.definition.sql})"

    def _register(self, source: pa.Table | pa.RecordBatchReader) -> None:
        self._con.register("__stream" if "__stream" in self._sql() else "source", source)
        if not self._view_ready:
            try:
                self._con.execute(f"CREATE VIEW dataset AS {self._sql()}")
            except self._errors as exc:
                raise self._error_with_columns(exc, source.schema) from exc
            self._view_ready = True

    def _error_with_columns(self, exc: Exception, schema: pa.Schema) -> DefinitionError:
        missing_column = "column" in str(exc).lower() and "not found" in str(exc).lower()
        names = (self._source_schema or schema).names
        hint = f"\nThe source has these columns: {', '.join(names)}" if missing_column else ""
        return self._error(exc, hint)

    def check(self, schema: pa.Schema) -> list[str]:
        """Bind the SQL against the source schema; return the columns to fetch.

        Fails with a DefinitionError unless the result is exactly one text column named `text`.
        """
        import pyarrow as pa

        self._source_schema = schema
        columns = self.columns_needed(schema)
        empty = pa.schema([schema.field(name) for name in columns]).empty_table()
        self._register(empty)
        try:
            result = self._con.sql("SELECT * FROM dataset LIMIT 0")
            names, types = result.columns, [str(t) for t in result.types]
        except self._errors as exc:
            raise self._error_with_columns(exc, schema) from exc
        if names != [OUTPUT_COLUMN] or types != ["VARCHAR"]:
            found = ", ".join(f"{n} {t}" for n, t in zip(names, types, strict=True))
            raise DefinitionError(
                f"must yield exactly one column, `text` of type VARCHAR; it yields: {found}",
                self.definition.path,
            )
        return columns

    def run(self, table: pa.Table) -> pa.Table:
        """The definition's result on some source rows, in source order (row-by-row definitions)."""
        self._register(table)
        try:
            return self._con.sql("SELECT text FROM dataset").to_arrow_table()
        except self._errors as exc:
            raise self._error_with_columns(exc, table.schema) from exc

    def stream(self, reader: pa.RecordBatchReader) -> Iterator[pa.Table]:
        """The definition's result over the whole `reader`, batch by batch as DuckDB makes it."""
        import pyarrow as pa

        self._register(reader)
        try:
            result = self._con.sql("SELECT text FROM dataset").to_arrow_reader(RESULT_BATCH_ROWS)
            for batch in result:
                yield pa.Table.from_batches([batch])
        except self._errors as exc:
            raise self._error_with_columns(exc, reader.schema) from exc

    def close(self) -> None:
        self._con.close()
