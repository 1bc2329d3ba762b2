"""The shuffled conversion (the default): seeded, spread over the whole source, deduplicated,
with a clean validation split, bounded staging, and the same bytes however it runs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import string
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import killed_at_checkpoint, read_texts
from seed_reference import seed_shards

from shardsql.autoresearch import VAL_SHARD_NAME
from shardsql.cli import cli
from shardsql.commands import convert as pipeline
from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.commands.shuffle_select import STAGE_QUEUE, _Stager
from shardsql.definition import catalog
from shardsql.errors import ConversionError
from shardsql.output import staging
from shardsql.output.checkpoint import PartDraw, ShuffleState
from shardsql.output.verify import verify
from shardsql.progress import Progress
from shardsql.source.draw import Draw
from shardsql.source.files import open_source
from shardsql.standin.samples import LAYOUTS, write_sample

FILES, ROWS_PER_FILE, ROW_GROUP = 12, 600, 50
SQL = "SELECT text FROM source WHERE length(text) >= 12"


def _text(f: int, r: int) -> str:
    """A row's text names its file and row (so a test can tell where each output row came from)."""
    return f"file {f:03d} row {r:05d} " + "lorem ipsum " * (1 + (f * 7 + r) % 9)


def write_source(folder: Path, files: int = FILES, rows: int = ROWS_PER_FILE, duplicates: bool = False) -> Path:
    """Parquet files of `rows` rows each; with `duplicates`, every 5th row repeats a text shared
    by all files and every 7th repeats the row 3 before it (in the same file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        texts = []
        for r in range(rows):
            if duplicates and r % 5 == 0:
                texts.append(f"shared text number {r % 40} across every file")
            elif duplicates and r % 7 == 0 and r >= 3:
                texts.append(texts[r - 3])
            else:
                texts.append(_text(f, r))
        texts[1] = "short"  # filtered out by SQL
        pq.write_table(pa.table({"id": list(range(rows)), "text": texts}), folder / f"part-{f:03d}.parquet",
                       row_group_size=ROW_GROUP)  # fmt: skip
    return folder


def definition_for(folder: Path, sql: str = SQL):
    path = folder.parent / "defs" / "mine.sql"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"-- description: a shuffle test\n-- source: {folder}\n\n{sql}\n")
    return catalog.load_file(path)


@pytest.fixture
def small_slots(tune):
    """Units of about 4 KiB of text: many slots per file, as real files of gigabytes have."""
    tune(unit_bytes=4 << 10)
    tune(min_slot_bytes=1)


def run(definition, cache: Path, **kw):
    options = dict(num_shards=4, rows_per_shard=500, cache_dir=cache, workers=2) | kw
    return convert(definition, ConvertOptions(**options))


def shard_bytes(result) -> list[tuple[str, str]]:
    return [(s.name, s.sha256) for s in result.shards]


def all_texts(result) -> list[str]:
    """Training shards in order, then the validation shard."""
    return [t for s in result.shards for t in read_texts(result.data_dir / s.name)]


def test_same_bytes_for_two_runs_and_any_workers(tmp_path, small_slots):
    definition = definition_for(write_source(tmp_path / "src"))
    one = run(definition, tmp_path / "a", workers=1)
    four = run(definition, tmp_path / "b", workers=4)
    again = run(definition, tmp_path / "c", workers=4)
    assert shard_bytes(one) == shard_bytes(four) == shard_bytes(again)
    assert [s.rows for s in one.shards] == [500] * 5 and one.shards[-1].name == VAL_SHARD_NAME
    for shard in one.shards:  # the sha256 recorded is the file's
        assert shard.sha256 == hashlib.sha256((one.data_dir / shard.name).read_bytes()).hexdigest()
    record = json.loads(one.manifest_path.read_text())
    assert record["order"] == {"order": "shuffled", "seed": 0, "duplicates_removed": 0}
    assert record["options"]["seed"] == 0 and record["options"]["shuffle"] is True
    assert record["validation"]["rows"] == 500 and record["validation"]["tokens"] == one.val_tokens > 0


def test_another_seed_draws_other_units_in_another_order(tmp_path, small_slots):
    folder = write_source(tmp_path / "src")
    definition = definition_for(folder)
    zero, seven = run(definition, tmp_path / "a"), run(definition, tmp_path / "b", seed=7)
    assert all_texts(zero) != all_texts(seven)
    assert set(all_texts(zero)) != set(all_texts(seven)), "another seed draws another sample of units"
    source = open_source(str(folder), None)
    first = lambda seed: [u.start for u in Draw.open(source, ["text"], seed).units()][:10]  # noqa: E731
    assert first(0) != first(7) and sorted(first(0)) != sorted(first(7))


def test_drawing_every_slot_covers_every_row_group_once_in_an_order_fixed_by_the_seed(tmp_path, small_slots):
    folder = write_source(tmp_path / "src")
    source = open_source(str(folder), None)
    drawn = [(u.file_index, g) for u in Draw.open(source, ["text"], 0).units() for g in u.row_groups]
    every = [(f, g) for f in range(FILES) for g in range(ROWS_PER_FILE // ROW_GROUP)]
    assert sorted(drawn) == every and drawn != every
    again = [(u.file_index, u.row_groups) for u in Draw.open(open_source(str(folder), None), ["text"], 0).units()]
    assert again == [(u.file_index, u.row_groups) for u in Draw.open(source, ["text"], 0).units()]
    assert len(again) > FILES, "several units a file"


def _draw_order_selection(folder: Path, wanted: int, seed: int) -> list[str]:
    """Independently of the conversion: the definition over the drawn units in draw order
    (DuckDB over each unit's row groups read by pyarrow), deduplicated, the first `wanted`."""
    source = open_source(str(folder), None)
    seen, out = set(), []
    con = duckdb.connect()
    for unit in Draw.open(source, ["text"], seed).units():
        table = pq.ParquetFile(unit.file.url).read_row_groups(list(unit.row_groups), columns=["text"])
        con.register("source", table)
        for (text,) in con.execute(SQL).fetchall():
            if text not in seen:
                seen.add(text)
                out.append(text)
        if len(out) >= wanted:
            return out[:wanted]
    return out


def test_the_output_is_a_permutation_of_the_first_distinct_rows_in_draw_order(tmp_path, small_slots):
    folder = write_source(tmp_path / "src", duplicates=True)
    result = run(definition_for(folder), tmp_path / "out", seed=3)
    texts = all_texts(result)
    assert sorted(texts) == sorted(_draw_order_selection(folder, 2500, 3))
    unshuffled = run(definition_for(folder), tmp_path / "plain", shuffle=False)
    assert all_texts(unshuffled) != texts


def test_no_duplicate_texts_and_the_shards_are_still_full(tmp_path, small_slots):
    folder = write_source(tmp_path / "src", duplicates=True)
    result = run(definition_for(folder), tmp_path / "out", num_shards=6)
    texts = all_texts(result)
    assert len(texts) == len(set(texts)) == 7 * 500
    assert result.duplicates_removed > 0
    record = json.loads(result.manifest_path.read_text())
    assert record["order"]["duplicates_removed"] == result.duplicates_removed
    val = set(read_texts(result.data_dir / VAL_SHARD_NAME))
    training = [t for s in result.shards[:-1] for t in read_texts(result.data_dir / s.name)]
    assert not val & set(training)
    assert verify(result.data_dir).ok


def test_duplicates_make_it_draw_more_units_until_the_shards_are_full(tmp_path, small_slots):
    # Half of every file is one text repeated: the first round's draw falls short of distinct texts.
    folder = tmp_path / "src"
    folder.mkdir()
    for f in range(FILES):
        texts = [_text(f, r) if r % 2 else "the same text everywhere" for r in range(ROWS_PER_FILE)]
        pq.write_table(pa.table({"text": texts}), folder / f"p{f:02d}.parquet", row_group_size=ROW_GROUP)
    result = run(definition_for(folder), tmp_path / "out", num_shards=4)
    texts = all_texts(result)
    assert len(texts) == len(set(texts)) == 2500 and not result.ran_out
    assert result.rows_kept >= 2 * 2500 - 100


def test_the_rows_come_from_all_over_the_source_in_no_source_order(tune, tmp_path, small_slots):
    tune(unit_bytes=512)  # about 30 rows a unit, 10 units a file
    folder = write_source(tmp_path / "src", files=40, rows=300)
    result = run(definition_for(folder), tmp_path / "out", num_shards=2, rows_per_shard=400)
    ids = [tuple(int(w) for w in t.split()[1:4:2]) for t in all_texts(result)]  # (file, row)
    files = {f for f, _ in ids}
    assert len(files) >= 15 and max(files) >= 30, "not only the first files"
    consecutive = sum(1 for a, b in zip(ids, ids[1:], strict=False) if a[0] == b[0] and b[1] == a[1] + 1)
    assert consecutive <= len(ids) // 100


def test_bytes_fetched_stay_near_an_in_order_run_of_the_same_size(hub, hub_dataset, tmp_path, small_units):
    hub_dataset("fineweb-edu", files=6, rows_per_file=3000, row_group_size=100)
    definition = catalog.resolve("fineweb-edu")
    big = lambda: [r for r in hub.requests if r[0] == "GET" and "/__storage/" in r[1] and r[4] > 4096]  # noqa: E731
    hub.reset_counters()
    run(definition, tmp_path / "plain", shuffle=False, num_shards=3, rows_per_shard=1500)
    plain, plain_reads = hub.bytes_served, big()
    hub.reset_counters()
    run(definition, tmp_path / "shuffled", num_shards=3, rows_per_shard=1500)
    shuffled, shuffled_reads = hub.bytes_served, big()
    print(f"bytes served: {shuffled} shuffled, {plain} in order; data reads {len(shuffled_reads)}, {len(plain_reads)}")
    assert shuffled <= 1.25 * plain + 2 * (64 << 10), (shuffled, plain)
    # Data requests as large as an in-order run's (the footers of the files drawn are the extra, small, requests).
    mean = lambda reads: sum(r[4] for r in reads) / len(reads)  # noqa: E731
    assert mean(shuffled_reads) >= 0.8 * mean(plain_reads), (mean(shuffled_reads), mean(plain_reads))


def test_no_shuffle_is_the_seed_scripts_output(hub, hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu")
    result = run(catalog.resolve("fineweb-edu"), tmp_path, shuffle=False, num_shards=2, rows_per_shard=1000)
    expected, _, _ = seed_shards(sorted(folder.glob("*.parquet")), "text", 2, 1000)
    for name, rows in expected.items():
        assert read_texts(tmp_path / "data" / name) == rows
    assert json.loads(result.manifest_path.read_text())["order"]["order"] == "source"


def test_a_top_level_order_by_keeps_its_order(tmp_path):
    folder = write_source(tmp_path / "src", files=3)
    definition = definition_for(folder, "SELECT text FROM source WHERE length(text) >= 12 ORDER BY text DESC")
    result = run(definition, tmp_path / "out", num_shards=2, rows_per_shard=300)
    texts = all_texts(result)
    assert texts == sorted(texts, reverse=True)
    assert json.loads(result.manifest_path.read_text())["order"]["order"] == "sql"
    shown = CliRunner().invoke(cli, ["show", str(definition.path)])
    assert "its own ORDER BY, kept" in shown.output


def test_a_distinct_definition_is_shuffled_too(tmp_path):
    folder = write_source(tmp_path / "src", files=3, duplicates=True)
    definition = definition_for(folder, "SELECT DISTINCT text FROM source WHERE length(text) >= 12")
    result = run(definition, tmp_path / "out", num_shards=2, rows_per_shard=300)
    texts = all_texts(result)
    assert len(texts) == len(set(texts)) == 900
    assert texts != sorted(texts) and json.loads(result.manifest_path.read_text())["order"]["order"] == "shuffled"
    assert sorted(p.name for p in result.data_dir.iterdir() if not p.name.endswith(".parquet")) == ["manifest.json"]


def test_val_rows_sizes_the_validation_shard(tmp_path, small_slots):
    definition = definition_for(write_source(tmp_path / "src"))
    result = run(definition, tmp_path / "out", num_shards=3, val_rows=777)
    assert [s.rows for s in result.shards] == [500, 500, 500, 777]
    plain = run(definition, tmp_path / "plain", num_shards=3, val_rows=777, shuffle=False)
    assert [s.rows for s in plain.shards] == [500, 500, 500, 777]


@pytest.mark.parametrize("repack", [0, 1 << 30], ids=["as-staged", "repacked"])
def test_staged_units_read_back_as_their_first_occurrences_in_their_piles(tune, tmp_path, repack):
    """stage_unit (run where a unit runs) and Piles.add_staged/flush: each text once per unit,
    at its first occurrence, with its ordinal (the unit's first_g added), its length, in its
    key's pile; a pile's text stream reads back as their rows, their compressed batches as
    staged or (units that kept few rows) joined and compressed again as one."""
    tune(repack_bytes=repack)
    texts = [f"text {i % 37} " + "x" * (i % 37) for i in range(200)]  # repeats within each unit
    a = staging.stage_unit(pa.array(texts[:120]), 3)
    b = staging.stage_unit(pa.chunked_array([texts[120:150], texts[150:]]), 3)
    assert (a.num_rows, b.num_rows) == (120, 80) and staging.stage_unit(pa.array([], pa.string()), 3).rows == 0
    second = 1 << staging.PART_SHIFT
    piles = staging.Piles(tmp_path / "piles", seed=3)
    piles.add_staged(a, 0)
    piles.add_staged(b, second + 5)
    sizes = piles.flush()
    rows = {}
    for leaf in piles.leaves():
        keys, column = staging.leaf_keys(leaf), staging.formats.read_texts(leaf.text).column(0)
        units = len({g >> staging.PART_SHIFT for g in keys["g"].to_pylist()})  # a and b: their parts differ
        batches = len(list(staging.formats.text_batches(leaf.text)))
        assert len(keys) == len(column) and batches == (units if repack == 0 else 1)
        shift = pa.scalar(64 - staging.piles.PILE_BITS, pa.uint64())
        pile = pc.shift_right(staging.shuffle_keys(keys["fp_lo"], 3), shift)
        assert set(pile.to_pylist()) == {leaf.path[0]}
        for g, n, text in zip(keys["g"].to_pylist(), keys["n"].to_pylist(), column.to_pylist(), strict=True):
            assert n == len(text)
            rows[g] = text
    expected = {i: texts[i] for i in range(37)} | {second + 5 + j: texts[120 + j] for j in range(37)}
    assert rows == expected
    assert sizes == {p.name: p.stat().st_size for p in sorted((tmp_path / "piles").glob("*.*"))}


def test_a_piles_texts_are_frames_read_in_place_that_outlive_their_file(tmp_path):
    """A pile's text file is a frame a flush (the units' texts as staged, joined), memory-mapped,
    not copied, when read: what was read stays readable after the file is let go of (a pile's
    texts are deleted once its rows are in the shards, while its last leaf may still be in
    the writer's hands), and a missing or empty file has no texts."""
    rng = random.Random(4)
    texts = [_noise(rng, 2000 + i) for i in range(300)]  # staged as they are: noise does not compress
    piles = staging.Piles(tmp_path / "piles", seed=4, bits=1)
    for start in range(0, 300, 100):
        for unit in range(start, start + 100, 50):  # two units a flush
            piles.add_staged(staging.stage_unit(pa.array(texts[unit : unit + 50]), 4, bits=1), unit)
        piles.flush()
    read = {}
    for leaf in piles.leaves():
        assert len(list(staging.formats.text_batches(leaf.text))) == 3
        allocated = pa.total_allocated_bytes()
        keys, column = staging.leaf_keys(leaf), staging.formats.read_texts(leaf.text).column(0)
        assert pa.total_allocated_bytes() - allocated < leaf.text.stat().st_size / 10  # the texts were not copied
        leaf.text.unlink()
        leaf.keys.unlink()
        read.update(zip(keys["g"].to_pylist(), column.to_pylist(), strict=True))
    assert read == dict(enumerate(texts))
    empty = tmp_path / "empty.text"
    empty.touch()
    assert list(staging.formats.text_batches(empty)) == [] == list(staging.formats.text_batches(tmp_path / "absent"))
    assert staging.formats.read_texts(empty).num_rows == 0


def test_a_damaged_text_file_is_a_one_line_error(tmp_path):
    """A text file cut inside a frame, or whose lengths disagree with its bytes, stops the run
    with a message, not a crash or wrong texts."""
    path = tmp_path / "000.text"
    texts = pa.table({"text": ["first", "second text"]})
    size = staging.formats.append_pieces(path, staging.formats.pieces(texts, [2], compress=False))
    assert staging.formats.read_texts(path).column(0).to_pylist() == ["first", "second text"]
    data = path.read_bytes()
    path.write_bytes(data[: size - 8])
    with pytest.raises(ConversionError, match="damaged"):
        staging.formats.read_texts(path)
    path.write_bytes(data[:20])
    with pytest.raises(ConversionError, match="cut short"):
        staging.formats.read_texts(path)
    header = staging.formats.FRAME.size
    path.write_bytes(data[:header] + (99).to_bytes(8, "little") + data[header + 8 :])  # the first length
    with pytest.raises(ConversionError, match="disagree"):
        staging.formats.read_texts(path)
    lengths = (-6).to_bytes(8, "little", signed=True) + (22).to_bytes(8, "little")  # the right sum, a length < 0
    path.write_bytes(data[:header] + lengths + data[header + 16 :])
    with pytest.raises(ConversionError, match="disagree"):
        staging.formats.read_texts(path)
    rows = staging.formats.FRAME.pack(0, 1000, 16 + 16, 16 + 16)  # more rows than the frame holds lengths for
    path.write_bytes(rows + data[header:])
    with pytest.raises(ConversionError, match="shorter than its lengths"):
        staging.formats.read_texts(path)
    packed = tmp_path / "001.text"
    staging.formats.append_pieces(packed, staging.formats.pieces(texts, [2], compress=True))
    data = packed.read_bytes()
    packed.write_bytes(data[:header] + bytes(len(data) - header))  # zstd's payload zeroed
    with pytest.raises(ConversionError, match="damaged"):
        staging.formats.read_texts(packed)


def test_small_leaves_give_the_same_bytes_within_their_memory_budget(tune, tmp_path, small_slots, monkeypatch):
    """A selection far larger than the sort's budget is split on disk and sorted a leaf at a
    time: no leaf loaded exceeds the budget, and the shards are those of an unsplit run.
    (Copies of one text share a key and are never split apart: see output/staging/.)"""
    definition = definition_for(write_source(tmp_path / "src"))
    whole = run(definition, tmp_path / "whole", num_shards=6)
    tune(leaf_bytes=32 << 10)  # hundreds of leaves: each has a fixed cost
    tune(flush_bytes=16 << 10, pile_flush_bytes=0)
    loaded: list[tuple[Path, int]] = []
    original = staging.formats.read_texts

    def recording(path):
        loaded.append((path, path.stat().st_size if path.exists() else 0))
        return original(path)

    monkeypatch.setattr(staging.formats, "read_texts", recording)
    split = run(definition, tmp_path / "split", num_shards=6)
    assert shard_bytes(split) == shard_bytes(whole)
    staged = sum(len(t) for t in all_texts(split))
    assert max(size for _, size in loaded) <= 32 << 10 and staged > 8 * (32 << 10)
    assert sum("split" in path.parts for path, _ in loaded) > len(loaded) / 2  # most leaves were split ones


def test_the_piles_are_sized_up_front_so_that_none_is_split(tune, tmp_path):
    """A selection too large for 64 piles within the sort budget gets more piles before the
    first unit is drawn, so no pile is split on disk (a split writes its texts again), and the
    shards are the same as with fewer piles, split."""
    assert [staging.pile_bits(n << 20) for n in (0, 100, 10_000, 1 << 30)] == [6, 6, 9, 9]
    assert staging.pile_bits(64 * 24 << 20) == 6 and staging.pile_bits(64 * 24 << 20 | 1) == 7
    definition = definition_for(write_source(tmp_path / "src"))
    before = run(definition, tmp_path / "before", num_shards=6)  # 64 piles, no split: the budget is large
    tune(leaf_bytes=2 << 10)  # a budget 64 piles of this selection pass
    folder = tmp_path / "sized" / ".shardsql-staging" / "piles"
    seen: list[tuple[int, bool]] = []
    staged: list[int] = []

    class Watch(Progress):
        def shard(self, info):
            seen.append((len(list(folder.glob("*.keys"))), (folder / "split").exists()))
            staged.append(staging.disk_bytes(folder))

    sized = convert(definition, ConvertOptions(num_shards=6, rows_per_shard=500, cache_dir=tmp_path / "sized",
                                               workers=2), Watch())  # fmt: skip
    assert staged[0] / 64 > 2 << 10, "64 piles would each pass the budget: they would be split"
    assert seen and all(piles > 64 and not split for piles, split in seen), seen
    assert shard_bytes(sized) == shard_bytes(before)


def test_each_flush_gives_every_pile_its_share_so_a_pile_has_few_appends(tune, tmp_path, monkeypatch):
    """Every flush opens and appends to each pile's files: a flush waits for `pile_flush_bytes`
    a pile, so more piles (a larger selection) do not mean more appends a pile (with a fixed
    flush size, piles times flushes grew as the square)."""
    definition = definition_for(write_source(tmp_path / "src"))
    tune(leaf_bytes=4 << 10, flush_bytes=1 << 10, pile_flush_bytes=2 << 10)  # hundreds of piles, tiny flushes
    appended: dict[str, int] = {}
    staged, bits = [0], set()
    append, add_staged = staging.formats.append_keys, staging.Piles.add_staged

    def counting(path, rows):
        if path.parent.name == "piles":
            appended[path.name] = appended.get(path.name, 0) + 1
        return append(path, rows)

    def adding(self, unit, first_g):
        staged[0] += unit.nbytes
        bits.add(self.bits)
        return add_staged(self, unit, first_g)

    monkeypatch.setattr(staging.formats, "append_keys", counting)
    monkeypatch.setattr(staging.Piles, "add_staged", adding)
    run(definition, tmp_path / "out", num_shards=6)
    (piles,) = {1 << b for b in bits}
    assert piles >= 256 and len(appended) > piles // 2, (piles, len(appended))
    flushes = staged[0] / (piles * (2 << 10))  # each flush holds at least this share a pile
    assert staged[0] / (1 << 10) > 50 * flushes, "flush_bytes alone would give each pile many more appends"
    assert max(appended.values()) <= flushes + 2, (max(appended.values()), flushes)


def test_a_count_over_piles_split_by_their_keys_gives_the_same_selection(tune, tmp_path):
    """The passes that count read the keys alone and split a pile whose keys pass the sort
    budget (the texts stay where they are; a split leaf's files are removed once it is read):
    the selection is the same as from the whole piles."""
    texts = [f"text {i % 1500}" for i in range(6000)]  # 1,500 distinct, each drawn four times
    # 4 piles, each split 16 ways: few leaves, a quick test
    piles, drawn = staging.Piles(tmp_path / "piles", seed=2, bits=2), 0
    for start in range(0, len(texts), 500):
        staged = staging.stage_unit(pa.array(texts[start : start + 500]), 2, bits=2)
        piles.add_staged(staged, drawn)
        drawn += staged.rows
    piles.flush()
    whole = staging.select(piles, [1000], [drawn])
    tune(leaf_bytes=16 << 10)  # a pile's keys: about 48 KB
    assert len(list(piles.leaves(keys_only=True))) > 8 * (1 << 2)  # split, by the keys
    assert staging.select(piles, [1000], [drawn]) == whole
    assert whole == [staging.Selection(rows=1000, cut=999, staged=6000)]


def test_the_cut_is_found_in_one_pass_over_the_keys_as_in_two(tmp_path):
    """Counting keeps, from its one pass over the keys, the first occurrences where a part's cut
    can lie (from its wanted-th ordinal on): the cuts are those that a second pass finds, and
    the brute force's, for two parts whose cuts lie past the first histogram bucket."""
    rng = random.Random(3)
    texts = [f"doc {rng.randrange(60_000)}" for _ in range(80_000)]  # about 44,000 distinct
    piles, drawn = staging.Piles(tmp_path / "piles", seed=5, bits=2), [0, 0]
    for part, (first, last) in enumerate([(0, 70_000), (70_000, 80_000)]):
        for start in range(first, last, 5_000):
            staged = staging.stage_unit(pa.array(texts[start : min(last, start + 5_000)]), 5, bits=2)
            piles.add_staged(staged, part << staging.PART_SHIFT | drawn[part])
            drawn[part] += staged.rows
    piles.flush()
    wanted = [40_000, 1_000]
    # A text is the first part's that drew it (earlier parts first), wherever its cut falls.
    owner: dict[str, tuple[int, int]] = {}
    for part, (first, last) in enumerate([(0, 70_000), (70_000, 80_000)]):
        for ordinal, text in enumerate(texts[first:last]):
            owner.setdefault(text, (part, ordinal))
    cuts = [sorted(o for p, o in owner.values() if p == part)[wanted[part] - 1] for part in range(2)]
    one, two = staging.select(piles, wanted, drawn), staging.select(piles, wanted, drawn, keep_rows=0)
    assert one == two == [staging.Selection(w, c, n) for w, c, n in zip(wanted, cuts, drawn, strict=True)]
    assert cuts[0] > 1 << 16  # past the first bucket of the histogram


def _noise(rng: random.Random, chars: int) -> str:
    """Random words: text that no codec shrinks much, as none shrinks unique prose much more than 2x."""
    return " ".join("".join(rng.choices(string.ascii_letters, k=rng.randint(2, 9))) for _ in range(chars // 6))


def test_texts_are_staged_compressed_only_where_it_pays(tune, tmp_path):
    """Texts a fast codec barely shrinks are staged as they are (compressing them was the
    shuffle's largest cost, and the shards shrink them no more); texts that compress well are
    compressed (the disk budget); a pile's file holding both kinds reads back as its rows."""
    tune(repack_bytes=0)  # each unit's compressed pieces appended as staged, not joined
    rng = random.Random(5)
    noise = [_noise(rng, 300 + i) for i in range(300)]
    repeats = [f"row {i} " + "the same words again and again " * 20 for i in range(300)]
    a, b = staging.stage_unit(pa.array(noise), 1), staging.stage_unit(pa.array(repeats), 1)

    def staged(unit: staging.StagedUnit) -> int:
        return sum(part.size for _, _, piece in unit.piles for part in piece.parts)

    assert staged(a) > 0.95 * a.nbytes and staged(b) < 0.2 * b.nbytes
    assert staged(staging.stage_unit(pa.array(noise), 1, compress=True)) < 0.9 * staged(a)  # a Ray task's
    piles = staging.Piles(tmp_path / "piles", seed=1)
    piles.add_staged(a, 0)
    piles.add_staged(b, 300)
    piles.flush()
    rows = {}
    for leaf in piles.leaves():
        keys, column = staging.leaf_keys(leaf), staging.formats.read_texts(leaf.text).column(0)
        units = len({g >= 300 for g in keys["g"].to_pylist()})
        assert len(list(staging.formats.text_batches(leaf.text))) == units  # a frame a unit, as staged
        rows.update(zip(keys["g"].to_pylist(), column.to_pylist(), strict=True))
    assert rows == dict(enumerate(noise + repeats))


@pytest.mark.parametrize("text", ["sample", "noise"])
def test_the_staging_stays_within_its_disk_budget(tmp_path, small_slots, monkeypatch, text):
    """Staged on disk: at most 2.5x the output's bytes, for text as the generated FineWeb-Edu
    sample has it (repetitive: compressed when staged) and for text that barely compresses
    (staged as it is)."""
    if text == "sample":
        write_sample("fineweb-edu", tmp_path / "repo", files=4, rows_per_file=2000, row_group_size=200)
        definition = definition_for(tmp_path / "repo" / LAYOUTS["fineweb-edu"][2])
    else:
        rng = random.Random(7)
        for f in range(4):
            texts = [_noise(rng, rng.randint(100, 900)) for _ in range(2000)]
            (tmp_path / "src").mkdir(exist_ok=True)
            pq.write_table(pa.table({"text": texts}), tmp_path / "src" / f"{f}.parquet", row_group_size=200)
        definition = definition_for(tmp_path / "src", "SELECT text FROM source")
    peak = []
    original = staging.Piles.flush

    def flush(self):
        sizes = original(self)
        peak.append(staging.disk_bytes(self.folder))
        return sizes

    monkeypatch.setattr(staging.Piles, "flush", flush)
    result = run(definition, tmp_path / "out", num_shards=6)
    output = sum(s.bytes for s in result.shards)
    assert sorted(p.name for p in result.data_dir.iterdir() if not p.name.endswith(".parquet")) == ["manifest.json"]
    assert max(peak) <= 2.5 * output, (max(peak), output)
    assert not (tmp_path / "out" / ".shardsql-staging").exists()


def test_the_draw_goes_on_while_a_checkpoint_is_saved(tmp_path):
    """The select phase's checkpoints are saved on a thread of their own: a save that waits for
    the disk does not hold back the units staged after it (more than the stager's queue holds),
    and closing the stager waits for it, and returns it."""
    piles = staging.Piles(tmp_path / "piles", 0)
    entered, release, saved = threading.Event(), threading.Event(), []

    def save(state):  # a save the disk keeps waiting, as a rename behind the piles' writeback does
        entered.set()
        release.wait(60)
        saved.append(state)

    stager = _Stager(piles, save)
    stager.unit(staging.stage_unit(pa.array(["first", "second"]), 0), 0)
    stager.checkpoint(ShuffleState([PartDraw(staged=2, target=40)], pile_bits=staging.PILE_BITS))
    assert entered.wait(60), "the checkpoint was never saved"
    later = STAGE_QUEUE * 3
    queued = threading.Event()

    def draw():
        for i in range(later):
            stager.unit(staging.stage_unit(pa.array([f"text {i}"]), 0), 2 + i)
        queued.set()

    threading.Thread(target=draw, daemon=True).start()
    try:
        assert queued.wait(60), "the draw waited for the checkpoint's save"
    finally:
        release.set()
    last = stager.close()
    assert len(saved) == 1 and last is saved[0] and last.sizes, "close waits for the save, and returns it"
    piles.flush()
    assert sum(len(staging.leaf_keys(leaf)) for leaf in piles.leaves()) == 2 + later, "every unit is staged"


def _sizes(paths) -> int:
    """The bytes of the files listed, those removed meanwhile (by the piles' remover thread) counting none."""
    total = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def test_the_piles_are_let_go_of_as_the_shards_are_written(tmp_path):
    """Staging's disk shrinks as the shards grow: a pile's texts are removed once every row of it
    is in a complete shard (on a thread, at most a shard later), so the staging folder never
    holds the piles and the shards whole."""
    write_sample("fineweb-edu", tmp_path / "repo", files=4, rows_per_file=2000, row_group_size=200)
    definition = definition_for(tmp_path / "repo" / LAYOUTS["fineweb-edu"][2])
    folder = tmp_path / "out" / ".shardsql-staging"
    held: list[tuple[int, int]] = []  # (the piles' texts' bytes, the shards' bytes) as each shard completes

    class Watch(Progress):
        def shard(self, info):
            held.append((_sizes((folder / "piles").rglob("*.text")), _sizes(folder.glob("*.parquet"))))

    result = convert(definition, ConvertOptions(num_shards=6, rows_per_shard=500, cache_dir=tmp_path / "out"),
                     Watch())  # fmt: skip
    assert len(held) == 7 and held == sorted(held, key=lambda h: h[1])
    (piles_first, _), (piles_last, _) = held[0], held[-1]
    # The piles of every shard but the last are gone (each shard waits for the removals of the one before).
    assert piles_first > 0 and piles_last <= piles_first / 4, held
    assert [texts for texts, _ in held] == sorted((texts for texts, _ in held), reverse=True), held
    # Without letting go, the last shard would find every pile beside every shard.
    output = sum(shard.bytes for shard in result.shards)
    assert max(p + s for p, s in held) <= 1.5 * max(piles_first, output), (held, output)  # their sum: ~2x
    assert shard_bytes(result) == shard_bytes(run(definition, tmp_path / "again", num_shards=6))


def test_dry_run_says_the_staging_and_the_validation_tokens(tmp_path):
    folder = write_source(tmp_path / "src", files=3)
    definition = definition_for(folder)
    dry = ["convert", str(definition.path), "--dry-run", "--val-rows", "200"]
    out = CliRunner().invoke(cli, [*dry, "--num-shards", "20"])
    assert out.exit_code == 0, out.output
    assert "Staging: at most about" in out.output and "Validation: 200 rows, about" in out.output
    assert "Wanted:   20 shards x 86,016 rows + 200 validation rows = 1,720,520 rows kept" in out.output
    assert out.output.split("Validation:")[1].count("--val-rows") == 1
    # Its short texts (about 22 tokens a row): 10 shards hold fewer tokens in all than the threshold, a toy run.
    assert "--val-rows" not in CliRunner().invoke(cli, [*dry, "--num-shards", "10"]).output.split("Validation:")[1]


def test_the_summary_says_duplicates_and_validation_tokens(tmp_path, small_slots):
    folder = write_source(tmp_path / "src", duplicates=True)
    definition = definition_for(folder)
    args = ["convert", str(definition.path), "--num-shards", "2", "--rows-per-shard", "300", "--cache-dir",
            str(tmp_path / "c"), "--yes", "--quiet", "--seed", "5"]  # fmt: skip
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "shuffled (seed 5);" in out.output and "duplicate texts removed" in out.output
    assert "validation: 300 rows, about" in out.output and "--val-rows" not in out.output  # a toy run: no warning
    checked = CliRunner().invoke(cli, ["verify", str(tmp_path / "c" / "data")])
    assert "Validation shard: about" in checked.output and checked.exit_code == 0, checked.output


def test_verify_finds_validation_text_in_a_training_shard(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(pa.table({"text": ["a", "b", "the val text"]}), folder / "shard_00000.parquet")
    pq.write_table(pa.table({"text": ["the val text", "c"]}), folder / VAL_SHARD_NAME)
    report = verify(folder)
    assert any("1 training row repeats a validation text: shard_00000.parquet" in w for w in report.warnings)


# --- SIGKILL in each phase, then resume ------------------------------------------------------

RUNNER = """
import sys
from shardsql import tuning
tuning.use(tuning.Tuning(unit_bytes=4 << 10, min_slot_bytes=1, flush_bytes=16 << 10, pile_flush_bytes=0))
from shardsql.cli import main
sys.argv = ["shardsql"] + sys.argv[1:]
main()
"""
# Where each phase's run is killed: right after a checkpoint of the phase with work in it.
KILL_IN = {
    "select": "c.shuffle is not None and c.shuffle.selected is None and sum(p.staged for p in c.shuffle.parts) > 0",
    "write": "c.shuffle is not None and c.shuffle.selected is not None and len(c.shards) >= 2",
}


def _state(cache: Path) -> dict:
    try:
        return json.loads((cache / ".shardsql-staging" / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return {}


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


@pytest.mark.parametrize("phase", ["select", "write"])
def test_killed_in_either_phase_a_rerun_resumes_to_the_same_bytes(tune, tmp_path, phase, small_slots):
    definition = definition_for(write_source(tmp_path / "src", duplicates=True))
    args = [sys.executable, "-c", RUNNER, "convert", str(definition.path), "--num-shards", "6", "--rows-per-shard",
            "500", "--yes", "--quiet", "--workers", "2"]  # fmt: skip
    tune(flush_bytes=16 << 10, pile_flush_bytes=0)  # RUNNER's settings (small_slots: its units)
    run(definition, tmp_path / "ref", num_shards=6, rows_per_shard=500, workers=2)  # uninterrupted, in this process
    cache = tmp_path / "run"
    killed = [args[0], "-c", killed_at_checkpoint(KILL_IN[phase]) + RUNNER, *args[3:]]
    proc = subprocess.run([*killed, "--cache-dir", str(cache)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    assert (_state(cache)["shuffle"]["selected"] is None) == (phase == "select"), "killed in the other phase"
    staged_before = _staged(_state(cache)["shuffle"])
    resumed = subprocess.run([*args, "--cache-dir", str(cache)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    if phase == "select":
        assert f"after {staged_before:,} rows drawn" in resumed.stderr
    else:
        assert "Resuming an interrupted run after" in resumed.stderr
    assert _hashes(cache / "data") == _hashes(tmp_path / "ref" / "data")


def test_a_resumed_write_phase_reads_no_text_of_the_piles_written_already(tmp_path, small_slots, monkeypatch):
    """A write phase that failed after some shards resumes where it stopped, reading the texts
    of only the piles it had not written in full (their keys say which), to the same bytes."""
    definition = definition_for(write_source(tmp_path / "src"))
    texts_read: list[staging.Leaf] = []
    original_texts = staging.leaf_texts

    def counting(leaf, rows):
        texts_read.append(leaf)
        return original_texts(leaf, rows)

    monkeypatch.setattr(staging, "leaf_texts", counting)
    whole = run(definition, tmp_path / "whole", num_shards=6)
    read_by_whole, texts_read[:] = len(texts_read), []
    original_write = pipeline.write_pieces  # the shuffle's rows are written here, by the local writer
    shards: list[Path] = []

    def failing(pieces, path, row_group_size):
        shards.append(path)
        if len(shards) == 5:
            raise RuntimeError("injected: the fifth shard fails")
        return original_write(pieces, path, row_group_size)

    monkeypatch.setattr(pipeline, "write_pieces", failing)
    with pytest.raises(RuntimeError, match="injected"):
        run(definition, tmp_path / "resumed", num_shards=6)
    monkeypatch.setattr(pipeline, "write_pieces", original_write)
    done = sum(shard["rows"] for shard in _state(tmp_path / "resumed")["shards"])
    texts_read[:] = []
    resumed = run(definition, tmp_path / "resumed", num_shards=6)
    assert shard_bytes(resumed) == shard_bytes(whole)
    # Rows are spread evenly over the piles by their random keys: the piles read are about those not written.
    total = sum(shard.rows for shard in whole.shards)
    assert done >= 1000 and 0 < len(texts_read) <= read_by_whole * (1 - done / total) + 8


def _staged(shuffle: dict) -> int:
    """Rows staged so far, over every part, as the checkpoint records them."""
    return sum(part["staged"] for part in shuffle.get("parts", []))


MEASURE = """
import sys
from shardsql import tuning
tuning.use(tuning.Tuning(unit_bytes=16 << 10, min_slot_bytes=1,
                         leaf_bytes=64 << 10, flush_bytes=128 << 10,
                         pile_flush_bytes=1 << 10))  # a selection many times the budgets
import atexit
from shardsql.cli import main
sys.argv = ["shardsql"] + sys.argv[1:]
# At exit (a successful command ends without returning), the peak of this program's own memory,
# in KiB. Not getrusage's ru_maxrss: Linux carries into it, across exec, the RSS of the process
# that started it (here pytest, 1 GB late in a run).
def peak():
    with open("/proc/self/status") as status:
        print("RSS", next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(peak)
main()
"""


def test_peak_memory_is_flat_in_the_number_of_shards(tmp_path):
    """Four times the shards (and a selection far beyond the staging budgets) adds little to the
    peak RSS: the selection is on disk, never in memory."""
    write_sample("fineweb-edu", tmp_path / "repo", files=4, rows_per_file=4000, row_group_size=200)
    definition = definition_for(tmp_path / "repo" / LAYOUTS["fineweb-edu"][2])
    peaks = []
    for shards in (2, 8):
        cache = str(tmp_path / f"c{shards}")
        args = [sys.executable, "-c", MEASURE, "convert", str(definition.path), "--num-shards", str(shards),
                "--rows-per-shard", "1000", "--yes", "--quiet", "--cache-dir", cache]  # fmt: skip
        done = subprocess.run(args, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        peaks.append(int(done.stdout.split("RSS")[-1]) * 1024)
    print(f"peak RSS: {peaks[0] >> 20} MB for 2 shards, {peaks[1] >> 20} MB for 8")
    assert peaks[1] <= 1.25 * peaks[0] and peaks[1] < 1 << 30


def test_the_dry_runs_estimates_hold_no_more_rows_than_the_source(tmp_path):
    """A source smaller than the job: the staging and the validation shard are estimated from the
    rows it has, not from the rows wanted (4.0 GiB of staging for a 15.6 MiB source, before)."""
    folder = write_source(tmp_path / "src", files=3)
    definition = definition_for(folder)
    out = CliRunner().invoke(cli, ["convert", str(definition.path), "--dry-run", "--num-shards", "20"])
    assert out.exit_code == 0, out.output
    source_rows = int(re.search(r"Total:    ([\d,]+) rows", out.output)[1].replace(",", ""))
    assert source_rows < 86_016
    assert f"Validation: {source_rows:,} rows, about" in out.output
    staged = re.search(r"Staging: at most about ([\d.]+) (B|KiB|MiB|GiB)", out.output)
    scale = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[staged[2]]
    source_bytes = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    assert float(staged[1]) * scale < 20 * source_bytes, (staged[0], source_bytes)
