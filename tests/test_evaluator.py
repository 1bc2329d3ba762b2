from pathlib import Path

import pyarrow as pa
import pytest

from shardsql.definition.catalog import parse_definition
from shardsql.definition.evaluator import Evaluator
from shardsql.errors import DefinitionError

SCHEMA = pa.schema([("text", pa.string()), ("id", pa.string()), ("score", pa.float64()), ("int_score", pa.int64())])


def evaluator(sql: str, tmp_path: Path | None = None) -> Evaluator:
    path = (tmp_path or Path(".")) / "test.sql"
    return Evaluator(parse_definition(f"-- description: t\n-- source: /nowhere\n\n{sql}\n", path))


def test_only_the_columns_the_sql_uses_are_read():
    e = evaluator("SELECT text FROM source WHERE int_score >= 3 AND length(text) >= 50")
    assert e.check(SCHEMA) == ["text", "int_score"]


def test_star_reads_every_column():
    e = evaluator("SELECT * EXCLUDE (id, score, int_score) FROM source")
    assert e.check(SCHEMA) == SCHEMA.names


def test_run_filters_in_source_order_and_counts_code_points_like_python():
    e = evaluator("SELECT text FROM source WHERE text IS NOT NULL AND length(text) >= 50")
    e.check(SCHEMA)
    texts = ["é" * 49, "日" * 50, "👍🏽" * 25, None, "", "b" * 50, "🚀" * 49, "a" * 200]
    batch = pa.table({"text": texts}, schema=pa.schema([("text", pa.string())]))
    expected = [t for t in texts if t and len(t) >= 50]
    assert e.run(batch)["text"].to_pylist() == expected


UNIT_IN_A_FRESH_PROCESS = """
import builtins, sys
import polars  # imported by the process: DuckDB asks for it only then (and caches its answer)
import pyarrow as pa
from pathlib import Path
from shardsql.definition.catalog import parse_definition
from shardsql.definition.evaluator import Evaluator

asked = []
real_import = builtins.__import__
def spy(name, *args, **kwargs):
    asked.append(name)
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
sql = "-- description: t\\n-- source: /nowhere\\n\\nSELECT text FROM source WHERE length(text) >= 50\\n"
e = Evaluator(parse_definition(sql, Path("test.sql")))
e.check(pa.schema([("text", pa.string())]))
kept = e.run(pa.table({"text": ["x" * 60, "y"]}))["text"].to_pylist()
builtins.__import__ = real_import
print(kept == ["x" * 60], "polars" in asked)
"""


def test_a_unit_reaches_duckdb_without_duckdb_asking_for_polars():
    """Given a pyarrow table, DuckDB imports Polars to see whether the table is a Polars frame,
    and so waits while another thread imports Polars: at a conversion's start, the first
    shard's writer thread does (output/shards.write_pieces), and every unit would wait for it.
    The units' rows go to DuckDB as an Arrow stream capsule, which it takes as it is. (A fresh
    process: DuckDB asks once a process, then keeps the answer.)"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", UNIT_IN_A_FRESH_PROCESS], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stdout.split() == ["True", "False"], done.stdout + done.stderr


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.string_view()], ids=str)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT text FROM source WHERE text IS NOT NULL AND length(text) >= 3",
        "SELECT text FROM source WHERE score > 0.5",  # NULL scores: WHERE drops the row
        "SELECT source.text FROM source WHERE text LIKE 'a%' OR int_score = 2",
        "SELECT id AS text FROM source WHERE int_score >= 2",
    ],
)
def test_a_definition_that_keeps_a_source_column_keeps_what_duckdb_keeps(sql, kind):
    """`SELECT text FROM source WHERE ...` runs its WHERE as a mask over the rows and takes the
    kept texts from the source's column (Evaluator._masked): the rows are exactly those
    DuckDB's own evaluation of the SQL keeps, in order, NULLs in the WHERE dropping a row."""
    import duckdb

    texts = ["abc", None, "a", "abcd", "zz", "añb", "", "aaaa"]
    table = pa.table({"text": pa.array(texts, kind), "id": pa.array([t and t.upper() for t in texts], kind),
                      "score": [0.1, 0.9, None, 0.7, 0.6, None, 0.9, 0.2],
                      "int_score": [1, 2, 3, None, 2, 1, 2, 3]})  # fmt: skip
    con = duckdb.connect()
    con.register(
        "source",
        table.select(["text", "id", "score", "int_score"]).cast(
            pa.schema([(f.name, pa.string() if f.name in ("text", "id") else f.type) for f in table.schema])
        ),
    )
    expected = [row[0] for row in con.sql(sql).fetchall()]
    e = evaluator(sql)
    e.check(SCHEMA)
    kept = e.run(table)
    assert kept.column_names == ["text"] and kept["text"].to_pylist() == expected


def test_a_definition_that_keeps_its_source_column_whole_takes_it_as_it_is():
    """With no WHERE, the source's column is the result: its texts are not copied at all."""
    e = evaluator("SELECT text FROM source")
    e.check(SCHEMA)
    column = pa.chunked_array([pa.array(["x" * 60, "y", None][:2], pa.large_string())])
    kept = e.run(pa.table({"text": column}))
    assert kept["text"].chunk(0).buffers()[2].address == column.chunk(0).buffers()[2].address


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.string_view()], ids=str)
@pytest.mark.parametrize(("drop_every", "sliced"), [(2, False), (3, False), (7, False), (100, True), (10_000, True)])
def test_a_mask_keeps_the_rows_a_filter_keeps_without_copying_them_when_it_drops_few(kind, drop_every, sliced):
    """The masked path's rows are exactly a filter's (NULL drops a row), in order, across the
    column's chunks; where at most one row in SLICE_EVERY is dropped, every kept text still lies
    in the decoded column's own buffers (slices of it: nothing copied). String views (decode.py's
    text) are never copied: Polars filters their views and shares their texts, in one chunk
    however few rows are dropped (not a slice between every two)."""
    from shardsql.definition.evaluator import SLICE_EVERY, kept_rows

    texts = [f"text number {i} of a thousand" if i % 13 else None for i in range(1_000)]
    column = pa.chunked_array([pa.array(texts[:300], kind), pa.array(texts[300:], kind)])
    flags = [None if i % (drop_every * 3) == 1 else i % drop_every != 0 for i in range(1_000)]
    kept = kept_rows(column, pa.array(flags, pa.bool_()))
    assert kept.type == kind
    assert kept.to_pylist() == [t for t, flag in zip(texts, flags, strict=True) if flag]
    buffers = {b.address for chunk in column.chunks for b in chunk.buffers()[2:]}
    copied = [chunk for chunk in kept.chunks if any(b.address not in buffers for b in chunk.buffers()[2:] if b)]
    assert (copied == []) == (sliced or kind == pa.string_view())
    if kind == pa.string_view():
        assert kept.num_chunks == 1
    # The cases' premise: one row in 7 dropped is many, one in 100 (and a NULL in 300) few.
    assert 1_000 // 7 > 1_000 // SLICE_EVERY > 1_000 // 100 + 1_000 // 300


def test_a_mask_that_drops_every_row_or_none_keeps_that():
    from shardsql.definition.evaluator import kept_rows

    column = pa.chunked_array([pa.array(["a", "b", "c"])])
    assert kept_rows(column, pa.array([False, None, False])).to_pylist() == []
    whole = kept_rows(column, pa.chunked_array([pa.array([True]), pa.array([True, True])]))
    assert whole.to_pylist() == ["a", "b", "c"]
    assert whole.chunk(0).buffers()[2].address == column.chunk(0).buffers()[2].address


def test_renamed_column_becomes_text():
    e = evaluator("SELECT code AS text FROM source")
    assert e.check(pa.schema([("code", pa.string()), ("path", pa.string())])) == ["code"]
    assert e.run(pa.table({"code": ["x" * 60]}))["text"].to_pylist() == ["x" * 60]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "SELECT text, id FROM source",
            "exactly one column, `text` of type VARCHAR; it yields: text VARCHAR, id VARCHAR",
        ),
        ("SELECT score AS text FROM source", "it yields: text DOUBLE"),
        ("SELECT text AS body FROM source", "it yields: body VARCHAR"),
        ("SELECT text FROM source; SELECT 1 AS text", "must be one SELECT over source, found 2 statements"),
    ],
)
def test_result_must_be_one_text_column(sql, message):
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluator(sql).check(SCHEMA)


def test_missing_column_lists_the_source_columns():
    with pytest.raises(DefinitionError) as info:
        evaluator("SELECT body AS text FROM source").check(SCHEMA)
    assert 'column "body" not found' in str(info.value)
    assert "The source has these columns: text, id, score, int_score" in str(info.value)
    assert "test.sql:4:" in str(info.value), "line 4 of the file: after the 3 header lines"


def test_syntax_error_names_file_and_line():
    with pytest.raises(DefinitionError, match=r"test\.sql:5: .*lengthx"):
        evaluator("SELECT text FROM source\nWHERE lengthx(text) > 3").check(SCHEMA)


def test_a_definition_cannot_read_files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("x" * 100)
    with pytest.raises(DefinitionError, match="disabled by configuration"):
        evaluator(f"SELECT content AS text FROM read_text('{secret}')").check(SCHEMA)


def test_evaluators_at_once_each_see_their_own_source_and_definition():
    """Row-by-row evaluators are connections to one database of the process (sandbox.py: a new
    database costs 25 to 33 ms to start); each still has its own `source` and its own view of
    its definition, used at once from threads, and the shared database is locked down."""
    import threading

    short = evaluator("SELECT text FROM source WHERE length(text) < 5")
    upper = evaluator("SELECT upper(text) AS text FROM source WHERE int_score >= 3")
    rows = {
        short: pa.table({"text": ["a", "bbbbbbb", "cc"], "int_score": [1, 2, 3]}),
        upper: pa.table({"text": ["x", "y", "z"], "int_score": [3, 1, 4]}),
    }
    want = {short: ["a", "cc"], upper: ["X", "Z"]}
    got: dict[Evaluator, list[list[str]]] = {short: [], upper: []}

    def work(e: Evaluator) -> None:
        e.check(rows[e].schema)
        for _ in range(50):
            got[e].append(e.run(rows[e])["text"].to_pylist())

    threads = [threading.Thread(target=work, args=(e,)) for e in (short, upper)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert got == {e: [want[e]] * 50 for e in (short, upper)}
    with pytest.raises(DefinitionError, match="disabled by configuration"):
        evaluator("SELECT content AS text FROM read_text('/etc/hostname')").check(SCHEMA)


def test_a_definition_cannot_write_files(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(DefinitionError):
        evaluator(f"COPY (SELECT 1) TO '{target}'").check(SCHEMA)
    assert not target.exists()


# DuckDB's error quotes the bytes that are not valid UTF-8: Python 3.11.4 and older raise it with
# no message, 3.11.5+ raise a UnicodeDecodeError instead (tests/test_describe.py). Either way the
# definition's error says so (it said "invalid SQL", or was an unexpected UnicodeDecodeError).
INVALID_TEXT = pa.table({"text": pa.array([b"ok", b"caf\xc3"], pa.binary()).view(pa.string())})
CASTS_TO_BLOB = "SELECT text FROM source WHERE octet_length(text::BLOB) > 0"


def test_a_duckdb_error_on_text_that_is_not_utf8_says_so_on_any_python():
    e = evaluator(CASTS_TO_BLOB)
    e.check(INVALID_TEXT.schema)
    with pytest.raises(DefinitionError, match=r"^test\.sql:.*not valid UTF-8"):
        e.run(INVALID_TEXT)


LENGTH_TESTS = [
    "SELECT text FROM source WHERE length(text) >= {k}",
    "SELECT text FROM source WHERE len(text) > {k}",
    "SELECT text FROM source WHERE char_length(source.text) < {k}",
    "SELECT text FROM source WHERE character_length(text) <= {k}",
    "SELECT text FROM source WHERE {k} <= length(text) AND {k} > length(id)",
    "SELECT text FROM source WHERE NOT (length(text) >= {k}) OR len(tags) >= 2",
]


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.string_view()], ids=str)
@pytest.mark.parametrize("sql", LENGTH_TESTS)
def test_length_thresholds_settled_by_byte_length_keep_what_duckdb_keeps(sql, kind):
    """A length comparison in the mask is answered from the byte length where that settles it
    (definition/mask.py): on texts of 1- to 4-byte characters at and around each threshold's
    bounds (k and 4k bytes), the kept rows are exactly DuckDB's own, NULLs included."""
    import random

    import duckdb

    rng = random.Random(7)
    alphabet = ["a", "é", "日", "🚀"]  # 1, 2, 3 and 4 bytes in UTF-8
    texts: list[str | None] = [None, ""]
    for size in [*range(0, 14), 19, 20, 21, 39, 40, 41, 79, 80, 81]:
        texts += [ch * size for ch in alphabet] + ["".join(rng.choice(alphabet) for _ in range(size)) for _ in range(3)]
    ids = [t[::-1] if t and len(t) % 3 else None for t in texts]
    tags = [["x"] * (i % 4) for i in range(len(texts))]
    table = pa.table({"text": pa.array(texts, kind), "id": pa.array(ids, kind), "tags": tags})
    for k in (0, 1, 2, 5, 10, 20):
        query = sql.format(k=k)
        con = duckdb.connect()
        con.register("source", table)
        expected = [row[0] for row in con.sql(query).fetchall()]
        e = evaluator(query)
        kept = e.run(table)
        assert kept["text"].to_pylist() == expected, (query, kind)
        (mask,) = e._masks.values()  # which comparisons were rewritten
        assert mask is not None and "strlen" in mask, mask
        assert "strlen(tags)" not in mask  # a list's length is not a text's


def test_only_length_comparisons_with_an_integer_on_a_text_column_are_rewritten():
    """Other comparisons are left as the definition wrote them."""
    table = pa.table({"text": ["abc", "abcdef"], "n": [1, 2]})
    for where in ("length(text) >= 2.5", "length(text) = 3", "length(text) + 1 >= n", "length(n::VARCHAR) >= 1",
                  "length(upper(text)) >= 4"):  # fmt: skip
        sql = f"SELECT text FROM source WHERE {where}"
        e = evaluator(sql)
        e.run(table)
        (mask,) = e._masks.values()
        assert mask is not None and "strlen" not in mask, (sql, mask)
