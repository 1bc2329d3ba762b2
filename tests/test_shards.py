import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import read_texts, row_groups

from shardsql.errors import ConversionError
from shardsql.output.shards import (
    RowStream,
    ShardSizes,
    ShardWriter,
    TextDigest,
    char_counts,
    check_shard,
    shard_name,
    write_pieces,
)

SIZES = [700, 1500, 333, 5000, 17]


def numbered(total_batches=100):
    """Batches of uneven sizes whose rows are numbered 0, 1, 2, ... across batches."""
    start = 0
    for b in range(total_batches):
        n = SIZES[b % len(SIZES)]
        yield pa.table({"text": [f"{start + i:08d} document" for i in range(n)]})
        start += n


def write_shards(batches, folder, *, num_shards, rows_per_shard, row_group_size=1024, position=None, **options):
    """The shards of `batches`, written as a conversion writes them: a ShardWriter, entered and left."""
    with ShardWriter(folder, ShardSizes(num_shards, rows_per_shard, row_group_size), **options) as writer:
        return writer.write(batches, position) if position else writer.write(batches)


def test_row_stream_cuts_exact_pieces_across_batches():
    stream = RowStream(numbered(3))
    assert [t.num_rows for t in stream.take(1000)] == [700, 300]
    assert sum(t.num_rows for t in stream.take(10_000)) == 1533
    assert stream.exhausted


def test_shards_are_consecutive_exact_and_the_last_is_validation(tmp_path):
    shards = write_shards(numbered(), tmp_path, num_shards=3, rows_per_shard=2500)
    assert [s.name for s in shards] == [
        "shard_00000.parquet",
        "shard_00001.parquet",
        "shard_00002.parquet",
        "shard_06542.parquet",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(s.name for s in shards), "no partial files left"
    rows = [t for s in shards for t in read_texts(tmp_path / s.name)]
    assert rows == [f"{i:08d} document" for i in range(10_000)]
    for s in shards:
        assert row_groups(tmp_path / s.name) == [1024, 1024, 452] == s.row_groups
        assert s.bytes == (tmp_path / s.name).stat().st_size
        assert pq.read_schema(tmp_path / s.name).names == ["text"]


def test_writer_stops_pulling_once_full(tmp_path):
    pulled = []

    def batches():
        for i, batch in enumerate(numbered()):
            pulled.append(i)
            yield batch

    write_shards(batches(), tmp_path, num_shards=1, rows_per_shard=1000)
    assert len(pulled) == 2, "700 + 1500 rows cover the 2000 wanted"


def test_source_running_out_makes_the_remainder_the_validation_shard(tmp_path):
    shards = write_shards(numbered(2), tmp_path, num_shards=5, rows_per_shard=1000)
    assert [(s.name, s.rows) for s in shards] == [
        ("shard_00000.parquet", 1000),
        ("shard_00001.parquet", 1000),
        ("shard_06542.parquet", 200),
    ]


def test_exact_fit_leaves_no_empty_shard(tmp_path):
    shards = write_shards(numbered(2), tmp_path, num_shards=5, rows_per_shard=1100)
    assert [(s.name, s.rows) for s in shards] == [("shard_00000.parquet", 1100), ("shard_06542.parquet", 1100)]


def test_custom_row_group_size(tmp_path):
    shards = write_shards(numbered(), tmp_path, num_shards=1, rows_per_shard=1000, row_group_size=300)
    assert shards[0].row_groups == [300, 300, 300, 100]


def test_an_error_in_the_stream_propagates_unchanged_and_leaves_no_partial_file(tmp_path):
    class NetworkDown(Exception):
        pass

    def failing():
        yield pa.table({"text": ["x" * 60] * 1500})
        raise NetworkDown("connection reset")

    with pytest.raises(NetworkDown, match="connection reset"):
        write_shards(failing(), tmp_path, num_shards=2, rows_per_shard=1000)
    assert [p.name for p in tmp_path.iterdir()] == ["shard_00000.parquet"]


def test_check_shard_rejects_wrong_row_groups_and_columns(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": ["x"] * 3000}), path, row_group_size=1000)
    with pytest.raises(ConversionError, match=r"row groups \[1000, 1000, 1000\]"):
        check_shard(path, 3000, 1024)
    pq.write_table(pa.table({"body": ["x"] * 10}), path)
    with pytest.raises(ConversionError, match="expected \\['text'\\]"):
        check_shard(path, 10, 1024)


@pytest.mark.parametrize("writers", [1, 2, 5])
def test_any_number_of_writers_gives_the_same_bytes_and_calls_back_in_order(tmp_path, writers):
    calls = []
    shards = write_shards(
        numbered(), tmp_path / str(writers), num_shards=6, rows_per_shard=1300,
        on_shard=lambda info, token: calls.append((info.name, token)), position=lambda pending: f"pending {pending}",
        writers=writers,
    )  # fmt: skip
    reference = write_shards(numbered(), tmp_path / "one", num_shards=6, rows_per_shard=1300, writers=1)
    assert [s.sha256 for s in shards] == [s.sha256 for s in reference]
    # Shard k takes rows [1300k, 1300(k+1)); the batches pulled so far, less those rows, are pending.
    batch_ends = [sum(SIZES[i % 5] for i in range(n + 1)) for n in range(40)]
    expected = [next(e for e in batch_ends if e >= 1300 * (k + 1)) - 1300 * (k + 1) for k in range(7)]
    assert calls == [(shard_name(k), f"pending {expected[k]}") for k in range(7)]


def test_a_failing_writer_raises_its_error_and_leaves_no_partial_file(tmp_path):
    def batches():
        yield pa.table({"text": ["x" * 60] * 1500})
        yield pa.table({"text": [1, 2, 3]})  # not text: Polars refuses it while writing shard 1

    # Polars raises a PanicException (a BaseException) for a schema it did not expect.
    with pytest.raises(BaseException, match="incompatible with expected type String"):
        write_shards(batches(), tmp_path, num_shards=3, rows_per_shard=1000, writers=2)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert not [t for t in threading.enumerate() if t.name.startswith("shardsql-write")]


def test_the_text_digest_does_not_depend_on_batching():
    texts = [f"text {i} " * (i % 7) for i in range(1000)]
    whole, pieces = TextDigest(), TextDigest()
    whole.update(pa.table({"text": texts}))
    table = pa.table({"text": pa.array(texts, pa.large_string())})
    for start in (0, 3, 250, 251, 900):  # uneven slices, with offsets into shared buffers
        pieces.update(table.slice(start, {0: 3, 3: 247, 250: 1, 251: 649, 900: 100}[start]))
    assert whole.hexdigest() == pieces.hexdigest()
    other = TextDigest()
    other.update(pa.table({"text": texts[:-1] + ["different"]}))
    assert other.hexdigest() != whole.hexdigest()
    moved = TextDigest()  # the same bytes cut into other texts differ
    moved.update(pa.table({"text": ["ab", "c"]}))
    cut = TextDigest()
    cut.update(pa.table({"text": ["a", "bc"]}))
    assert moved.hexdigest() != cut.hexdigest()


def test_a_failed_shard_is_never_skipped_by_the_ones_after_it(tmp_path):
    """Shard 1's writer fails (a full disk) after shard 2, written beside it, has finished:
    shard 2 must not be recorded, or a resumed run would go on from it and lose shard 1."""
    shard_2_done = threading.Event()

    def encode(pieces, path, row_group_size):
        pieces = list(pieces)
        if path.name.startswith(shard_name(1)):
            assert shard_2_done.wait(timeout=60), "shard 2 is written while shard 1 still runs"
            raise OSError(28, "No space left on device")
        written = write_pieces(iter(pieces), path, row_group_size)
        if path.name.startswith(shard_name(2)):
            shard_2_done.set()
        return written

    recorded = []
    with pytest.raises(OSError, match="No space left"):
        write_shards(numbered(), tmp_path, num_shards=5, rows_per_shard=2500,
                     on_shard=lambda info, _: recorded.append(info.name), writers=2, encode=encode)  # fmt: skip
    assert recorded == [shard_name(0)], "shards after a failed one are not recorded"


def test_char_counts_are_pythons_len_and_duckdbs_length_for_any_text():
    """Characters are code points, as Python's `len` and DuckDB's `length` count them (the
    seed's `len(text) >= 50`): combining marks, emoji with modifiers and flags, CJK and
    4-byte characters each count as their code points; NULL stays NULL; string and
    large_string, whole or in chunks, sliced or not, give the same."""
    import duckdb

    texts = ["", "a", "abc", "é", "e\u0301", "🇫🇷", "👍🏽x", "日本語テキスト", "𝔘𝔫𝔦", "tab\tand\nnewline", None]
    texts.append("x" * 5000)
    want = [None if t is None else len(t) for t in texts]
    con = duckdb.connect()
    got_duckdb = [r[0] for r in con.execute("SELECT length(t) FROM unnest(?::VARCHAR[]) AS u(t)", [texts]).fetchall()]
    assert got_duckdb == want
    for kind in (pa.string(), pa.large_string()):
        whole = pa.array(texts, kind)
        chunked = pa.chunked_array([whole.slice(0, 5), whole.slice(5)])
        for column in (whole, chunked, whole.slice(3)):
            counts = char_counts(column)
            assert counts.type == pa.int64()
            assert counts.to_pylist() == want[len(texts) - len(column) :]
