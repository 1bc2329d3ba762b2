"""Conversions through a Hub stand-in that fails often: every run meets several faults and
still writes exactly the seed's output; persistent faults end in a clear, resumable error."""

import re

import pytest
from faults import KINDS, Faults
from helpers import read_texts
from seed_reference import seed_shards

from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.errors import SourceError
from shardsql.progress import Progress

pytestmark = pytest.mark.usefixtures("small_units")  # many requests to fail, as with real files


def expected_shards(folder):
    return seed_shards(sorted(folder.glob("*.parquet")), "text", 3, 800)[0]


def run(tmp_path, workers=2, **kw):
    options = ConvertOptions(
        shuffle=False, num_shards=3, rows_per_shard=800, cache_dir=tmp_path / "cache", workers=workers
    )
    return convert(catalog.resolve("fineweb-edu"), options, **kw)


def assert_equal_to_seed(tmp_path, folder):
    for name, rows in expected_shards(folder).items():
        assert read_texts(tmp_path / "cache" / "data" / name) == rows, name


@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_is_survived_with_exact_output(hub, hub_dataset, tmp_path, kind):
    folder = hub_dataset("fineweb-edu", row_group_size=200)
    hub.before_response = faults = Faults([kind], rate=0.5, seed=len(kind), limit=3)
    run(tmp_path)
    assert faults.injected == [kind] * 3
    assert_equal_to_seed(tmp_path, folder)


def test_many_mixed_faults_including_listing_calls(hub, hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu", row_group_size=200)
    listing = Faults(["503", "drop"], rate=1.0, api_too=True, reads=False, limit=2)  # the first two listing calls
    reads = Faults(rate=0.25, seed=7, limit=8)
    hub.before_response = lambda handler: listing(handler) or reads(handler)
    run(tmp_path)
    assert len(listing.injected) == 2 and all(path.startswith("/api/") for path in listing.paths), listing.paths
    assert len(reads.injected) == 8 and len(set(reads.injected)) >= 4, reads.injected
    assert_equal_to_seed(tmp_path, folder)


def test_a_stalled_read_times_out_and_is_retried(tune, hub, hub_dataset, tmp_path):
    tune(read_timeout_s=0.5)  # shardsql's own read timeout, below STALL_S
    folder = hub_dataset("fineweb-edu", row_group_size=200)
    hub.before_response = faults = Faults(["stall"], rate=0.3, seed=1, limit=2)
    run(tmp_path)
    assert faults.injected == ["stall", "stall"]
    assert_equal_to_seed(tmp_path, folder)


def test_persistent_faults_end_in_a_clear_error_and_the_run_resumes(tune, hub, hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu", row_group_size=200)
    live = tmp_path / "cache" / "data"
    live.mkdir(parents=True)
    (live / "shard_00000.parquet").write_bytes(b"old data")

    # One unit (row group) at a time, nothing fetched ahead: the faults meet the reads after shard 1.
    tune(unit_bytes=1)
    tune(ahead_units=0)
    tune(fetch_ahead=0)

    class BreakAfterFirstShard(Progress):
        def shard(self, info):
            super().shard(info)
            hub.before_response = Faults(["short-206"], rate=1.0)

    # The 206 says it holds fewer bytes than asked for: refused before its body is read, retried, then named.
    persisted = r"after 6 attempts over \d+ s: 127\.0\.0\.1:\d+ answered bytes (\d+)-\d+/\* for bytes \1-\d+ of hf://"
    with pytest.raises(SourceError, match=persisted + r".*Run the same command again to resume"):
        run(tmp_path, progress=BreakAfterFirstShard(), workers=1)
    assert [p.name for p in live.iterdir()] == ["shard_00000.parquet"]
    assert (live / "shard_00000.parquet").read_bytes() == b"old data"

    hub.before_response = None
    messages = []

    class Recorder(Progress):
        def message(self, text):
            messages.append(text)

    run(tmp_path, progress=Recorder())
    # After at least the first shard: how many more depends on how far reads had got ahead.
    assert any(re.match(r"Resuming an interrupted run after [123] complete shards", m) for m in messages), messages
    assert_equal_to_seed(tmp_path, folder)
