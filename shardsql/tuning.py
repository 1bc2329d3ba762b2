"""The tuning knobs: the sizes, counts and timeouts that trade memory, requests and waiting
against each other, in one typed place.

Each knob's default was chosen on the benchmark (its comment says why). The code reads them
when it needs them, `tuning.current().unit_bytes`, never as a copy taken at import. Tests
change them with `use` (the `tune` fixture, tests/conftest.py; a subprocess's setup code), not
by patching module constants. A Ray run hands the driver's knobs to its tasks and fetch
actors, which `use` them (run/ray/tasks.py): both engines run with the same knobs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    # A unit (source/units.py) closes once its needed column chunks reach this many bytes,
    # compressed: large requests, since the Hub counts requests, not bytes.
    unit_bytes: int = 8 << 20
    # A shuffled draw's slot (source/draw.py) is never smaller than this (tiny test units stay a
    # few row groups).
    min_slot_bytes: int = 64 << 10
    # The least a fetched piece holds (source/fetch.py): a range of 9 MB is two pieces of 4.5 MB.
    piece_bytes: int = 4 << 20
    # Units fetched and in flight: a unit per worker and this many more, done and waiting for a
    # worker or the consumer (run/scheduling.py). One ahead, not two: peak RSS of the bench's
    # --no-shuffle main job 472-476 MB against 499-523 MB; the modelled link 88% -> 88% of its
    # rate --no-shuffle, 89% -> 91% shuffled, one run each: not worth it.
    ahead_units: int = 1
    # Bytes being fetched, at most, as a multiple of what the streams take at once: a few
    # pieces wait for a stream, so that one is never idle while the consumer is busy. On the
    # bench's modelled link (4 MB/s a connection, 25 MB/s in all) 10 to 12 pieces are in flight.
    fetch_ahead: float = 1.5
    # Seconds to wait for each piece of an answer from the Hub (hub/client.py): a stalled
    # server ends in a timeout, which is retried like a dropped connection.
    read_timeout_s: float = 30.0
    # The first byte of a range from the Hub's storage: a cold file is reconstructed by Xet
    # before it is sent (its own client waits 120 s). The body then streams within
    # read_timeout_s between pieces, so a connection that stalls mid-body is still caught.
    first_byte_timeout_s: float = 120.0
    # Attempts at a read or a listing call that fails for a transient reason (hub/retries.py),
    # with exponential backoff from retry_base_s between them.
    retry_attempts: int = 6
    retry_base_s: float = 0.5
    # Added to a rate limit's wait: the Hub's `t=` is rounded to whole seconds
    # (huggingface_hub adds 1 s too).
    rate_limit_margin_s: float = 1.0
    # A part's texts waiting in a mixture's interleave in memory (output/interleave.py); more
    # wait in a file.
    queue_bytes: int = 64 << 20
    # A shuffle's pile leaf is loaded whole to be sorted: at most this many bytes of its files
    # on disk (about 4x that in memory: texts decompressed, about 2.5x, and their sorted copy);
    # the write phase holds two leaves (one fed to the writer, the next being sorted).
    leaf_bytes: int = 48 << 20
    # Staged units buffered (their texts uncompressed) before every pile is appended to: a
    # checkpoint boundary (commands/shuffle_select.py flushes when `Piles.buffered` reaches
    # `Piles.flush_bytes`): at least `flush_bytes`, and at least `pile_flush_bytes` a pile. A
    # flush opens and appends to both files of every pile: with a fixed flush size, the piles
    # (one per 24 MB of staging) times the flushes (one per 32 MB) grew as the square of the
    # staging, 175 appends a pile at 40 shards (each one a stream read on its own, before a
    # pile's files were read whole). A pile's share of a flush keeps its appends under about 100.
    flush_bytes: int = 32 << 20
    pile_flush_bytes: int = 256 << 10
    # A pile's compressed pieces in one flush that average fewer bytes than this are joined
    # and compressed again where they are appended (staging/formats.append_pieces): each is a
    # frame with its own header, and zstd needs more than a few KB to compress well. Units of
    # real sizes stage far more than this a pile, and are appended as they come; pieces staged
    # as they are are always joined, one frame a flush.
    repack_bytes: int = 16 << 10


_current = Tuning()


def current() -> Tuning:
    """The knobs in effect in this process."""
    return _current


def use(tuning: Tuning) -> Tuning:
    """Put `tuning` in effect in this process; the knobs it replaces."""
    global _current
    before, _current = _current, tuning
    return before
