"""`shardsql verify`: check that a data folder holds shards its consumer will read correctly.

A data folder can change after a conversion: a download cut short, a shard copied in from
elsewhere (nanochat's downloader adds climbmix shards beside converted ones), a file edited
or deleted by hand. Neither consumer would say so: autoresearch's prepare.py trains its
tokenizer on every `.parquet` file in the folder and train.py evaluates on
`shard_06542.parquet`; nanochat trains on every `.parquet` file but the last in sorted order
and evaluates on that last one. A bad folder shows up, if at all, as a worse loss hours later.
The consumer is `--for`'s, else the one the manifest records, else the one whose data
folder has the folder's name (consumers.found), else autoresearch. This module checks the
folder first, in two layers:

- against `manifest.json`, when there is one: every listed shard present with its recorded
  size, sha256 and row count; row groups of the recorded size (a file's last may be
  smaller); exactly one string column `text`; no unlisted parquet files; and
  `shard_06542.parquet` as the manifest's last (validation) shard;
- against what the consumer needs, with or without a manifest: at least two parquet files, a
  string `text` column without nulls in each, and `shard_06542.parquet` (for nanochat: last in
  sorted order, as its loader takes the last file for validation), big enough for the
  evaluation (a warning, since a small one still works, only less well; none for a toy set, as
  in the summary).

With a manifest, training shards are read from their footers alone and hashed, in blocks,
against its sha256; without one, nothing vouches for their bytes, so every page of every
shard is decoded (a row group at a time) and its text checked for UTF-8 and nulls. The
validation shard's text is also read to size it.
Problems are collected rather than raised, so one run lists them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..autoresearch import BYTES_PER_TOKEN, ROW_GROUP_SIZE, TEXT_COLUMN, VAL_SHARD_NAME
from ..consumers import DEFAULT, Consumer, elsewhere, found, recorded
from ..errors import VerifyError, describe
from . import manifest as manifest_file
from .fingerprints import fingerprints
from .shards import sha256_file
from .views import utf8_bytes

MANIFEST = manifest_file.MANIFEST_NAME


@dataclass
class VerifyReport:
    directory: Path
    consumer: Consumer = DEFAULT  # whose needs the folder was checked against
    shards_checked: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    val_tokens: int | None = None  # the validation shard's estimated tokens (UTF-8 bytes / 4)

    @property
    def ok(self) -> bool:
        return not self.errors


def verify(directory: str | Path | None = None, consumer: Consumer | None = None) -> VerifyReport:
    """Check the shards in `directory` for `consumer` (`--for`; None: found, as the module doc says).
    The default directory is the data folder of the consumer given, else autoresearch's."""
    if directory is None:
        folder = (consumer or DEFAULT).base_dir() / (consumer or DEFAULT).data_folder
    else:
        folder = Path(directory).expanduser()
    if not folder.is_dir():
        hints = elsewhere(DEFAULT) if directory is None and consumer is None else []
        raise VerifyError("; ".join([f"{folder}: no such directory, so no shards to verify", *hints]))
    # Both consumers read every *.parquet file here, whatever its name, so every one is checked.
    files = sorted(p.name for p in folder.glob("*.parquet") if p.is_file())
    if not files:
        raise VerifyError(f"{folder}: no shard files (shard_NNNNN.parquet) to verify")
    record = manifest_file.read(folder)
    record = record if isinstance(record, dict) else None
    report = VerifyReport(folder, found(consumer, recorded(record), {folder.name}, folder), manifest=record)
    reader = report.consumer.reader
    listed = _listed_shards(report)
    options = (report.manifest or {}).get("options") or {}
    group_size = options.get("row_group_size", ROW_GROUP_SIZE)
    for name in files:
        if listed is not None and name not in listed:
            report.errors.append(f"{name}: not listed in {MANIFEST} ({reader} would train on it)")
        entry = listed.get(name) if listed is not None else None
        _check_file(folder / name, entry, group_size if listed is not None else None, report)
    if listed is not None:
        missing = [name for name in listed if name not in files]
        report.errors += [f"{name}: missing (listed in {MANIFEST})" for name in missing]
        if list(listed)[-1:] != [VAL_SHARD_NAME]:
            last = list(listed)[-1] if listed else "nothing"
            report.errors.append(f"{MANIFEST}: the validation (last) shard is {last}, expected {VAL_SHARD_NAME}")
    if len(files) < 2:
        report.errors.append(
            f"{files[0]}: the only parquet file in {folder}; {report.consumer.name} needs at least two "
            f"(training shards and the validation shard: {report.consumer.validation})"
        )
    _check_validation_place(files, listed, report)
    if VAL_SHARD_NAME in files:
        train_rows = sum(_rows(folder / name) for name in files if name != VAL_SHARD_NAME)
        _check_validation_size(folder / VAL_SHARD_NAME, train_rows, report)
        _check_no_val_text_in_training(folder, [f for f in files if f != VAL_SHARD_NAME], report)
    if listed is not None:
        _check_components(report, listed)
    return report


def _check_validation_place(files: list[str], listed: dict[str, dict[str, Any]] | None, report: VerifyReport) -> None:
    """The validation shard is where the consumer looks for it: by its name (autoresearch), or
    last in sorted order (nanochat, whose loader takes the last file for validation and the
    others for training)."""
    name = report.consumer.name
    missing = VAL_SHARD_NAME not in files and VAL_SHARD_NAME not in (listed or {})
    if not report.consumer.val_by_position:
        if missing:
            report.errors.append(f"{VAL_SHARD_NAME}: missing; {name} evaluates on it (the validation shard)")
        return
    if VAL_SHARD_NAME in files and files[-1] != VAL_SHARD_NAME:
        after = files[files.index(VAL_SHARD_NAME) + 1 :]
        report.errors.append(
            f"{', '.join(after)}: {'sorts' if len(after) == 1 else 'sort'} after {VAL_SHARD_NAME}, so {name} would "
            f"evaluate on {files[-1]} (the last file in sorted order) and train on {VAL_SHARD_NAME}"
        )
    elif missing and len(files) > 1:
        report.warnings.append(
            f"{VAL_SHARD_NAME}: missing; {name} evaluates on the last file in sorted order instead, {files[-1]}, "
            "and does not train on it"
        )


def _check_components(report: VerifyReport, listed: dict[str, dict[str, Any]]) -> None:
    """A mixture's or --val-from's parts (the manifest's `components`): their rows written add
    up to the shards' (the validation parts' to the validation shard's), and the validation
    shard's recorded sha256 is the one listed for it."""
    record = report.manifest or {}
    validation = record.get("validation") or {}
    val_entry = listed.get(VAL_SHARD_NAME) or {}
    if validation.get("sha256") and val_entry.get("sha256") and validation["sha256"] != val_entry["sha256"]:
        report.errors.append(f"{MANIFEST}: the validation shard's sha256 differs from the one listed for it")
    components = record.get("components")
    if not components:
        return
    try:
        val_rows = sum(c["rows"]["written"] for c in components if c["role"] == "validation")
        train_rows = sum(c["rows"]["written"] for c in components if c["role"] != "validation")
        shard_rows = sum(entry["rows"] for entry in listed.values())
    except (KeyError, TypeError):
        report.errors.append(f"{MANIFEST}: its components are not as shardsql writes them")
        return
    expected = shard_rows - (val_entry.get("rows", 0) if val_rows else 0)
    if train_rows != expected or (val_rows and val_rows != val_entry.get("rows")):
        report.errors.append(
            f"{MANIFEST}: its components' rows written ({train_rows:,} training, {val_rows:,} validation) do not "
            f"add up to the shards' ({shard_rows:,})"
        )


def _texts(path: Path) -> Iterator[pa.ChunkedArray]:
    """A shard's texts, a row group at a time."""
    with pq.ParquetFile(path) as parquet:
        for index in range(parquet.num_row_groups):
            yield parquet.read_row_group(index, columns=[TEXT_COLUMN]).column(TEXT_COLUMN)


def _check_no_val_text_in_training(folder: Path, training: list[str], report: VerifyReport) -> None:
    """No validation text occurs in a training shard: the validation shard's 128-bit fingerprints
    (16 bytes a row, held here) against every training text's, one row group at a time.
    An error for a shuffled (deduplicated) conversion; a warning otherwise (--no-shuffle keeps duplicates)."""
    try:
        val: set[tuple[int, int]] = set()
        for texts in _texts(folder / VAL_SHARD_NAME):
            hi, lo = fingerprints(texts)
            val.update(zip(hi.to_pylist(), lo.to_pylist(), strict=True))
        found: dict[str, int] = {}
        for name in training:
            for texts in _texts(folder / name):
                hi, lo = fingerprints(texts)
                hits = sum(1 for pair in zip(hi.to_pylist(), lo.to_pylist(), strict=True) if pair in val)
                if hits:
                    found[name] = found.get(name, 0) + hits
    except (pa.ArrowException, OSError, ValueError, KeyError):
        return  # an unreadable shard is reported by its own check
    if not found:
        return
    where = ", ".join(f"{name} ({count:,})" for name, count in found.items())
    repeats = sum(found.values())
    counted = "1 training row repeats" if repeats == 1 else f"{repeats:,} training rows repeat"
    line = f"{VAL_SHARD_NAME}: {counted} a validation text: {where}"
    shuffled = ((report.manifest or {}).get("order") or {}).get("order") == "shuffled"
    (report.errors if shuffled else report.warnings).append(line)


def _listed_shards(report: VerifyReport) -> dict[str, dict[str, Any]] | None:
    """The manifest's shards by name, in order; None (with a note why) when there is no manifest."""
    name = report.consumer.name
    if report.manifest is None:
        if (report.directory / MANIFEST).exists():
            report.errors.append(f"{MANIFEST}: not a readable JSON object; checked only what {name} needs")
        else:
            report.warnings.append(
                f"{MANIFEST}: not found in {report.directory}; checked only what {name} needs "
                "(no sizes, sha256 or row groups to compare with)"
            )
        return None
    shards = report.manifest.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, dict) and "name" in s for s in shards):
        report.errors.append(f"{MANIFEST}: 'shards' is not a list of shards with names")
        return {}
    return {s["name"]: s for s in shards}


def _differs(report: VerifyReport, name: str, what: str, found: object, expected: object, unit: str = "") -> None:
    def show(value: object) -> str:
        return f"{value:,}{unit}" if isinstance(value, int) else str(value)

    if found != expected:
        report.errors.append(f"{name}: {what} is {show(found)}, {MANIFEST} says {show(expected)}")


def _check_file(path: Path, entry: dict[str, Any] | None, group_size: int | None, report: VerifyReport) -> None:
    """Check one parquet file: against its manifest `entry` if any, and (with a manifest,
    so `group_size` is set) its exact schema and row groups."""
    name, strict = path.name, group_size is not None
    report.shards_checked += 1
    if entry is not None:
        _differs(report, name, "size", path.stat().st_size, entry.get("bytes"), " bytes")
        if "sha256" in entry:
            _differs(report, name, "sha256", sha256_file(path), entry["sha256"])
    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError, ValueError) as exc:
        report.errors.append(f"{name}: not a readable parquet file ({exc})")
        return
    if entry is not None:
        _differs(report, name, "the row count", metadata.num_rows, entry.get("rows"))
    if schema.names != [TEXT_COLUMN] and (strict or TEXT_COLUMN not in schema.names):
        expected = f"['{TEXT_COLUMN}']" if strict else f"a '{TEXT_COLUMN}' column, which {report.consumer.name} reads"
        report.errors.append(f"{name}: columns are {schema.names}, expected {expected}")
        return
    text_type = schema.field(TEXT_COLUMN).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        report.errors.append(f"{name}: column 'text' is {text_type}, expected string or large_string")
        return
    column = schema.get_field_index(TEXT_COLUMN)
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    if entry is None:
        # No recorded sha256 to vouch for the bytes: decode every page instead (and count
        # the real nulls, since statistics may be missing or wrong).
        nulls = _decode(path, report)
        if nulls is None:
            return
    else:
        stats = [g.column(column).statistics for g in groups]
        nulls = sum(s.null_count for s in stats if s is not None and s.has_null_count)
    if nulls:
        # prepare.py's text_iterator calls len(text) on every row: a null stops tokenizer training.
        why = report.consumer.null_note
        report.errors.append(f"{name}: column 'text' has {nulls:,} nulls, expected none ({why})")
    sizes = [g.num_rows for g in groups]
    for index, size in enumerate(sizes):
        last = index == len(sizes) - 1
        if strict and (size > group_size if last else size != group_size):
            bound = "at most " if last else ""
            report.errors.append(
                f"{name}: row group {index} has {size:,} rows, expected {bound}{group_size:,} "
                f"(options.row_group_size in {MANIFEST}; only a file's last row group may be smaller)"
            )
            break


def _decode(path: Path, report: VerifyReport) -> int | None:
    """Decode every row group of a shard's `text`: each page must decompress and decode, hold
    the rows the footer says, and be valid UTF-8. Returns the nulls, or None (reported) if damaged."""
    nulls = 0
    index = 0
    try:
        with pq.ParquetFile(path) as parquet:
            for index in range(parquet.num_row_groups):  # a row group at a time: memory stays small
                texts = parquet.read_row_group(index, columns=[TEXT_COLUMN]).column(TEXT_COLUMN)
                expected = parquet.metadata.row_group(index).num_rows
                if len(texts) != expected:
                    report.errors.append(f"{path.name}: row group {index} decodes to {len(texts):,} rows, "
                                         f"its footer says {expected:,}")  # fmt: skip
                    return None
                for chunk in texts.chunks:
                    chunk.validate(full=True)  # full: checks UTF-8 too
                nulls += texts.null_count
    except (pa.ArrowException, OSError, ValueError) as exc:
        what = "is not valid UTF-8" if "UTF8" in str(exc) else "is damaged"
        reader = report.consumer.reader
        report.errors.append(f"{path.name}: row group {index} {what} ({describe(exc)}); {reader} cannot read it")
        return None
    return nulls


def _text_bytes(path: Path) -> int:
    """The UTF-8 bytes of a shard's texts, read a row group at a time (memory stays small)."""
    return sum(utf8_bytes(texts) for texts in _texts(path))


def val_tokens(path: Path, text_bytes: int | None = None) -> int:
    """A shard's estimated tokens, as the consumers' evaluations count them: UTF-8 bytes / 4 (0 if
    absent). `text_bytes`: its texts' bytes, when the writer counted them; else they are read."""
    if text_bytes is None:
        text_bytes = _text_bytes(path) if path.is_file() else 0
    return text_bytes // BYTES_PER_TOKEN


def _rows(path: Path) -> int:
    """A shard's rows, from its footer; 0 where it cannot be read (its own check says so)."""
    try:
        rows: int = pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError, ValueError):
        return 0
    return rows


def _check_validation_size(path: Path, train_rows: int, report: VerifyReport) -> None:
    """Warn when the validation shard likely holds fewer tokens than one evaluation reads, as the
    summary and the dry run do: not for a toy set, whose `train_rows` training rows and validation
    shard hold fewer tokens in all than that (Consumer.val_advice)."""
    try:
        text_bytes = _text_bytes(path)
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        if not any(e.startswith(f"{path.name}:") for e in report.errors):
            report.errors.append(f"{path.name}: its text could not be read ({exc})")
        return
    tokens = text_bytes // BYTES_PER_TOKEN
    report.val_tokens = tokens
    rows = pq.read_metadata(path).num_rows
    if advice := report.consumer.val_advice(tokens, rows, train_rows):
        report.warnings.append(f"{path.name}: {advice}")
