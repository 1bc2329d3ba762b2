"""What a conversion draws from: the parts of a dataset, a mixture, and --val-from, opened.

A plain dataset is one part. A mixture (definition/mixture.py) is one part per component,
with its weight, interleaved by characters or documents (output/interleave.py). With
`--val-from`, the validation shard has parts of its own, drawn first: they come first in
the priority order that settles a text drawn by two parts (commands/shuffle.py), so the
validation shard is the same whatever the training data beside it, and none of its texts
is in training. `--val-from live` is one part whose rows are the live validation shard's,
kept byte for byte.

Every part's SQL is bound to its source's first file here, before anything is fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..autoresearch import TEXT_COLUMN, VAL_SHARD_NAME
from ..definition.analysis import Shape
from ..definition.catalog import resolve
from ..definition.evaluator import Evaluator
from ..definition.mixture import Mixture
from ..definition.model import Definition
from ..errors import ConversionError, OptionsError
from ..output.shards import char_counts, sha256_file
from ..source.scan import Scan, open_scan
from ..wording import count
from .options import LIVE, ConvertOptions, for_one_dataset


def kept_nothing(who: str, read: int, explain: str) -> ConversionError:
    """A definition whose filter kept no row of the source it read (`who`: "NAME's filter", or
    "component NAME's filter"): fewer or smaller shards, more files or --allow-short cannot
    help, only the filter can, so the message points at it and at `explain`, nothing else."""
    return ConversionError(
        f"{who} kept no rows: {count(read)} read, every one removed by its WHERE. See what each condition "
        f"removes with `{explain}`, and loosen it. Your data folder was not changed."
    )


@dataclass
class Part:
    """One stream of rows in a shuffled conversion: the dataset itself, a mixture's component,
    or (with --val-from) a source of the validation shard. Parts are numbered in priority
    order, the validation's first: a text drawn by two parts belongs to the first."""

    name: str
    definition: Definition | None  # None: the `given` file's rows (the live validation shard of --val-from live)
    scan: Scan | None
    shape: Shape | None
    weight: Fraction  # its share of its group's rows
    validation: bool = False  # in the validation shard (--val-from), not the training shards
    given: Path | None = None  # read a row group at a time, never whole (a real shard's texts are ~400 MB)
    given_rows: int = 0
    row_chars: float = 1.0  # characters a row, estimated before drawing (a mixture's first selection)

    def read(self) -> tuple[Definition, Scan, Shape]:
        """Its definition, its source's scan and its shape: what reading its rows from its source needs."""
        if self.definition is None or self.scan is None or self.shape is None:
            raise ValueError(f"{self.name} is the given file {self.given}, not rows read from a source")
        return self.definition, self.scan, self.shape


@dataclass
class Plan:
    """What a shuffled conversion draws: its parts, how shares are measured, what happens when one runs short."""

    parts: list[Part]
    mix_by: str = "documents"  # the training parts' interleave: "characters" or "documents"
    val_mix_by: str = "documents"  # --val-from's parts'
    # A part that cannot give its share: stop the conversion (a mixture), or write fewer rows
    # in the same proportions (a single dataset, whose source simply ran out; --allow-short).
    allow_short: bool = True

    def group(self, validation: bool) -> list[int]:
        """The parts interleaved into the training shards (and, without --val-from, the validation
        shard), or those of --val-from's validation shard."""
        return [i for i, part in enumerate(self.parts) if part.validation == validation]


@dataclass
class Opened:
    """A dataset or mixture, and --val-from's source, opened as the parts a conversion draws."""

    model: Definition | Mixture
    parts: list[Part]  # the validation's first (priority order), then the training parts
    mix_by: str  # the training parts' interleave: "characters" or "documents"
    val_mix_by: str  # the validation parts'
    val_from: str | None
    live: Path | None = None  # --val-from live: the validation shard kept, as it was

    @property
    def single(self) -> Part | None:
        """The dataset's one part: a plain dataset without --val-from, the only case --no-shuffle
        and a definition's own ORDER BY apply to."""
        return self.parts[0] if isinstance(self.model, Definition) and self.val_from is None else None

    def plan(self, allow_short: bool) -> Plan:
        # A single dataset that runs out writes fewer shards, as it always has; a mixture stops
        # rather than change its proportions, unless --allow-short.
        return Plan(self.parts, self.mix_by, self.val_mix_by, allow_short or isinstance(self.model, Definition))

    def fingerprint(self) -> dict[str, object]:
        """The definitions and sources as a rerun must find them to continue an interrupted run."""
        return {
            # The model's text, and each part's: a mixture's text does not hold its components' SQL.
            "definition": [self.model.sha256] + [p.definition.sha256 for p in self.parts if p.definition],
            "parts": [[p.name, p.validation, str(p.weight)] for p in self.parts],
            "source": [
                [p.scan.source.url, p.scan.source.commit, [[f.url, f.size] for f in p.scan.source.files]]
                for p in self.parts
                if p.scan
            ]
            + ([sha256_file(self.live)] if self.live else []),
        }


def open_part(definition: Definition, options: ConvertOptions, *, weight: Fraction = Fraction(1),
              validation: bool = False, overrides: bool = True) -> Part:  # fmt: skip
    """A definition's part: the SQL bound to the first file's schema (bad SQL fails here, before
    any data is fetched), the columns it reads given one schema."""
    evaluator = Evaluator(definition)
    try:
        revision = options.revision if overrides else None
        url = (options.source if overrides else None) or definition.source
        scan = open_scan(url, revision or definition.revision, evaluator.check, options.num_source,
                         override=bool(revision))  # fmt: skip
    finally:
        evaluator.close()
    return Part(definition.name, definition, scan, evaluator.shape, weight, validation, row_chars=scan.row_bytes())


def _components(model: Definition | Mixture, options: ConvertOptions, validation: bool) -> list[Part]:
    if isinstance(model, Definition):
        return [open_part(model, options, validation=validation, overrides=not validation)]
    return [
        open_part(c.definition, options, weight=c.weight, validation=validation, overrides=False)
        for c in model.components
    ]


def open_parts(model: Definition | Mixture, options: ConvertOptions, live_dir: Path) -> Opened:
    """The parts a conversion of `model` draws, with --val-from's first."""
    options.validate()
    for_one_dataset(model, "convert", revision=options.revision, source=options.source)
    val_parts: list[Part] = []
    live = None
    val_mix_by = "documents"
    if options.val_from == LIVE:
        live = live_dir / VAL_SHARD_NAME
        if not live.is_file():
            raise OptionsError(f"--val-from live: there is no validation shard ({VAL_SHARD_NAME}) in {live_dir}")
        rows = chars = 0
        try:
            for batch in given_batches(live):
                rows += batch.num_rows
                chars += pc.sum(char_counts(batch.column(0))).as_py() or 0
        except (OSError, ValueError, pa.ArrowException) as exc:  # not a shard: the data's fault, not the options'
            raise ConversionError(
                f"--val-from live: {live} is not a readable shard ({exc}); restore a good one "
                "(`shardsql restore`) or draw the validation shard with --val-from NAME"
            ) from exc
        val_parts = [Part(f"{LIVE} validation shard", None, None, None, Fraction(1), True, live, rows,
                          row_chars=chars / max(1, rows))]  # fmt: skip
    elif options.val_from is not None:
        val_model = resolve(options.val_from)
        val_parts = _components(val_model, options, validation=True)
        val_mix_by = _mix_by(val_model)
    parts = val_parts + _components(model, options, validation=False)
    return Opened(model, parts, _mix_by(model), val_mix_by, options.val_from, live)


def given_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """A given file's texts (--val-from live's shard), a row group at a time."""
    file = pq.ParquetFile(path)
    for index in range(file.num_row_groups):
        yield from file.read_row_group(index, columns=[TEXT_COLUMN]).to_batches()


def _mix_by(model: Definition | Mixture) -> str:
    return model.mix_by if isinstance(model, Mixture) else "documents"
