"""Scheduling and the local executor: ordered parallel work over units, stopping early, and resuming both paths."""

from __future__ import annotations

import math
import threading
import time

import pytest
from helpers import CASES, StopAfter, definition_file, read_texts

from shardsql import tuning
from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.errors import ConversionError
from shardsql.progress import Progress
from shardsql.run import scheduling
from shardsql.source.files import SourceFile
from shardsql.source.units import Unit


def test_ordered_runs_items_at_once_and_yields_them_in_input_order():
    # Passes only once four items run at the same time: a serial implementation never gets
    # past the first (the timeout only bounds how long that failure takes to show).
    together = threading.Barrier(4, timeout=60)

    def work(i):
        if i < 4:
            together.wait()
        time.sleep(0.02 * (5 - i % 5))  # later items finish first
        return i * i

    got = list(scheduling.ordered(iter(range(12)), work, 4, lambda flight: len(flight) < 4))
    assert got == [(i, i * i) for i in range(12)]


def test_ordered_starts_nothing_the_consumer_cannot_need():
    started = []

    def work(i):
        started.append(i)
        return i

    # Nothing may start while one item is in flight: strictly one at a time, on demand.
    items = scheduling.ordered(iter(range(100)), work, 4, lambda flight: False)
    assert [next(items)[0] for _ in range(3)] == [0, 1, 2]
    items.close()
    assert started == [0, 1, 2]


def test_ordered_raises_the_first_error_in_order_and_stops_the_workers():
    running = threading.Event()

    def work(i):
        if i == 3:
            raise ValueError("unit 3 is broken")
        running.set()
        return i

    got = []
    with pytest.raises(ValueError, match="unit 3 is broken"):
        for item, _ in scheduling.ordered(iter(range(50)), work, 2, lambda flight: len(flight) < 3):
            got.append(item)
    assert got == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name.startswith("shardsql-unit")], "workers stopped"


@pytest.mark.parametrize("case", ["filter", "order-by", "scalar-subquery"])
def test_an_interrupted_run_resumes_to_identical_shards(source_folder, tmp_path, case):
    definition = definition_file(source_folder, CASES[case][0])

    def run(cache, **kw):
        options = ConvertOptions(num_shards=500, rows_per_shard=4, cache_dir=cache, workers=2)
        return convert(definition, options, **kw)

    whole = run(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", progress=StopAfter(3))
    messages = []

    class Recorder(Progress):
        def message(self, text):
            messages.append(text)

    resumed = run(tmp_path / "resumed", progress=Recorder())
    # Shards fed in full when the run stopped are finished and recorded too.
    resumed_after = [int(m.split()[5]) for m in messages if m.startswith("Resuming an interrupted run after")]
    assert resumed_after and resumed_after[0] >= 3, messages
    assert [s.sha256 for s in resumed.shards] == [s.sha256 for s in whole.shards]
    assert read_texts(tmp_path / "resumed" / "data" / "shard_00003.parquet")


def test_a_resumed_whole_source_run_whose_query_gives_other_rows_stops(source_folder, tmp_path):
    definition = definition_file(source_folder, "SELECT text FROM source WHERE text IS NOT NULL ORDER BY random()")
    options = ConvertOptions(num_shards=500, rows_per_shard=4, cache_dir=tmp_path / "cache", workers=2)
    with pytest.raises(KeyboardInterrupt):
        convert(definition, options, progress=StopAfter(3))
    with pytest.raises(ConversionError, match=r"gave other rows for shard_00000\.parquet than the interrupted run"):
        convert(definition, options)
    assert not (tmp_path / "cache" / "data").exists(), "nothing reached the data folder"


@pytest.mark.parametrize("dataset", sorted(d.name for d in catalog.load_datasets()))
def test_one_worker_and_four_resumed_give_the_same_bytes(hub_dataset, tmp_path, small_units, dataset):
    """Every built-in definition on its sample: 1 worker, against 4 workers interrupted and resumed."""
    hub_dataset(dataset, files=2, rows_per_file=3000, row_group_size=250)
    definition = catalog.resolve(dataset)

    def run(cache, workers, **kw):
        options = ConvertOptions(num_shards=5, rows_per_shard=700, cache_dir=cache, workers=workers)
        return convert(definition, options, **kw)

    one = run(tmp_path / "one", 1)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "four", 4, progress=StopAfter(2))
    four = run(tmp_path / "four", 4)
    assert [(s.name, s.sha256) for s in four.shards] == [(s.name, s.sha256) for s in one.shards]
    assert len(one.shards) >= 4, "several shards, some written after the resume"


class _Fetched:
    """A unit's fetch, as a Window sees it: done or not."""

    def __init__(self, done: bool):
        self._done = done

    def done(self) -> bool:
        return self._done


class _Streams:
    """Streams enough that the bytes being fetched are never what holds a unit back here."""

    limit = 1000


def _admits(window: scheduling.Window, fetched: int, fetching: int, unit_bytes: int) -> bool:
    """Whether `window` starts another unit after `fetched` units fetched and `fetching` still being fetched."""
    file = SourceFile("f.parquet", "f.parquet", 1 << 40)
    flight = [(Unit(0, file, (i,), 1, ((0, unit_bytes),)), _Fetched(i < fetched)) for i in range(fetched + fetching)]
    return window(flight)


def test_a_shuffles_select_phase_lets_more_units_wait_and_more_bytes_be_in_flight():
    """A shuffle's select phase stages each unit to disk as it finishes, so its window (both
    engines') lets STAGING_AHEAD_UNITS units wait beyond one a worker, and STAGING_LINK_BYTES
    more be in flight, whatever the workers: on a link it reads at the link's rate (bench)."""
    workers, mb = 2, 1 << 20
    in_order = scheduling.Window(workers, _Streams(), lambda: math.inf)
    staging = scheduling.Window(workers, _Streams(), lambda: math.inf, staging=True)
    ahead = tuning.current().ahead_units
    assert _admits(in_order, workers + ahead - 1, 0, mb) and not _admits(in_order, workers + ahead, 0, mb)
    most = workers + scheduling.STAGING_AHEAD_UNITS
    assert _admits(staging, most - 1, 0, mb) and not _admits(staging, most, 0, mb)
    # Bytes in flight, fetched or not: the workers' budget, and for staging the link's share more.
    budget = workers * scheduling.BYTES_PER_WORKER
    assert not _admits(in_order, 1, budget // (8 * mb), 8 * mb)
    assert _admits(staging, 1, budget // (8 * mb), 8 * mb)
    assert not _admits(staging, 1, (budget + scheduling.STAGING_LINK_BYTES) // (8 * mb), 8 * mb)


def test_link_bytes_let_more_bytes_be_in_flight_beyond_the_workers_budget():
    """`link_bytes` (the Ray engine's LINK_BYTES: its fetched bytes wait in the object store)
    raise the bytes in flight beyond the workers' budget, and only the bytes: the units that may
    wait stay one a worker and `ahead` more. A shuffle's select phase gets the larger of it and
    STAGING_LINK_BYTES."""
    workers, mb, extra = 2, 1 << 20, 64 << 20
    plain = scheduling.Window(workers, _Streams(), lambda: math.inf, ahead=20)
    wide = scheduling.Window(workers, _Streams(), lambda: math.inf, ahead=20, link_bytes=extra)
    budget = workers * scheduling.BYTES_PER_WORKER
    assert not _admits(plain, 1, budget // (8 * mb), 8 * mb)
    assert _admits(wide, 1, budget // (8 * mb), 8 * mb)
    assert not _admits(wide, 1, (budget + extra) // (8 * mb), 8 * mb)
    units = scheduling.Window(workers, _Streams(), lambda: math.inf, ahead=1, link_bytes=extra)
    assert _admits(units, workers, 0, mb) and not _admits(units, workers + 1, 0, mb)
    small = scheduling.Window(workers, _Streams(), lambda: math.inf, ahead=20, link_bytes=mb, staging=True)
    assert _admits(small, 1, budget // (8 * mb), 8 * mb)
