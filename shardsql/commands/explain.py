"""`shardsql explain`: what a definition's filter does, measured on a sample of its source.

The WHERE clause is split into its top-level AND conditions (with DuckDB's own parser,
and turned back into SQL by DuckDB, so the conditions shown are exactly those that run).
On the first rows of the source we count rows and characters going in, what each
condition removes after the ones before it (the funnel) and on its own, and what comes
out. With a second definition (`--against`), the same is measured on the same sample
where the two share a source, and the outputs are compared, so a reviewer sees what an
edit changes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..autoresearch import TEXT_COLUMN
from ..definition import sandbox
from ..definition.evaluator import DUCKDB_ERRORS, Evaluator
from ..definition.model import Definition
from ..definition.statement import definition_tree
from ..errors import DefinitionError, describe
from ..source.decode import read_unit
from ..source.files import Source
from ..source.scan import open_scan
from ..source.units import units

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection


@dataclass
class Step:
    condition: str
    rows: int  # rows left after this condition and the ones before it
    chars: int
    removed: int  # by this condition, after the ones before it
    removed_alone: int  # by this condition on its own


@dataclass
class Funnel:
    definition: Definition
    sample_rows: int
    chars_in: int
    steps: list[Step] = field(default_factory=list)
    rows_out: int = 0
    chars_out: int = 0


@dataclass
class Comparison:
    """Outputs of two definitions on the same sample, compared as multisets of texts."""

    only_first: int
    only_second: int
    both: int


def _conditions(where: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The top-level AND conditions of a WHERE clause, flattened."""
    if where is None:
        return []
    if where.get("class") == "CONJUNCTION" and where.get("type") == "CONJUNCTION_AND":
        return [c for child in where["children"] for c in _conditions(child)]
    return [where]


def _and(conditions: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not conditions:
        return None
    if len(conditions) == 1:
        return conditions[0]
    return {"class": "CONJUNCTION", "type": "CONJUNCTION_AND", "alias": "", "query_location": 0,
            "children": conditions}  # fmt: skip


class _Statement:
    """A definition's parsed SELECT, from which variants with other WHERE clauses are made."""

    def __init__(self, con: DuckDBPyConnection, definition: Definition):
        self.con, self.definition = con, definition
        self.tree = definition_tree(con, definition)
        node = self.tree["statements"][0]["node"]
        # Only a plain SELECT ... WHERE splits into conditions; anything else (a UNION, say)
        # is measured whole.
        self.plain = node.get("type") == "SELECT_NODE"
        self.conditions = _conditions(node.get("where_clause")) if self.plain else []

    def sql(self, conditions: list[dict[str, Any]] | None) -> str:
        """The definition with only `conditions` in its WHERE (None: unchanged)."""
        if conditions is None:
            return self.definition.sql
        tree = copy.deepcopy(self.tree)
        tree["statements"][0]["node"]["where_clause"] = _and(conditions)
        sql: str = self.con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
        return sql

    def text(self, condition: dict[str, Any]) -> str:
        return self.sql([condition]).split(" WHERE ", 1)[1]


def sample(definition: Definition, columns_for: list[Definition], rows: int, revision: str | None = None,
           source_url: str | None = None) -> tuple[pa.Table, Source]:  # fmt: skip
    """The first `rows` rows of a definition's source, with the columns all of `columns_for` read."""

    def columns(schema: pa.Schema) -> list[str]:
        named: set[str] = set()
        for each in columns_for:
            evaluator = Evaluator(each)
            try:
                named.update(evaluator.check(schema))  # binds each definition: bad SQL fails here
            finally:
                evaluator.close()
        return [name for name in schema.names if name in named]

    url, revision_ = source_url or definition.source, revision or definition.revision
    scan = open_scan(url, revision_, columns, override=bool(revision))
    tables: list[pa.Table] = []
    for unit in units(scan.source, scan.columns, grow=True):
        tables.append(read_unit(scan, unit))
        if sum(t.num_rows for t in tables) >= rows:
            break
    table = pa.concat_tables(tables) if tables else scan.schema.empty_table()
    return table.slice(0, rows), scan.source


def funnel(definition: Definition, table: pa.Table) -> Funnel:
    """The filter funnel of `definition` on the rows of `table` (its source's sample)."""
    con = sandbox.connect()
    try:
        con.register("source", table)
        statement = _Statement(con, definition)

        def measure(sql: str) -> tuple[int, int]:
            count, chars = con.sql(f"SELECT count(*), coalesce(sum(length({TEXT_COLUMN})), 0) FROM ({sql})").fetchall()[
                0
            ]
            return int(count), int(chars)

        rows_in, chars_in = measure(statement.sql([])) if statement.plain else (table.num_rows, 0)
        result = Funnel(definition, table.num_rows, chars_in)
        before = rows_in
        for i, condition in enumerate(statement.conditions):
            rows, chars = measure(statement.sql(statement.conditions[: i + 1]))
            alone, _ = measure(statement.sql([condition]))
            result.steps.append(Step(statement.text(condition), rows, chars, before - rows, rows_in - alone))
            before = rows
        result.rows_out, result.chars_out = measure(definition.sql)
        return result
    except DUCKDB_ERRORS as exc:
        raise DefinitionError(describe(exc), definition.path) from None
    finally:
        con.close()


def compare(first: Definition, second: Definition, table: pa.Table) -> Comparison:
    """How the outputs of two definitions on the same rows differ (texts, with repeats)."""
    con = sandbox.connect()
    try:
        con.register("source", table)
        a, b = f"SELECT {TEXT_COLUMN} FROM ({first.sql})", f"SELECT {TEXT_COLUMN} FROM ({second.sql})"
        only_a = con.sql(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchall()[0][0]
        only_b = con.sql(f"SELECT count(*) FROM ({b} EXCEPT ALL {a})").fetchall()[0][0]
        both = con.sql(f"SELECT count(*) FROM ({a} INTERSECT ALL {b})").fetchall()[0][0]
        return Comparison(int(only_a), int(only_b), int(both))
    finally:
        con.close()
