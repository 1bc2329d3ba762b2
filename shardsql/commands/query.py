"""Ad-hoc SQL over the datasets: `shardsql sql "SELECT ..."`.

Every dataset is a view named after it (`-` as `_`: `fineweb_edu_high`) holding what its
definition keeps, and its unfiltered source is `source.<name>`. With `--source URL` the
given files are the view `source`. The query is DuckDB's dialect and runs in the same
locked-down connection as a definition (definition/sandbox.py).

Reading stays lazy: only the datasets the query names are opened, only the columns it
names are fetched, and row groups are fetched as DuckDB asks for them, with a read-ahead
that starts at one row group and grows while the query keeps reading. So `LIMIT 5` reads
one row group of the columns it needs, and a count over one column reads only that column.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from ..definition import sandbox
from ..definition.analysis import columns_needed, table_refs
from ..definition.catalog import load_datasets
from ..definition.statement import definition_tree, query_tree
from ..errors import QueryError, ShardsqlError, SourceError, describe
from ..output.text_check import first_invalid_utf8
from ..run.scheduling import ordered
from ..source.decode import read_unit
from ..source.files import Source
from ..source.footers import read_footer
from ..source.scan import Scan, open_scan
from ..source.schemas import is_text
from ..source.units import Unit, units

SOURCE_SCHEMA = "source"  # `source.fineweb_edu`: a dataset's unfiltered source
DEFAULT_TABLE_ROWS = 20
READ_THREADS = 4  # units fetched and decoded ahead of the query, at most
STREAM_ROWS = 2048  # rows per batch pulled from DuckDB when streaming a result out
INTERRUPT_POLL_S = 0.1  # how often the main thread wakes while DuckDB works (to see Ctrl-C)
INTERRUPT_WAIT_S = 5.0  # how long an interrupted query may take to stop

R = TypeVar("R")


@dataclass
class QueryStream:
    """A result being computed: its schema, and its batches as DuckDB produces them."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    sources: list[Source] = field(default_factory=list)

    @property
    def bytes_fetched(self) -> int:
        return sum(s.counter.bytes for s in self.sources)


def lazy_reader(scan: Scan, failures: list[ShardsqlError] | None = None) -> pa.RecordBatchReader:
    """A stream of the scan's rows, fetched as they are pulled.

    A ShardsqlError raised while reading is also put in `failures`: DuckDB, which pulls the
    stream, reports it wrapped in its own message with a Python traceback."""
    pulled = [0]

    def batches() -> Iterator[pa.RecordBatch]:
        # Units grow from one row group, and the read-ahead is as large as what was already
        # consumed: nothing ahead for the first row group (a LIMIT may need no more).
        grown = units(scan.source, scan.columns, grow=True)
        ahead = lambda flight: sum(u.rows for u in flight) < max(pulled[0], 1)  # noqa: E731
        try:
            for unit, table in ordered(grown, lambda u: _valid_text(scan, u, read_unit(scan, u)), READ_THREADS, ahead):
                pulled[0] += unit.rows
                yield from table.to_batches()
        except ShardsqlError as exc:
            if failures is not None:
                failures.append(exc)
            raise

    return pa.RecordBatchReader.from_batches(scan.schema, batches())


def _valid_text(scan: Scan, unit: Unit, table: pa.Table) -> pa.Table:
    """`table` (a unit's rows) unless a text in it is not valid UTF-8: then a SourceError naming
    the file, the column and the row.

    DuckDB does not check the UTF-8 of the Arrow text it scans, then fails on such bytes in
    ways that depend on the query and on the Python: a cast to BLOB raises an error quoting the
    bytes, which Python 3.11.5+ turns into a UnicodeDecodeError and older ones into an error with
    no message at all; upper() raises an internal error that invalidates the connection."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        if not is_text(column.type):
            continue
        bad = first_invalid_utf8(column)
        if bad is None:
            continue
        row = ""
        if bad >= 0:
            before = read_footer(scan.source, unit.file).first_row(unit.row_groups[0])  # cached footer
            row = f" (row {before + bad:,} of the file)"
        raise SourceError(
            f"{unit.file.url}: column '{name}' holds text that is not valid UTF-8{row}, which the query cannot "
            "read; leave that column out, or query the other files with --source"
        )
    return table


class Session:
    """A locked-down DuckDB connection where datasets and sources appear as views on demand."""

    def __init__(self, revision: str | None = None, source_url: str | None = None):
        self.con = sandbox.connect(threads=None)  # an ad-hoc query may use every core
        self.revision, self.source_url = revision, source_url
        self.sources: list[Source] = []
        self.failures: list[ShardsqlError] = []  # raised inside a source stream that DuckDB pulls
        self.truncated = False  # the result had more rows than the limit
        self._pool: ThreadPoolExecutor | None = None  # runs DuckDB calls off the main thread (see _interruptible)
        self.columns: dict[str, list[str]] = {}  # each view the query reads, as the user names it: its columns

    def _columns_of(self, view: str) -> Callable[[pa.Schema], list[str]]:
        """Note a source view's columns (its first file's schema) for an error that names a missing one."""

        def noted(schema: pa.Schema) -> list[str]:
            self.columns[view] = list(schema.names)
            return []

        return noted

    def _register_source(self, name: str, url: str, revision: str | None, trees: list[dict[str, Any]],
                         view: str) -> None:  # fmt: skip
        """Open a source and register it as `name`, reading only the columns the parse trees name;
        `view`: what the query calls it (its columns are listed where the query names a missing one)."""
        note = self._columns_of(view)
        needed = lambda schema: note(schema) + columns_needed(trees, list(schema.names))  # noqa: E731
        scan = open_scan(url, revision, needed, override=bool(self.revision))  # --revision wins
        self.sources.append(scan.source)
        self.con.register(name, lazy_reader(scan, self.failures))

    def prepare(self, sql: str) -> None:
        """Register exactly the views the query reads."""
        tree = query_tree(self.con, sql)  # one SELECT, or a QueryError naming the line
        refs = set(table_refs(tree))
        by_view = {d.view_name: d for d in load_datasets()}
        if self.source_url and ("", SOURCE_SCHEMA) in refs:
            self._register_source("__source", self.source_url, self.revision, [tree], SOURCE_SCHEMA)
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
                self._register_source(f"__raw_{table}", url, revision, [tree], f"{SOURCE_SCHEMA}.{table}")
                self.con.execute(f'CREATE VIEW "{SOURCE_SCHEMA}"."{table}" AS SELECT * FROM "__raw_{table}"')
            elif schema_name in ("", "main"):
                own = definition_tree(self.con, definition)
                self._register_source(f"__src_{table}", url, revision, [tree, own], f"source.{table}")
                self.columns[table] = ["text"]  # a dataset's view: its definition's one column
                self.con.execute(
                    f'CREATE VIEW "{table}" AS WITH source AS (SELECT * FROM "__src_{table}") '
                    f"SELECT * FROM ({definition.sql})"
                )

    def stream(self, sql: str, limit: int | None = None) -> QueryStream:
        """The query's result as a stream of record batches (at most `limit` rows), pulled
        from DuckDB as the caller consumes them: memory stays bounded whatever the size."""
        self.prepare(sql)
        wrapped = sql if limit is None else f"SELECT * FROM ({sql}) LIMIT {int(limit) + 1}"
        try:
            relation = self.con.sql(wrapped)
            # to_arrow_reader in newer DuckDB; fetch_record_batch (deprecated there) in older ones.
            reader = self._interruptible(getattr(relation, "to_arrow_reader", relation.fetch_record_batch), STREAM_ROWS)
        except (duckdb.Error, pa.ArrowException, RuntimeError, UnicodeDecodeError) as exc:
            raise self._error(exc) from None
        return QueryStream(reader.schema, self._batches(reader, limit), self.sources)

    def _batches(self, reader: pa.RecordBatchReader, limit: int | None) -> Iterator[pa.RecordBatch]:
        left = limit
        while True:
            try:
                batch = self._interruptible(reader.read_next_batch)
            except StopIteration:
                return
            # OSError: pyarrow's reader reports a failure of DuckDB's stream after the first
            # batch (a source stream that raised while DuckDB read ahead) as a plain OSError.
            except (duckdb.Error, pa.ArrowException, OSError, RuntimeError, UnicodeDecodeError) as exc:
                raise self._error(exc) from None
            if left is not None:
                if batch.num_rows > left:
                    batch = batch.slice(0, left)
                    self.truncated = True
                left -= batch.num_rows
            if batch.num_rows:
                yield batch
            if left == 0 and self.truncated:
                return

    def _interruptible(self, call: Callable[..., R], *args: object) -> R:
        """`call(*args)` on a worker thread, so that Ctrl-C stops DuckDB promptly.

        While DuckDB computes, the main thread would sit in C code where Python cannot run
        its SIGINT handler (DuckDB notices the signal only at some points, sometimes never);
        waiting here in Python, we get the KeyboardInterrupt at once and interrupt DuckDB."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="shardsql-query")
        future = self._pool.submit(call, *args)
        try:
            while True:
                try:
                    return future.result(timeout=INTERRUPT_POLL_S)
                except TimeoutError:
                    continue
        except KeyboardInterrupt:
            self.con.interrupt()
            # The query was interrupted: its own error ("Query interrupted") does not matter.
            with contextlib.suppress(BaseException):
                future.result(timeout=INTERRUPT_WAIT_S)
            raise

    def _error(self, exc: Exception) -> BaseException:
        """A DuckDB (or Arrow) error as one line; our own error from a source stream as itself."""
        message = describe(exc)  # also when DuckDB's message was not valid UTF-8 (a UnicodeDecodeError)
        if "interrupted" in message.lower() and not isinstance(exc, (duckdb.Error, UnicodeDecodeError)):
            return KeyboardInterrupt()  # DuckDB turns Ctrl-C during a query into RuntimeError("Query interrupted")
        if self.failures:
            # A SourceError raised while DuckDB pulled a stream reaches us wrapped in DuckDB's
            # message with a Python traceback; the original is the one worth showing.
            return self.failures[0]
        if "already been consumed" in message:
            # Each view streams its source once; a query that reads it twice needs a copy.
            message = (
                "the query reads the same dataset more than once; each is streamed once. Name it once "
                "in a materialized CTE: WITH t AS MATERIALIZED (SELECT ... FROM source.x) SELECT ... FROM t"
            )
        if self.columns and "column" in message.lower() and "not found" in message.lower():
            # A misspelt column: the columns of what the query reads, as convert lists them.
            listed = "; ".join(f"{view}: {', '.join(names)}" for view, names in sorted(self.columns.items()))
            message += f"\nThe columns of what the query reads: {listed}"
        if "does not exist" in message and "Table" in message:
            views = ", ".join(d.view_name for d in load_datasets())
            message += f"\nDatasets: {views} (filtered) and source.<name> (unfiltered)"
            if self.source_url:
                message += "; the --source files are the view `source`"
        return QueryError(message)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.con.close()


@contextlib.contextmanager
def stream_query(
    sql: str, *, limit: int | None = None, revision: str | None = None, source_url: str | None = None
) -> Iterator[tuple[QueryStream, Session]]:
    """Run one ad-hoc SELECT and stream its result; the session closes when the block ends.

    `session.truncated` says, once the batches are consumed, whether rows beyond `limit` exist."""
    session = Session(revision, source_url)
    try:
        yield session.stream(sql.strip().rstrip(";"), limit), session
    finally:
        session.close()
