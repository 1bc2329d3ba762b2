"""A consumer's cache folder: the live data set, its backups, and the swap between them.

    ~/.cache/autoresearch/    (nanochat: $NANOCHAT_BASE_DIR, else ~/.cache/nanochat)
        data/                 the shards prepare.py and train.py read (live; nanochat: base_data_climbmix/)
        tokenizer/            trained by prepare.py for the live data (nanochat: by scripts.tok_train)
        backup_<label>/       a previous data folder + tokenizer/, labelled by what it holds
        .shardsql-staging/    a conversion in progress (kept after a crash, to resume)
        .shardsql.lock        held while a conversion or restore runs

The folders' names are the consumer's (consumers.py); everything else here is the same for
every consumer. A conversion is built in the staging folder and only moved into the data
folder once it is complete, so the live data is never touched by a failed run. Backups are
moved (not copied: instant, no extra disk), labelled with the dataset their manifest names
(no manifest means the original climbmix data, which both consumers ship with), and never
overwritten: a second backup of the same label gets a numbered name.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..consumers import CONSUMERS, DEFAULT, Consumer, base_folder, found, recorded
from ..errors import BackupError, BusyError, CacheDirError
from . import durable, manifest

STAGING_NAME = ".shardsql-staging"
BACKUP_PREFIX = "backup_"
ORIGINAL_LABEL = "climbmix"  # what autoresearch and nanochat ship with; data with no manifest is this
LABEL_FILE = "source.txt"  # the seed script's label file, kept for compatibility
LOCK_NAME = ".shardsql.lock"


@dataclass(frozen=True)
class Backup:
    path: Path
    label: str
    shards: int
    bytes: int
    created: _dt.datetime

    @property
    def name(self) -> str:
        return self.path.name.removeprefix(BACKUP_PREFIX)


@dataclass(frozen=True)
class CacheDir:
    root: Path
    consumer: Consumer = DEFAULT  # whose layout: the names of the data and tokenizer folders

    @classmethod
    def found(cls, root: Path | None, given: Consumer | None) -> CacheDir:
        """The cache folder `backups` and `restore` work on: `root` (--cache-dir; default: the base
        folder of the consumer given, else the default's, autoresearch), laid out for the consumer given (--for),
        else for the one its live data's manifest names, else the one whose data folder is there,
        live or in a backup (consumers.found)."""
        root = base_folder(root) if root is not None else (given or DEFAULT).base_dir()
        named = {recorded(manifest.read(root / c.data_folder)) for c in CONSUMERS.values()} - {None}
        live = _subfolders(root)
        backups = [p for p in live if p.name.startswith(BACKUP_PREFIX)]
        folders = {p.name for p in live} | {p.name for backup in backups for p in _subfolders(backup)}
        return cls(root, found(given, named.pop() if len(named) == 1 else None, folders, root))

    @property
    def data(self) -> Path:
        return self.root / self.consumer.data_folder

    @property
    def tokenizer(self) -> Path:
        return self.root / self.consumer.tokenizer_folder

    @property
    def staging(self) -> Path:
        return self.root / STAGING_NAME

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the cache folder for one conversion or restore.

        An OS file lock (flock) is released by the kernel when its process dies, even by
        SIGKILL, so a lock left by a dead process never blocks the next run.
        """
        with self._open_lock_file() as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise BusyError(
                    f"{self.root} is in use by another shardsql conversion or restore ({holder}); wait for it to finish"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield  # closing the file releases the lock

    def _open_lock_file(self) -> TextIO:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return open(self.root / LOCK_NAME, "a+")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise CacheDirError(self.root, exc) from None

    def check_usable(self) -> None:
        """Fail with a one-line CacheDirError now, before any work, if the folder cannot be used."""
        self._open_lock_file().close()

    def fresh_staging(self) -> Path:
        """An empty staging folder (a leftover from an interrupted run is discarded)."""
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        return self.staging

    def live_label(self) -> str:
        """What the live data holds: the dataset of its manifest, else the original climbmix."""
        found = manifest.read(self.data)
        return str(found["dataset"]) if found and found.get("dataset") else ORIGINAL_LABEL

    def free_backup_path(self, label: str) -> Path:
        path = self.root / f"{BACKUP_PREFIX}{label}"
        number = 2
        while path.exists():
            path = self.root / f"{BACKUP_PREFIX}{label}-{number}"
            number += 1
        return path

    def backup_live(self) -> Path | None:
        """Move the live data and tokenizer into a new labelled backup; None if there is no data."""
        if not self.data.exists() and not self.tokenizer.exists():
            return None
        label = self.live_label()
        backup = self.free_backup_path(label)
        backup.mkdir(parents=True)
        for part in (self.data, self.tokenizer):
            if part.exists():
                os.replace(part, backup / part.name)
        durable.write_text(backup / LABEL_FILE, label + "\n")  # the backup folder synced with it
        durable.sync(self.root)  # the moves out of it
        return backup

    def install(self, staging: Path, backup: bool = True) -> Path | None:
        """Make `staging` the live data; keep the old data as a backup unless `backup` is False.

        The old tokenizer always leaves its folder, so the consumer trains one for the new data.
        Returns the backup folder, if one was made.
        """
        durable.sync(staging)  # its shards' and manifest's names (each file was synced as written)
        made = self.backup_live() if backup else None
        if not backup:
            for part in (self.data, self.tokenizer):
                if part.exists():
                    shutil.rmtree(part)
        os.replace(staging, self.data)
        durable.sync(self.root)  # the swap itself
        return made

    def backups(self) -> list[Backup]:
        """The backups in the cache folder, oldest first."""
        found = []
        for path in self.root.glob(f"{BACKUP_PREFIX}*"):
            if not path.is_dir():
                continue
            label_file = path / LABEL_FILE
            label = label_file.read_text(encoding="utf-8").strip() if label_file.is_file() else path.name
            shards = list((path / self.consumer.data_folder).glob("*.parquet"))
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            created = _dt.datetime.fromtimestamp(path.stat().st_mtime)
            found.append(Backup(path, label.removeprefix(BACKUP_PREFIX), len(shards), size, created))
        return sorted(found, key=lambda b: (b.created, b.path.name))

    def find_backup(self, name: str | None = None) -> Backup:
        """A backup by name (`fineweb-edu`, `fineweb-edu-2` or `backup_fineweb-edu`) or label;
        the original climbmix data if no name is given."""
        backups = self.backups()
        if not backups:
            raise BackupError(f"there are no backups in {self.root}")
        wanted = (name or ORIGINAL_LABEL).removeprefix(BACKUP_PREFIX)
        by_name = [b for b in backups if b.name == wanted]
        # The seed script labelled its backups "climbmix-400b-shuffle"; a label prefix matches too.
        by_label = [b for b in backups if b.label == wanted or b.label.startswith(wanted + "-")]
        if by_name or by_label:
            return (by_name or by_label)[0]
        names = ", ".join(b.name for b in backups)
        raise BackupError(f"no backup named '{wanted}' in {self.root}; there are: {names}")

    def restore(self, name: str | None = None) -> tuple[Backup, Path | None]:
        """Make a backup the live data again; the current data becomes a backup in turn.

        Returns the restored backup and the backup made of the data that was live.
        """
        chosen = self.find_backup(name)
        kept = self.backup_live()
        for part in (self.data, self.tokenizer):
            if (chosen.path / part.name).exists():
                os.replace(chosen.path / part.name, part)
        durable.sync(self.root)
        shutil.rmtree(chosen.path)
        return chosen, kept


def free_space(path: Path) -> int:
    """Free bytes on the disk that holds `path`, or would hold it (its nearest existing folder)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _subfolders(path: Path) -> list[Path]:
    """The folders in `path`; none where it is not a readable folder (the lock then says why, in one line)."""
    try:
        return [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return []
