"""Resuming an interrupted conversion from its last complete shard: one typed, versioned record.

After each shard is complete, `checkpoint.json` in the staging folder records the shards so
far and where the rows of the next one start (`Checkpoint.write_at`), in the terms of the
conversion's rows:

* `Position`: one dataset in source order. A unit's first row group and how many of the
  unit's kept rows the previous shards already took. (A whole-source definition's query runs
  again from the start: it needs only the shards written, whose rows it checks and skips.)
* `InterleavePosition`: a --no-shuffle mixture. The interleave's state (`MergePosition`: each
  component's rows, sizes and characters taken) and each component's `Position`.
* `MergePosition`: a shuffled conversion, whose rows are read back from its staged piles.
  Its selection phase is in `Checkpoint.shuffle` (`ShuffleState`): each part's draw, the
  piles' sizes and, once selected, what the write phase needs.

A rerun with the same definition, source and options reads from there and writes shards
identical to an uninterrupted run. Anything else (an edited definition, another revision or
option, a checkpoint another version of shardsql wrote) starts afresh, and says why. The file
is loaded field by field against these classes: a missing, extra or mistyped field is an
unreadable checkpoint, never a KeyError when the run resumes.

The file is replaced atomically and synced, so a crash leaves either the old or the new one.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Union

from . import durable
from .shards import ShardInfo

CHECKPOINT_NAME = "checkpoint.json"
# Of checkpoint.json and the staging it describes; another starts afresh (1: before the state
# was typed; 2: a pile's keys as IPC chunks; 3: its texts as IPC chunks, each a stream; 4: its
# texts as one IPC stream; 5: its texts as frames, staging/formats.py).
FORMAT = 5

# What must be the same for a rerun to continue an interrupted run: JSON values (options, the
# definitions' and sources' identities), only ever compared.
Fingerprint = dict[str, object]


@dataclass
class Position:
    """Where the next shard's rows start, one dataset in source order: a unit's file and first
    row group, and how many of the rows kept from there on the shards before already hold (a
    resume's units may be smaller than the run's that wrote this: those rows can span several)."""

    KIND: ClassVar[str] = "source"

    file: int = 0
    row_group: int = 0
    unit_rows_written: int = 0  # kept rows from (file, row_group) on already in shards
    rows_read: int = 0  # source rows in the row groups before this one
    rows_kept: int = 0  # rows the definition kept from them


@dataclass
class MergePosition:
    """Where the next shard starts in an interleave of parts (output/interleave.Merge): each
    part's rows, sizes (characters or documents, as the mix counts) and characters taken."""

    KIND: ClassVar[str] = "merge"

    taken: list[int]
    sizes: list[int]
    chars: list[int]


@dataclass
class InterleavePosition(MergePosition):
    """A --no-shuffle mixture's: the interleave's state and where each component's next row is."""

    KIND: ClassVar[str] = "interleave"

    positions: list[Position] = field(default_factory=list)


WritePosition = Position | MergePosition | InterleavePosition


@dataclass
class PartDraw:
    """A shuffled conversion's draw of one part, so far: its next slot in the seed's order, the
    rows it read and staged, the rows it draws to (`target`) and the distinct rows it must give."""

    slot: int = 0
    staged: int = 0
    read: int = 0
    target: int = 0
    wanted: int = 0
    exhausted: bool = False


@dataclass
class Selected:
    """A shuffled conversion's selection, once made: each part's cut in key order and duplicates,
    the rows of the training stream, each part's rows and characters written, the validation rows."""

    cuts: list[int]
    duplicates: list[int]
    rows: int
    written: list[int]
    chars: list[int]
    val_rows: int


@dataclass
class ShuffleState:
    """A shuffled conversion's phase 1 (commands/shuffle.py): each part's draw and the piles'
    file sizes at the last flush; `selected` once the selection is made (phase 2 writes)."""

    parts: list[PartDraw]
    pile_bits: int  # the key's top bits that choose a row's pile (staging.pile_bits), sized before drawing
    sizes: dict[str, int] = field(default_factory=dict)
    selected: Selected | None = None

    @property
    def phase(self) -> Literal["select", "write"]:
        return "select" if self.selected is None else "write"


@dataclass
class PartOutcome:
    """What one part of a conversion read, kept, removed as duplicates and wrote."""

    name: str
    validation: bool
    rows_read: int
    rows_kept: int  # staged (kept by its definition, duplicates included)
    duplicates: int
    rows_written: int
    chars_written: int


@dataclass
class Checkpoint:
    fingerprint: Fingerprint
    shards: list[ShardInfo] = field(default_factory=list)
    write_at: WritePosition | None = None  # where the next shard's rows start; None: the beginning
    shuffle: ShuffleState | None = None  # a shuffled conversion's phase 1
    # Every shard is written (the source may have run out): each part's account, for the manifest.
    outcome: list[PartOutcome] | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def save(self, folder: Path) -> None:
        fields = _encode(self)
        assert isinstance(fields, dict)
        data = {"format": FORMAT, **fields}
        # Synced, as every file it vouches for was before it (output/durable.py); but not one
        # that names the machine's boot (a shuffled run's: commands/convert.py), which a restart
        # voids anyway. Its syncs queued behind the piles' writeback at the disk: about 0.5 s of
        # a 40-shard selection on the benchmark's machine, on the thread appending to the piles.
        restart_proof = self.fingerprint.get("machine_boot") is None
        durable.write_text(folder / CHECKPOINT_NAME, json.dumps(data, indent=2), outlives_restart=restart_proof)


def _differences(old: Fingerprint, new: Fingerprint) -> list[str]:
    return [key.replace("_", " ") for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def load(folder: Path, fingerprint: Fingerprint) -> tuple[Checkpoint | None, str | None]:
    """The checkpoint to resume from, or (None, why not) when there is one that cannot be used."""
    path = folder / CHECKPOINT_NAME
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "the previous run's checkpoint is unreadable"
    written = data.get("format", 1) if isinstance(data, dict) else None
    if written != FORMAT:
        return None, f"the previous run's checkpoint is from another version of shardsql (format {written})"
    try:
        checkpoint = _decode(Checkpoint, {k: v for k, v in data.items() if k != "format"})
    except (TypeError, ValueError) as exc:
        return None, f"the previous run's checkpoint is unreadable ({exc})"
    changed = _differences(checkpoint.fingerprint, fingerprint)
    if changed:
        return None, f"the previous unfinished run differs in: {', '.join(changed)}"
    for shard in checkpoint.shards:
        shard_path = folder / shard.name
        if not shard_path.is_file() or shard_path.stat().st_size != shard.bytes:
            return None, f"{shard.name} of the previous run is missing or changed"
    return checkpoint, None


# --- JSON, field by field -------------------------------------------------------------------


def _encode(value: object) -> object:
    """JSON values of a dataclass tree; a class with a KIND says it (a WritePosition's member)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        kind = getattr(type(value), "KIND", None)
        return {"kind": kind, **fields} if kind is not None else fields
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(kind: object, value: object) -> typing.Any:
    """`value` (parsed JSON) as the type `kind`, checked all the way down; ValueError or TypeError if it is not one."""
    if kind is object:  # any JSON value (a fingerprint's)
        return value
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if all(isinstance(a, type) and dataclasses.is_dataclass(a) for a in members):  # tagged by KIND
            tag = value.get("kind") if isinstance(value, dict) else None
            for member in members:
                if getattr(member, "KIND", None) == tag:
                    return _decode(member, value)
            raise ValueError(f"unknown kind {tag!r}")
        for member in members:
            try:
                return _decode(member, value)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"{value!r} is none of {kind}")
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {value!r}")
        return [_decode(args[0], v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {value!r}")
        return {_decode(args[0], k): _decode(args[1], v) for k, v in value.items()}
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise TypeError(f"expected a {kind.__name__}, got {value!r}")
        hints = typing.get_type_hints(kind)
        names = {f.name for f in dataclasses.fields(kind)}
        given = {k: v for k, v in value.items() if k != "kind" or "kind" in names}
        if set(given) - names:
            raise ValueError(f"{kind.__name__} has no {', '.join(sorted(set(given) - names))}")
        return kind(**{name: _decode(hints[name], v) for name, v in given.items()})
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is type(None) or kind is None:
        if value is not None:
            raise TypeError(f"expected null, got {value!r}")
        return None
    if isinstance(kind, type) and type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value
