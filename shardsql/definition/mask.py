"""A kept-column definition's WHERE as a mask query: one boolean a source row.

A definition that keeps a source column as it is (`SELECT text FROM source WHERE ...`,
analysis.kept_column) needs from DuckDB only its WHERE, a boolean a row: the kept texts are
taken from the source's own column (evaluator.py). `mask_sql` writes that query from
DuckDB's parse tree, and DuckDB writes it back as SQL.

Every built-in definition filters on `length(text) >= 50`, and DuckDB counts characters
by reading every byte of every text: on FineWeb-Edu-shaped text that was two thirds of the
mask's cost (0.27 of 0.40 CPU-s for a file of 120,000 texts, 555 MB). A text's byte length
is free (Arrow's offsets), and a character is 1 to 4 bytes of UTF-8, so the byte length
settles most comparisons: a text of fewer than k bytes has fewer than k characters, and
one of 4k bytes or more has at least k. So `length(col) >= k` on a text column becomes

    CASE WHEN strlen(col) < k THEN false WHEN strlen(col) >= 4 * k THEN true
         ELSE length(col) >= k END

and likewise `>`, `<`, `<=` and the constant on the left; DuckDB counts characters only
for texts between k and 4k bytes. A NULL text takes the ELSE, as before. The two agree on
every valid UTF-8 text; where a text is not valid UTF-8, DuckDB's character count is not
a count of characters either, and output/text_check.py stops the conversion on any such
text that is kept.

Only a comparison of `length` (or its names `len`, `char_length`, `character_length`) of
a column the source holds as text with an integer literal is rewritten; anything else is
left as written.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection
from typing import Any

import duckdb

LENGTH_FUNCTIONS = frozenset({"length", "len", "char_length", "character_length"})
UTF8_MAX_BYTES = 4  # the most bytes one character takes in UTF-8
# `length(x) OP k` read as "at least k' characters" (or its negation): k' = k + shift.
_AT_LEAST = {  # comparison, length on the left: (shift, negated)
    "COMPARE_GREATERTHANOREQUALTO": (0, False),
    "COMPARE_GREATERTHAN": (1, False),
    "COMPARE_LESSTHAN": (0, True),
    "COMPARE_LESSTHANOREQUALTO": (1, True),
}
_MIRROR = {  # `k OP length(x)` is `length(x) MIRROR k`
    "COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
    "COMPARE_GREATERTHAN": "COMPARE_LESSTHAN",
    "COMPARE_LESSTHAN": "COMPARE_GREATERTHAN",
    "COMPARE_LESSTHANOREQUALTO": "COMPARE_GREATERTHANOREQUALTO",
}
_LARGEST = 1 << 40  # thresholds past this are left as written (4k stays a BIGINT)
_ARGUMENT, _ORIGINAL = "__shardsql_length_argument", "__shardsql_length_original"


def mask_sql(
    con: duckdb.DuckDBPyConnection, statement: dict[str, Any], *, text_columns: Collection[str] = ()
) -> str | None:
    """The WHERE of a definition with `kept_column` as a query of one boolean a source row
    (TRUE: kept), written back as SQL by DuckDB itself; None when it has no WHERE.

    Length comparisons on `text_columns` (source columns held as text) are answered from
    the byte length where it settles them (this module's docstring)."""
    node = statement["node"]
    if not node.get("where_clause"):
        return None
    where = _rewrite(con, node["where_clause"], {name.lower() for name in text_columns})
    tree = {"error": False, "statements": [{"node": {**node, "select_list": [where], "where_clause": None}}]}
    sql: str = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
    return sql


def _rewrite(con: duckdb.DuckDBPyConnection, node: Any, text_columns: set[str]) -> Any:
    """`node` with each length comparison on a text column replaced (a new tree)."""
    if isinstance(node, list):
        return [_rewrite(con, item, text_columns) for item in node]
    if not isinstance(node, dict):
        return node
    found = _length_comparison(node, text_columns)
    if found is not None:
        argument, at_least, negated = found
        return _settled_by_bytes(con, node, argument, at_least, negated)
    return {key: _rewrite(con, value, text_columns) for key, value in node.items()}


def _length_comparison(node: dict[str, Any], text_columns: set[str]) -> tuple[dict[str, Any], int, bool] | None:
    """(the column, k, negated) when `node` says "length(column) >= k" (negated: "< k")."""
    if node.get("class") != "COMPARISON" or node.get("type") not in _AT_LEAST:
        return None
    comparison, function, constant = node["type"], node.get("left"), node.get("right")
    if _integer(function) is not None:  # the constant on the left
        comparison, function, constant = _MIRROR[comparison], constant, function
    bound = _integer(constant)
    if bound is None or not isinstance(function, dict) or function.get("class") != "FUNCTION":
        return None
    if function.get("function_name", "").lower() not in LENGTH_FUNCTIONS or function.get("schema"):
        return None
    arguments = function.get("arguments") or []
    if len(arguments) != 1 or function.get("distinct") or function.get("filter") or arguments[0].get("name"):
        return None
    argument = arguments[0].get("expression") or {}
    names = [name.lower() for name in argument.get("column_names") or []]
    if argument.get("class") != "COLUMN_REF" or not names or names[-1] not in text_columns:
        return None
    if len(names) > 2 or (len(names) == 2 and names[0] != "source"):
        return None  # a struct field, or a name the tree cannot place: left as written
    shift, negated = _AT_LEAST[comparison]
    at_least = bound + shift
    return (argument, at_least, negated) if abs(at_least) <= _LARGEST else None


def _integer(node: Any) -> int | None:
    """The value of an integer literal node, else None."""
    if not isinstance(node, dict) or node.get("class") != "CONSTANT":
        return None
    literal = node.get("literal") or {}
    text = literal.get("text")
    if literal.get("kind") != "INTEGER" or not isinstance(text, str):
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _settled_by_bytes(
    con: duckdb.DuckDBPyConnection, original: dict[str, Any], argument: dict[str, Any], at_least: int, negated: bool
) -> dict[str, Any]:
    """The CASE of this module's docstring, as a parse tree: the byte length first, then
    the `original` comparison itself for texts the byte length does not settle."""
    fewer, enough = ("true", "false") if negated else ("false", "true")
    sql = (
        f"SELECT CASE WHEN strlen({_ARGUMENT}) < {at_least} THEN {fewer} "
        f"WHEN strlen({_ARGUMENT}) >= {UTF8_MAX_BYTES * at_least} THEN {enough} ELSE {_ORIGINAL} END"
    )
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    case = tree["statements"][0]["node"]["select_list"][0]
    filled: dict[str, Any] = _fill(case, {_ARGUMENT: argument, _ORIGINAL: original})
    return filled


def _fill(node: Any, values: dict[str, dict[str, Any]]) -> Any:
    """`node` with each column reference named in `values` replaced by a copy of its value."""
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    names = node.get("column_names") or []
    if node.get("class") == "COLUMN_REF" and len(names) == 1 and names[0] in values:
        return copy.deepcopy(values[names[0]])
    return {key: _fill(value, values) for key, value in node.items()}
