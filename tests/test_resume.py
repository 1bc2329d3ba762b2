"""A conversion killed with SIGKILL leaves the old data intact, and the same command run
again resumes from the last complete shard and ends with an uninterrupted run's shards."""

import dataclasses
import hashlib
import json
import random
import subprocess
import sys
import time

import pytest
from helpers import StopAfter

from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.output import checkpoint, durable
from shardsql.output.cache_dir import CacheDir
from shardsql.progress import Progress

# In source order: these kill a run by the requests it makes, and a shuffled run's write phase
# makes none (tests/test_shuffle.py kills shuffled runs in each of their phases).
ARGS = ["convert", "fineweb-edu", "--no-shuffle", "--num-shards", "6", "--rows-per-shard", "1000", "--yes", "--quiet"]


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
    # One row group (100 rows) a unit and one worker, so the third file (rows 5,000 on, for the
    # sixth shard) is read unit by unit once the run is under way (its checkpoint written, after
    # the sources are opened). The stand-in holds the first such request until the second shard is
    # checkpointed, and kills the run there: it cannot finish without that answer, and the first
    # two shards' rows are all in the first file, however fast or slow the machine and however far
    # ahead it fetches (a loaded machine once fetched all of the third file before the first shard).
    proc = start(cache, "--workers", "1", setup="from shardsql import tuning; tuning.use(tuning.Tuning(unit_bytes=1))")
    under_way = cache / ".shardsql-staging" / "checkpoint.json"

    def kill_after_two_shards(handler):
        if "002_00000.parquet" in handler.path and under_way.exists():
            deadline = time.monotonic() + 90
            while checkpointed_shards(cache) < 2 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if proc.poll() is None:
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


@pytest.mark.parametrize("change", ["rows_per_shard", "definition", "machine_boot"])
def test_a_changed_conversion_starts_afresh_and_says_why(hub_dataset, tmp_path, change, monkeypatch):
    """A real interrupted run's checkpoint (its whole fingerprint), then a rerun that differs
    in one thing only: it starts afresh, naming exactly that thing. A shuffled run's staged
    piles are not synced to the disk (output/durable.py), so a machine restarted since starts
    afresh too."""
    folder = hub_dataset("fineweb-edu")
    definition = catalog.resolve("fineweb-edu")
    options = ConvertOptions(num_shards=3, rows_per_shard=1000, source=str(folder), cache_dir=tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        convert(definition, options, progress=StopAfter(1))
    if change == "rows_per_shard":
        options = dataclasses.replace(options, rows_per_shard=900)
    elif change == "machine_boot":  # what Linux says after a restart: another boot id
        monkeypatch.setattr(durable, "BOOT_ID", tmp_path / "boot_id")
        (tmp_path / "boot_id").write_text("another-boot\n")
    else:  # the same SQL, one more comment: a reviewed file that changed
        edited = tmp_path / "fineweb-edu.sql"
        edited.write_text(definition.text + "-- edited\n")
        definition = catalog.load_file(edited)
    messages: list[str] = []

    class Recorder(Progress):
        def message(self, text):
            messages.append(text)

    convert(definition, options, Recorder())
    assert messages[0] == f"Starting afresh: the previous unfinished run differs in: {change.replace('_', ' ')}."


def test_the_same_conversion_resumes(hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu")
    definition = catalog.resolve("fineweb-edu")
    options = ConvertOptions(num_shards=3, rows_per_shard=1000, source=str(folder), cache_dir=tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        convert(definition, options, progress=StopAfter(1))
    messages: list[str] = []

    class Recorder(Progress):
        def message(self, text):
            messages.append(text)

    convert(definition, options, Recorder())
    assert messages[0].startswith("Resuming an interrupted run after "), messages


@pytest.mark.parametrize("damage", ["format 1", "a mistyped field", "an unknown position", "an extra field"])
def test_a_checkpoint_that_does_not_load_as_this_version_writes_it_starts_afresh(hub_dataset, tmp_path, damage):
    """The checkpoint is loaded field by field against its classes: one from another version of
    shardsql, or one whose fields are not what they must be, is never half used. The rerun
    starts afresh, says why, and writes an uninterrupted run's shards."""
    folder = hub_dataset("fineweb-edu")
    definition = catalog.resolve("fineweb-edu")
    options = ConvertOptions(num_shards=3, rows_per_shard=1000, source=str(folder), cache_dir=tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        convert(definition, options, progress=StopAfter(2))
    path = tmp_path / "cache" / ".shardsql-staging" / "checkpoint.json"
    state = json.loads(path.read_text())
    assert state["format"] == checkpoint.FORMAT and state["write_at"]["kind"] == "merge" and state["shards"]  # shuffled
    if damage == "format 1":  # what shardsql wrote before its checkpoint was typed: no format, dicts
        del state["format"]
        state["next"] = state.pop("write_at")
    elif damage == "a mistyped field":
        state["shards"][0]["rows"] = "1000"
    elif damage == "an unknown position":
        state["write_at"]["kind"] = "elsewhere"
    else:
        state["shuffle_phase"] = "select"
    path.write_text(json.dumps(state))
    messages: list[str] = []

    class Recorder(Progress):
        def message(self, text):
            messages.append(text)

    result = convert(definition, options, Recorder())
    why = {
        "format 1": "is from another version of shardsql (format 1)",
        "a mistyped field": "is unreadable (expected int, got '1000')",
        "an unknown position": "is unreadable (unknown kind 'elsewhere')",
        "an extra field": "is unreadable (Checkpoint has no shuffle_phase)",
    }[damage]
    assert messages[0] == f"Starting afresh: the previous run's checkpoint {why}."
    fresh = convert(definition, dataclasses.replace(options, cache_dir=tmp_path / "fresh"))
    assert [s.sha256 for s in result.shards] == [s.sha256 for s in fresh.shards]


def test_a_resume_with_smaller_units_skips_the_rows_the_shards_hold_across_units(hub_dataset, tmp_path, tune):
    """A resume's units need not be the first run's: where its first unit keeps fewer rows than
    the shards already hold from where it starts, the rest are skipped from the next units."""
    folder = hub_dataset("fineweb-edu")
    definition = catalog.resolve("fineweb-edu")
    options = ConvertOptions(num_shards=3, rows_per_shard=1000, source=str(folder), cache_dir=tmp_path / "cache",
                             shuffle=False)  # fmt: skip
    reference = dataclasses.replace(options, cache_dir=tmp_path / "reference")
    convert(definition, reference)
    with pytest.raises(KeyboardInterrupt):  # a unit is a whole file of 3,000 rows here
        convert(definition, options, progress=StopAfter(2))
    tune(unit_bytes=1)  # one 500-row group a unit: the resume's first unit keeps fewer rows than shards hold
    convert(definition, options)
    assert shard_hashes(tmp_path / "cache" / "data") == shard_hashes(tmp_path / "reference" / "data")
