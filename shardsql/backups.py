"""The autoresearch cache folder: the live data set, its backups, and the swap between them.

    ~/.cache/autoresearch/
        data/                 the shards prepare.py and train.py read (live)
        tokenizer/            trained by prepare.py for the live data
        backup_<label>/       a previous data/ + tokenizer/, labelled by what it holds
        .shardsql-staging/    a conversion in progress

A conversion is built in the staging folder and only moved into `data/` once it is
complete, so the live data is never touched by a failed run. Backups are moved (not
copied: instant, no extra disk), labelled with the dataset their manifest names (no
manifest means the original climbmix data), and never overwritten: a second backup of
the same label gets a numbered name.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import manifest

DEFAULT_CACHE_DIR = Path("~/.cache/autoresearch").expanduser()
STAGING_NAME = ".shardsql-staging"
BACKUP_PREFIX = "backup_"
ORIGINAL_LABEL = "climbmix"  # what autoresearch ships with; data with no manifest is this
LABEL_FILE = "source.txt"  # the seed script's label file, kept for compatibility


@dataclass(frozen=True)
class CacheDir:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def staging(self) -> Path:
        return self.root / STAGING_NAME

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
        (backup / LABEL_FILE).write_text(label + "\n", encoding="utf-8")
        return backup

    def install(self, staging: Path, backup: bool = True) -> Path | None:
        """Make `staging` the live data; keep the old data as a backup unless `backup` is False.

        The old tokenizer always leaves `tokenizer/`, so prepare.py trains one for the new data.
        Returns the backup folder, if one was made.
        """
        made = self.backup_live() if backup else None
        if not backup:
            for part in (self.data, self.tokenizer):
                if part.exists():
                    shutil.rmtree(part)
        os.replace(staging, self.data)
        return made
