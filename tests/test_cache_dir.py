import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from shardsql.cli import cli
from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.output.cache_dir import BackupError, BusyError, CacheDir


def make_live(cache: CacheDir, content: bytes, manifest_dataset: str | None = None) -> None:
    cache.data.mkdir(parents=True)
    (cache.data / "shard_00000.parquet").write_bytes(content)
    (cache.data / "shard_06542.parquet").write_bytes(content)
    if manifest_dataset:
        (cache.data / "manifest.json").write_text(f'{{"dataset": "{manifest_dataset}"}}')
    cache.tokenizer.mkdir()
    (cache.tokenizer / "tokenizer.pkl").write_bytes(b"tok-" + content)


def test_backup_is_labelled_by_the_manifest_and_never_overwritten(tmp_path):
    cache = CacheDir(tmp_path)
    make_live(cache, b"climbmix")
    assert cache.backup_live() == tmp_path / "backup_climbmix"
    make_live(cache, b"edu", manifest_dataset="fineweb-edu")
    assert cache.backup_live() == tmp_path / "backup_fineweb-edu"
    make_live(cache, b"edu again", manifest_dataset="fineweb-edu")
    assert cache.backup_live() == tmp_path / "backup_fineweb-edu-2"
    assert (tmp_path / "backup_fineweb-edu" / "data" / "shard_00000.parquet").read_bytes() == b"edu"
    assert [(b.name, b.label, b.shards) for b in cache.backups()] == [
        ("climbmix", "climbmix", 2),
        ("fineweb-edu", "fineweb-edu", 2),
        ("fineweb-edu-2", "fineweb-edu", 2),
    ]


def test_restore_defaults_to_climbmix_and_keeps_the_live_set(tmp_path):
    cache = CacheDir(tmp_path)
    make_live(cache, b"climbmix")
    cache.backup_live()
    make_live(cache, b"edu", manifest_dataset="fineweb-edu")
    restored, kept = cache.restore()
    assert restored.label == "climbmix"
    assert (cache.data / "shard_00000.parquet").read_bytes() == b"climbmix"
    assert (cache.tokenizer / "tokenizer.pkl").read_bytes() == b"tok-climbmix"
    assert kept == tmp_path / "backup_fineweb-edu"
    assert not (tmp_path / "backup_climbmix").exists()
    restored, kept = cache.restore("fineweb-edu")
    assert (cache.data / "shard_00000.parquet").read_bytes() == b"edu"
    assert kept == tmp_path / "backup_climbmix"


def test_seed_script_backups_are_recognised_as_climbmix(tmp_path):
    # convert_dataset.py named its backup after the new dataset but it holds climbmix.
    seed_backup = tmp_path / "backup_fineweb-edu"
    (seed_backup / "data").mkdir(parents=True)
    (seed_backup / "data" / "shard_00000.parquet").write_bytes(b"climbmix")
    (seed_backup / "source.txt").write_text("climbmix-400b-shuffle\n")
    cache = CacheDir(tmp_path)
    assert cache.find_backup().path == seed_backup


def test_restoring_an_unknown_backup_lists_the_known_ones(tmp_path):
    cache = CacheDir(tmp_path)
    with pytest.raises(BackupError, match="there are no backups"):
        cache.restore()
    make_live(cache, b"climbmix")
    cache.backup_live()
    with pytest.raises(BackupError, match="no backup named 'nope'.*there are: climbmix"):
        cache.restore("nope")


def test_a_second_conversion_is_refused_while_one_runs(tmp_path):
    cache = CacheDir(tmp_path)
    make_live(cache, b"climbmix")
    with cache.lock():
        with pytest.raises(
            BusyError, match=f"in use by another shardsql conversion or restore \\(pid {os.getpid()}\\)"
        ):
            convert(catalog.resolve("fineweb-edu"), ConvertOptions(cache_dir=tmp_path))
        result = CliRunner().invoke(cli, ["restore", "--cache-dir", str(tmp_path)])
        assert result.exit_code == 1 and "in use by another shardsql" in result.output
    assert (cache.data / "shard_00000.parquet").read_bytes() == b"climbmix"


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, hub_dataset):
    folder = hub_dataset("fineweb-edu")
    code = (
        "import os, sys\nfrom shardsql.output.cache_dir import CacheDir\n"
        "with CacheDir(__import__('pathlib').Path(sys.argv[1])).lock():\n    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)])
    assert proc.returncode == -9
    assert (tmp_path / ".shardsql.lock").read_text().startswith("pid ")
    options = ConvertOptions(num_shards=1, rows_per_shard=1000, source=str(folder), cache_dir=tmp_path)
    assert convert(catalog.resolve("fineweb-edu"), options).train_shards == 1


def test_backups_and_restore_commands(tmp_path):
    cache = CacheDir(tmp_path)
    make_live(cache, b"climbmix")
    cache.backup_live()
    make_live(cache, b"edu", manifest_dataset="fineweb-edu")
    listing = CliRunner().invoke(cli, ["backups", "--cache-dir", str(tmp_path)])
    assert listing.exit_code == 0
    assert "climbmix" in listing.output and "Live data: fineweb-edu" in listing.output
    restored = CliRunner().invoke(cli, ["restore", "--cache-dir", str(tmp_path)])
    assert restored.exit_code == 0, restored.output
    assert "Restored climbmix (2 shards)" in restored.output
    assert "now the backup fineweb-edu" in restored.output
