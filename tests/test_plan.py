"""The plan: which path a definition takes, which columns it reads, how the source splits
into units and which byte ranges each unit fetches."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardsql import plan
from shardsql.sources import open_source, read_footer
from shardsql.statements import query_tree

ROW_BY_ROW = [
    "SELECT text FROM source",
    "SELECT text FROM source WHERE (int_score IS NULL OR int_score >= 3) AND length(text) >= 50",
    "SELECT lower(trim(text)) AS text FROM source WHERE regexp_matches(text, '^[A-Z]')",
    "SELECT CASE WHEN score > 1 THEN text ELSE upper(text) END AS text FROM source s WHERE s.id % 2 = 0",
    "SELECT meta.body AS text FROM source",
    "SELECT list_reverse(string_split(text, ' '))[1] AS text FROM source",  # a macro
    "SELECT list_transform([text], x -> x || '!')[1] AS text FROM source",  # a lambda
    "SELECT * FROM source WHERE text <> ''",
]
WHOLE = {
    "SELECT DISTINCT text FROM source": "DISTINCT",
    "SELECT DISTINCT ON (id) text FROM source": "DISTINCT",
    "SELECT text FROM source ORDER BY id": "ORDER BY",
    "SELECT text FROM source LIMIT 10": "LIMIT",
    "SELECT text FROM source LIMIT 10 OFFSET 5": "LIMIT",
    "SELECT string_agg(text, ' ') AS text FROM source": "the aggregate string_agg()",
    "SELECT max(text) AS text FROM source GROUP BY id": "GROUP BY",
    "SELECT text FROM source WHERE length(text) > (SELECT avg(length(text)) FROM source)": "a subquery",
    "SELECT text FROM source WHERE id IN (SELECT id FROM source WHERE score > 1)": "a subquery",
    "SELECT text || row_number() OVER () AS text FROM source": "the window function row_number()",
    "SELECT a.text FROM source a JOIN source b ON a.id = b.id": "a join",
    "SELECT a.text FROM source a, source b": "a join",
    "SELECT text FROM (SELECT text FROM source)": "a subquery",
    "SELECT text FROM other": "a FROM clause other than `source`",
    "SELECT text FROM source UNION ALL SELECT text FROM source": "a set operation",
    "WITH t AS (SELECT text FROM source) SELECT text FROM t": "a WITH clause",
    "SELECT unnest(string_split(text, '\n')) AS text FROM source": "the function unnest()",
    "SELECT text FROM source QUALIFY row_number() OVER (PARTITION BY id) = 1": "QUALIFY",
    "SELECT text FROM source USING SAMPLE 10%": "TABLESAMPLE",
    "SELECT text FROM source WHERE id > 1 GROUP BY ALL": "GROUP BY",
}


def statement(sql: str) -> dict:
    return query_tree(duckdb.connect(), sql)["statements"][0]


@pytest.mark.parametrize("sql", ROW_BY_ROW)
def test_row_by_row_definitions(sql):
    shape = plan.classify(statement(sql))
    assert shape.row_by_row and shape.path == "row by row", shape


@pytest.mark.parametrize("sql", sorted(WHOLE))
def test_everything_else_reads_the_whole_source_and_says_why(sql):
    shape = plan.classify(statement(sql))
    assert not shape.row_by_row and shape.path == "whole source"
    assert shape.reason.startswith(WHOLE[sql]) and shape.reason.endswith(": reads the whole source"), shape.reason


SCHEMA = ["text", "id", "meta", "score", "int_score"]


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ("SELECT text FROM source WHERE int_score >= 3", ["text", "int_score"]),
        ("SELECT TEXT FROM source WHERE Int_Score >= 3", ["text", "int_score"]),
        ("SELECT meta.body AS text FROM source", ["meta"]),
        ("SELECT meta['body'] AS text FROM source", ["meta"]),
        ("SELECT s.meta.body AS text FROM source s WHERE s.id > 1", ["id", "meta"]),
        ("SELECT source.text FROM source", ["text"]),
        ("SELECT lower(text) AS t FROM source WHERE t <> ''", ["text"]),  # an alias reads nothing more
        ("SELECT list_transform([text], x -> x)[1] AS text FROM source", ["text"]),
        ("SELECT 'constant' AS text FROM source", []),
        ("SELECT * FROM source", SCHEMA),
        ("SELECT source.* FROM source", SCHEMA),
        ("SELECT COLUMNS('te.*') FROM source", SCHEMA),
        ("SELECT CAST(source AS VARCHAR) AS text FROM source", SCHEMA),  # the whole row
        ("SELECT to_json(s)::VARCHAR AS text FROM source s", SCHEMA),
    ],
)
def test_columns_needed(sql, columns):
    assert plan.columns_needed(statement(sql), SCHEMA) == columns


def test_coalesce_merges_overlaps_and_small_gaps_always():
    assert plan.coalesce([(0, 10), (5, 20), (20, 30)]) == [(0, 30)]
    assert plan.coalesce([(0, 100), (100 + plan.SMALL_GAP, 200 + plan.SMALL_GAP)]) == [(0, 200 + plan.SMALL_GAP)]


def test_coalesce_fetches_the_smallest_gaps_within_the_budget():
    mb = 1 << 20
    # 10 MB needed: a 1 MB and a 0.4 MB gap fit in 15%, the 5 MB gap does not.
    ranges = [(0, 4 * mb), (5 * mb, 7 * mb), (12 * mb, 14 * mb), (14 * mb + 400_000, 16 * mb + 400_000)]
    assert plan.coalesce(ranges, budget=1.15) == [(0, 7 * mb), (12 * mb, 16 * mb + 400_000)]
    assert plan.coalesce(ranges, budget=1.0) == ranges
    assert plan.coalesce(ranges, budget=2.0) == [(0, 16 * mb + 400_000)]


@pytest.fixture
def two_files(tmp_path):
    rows, rng = 1000, random.Random(0)
    for f in range(2):
        table = pa.table(
            {
                "text": [rng.randbytes(200).hex() for i in range(rows)],  # incompressible: real chunk sizes
                "id": list(range(rows)),
                "int_score": [i % 5 for i in range(rows)],
            }
        )
        pq.write_table(table, tmp_path / f"{f}.parquet", row_group_size=100)
    return open_source(str(tmp_path))


def test_units_cover_every_row_group_once_in_order(two_files, monkeypatch):
    monkeypatch.setattr(plan, "UNIT_BYTES", 100_000)
    units = list(plan.units(two_files, ["text"]))
    assert [(u.file_index, g) for u in units for g in u.row_groups] == [(f, g) for f in range(2) for g in range(10)]
    assert all(len(u.row_groups) < 10 for u in units) and sum(u.rows for u in units) == 2000
    for u in units:  # a unit closes once it has enough bytes
        assert u.needed_bytes >= 100_000 or u.row_groups[-1] == 9


def test_units_start_where_asked_and_read_footers_lazily(two_files):
    units = plan.units(two_files, ["text"], start=(1, 4))
    first = next(units)
    assert first.start == (1, 4)
    assert list(two_files.footers) == [two_files.files[1].path], "the first file's footer is not needed"


def test_growing_units_start_with_one_row_group(two_files):
    sizes = [len(u.row_groups) for u in plan.units(two_files, ["text"], grow=True)]
    assert sizes[:2] == [1, 2] and sizes[2] >= 4, "each unit about twice the bytes of the one before"


def test_a_unit_fetches_the_needed_chunks_and_little_else(two_files):
    footer = read_footer(two_files, two_files.files[0])
    unit = next(plan.units(two_files, ["text", "int_score"]))
    needed = [r for g in unit.row_groups for r in plan.chunk_ranges(footer, g, ["text", "int_score"])]
    assert unit.needed_bytes == sum(e - s for s, e in needed)
    assert unit.fetch_bytes <= plan.GAP_BUDGET * unit.needed_bytes
    for start, end in needed:  # every needed byte is in a fetched range
        assert any(s <= start and end <= e for s, e in unit.ranges)
    assert len(unit.ranges) < len(needed)
