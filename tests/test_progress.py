import io
import re

from rich.console import Console

from shardsql.output.shards import ShardInfo
from shardsql.progress import PlainProgress, RichProgress

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
    assert re.search(r"1,500 rows read, 1,200 kept, 0/3 shards, 4\.0 KiB of ~10\.0 KiB fetched, " + rate, text)
    assert "wrote shard_00000.parquet: 1,000 rows, 2.0 KiB" in text and "1/3 shards" in text
    assert text.rstrip().endswith("The source ran out.")


def test_resumed_run_counts_only_its_own_rate():
    progress = PlainProgress(io.StringIO())
    progress.start(rows_wanted=3000, shards_wanted=3, kept=2000, shards=2)
    assert progress.status().startswith("0 rows read, 2,000 kept, 2/3 shards")
    assert " 0 rows/s" in progress.status()
    progress.update(read=500, kept=2500, fetched=1 << 20)  # this run's 500 rows cost 1 MB: 1,000 cost 2 MB
    assert "1.0 MiB of ~2.0 MiB fetched" in progress.status()


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
