"""The shuffle's staging: kept rows scattered into piles on disk, then deduplicated, cut and sorted.

A shuffled conversion (commands/shuffle.py) never holds its selection in memory. Every
kept row gets a 128-bit fingerprint of its text (xxh3-128 of the UTF-8 bytes, read from
the Arrow buffers: stable across versions and processes), its global ordinal `g` in draw
order, and a 64-bit shuffle key, a seeded mix of the fingerprint: duplicates share a key.
Rows are scattered by the key's top PILE_BITS bits into piles, each two append-only files
in the staging folder: `NN.keys` (fp_hi, fp_lo, g, n: 32 bytes a row) and `NN.text` (the
texts, zstd-compressed where it pays: COMPRESSION). Each file is a run of
chunks, `[8-byte length][an Arrow IPC stream]`, flushed together; a checkpoint records
the files' sizes, and a resume truncates them to those sizes.

The work of staging is done where a unit runs (`stage_unit`, called by run/unit.py on a
worker thread or in a Ray task): a unit's rows become a `StagedUnit`, its keys by pile and
each pile's texts as IPC record batches. `Piles.add_staged` gives the keys their
global ordinals and `flush` appends each pile's keys and, between the stream's schema and
its end, its units' text batches as they are (or compressed again as one, for units that
kept few rows): the machine appending them decompresses and compresses nothing else.

The output is the rows sorted by (key, fingerprint, g): a seeded uniformly random order
that is a total order (g is unique), so it is the same however the rows were chunked or
the piles split. A pile too large to sort in memory is split on disk by the key's next
SPLIT_BITS bits (`leaves`), recursively, so memory stays bounded at any size. The
deduplication index is the keys files: counting distinct texts reads 32 bytes a row, one
leaf at a time; the first occurrence (lowest g) of each fingerprint is kept.

Several parts (a mixture's components, --val-from's source) share the piles: g carries the
part in its high bits (PART_SHIFT), so "lowest g" is "the first part that drew it", and each
part has its own cut (`select`). `ordered` gives a leaf's selected rows in output order with
each one's part and length, from the keys alone; the interleave of parts is commands/shuffle.py's.
"""

from __future__ import annotations

import shutil
import struct
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..autoresearch import TEXT_COLUMN
from ..errors import ConversionError
from . import durable
from .fingerprints import fingerprints

PILE_BITS = 6  # 64 level-1 piles
SPLIT_BITS = 4  # a pile too large is split 16 ways, by the key's next bits
# A leaf is loaded whole to be sorted: at most this many bytes of its files on disk (about
# 4x that in memory: texts decompressed (about 2.5x), and their sorted copy); the write phase
# holds two leaves (one fed to the writer, the next being sorted).
LEAF_BYTES = 48 << 20
# Staged units buffered (counted by their texts' size uncompressed) before every pile is appended
# to: a checkpoint boundary.
FLUSH_BYTES = 32 << 20
# A pile's staged batches in one flush that average fewer compressed bytes than this are joined
# and compressed again at the flush, where they are appended: each batch has about 250 bytes of
# headers, and zstd needs more than a few KB to compress well. Units of real sizes (8 MB of the
# needed columns, compressed) stage far more than this a pile, and are appended as they come.
REPACK_BYTES = 16 << 10
# Texts are compressed (zstd level 1) only where it is needed to keep the staging within the
# disk budget, about 2.5x the shards: a unit's texts are probed (lz4 over their first
# PROBE_BYTES) and staged as they are when it shrinks them less than RAW_BELOW. The shards
# (snappy) shrink such texts about as much as lz4 does (the benchmark's prose: 1.84x both;
# real FineWeb-Edu: 2.03x with snappy), so raw staging stays under about 2.2x the output;
# texts that compress better (code, boilerplate, the tests' repetitive samples: 3.8x) are
# compressed. Compression was the shuffle's largest cost: on the benchmark's machine zstd-1
# compresses about 125 MB/s a core in a unit's small per-pile pieces and decompresses
# 700 MB/s, so the main job (1.6 GB of texts) spent 13 CPU-seconds staging and 5.7 reading back.
COMPRESSION = pa.Codec("zstd", 1)
RAW_BELOW = 2.2
PROBE_BYTES = 256 << 10
_PROBE = pa.Codec("lz4_raw")
# n: the text's characters (a mixture's shares by characters are counted from the keys alone).
KEYS_SCHEMA = pa.schema([("fp_hi", pa.uint64()), ("fp_lo", pa.uint64()), ("g", pa.int64()), ("n", pa.int64())])
KEY_COLUMNS = KEYS_SCHEMA.names
# A row's ordinal g carries its part (a mixture's component, or the validation source of
# --val-from) in its high bits: g = part << PART_SHIFT | the row's ordinal in its part's draw.
# Ordering by g is then "earlier parts first": a text drawn by two parts belongs to the first.
PART_SHIFT = 40
TEXT_SCHEMA = pa.schema([(TEXT_COLUMN, pa.large_string())])
HISTOGRAM_WIDTH = 1 << 16  # first occurrences are counted in buckets of this many ordinals
FIRSTS_AHEAD = 2  # leaves whose first occurrences are found ahead of the count that reads them
MASK64 = (1 << 64) - 1
_LENGTH = struct.Struct("<Q")
_COMPRESSED = pa.ipc.IpcWriteOptions(compression=COMPRESSION)


def splitmix64(value: int) -> int:
    """The splitmix64 finaliser: a fixed, well-mixed 64-bit function (stable across versions)."""
    z = (value + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _u64(value: int) -> pa.Scalar:
    return pa.scalar(value & MASK64, pa.uint64())


def shuffle_keys(fp_lo: pa.Array, seed: int) -> pa.Array:
    """The seeded 64-bit shuffle key of each fingerprint: splitmix64(fp_lo ^ splitmix64(seed))."""
    z = pc.add(pc.bit_wise_xor(fp_lo, _u64(splitmix64(seed))), _u64(0x9E3779B97F4A7C15))
    z = pc.multiply(pc.bit_wise_xor(z, pc.shift_right(z, _u64(30))), _u64(0xBF58476D1CE4E5B9))
    z = pc.multiply(pc.bit_wise_xor(z, pc.shift_right(z, _u64(27))), _u64(0x94D049BB133111EB))
    return pc.bit_wise_xor(z, pc.shift_right(z, _u64(31)))


def _text_options(texts: pa.Table) -> pa.ipc.IpcWriteOptions | None:
    """How to stage these texts: compressed when lz4 shrinks a sample of them RAW_BELOW or more, else as they are."""
    chunks = [chunk for chunk in texts.column(0).chunks if len(chunk)]
    if not chunks:
        return None
    chunk = chunks[0].cast(pa.large_string())
    offsets = memoryview(chunk.buffers()[1]).cast("q")
    start, end = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
    size = min(PROBE_BYTES, end - start)
    if size <= 0:
        return None
    sample = chunk.buffers()[2].slice(start, size)
    return _COMPRESSED if size >= RAW_BELOW * _PROBE.compress(sample).size else None


def _stream(table: pa.Table, options: pa.ipc.IpcWriteOptions | None = None) -> pa.Buffer:
    """`table` as one Arrow IPC stream, its buffers compressed with `options` (keys never: hashes do not compress)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _append(path: Path, table: pa.Table, options: pa.ipc.IpcWriteOptions | None = None) -> None:
    _append_bytes(path, [_stream(table, options)])


def _append_texts(path: Path, table: pa.Table) -> None:
    _append(path, table, _text_options(table))


def _append_bytes(path: Path, parts: list[bytes | pa.Buffer]) -> None:
    """One chunk, `[8-byte length][the parts joined]`, appended to `path`."""
    with open(path, "ab") as handle:
        handle.write(_LENGTH.pack(sum(len(part) for part in parts)))
        for part in parts:
            handle.write(part)


# A text chunk's IPC stream is its schema message, record batch messages, and the end-of-stream
# marker: a staged unit carries only its record batches (compressed or not, each batch says),
# and a flush joins a pile's units into one chunk between these two.
_TEXT_HEAD = _stream(TEXT_SCHEMA.empty_table()).to_pybytes()[:-8]
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _record_batches(table: pa.Table, options: pa.ipc.IpcWriteOptions | None) -> pa.Buffer:
    """The record batch messages of `table`'s texts: its IPC stream without the schema and end (not copied)."""
    data = _stream(table, options)
    head, tail = len(_TEXT_HEAD), len(_EOS)
    if not (data.size >= head + tail and data[:head].to_pybytes() == _TEXT_HEAD
            and data[data.size - tail:].to_pybytes() == _EOS):  # fmt: skip
        raise AssertionError("an Arrow IPC stream of texts that is not its schema, batches and end")
    return data.slice(head, data.size - head - tail)


@dataclass
class StagedUnit:
    """One unit's kept rows, ready for the piles (`stage_unit`): `rows` kept (the ordinals
    count every one, repeats within the unit included), `nbytes` their texts' size in memory,
    `keys` (KEYS_SCHEMA, g the row's ordinal in the unit) grouped by pile in pile order, and
    per non-empty pile (pile, its rows, its texts' IPC record batches, compressed or not)."""

    rows: int
    nbytes: int
    keys: pa.Table
    piles: list[tuple[int, int, pa.Buffer]]

    @property
    def num_rows(self) -> int:  # counted as a table's rows are (the executors' keep ratio, the stager)
        return self.rows


def stage_unit(texts: pa.Table | pa.ChunkedArray | pa.Array, seed: int, compress: bool = False) -> StagedUnit:
    """One unit's kept texts (in draw order) fingerprinted, keyed by `seed` and split by pile,
    each pile's texts compressed where it pays (`_text_options`) or, with `compress`, always:
    the work of staging, done wherever the unit ran. A text
    repeated within the unit is staged once, at its first occurrence (the selection keeps
    first occurrences, so it is the same)."""
    column = texts.column(0) if isinstance(texts, pa.Table) else texts
    column = column.cast(pa.large_string())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    rows = len(column)
    if not rows:
        return StagedUnit(0, 0, KEYS_SCHEMA.empty_table(), [])
    hi, lo = fingerprints(column)
    n = pc.utf8_length(column).cast(pa.int64())
    keys = pa.table([hi, lo, pa.array(range(rows), pa.int64()), n], schema=KEYS_SCHEMA)
    text = pa.table({TEXT_COLUMN: column})
    firsts = _first_occurrences(keys)
    if len(firsts) < rows:
        chosen = pc.is_in(keys["g"], value_set=firsts)
        keys, text = keys.filter(chosen), text.filter(chosen)
    pile = pc.shift_right(shuffle_keys(keys["fp_lo"], seed), _u64(64 - PILE_BITS))
    order = pc.sort_indices(pile)
    keys, text, pile = keys.take(order), text.take(order), pile.take(order)
    # One choice for the unit: its piles' pieces are too small to probe.
    options = _COMPRESSED if compress else _text_options(text)
    piles, start = [], 0
    for entry in pc.value_counts(pile).to_pylist():  # in order of first appearance: sorted
        count = entry["counts"]
        piles.append((entry["values"], count, _record_batches(text.slice(start, count), options)))
        start += count
    return StagedUnit(rows, column.nbytes, keys.combine_chunks(), piles)


def _chunks(path: Path, fields: list[int] | None = None) -> Iterator[pa.Table]:
    if not path.exists():
        return
    options = pa.ipc.IpcReadOptions(included_fields=fields) if fields is not None else None
    with open(path, "rb") as handle:
        while header := handle.read(_LENGTH.size):
            (length,) = _LENGTH.unpack(header)
            yield pa.ipc.open_stream(pa.py_buffer(handle.read(length)), options=options).read_all()


def _read(path: Path, schema: pa.Schema) -> pa.Table:
    tables = list(_chunks(path))
    return pa.concat_tables(tables) if tables else schema.empty_table()


@dataclass(frozen=True)
class Leaf:
    """A set of rows whose keys share a prefix (`path`: the pile, then each split's bits), on disk."""

    path: tuple[int, ...]
    keys: Path
    text: Path

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in (self.keys, self.text) if p.exists())


class Piles:
    """The level-1 piles of a shuffled conversion, in `folder`, keyed by `seed`."""

    def __init__(self, folder: Path, seed: int, sizes: dict[str, int] | None = None):
        self.folder, self.seed = folder, seed
        folder.mkdir(parents=True, exist_ok=True)
        self._keys: dict[int, list[pa.Table]] = {}  # per pile: the buffered units' keys
        self._texts: dict[int, list[pa.Buffer]] = {}  # per pile: their texts' record batches
        self.buffered = 0  # the buffered units' texts, uncompressed (what FLUSH_BYTES counts)
        self.truncate(sizes or {})

    def _files(self, pile: int) -> tuple[Path, Path]:
        return self.folder / f"{pile:03d}.keys", self.folder / f"{pile:03d}.text"

    def truncate(self, sizes: dict[str, int]) -> None:
        """Cut every pile file back to its size at the last checkpoint (absent: empty)."""
        for pile in range(1 << PILE_BITS):
            for path in self._files(pile):
                size = sizes.get(path.name, 0)
                if path.exists() and path.stat().st_size != size:
                    with open(path, "r+b") as handle:
                        handle.truncate(size)
        for folder in ("split", "split-keys"):
            shutil.rmtree(self.folder / folder, ignore_errors=True)

    def add_staged(self, staged: StagedUnit, first_g: int) -> None:
        """Buffer a staged unit (`stage_unit`) whose first kept row has the ordinal `first_g`
        (its part in the high bits): its keys get their global ordinals, its texts are already
        encoded. Appended to the piles at the next `flush`."""
        if not staged.piles:
            return
        g = pc.add(staged.keys["g"], pa.scalar(first_g, pa.int64()))
        keys = staged.keys.set_column(KEY_COLUMNS.index("g"), KEYS_SCHEMA.field("g"), g)
        start = 0
        for pile, rows, messages in staged.piles:
            self._keys.setdefault(pile, []).append(keys.slice(start, rows))
            self._texts.setdefault(pile, []).append(messages)
            start += rows
        self.buffered += staged.nbytes

    def flush(self) -> dict[str, int]:
        """Append the buffered units to their piles, one keys chunk and one text chunk a pile
        (the text chunk an IPC stream of the units' record batches, as staged); the
        files' sizes (what a checkpoint records)."""
        for pile in sorted(self._keys):
            keys_file, text_file = self._files(pile)
            _append(keys_file, pa.concat_tables(self._keys[pile]))
            batches = self._texts[pile]
            if len(batches) > 1 and sum(map(len, batches)) < REPACK_BYTES * len(batches):
                # Units that kept few rows (a selective filter, small units): their batches, each
                # with its own header and too small for zstd, are compressed again as one.
                stream = pa.ipc.open_stream(pa.py_buffer(b"".join([_TEXT_HEAD, *batches, _EOS])))
                _append_texts(text_file, stream.read_all().combine_chunks())
            else:
                _append_bytes(text_file, [_TEXT_HEAD, *batches, _EOS])
        if durable.boot_id() is None:  # a restart cannot be told: on the disk before the checkpoint (durable.py)
            for pile in sorted(self._keys):
                for path in self._files(pile):
                    durable.sync(path)
            durable.sync(self.folder)
        self._keys, self._texts, self.buffered = {}, {}, 0
        return {p.name: p.stat().st_size for p in sorted(self.folder.glob("*.*")) if p.is_file()}

    def leaves(self, first_pile: int = 0, keys_only: bool = False) -> Iterator[Leaf]:
        """Every leaf in key order (from pile `first_pile`): the piles, those larger than
        LEAF_BYTES split on disk by the key's next bits. With `keys_only` (the passes that
        count, which never read texts), a pile is split only if its keys alone are larger,
        and only its keys are: the texts, most of the bytes, are not copied."""
        for pile in range(first_pile, 1 << PILE_BITS):
            keys, text = self._files(pile)
            if keys.exists() and keys.stat().st_size:
                yield from self._split(Leaf((pile,), keys, text), PILE_BITS, keys_only)

    def _split(self, leaf: Leaf, bits: int, keys_only: bool = False) -> Iterator[Leaf]:
        size = leaf.keys.stat().st_size if keys_only else leaf.size
        if size <= LEAF_BYTES or bits + SPLIT_BITS > 64:
            yield leaf
            return
        folder = self.folder / ("split-keys" if keys_only else "split") / "-".join(map(str, leaf.path))
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shift = _u64(64 - bits - SPLIT_BITS)
        mask = _u64((1 << SPLIT_BITS) - 1)
        children = [Leaf((*leaf.path, i), folder / f"{i:02d}.keys", folder / f"{i:02d}.text") for i in range(16)]
        # Each child's rows are gathered over chunks, up to LEAF_BYTES in memory, and appended
        # as one chunk: a chunk per child per chunk read made many tiny files' worth of writes.
        pending: list[list[tuple[pa.Table, pa.Table | None]]] = [[] for _ in children]
        buffered = 0

        def append_pending() -> None:
            for child, tables in zip(children, pending, strict=True):
                if tables:
                    _append(child.keys, pa.concat_tables([k for k, _ in tables]))
                    if not keys_only:
                        _append_texts(child.text, pa.concat_tables([t for _, t in tables]))
                    tables.clear()

        texts = iter(()) if keys_only else _chunks(leaf.text)
        for keys in _chunks(leaf.keys):
            text = None if keys_only else next(texts)
            part = pc.bit_wise_and(pc.shift_right(shuffle_keys(keys["fp_lo"], self.seed), shift), mask)
            order = pc.sort_indices(part)  # stable: each child's rows keep their order
            keys, part = keys.take(order), part.take(order)
            text = text.take(order) if text is not None else None
            start = 0
            for entry in pc.value_counts(part).to_pylist():  # in order of first appearance: sorted
                i, count = entry["values"], entry["counts"]
                pending[i].append((keys.slice(start, count), text.slice(start, count) if text is not None else None))
                start += count
            buffered += keys.nbytes + (text.nbytes if text is not None else 0)
            if buffered >= LEAF_BYTES:
                append_pending()
                buffered = 0
        append_pending()
        for child in children:
            if child.keys.exists():
                yield from self._split(child, bits + SPLIT_BITS, keys_only)
                for path in (child.keys, child.text):  # done with: a resume splits again
                    path.unlink(missing_ok=True)


@dataclass
class Selection:
    """One part's cut: its first `rows` distinct texts in draw order are those whose first
    occurrence (over every part, earlier parts first) is in this part with an ordinal
    <= `cut`; `staged` rows were drawn for it in all."""

    rows: int
    cut: int
    staged: int

    @property
    def duplicates(self) -> int:
        """Rows drawn up to the cut that repeat a text drawn before them (by this part or an earlier one)."""
        return self.cut + 1 - self.rows


def _first_occurrences(keys: pa.Table) -> pa.Array:
    """The g of each fingerprint's first occurrence in a leaf's keys."""
    grouped = keys.group_by(["fp_hi", "fp_lo"], use_threads=False).aggregate([("g", "min")])
    return grouped["g_min"].combine_chunks()


def _split_g(g: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each ordinal's part and its ordinal within the part's draw."""
    return pc.shift_right(g, PART_SHIFT), pc.bit_wise_and(g, (1 << PART_SHIFT) - 1)


def _firsts_by_part(keys: pa.Table, parts: int) -> list[pa.Array]:
    """Each part's first occurrences in a leaf's keys: their ordinals within the part's draw."""
    part, local = _split_g(_first_occurrences(keys))
    return [local.filter(pc.equal(part, p)) for p in range(parts)]


def _firsts_by_leaf(piles: Piles, parts: int) -> Iterator[list[pa.Array]]:
    """`_firsts_by_part` of every leaf in key order, two leaves at a time on threads (Arrow's
    group-by runs without the GIL): at most FIRSTS_AHEAD leaves' results wait to be read.
    A leaf's keys are read here, before the next leaf is asked for: that removes a split
    leaf's files (`Piles._split`)."""
    with ThreadPoolExecutor(2, thread_name_prefix="shardsql-count") as pool:
        pending: deque[Future] = deque()
        for leaf in piles.leaves(keys_only=True):
            pending.append(pool.submit(_firsts_by_part, leaf_keys(leaf), parts))
            if len(pending) > FIRSTS_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def select(piles: Piles, wanted: list[int], staged: list[int]) -> list[Selection]:
    """Each part's first `wanted` distinct texts among its `staged` rows (fewer if there are
    not so many): two passes over the keys, a few leaves at a time (the index held is theirs)."""
    parts = len(wanted)
    buckets = [[0] * (n // HISTOGRAM_WIDTH + 1) for n in staged]  # first occurrences by ordinal bucket
    for by_part in _firsts_by_leaf(piles, parts):
        for p, firsts in enumerate(by_part):
            if len(firsts):
                for entry in pc.value_counts(pc.divide(firsts, HISTOGRAM_WIDTH)).to_pylist():
                    buckets[p][entry["values"]] += entry["counts"]
    selections: list[Selection | None] = [None] * parts
    bounds: dict[int, tuple[int, int]] = {}  # part -> (the bucket holding its cut, distinct texts before it)
    for p in range(parts):
        distinct = sum(buckets[p])
        if distinct <= wanted[p]:
            selections[p] = Selection(distinct, staged[p] - 1, staged[p])
            continue
        before = bucket = 0
        while before + buckets[p][bucket] < wanted[p]:  # the first bucket reaching `wanted`
            before += buckets[p][bucket]
            bucket += 1
        bounds[p] = (bucket, before)
    if bounds:
        inside: dict[int, list[int]] = {p: [] for p in bounds}
        for firsts in _firsts_by_leaf(piles, parts):
            for p, (bucket, _) in bounds.items():
                low, high = bucket * HISTOGRAM_WIDTH, (bucket + 1) * HISTOGRAM_WIDTH
                mask = pc.and_(pc.greater_equal(firsts[p], low), pc.less(firsts[p], high))
                inside[p] += firsts[p].filter(mask).to_pylist()
        for p, (_, before) in bounds.items():
            ordinals = sorted(inside[p])
            selections[p] = Selection(wanted[p], ordinals[wanted[p] - before - 1], staged[p])
    return [s for s in selections if s is not None]


@dataclass
class Ordered:
    """A leaf's selected rows in output order, by their keys: `take` indexes the leaf's rows as staged."""

    take: pa.Array
    part: pa.Array
    size: pa.Array  # characters
    check: tuple[pa.Array, pa.Array] | None  # rows that repeat the text before them: (repeats, previous)


def ordered(keys: pa.Table, seed: int, cuts: list[int]) -> Ordered:
    """The selected rows of a leaf (first occurrences within their part's cut) in output
    order, by (key, fp, g): a total order, whatever the chunking. Worked out on the keys
    alone, so that the texts are taken once, in that order."""
    table = pa.table({"key": shuffle_keys(keys["fp_lo"], seed), "fp_hi": keys["fp_hi"], "fp_lo": keys["fp_lo"],
                      "g": keys["g"], "n": keys["n"]})  # fmt: skip
    order = pc.sort_indices(table, [("key", "ascending"), ("fp_hi", "ascending"), ("fp_lo", "ascending"),
                                    ("g", "ascending")])  # fmt: skip
    table = table.take(order).combine_chunks()
    hi, lo = table["fp_hi"].combine_chunks(), table["fp_lo"].combine_chunks()
    n = len(table)
    if n > 1:
        same = pc.and_(pc.equal(hi.slice(1), hi.slice(0, n - 1)), pc.equal(lo.slice(1), lo.slice(0, n - 1)))
        repeat = pa.concat_arrays([pa.array([False]), same])
    else:
        repeat = pa.array([False] * n, pa.bool_())
    check = None
    if n > 1 and pc.any(repeat).as_py():
        positions = pc.indices_nonzero(repeat)
        check = (order.take(positions), order.take(pc.subtract(positions, pa.scalar(1, pa.uint64()))))
    part, local = _split_g(table["g"].combine_chunks())
    cut = pa.array(cuts, pa.int64()).take(part)
    keep = pc.and_(pc.invert(repeat), pc.less_equal(local, cut))
    return Ordered(order.filter(keep), part.filter(keep), table["n"].combine_chunks().filter(keep), check)


def leaf_keys(leaf: Leaf) -> pa.Table:
    return _read(leaf.keys, KEYS_SCHEMA)


def leaf_texts(leaf: Leaf, rows: Ordered) -> pa.Array:
    """A leaf's selected texts, in output order. Exact: a repeat's text must equal the text
    before it (the same fingerprint); a 128-bit collision between different texts stops
    the run rather than drop one."""
    column = _read(leaf.text, TEXT_SCHEMA).column(0).combine_chunks()  # a take from many chunks is 5x slower
    if rows.check is not None:
        repeats, previous = rows.check
        if not pc.all(pc.equal(column.take(repeats), column.take(previous))).as_py():
            raise ConversionError("two different texts share a 128-bit fingerprint; run again with another --seed")
    return column.take(rows.take)


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
