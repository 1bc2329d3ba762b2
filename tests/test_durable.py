"""Durable writes, seen from the system calls a real conversion makes (strace): every final
file's bytes are synced before the rename that makes it final, the rename's folder after it,
and a checkpoint is written only once what it vouches for is synced (output/durable.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from shardsql.output import durable
from shardsql.output.checkpoint import CHECKPOINT_NAME
from shardsql.standin.samples import write_sample

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (apt-get install strace)")

# "1234 fsync(7</path>) = 0", "1234 fsync(7</path> <unfinished ...>", '1234 rename("/a", "/b") = 0',
# '1234 write(7</path>, "...", 10) = 10': one event a call, in the order the calls started.
CALL = re.compile(
    r'^\d+\s+(fsync|fdatasync|write|rename)\((?:\d+<([^>]*)>(?:, "(.*?)"(?:\.\.\.)?, (\d+))?|"([^"]*)", "([^"]*)")'
)
SHARD = re.compile(r"shard_\d{5}\.parquet")
PILE_SIZE = re.compile(r'\\"(\d{3}\.(?:keys|text))\\": (\d+)')  # in a checkpoint's JSON, as strace quotes it


@dataclass
class Event:
    call: str  # fsync (or fdatasync), write or rename
    path: str  # the file or folder (a rename's source)
    target: str | None = None  # a rename's
    size: int = 0  # a write's bytes
    text: str = ""  # a write's, to a checkpoint only


def trace(args: list[str], log: Path) -> list[Event]:
    """Run `shardsql *args` under strace; the calls it made, in order."""
    command = ["strace", "-f", "-y", "-s", "65536", "-o", str(log), "-e", "trace=fsync,fdatasync,write,rename"]
    proc = subprocess.run([*command, sys.executable, "-m", "shardsql", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = []
    for line in log.read_text(errors="replace").splitlines():
        match = CALL.match(line)
        if match:
            call, fd_path, written, size, source, target = match.groups()
            if call == "write":
                text = written or "" if CHECKPOINT_NAME in (fd_path or "") else ""
                events.append(Event("write", fd_path or "", size=int(size or 0), text=text))
            else:
                events.append(Event("fsync" if call == "fdatasync" else call, fd_path or source, target))
    return events


def synced(events: list[Event], path: str, start: int, end: int) -> bool:
    return any(e.call == "fsync" and e.path == path for e in events[start:end])


@pytest.mark.parametrize("order", ["--no-shuffle", "shuffled"])
def test_every_final_file_is_synced_before_its_rename_and_its_folder_after(tmp_path, order):
    source = write_sample("fineweb-edu", tmp_path / "source")[0].parent
    cache = tmp_path / "cache"
    (cache / "data").mkdir(parents=True)
    (cache / "data" / "shard_00000.parquet").write_bytes(b"old")  # backed up by the swap
    args = ["convert", "fineweb-edu", "--source", str(source), "--num-shards", "3", "--rows-per-shard", "500",
            "--cache-dir", str(cache), "--yes", "--quiet", *[order] * order.startswith("--")]  # fmt: skip
    events = trace(args, tmp_path / "strace.log")
    renames = [(i, Path(e.path), Path(e.target or "")) for i, e in enumerate(events) if e.call == "rename"]
    checkpoints = [i for i, _, dst in renames if dst.name == CHECKPOINT_NAME]
    # A shuffled run's checkpoint names the machine's boot where a restart can be told (Linux): a
    # restart voids it, so it is written whole (renamed) but not synced, nor is its folder for it.
    voided_by_restart = order == "shuffled" and durable.boot_id() is not None
    finals = [(i, src, dst) for i, src, dst in renames if dst.suffix == ".parquet" or dst.name == "manifest.json"
              or (dst.name == CHECKPOINT_NAME and not voided_by_restart)]  # fmt: skip
    if voided_by_restart:
        tmp = {str(src) for i, src, _ in renames if i in checkpoints}
        assert checkpoints and not [e for e in events if e.call == "fsync" and e.path in tmp]
    assert len([1 for _, _, dst in finals if dst.suffix == ".parquet"]) >= 4, "3 shards and the validation shard"
    for i, src, dst in finals:
        bytes_first = synced(events, str(src), 0, i)
        assert bytes_first, f"{src} renamed to {dst.name} before its bytes were synced"
        rename_after = synced(events, str(dst.parent), i, len(events))
        assert rename_after, f"{dst.name}'s rename never synced"

    # A checkpoint is saved only once each shard it lists is synced, its rename too.
    # What each checkpoint says: the text written to its temporary file since the last one.
    said, text = {}, ""
    for i, event in enumerate(events):
        if event.call == "write" and event.text:
            text += event.text
        elif i in checkpoints:
            said[i], text = text, ""
    listed = [(i, " ".join(SHARD.findall(text))) for i, text in said.items()]
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

    if order == "shuffled" and durable.boot_id() is not None:
        # Where a restart can be told (Linux), the piles are not synced: every checkpoint records
        # the boot it was made in, and a rerun after a restart starts afresh (test_resume).
        assert all(f'\\"machine_boot\\": \\"{durable.boot_id()}\\"' in text for text in said.values()), said
        assert not [e for e in events if e.call == "fsync" and re.search(r"/\d{3}\.(keys|text)$", e.path)]
    elif order == "shuffled":
        # A checkpoint records each pile file's size: its bytes up to that size are synced before it.
        written: dict[str, list[tuple[int, int]]] = {}  # pile file: (event, its size after the write)
        checked = 0
        for i, event in enumerate(events):
            if event.call == "write" and re.search(r"/\d{3}\.(keys|text)$", event.path):
                so_far = written.setdefault(event.path, [(0, 0)])[-1][1]
                written[event.path].append((i, so_far + event.size))
            if i in said:
                for name, size in PILE_SIZE.findall(said[i]):
                    if int(size) == 0:
                        continue
                    path = next(p for p in written if p.endswith("/" + name))
                    reached = next(at for at, total in written[path] if total >= int(size))
                    pile_synced = synced(events, path, reached, i)
                    assert pile_synced, f"a checkpoint records {name} at {size} bytes before they were synced"
                    checked += 1
        assert checked, "the shuffled run staged piles under its checkpoints"
    assert os.listdir(cache / "data") and (cache / "data" / "manifest.json").exists()
