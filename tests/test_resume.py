"""A conversion killed with SIGKILL leaves the old data intact, and the same command run
again resumes from the last complete shard and ends with an uninterrupted run's shards."""

import hashlib
import json
import random
import subprocess
import sys
import time

import pytest

from shardsql import catalog
from shardsql.backups import CacheDir
from shardsql.convert import ConvertOptions, convert

ARGS = ["convert", "fineweb-edu", "--num-shards", "6", "--rows-per-shard", "1000", "--yes", "--quiet"]


def shard_hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def start(cache, *extra, setup=""):
    """`shardsql convert` in a subprocess; `setup`: Python run in it first."""
    code = f"{setup}\nfrom shardsql.cli import main\nmain()"
    cmd = [sys.executable, "-c", code, *ARGS, "--cache-dir", str(cache), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def checkpointed_shards(cache) -> int:
    try:
        return len(json.loads((cache / ".shardsql-staging" / "checkpoint.json").read_text())["shards"])
    except (OSError, ValueError):
        return 0


def old_data(cache):
    live = CacheDir(cache)
    live.data.mkdir(parents=True)
    (live.data / "shard_00000.parquet").write_bytes(b"the user's climbmix shard")
    live.tokenizer.mkdir()
    (live.tokenizer / "tokenizer.pkl").write_bytes(b"the user's tokenizer")
    return {
        "data/shard_00000.parquet": b"the user's climbmix shard",
        "tokenizer/tokenizer.pkl": b"the user's tokenizer",
    }


def live_files(cache):
    return {
        p.relative_to(cache).as_posix(): p.read_bytes()
        for p in cache.glob("*/*")
        if p.parent.name in ("data", "tokenizer")
    }


@pytest.fixture
def reference(hub, hub_dataset, tmp_path):
    """An uninterrupted run's shard hashes (and how many requests it made, in hub.reference_requests)."""
    hub_dataset("fineweb-edu", files=4, rows_per_file=2500, row_group_size=100)
    hub.reset_counters()
    proc = start(tmp_path / "reference")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    hub.reference_requests = len(hub.requests)
    return shard_hashes(tmp_path / "reference" / "data")


def test_kill_after_two_shards_then_resume(reference, hub, tmp_path):
    cache = tmp_path / "run"
    before = old_data(cache)
    # One row group (100 rows) a unit and one worker: the run fetches a few units ahead of the
    # shard it writes, so the later shards' rows are requested after the second shard is
    # checkpointed (with whole-file units it fetches everything first). The stand-in kills it at
    # the first such request: the run cannot finish without its answer, however fast it is
    # (polled from here, a fast run could write its last shards between two looks).
    proc = start(cache, "--workers", "1", setup="from shardsql import plan; plan.UNIT_BYTES = 1")

    def kill_after_two_shards(handler):
        if checkpointed_shards(cache) >= 2 and proc.poll() is None:
            proc.kill()
        return False

    hub.before_response = kill_after_two_shards
    proc.wait(timeout=120)
    hub.before_response = None
    assert proc.returncode == -9 and checkpointed_shards(cache) >= 2, "the run was meant to be killed mid-way"
    assert live_files(cache) == before, "the user's data is untouched by the killed run"

    hub.reset_counters()
    rerun = start(cache)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    assert "Resuming an interrupted run after" in out
    assert shard_hashes(cache / "data") == reference
    assert (cache / "backup_climbmix" / "data" / "shard_00000.parquet").read_bytes() == before[
        "data/shard_00000.parquet"
    ]
    # The rerun did not read the source from the start: the first row groups were not served again.
    first_file = [r for r in hub.requests if r[0] == "GET" and r[1].endswith("000_00000.parquet")]
    assert len(first_file) < 10


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kill_at_a_random_moment_then_rerun(reference, hub, tmp_path, seed):
    """SIGKILL at a random request of the run, after a random pause, so it lands anywhere:
    while fetching, decoding, writing or renaming a shard, or writing the checkpoint."""
    rng = random.Random(seed)
    kill_at, pause = rng.randrange(2, hub.reference_requests), rng.uniform(0, 0.05)
    cache = tmp_path / "run"
    before = old_data(cache)
    hub.reset_counters()
    proc = start(cache)

    def kill_on_request(handler):
        if len(hub.requests) >= kill_at and proc.poll() is None:
            time.sleep(pause)
            proc.kill()
        return False

    hub.before_response = kill_on_request
    proc.wait(timeout=120)
    hub.before_response = None
    assert proc.returncode == -9, "the run was meant to be killed"
    assert live_files(cache) == before
    rerun = start(cache)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    assert shard_hashes(cache / "data") == reference


def test_changed_options_start_afresh_and_say_why(hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu")
    definition = catalog.resolve("fineweb-edu")
    cache = CacheDir(tmp_path)
    # Leave a checkpoint behind as an interrupted run would: a run with 2 shards of 1000 rows.
    staging = cache.staging
    staging.mkdir(parents=True)
    from shardsql.checkpoint import Checkpoint

    Checkpoint({"rows_per_shard": 1000, "num_shards": 2}).save(staging)
    messages = []

    class Recorder:
        def __getattr__(self, name):
            return lambda *a, **k: None

        def message(self, text):
            messages.append(text)

    options = ConvertOptions(num_shards=2, rows_per_shard=900, source=str(folder), cache_dir=tmp_path)
    convert(definition, options, Recorder())
    assert any(m.startswith("Starting afresh: the previous unfinished run differs in:") for m in messages), messages
    assert "rows per shard" in messages[0]
