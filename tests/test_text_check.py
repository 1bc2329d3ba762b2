"""validate.check_text on its own, how invalid UTF-8 really flows, and both checks end to end."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.errors import ConversionError
from shardsql.output.text_check import check_text

BAD = b"caf\xc3 au lait"  # a truncated two-byte sequence: not UTF-8


def _unchecked_strings(values: list[bytes | None]) -> pa.Array:
    """A string array holding arbitrary bytes: pyarrow's view() does not validate."""
    return pa.array(values, pa.binary()).view(pa.string())


def test_good_text_passes():
    check_text(pa.table({"text": ["a", "é", ""]}), "here")
    check_text(pa.table({"text": pa.array(["x"] * 3, pa.large_string())}), "here")
    check_text(pa.table({"text": pa.chunked_array([["a"], ["b"]])}), "here")


def test_a_null_is_an_error_naming_where_with_the_fix():
    with pytest.raises(ConversionError, match=r"^f.parquet, row group 3: .*1 NULL.*WHERE text IS NOT NULL"):
        check_text(pa.table({"text": ["a", None]}), "f.parquet, row group 3")


def test_invalid_utf8_is_an_error_naming_the_row_across_chunks():
    column = pa.chunked_array([pa.array(["ok", "ok"]), _unchecked_strings([b"fine", BAD])])
    with pytest.raises(ConversionError, match=r"^f.parquet, row group 0: a text is not valid UTF-8 \(row 3 of"):
        check_text(pa.table({"text": column}), "f.parquet, row group 0")


def test_invalid_utf8_flows_unchecked_through_parquet_duckdb_and_polars(tmp_path):
    """Why the check exists: none of the three libraries stops these bytes on the way to a shard."""
    import duckdb
    import polars as pl

    pq.write_table(pa.table({"text": _unchecked_strings([b"good", BAD])}), tmp_path / "bad.parquet")
    read = pq.read_table(tmp_path / "bad.parquet")  # pyarrow's parquet reader: no error
    con = duckdb.connect()
    con.register("source", read)
    out = con.sql("SELECT text FROM source WHERE length(text) > 0").to_arrow_table()  # DuckDB: no error
    pl.from_arrow(out).write_parquet(tmp_path / "shard.parquet")  # Polars: no error
    written = pq.read_table(tmp_path / "shard.parquet").column("text")
    with pytest.raises(pa.ArrowInvalid, match="UTF8"):
        written.validate(full=True)
    with pytest.raises(ConversionError, match="not valid UTF-8"):
        check_text(out, "bad.parquet")


def _source(tmp_path, texts: pa.Array, rows_before: int = 2000):
    """A local source: `rows_before` good rows, then `texts`, in 500-row row groups."""
    folder = tmp_path / "src"
    folder.mkdir()
    good = pa.array([f"document number {i} " * 5 for i in range(rows_before)])
    table = pa.table({"text": pa.concat_arrays([good, texts])})
    pq.write_table(table, folder / "part-0.parquet", row_group_size=500)
    return folder


def _definition(tmp_path, where: str = ""):
    path = tmp_path / "keep.sql"
    path.write_text(f"-- description: test\n-- source: ./src\n\nSELECT text FROM source {where}\n")
    return catalog.resolve(str(path))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (pa.array([None, "x"], pa.string()), "NULL text.*WHERE text IS NOT NULL"),
        (_unchecked_strings([b"x", BAD]), "not valid UTF-8"),
    ],
)
def test_a_conversion_stops_on_the_first_bad_batch_and_the_data_folder_is_untouched(tmp_path, bad, message):
    folder = _source(tmp_path, bad)
    (tmp_path / "cache" / "data").mkdir(parents=True)
    (tmp_path / "cache" / "data" / "shard_00000.parquet").write_bytes(b"old")
    options = ConvertOptions(num_shards=2, rows_per_shard=1000, cache_dir=tmp_path / "cache", source=str(folder))
    with pytest.raises(ConversionError, match=rf"part-0.parquet, row group 4: .*{message}"):
        convert(_definition(tmp_path), options)
    assert sorted(p.name for p in (tmp_path / "cache" / "data").iterdir()) == ["shard_00000.parquet"]
    assert (tmp_path / "cache" / "data" / "shard_00000.parquet").read_bytes() == b"old"


def test_a_text_that_is_not_utf8_in_a_row_the_definition_drops_does_not_stop_a_conversion(tmp_path):
    """Polars' reader, which decodes text (source/decode.py), refuses a row group holding bytes
    that are not UTF-8; that row group is decoded by pyarrow instead, so only a text the
    definition keeps is an error, and the shards hold every other text."""
    import pyarrow.parquet as pq

    folder = _source(tmp_path, _unchecked_strings([b"x", BAD, b"a last good document " * 3]))
    options = ConvertOptions(num_shards=1, rows_per_shard=1000, cache_dir=tmp_path / "cache", source=str(folder),
                             shuffle=False)  # fmt: skip
    convert(_definition(tmp_path, "WHERE length(text) > 20"), options)
    names = ("shard_00000.parquet", "shard_06542.parquet")
    written = [pq.read_table(tmp_path / "cache" / "data" / name)["text"] for name in names]
    assert sum(len(t) for t in written) == 2000
    assert all(t.validate(full=True) is None for t in written)


def test_duckdb_makes_no_invalid_text_from_valid_text_or_from_bytes():
    """What `check_text(..., utf8_checked=True)` relies on: a definition over text Polars checked
    cannot make invalid UTF-8 of bytes. DuckDB escapes a BLOB cast to VARCHAR and refuses to
    `decode` invalid bytes; were that to change, this fails."""
    import duckdb

    con = duckdb.connect()
    con.register("source", pa.table({"b": pa.array([BAD], pa.binary())}))
    cast = con.sql("SELECT CAST(b AS VARCHAR) || '' AS text FROM source").to_arrow_table()
    assert cast.column(0).validate(full=True) is None and cast.column(0).to_pylist() == ["caf\\xC3 au lait"]
    with pytest.raises(duckdb.ConversionException, match="UTF8"):
        con.sql("SELECT decode(b) AS text FROM source").fetchall()
    check_text(cast, "here", utf8_checked=True)
    with pytest.raises(ConversionError, match="not valid UTF-8"):
        check_text(pa.table({"text": _unchecked_strings([BAD])}), "here")
