"""The SQL engine: DuckDB evaluates a definition as a view over the `source` rows.

Each batch of source rows (one parquet row group, only the columns the SQL uses) is
registered as `source`; the definition is the view `dataset`; we select from it and hand
the Arrow result on. Evaluating batch by batch keeps the output in source order (the
parity with the seed script depends on it) and lets the caller stop reading the moment
the shards are full.

The connection is locked down before any definition runs: no file or network access, and
the configuration cannot be changed back, so a hostile definition can only read `source`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import DefinitionError
from .statements import definition_tree

if TYPE_CHECKING:
    import pyarrow as pa

    from .catalog import Definition

OUTPUT_COLUMN = "text"
DUCKDB_THREADS = 1  # one small batch at a time: more threads only add overhead; decoding and writing use the other core


def column_refs(node: object) -> tuple[set[str], bool]:
    """Column names referenced anywhere in a serialized DuckDB parse tree, and whether `*` is used."""
    names: set[str] = set()
    star = False
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class") == "COLUMN_REF" and item.get("column_names"):
                names.add(item["column_names"][-1].lower())
            if item.get("class") == "STAR" or item.get("type") == "COLUMNS":
                star = True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names, star


class Engine:
    """A definition's SQL, checked and ready to run on batches of source rows."""

    def __init__(self, definition: Definition):
        import duckdb

        self.definition = definition
        self._duckdb = duckdb
        self._con = duckdb.connect(":memory:", config={"threads": DUCKDB_THREADS})
        # Parse with DuckDB itself: the only parser that agrees with the engine on what the SQL means.
        statements = definition_tree(self._con, definition)["statements"]  # one SELECT; errors at file:line
        self._refs, self._star = column_refs(statements[0])
        self._con.execute("SET enable_external_access = false")
        self._con.execute("SET lock_configuration = true")
        self._view_ready = False
        self._source_schema: pa.Schema | None = None  # the full source schema, for error messages

    def _error(self, message: str, hint: str = "") -> DefinitionError:
        """A DuckDB error as a DefinitionError pointing at the line in the .sql file."""
        line = None
        found = re.search(r"LINE (\d+):", message)
        if found:
            header_lines = self.definition.text[: self.definition.text.find(self.definition.sql)].count("\n")
            line = header_lines + int(found.group(1))
        first = message.strip().splitlines()[0] if message.strip() else "invalid SQL"
        return DefinitionError(first + hint, self.definition.path, line)

    def columns_needed(self, schema: pa.Schema) -> list[str]:
        """The source columns the SQL reads: only these are fetched from the network."""
        if self._star:
            return list(schema.names)
        # A SQL that names no source column (a constant, or only unknown names) still needs
        # the row count, and the binder needs a table to say which name is unknown.
        return [name for name in schema.names if name.lower() in self._refs] or list(schema.names[:1])

    def _register(self, table: pa.Table) -> None:
        self._con.register("source", table)
        if not self._view_ready:
            try:
                self._con.execute(f"CREATE VIEW dataset AS {self.definition.sql}")
            except self._duckdb.Error as exc:
                raise self._error_with_columns(exc, table.schema) from exc
            self._view_ready = True

    def _error_with_columns(self, exc: Exception, schema: pa.Schema) -> DefinitionError:
        missing_column = "column" in str(exc).lower() and "not found" in str(exc).lower()
        names = (self._source_schema or schema).names
        hint = f"\nThe source has these columns: {', '.join(names)}" if missing_column else ""
        return self._error(str(exc), hint)

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
        except self._duckdb.Error as exc:
            raise self._error_with_columns(exc, schema) from exc
        if names != [OUTPUT_COLUMN] or types != ["VARCHAR"]:
            found = ", ".join(f"{n} {t}" for n, t in zip(names, types, strict=True))
            raise DefinitionError(
                f"must yield exactly one column, `text` of type VARCHAR; it yields: {found}",
                self.definition.path,
            )
        return columns

    def run(self, table: pa.Table) -> pa.Table:
        """The definition's result on one batch of source rows, in source order."""
        self._register(table)
        try:
            return self._con.sql("SELECT text FROM dataset").to_arrow_table()
        except self._duckdb.Error as exc:
            raise self._error_with_columns(exc, table.schema) from exc

    def close(self) -> None:
        self._con.close()
