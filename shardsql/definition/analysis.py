"""The plan of a conversion: which path a definition takes, which columns it reads, and
the source split into units of work, in order.

A definition means what its SQL means over the whole source, read as one view in file
and row order. Two paths give that meaning:

* **row by row**: a projection and a WHERE over `source` with scalar functions only. Its
  result over the whole source is the concatenation of its results over consecutive
  pieces of the source, so the source is split into units (runs of row groups of one
  file) that are fetched, decoded and filtered independently, in parallel, and the
  conversion stops reading once the shards are full. All built-in definitions are such.
* **whole source**: anything else (DISTINCT, ORDER BY, LIMIT, aggregates, windows,
  subqueries, joins, set operations, CTEs) runs as one DuckDB query over a stream of the
  units, and DuckDB decides how much of the source it needs.

The classifier reads DuckDB's own parse tree: no second parser can disagree with the
engine about what the SQL says. When in doubt it answers "whole source", which is always
correct, only slower.

A unit's byte ranges are planned here too: the needed column chunks of its row groups,
merged across the gaps between them where that costs few extra bytes, so that a unit is
one or a few large requests instead of one per column chunk (the Hub rations requests).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sources import ParquetFooter, Source, SourceFile

SOURCE_VIEW = "source"
# A unit closes once its needed column chunks reach this many compressed bytes: large
# requests (the Hub counts requests, not bytes) and enough rows to amortise one DuckDB call.
UNIT_BYTES = 8 << 20
UNIT_MAX_ROWS = 1 << 17  # ... or this many rows (tiny columns): bounds a unit's decoded size
# Gaps between needed chunks are fetched too, smallest first, while the bytes fetched stay
# within this factor of the bytes needed ...
GAP_BUDGET = 1.15
SMALL_GAP = 8 << 10  # ... and a gap this small is always cheaper to fetch than to skip
SCALAR_KINDS = frozenset({"scalar", "macro"})


@dataclass(frozen=True)
class Shape:
    """Which path a definition takes, and why, in words for `show` and the progress line."""

    row_by_row: bool
    reason: str

    @property
    def path(self) -> str:
        return "row by row" if self.row_by_row else "whole source"


def walk(node: object) -> Iterator[dict]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


@cache
def _function_kinds() -> dict[str, frozenset[str]]:
    """DuckDB's built-in functions by name: the kinds each name has (scalar, aggregate, ...)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        kinds: dict[str, set[str]] = {}
        for name, kind in con.execute("SELECT function_name, function_type FROM duckdb_functions()").fetchall():
            kinds.setdefault(name.lower(), set()).add(kind)
        return {name: frozenset(k) for name, k in kinds.items()}
    finally:
        con.close()


_MODIFIERS = {"DISTINCT_MODIFIER": "DISTINCT", "ORDER_MODIFIER": "ORDER BY", "LIMIT_MODIFIER": "LIMIT",
              "LIMIT_PERCENT_MODIFIER": "LIMIT"}  # fmt: skip


def classify(statement: dict) -> Shape:
    """Row by row, or whole source (with the first construct that makes it so)."""
    node = statement["node"]
    whole = lambda what: Shape(False, f"{what}: reads the whole source")  # noqa: E731
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


@dataclass(frozen=True)
class Unit:
    """A run of consecutive row groups of one file: fetched, decoded and filtered as one."""

    file_index: int
    file: SourceFile
    row_groups: tuple[int, ...]
    rows: int
    needed_bytes: int  # compressed bytes of the needed column chunks
    ranges: tuple[tuple[int, int], ...]  # the byte ranges to fetch, merged

    @property
    def fetch_bytes(self) -> int:
        return sum(end - start for start, end in self.ranges)

    @property
    def start(self) -> tuple[int, int]:
        return self.file_index, self.row_groups[0]


def chunk_ranges(footer: ParquetFooter, row_group: int, columns: list[str]) -> list[tuple[int, int]]:
    """Byte ranges [start, end) of the column chunks of `columns` in one row group."""
    rg = footer.metadata.row_group(row_group)
    wanted = {c.lower() for c in columns}
    ranges = []
    for j in range(rg.num_columns):
        chunk = rg.column(j)
        if chunk.path_in_schema.split(".")[0].lower() not in wanted:
            continue
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and chunk.dictionary_page_offset is not None:
            start = min(start, chunk.dictionary_page_offset)
        ranges.append((start, start + chunk.total_compressed_size))
    return ranges


def coalesce(ranges: list[tuple[int, int]], budget: float = GAP_BUDGET) -> list[tuple[int, int]]:
    """Merge byte ranges into few requests: overlapping and small gaps always, then the
    smallest gaps first while the total fetched stays within `budget` x the bytes needed."""
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + SMALL_GAP:
            merged[-1][1] = max(end, merged[-1][1])
        else:
            merged.append([start, end])
    needed = sum(end - start for start, end in ranges)
    spare = budget * needed - sum(end - start for start, end in merged)
    gaps = sorted((merged[i + 1][0] - merged[i][1], i) for i in range(len(merged) - 1))
    joined = set()
    for gap, i in gaps:
        if gap > spare:
            break
        spare -= gap
        joined.add(i)
    out: list[tuple[int, int]] = []
    for i, (start, end) in enumerate(merged):
        if i - 1 in joined:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def units(source: Source, columns: list[str], start: tuple[int, int] = (0, 0), grow: bool = False) -> Iterator[Unit]:
    """The source's row groups from `start` (file index, row group), in order, as units.

    With `grow`, the first unit is one row group and each next one up to twice as large
    (until UNIT_BYTES): an interactive query that needs only the first rows reads only
    those. Footers are read as the iteration reaches each file, so a conversion that
    needs the first files of a large dataset never reads the others' footers.
    """
    from .sources import read_footer

    target = 1 if grow else UNIT_BYTES
    for file_index in range(start[0], len(source.files)):
        footer = read_footer(source, source.files[file_index])
        first = start[1] if file_index == start[0] else 0
        groups: list[int] = []
        ranges: list[tuple[int, int]] = []
        rows = size = 0
        for index in range(first, footer.metadata.num_row_groups):
            chunks = chunk_ranges(footer, index, columns)
            groups.append(index)
            ranges += chunks
            rows += footer.metadata.row_group(index).num_rows
            size += sum(end - begin for begin, end in chunks)
            if size >= target or rows >= UNIT_MAX_ROWS:
                yield Unit(file_index, footer.file, tuple(groups), rows, size, tuple(coalesce(ranges)))
                target = min(UNIT_BYTES, 2 * max(target, size)) if grow else target
                groups, ranges, rows, size = [], [], 0, 0
        if groups:
            yield Unit(file_index, footer.file, tuple(groups), rows, size, tuple(coalesce(ranges)))
