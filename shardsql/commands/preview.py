"""The dry run (`convert --dry-run`): what a conversion would read and write, from parquet footers alone.

No data page is fetched: the files are listed, their footers read (and cached, so a
conversion that follows does not read them again), and the needed columns' sizes summed.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..definition.analysis import Shape
from ..definition.mixture import Mixture
from ..definition.model import Definition
from ..source.files import ParquetFooter, Source
from ..source.footers import read_footers
from ..source.schemas import unify
from ..source.units import chunk_ranges
from .options import ConvertOptions, for_one_dataset
from .plan import open_part


@dataclass
class Preview:
    """What a conversion would read and write (the dry run), from parquet footers alone."""

    definition: Definition
    source: Source
    footers: list[ParquetFooter]
    columns: list[str]
    rows_wanted: int
    shape: Shape

    @property
    def source_rows(self) -> int:
        return sum(f.num_rows for f in self.footers)

    def column_bytes(self) -> int:
        """Compressed bytes of the needed columns in all listed files."""
        return sum(
            end - start
            for footer in self.footers
            for index in range(footer.metadata.num_row_groups)
            for start, end in chunk_ranges(footer, index, self.columns)
        )

    def text_bytes(self) -> int:
        """Uncompressed bytes of the needed columns in all listed files (the text's size, roughly)."""
        return sum(footer.uncompressed_bytes(self.columns) for footer in self.footers)


@dataclass
class ComponentPreview:
    """A mixture component's dry run, and its expected share of the work."""

    preview: Preview
    weight: Fraction
    chars_per_row: float  # the needed columns' uncompressed bytes a source row: its characters, roughly
    rows: int  # rows it is expected to give
    bytes: int  # compressed bytes it is expected to fetch for them, if its filter kept every row


@dataclass
class MixturePreview:
    mixture: Mixture
    components: list[ComponentPreview]


def preview_mixture(mixture: Mixture, options: ConvertOptions) -> MixturePreview:
    """The dry run of a mixture: each component's footers, and the rows and bytes it is expected
    to need for its share (by characters: in inverse proportion to its mean row length)."""
    for_one_dataset(mixture, "convert", revision=options.revision, source=options.source)
    previews = [preview(c.definition, options) for c in mixture.components]
    lengths = [p.text_bytes() / max(1, p.source_rows) for p in previews]
    weights = [c.weight for c in mixture.components]
    if mixture.mix_by == "characters":
        scale = [float(w) / max(1.0, n) for w, n in zip(weights, lengths, strict=True)]
    else:
        scale = [float(w) for w in weights]
    rows = [round(options.rows_wanted * x / sum(scale)) for x in scale]
    return MixturePreview(mixture, [
        ComponentPreview(p, w, n, r, int(r * p.column_bytes() / max(1, p.source_rows)))
        for p, w, n, r in zip(previews, weights, lengths, rows, strict=True)
    ])  # fmt: skip


def preview(definition: Definition, options: ConvertOptions) -> Preview:
    """The dry run: list files and read their footers; no data pages are fetched."""
    options.validate()
    part = open_part(definition, options)  # footers are cached: the first ones are not read again
    _, scan, shape = part.read()
    rows_wanted = options.rows_wanted
    footers = read_footers(scan.source, scan.source.files)
    # Every footer is at hand: files whose columns cannot be read as one schema fail here.
    unify([f.schema for f in footers], [f.file.url for f in footers], scan.columns)
    return Preview(definition, scan.source, footers, scan.columns, rows_wanted, shape)
