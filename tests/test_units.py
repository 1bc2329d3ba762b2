"""The source split into units: every row group once, in order, and which byte ranges each fetches."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardsql.source import units
from shardsql.source.files import open_source
from shardsql.source.footers import read_footer


def needed_bytes(source, unit, columns) -> int:
    """Compressed bytes of the unit's needed column chunks."""
    footer = read_footer(source, unit.file)
    return sum(e - s for g in unit.row_groups for s, e in units.chunk_ranges(footer, g, columns))


def test_coalesce_merges_overlaps_and_small_gaps_always():
    assert units.coalesce([(0, 10), (5, 20), (20, 30)]) == [(0, 30)]
    assert units.coalesce([(0, 100), (100 + units.SMALL_GAP, 200 + units.SMALL_GAP)]) == [(0, 200 + units.SMALL_GAP)]


def test_coalesce_fetches_the_smallest_gaps_within_the_budget():
    mb = 1 << 20
    # 10 MB needed: a 1 MB and a 0.4 MB gap fit in 15%, the 5 MB gap does not.
    ranges = [(0, 4 * mb), (5 * mb, 7 * mb), (12 * mb, 14 * mb), (14 * mb + 400_000, 16 * mb + 400_000)]
    assert units.coalesce(ranges, budget=1.15) == [(0, 7 * mb), (12 * mb, 16 * mb + 400_000)]
    assert units.coalesce(ranges, budget=1.0) == ranges
    assert units.coalesce(ranges, budget=2.0) == [(0, 16 * mb + 400_000)]


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


def test_units_cover_every_row_group_once_in_order(tune, two_files):
    tune(unit_bytes=100_000)
    found = list(units.units(two_files, ["text"]))
    assert [(u.file_index, g) for u in found for g in u.row_groups] == [(f, g) for f in range(2) for g in range(10)]
    assert all(len(u.row_groups) < 10 for u in found) and sum(u.rows for u in found) == 2000
    for u in found:  # a unit closes once it has enough bytes
        assert needed_bytes(two_files, u, ["text"]) >= 100_000 or u.row_groups[-1] == 9


def test_units_start_where_asked_and_read_footers_lazily(two_files):
    found = units.units(two_files, ["text"], start=(1, 4))
    first = next(found)
    assert first.start == (1, 4)
    assert list(two_files.footers) == [two_files.files[1].path], "the first file's footer is not needed"


def test_growing_units_start_with_one_row_group(two_files):
    sizes = [len(u.row_groups) for u in units.units(two_files, ["text"], grow=True)]
    assert sizes[:2] == [1, 2] and sizes[2] >= 4, "each unit about twice the bytes of the one before"


def test_a_unit_fetches_the_needed_chunks_and_little_else(two_files):
    footer = read_footer(two_files, two_files.files[0])
    unit = next(units.units(two_files, ["text", "int_score"]))
    needed = [r for g in unit.row_groups for r in units.chunk_ranges(footer, g, ["text", "int_score"])]
    assert unit.fetch_bytes <= units.GAP_BUDGET * sum(e - s for s, e in needed)
    for start, end in needed:  # every needed byte is in a fetched range
        assert any(s <= start and end <= e for s, e in unit.ranges)
    assert len(unit.ranges) < len(needed)


def test_a_units_ranges_are_every_leaf_of_its_columns_and_no_other(tmp_path):
    """A top-level column's chunks are all its leaves (a struct's fields, a list's elements),
    matched ignoring case, found from the schema once: the same chunks as every row group has."""
    table = pa.table(
        {
            "Text": [f"text number {i} of three hundred" for i in range(300)],
            "meta": [{"url": f"u{i}", "tags": [str(i)] * (i % 3)} for i in range(300)],
            "score": list(range(300)),
        }
    )
    pq.write_table(table, tmp_path / "nested.parquet", row_group_size=100)
    source = open_source(str(tmp_path))
    footer = read_footer(source, source.files[0])
    group = footer.metadata.row_group(1)
    paths = [group.column(j).path_in_schema for j in range(group.num_columns)]
    assert [paths[j] for j in footer.leaves(["META", "text"])] == ["Text", "meta.url", "meta.tags.list.element"]
    assert footer.leaves(["score"]) == (paths.index("score"),)
    for index in range(footer.metadata.num_row_groups):
        chunks = [footer.metadata.row_group(index).column(j) for j in range(group.num_columns)]
        wanted = [c for c in chunks if c.path_in_schema.split(".")[0] in ("Text", "meta")]
        starts = [min(c.data_page_offset, c.dictionary_page_offset or c.data_page_offset) for c in wanted]
        expected = [(s, s + c.total_compressed_size) for s, c in zip(starts, wanted, strict=True)]
        assert units.chunk_ranges(footer, index, ["text", "Meta"]) == expected
        assert footer.group_rows(index) == 100
    sizes = {"Text": 0, "meta": 0, "score": 0}  # each top-level column's compressed bytes, from every chunk
    for chunk in footer.chunks():
        sizes[chunk.path_in_schema.split(".")[0]] += chunk.total_compressed_size
    assert footer.cheapest_column() == min(sizes, key=sizes.__getitem__)
    assert len(set(sizes.values())) == 3  # (the premise: one is the cheapest)
