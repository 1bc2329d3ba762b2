"""Resuming an interrupted conversion from its last complete shard.

After each shard is complete, `checkpoint.json` in the staging folder records the shards
so far and where in the source the next one starts: the first row group of a unit and how
many of the unit's kept rows the previous shards already took. (A whole-source
definition's query runs again from the start: it needs only the shards written, whose
rows it checks and skips.) A
rerun with the same definition, source and options reads from there and writes shards
identical to an uninterrupted run. Anything else (an edited definition, another revision
or option) starts afresh, and says why.

The file is replaced atomically, so a crash leaves either the old or the new checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import durable
from .shards import ShardInfo

CHECKPOINT_NAME = "checkpoint.json"


@dataclass
class Position:
    """Where the next shard's rows start, row by row: a unit's file and first row group, and
    how many of that unit's kept rows the shards before already hold."""

    file: int = 0
    row_group: int = 0
    unit_rows_written: int = 0  # kept rows of the unit at (file, row_group) already in shards
    rows_read: int = 0  # source rows in the row groups before this one
    rows_kept: int = 0  # rows the definition kept from them


@dataclass
class Checkpoint:
    fingerprint: dict[str, Any]
    shards: list[ShardInfo] = field(default_factory=list)
    next: Position = field(default_factory=Position)
    finished: bool = False  # every shard is written (the source may have run out)
    # A shuffled conversion's state (commands/shuffle.py): its phase, the draw's position,
    # the staged piles' sizes, the cut, and where the next shard starts in the sorted rows.
    shuffle: dict[str, Any] = field(default_factory=dict)
    # A --no-shuffle mixture's (commands/interleaved.py): each component's next row and size.
    interleave: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        data = {
            "fingerprint": self.fingerprint,
            "shards": [asdict(s) for s in self.shards],
            "next": asdict(self.next),
            "finished": self.finished,
            "shuffle": self.shuffle,
            "interleave": self.interleave,
        }
        # Synced, as every file it vouches for was before it (output/durable.py).
        durable.write_text(folder / CHECKPOINT_NAME, json.dumps(data, indent=2))


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [key.replace("_", " ") for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def load(folder: Path, fingerprint: dict[str, Any]) -> tuple[Checkpoint | None, str | None]:
    """The checkpoint to resume from, or (None, why not) when there is one that cannot be used."""
    path = folder / CHECKPOINT_NAME
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        checkpoint = Checkpoint(
            fingerprint=data["fingerprint"],
            shards=[ShardInfo(**s) for s in data["shards"]],
            next=Position(**data["next"]),
            finished=bool(data["finished"]),
            shuffle=data.get("shuffle") or {},
            interleave=data.get("interleave") or {},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None, "the previous run's checkpoint is unreadable"
    changed = _differences(checkpoint.fingerprint, fingerprint)
    if changed:
        return None, f"the previous unfinished run differs in: {', '.join(changed)}"
    for shard in checkpoint.shards:
        shard_path = folder / shard.name
        if not shard_path.is_file() or shard_path.stat().st_size != shard.bytes:
            return None, f"{shard.name} of the previous run is missing or changed"
    return checkpoint, None
