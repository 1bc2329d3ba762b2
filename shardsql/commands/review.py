"""What `explain`'s review report shows beyond the funnel: the shape of the text kept.

For one definition on its sample: the length (characters) of every text before the filter
and after it, a score column's values before and after where the source has one, the
characters and UTF-8 bytes kept (for the token estimate), and for each top-level condition
of the WHERE a few of the texts it removes. For two definitions on the same rows: a few of
the texts only one of them keeps.

Samples are deterministic: the rows are explain's sample (the first rows of the source),
and among the rows a condition removes the ones shown are those first in the order of a
seeded hash of their text, so the same sample gives the same texts on every run and
machine, spread over the sample rather than its first rows.

Binning and quantiles (`Bins`, `quantiles`) are plain functions over the values, shared by
the text and markdown reports (report.py, review_report.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..autoresearch import TEXT_COLUMN
from ..errors import OptionsError

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

SAMPLE_SEED = "shardsql-explain-1"  # mixed into the hash that picks the texts shown
SAMPLES = 3  # texts shown a condition, by default
SCORE_COLUMNS = ("int_score", "score")  # a source's score column, found by name, the first there
QUANTILES = (0.1, 0.5, 0.9, 0.99)
MAX_DISCRETE = 21  # an integer score with at most this many values: a bin for each
SCORE_BINS = 10  # else this many of equal width
_SCORE_ALIAS = "__shardsql_score"


@dataclass
class Sample:
    """One text shown: as the definition outputs it (None: NULL), its length and its score."""

    text: str | None
    score: float | int | None = None

    @property
    def chars(self) -> int | None:
        return None if self.text is None else len(self.text)


@dataclass
class Details:
    """One definition on its sample, beyond the funnel's counts."""

    lengths_in: list[int | None] | None  # each row's text length before the WHERE; None: not measurable
    lengths_out: list[int | None]  # each kept row's
    bytes_in: int | None
    bytes_out: int
    score_column: str | None = None
    scores_in: list[Any] | None = None
    scores_out: list[Any] | None = None  # None: not measurable on the kept rows (DISTINCT, GROUP BY...)
    removed: list[list[Sample]] = field(default_factory=list)  # per condition, in the funnel's order


def score_column(schema: pa.Schema, wanted: str | None) -> str | None:
    """The numeric column whose distribution the report shows: `wanted` (--score), else the
    first of SCORE_COLUMNS the source has."""
    if wanted is not None:
        if wanted not in schema.names:
            raise OptionsError(f"--score {wanted}: the source has no such column (it has {', '.join(schema.names)})")
        if not _numeric(schema.field(wanted).type):
            raise OptionsError(f"--score {wanted}: a number column is needed, and it is {schema.field(wanted).type}")
        return wanted
    for name in SCORE_COLUMNS:
        if name in schema.names and _numeric(schema.field(name).type):
            return name
    return None


def _numeric(type_: pa.DataType) -> bool:
    return bool(pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_))


def order_by_seed(expression: str) -> str:
    """An ORDER BY that spreads picks over the sample, the same on every run: a seeded hash."""
    return f"md5(coalesce(CAST({expression} AS VARCHAR), '') || '{SAMPLE_SEED}'), {expression}"


def texts(con: DuckDBPyConnection, sql: str, n: int, score: bool = False) -> list[Sample]:
    """Up to `n` distinct texts (with their scores, `score`) of a query's rows, picked by the seed."""
    if n <= 0:
        return []
    columns = f"{TEXT_COLUMN}, {_SCORE_ALIAS}" if score else TEXT_COLUMN
    rows = con.sql(
        f"SELECT {columns} FROM (SELECT DISTINCT {columns} FROM ({sql})) ORDER BY {order_by_seed(TEXT_COLUMN)} "
        f"LIMIT {int(n)}"
    ).fetchall()
    return [Sample(r[0], r[1] if score else None) for r in rows]


def lengths(con: DuckDBPyConnection, sql: str) -> tuple[list[int | None], int]:
    """Each row's text length in characters, and the UTF-8 bytes of them all."""
    table = con.sql(f"SELECT length({TEXT_COLUMN}) AS n, strlen({TEXT_COLUMN}) AS b FROM ({sql})").arrow()
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    return table.column("n").to_pylist(), int(sum(v for v in table.column("b").to_pylist() if v is not None))


def score_alias() -> str:
    return _SCORE_ALIAS


# --- distributions ---------------------------------------------------------------------------


@dataclass
class Bins:
    """Bins shared by the series of one chart: `edges[i] <= v < edges[i + 1]`, the last open."""

    edges: list[float]
    labels: list[str]

    def counts(self, values: list[Any]) -> list[int]:
        import bisect

        out = [0] * len(self.edges)
        for v in values:
            if v is not None:
                out[max(bisect.bisect_right(self.edges, v) - 1, 0)] += 1
        return out


def _compact(n: float) -> str:
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % size == 0:
            return f"{n / size:g}{suffix}"
    return f"{n:g}"


def length_bins(*series: list[int | None]) -> Bins:
    """Bins of a 1-2-3-5 series of characters (0, 1, 10, 20, 30, 50, 100, ...), from the one
    holding the shortest value to the one holding the longest of all `series`."""
    edges: list[float] = [0, 1]
    decade = 10
    while decade <= 10**8:
        edges += [decade, 2 * decade, 3 * decade, 5 * decade]
        decade *= 10
    values = [v for s in series for v in s if v is not None]
    if not values:
        return Bins([], [])
    first = max(i for i, e in enumerate(edges) if e <= min(values))
    last = max(i for i, e in enumerate(edges) if e <= max(values))
    kept = edges[first : last + 2]
    labels = []
    for i, lo in enumerate(kept[: last - first + 1]):
        hi = kept[i + 1] if i + 1 < len(kept) else None
        if lo == 0 and hi == 1:
            labels.append("0")
        elif hi is None:
            labels.append(f"{_compact(lo)}+")
        else:
            labels.append(f"{_compact(lo)}–{_compact(hi - 1)}" if hi - lo > 1 else _compact(lo))
    return Bins(kept[: last - first + 1], labels)


def score_bins(*series: list[Any]) -> Bins:
    """A bin for each value of an integer score with few values, else SCORE_BINS of equal width."""
    values = [v for s in series for v in s if v is not None]
    if not values:
        return Bins([], [])
    low, high = min(values), max(values)
    if all(float(v).is_integer() for v in values) and high - low < MAX_DISCRETE:
        edges = [float(v) for v in range(int(low), int(high) + 1)]
        return Bins(edges, [f"{int(e)}" for e in edges])
    width = (float(high) - float(low)) / SCORE_BINS or 1.0
    edges = [float(low) + i * width for i in range(SCORE_BINS)]
    return Bins(edges, [f"{e:.3g}–{e + width:.3g}" for e in edges])


def quantiles(values: list[Any]) -> dict[float, Any]:
    """QUANTILES of the values that are not NULL (nearest rank); empty where there are none."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return {}
    return {q: ordered[min(len(ordered) - 1, max(math.ceil(q * len(ordered)) - 1, 0))] for q in QUANTILES}
