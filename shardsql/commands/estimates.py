"""A dry run's estimates, from parquet footers alone: the validation shard's tokens and the staging's disk.

Both start from the source's mean text size a row: the needed columns' uncompressed bytes
over its rows, before any filter (`Preview.text_bytes`). A token is about BYTES_PER_TOKEN bytes
of UTF-8 text (autoresearch.py). A shuffled conversion stages each kept row's text as it is
(compressed only where it compresses well) beside its keys: the estimate is the staging's
own (output/staging/formats.py `expected_bytes`), the one the shuffle weighs the free disk
against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..autoresearch import BYTES_PER_TOKEN
from ..output.cache_dir import free_space
from ..output.staging import expected_bytes, must_compress

if TYPE_CHECKING:
    from .options import ConvertOptions
    from .preview import Preview


@dataclass(frozen=True)
class Estimates:
    val_rows: int  # rows of the validation shard
    val_tokens: int  # its tokens, at the source's mean text size a row
    staging_bytes: float | None  # the shuffle's staging at most, on disk; None: not shuffled
    free_bytes: int  # free on the disk of the cache folder
    compressed: bool  # the staging will compress every text: the disk is short (staging.must_compress)


def estimate(preview: Preview, options: ConvertOptions) -> Estimates | None:
    """The estimates of a dataset's dry run; None for a source with no rows (no mean to go by)."""
    if not preview.source_rows:
        return None
    text_bytes = preview.text_bytes() / preview.source_rows  # uncompressed bytes a source row, before filtering
    # Neither the validation shard nor the staging can hold more rows than the source has.
    val_rows = min(options.val_rows or options.rows_per_shard, preview.source_rows)
    tokens = int(text_bytes * val_rows / BYTES_PER_TOKEN)
    shuffled = options.shuffle and not preview.shape.ordered
    staged = expected_bytes(min(preview.rows_wanted, preview.source_rows), text_bytes) if shuffled else None
    free = free_space(options.cache.root)
    return Estimates(val_rows, tokens, staged, free, staged is not None and must_compress(staged, free))
