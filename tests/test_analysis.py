"""The parse tree read: which path a definition takes, and which columns it reads."""

from __future__ import annotations

import duckdb
import pytest

from shardsql.definition import analysis
from shardsql.definition.statement import query_tree

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
    "SELECT text FROM (SELECT text FROM source)": "a subquery in FROM",
    "SELECT text FROM (SELECT DISTINCT text FROM source)": "a subquery",
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
    shape = analysis.classify(statement(sql))
    assert shape.row_by_row and shape.path == "row by row", shape


@pytest.mark.parametrize("sql", sorted(WHOLE))
def test_everything_else_reads_the_whole_source_and_says_why(sql):
    shape = analysis.classify(statement(sql))
    assert not shape.row_by_row and shape.path == "whole source"
    assert shape.reason.startswith(WHOLE[sql]) and ": reads the whole source" in shape.reason, shape.reason


def test_a_subquery_that_renames_a_column_says_how_to_write_it_row_by_row():
    renamed = "SELECT text FROM (SELECT body AS text FROM source) WHERE length(text) >= 50"
    shape = analysis.classify(statement(renamed))
    assert not shape.row_by_row
    assert shape.reason == (
        "a subquery in FROM: reads the whole source. To run row by row, select from source itself: rename in the "
        "SELECT list and filter on the source's column names, e.g. SELECT body AS text FROM source WHERE "
        "length(body) >= 50"
    )
    # The way it suggests is row by row, and a subquery that is not (DISTINCT) gets no such hint.
    assert analysis.classify(statement("SELECT body AS text FROM source WHERE length(body) >= 50")).row_by_row
    distinct = analysis.classify(statement("SELECT text FROM (SELECT DISTINCT body AS text FROM source)"))
    assert distinct.reason == "a subquery: reads the whole source"
    # Its example names the definition's own column, where the subquery renames one.
    examples = {
        "content AS text": "SELECT content AS text FROM source WHERE length(content) >= 50",
        "text": "SELECT text FROM source WHERE length(text) >= 50",
        '"my col" AS text': 'SELECT "my col" AS text FROM source WHERE length("my col") >= 50',
        "meta.body AS text": "SELECT body AS text FROM source WHERE length(body) >= 50",  # not one column: the example
    }
    for inner, example in examples.items():
        shape = analysis.classify(statement(f"SELECT text FROM (SELECT {inner} FROM source) WHERE length(text) > 9"))
        assert shape.reason.endswith(f", e.g. {example}"), shape.reason
        assert analysis.classify(statement(example)).row_by_row


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
    assert analysis.columns_needed(statement(sql), SCHEMA) == columns
