"""Definitions and queries must be one SELECT; errors name the file and the line."""

import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import run_query

from shardsql.cli import cli
from shardsql.definition import catalog
from shardsql.definition.statement import definition_tree
from shardsql.errors import DefinitionError, QueryError

HEADER = "-- description: d\n-- source: ./src\n-- notes: three header lines, then a blank one\n\n"


def _definition(tmp_path, body: str):
    path = tmp_path / "d.sql"
    path.write_text(HEADER + body)
    return catalog.resolve(str(path))


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("SELECT text\nFROM source\nWHERE length(text) > 5 AND AND x\n", 7, 'syntax error at or near "AND"'),
        ("SELECT text FROM source;\nDROP TABLE source\n", 6, "the definition must be one SELECT over source, "
         "found 2 statements"),
        ("WITH t AS (SELECT 1)\nINSERT INTO x SELECT * FROM t\n", 5, "the definition must be one SELECT over "
         "source, found an INSERT statement"),
    ],
)  # fmt: skip
def test_a_bad_definition_names_its_file_and_line(tmp_path, body, line, message):
    definition = _definition(tmp_path, body)
    with pytest.raises(DefinitionError) as info:
        definition_tree(duckdb.connect(), definition)
    assert str(info.value) == f"{definition.path}:{line}: {message}"
    assert (info.value.path, info.value.line) == (definition.path, line)


def test_the_cli_shows_the_line_for_convert_and_explain(tmp_path):
    (tmp_path / "src").mkdir()
    pq.write_table(pa.table({"text": ["some text"]}), tmp_path / "src" / "0.parquet")
    definition = _definition(tmp_path, "SELECT text\nFROM source\nWHERE (length(text) > 5\n")
    for args in (["convert", str(definition.path), "--dry-run"], ["explain", str(definition.path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1
        assert result.output.startswith(f"Error: {definition.path}:7: syntax error at or near"), result.output


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DROP TABLE x", "the query must be one SELECT, found a DROP statement"),
        ("SELECT 1;\nSELECT 2", "line 2: the query must be one SELECT, found 2 statements"),
        ("SELECT 1\nFROM x WHERE", 'line 2: syntax error at or near "WHERE"'),
    ],
)
def test_a_bad_query_says_what_and_where(sql, message):
    with pytest.raises(QueryError) as info:
        run_query(sql)
    assert str(info.value) == message


def test_a_relative_source_resolves_against_the_definitions_folder(tmp_path, monkeypatch):
    (tmp_path / "defs" / "src").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["from the definition's folder"]}), tmp_path / "defs" / "src" / "0.parquet")
    (tmp_path / "defs" / "d.sql").write_text("-- description: d\n-- source: ./src\n\nSELECT text FROM source\n")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "src").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    definition = catalog.resolve(os.path.join("..", "defs", "d.sql"))
    assert definition.source == str(tmp_path / "defs" / "src")
    result = CliRunner().invoke(cli, ["sql", "--source", definition.source, "SELECT text FROM source"])
    assert "from the definition's folder" in result.output
    assert catalog.resolve_source("hf://datasets/a/b/*.parquet", tmp_path / "d.sql") == "hf://datasets/a/b/*.parquet"
    assert catalog.resolve_source("/abs/x", tmp_path / "d.sql") == "/abs/x"
    assert catalog.resolve_source("data/*.parquet", tmp_path / "d.sql") == str(tmp_path / "data" / "*.parquet")
