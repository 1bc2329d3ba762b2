"""Durable writes, seen from the system calls a real conversion makes (strace): every final
file's bytes are synced before the rename that makes it final, the rename's folder after it,
and a checkpoint is written only once what it vouches for is synced (output/durable.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shardsql.output.checkpoint import CHECKPOINT_NAME
from shardsql.standin.samples import write_sample

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (apt-get install strace)")

# "1234 fsync(7</path>) = 0", "1234 fsync(7</path> <unfinished ...>", '1234 rename("/a", "/b") = 0',
# '1234 write(7</path>, "...", 10) = 10': one event a call, in the order the calls started.
CALL = re.compile(
    r'^\d+\s+(fsync|fdatasync|write|rename)\((?:\d+<([^>]*)>(?:, "(.*?)"(?:\.\.\.)?, \d+)?|"([^"]*)", "([^"]*)")'
)
SHARD = re.compile(r"shard_\d{5}\.parquet")


def trace(args: list[str], log: Path) -> list[tuple[str, str, str | None]]:
    """Run `shardsql *args` under strace; its events in order: (call, path, the rename's target,
    or for a write to a checkpoint the shards it lists, space-separated)."""
    command = ["strace", "-f", "-y", "-s", "65536", "-o", str(log), "-e", "trace=fsync,fdatasync,write,rename"]
    proc = subprocess.run([*command, sys.executable, "-m", "shardsql", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = []
    for line in log.read_text(errors="replace").splitlines():
        match = CALL.match(line)
        if match:
            call, fd_path, written, source, target = match.groups()
            if call == "write":
                listed = " ".join(SHARD.findall(written or "")) if CHECKPOINT_NAME in (fd_path or "") else None
                events.append(("write", fd_path, listed))
            else:
                events.append(("fsync" if call == "fdatasync" else call, fd_path or source, target))
    return events


def synced(events, path: str, start: int, end: int) -> bool:
    return any(call == "fsync" and where == path for call, where, _ in events[start:end])


@pytest.mark.parametrize("order", ["--no-shuffle", "shuffled"])
def test_every_final_file_is_synced_before_its_rename_and_its_folder_after(tmp_path, order):
    source = write_sample("fineweb-edu", tmp_path / "source")[0].parent
    cache = tmp_path / "cache"
    (cache / "data").mkdir(parents=True)
    (cache / "data" / "shard_00000.parquet").write_bytes(b"old")  # backed up by the swap
    args = ["convert", "fineweb-edu", "--source", str(source), "--num-shards", "3", "--rows-per-shard", "500",
            "--cache-dir", str(cache), "--yes", "--quiet", *[order] * order.startswith("--")]  # fmt: skip
    events = trace(args, tmp_path / "strace.log")
    renames = [(i, Path(src), Path(dst)) for i, (call, src, dst) in enumerate(events) if call == "rename"]
    checkpoints = [i for i, _, dst in renames if dst.name == CHECKPOINT_NAME]
    finals = [(i, src, dst) for i, src, dst in renames if dst.suffix == ".parquet" or dst.name == CHECKPOINT_NAME
              or dst.name == "manifest.json"]  # fmt: skip
    assert len([1 for _, _, dst in finals if dst.suffix == ".parquet"]) >= 4, "3 shards and the validation shard"
    for i, src, dst in finals:
        bytes_first = synced(events, str(src), 0, i)
        assert bytes_first, f"{src} renamed to {dst.name} before its bytes were synced"
        rename_after = synced(events, str(dst.parent), i, len(events))
        assert rename_after, f"{dst.name}'s rename never synced"

    # A checkpoint is saved only once each shard it lists is synced, its rename too.
    listed, names = [], ""
    for i, (call, _, text) in enumerate(events):
        if call == "write" and text is not None:  # a write to a checkpoint's temporary file
            names += " " + text
        elif i in checkpoints:
            listed.append((i, names))
            names = ""
    shard_renames = {dst.name: i for i, _, dst in renames if dst.suffix == ".parquet"}
    assert max(len(set(names.split())) for _, names in listed) >= 4, "the last checkpoints list every shard"
    for at, names in listed:
        for name in set(names.split()):
            renamed = shard_renames.get(name)
            assert renamed is not None and renamed < at, f"a checkpoint lists {name} before it was renamed"
            folder_synced = synced(events, str(cache / ".shardsql-staging"), renamed, at)
            assert folder_synced, f"a checkpoint lists {name} before its rename was synced"

    # The swap: the staging folder synced before it becomes the live data, the cache folder after.
    swap = next(i for i, _, dst in renames if dst == cache / "data")
    staging = str(renames[[i for i, _, _ in renames].index(swap)][1])
    staging_first, cache_after = synced(events, staging, 0, swap), synced(events, str(cache), swap, len(events))
    assert staging_first and cache_after

    if order == "shuffled":
        # Every pile file written before a checkpoint is synced after its last write and before it.
        last_write: dict[str, int] = {}
        checked = 0
        for i, (call, path, _) in enumerate(events):
            if call == "write" and path and re.search(r"/\d{3}\.(keys|text)$", path):
                last_write[path] = i
            if i in checkpoints:
                for pile, written in last_write.items():
                    pile_synced = synced(events, pile, written, i)
                    assert pile_synced, f"{pile} written, not synced, before a checkpoint"
                    checked += 1
                last_write = {}
        assert checked, "the shuffled run staged piles under its checkpoints"
    assert os.listdir(cache / "data") and (cache / "data" / "manifest.json").exists()
