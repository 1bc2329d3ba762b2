"""The staged rows' keys: what each row is known by, from its text alone, and in what order it goes.

Every kept row gets a 128-bit fingerprint of its text (xxh3-128 of the UTF-8 bytes:
output/fingerprints.py), its global ordinal `g` in draw order, its length `n` in characters,
and a 64-bit shuffle key, a seeded mix of the fingerprint (`shuffle_keys`): duplicates share a
key, so they land in the same pile and the same leaf, and the order is random but the same
however the rows were chunked. A row's keys are KEYS_SCHEMA, KEY_BYTES a row on disk: the
deduplication index and the sort read them alone, never the texts.

Several parts (a mixture's components, --val-from's source) share the piles: g carries the
part in its high bits (PART_SHIFT), so "the lowest g" of a fingerprint is "the first part that
drew it" (`first_occurrences`).
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

# n: the text's characters (a mixture's shares by characters are counted from the keys alone).
KEYS_SCHEMA = pa.schema([("fp_hi", pa.uint64()), ("fp_lo", pa.uint64()), ("g", pa.int64()), ("n", pa.int64())])
KEY_COLUMNS = KEYS_SCHEMA.names
KEY_BYTES: int = sum(field.type.byte_width for field in KEYS_SCHEMA)  # a row's keys on disk: 32 bytes
# A row's ordinal g carries its part (a mixture's component, or the validation source of
# --val-from) in its high bits: g = part << PART_SHIFT | the row's ordinal in its part's draw.
# Ordering by g is then "earlier parts first": a text drawn by two parts belongs to the first.
PART_SHIFT = 40
MASK64 = (1 << 64) - 1


def splitmix64(value: int) -> int:
    """The splitmix64 finaliser: a fixed, well-mixed 64-bit function (stable across versions)."""
    z = (value + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def u64(value: int) -> pa.Scalar:
    """`value` as an Arrow uint64 scalar (wrapped to 64 bits), for the compute functions on keys."""
    return pa.scalar(value & MASK64, pa.uint64())


def shuffle_keys(fp_lo: pa.Array, seed: int) -> pa.Array:
    """The seeded 64-bit shuffle key of each fingerprint: splitmix64(fp_lo ^ splitmix64(seed))."""
    z = pc.add(pc.bit_wise_xor(fp_lo, u64(splitmix64(seed))), u64(0x9E3779B97F4A7C15))
    z = pc.multiply(pc.bit_wise_xor(z, pc.shift_right(z, u64(30))), u64(0xBF58476D1CE4E5B9))
    z = pc.multiply(pc.bit_wise_xor(z, pc.shift_right(z, u64(27))), u64(0x94D049BB133111EB))
    return pc.bit_wise_xor(z, pc.shift_right(z, u64(31)))


def key_bits(fp_lo: pa.Array, seed: int, *, skip: int, bits: int) -> pa.Array:
    """The `bits` bits of each row's shuffle key after its first `skip` bits: its pile
    (skip 0), or its child in a split pile (the bits after those of the piles and earlier splits)."""
    shifted = pc.shift_right(shuffle_keys(fp_lo, seed), u64(64 - skip - bits))
    return shifted if skip == 0 else pc.bit_wise_and(shifted, u64((1 << bits) - 1))


def has_duplicates(keys: pa.Table) -> bool:
    """Whether a fingerprint occurs twice in a set of keys: distinct low halves are distinct
    fingerprints, and Polars counts them in a fifth of `first_occurrences`' grouping."""
    return bool(pl.Series(keys["fp_lo"]).n_unique() < keys.num_rows)


def first_occurrences(keys: pa.Table) -> pa.Array:
    """The g of each fingerprint's first occurrence in a set of keys (a unit's, a leaf's)."""
    grouped = keys.group_by(["fp_hi", "fp_lo"], use_threads=False).aggregate([("g", "min")])
    return grouped["g_min"].combine_chunks()


def split_g(g: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each ordinal's part and its ordinal within the part's draw."""
    return pc.shift_right(g, PART_SHIFT), pc.bit_wise_and(g, (1 << PART_SHIFT) - 1)
