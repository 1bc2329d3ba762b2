import io
import re
from types import SimpleNamespace

import pytest
from helpers import StopAfter
from rich.console import Console

from shardsql import progress as progress_module
from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.output.shards import ShardInfo
from shardsql.progress import PLAIN_INTERVAL_S, PlainProgress, Progress, RichProgress

SHARD = ShardInfo("shard_00000.parquet", 1000, 2048, "0" * 64, [1000])


def test_plain_progress_prints_a_line_per_shard_and_messages():
    out = io.StringIO()
    progress = PlainProgress(out)
    progress.start(rows_wanted=3000, shards_wanted=3)
    progress.update(read=1500, kept=1200, fetched=4096)
    progress.shard(SHARD)
    progress.message("The source ran out.")
    progress.stop()
    text = out.getvalue()
    # The job's bytes, from what each kept row cost so far (4096 / 1200 x 3000), and the read rate.
    rate = r"[\d.]+ (B|KiB|MiB)/s"
    assert re.search(r"1,500 rows read, 1,200 kept, 1/3 shards, 4\.0 KiB of ~10\.0 KiB fetched, " + rate, text)
    assert "wrote shard_00000.parquet: 1,000 rows, 2.0 KiB" in text
    assert text.rstrip().endswith("The source ran out.")


def test_plain_progress_prints_its_first_status_line_an_interval_after_the_start(monkeypatch):
    """Not at the first unit: its rate would be the start-up's alone (an ETA of 256 s for a 25 s job)."""
    now = [1000.0]
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=lambda: now[0]))  # progress.py's clock only
    out = io.StringIO()
    progress = PlainProgress(out)
    progress.start(rows_wanted=3000, shards_wanted=3)
    now[0] += 1.5
    progress.update(read=100, kept=100, fetched=4096)
    assert out.getvalue() == ""
    now[0] += PLAIN_INTERVAL_S
    progress.update(read=1500, kept=1200, fetched=8192)
    assert out.getvalue().startswith("  1,500 rows read, 1,200 kept, 0/3 shards")
    now[0] += 1
    progress.update(read=1600, kept=1300, fetched=8192)
    assert out.getvalue().count("rows read") == 1, "then one every PLAIN_INTERVAL_S"


def test_the_jobs_bytes_are_estimated_from_the_units_whose_rows_are_counted():
    """Bytes fetched ahead, for units no worker has run yet, cost rows not yet counted: the
    whole comes from the bytes of the units whose rows are (`used`), never less than what arrived."""
    progress = Progress()
    progress.start(rows_wanted=10_000, shards_wanted=3)
    progress.update(read=1000, kept=1000, fetched=6 << 20, used=1 << 20)  # one unit run, five fetched ahead
    assert progress.fetch_status().startswith("6.0 MiB of ~10.0 MiB fetched")
    progress.update(read=9000, kept=9000, fetched=9 << 20, used=5 << 20)  # more arrived than the rows' cost
    assert progress.fetch_status().startswith("9.0 MiB of ~9.0 MiB fetched")


def test_resumed_run_counts_only_its_own_rate():
    """The rows before it are the conversion's totals, read and kept alike; the rates are this run's,
    shown once it has fetched or kept anything (not "0 B/s, 0 rows/s" while it starts)."""
    progress = PlainProgress(io.StringIO())
    progress.start(rows_wanted=3000, shards_wanted=3, kept=2000, shards=2, read=2100)
    assert progress.status() == "2,100 rows read, 2,000 kept, 2/3 shards, 0 B fetched this run, ETA ?"
    progress.update(read=2600, kept=2500, fetched=1 << 20)  # this run's 500 rows cost 1 MB: 1,000 cost 2 MB
    assert re.search(r"1\.0 MiB of ~2\.0 MiB fetched this run, [\d.]+ \w+/s, [\d,]+ rows/s", progress.status())


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_resumed_conversion_counts_the_rows_before_it_and_no_rate_before_its_own(hub_dataset, tmp_path, small_units,
                                                                                   shuffle):  # fmt: skip
    """A real interrupted run, then the same command: its progress counts the rows read and kept
    from the start of the conversion, both, and only this run's bytes and rates. A shuffled run
    interrupted while writing resumes from its staged rows: it reads and fetches nothing more."""
    folder = hub_dataset("fineweb-edu", row_group_size=100)  # small units: a resume starts in the middle
    options = ConvertOptions(num_shards=3, rows_per_shard=1000, source=str(folder), cache_dir=tmp_path,
                             shuffle=shuffle, workers=1)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        convert(catalog.resolve("fineweb-edu"), options, progress=StopAfter(2))
    out = io.StringIO()
    result = convert(catalog.resolve("fineweb-edu"), options, PlainProgress(out))
    statuses = re.findall(r"\(([\d,]+) rows read, ([\d,]+) kept, \d/4 shards, ([^)]*)\)", out.getvalue())
    assert statuses, out.getvalue()
    for read, kept, rest in statuses:
        assert int(read.replace(",", "")) >= int(kept.replace(",", "")) >= 2000, out.getvalue()
        assert "fetched this run" in rest, out.getvalue()
        if shuffle:
            assert rest.startswith("0 B fetched this run, ETA"), "nothing fetched or kept: no rate"
    assert int(statuses[-1][0].replace(",", "")) == result.rows_read


def test_rich_progress_draws_a_bar_with_the_counters():
    out = io.StringIO()
    progress = RichProgress(Console(file=out, force_terminal=True, width=150))
    progress.start(rows_wanted=3000, shards_wanted=3)
    progress.update(read=1500, kept=1200, fetched=4096)
    progress.shard(SHARD)
    progress.stop()
    text = out.getvalue()
    assert "converting" in text and "1,500 read, 1,200 kept" in text
    rate = r"[\d.]+ (B|KiB|MiB)/s"
    assert re.search(r"4\.0 KiB of ~10\.0 KiB, " + rate, text), "the bytes arrived, of the job's, and the rate"
    assert "wrote shard_00000.parquet: 1,000 rows" in text
    assert "1/3 shards" in text, "the bar shows the new shard count"


def test_the_last_shard_is_named_as_it_lands_the_validation_shard():
    out = io.StringIO()
    progress = PlainProgress(out)
    progress.start(rows_wanted=3000, shards_wanted=3)
    for index in range(3):
        progress.shard(ShardInfo(f"shard_{index:05d}.parquet", 1 if index == 2 else 1000, 2048, "0" * 64, [1000]))
    text = out.getvalue()
    assert "wrote shard_00001.parquet: 1,000 rows" in text
    assert "wrote shard_06542.parquet (the validation shard): 1 row," in text and "shard_00002" not in text


def test_a_resumed_run_says_its_bytes_are_this_runs_alone():
    progress = PlainProgress(io.StringIO())
    progress.start(rows_wanted=3000, shards_wanted=3, kept=2000, shards=2)
    progress.update(read=2600, kept=2500, fetched=1 << 20)
    assert "2,600 rows read, 2,500 kept, 2/3 shards, 1.0 MiB of ~2.0 MiB fetched this run" in progress.status()


class _Estimates(Progress):
    """Each estimate of the job's bytes a conversion's progress gives while it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.estimates: list[float] = []

    def update(self, read: int, kept: int, fetched: int, used: int | None = None) -> None:
        super().update(read, kept, fetched, used)
        whole = re.search(r" of ~([\d.]+) (B|KiB|MiB|GiB)", self.fetch_status())
        if whole:
            self.estimates.append(float(whole[1]) * 1024 ** ["B", "KiB", "MiB", "GiB"].index(whole[2]))


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_conversions_first_estimate_of_its_bytes_is_near_what_it_reads(hub, hub_dataset, tmp_path, tune, shuffle):
    """Many small units fetched ahead of the workers: the first estimate, at the first unit,
    is within a factor of two of the bytes the run fetched in the end (from all the bytes
    fetched, it was 10 times or more)."""
    tune(unit_bytes=16 << 10)
    hub_dataset("fineweb-edu", files=3, rows_per_file=3000, row_group_size=100)
    progress = _Estimates()
    options = ConvertOptions(shuffle=shuffle, num_shards=3, rows_per_shard=1000, cache_dir=tmp_path, workers=1)
    convert(catalog.resolve("fineweb-edu"), options, progress)
    assert progress.estimates, "estimates while reading"
    first, fetched = progress.estimates[0], progress.fetched
    assert 0.5 * fetched <= first <= 2 * fetched, (progress.estimates[:3], fetched)


def test_once_every_row_is_in_the_eta_counts_the_shards_left_to_write(monkeypatch):
    """A shuffle keeps every row it needs before it writes a shard: its ETA then comes from the
    pace of the shards written since, not from the rows (which would say 0 s for the whole
    second phase)."""
    now = [1000.0]
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=lambda: now[0]))  # progress.py's clock only
    progress = Progress()
    progress.start(rows_wanted=4000, shards_wanted=4)
    now[0] += 10
    progress.update(read=2000, kept=2000, fetched=1 << 20)
    assert progress.status().endswith("ETA 10s"), "half the rows in 10 s: 10 s more"
    now[0] += 10
    progress.update(read=4100, kept=4000, fetched=2 << 20)
    assert progress.status().endswith("ETA ?"), "no shard written yet: its pace is not known"
    now[0] += 3
    progress.shard(SHARD)
    assert progress.status().endswith("ETA 9s"), "a shard in 3 s, three to go"
    for _ in range(3):
        progress.shard(SHARD)
    assert progress.status().endswith("ETA 0s")


def test_a_run_resumed_after_its_rows_are_in_counts_the_shards_left(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=lambda: now[0]))  # progress.py's clock only
    progress = Progress()
    progress.start(rows_wanted=4000, shards_wanted=4, kept=4000, shards=1)
    now[0] += 2
    progress.shard(SHARD)
    assert progress.status().endswith("ETA 4s")
