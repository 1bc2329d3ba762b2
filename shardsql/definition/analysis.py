"""A definition's parse tree, read: which path it takes, which columns and tables it reads.

A definition means what its SQL means over the whole source, read as one view in file
and row order. Two paths give that meaning:

* **row by row**: a projection and a WHERE over `source` with scalar functions only. Its
  result over the whole source is the concatenation of its results over consecutive
  pieces of the source, so the source is split into units (source/units.py) that are
  fetched, decoded and filtered independently, in parallel, and the conversion stops
  reading once the shards are full. All built-in definitions are such.
* **whole source**: anything else (DISTINCT, ORDER BY, LIMIT, aggregates, windows,
  subqueries, joins, set operations, CTEs) runs as one DuckDB query over a stream of the
  units, and DuckDB decides how much of the source it needs.

The classifier reads DuckDB's own parse tree: no second parser can disagree with
DuckDB about what the SQL says. When in doubt it answers "whole source", which is always
correct, only slower. `walk` is the one walker over a parse tree; everything here, and
the query command's view registration, reads the tree through it.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import sandbox

SOURCE_VIEW = "source"
SCALAR_KINDS = frozenset({"scalar", "macro"})


def row_by_row_hint(column: str | None = None) -> str:
    """How a rename in a subquery is written row by row, with the column the definition renames
    (`body` where it is not one column)."""
    name = column or "body"
    name = name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'
    select = "SELECT text" if name == "text" else f"SELECT {name} AS text"
    return (
        "To run row by row, select from source itself: rename in the SELECT list and filter on the source's "
        f"column names, e.g. {select} FROM source WHERE length({name}) >= 50"
    )


@dataclass(frozen=True)
class Shape:
    """Which path a definition takes, and why, in words for `show` and the progress line."""

    row_by_row: bool
    reason: str
    ordered: bool = False  # a top-level ORDER BY: the order is the definition's, a conversion keeps it

    @property
    def path(self) -> str:
        return "row by row" if self.row_by_row else "whole source"


def walk(node: object) -> Iterator[dict[str, Any]]:
    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


_kinds: dict[str, frozenset[str]] | None = None
_kinds_lock = threading.Lock()


def _function_kinds() -> dict[str, frozenset[str]]:
    """DuckDB's built-in functions by name: the kinds each name has (scalar, aggregate, ...).
    Read once a process (30 ms); a caller that comes while it is being read waits for it."""
    global _kinds
    with _kinds_lock:
        if _kinds is None:
            con = sandbox.connect()  # (runs no user SQL: a connection to the process's database)
            try:
                kinds: dict[str, set[str]] = {}
                for name, kind in con.execute("SELECT function_name, function_type FROM duckdb_functions()").fetchall():
                    kinds.setdefault(name.lower(), set()).add(kind)
                _kinds = {name: frozenset(k) for name, k in kinds.items()}
            finally:
                con.close()
        return _kinds


def read_functions_ahead() -> None:
    """Start reading DuckDB's function list (`_function_kinds`, which classifying a definition
    needs) and its database on a thread. DuckDB starts them without the GIL, so a command that
    imports its other modules meanwhile (cli.py) does not wait for them: 75 to 90 ms of a
    fresh process otherwise. Not a daemon: a command that fails at once waits for it to end.
    A failure here says nothing (no traceback on a thread): the caller who needs the list reads
    it again and raises."""

    def read() -> None:
        with contextlib.suppress(Exception):
            _function_kinds()

    threading.Thread(target=read, name="shardsql-duckdb-functions").start()


_MODIFIERS = {"DISTINCT_MODIFIER": "DISTINCT", "ORDER_MODIFIER": "ORDER BY", "LIMIT_MODIFIER": "LIMIT",
              "LIMIT_PERCENT_MODIFIER": "LIMIT"}  # fmt: skip


def classify(statement: dict[str, Any]) -> Shape:
    """Row by row, or whole source (with the first construct that makes it so); and whether
    the statement's own ORDER BY fixes its output's order."""
    shape = _classify(statement)
    modifiers = statement["node"].get("modifiers") or []
    if any(m.get("type") == "ORDER_MODIFIER" for m in modifiers):
        return Shape(shape.row_by_row, shape.reason, ordered=True)
    return shape


def _classify(statement: dict[str, Any]) -> Shape:
    node = statement["node"]

    def whole(what: str) -> Shape:
        return Shape(False, f"{what}: reads the whole source")

    if node.get("type") != "SELECT_NODE":
        return whole("a set operation (UNION, EXCEPT, INTERSECT)")
    if node.get("cte_map", {}).get("map"):
        return whole("a WITH clause")
    for modifier in node.get("modifiers", []):
        return whole(_MODIFIERS.get(modifier.get("type"), modifier.get("type", "a modifier")))
    source = node.get("from_table") or {}
    if source.get("type") == "JOIN":
        return whole("a join")
    if source.get("type") == "SUBQUERY":
        inner = (source.get("subquery") or {}).get("node")
        if isinstance(inner, dict) and _classify({"node": inner}).row_by_row:
            # Often a rename (SELECT text FROM (SELECT body AS text FROM source) WHERE ...): one SELECT does it.
            hint = row_by_row_hint(kept_column({"node": inner}))
            return Shape(False, f"a subquery in FROM: reads the whole source. {hint}")
        return whole("a subquery")
    if source.get("type") != "BASE_TABLE" or source.get("table_name", "").lower() != SOURCE_VIEW:
        return whole("a FROM clause other than `source`")
    if source.get("sample") or node.get("sample"):
        return whole("TABLESAMPLE")
    grouped = node.get("aggregate_handling", "STANDARD_HANDLING") != "STANDARD_HANDLING"
    if grouped or node.get("group_expressions") or node.get("group_sets"):
        return whole("GROUP BY")
    if node.get("having"):
        return whole("HAVING")
    if node.get("qualify"):
        return whole("QUALIFY")
    kinds = _function_kinds()
    for item in walk([node.get("select_list"), node.get("where_clause")]):
        cls = item.get("class")
        if cls == "SUBQUERY":
            return whole("a subquery")
        if cls == "WINDOW":
            return whole(f"the window function {item.get('function_name', '')}()".replace(" ()", ""))
        if cls == "FUNCTION":
            name = item.get("function_name", "").lower()
            if item.get("distinct") or item.get("filter") or (item.get("order_bys") or {}).get("orders"):
                return whole(f"the aggregate {name}()")
            found = kinds.get(name, frozenset())
            if item.get("schema") or not found & SCALAR_KINDS or found & {"aggregate", "window"}:
                kind = "aggregate" if "aggregate" in found else "function"
                return whole(f"the {kind} {name}()")
    return Shape(True, "a projection and a filter over source: stops reading when the shards are full")


def kept_column(statement: dict[str, Any]) -> str | None:
    """The source column that a row-by-row definition keeps as it is, as `text`, when it keeps
    nothing else (`SELECT text FROM source WHERE ...`, `SELECT body AS text FROM source`): its
    WHERE then runs as a mask over the source's rows and the texts never pass through DuckDB
    (Evaluator.run). None for any other definition."""
    node = statement["node"]
    items = node.get("select_list") or []
    if not _classify(statement).row_by_row or node.get("modifiers") or len(items) != 1:
        return None
    item = items[0]
    names = item.get("column_names") or []
    if item.get("class") != "COLUMN_REF" or not 1 <= len(names) <= 2 or item.get("alias", "") not in ("", "text"):
        return None
    if len(names) == 2 and names[0].lower() != SOURCE_VIEW:
        return None
    return names[-1] if item.get("alias") == "text" or names[-1] == "text" else None


def columns_needed(tree: object, schema_names: list[str]) -> list[str]:
    """The source columns a parse tree reads, in schema order: only these are fetched.

    A reference names a column (`text`), a struct field of one (`meta.body`), a column
    through its table (`source.text`, `s.meta.body`), or a whole row (`source`, `s`). A
    whole row, `*`, `COLUMNS(...)` or anything naming a table alone reads every column.
    Other names that are no column (select aliases, lambda parameters) read nothing.
    The caller picks a column when none is named: `count(*)` still needs the row count.
    """
    columns = {name.lower(): name for name in schema_names}
    nodes = list(walk(tree))
    tables = {SOURCE_VIEW}
    for item in nodes:
        if item.get("type") == "BASE_TABLE":
            tables |= {item.get("table_name", "").lower(), item.get("alias", "").lower()} - {""}
    wanted: set[str] = set()
    for item in nodes:
        if item.get("class") == "STAR":
            return list(schema_names)  # *, COLUMNS(...), source.*
        if item.get("class") != "COLUMN_REF" or not item.get("column_names"):
            continue
        parts = [p.lower() for p in item["column_names"]]
        if parts[0] in columns:
            wanted.add(parts[0])  # a column, or a struct field of it
        elif parts[0] in tables and len(parts) > 1 and parts[1] in columns:
            wanted.add(parts[1])  # through its table: source.text, s.meta.body
        elif parts[0] in tables:
            return list(schema_names)  # a whole row (or a name the tree cannot place): read everything
    return [n for n in schema_names if n.lower() in wanted]  # empty: the SQL names no column


def table_refs(tree: object) -> list[tuple[str, str]]:
    """(schema, table) of every table the tree reads, lower-cased; schema '' when not given."""
    return [
        (item.get("schema_name", "").lower(), item["table_name"].lower())
        for item in walk(tree)
        if item.get("type") == "BASE_TABLE" and item.get("table_name")
    ]


def reads_source_twice(tree: object) -> bool:
    """Whether the tree reads `source` more than once (a self-join, a subquery over source)."""
    return sum(1 for _, table in table_refs(tree) if table == SOURCE_VIEW) > 1
