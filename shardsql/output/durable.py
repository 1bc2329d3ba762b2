"""Durable writes, as SQLite and git make them: a file's bytes are on the disk before the
rename that makes it final, and the rename is on the disk (its folder synced) before
anything that vouches for the file is written.

Without this, a power cut (or a crash of the kernel, not of shardsql) shortly after a
rename can leave a final name with no bytes behind it, or a checkpoint naming a shard the
disk never got: the next run would resume on top of it, and the shards would be wrong.
With it, a power cut loses at most the work since the last checkpoint, which the next run
redoes (a shard being written is a `.partial`, never a final name).

What the rest of the package does with these:
* a shard is synced before its rename from `.partial` (output/shards.py), and its folder
  after it, before the checkpoint that lists it is saved;
* the checkpoint and the manifest are written whole to a temporary name, synced and renamed
  (`write_text`);
* a shuffled run's piles are not synced where the machine's restarts can be told apart
  (`boot_id`, on Linux): its checkpoint records the boot it was made in, and a run resumed
  after a restart starts afresh (commands/convert.py's fingerprint). Syncing the piles made
  the shuffled main job 10% slower (1.6 GB written to the disk that would otherwise be
  deleted from the page cache unwritten), and a kill or a crash of shardsql does not lose
  what the kernel holds; elsewhere they are synced before the checkpoint that records their
  sizes (output/staging.Piles.flush). Nor, there, is that checkpoint (output/checkpoint.py):
  a restart voids it, and its syncs queued at the disk behind the piles' writeback:
  `write_text(..., outlives_restart=False)`;
* the staging folder is synced before the swap that makes it the live data, and the cache
  folder after it (output/cache_dir.py).
"""

from __future__ import annotations

import os
from pathlib import Path

TMP_SUFFIX = ".tmp"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # Linux: a new random id at every boot


def boot_id() -> str | None:
    """This boot of the machine (Linux), or None where a restart cannot be told apart."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def sync(path: Path) -> None:
    """Flush a file's bytes, or a folder's entries (the names created, renamed or removed in
    it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(source: Path, target: Path) -> None:
    """Rename the file `source` to `target` durably: its bytes synced first, the folder after."""
    sync(source)
    os.replace(source, target)
    sync(target.parent)


def write_text(path: Path, text: str, *, outlives_restart: bool = True) -> None:
    """Write `path` whole or not at all: to a temporary name, then renamed. Durably, synced
    before and after the rename, unless `outlives_restart` is False: for a file that a restart
    of the machine makes void anyway, which a kill of shardsql still finds whole."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        if outlives_restart:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if outlives_restart:
        sync(path.parent)
