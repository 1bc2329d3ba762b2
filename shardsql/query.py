"""Ad-hoc SQL over the datasets: `shardsql sql "SELECT ..."`.

Every dataset is a view named after it (`-` as `_`: `fineweb_edu_high`) holding what its
definition keeps, and its unfiltered source is `source.<name>`. With `--source URL` the
given files are the view `source`. The query is DuckDB's dialect and runs locked down
like a definition (no file or network access of its own).

Reading stays lazy: only the datasets the query names are opened, only the columns it
names are fetched, and row groups are fetched as DuckDB asks for them, with a read-ahead
that starts at one row group and grows while the query keeps reading. So `LIMIT 5` reads
one row group of the columns it needs, and a count over one column reads only that column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import ShardsqlError

if TYPE_CHECKING:
    import pyarrow as pa

    from .sources import Source

SOURCE_SCHEMA = "source"  # `source.fineweb_edu`: a dataset's unfiltered source
DEFAULT_TABLE_ROWS = 20


class QueryError(ShardsqlError):
    """The ad-hoc query is invalid or failed."""


@dataclass
class QueryResult:
    table: pa.Table
    truncated: bool  # more rows exist than shown
    sources: list[Source] = field(default_factory=list)

    @property
    def bytes_fetched(self) -> int:
        return sum(s.counter.bytes for s in self.sources)


def parse_tree(con, sql: str) -> dict:
    """DuckDB's own parse tree of `sql` (SELECT statements only)."""
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    if tree.get("error"):
        raise QueryError(tree.get("error_message", "invalid SQL"))
    return tree


def table_refs(tree: object) -> list[tuple[str, str]]:
    """(schema, table) of every table the query reads, lower-cased; schema '' when not given."""
    refs, stack = [], [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "BASE_TABLE" and item.get("table_name"):
                refs.append((item.get("schema_name", "").lower(), item["table_name"].lower()))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return refs


def lazy_reader(source: Source, columns: list[str], schema: pa.Schema) -> pa.RecordBatchReader:
    """A stream of the source's row groups (only `columns`), fetched as they are pulled."""
    import pyarrow as pa

    from .schemas import conform
    from .sources import iter_row_groups

    pulled = [0]

    def batches() -> Iterator[pa.RecordBatch]:
        # Read-ahead as large as what was already consumed: nothing ahead for the first row
        # group (a LIMIT may need no more), then growing for scans.
        for group in iter_row_groups(source, columns, lambda: max(pulled[0], 1)):
            pulled[0] += group.num_rows
            for piece in group.batches():
                yield from conform(piece, schema, group.file.url).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


class Session:
    """A locked-down DuckDB connection where datasets and sources appear as views on demand."""

    def __init__(self, revision: str | None = None, source_url: str | None = None):
        import duckdb

        self._duckdb = duckdb
        self.con = duckdb.connect(":memory:")
        self.revision, self.source_url = revision, source_url
        self.sources: list[Source] = []

    def _register_source(self, name: str, url: str, revision: str | None, names: set[str], star: bool) -> None:
        """Open a source and register it as `name`, reading only the columns in `names`."""
        from .schemas import source_schema
        from .sources import open_source, read_footer

        source = open_source(url, revision)
        self.sources.append(source)
        footer = read_footer(source, source.files[0])
        schema = footer.metadata.schema.to_arrow_schema()
        columns = list(schema.names) if star else [n for n in schema.names if n.lower() in names]
        # count(*) names no column but needs the row counts: read the cheapest column.
        columns = columns or [footer.cheapest_column()]
        self.con.register(name, lazy_reader(source, columns, source_schema(source, columns)))

    def prepare(self, sql: str) -> None:
        """Register exactly the views the query reads, then lock the connection."""
        from .catalog import load_all
        from .engine import column_refs

        tree = parse_tree(self.con, sql)
        if len(tree["statements"]) != 1:
            raise QueryError(f"give exactly one SELECT, found {len(tree['statements'])} statements")
        names, star = column_refs(tree)
        refs = set(table_refs(tree))
        by_view = {d.view_name: d for d in load_all()}
        if self.source_url and ("", SOURCE_SCHEMA) in refs:
            self._register_source("__source", self.source_url, self.revision, names, star)
            self.con.execute(f'CREATE VIEW "{SOURCE_SCHEMA}" AS SELECT * FROM __source')
        if any(schema == SOURCE_SCHEMA for schema, _ in refs):
            self.con.execute(f'CREATE SCHEMA "{SOURCE_SCHEMA}"')
        for schema_name, table in sorted(refs):
            definition = by_view.get(table)
            if definition is None:
                continue
            url = self.source_url or definition.source
            revision = self.revision or definition.revision
            if schema_name == SOURCE_SCHEMA:
                self._register_source(f"__raw_{table}", url, revision, names, star)
                self.con.execute(f'CREATE VIEW "{SOURCE_SCHEMA}"."{table}" AS SELECT * FROM "__raw_{table}"')
            elif schema_name in ("", "main"):
                own, own_star = column_refs(parse_tree(self.con, definition.sql))
                self._register_source(f"__src_{table}", url, revision, names | own, star or own_star)
                self.con.execute(
                    f'CREATE VIEW "{table}" AS WITH source AS (SELECT * FROM "__src_{table}") '
                    f"SELECT * FROM ({definition.sql})"
                )
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def run(self, sql: str, limit: int | None = None) -> QueryResult:
        self.prepare(sql)
        wrapped = sql if limit is None else f"SELECT * FROM ({sql}) LIMIT {int(limit) + 1}"
        try:
            table = self.con.sql(wrapped).to_arrow_table()
        except self._duckdb.Error as exc:
            message = str(exc).strip().splitlines()[0]
            if "already been consumed" in message:
                # Each view streams its source once; a query that reads it twice needs a copy.
                message = (
                    "the query reads the same dataset more than once; each is streamed once. Name it once "
                    "in a materialized CTE: WITH t AS MATERIALIZED (SELECT ... FROM source.x) SELECT ... FROM t"
                )
            if "does not exist" in message and "Table" in message:
                from .catalog import load_all

                views = ", ".join(d.view_name for d in load_all())
                message += f"\nDatasets: {views} (filtered) and source.<name> (unfiltered)"
                if self.source_url:
                    message += "; the --source files are the view `source`"
            raise QueryError(message) from None
        except ShardsqlError:
            raise
        truncated = limit is not None and table.num_rows > limit
        return QueryResult(table.slice(0, limit) if truncated else table, truncated, self.sources)

    def close(self) -> None:
        self.con.close()


def run_query(
    sql: str, limit: int | None = None, revision: str | None = None, source_url: str | None = None
) -> QueryResult:
    """Run one ad-hoc SELECT over the datasets; `limit` caps the rows returned."""
    session = Session(revision, source_url)
    try:
        return session.run(sql.strip().rstrip(";"), limit)
    finally:
        session.close()
