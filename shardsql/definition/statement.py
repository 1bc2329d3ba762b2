"""One SELECT, parsed by DuckDB's own parser, with errors that point at a file and line.

A definition (or an ad-hoc query) must be exactly one SELECT. DuckDB's parse-tree
serializer, which the evaluator, explain and sql use to see what a statement reads, reports
a syntax error by character offset and anything but a SELECT as "Only SELECT statements
can be serialized to json!". Here both become messages a person can act on: the line of
the problem, counted in the .sql file (header included), and what was found instead.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError, QueryError
from .model import Definition

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

NOT_SELECT = "the definition must be one SELECT over source"
QUERY_NOT_SELECT = "the query must be one SELECT"


def _line(sql: str, offset: int) -> int:
    return sql[: max(offset, 0)].count("\n") + 1


def _parse(con: DuckDBPyConnection, sql: str, not_select: str) -> tuple[dict[str, Any] | None, str, int | None]:
    """(tree, '', None) for one SELECT, else (None, message, line within `sql`)."""
    try:
        statements = con.extract_statements(sql)
    except Exception as exc:  # DuckDB's ParserException: "...\n\nLINE 3: ..."
        text = str(exc).strip()
        found = re.search(r"LINE (\d+):", text)
        first = text.splitlines()[0].removeprefix("Parser Error: ") if text else "syntax error"
        return None, first, int(found.group(1)) if found else None
    cursor, starts = 0, []
    for statement in statements:
        stripped = statement.query.strip()
        at = sql.find(stripped, cursor) if stripped else cursor
        at = cursor if at < 0 else at
        starts.append(at)
        cursor = at + len(stripped)
    if len(statements) != 1:
        where = _line(sql, starts[1]) if len(starts) > 1 else None
        return None, f"{not_select}, found {len(statements)} statements", where
    kind = statements[0].type.name
    if kind != "SELECT":
        article = "an" if kind[:1] in "AEIOU" else "a"
        return None, f"{not_select}, found {article} {kind} statement", _line(sql, starts[0])
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    if tree.get("error"):
        position = tree.get("position")
        line = _line(sql, int(position)) if str(position or "").isdigit() else None
        message = tree.get("error_message") or "invalid SQL"
        if "Only SELECT" in message:
            message = not_select
        return None, message, line
    return tree, "", None


def body_line(definition: Definition, line: int) -> int:
    """A line of the definition's SQL as a line of its file (the header comes first)."""
    header_lines = definition.text[: definition.text.find(definition.sql)].count("\n")
    return header_lines + line


def definition_tree(con: DuckDBPyConnection, definition: Definition) -> dict[str, Any]:
    """The parse tree of a definition's one SELECT, or a DefinitionError at its file and line."""
    tree, message, line = _parse(con, definition.sql, NOT_SELECT)
    if tree is None:
        raise DefinitionError(message, definition.path, body_line(definition, line) if line else None)
    return tree


def query_tree(con: DuckDBPyConnection, sql: str) -> dict[str, Any]:
    """The parse tree of an ad-hoc query's one SELECT, or a QueryError naming the line."""
    tree, message, line = _parse(con, sql, QUERY_NOT_SELECT)
    if tree is None:
        where = f"line {line}: " if line and "\n" in sql.strip() else ""
        raise QueryError(where + message)
    return tree
