"""The fetch streams: ranges cut into pieces, fetched in order on as many streams as the link
rewards (source/fetch.py). The controller is driven here by a modelled link, whose rates are
computed, not timed: the same figures on a loaded machine as on an idle one."""

from __future__ import annotations

import threading

import pytest

from shardsql import tuning
from shardsql.source.fetch import MAX_STREAMS, START_STREAMS, Fetcher, Streams, pieces

PIECE_BYTES = tuning.Tuning().piece_bytes  # the default; no test here changes it

MB = 1_000_000


def test_ranges_are_cut_into_equal_pieces_of_at_least_the_piece_size():
    nine = (1000, 1000 + 9 * MB)
    cut = pieces([nine, (20 * MB, 20 * MB + 100)])
    assert cut[:2] == [(1000, 1000 + 9 * MB // 2), (1000 + 9 * MB // 2, 1000 + 9 * MB)]
    assert cut[2:] == [(20 * MB, 20 * MB + 100)], "a short range is one piece"
    big = pieces([(0, 10 * PIECE_BYTES + 7)])
    assert len(big) == 10 and all(end - start >= PIECE_BYTES for start, end in big)
    assert big[0][0] == 0 and big[-1][1] == 10 * PIECE_BYTES + 7
    assert all(a[1] == b[0] for a, b in zip(big, big[1:], strict=False)), "contiguous, no byte twice"


def drive(streams: Streams, rate_of_streams, rounds: int = 40) -> list[int]:
    """Feed `streams` the pieces a modelled link delivers: with n streams busy, each piece of
    4 MB arrives at rate_of_streams(n) bytes a second (per stream). The limits it went through."""
    seen = []
    for _ in range(rounds):
        n = streams.limit
        per_stream = rate_of_streams(n)
        for _ in range(n):
            streams.done(4 * MB, 4 * MB / per_stream, n, busy=True)
        seen.append(streams.limit)
    return seen


def paced_link(connection: float, link: float, rtt: float = 0.1):
    """A link as the issue models it: each connection paced, all of them sharing the link, a round trip a piece."""
    return lambda n: 4 * MB / (rtt + 4 * MB / min(connection, link / n))


def test_the_streams_grow_until_the_link_is_full_and_settle_there():
    streams = Streams(start=2)
    link = paced_link(connection=4 * MB, link=25 * MB)
    seen = drive(streams, link, rounds=60)
    assert seen[:4] == [3, 4, 6, 9], "more streams while the rate grows"
    # 25 MB/s over 4 MB/s connections: 7 streams fill the link; the step beyond it is undone.
    assert streams.limit == 9 and seen.count(9) >= 0.8 * len(seen), seen
    assert link(9) * 9 >= 0.9 * 25 * MB


def test_a_fast_link_gets_the_polite_ceiling_and_never_more():
    streams = Streams()
    seen = drive(streams, paced_link(connection=10 * MB, link=10_000 * MB))
    assert max(seen) == MAX_STREAMS == streams.limit


def test_a_link_one_stream_fills_keeps_the_streams_it_started_with():
    streams = Streams()
    seen = drive(streams, paced_link(connection=100 * MB, link=20 * MB))
    assert streams.limit == START_STREAMS and seen.count(START_STREAMS) >= 0.8 * len(seen), seen
    assert streams.peak > START_STREAMS, "a step up was tried, and undone: it did not raise the rate"


def test_faults_halve_the_streams_and_probing_starts_again():
    streams = Streams(start=16)
    streams.fault()
    assert streams.limit == 8
    streams.fault()
    streams.fault()
    streams.fault()
    streams.fault()
    assert streams.limit == 1, "never below one"
    drive(streams, paced_link(connection=4 * MB, link=25 * MB))
    assert streams.limit >= 7, "it grows back while the link gives more"


def test_pieces_the_link_was_not_short_of_streams_for_change_nothing():
    streams = Streams()
    for _ in range(100):
        streams.done(4 * MB, 0.01, streams.limit, busy=False)  # the consumer, not the link, is slow
        streams.done(4 * MB, 0.01, streams.limit - 1, busy=True)  # started under another limit
    assert streams.limit == START_STREAMS


class Gate:
    """A read that holds each piece until the test lets it go, recording how many are in flight."""

    def __init__(self):
        self.cond = threading.Condition()
        self.active = self.most = 0
        self.open = False
        self.asked: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int) -> bytes:
        with self.cond:
            self.asked.append((start, end))
            self.active += 1
            self.most = max(self.most, self.active)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.open)
            self.active -= 1
        return bytes(i % 251 for i in range(start, end))

    def wait_active(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.active >= n, timeout=30), f"{self.active} in flight, not {n}"

    def release(self) -> None:
        with self.cond:
            self.open = True
            self.cond.notify_all()


def test_the_fetcher_keeps_the_limit_in_flight_in_the_order_asked_and_joins_each_range():
    gate = Gate()
    fetcher = Fetcher(Streams(start=3))
    ranges = [(0, 2 * PIECE_BYTES), (3 * PIECE_BYTES, 5 * PIECE_BYTES)]  # two pieces each
    first = fetcher.submit(gate, ranges)
    second = fetcher.submit(gate, [(6 * PIECE_BYTES, 6 * PIECE_BYTES + 10)])
    gate.wait_active(3)
    with gate.cond:
        assert gate.asked == [(0, PIECE_BYTES), (PIECE_BYTES, 2 * PIECE_BYTES), (3 * PIECE_BYTES, 4 * PIECE_BYTES)]
    gate.release()
    got = first.result(timeout=30)
    assert sorted(got) == [0, PIECE_BYTES, 3 * PIECE_BYTES, 4 * PIECE_BYTES], "each piece, not joined (a copy)"
    assert got[0] + got[PIECE_BYTES] == bytes(i % 251 for i in range(0, 2 * PIECE_BYTES))
    assert got[3 * PIECE_BYTES] + got[4 * PIECE_BYTES] == bytes(
        i % 251 for i in range(3 * PIECE_BYTES, 5 * PIECE_BYTES)
    )
    tail = 6 * PIECE_BYTES
    assert second.result(timeout=30) == {tail: bytes(i % 251 for i in range(tail, tail + 10))}
    assert gate.most == 3, "never more than the limit at once"


def test_a_failed_piece_fails_its_job_and_its_other_pieces_are_not_fetched():
    asked = []
    release = threading.Event()

    def read(start: int, end: int) -> bytes:
        asked.append(start)
        if start == 0:
            release.wait(30)
            raise OSError("the storage host hung up")
        return b"x" * (end - start)

    fetcher = Fetcher(Streams(start=1))
    failing = fetcher.submit(read, [(0, 3 * PIECE_BYTES)])  # three pieces, one stream: the first fails
    release.set()
    with pytest.raises(OSError, match="hung up"):
        failing.result(timeout=30)
    later = fetcher.submit(read, [(10, 20)])
    assert later.result(timeout=30) == {10: b"x" * 10}
    assert asked == [0, 10], "the failed job's other pieces were skipped"
