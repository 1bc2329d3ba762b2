"""`manifest.json`: the record, beside the shards, of how they were made.

It holds everything needed to review or reproduce a conversion: the definition's text and
hash, the source files at the resolved commit, the options, the row counts, and each
shard's size and sha256. It never holds credentials (the Hub token is not an option).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import __version__
from . import durable

if TYPE_CHECKING:  # for annotations only: shards.py loads pyarrow, which `shardsql list` never needs
    from .shards import ShardInfo

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ComponentRecord:
    """A mixture's component or a --val-from part, as the manifest's `components` record it."""

    name: str
    validation: bool  # in the validation shard (role "validation"), not the training shards
    weight: Fraction  # its share of its group's rows (training, or validation)
    rows_written: int
    characters_written: int


class Recorded(Protocol):
    """A dataset's or mixture's definition, as the manifest records it (definition/model.py's, mixture.py's)."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def sha256(self) -> str: ...
    @property
    def text(self) -> str: ...


class ListedFile(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def size(self) -> int: ...


class Listed(Protocol):
    """A source as the manifest records it (source/files.Source): where, at which commit, which files."""

    @property
    def url(self) -> str: ...
    @property
    def revision(self) -> str | None: ...
    @property
    def commit(self) -> str | None: ...
    @property
    def files(self) -> Sequence[ListedFile]: ...


def build(
    *,
    definition: Recorded,
    source: Listed | None,
    options: dict[str, Any],
    rows_read: int,
    rows_kept: int,
    shards: list[ShardInfo],
    ran_out: bool,
    engine: dict[str, Any] | None = None,
    order: dict[str, Any] | None = None,
    val_tokens: int | None = None,
    components: list[dict[str, Any]] | None = None,
    val_from: str | None = None,
    mix_by: str | None = None,
) -> dict[str, Any]:
    """The record. `definition` is a dataset's or a mixture's; `source` is None for a mixture
    or with --val-from, whose parts' sources are in `components`."""
    rows_written = sum(s.rows for s in shards)
    record = {
        "format": FORMAT_VERSION,
        "shardsql_version": __version__,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "dataset": definition.name,
        "description": definition.description,
        "definition": {"path": str(definition.path), "sha256": definition.sha256, "text": definition.text},
        "source": {
            "url": source.url,
            "revision": source.revision,
            "commit": source.commit,
            "files": [{"url": f.url, "size": f.size} for f in source.files],
        }
        if source is not None
        else None,
        "options": options,
        # rows_read counts whole row groups fetched; rows_kept is what the SQL kept of them;
        # rows_written is what went into shards (the rest of the last row group is unused).
        "rows": {
            "read": rows_read,
            "kept": rows_kept,
            "filtered": rows_read - rows_kept,
            "written": rows_written,
        },
        "source_ran_out": ran_out,
        # Which engine ran it, on how many workers and nodes, in how many tasks (of this run, if it
        # resumed): the shards are the same whatever these are.
        "engine": engine or {"name": "local", "workers": 1, "tasks": 0, "nodes": 1},
        # The rows' order: "shuffled" (with its seed, and the duplicate texts removed), "source"
        # (--no-shuffle) or "sql" (the definition's own ORDER BY).
        "order": order or {"order": "source", "seed": None, "duplicates_removed": 0},
        # The validation shard (the last listed): its rows, estimated tokens (UTF-8 bytes / 4),
        # where its rows came from (--val-from: a definition's name or path, or "live"; null:
        # this conversion's own rows) and its sha256, so that two data sets sharing it show it.
        "validation": {
            "rows": shards[-1].rows if shards else 0,
            "tokens": val_tokens,
            "from": val_from,
            "sha256": shards[-1].sha256 if shards else None,
        },
        "shards": [s.to_dict() for s in shards],
    }
    if components is not None:
        # A mixture's components and --val-from's parts: each one's definition, source commit,
        # weight (within its group: training, or validation) and rows and characters written.
        record["mix_by"] = mix_by
        record["components"] = components
    return record


def write(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST_NAME
    durable.write_text(path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return path


def read(folder: Path) -> dict[str, Any] | None:
    """The manifest in `folder`, or None if there is none (e.g. the original climbmix data)."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def components(record: Mapping[str, Any] | None) -> list[ComponentRecord]:
    """A record's components (a mixture's, --val-from's parts); none for a single dataset or no record."""
    return [
        ComponentRecord(
            name=part["name"],
            validation=part.get("role") == "validation",
            weight=Fraction(part["weight"]),
            rows_written=part["rows"]["written"],
            characters_written=part["characters_written"],
        )
        for part in (record or {}).get("components") or []
    ]


def validation_from(record: Mapping[str, Any] | None) -> str | None:
    """Where the validation shard's rows came from: --val-from's name or path, or "live"; None,
    the conversion's own rows (or no record)."""
    return ((record or {}).get("validation") or {}).get("from")
