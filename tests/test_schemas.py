"""schemas.unify / conform on their own, and sql, explain and convert over files that disagree."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import read_texts, run_query

from shardsql.cli import cli
from shardsql.commands.convert import convert
from shardsql.commands.explain import sample
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.errors import SourceError
from shardsql.source.schemas import conform, unify

TEXT = "a document long enough to pass every filter " * 3


def _schema(**types) -> pa.Schema:
    return pa.schema(list(types.items()))


def test_unify_widens_numbers_and_reads_every_text_type_as_string_views():
    schemas = [
        _schema(text=pa.string(), score=pa.int32(), n=pa.int16()),
        _schema(text=pa.large_string(), score=pa.float64(), n=pa.int64()),
        _schema(text=pa.dictionary(pa.int32(), pa.string()), score=pa.int64(), n=pa.int8()),
    ]
    assert unify(schemas, ["a", "b", "c"]) == _schema(text=pa.string_view(), score=pa.float64(), n=pa.int64())


def test_unify_keeps_types_the_files_agree_on_and_only_the_columns_asked():
    schemas = [_schema(text=pa.string(), x=pa.int8()), _schema(text=pa.string(), x=pa.string())]
    assert unify(schemas, ["a", "b"], ["text"]) == _schema(text=pa.string_view())
    assert unify([_schema(score=pa.int8())] * 2, ["a", "b"]) == _schema(score=pa.int8())


def test_a_missing_column_names_the_first_file_that_lacks_it():
    schemas = [_schema(text=pa.string(), score=pa.int64()), _schema(text=pa.string()), _schema(text=pa.string())]
    with pytest.raises(SourceError, match=r"^b.parquet: no column 'score', which a.parquet has"):
        unify(schemas, ["a.parquet", "b.parquet", "c.parquet"])


def test_types_that_do_not_mix_are_an_error_naming_the_file():
    schemas = [_schema(score=pa.int64()), _schema(score=pa.string())]
    with pytest.raises(SourceError, match=r"^b: column 'score' is string, but int64 in a"):
        unify(schemas, ["a", "b"])


def test_conform_casts_and_is_free_when_the_schema_already_matches():
    table = pa.table({"text": pa.array(["x"]).dictionary_encode(), "score": pa.array([1], pa.int32()), "z": [0]})
    schema = _schema(score=pa.float64(), text=pa.string_view())  # (dictionary text: decoded, then viewed)
    out = conform(table, schema, "f")
    assert out.schema == schema and out.to_pylist() == [{"score": 1.0, "text": "x"}]
    assert conform(out, schema, "f") is out
    with pytest.raises(SourceError, match=r"^g: no column 'score'"):
        conform(pa.table({"text": ["x"]}), schema, "g")
    with pytest.raises(SourceError, match=r"^h: column 'score' is string, not double"):
        conform(pa.table({"score": ["high"], "text": ["x"]}), schema, "h")


@pytest.fixture
def mixed(tmp_path):
    """Three files: int64 then double then int32 scores; string, large_string, dictionary text."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    scores = [pa.array([1, 2], pa.int64()), pa.array([2.5, 0.5]), pa.array([3, 0], pa.int32())]
    texts = [pa.array([TEXT] * 2), pa.array([TEXT] * 2, pa.large_string()), pa.array([TEXT] * 2).dictionary_encode()]
    for i, (score, text) in enumerate(zip(scores, texts, strict=True)):
        pq.write_table(pa.table({"text": text, "score": score}), folder / f"{i}.parquet")
    definition = tmp_path / "mixed.sql"
    definition.write_text(f"-- description: mixed\n-- source: {folder}\n\nSELECT text FROM source WHERE score >= 1\n")
    return folder, definition


def test_sql_reads_files_whose_schemas_differ(mixed):
    folder, _ = mixed
    result = run_query("SELECT score FROM source", source_url=str(folder))
    assert result.table["score"].to_pylist() == [1.0, 2.0, 2.5, 0.5, 3.0, 0.0]
    result = run_query("SELECT count(*) AS n FROM source WHERE length(text) > 10", source_url=str(folder))
    assert result.table.to_pylist() == [{"n": 6}]


def test_explain_samples_files_whose_schemas_differ(mixed):
    _, definition = mixed
    table, _ = sample(catalog.resolve(str(definition)), columns_for=[catalog.resolve(str(definition))], rows=100)
    assert table["score"].to_pylist() == [1.0, 2.0, 2.5, 0.5, 3.0, 0.0]
    result = CliRunner().invoke(cli, ["explain", str(definition)])
    assert result.exit_code == 0, result.output
    assert "out" in result.output and "Traceback" not in result.output


def test_convert_reads_files_whose_schemas_differ(mixed, tmp_path):
    _, definition = mixed
    # In source order: every row's text is the same, which a shuffled conversion would deduplicate.
    options = ConvertOptions(num_shards=1, rows_per_shard=2, row_group_size=1, cache_dir=tmp_path / "cache",
                             shuffle=False)  # fmt: skip
    convert(catalog.resolve(str(definition)), options)
    assert read_texts(tmp_path / "cache" / "data" / "shard_00000.parquet") == [TEXT, TEXT]


@pytest.mark.parametrize("command", ["sql", "explain", "convert", "dry-run"])
def test_a_column_missing_from_a_later_file_is_one_line_naming_it(tmp_path, command):
    folder = tmp_path / "src"
    folder.mkdir()
    pq.write_table(pa.table({"text": [TEXT], "score": [1]}), folder / "0.parquet")
    pq.write_table(pa.table({"text": [TEXT]}), folder / "1.parquet")
    definition = tmp_path / "d.sql"
    definition.write_text(f"-- description: d\n-- source: {folder}\n\nSELECT text FROM source WHERE score >= 1\n")
    args = {
        "sql": ["sql", "--source", str(folder), "SELECT score FROM source"],
        "explain": ["explain", str(definition)],
        "convert": ["convert", str(definition), "--cache-dir", str(tmp_path / "c"), "--rows-per-shard", "1", "-q"],
        "dry-run": ["convert", str(definition), "--dry-run"],
    }[command]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert f"Error: {folder / '1.parquet'}: no column 'score'" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2


def test_explain_skips_a_row_group_of_zero_rows(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    with pq.ParquetWriter(folder / "0.parquet", pa.schema([("text", pa.string())])) as writer:
        writer.write_table(pa.table({"text": pa.array([], pa.string())}))
        writer.write_table(pa.table({"text": [TEXT] * 3}))
    definition = tmp_path / "d.sql"
    definition.write_text(f"-- description: d\n-- source: {folder}\n\nSELECT text FROM source\n")
    result = CliRunner().invoke(cli, ["explain", str(definition)])
    assert result.exit_code == 0, result.output
    assert "the first 3 rows" in result.output
