import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardsql.definition import catalog
from shardsql.errors import SourceError
from shardsql.run.local import LocalExecutor
from shardsql.source import fetch, units
from shardsql.source import files as sources
from shardsql.source.decode import read_unit
from shardsql.source.footers import read_footer
from shardsql.source.scan import Scan

HUB_URL = "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet"


def sparse_copies() -> bool:
    from shardsql.source.sparse import SPARSE

    return SPARSE


def _write(path, rows=2000, row_group_size=400):
    table = pa.table(
        {
            "id": [f"id-{i}" for i in range(rows)],
            "text": [f"document {i} " * (i % 40 + 1) for i in range(rows)],
            "score": [i / 7 for i in range(rows)],
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return table


def test_local_folder_lists_parquet_files_sorted(tmp_path):
    for name in ("b.parquet", "a.parquet", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    source = sources.open_source(str(tmp_path))
    assert [f.url for f in source.files] == [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    assert source.commit is None


def test_a_folder_of_links_lists_the_files_they_link_to_each_once(tmp_path):
    """huggingface_hub's cache holds a download as links: snapshots/<commit>/<path> -> blobs/<hash>.
    Such a folder is a local source like any other (fsspec's listing skipped every link, so it
    was "no parquet files match"); a file reached twice, by two links or through a linked
    folder with `**`, is listed once (its first path), and read the same as the file."""
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc123" / "data"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    table = _write(blobs / "1f2e")
    _write(blobs / "9a8b", rows=100)
    (snapshot / "train-00000.parquet").symlink_to(blobs / "1f2e")
    (snapshot / "train-00001.parquet").symlink_to(blobs / "9a8b")
    (snapshot / "zz-same-as-00000.parquet").symlink_to(blobs / "1f2e")
    (snapshot / "notes.md").write_text("x")
    source = sources.open_source(str(snapshot))
    assert [f.url for f in source.files] == [str(snapshot / f"train-0000{i}.parquet") for i in (0, 1)]
    assert source.local and source.files[0].size == (blobs / "1f2e").stat().st_size
    scan = Scan(source, ["text"], pa.schema([("text", pa.string())]))
    first = [u for u in units.units(source, ["text"]) if u.file == source.files[0]]
    assert pa.concat_tables([read_unit(scan, u) for u in first])["text"] == table["text"]
    (tmp_path / "snapshots" / "latest").symlink_to(tmp_path / "snapshots" / "abc123")
    found = sources.open_source(str(tmp_path / "snapshots" / "**" / "*.parquet")).files
    assert len(found) == 2, [f.path for f in found]


def test_max_files_limits_the_listing(tmp_path):
    for i in range(4):
        (tmp_path / f"{i}.parquet").write_bytes(b"x")
    assert len(sources.open_source(str(tmp_path / "*.parquet"), max_files=2).files) == 2


def test_no_files_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="no parquet files match"):
        sources.open_source(str(tmp_path))


def test_units_read_in_order_with_only_the_asked_columns(tune, tmp_path):
    tune(unit_bytes=1)  # a unit per row group
    table = _write(tmp_path / "a.parquet")
    source = sources.open_source(str(tmp_path))
    found = list(units.units(source, ["text"]))
    assert [u.row_groups for u in found] == [(0,), (1,), (2,), (3,), (4,)]
    scan = Scan(source, ["text"], pa.schema([("text", pa.string())]))
    tables = [read_unit(scan, u) for u in found]
    assert all(t.column_names == ["text"] for t in tables)
    assert pa.concat_tables(tables)["text"] == table["text"]


def test_a_local_files_polars_scan_serves_its_next_units_until_the_file_is_read_again(tune, tmp_path):
    """sparse.py keeps a local file's Polars scan for its next units (Polars parses the whole
    footer for each new scan: 7 ms a unit for 1,200 row groups). It is the same file's only
    while the source holds the same footer: a file written again at the same path, opened
    again, is decoded afresh, never from what the old scan parsed (that made Polars panic)."""
    from shardsql.source import sparse

    tune(unit_bytes=1)  # a unit a row group
    schema = pa.schema([("text", pa.string())])
    path = tmp_path / "a.parquet"
    first = _write(path)
    source = sources.open_source(str(tmp_path))
    found = list(units.units(source, ["text"]))
    assert pa.concat_tables([read_unit(Scan(source, ["text"], schema), u) for u in found])["text"] == first["text"]
    kept = sparse._kept[True, str(path)]
    read_unit(Scan(source, ["text"], schema), found[1])
    assert sparse._kept[True, str(path)] is kept, "the scan is made once for the file's units"
    texts = [f"rewritten {i} " * (i % 7 + 1) for i in range(1200)]  # other texts, other row groups
    pq.write_table(pa.table({"id": ["x"] * 1200, "text": texts, "score": [0.5] * 1200}), path, row_group_size=300)
    again = sources.open_source(str(tmp_path))
    tables = [read_unit(Scan(again, ["text"], schema), u) for u in units.units(again, ["text"])]
    assert pa.concat_tables(tables)["text"].to_pylist() == texts


def test_kept_scans_are_bounded_by_files_and_by_their_footers_bytes(tune, tmp_path, monkeypatch):
    """A kept scan holds its file's parsed metadata (about 10 MB for the ~100-row layout's 4.4 MB
    footer), so sparse.py keeps the last FILES_KEPT files' scans, and fewer where their footers
    come to more than FOOTER_BYTES_KEPT: the least recently used go first. The rows are the same."""
    from shardsql.source import sparse

    tune(unit_bytes=1)
    tables = [_write(tmp_path / f"{name}.parquet", rows=800) for name in "abc"]
    schema = pa.schema([("text", pa.string())])

    def read_all() -> list[str]:
        source = sources.open_source(str(tmp_path))
        found = list(units.units(source, ["text"]))
        assert (
            pa.concat_tables([read_unit(Scan(source, ["text"], schema), u) for u in found])["text"]
            == pa.concat_tables(tables)["text"]
        )
        return sorted(path for local, path in sparse._kept if local and path.startswith(str(tmp_path)))

    paths = [str(tmp_path / f"{name}.parquet") for name in "abc"]
    assert read_all() == paths
    monkeypatch.setattr(sparse, "FILES_KEPT", 2)
    assert read_all() == paths[1:]
    monkeypatch.setattr(sparse, "FILES_KEPT", 8)
    monkeypatch.setattr(sparse, "FOOTER_BYTES_KEPT", 1)  # less than one footer: the file in use only
    assert read_all() == paths[2:]


@pytest.mark.parametrize("workers", [1, 4])
def test_a_conversion_fetches_the_footer_and_the_needed_column_chunks_only(tune, tmp_path, workers):
    tune(unit_bytes=1)  # a unit per row group
    _write(tmp_path / "a.parquet")
    source = sources.open_source(str(tmp_path))
    metadata = pq.ParquetFile(tmp_path / "a.parquet").metadata
    schema = pa.schema([("text", pa.string())])
    scan = Scan(source, ["text"], schema)
    consumed = [0]
    for _, kept in LocalExecutor(workers).row_by_row(scan, _keep_all(tmp_path), lambda: 1000 - consumed[0]):
        consumed[0] += kept.num_rows
        if consumed[0] >= 1000:
            break  # the consumer stops pulling; nothing more was started
    assert consumed[0] == 1200, "three row groups of 400 rows hold the 1000 wanted"
    # The three row groups and no more, whatever the workers: a unit is admitted only while
    # the units in flight are expected to keep fewer rows than are wanted.
    text_chunks = sum(metadata.row_group(i).column(1).total_compressed_size for i in range(3))
    assert source.counter.bytes == metadata.serialized_size + 8 + text_chunks


def test_hub_source_resolves_revision_to_a_commit(hub, hub_dataset):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL, "main")
    assert len(source.commit) == 40
    assert [f.url.rsplit("/", 1)[1] for f in source.files] == [
        "000_00000.parquet",
        "001_00000.parquet",
        "002_00000.parquet",
    ]
    assert all(f.url.startswith("hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/") for f in source.files)
    pinned = sources.open_source(HUB_URL, source.commit)
    assert pinned.commit == source.commit


def test_hub_reads_are_range_requests_only(hub, hub_dataset):
    folder = hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    scan = Scan(source, ["text"], pa.schema([("text", pa.string())]))
    tables = [read_unit(scan, u) for u in units.units(source, ["text"])]
    local = pa.concat_tables(pq.read_table(p, columns=["text"]) for p in sorted(folder.glob("*.parquet")))
    assert pa.concat_tables(tables)["text"] == local["text"]
    gets = [r for r in hub.requests if r[0] == "GET" and ("/resolve/" in r[1] or r[1].startswith("/__storage/"))]
    assert gets and all(r[2] for r in gets), "every file read carries a Range header (the resolve's too)"
    assert hub.bytes_served == source.counter.bytes


def test_column_chunks_cut_into_many_pieces_decode_from_the_pieces_alone(tune, hub, hub_dataset):
    folder = hub_dataset("fineweb-edu")
    tune(piece_bytes=10_000)  # every text column chunk spans several pieces
    source = sources.open_source(HUB_URL)
    scan = Scan(source, ["text"], pa.schema([("text", pa.string())]))
    found = list(units.units(source, ["text"]))
    footer_bytes, footer_requests = source.counter.bytes, source.counter.requests
    tables = [read_unit(scan, u) for u in found]
    local = pa.concat_tables(pq.read_table(p, columns=["text"]) for p in sorted(folder.glob("*.parquet")))
    assert pa.concat_tables(tables)["text"] == local["text"]
    pieces = [p for u in found for p in fetch.pieces(u.ranges)]
    assert len(pieces) > 3 * sum(len(u.ranges) for u in found)
    assert source.counter.requests - footer_requests == len(pieces), "one request a piece, nothing read twice"
    assert source.counter.bytes - footer_bytes == sum(u.fetch_bytes for u in found)


@pytest.mark.parametrize(
    ("url", "revision", "message"),
    [
        ("hf://datasets/nobody/nothing/*.parquet", None, "dataset nobody/nothing not found"),
        (HUB_URL, "no-such-branch", "revision 'no-such-branch' not found"),
    ],
)
def test_hub_errors_are_clear(hub, hub_dataset, url, revision, message):
    hub_dataset("fineweb-edu")
    with pytest.raises(SourceError, match=message):
        sources.open_source(url, revision)


def test_gated_dataset_asks_for_a_token_and_works_with_it(hub, hub_dataset, monkeypatch):
    hub_dataset("fineweb-edu", gated=True)
    source = sources.open_source(HUB_URL)  # as on the Hub, listing a gated repo needs no token
    with pytest.raises(SourceError, match="is gated: accept its terms on the Hub and set HF_TOKEN"):
        read_footer(source, source.files[0])
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    source = sources.open_source(HUB_URL)
    with pytest.raises(SourceError, match="your HF_TOKEN has no access"):
        read_footer(source, source.files[0])
    monkeypatch.setenv("HF_TOKEN", "hf_test_secret_token")
    source = sources.open_source(HUB_URL)
    assert read_footer(source, source.files[0]).num_rows == 3000


def test_truncated_file_is_named(tmp_path):
    _write(tmp_path / "a.parquet")
    data = (tmp_path / "a.parquet").read_bytes()
    (tmp_path / "a.parquet").write_bytes(data[: len(data) // 2])
    source = sources.open_source(str(tmp_path))
    with pytest.raises(SourceError, match=r"a\.parquet is not a parquet file .*truncated"):
        read_footer(source, source.files[0])


def test_corrupt_row_group_names_file_and_row_group(tmp_path):
    _write(tmp_path / "a.parquet")
    metadata = pq.ParquetFile(tmp_path / "a.parquet").metadata
    chunk = metadata.row_group(2).column(1)
    data = bytearray((tmp_path / "a.parquet").read_bytes())
    start = chunk.data_page_offset
    data[start : start + 64] = b"\xff" * 64  # garble the page header of row group 2's text
    (tmp_path / "a.parquet").write_bytes(bytes(data))
    source = sources.open_source(str(tmp_path))
    (unit,) = units.units(source, ["text"])  # one unit holds all five row groups
    with pytest.raises(SourceError, match=r"a\.parquet: row group 2 is corrupt"):
        read_unit(Scan(source, ["text"], pa.schema([("text", pa.string())])), unit)


def test_short_read_is_an_error(tmp_path):
    _write(tmp_path / "a.parquet")
    source = sources.open_source(str(tmp_path))
    file = source.files[0]
    short = sources.SourceFile(file.path, file.url, file.size + 100)  # claims more than there is
    with pytest.raises(SourceError, match=r"after 6 attempts over \d+ s: short read: asked for 60 bytes"):
        source.fetch(short, file.size - 10, file.size + 50)
    assert source.counter.bytes == 0, "a short read is never counted as data"


def _keep_all(folder):
    path = folder / "keep.sql"
    path.write_text(f"-- description: every text\n-- source: {folder}\n\nSELECT text FROM source\n")
    return catalog.load_file(path)


def test_a_range_file_serves_reads_within_a_piece_as_views_of_it(tmp_path):
    """decode.RangeFile, what pyarrow reads a fetched unit through: a read within one piece is
    a view of that piece (no copy of the column chunk), one across adjacent pieces is their
    bytes joined, one outside them is fetched; pyarrow decodes a row group from it."""
    from shardsql.source.decode import RangeFile

    table = _write(tmp_path / "a.parquet")
    data = bytearray((tmp_path / "a.parquet").read_bytes())
    source = sources.open_source(str(tmp_path))
    file = source.files[0]
    chunk = pq.ParquetFile(tmp_path / "a.parquet").metadata.row_group(1).column(1)
    start, end = chunk.data_page_offset, chunk.data_page_offset + chunk.total_compressed_size
    middle = (start + end) // 2
    pieces = {start - 10: data[start - 10 : middle], middle: data[middle : end + 10]}
    handle = RangeFile(source, file, pieces)

    handle.seek(start)
    within = handle.read(middle - start - 5)
    assert isinstance(within, memoryview) and within.obj is pieces[start - 10]
    assert bytes(within) == data[start : middle - 5]
    handle.seek(start)
    assert handle.read(end - start) == data[start:end]  # across the two pieces
    handle.seek(0)
    assert handle.read(4) == b"PAR1"  # outside them: fetched
    parquet = pq.ParquetFile(RangeFile(source, file, pieces), pre_buffer=False)
    assert parquet.read_row_group(1, columns=["text"])["text"] == table["text"].slice(400, 400)


@pytest.mark.parametrize("in_memory", [True, False], ids=["memfd", "temporary-file"])
def test_polars_decodes_a_units_text_from_a_sparse_copy_of_only_its_fetched_ranges(
    tune, hub, hub_dataset, monkeypatch, in_memory
):
    """decode.py hands Polars a copy of a remote file that holds only the unit's fetched ranges
    and the footer, at their offsets, and slices the file's rows to the unit's: Polars must read
    nothing else (a hole reads as zeros), for a unit in the middle of a file as at its start.
    Noticing if Polars ever reads outside a slice's row groups is this test's job. In memory
    (one copy a file) where the system has memfd, else a temporary file a unit (macOS)."""
    from shardsql.source import sparse
    from shardsql.source.decode import _read_texts, fetch_unit
    from shardsql.source.sparse import polars_scan

    if in_memory and not sparse.SPARSE:
        pytest.skip("no memfd here")
    monkeypatch.setattr(sparse, "SPARSE", in_memory)

    folder = hub_dataset("fineweb-edu")
    tune(unit_bytes=1)  # a unit a row group
    source = sources.open_source(HUB_URL)
    found = list(units.units(source, ["text"]))
    assert len({u.file for u in found}) < len(found) > 2, "several units a file"
    local = pq.ParquetFile(sorted(folder.glob("*.parquet"))[0])
    for unit in [u for u in found if u.file == found[0].file][:3]:
        footer = read_footer(source, unit.file)
        with polars_scan(source, unit, footer, fetch_unit(source, unit)) as scan:
            texts = _read_texts(scan, footer, unit.row_groups, ["text"])
        assert texts is not None, "Polars read outside the fetched ranges, or refused them"
        assert texts.schema.field("text").type == pa.string_view()
        assert texts["text"].to_pylist() == local.read_row_groups(unit.row_groups, columns=["text"])["text"].to_pylist()


@pytest.mark.skipif(not sparse_copies(), reason="sparse copies in memory need memfd and MADV_REMOVE (Linux)")
def test_a_remote_files_sparse_copy_is_scanned_once_and_holds_only_the_units_being_decoded(tune, hub, hub_dataset):
    """A remote file's units are decoded from one sparse copy of it in memory, scanned once (its
    footer parsed once, not once a unit), that holds the footer and the ranges of the units
    being decoded: each unit's are removed once it is decoded, so a file's copy never grows to
    the file's size; and the rows are the file's."""
    import os

    from shardsql.source import sparse

    folder = hub_dataset("fineweb-edu")
    tune(unit_bytes=1)  # a unit a row group
    source = sources.open_source(HUB_URL)
    schema = pa.schema([("text", pa.string())])
    file = source.files[0]
    mine = [u for u in units.units(source, ["text"]) if u.file == file]
    assert len(mine) > 2
    tables, scans, held = [], set(), []
    for unit in mine:
        tables.append(read_unit(Scan(source, ["text"], schema), unit))
        copy = sparse._kept[False, file.path]
        scans.add(id(copy.scan))
        held.append(os.fstat(copy.fd).st_blocks * 512)
    local = pq.read_table(sorted(folder.glob("*.parquet"))[0], columns=["text"])
    assert pa.concat_tables(tables)["text"].to_pylist() == local["text"].to_pylist()
    assert len(scans) == 1, "one scan for the file's units"
    # Memory held after each unit: about the footer and a unit's bytes (pages Polars read outside
    # the ranges, in holes, are given memory), not growing with the units decoded.
    footer, unit_bytes = len(read_footer(source, file).tail), max(u.fetch_bytes for u in mine)
    assert max(held) <= footer + 2 * unit_bytes and max(held) < file.size / 4, (held, footer, unit_bytes, file.size)
    assert max(held) - held[0] <= 2 * 4096, f"the copy grew by {max(held) - held[0]} bytes over {len(mine)} units"


def test_text_arrives_as_string_views_other_columns_as_their_files_types(tmp_path, hub, hub_dataset):
    """The scan's schema reads text as string views (Polars' decode) and every other column as
    its files' type (pyarrow's decode): the same rows from a local folder and through the Hub."""
    from shardsql.source.schemas import source_schema

    folder = hub_dataset("fineweb-edu")
    tables = {}
    for name, url in [("local", str(folder)), ("hub", HUB_URL)]:
        source = sources.open_source(url)
        schema = source_schema(source, ["text", "score", "id"])
        scan = Scan(source, ["text", "score", "id"], schema)
        tables[name] = pa.concat_tables(read_unit(scan, u) for u in units.units(source, scan.columns))
    files = sorted(folder.glob("*.parquet"))
    expected = pa.concat_tables(pq.read_table(p, columns=["id", "text", "score"]) for p in files)
    for table in tables.values():
        assert dict(zip(table.column_names, table.schema.types, strict=True)) == {
            "id": pa.string_view(),
            "text": pa.string_view(),
            "score": expected.schema.field("score").type,
        }
        assert table.select(["id", "text", "score"]).to_pylist() == expected.to_pylist()


def test_a_part_says_its_text_is_checked_only_where_polars_decoded_all_of_it(tmp_path, monkeypatch):
    """decode.Part.utf8_checked: true where every text column was decoded by Polars (which
    checks UTF-8) and no other column holds text; false for a struct of strings beside it, and
    for a row group Polars refused (its bytes are not UTF-8), which pyarrow decodes instead."""
    from shardsql.source import decode as decoding
    from shardsql.source.schemas import source_schema

    monkeypatch.setattr(decoding, "PART_BYTES", 1)  # a part a row group
    bad = pa.array([b"caf\xc3 au lait", b"fine"], pa.binary()).view(pa.string())
    table = pa.table({"text": pa.concat_arrays([pa.array(["good text"] * 4), bad]),
                      "meta": [{"note": "n"}] * 6, "score": [1.0] * 6})  # fmt: skip
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=2)
    source = sources.open_source(str(tmp_path))
    checked = {}
    for columns in (["text", "score"], ["text", "meta"]):
        scan = Scan(source, columns, source_schema(source, columns))
        parts = [p for u in units.units(source, columns) for p in decoding.decode(scan, u, {})]
        checked[tuple(columns)] = [(p.row_groups, p.utf8_checked) for p in parts]
        assert pa.concat_tables(p.rows for p in parts)["text"].slice(0, 4).to_pylist() == ["good text"] * 4
    assert checked[("text", "score")] == [((0,), True), ((1,), True), ((2,), False)]
    assert checked[("text", "meta")] == [((0,), False), ((1,), False), ((2,), False)]


def test_a_unit_missing_a_fetched_piece_still_decodes_by_fetching_it(tune, hub, hub_dataset):
    """The plan is an optimisation, never a correctness risk: where a unit's fetched pieces lack
    one, Polars finds zeros in its sparse copy and fails, and pyarrow decodes the part instead,
    fetching the bytes it lacks (counted)."""
    folder = hub_dataset("fineweb-edu")
    tune(piece_bytes=10_000)  # a text column chunk spans several pieces
    source = sources.open_source(HUB_URL)
    unit = next(iter(units.units(source, ["text"])))
    data = fetch.pieces(unit.ranges)
    pieces = {start: source.fetch(unit.file, start, end) for start, end in data}
    missing = sorted(pieces)[len(pieces) // 2]
    del pieces[missing]
    before = source.counter.bytes
    table = read_unit(Scan(source, ["text"], pa.schema([("text", pa.string_view())])), unit, pieces)
    local = pq.ParquetFile(sorted(folder.glob("*.parquet"))[0]).read_row_groups(unit.row_groups, columns=["text"])
    assert table["text"].to_pylist() == local["text"].to_pylist()
    assert source.counter.bytes > before, "the missing bytes were fetched"
