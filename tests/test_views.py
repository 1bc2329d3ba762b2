"""Texts as string views (output/views.py): a take moves the rows and shares the texts' bytes,
the fingerprints read views in place, and the shuffle's write phase hands the shard writer
texts read where they were staged."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest
import xxhash

from shardsql.output import staging, views
from shardsql.output.fingerprints import fingerprints
from shardsql.output.interleave import RowQueue

# Texts of every kind a view holds: inline (at most 12 bytes, the empty one too), in a data
# buffer (13 bytes and more), and not ASCII.
TEXTS = ["", "a", "twelve bytes", "thirteen byte", "é" * 7, "日本語のテキスト", "x" * 5000] + [
    f"row {i} " + "y" * (i % 40) for i in range(200)
]


def _addresses(array: pa.Array) -> set[int]:
    """The addresses of an array's data buffers (after validity, and offsets or views)."""
    return {buffer.address for buffer in array.buffers()[2:] if buffer is not None and buffer.size}


@pytest.mark.parametrize("kind", [pa.large_string(), pa.string(), pa.string_view()])
def test_a_take_gives_the_rows_in_order_and_shares_their_bytes(kind):
    source = pa.array(TEXTS, pa.large_string()).cast(kind)
    order = list(range(len(TEXTS)))
    random.Random(1).shuffle(order)
    taken = views.take(pa.chunked_array([source.slice(0, 50), source.slice(50)]), pa.array(order, pa.int64()))
    assert pa.types.is_string_view(taken.type)
    assert taken.to_pylist() == [TEXTS[i] for i in order]
    assert _addresses(taken) and _addresses(taken) <= _addresses(source)  # no text was copied


def test_equal_compares_texts_of_any_string_type():
    a = pa.array(TEXTS, pa.large_string())
    assert views.equal(a, a.cast(pa.string_view()))
    assert not views.equal(a, pa.array([*TEXTS[:-1], "other"], pa.string_view()))
    assert not views.equal(a, a.slice(1))


def test_fingerprints_of_views_read_in_place_are_those_of_the_strings():
    """Inline and buffered views, a slice, several data buffers and NULLs (read as the empty
    text) all give the xxh3-128 of each text's UTF-8 bytes."""
    strings = pa.array(TEXTS, pa.large_string())
    many_buffers = pa.concat_arrays(
        [strings.slice(0, 100).cast(pa.string_view()), strings.slice(100).cast(pa.string_view())]
    )
    assert len(many_buffers.buffers()) > 3
    expected = [xxhash.xxh3_128_digest(t.encode()) for t in TEXTS]
    cases = {
        "strings": strings,
        "views": strings.cast(pa.string_view()),
        "several buffers": many_buffers,
        "chunked, sliced": pa.chunked_array([many_buffers.slice(0, 3), many_buffers.slice(3)]),
    }
    for name, texts in cases.items():
        hi, lo = fingerprints(texts)
        pairs = zip(hi.to_pylist(), lo.to_pylist(), strict=True)
        got = [h.to_bytes(8, "little") + low.to_bytes(8, "little") for h, low in pairs]
        assert got == expected, name
    with_null = pa.array(["abc", None, "z" * 20], pa.string_view())
    hi, lo = fingerprints(with_null)
    assert (hi[1].as_py(), lo[1].as_py()) == tuple(fingerprints(pa.array([""]))[i][0].as_py() for i in (0, 1))


def _mapped(path: Path) -> list[tuple[int, int]]:
    """The address ranges where this process maps `path` (Linux: /proc/self/maps)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] == str(path):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def test_a_leafs_texts_are_read_where_they_were_staged(tmp_path):
    """The write phase's texts are views into the memory-mapped pile: no text is copied
    between the staging file and the shard writer."""
    rng = random.Random(2)  # texts that do not compress: staged as they are
    texts = [f"text {i} " + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=i % 60)) for i in range(300)]
    piles = staging.Piles(tmp_path / "piles", seed=2, bits=1)
    for start in range(0, 300, 100):
        piles.add_staged(staging.stage_unit(pa.array(texts[start : start + 100]), 2, bits=1), start)
        piles.flush()
    got = []
    for leaf in piles.leaves():
        order = staging.ordered(staging.leaf_keys(leaf), 2, [len(texts)])
        selected = staging.leaf_texts(leaf, order)
        assert pa.types.is_string_view(selected.type)
        ranges = _mapped(leaf.text.resolve())
        assert ranges and all(any(a <= x < b for a, b in ranges) for x in _addresses(selected))
        got += selected.to_pylist()
    assert sorted(got) == sorted(texts)


def test_a_row_queue_counts_views_by_their_texts_not_their_buffers(tune, tmp_path):
    """A slice of views holds the buffers of all the rows it was cut from: a queue that counted
    those would spill rows that fit; and views it does spill come back as their texts."""
    tune(queue_bytes=64 << 10)
    big = pa.array(["w" * 1000 + str(i) for i in range(1000)], pa.large_string()).cast(pa.string_view())  # 1 MB
    queue = RowQueue(tmp_path / "q.arrow")
    queue.put(big.slice(0, 10), pa.array([1004] * 10, pa.int64()))
    assert not queue.on_disk and 10_000 <= queue.bytes < 11_000
    queue.put(big.slice(10, 100), pa.array([1004] * 100, pa.int64()))  # 100 KB of texts: past the budget
    assert queue.on_disk == 1 and (tmp_path / "q.arrow").stat().st_size < 200_000
    pieces, _ = queue.take(110)
    assert [t for piece in pieces for t in piece.to_pylist()] == big.slice(0, 110).to_pylist()
    assert queue.bytes == 0


def test_staged_pieces_read_back_however_small_their_rows(tmp_path):
    """A unit's pieces as they are are slices of its buffers, joined in one frame at a flush:
    one-row pieces of empty texts (payloads that are all lengths) and a piece of texts read back
    as they were, in order, with a compressed piece between them in a frame of its own."""
    empty = pa.table({"text": pa.array([""] * 512, pa.large_string())})
    words = pa.table({"text": pa.array(["a", "bc", "déf"] * 40, pa.large_string())})
    path = tmp_path / "000.text"
    staged = [
        *staging.formats.pieces(empty, [1] * 512, compress=False),
        *staging.formats.pieces(words, [120], compress=True),
        *staging.formats.pieces(words, [100, 20], compress=False),
    ]
    assert staging.formats.append_pieces(path, staged) == path.stat().st_size
    frames = list(staging.formats.text_batches(path))
    assert [len(frame) for frame in frames] == [512, 120, 120]
    expected = [""] * 512 + words.column(0).to_pylist() * 2
    assert staging.formats.read_texts(path).column(0).to_pylist() == expected


def test_rows_of_words_read_as_one_column_a_word():
    """output/words.py: the fingerprints' halves and a keys file's columns, from rows of 64-bit words."""
    import struct

    from shardsql.output.words import word_columns

    rows = [(1, 2, 3), (4, 5, 6), ((1 << 64) - 1, 0, 7)]
    data = pa.py_buffer(struct.pack("<9Q", *[w for row in rows for w in row]) + b"spare")
    assert [c.to_pylist() for c in word_columns(data, 3, 3)] == [list(col) for col in zip(*rows, strict=True)]
    assert [c.to_pylist() for c in word_columns(data, 3, 2)] == [[1, 4], [2, 5], [3, 6]]
