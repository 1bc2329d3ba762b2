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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..autoresearch import TEXT_COLUMN
from ..definition import sandbox
from ..definition.evaluator import DUCKDB_ERRORS, Evaluator
from ..definition.mixture import Mixture
from ..definition.model import Definition
from ..definition.statement import definition_tree
from ..errors import DefinitionError, OptionsError, describe
from ..source.decode import read_unit
from ..source.files import Source
from ..source.scan import open_scan
from ..source.units import units
from . import review

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
    only_first_samples: list[review.Sample] = field(default_factory=list)  # a few texts only the first keeps
    only_second_samples: list[review.Sample] = field(default_factory=list)


@dataclass
class Measured:
    """One definition's funnel on a sample, as `explain` gives them, in the order they are shown.

    `role`: "first" (the definition explained, on a sample of its source), "component" (a
    mixture's `component`-th, each on a sample of its own source), "own sample" (--against's
    definition, which reads another source, on a sample of that one) or "same rows" (--against's,
    on the first's sample, with how their outputs differ: `comparison`)."""

    role: str
    funnel: Funnel
    table: pa.Table  # the sample
    source: Source  # its source
    mixture: Mixture | None = None
    component: int = 0
    comparison: Comparison | None = None
    compared_with: Definition | None = None  # the first definition, with `comparison`
    details: review.Details | None = None  # lengths, scores and removed texts (`explain(..., details=True)`)
    compared_details: review.Details | None = None  # the first definition's, with `comparison`


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

    def sql(self, conditions: list[dict[str, Any]] | None, score: str | None = None) -> str:
        """The definition with only `conditions` in its WHERE (None: unchanged), and with the
        column `score` also selected, as `review.score_alias()`, where given."""
        if conditions is None and score is None:
            return self.definition.sql
        tree = copy.deepcopy(self.tree)
        node = tree["statements"][0]["node"]
        if conditions is not None:
            node["where_clause"] = _and(conditions)
        if score is not None:
            node["select_list"].append({"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": review.score_alias(),
                                        "query_location": 0, "column_names": [score]})  # fmt: skip
        sql: str = self.con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
        return sql

    def text(self, condition: dict[str, Any]) -> str:
        """A condition as SQL, written by DuckDB alone in a WHERE (nothing after it: a GROUP BY, say)."""
        tree = self._parse("SELECT 1 WHERE true")
        tree["statements"][0]["node"]["where_clause"] = condition
        sql: str = self.con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
        return sql.split(" WHERE ", 1)[1]

    def _parse(self, sql: str) -> dict[str, Any]:
        tree: dict[str, Any] = json.loads(self.con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
        return tree

    def removed_by(self, i: int) -> list[dict[str, Any]]:
        """The WHERE of the rows the i-th condition removes after those before it: the ones
        before hold, and it does not (false or NULL)."""
        where = f"NOT coalesce(({self.text(self.conditions[i])}), false)"
        return [*self.conditions[:i], self._parse(f"SELECT 1 WHERE {where}")["statements"][0]["node"]["where_clause"]]


def check_against(first: Definition | Mixture, second: Definition | Mixture | None) -> Definition | None:
    """Refuse `--against` where either side is a mixture: it compares two datasets. Returns
    `second`, then a dataset or None."""
    if isinstance(first, Mixture) and second is not None:
        raise _not_a_dataset(first)
    if isinstance(second, Mixture):
        raise _not_a_dataset(second)
    return second


def _not_a_dataset(mixture: Mixture) -> OptionsError:
    return OptionsError(f"--against compares two datasets, and {mixture.name} is a mixture: compare one of its "
                        f"components ({', '.join(c.definition.name for c in mixture.components)})")  # fmt: skip


def same_source(first: Definition, second: Definition, source_url: str | None) -> bool:
    """Whether `--against`'s second definition is measured on the first's sample: with --source
    (both read it), or where both read the same source at the same revision (the Hub's default
    branch is main: no revision and `main` read the same files)."""
    return bool(source_url or (second.source, second.revision or "main") == (first.source, first.revision or "main"))


def explain(first: Definition | Mixture, second: Definition | None, *, rows: int, revision: str | None = None,
            source_url: str | None = None, samples: int = review.SAMPLES,
            score: str | None = None) -> Iterator[Measured]:  # fmt: skip
    """`shardsql explain`: each definition measured on the first `rows` rows of a source, one at a
    time as they are shown. A mixture's components each on their own source; --against's
    definition (`second`) on the first's sample where they share a source (`same_source`),
    else on its own. Each with its `details` (up to `samples` texts each condition removes; the
    distribution of the column `score`, else of the source's score column where it has one)."""

    def measured(role: str, definition: Definition, table: pa.Table, source: Source, **kw: Any) -> Measured:
        found = review.score_column(table.schema, score)
        return Measured(role, funnel(definition, table), table, source,
                        details=details(definition, table, found, samples), **kw)  # fmt: skip

    if isinstance(first, Mixture):
        for number, c in enumerate(first.components):
            table, source = sample(c.definition, columns_for=[c.definition], rows=rows, score=score)
            yield measured("component", c.definition, table, source, mixture=first, component=number)
        return
    shared = second is not None and same_source(first, second, source_url)
    columns_for = [first, second] if second is not None and shared else [first]
    table, source = sample(first, columns_for=columns_for, rows=rows, revision=revision, source_url=source_url,
                           score=score)  # fmt: skip
    one = measured("first", first, table, source)
    yield one
    if second is not None and shared:
        yield measured("same rows", second, table, source, comparison=compare(first, second, table, samples),
                       compared_with=first, compared_details=one.details)  # fmt: skip
    elif second is not None:
        other, other_source = sample(second, columns_for=[second], rows=rows, revision=revision, score=score)
        yield measured("own sample", second, other, other_source, compared_with=first,
                       compared_details=one.details)  # fmt: skip


def sample(definition: Definition, *, columns_for: list[Definition], rows: int, revision: str | None = None,
           source_url: str | None = None, score: str | None = None) -> tuple[pa.Table, Source]:  # fmt: skip
    """The first `rows` rows of a definition's source, with the columns all of `columns_for` read,
    and its score column (`score`, else the one review.score_column finds, if any)."""

    def columns(schema: pa.Schema) -> list[str]:
        named: set[str] = set()
        for each in columns_for:
            evaluator = Evaluator(each)
            try:
                named.update(evaluator.check(schema))  # binds each definition: bad SQL fails here
            finally:
                evaluator.close()
        found = review.score_column(schema, score)
        return [name for name in schema.names if name in named or name == found]

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


def compare(first: Definition, second: Definition, table: pa.Table, samples: int = 0) -> Comparison:
    """How the outputs of two definitions on the same rows differ (texts, with repeats), with up
    to `samples` texts of each side that only it keeps."""
    con = sandbox.connect()
    try:
        con.register("source", table)
        a, b = f"SELECT {TEXT_COLUMN} FROM ({first.sql})", f"SELECT {TEXT_COLUMN} FROM ({second.sql})"
        only_a = con.sql(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchall()[0][0]
        only_b = con.sql(f"SELECT count(*) FROM ({b} EXCEPT ALL {a})").fetchall()[0][0]
        both = con.sql(f"SELECT count(*) FROM ({a} INTERSECT ALL {b})").fetchall()[0][0]
        return Comparison(int(only_a), int(only_b), int(both), review.texts(con, f"{a} EXCEPT ALL {b}", samples),
                          review.texts(con, f"{b} EXCEPT ALL {a}", samples))  # fmt: skip
    except DUCKDB_ERRORS as exc:
        raise DefinitionError(describe(exc), second.path) from None
    finally:
        con.close()


def details(definition: Definition, table: pa.Table, score: str | None, samples: int) -> review.Details:
    """`definition`'s texts on the rows of `table` (its source's sample): their lengths before and
    after the WHERE, the column `score`'s values before and after (where it is not None and the
    statement lets it be selected beside the text), and up to `samples` texts each condition
    removes after the ones before it."""
    con = sandbox.connect()
    try:
        con.register("source", table)
        statement = _Statement(con, definition)
        lengths_out, bytes_out = review.lengths(con, definition.sql)
        result = review.Details(None, lengths_out, None, bytes_out, score)
        if statement.plain:
            result.lengths_in, result.bytes_in = review.lengths(con, statement.sql([]))
        if score is not None:
            result.scores_in = table.column(score).to_pylist()
            result.scores_out = _kept_scores(con, statement, score, len(lengths_out))
        with_score = score if result.scores_out is not None else None
        for i in range(len(statement.conditions)):
            sql = statement.sql(statement.removed_by(i), with_score)
            result.removed.append(review.texts(con, sql, samples, score=with_score is not None))
        return result
    except DUCKDB_ERRORS as exc:
        raise DefinitionError(describe(exc), definition.path) from None
    finally:
        con.close()


def _kept_scores(con: DuckDBPyConnection, statement: _Statement, score: str, rows_out: int) -> list[Any] | None:
    """The score of each row the definition keeps: its SELECT with the score column added, where
    that keeps the same rows (not where it aggregates, say, or reads the column under a join)."""
    if not statement.plain:
        return None
    try:
        values = [
            r[0] for r in con.sql(f"SELECT {review.score_alias()} FROM ({statement.sql(None, score)})").fetchall()
        ]
    except DUCKDB_ERRORS:
        return None
    return values if len(values) == rows_out else None
