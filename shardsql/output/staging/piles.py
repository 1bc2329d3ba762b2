"""The pile store: kept rows scattered by their shuffle key into piles on disk, split on disk when too large.

The work of staging is done where a unit runs (`stage_unit`, called by run/unit.py on a
worker thread or in a Ray task): a unit's rows become a `StagedUnit`, its keys by pile and
each pile's texts as a `formats.Piece`. `Piles.add_staged` gives the keys their global
ordinals and `flush` appends each pile's keys, and its units' pieces of texts as one frame
(or compressed again as one, for compressed units that kept few rows): the machine appending
them decompresses and compresses nothing else.

Rows go to a pile by the key's top bits (`pile_bits`: as many piles as keep each within half
the sort budget, chosen before drawing); a pile is two append-only files, `NN.keys`
(keys.py's KEYS_SCHEMA, row after row) and `NN.text` (the texts, in frames):
formats.py has their formats. A pile too
large to sort in memory is split on disk by the key's next SPLIT_BITS bits (`Piles.leaves`),
recursively, so memory stays bounded at any size: a leaf is the unit that selection.py counts
and order.py sorts.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ... import tuning
from ...autoresearch import TEXT_COLUMN
from .. import durable, views
from ..fingerprints import fingerprints
from ..shards import char_counts
from ..words import positions
from . import formats
from .keys import KEY_BYTES, KEY_COLUMNS, KEYS_SCHEMA, first_occurrences, has_duplicates, key_bits

PILE_BITS = 6  # 64 level-1 piles, at least: a conversion sizes them up front (`pile_bits`)
MAX_PILE_BITS = 9  # 512 piles at most (their files' names have three digits)
SPLIT_BITS = 4  # a pile too large is split 1 << SPLIT_BITS (16) ways, by the key's next bits
# A leaf is loaded whole to be sorted: at most `leaf_bytes` of its files on disk; units are
# flushed to the piles every `Piles.flush_bytes` (tuning.py's `flush_bytes`, `pile_flush_bytes`).


@dataclass
class StagedUnit:
    """One unit's kept rows, ready for the piles (`stage_unit`): `rows` kept (the ordinals
    count every one, repeats within the unit included), `nbytes` their texts' size in memory,
    `keys` (KEYS_SCHEMA, g the row's ordinal in the unit) grouped by pile in pile order, and
    per non-empty pile (pile, its rows, its texts: a `formats.Piece`, compressed or not)."""

    rows: int
    nbytes: int
    keys: pa.Table
    piles: list[tuple[int, int, formats.Piece]]

    @property
    def num_rows(self) -> int:  # counted as a table's rows are (the executors' keep ratio, the stager)
        return self.rows


def pile_bits(staged_bytes: float) -> int:
    """How many of the key's top bits choose a row's pile, for a selection of about `staged_bytes`
    (its texts uncompressed, estimated before drawing): enough piles that each stays within half
    the sort budget, so that none is split on disk (a split rewrites its texts), from PILE_BITS
    up to MAX_PILE_BITS. The output is the same for any number: it is in key order either way."""
    wanted = math.ceil(math.log2(max(1.0, staged_bytes / (tuning.current().leaf_bytes / 2))))
    return max(PILE_BITS, min(MAX_PILE_BITS, wanted))


def stage_unit(texts: pa.Table | pa.ChunkedArray | pa.Array, seed: int, compress: bool = False,
               bits: int = PILE_BITS) -> StagedUnit:  # fmt: skip
    """One unit's kept texts (in draw order) fingerprinted, keyed by `seed` and split by pile,
    each pile's texts compressed where it pays (`formats.compresses`) or, with `compress`,
    always: the work of staging, done wherever the unit ran. A text repeated within the unit
    is staged once, at its first occurrence (the selection keeps first occurrences, so it is
    the same)."""
    # As string views (output/views.py: shared with decode.py's, or made over the strings'
    # bytes): fingerprinted and counted where they lie, and copied once, into pile order.
    column = views.as_views(texts.column(0) if isinstance(texts, pa.Table) else texts)
    rows = len(column)
    if not rows:
        return StagedUnit(0, 0, KEYS_SCHEMA.empty_table(), [])
    hi, lo = fingerprints(column)
    n = char_counts(column)
    keys = pa.table([hi, lo, positions(0, 1, rows), n], schema=KEYS_SCHEMA)
    if has_duplicates(keys):
        keys = keys.filter(pc.is_in(keys["g"], value_set=first_occurrences(keys)))
    pile = key_bits(keys["fp_lo"], seed, skip=0, bits=bits)
    order = pc.sort_indices(pile)
    keys, pile = keys.take(order), pile.take(order)
    # g is each kept row's place in the unit: the texts are copied once, straight into pile order.
    text = pa.table({TEXT_COLUMN: views.take(column, keys["g"]).cast(pa.large_string())})
    # One choice for the unit: its piles' pieces are too small to probe.
    counts = pc.value_counts(pile).to_pylist()  # in order of first appearance: sorted
    pieces = formats.pieces(text, [entry["counts"] for entry in counts], compress or formats.compresses(text))
    piles = [(entry["values"], entry["counts"], piece) for entry, piece in zip(counts, pieces, strict=True)]
    return StagedUnit(rows, text.nbytes, keys.combine_chunks(), piles)


@dataclass(frozen=True)
class Leaf:
    """A set of rows whose keys share a prefix (`path`: the pile, then each split's bits), on disk."""

    path: tuple[int, ...]
    keys: Path
    text: Path

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in (self.keys, self.text) if p.exists())


def leaf_keys(leaf: Leaf) -> pa.Table:
    """A leaf's keys, whole (KEY_BYTES a row: what counting and ordering read)."""
    return formats.read_keys(leaf.keys)


class Piles:
    """The level-1 piles of a shuffled conversion, in `folder`, keyed by `seed`, chosen by the
    key's top `bits` bits (as its units were staged: `stage_unit`)."""

    def __init__(self, folder: Path, seed: int, sizes: dict[str, int] | None = None, bits: int = PILE_BITS):
        self.folder, self.seed, self.bits = folder, seed, bits
        folder.mkdir(parents=True, exist_ok=True)
        self._keys: dict[int, list[pa.Buffer]] = {}  # per pile: the buffered units' keys, as rows (formats.key_rows)
        self._texts: dict[int, list[formats.Piece]] = {}  # per pile: their texts' pieces
        self.buffered = 0  # the buffered units' texts, uncompressed (what `flush_bytes` counts)
        self._remover: ThreadPoolExecutor | None = None  # removes released piles (`release`), made at the first
        self._removing: list[Future[None]] = []
        self._sizes: dict[str, int] = {}  # every pile file's size, kept as they are appended to (`flush`)
        # Each pile's two files, made once: a flush opens every pile's (made each time: a quarter of its Python).
        self._paths = [(folder / f"{pile:03d}.keys", folder / f"{pile:03d}.text") for pile in range(1 << bits)]
        self.truncate(sizes or {})

    def _files(self, pile: int) -> tuple[Path, Path]:
        return self._paths[pile]

    def truncate(self, sizes: dict[str, int]) -> None:
        """Cut every pile file back to its size at the last checkpoint (absent: empty)."""
        self._sizes = {}
        for pile in range(1 << self.bits):
            for path in self._files(pile):
                size = sizes.get(path.name, 0)
                if path.exists():
                    if path.stat().st_size != size:
                        with open(path, "r+b") as handle:
                            handle.truncate(size)
                    self._sizes[path.name] = size
        for folder in ("split", "split-keys"):
            shutil.rmtree(self.folder / folder, ignore_errors=True)

    @property
    def flush_bytes(self) -> int:
        """The buffered texts that call for a flush: tuning's `flush_bytes`, or `pile_flush_bytes`
        a pile where there are more piles (every flush opens and appends to each pile's two
        files, and each append is a frame that every pass reads: tuning.py)."""
        knobs = tuning.current()
        return max(knobs.flush_bytes, (1 << self.bits) * knobs.pile_flush_bytes)

    def add_staged(self, staged: StagedUnit, first_g: int) -> None:
        """Buffer a staged unit (`stage_unit`) whose first kept row has the ordinal `first_g`
        (its part in the high bits): its keys get their global ordinals, its texts are already
        cut into pieces. Appended to the piles at the next `flush`."""
        if not staged.piles:
            return
        g = pc.add(staged.keys["g"], pa.scalar(first_g, pa.int64()))
        keys = formats.key_rows(staged.keys.set_column(KEY_COLUMNS.index("g"), KEYS_SCHEMA.field("g"), g))
        start = 0
        for pile, rows, piece in staged.piles:
            self._keys.setdefault(pile, []).append(keys.slice(start * KEY_BYTES, rows * KEY_BYTES))
            self._texts.setdefault(pile, []).append(piece)
            start += rows
        self.buffered += staged.nbytes

    def flush(self) -> dict[str, int]:
        """Append the buffered units to their piles: each pile's keys rows, and its units'
        pieces of texts (`formats.append_pieces`); the files' sizes (what a checkpoint records)."""
        for pile in sorted(self._keys):
            keys_file, text_file = self._files(pile)
            self._sizes[keys_file.name] = formats.append_keys(keys_file, self._keys[pile])
            self._sizes[text_file.name] = formats.append_pieces(text_file, self._texts[pile])
        if durable.boot_id() is None:  # a restart cannot be told: on the disk before the checkpoint (durable.py)
            for pile in sorted(self._keys):
                for path in self._files(pile):
                    durable.sync(path)
            durable.sync(self.folder)
        self._keys, self._texts, self.buffered = {}, {}, 0
        # Kept as written, not listed and stat'ed: 512 files a flush took 6.5 ms, 0.6 s of a 40-shard selection.
        return dict(sorted(self._sizes.items()))

    def leaves(self, first_pile: int = 0, keys_only: bool = False) -> Generator[Leaf, None, None]:
        """Every leaf in key order (from pile `first_pile`): the piles, those larger than
        `leaf_bytes` split on disk by the key's next bits. With `keys_only` (the passes that
        count, which never read texts), a pile is split only if its keys alone are larger,
        and only its keys are: the texts, most of the bytes, are not copied."""
        for pile in range(first_pile, 1 << self.bits):
            keys, text = self._files(pile)
            if keys.exists() and keys.stat().st_size:
                yield from self._split(Leaf((pile,), keys, text), self.bits, keys_only)

    def release(self, pile: int) -> None:
        """Let go of a pile's texts (and any split of them) once every row of it is in a complete
        shard: the staging folder shrinks as the shards grow. Its keys stay, for a resume's count
        of what the piles before its first unwritten row held (commands/shuffle_merge.py).

        Removed on a thread of their own (`settle` waits for them): deleting a file can wait for
        the disk, which the shards being written need not. (ext4 mounted with `discard` trims a
        file's blocks before its unlink returns: 3 s of a 40-shard write phase, on the thread
        that feeds the shard writers, on the benchmark's machine.)"""
        paths, split = [self._files(pile)[1]], self.folder / "split"
        if split.is_dir():  # (a glob of a missing folder costs a millisecond)
            paths += [*split.glob(f"{pile}"), *split.glob(f"{pile}-*")]
        if self._remover is None:
            self._remover = ThreadPoolExecutor(1, thread_name_prefix="shardsql-remove")
        self._removing.append(self._remover.submit(_remove, paths))

    def settle(self) -> None:
        """Wait until every pile released so far is removed (raising what a removal raised)."""
        removing, self._removing = self._removing, []
        for removal in removing:
            removal.result()

    def close(self) -> None:
        """Settle the removals and end their thread."""
        self.settle()
        if self._remover is not None:
            self._remover.shutdown()
            self._remover = None

    def _split(self, leaf: Leaf, bits: int, keys_only: bool = False) -> Iterator[Leaf]:
        size = leaf.keys.stat().st_size if keys_only else leaf.size
        if size <= tuning.current().leaf_bytes or bits + SPLIT_BITS > 64:
            yield leaf
            return
        folder = self.folder / ("split-keys" if keys_only else "split") / "-".join(map(str, leaf.path))
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        children = [
            Leaf((*leaf.path, i), folder / f"{i:02d}.keys", folder / f"{i:02d}.text") for i in range(1 << SPLIT_BITS)
        ]
        # Each child's rows are gathered over the pieces read (`_pieces`), up to `leaf_bytes` in
        # memory, and appended as one frame: one per child per piece made many tiny writes.
        pending: list[list[tuple[pa.Table, pa.Table | None]]] = [[] for _ in children]
        buffered = 0

        def append_pending() -> None:
            for child, tables in zip(children, pending, strict=True):
                if tables:
                    formats.append_keys(child.keys, [formats.key_rows(pa.concat_tables([k for k, _ in tables]))])
                    if not keys_only:
                        formats.append_texts(child.text, pa.concat_tables([t for _, t in tables]))
                    tables.clear()

        for keys, text in _pieces(leaf, keys_only):
            part = key_bits(keys["fp_lo"], self.seed, skip=bits, bits=SPLIT_BITS)
            order = pc.sort_indices(part)  # stable: each child's rows keep their order
            keys, part = keys.take(order), part.take(order)
            text = text.take(order) if text is not None else None
            start = 0
            for entry in pc.value_counts(part).to_pylist():  # in order of first appearance: sorted
                i, count = entry["values"], entry["counts"]
                pending[i].append((keys.slice(start, count), text.slice(start, count) if text is not None else None))
                start += count
            buffered += keys.nbytes + (text.nbytes if text is not None else 0)
            if buffered >= tuning.current().leaf_bytes:
                append_pending()
                buffered = 0
        append_pending()
        for child in children:
            if child.keys.exists():
                yield from self._split(child, bits + SPLIT_BITS, keys_only)
                for path in (child.keys, child.text):  # done with: a resume splits again
                    path.unlink(missing_ok=True)


def _pieces(leaf: Leaf, keys_only: bool) -> Iterator[tuple[pa.Table, pa.Table | None]]:
    """A leaf's rows a piece at a time, to be split: its keys (memory-mapped) with each text
    frame's rows (the keys are in the texts' order), or with `keys_only` in pieces of
    `leaf_bytes` of keys."""
    keys, start = leaf_keys(leaf), 0
    if keys_only:
        step = max(1, tuning.current().leaf_bytes // KEY_BYTES)
        for start in range(0, len(keys), step):
            yield keys.slice(start, step), None
        return
    for batch in formats.text_batches(leaf.text):
        yield keys.slice(start, batch.num_rows), pa.Table.from_batches([batch])
        start += batch.num_rows


def _remove(paths: list[Path]) -> None:
    """Remove files, and folders with what they hold (a released pile's texts and splits)."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def clear(folder: Path) -> None:
    """Remove a staging folder's piles."""
    shutil.rmtree(folder, ignore_errors=True)


def disk_bytes(folder: Path) -> int:
    """The bytes a staging folder holds on disk, counted while a run may be removing piles
    (`Piles.release`, on a thread of its own): a file or folder gone by the time it is
    reached counts nothing."""
    total = 0
    for root, _, names in os.walk(folder):  # (a folder gone meanwhile is skipped: os.walk ignores errors)
        for name in names:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total
