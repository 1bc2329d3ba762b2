"""A disk that fills up mid-conversion: a clear error, the live data untouched, and the run
resumes once there is space. Needs root to mount a small tmpfs (CI runs as root)."""

import dataclasses
import os
import subprocess

import pytest
from helpers import read_texts
from seed_reference import seed_shards

from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.errors import ConversionError

pytestmark = pytest.mark.root


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_is_a_clear_error_and_the_run_resumes(hub_dataset, small_disk):
    folder = hub_dataset("fineweb-edu", files=3, rows_per_file=4000)
    live = small_disk / "data"
    live.mkdir()
    (live / "shard_00000.parquet").write_bytes(b"the user's data")
    options = ConvertOptions(shuffle=False, num_shards=5, rows_per_shard=1500, source=str(folder), cache_dir=small_disk)
    with pytest.raises(ConversionError, match="the disk is full .* run the same command again: it resumes"):
        convert(catalog.resolve("fineweb-edu"), options)
    assert [p.name for p in live.iterdir()] == ["shard_00000.parquet"]
    assert (live / "shard_00000.parquet").read_bytes() == b"the user's data"

    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    convert(catalog.resolve("fineweb-edu"), options)
    expected, _, _ = seed_shards(sorted(folder.glob("*.parquet")), "text", 5, 1500)
    for name, rows in expected.items():
        assert read_texts(small_disk / "data" / name) == rows


def test_disk_full_while_staging_a_shuffle_is_the_same_clear_error_and_resumes(hub_dataset, small_disk, tmp_path):
    folder = hub_dataset("fineweb-edu", files=3, rows_per_file=4000)
    options = ConvertOptions(num_shards=5, rows_per_shard=1500, source=str(folder), cache_dir=small_disk)
    reference = convert(catalog.resolve("fineweb-edu"), dataclasses.replace(options, cache_dir=tmp_path / "ref"))
    subprocess.run(["mount", "-o", "remount,size=300k", str(small_disk)], check=True)
    with pytest.raises(ConversionError, match="the disk is full .* run the same command again: it resumes"):
        convert(catalog.resolve("fineweb-edu"), options)
    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    resumed = convert(catalog.resolve("fineweb-edu"), options)
    assert [(s.name, s.sha256) for s in resumed.shards] == [(s.name, s.sha256) for s in reference.shards]


def test_a_shuffle_that_would_fill_the_disk_stages_compressed_and_fits(small_disk, tmp_path):
    """Texts that lz4 barely shrinks are staged as they are, unless the disk has too little room
    for that: then every staged text is compressed (zstd), said so, and the run fits where the
    texts as they are would not (their staging alone is larger than the disk), to the same bytes."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq
    from helpers import Events, definition_file

    source = tmp_path / "source"
    source.mkdir()
    for f in range(2):  # 2,000 texts of 2,000 random letters of four: lz4 1.8x, zstd 3.2x, snappy 2.1x
        rng = random.Random(f)
        texts = ["".join(rng.choices("acgt", k=2000)) for _ in range(2000)]
        pq.write_table(pa.table({"text": texts}), source / f"{f:03d}.parquet", row_group_size=100)
    definition = definition_file(source, "SELECT text FROM source")
    options = ConvertOptions(num_shards=4, rows_per_shard=600, cache_dir=small_disk)
    reference = convert(definition, dataclasses.replace(options, cache_dir=tmp_path / "ref"))

    staged = 3000 * 2000  # the rows drawn for 4 + 1 shards, as they are: more than the disk holds
    subprocess.run(["mount", "-o", f"remount,size={int(staged * 0.95)}", str(small_disk)], check=True)

    from click.testing import CliRunner

    from shardsql.cli import cli

    dry = CliRunner().invoke(cli, ["convert", str(definition.path), "--num-shards", "4", "--rows-per-shard", "600",
                                   "--cache-dir", str(small_disk), "--dry-run"])  # fmt: skip
    assert dry.exit_code == 0 and "so every text will be staged compressed" in dry.output, dry.output
    said = Events()
    result = convert(definition, options, progress=said)
    assert [(s.name, s.sha256) for s in result.shards] == [(s.name, s.sha256) for s in reference.shards]
    assert any(line.startswith("Staging compressed:") for line in said.lines), said.lines
