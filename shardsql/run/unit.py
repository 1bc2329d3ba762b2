"""One unit's work, the same on every executor: decode it, evaluate the definition, check the
text (`keep`), and for a shuffled conversion stage the kept rows (`stage`).

Every kept text is checked (output/text_check.py: no NULL, valid UTF-8, as prepare.py
needs) before it leaves the unit, so nothing unreadable reaches a shard; a failure names
the source file and the row group it came from.
"""

from __future__ import annotations

import pyarrow as pa

from ..definition.evaluator import Evaluator
from ..errors import ConversionError
from ..output.staging import StagedUnit, stage_unit
from ..output.text_check import check_text
from ..source.decode import decode
from ..source.files import SourceFile
from ..source.footers import read_footer
from ..source.scan import Scan
from ..source.units import Unit


def keep(evaluator: Evaluator, scan: Scan, unit: Unit, data: dict[int, bytes]) -> pa.Table:
    """The definition's rows from one unit's fetched bytes, checked for prepare.py."""
    kept = []
    for part in decode(scan, unit, data):
        out = evaluator.run(part.rows)
        try:
            check_text(out, unit.file.url, utf8_checked=part.utf8_checked)
        except ConversionError:
            _raise_first_invalid(evaluator, scan, unit.file, part.row_groups, part.rows)
        kept.append(out)
    return pa.concat_tables(kept) if len(kept) != 1 else kept[0]


def stage(evaluator: Evaluator, scan: Scan, unit: Unit, data: dict[int, bytes], seed: int, pile_bits: int,
          compress: bool = False) -> StagedUnit:  # fmt: skip
    """A unit's kept rows staged for a shuffle (output/staging.stage_unit: fingerprinted by `seed`,
    split by pile (the key's top `pile_bits` bits), compressed where it pays or, with `compress`,
    always) here, where the unit ran. A Ray task compresses always: its texts travel to the
    driver, and no uncompressed row should."""
    return stage_unit(keep(evaluator, scan, unit, data), seed, compress, pile_bits)


def _raise_first_invalid(evaluator: Evaluator, scan: Scan, file: SourceFile, groups: tuple[int, ...],
                         table: pa.Table) -> None:  # fmt: skip
    """The definition kept a NULL or invalid text from these row groups: name the one it came from."""
    metadata, start = read_footer(scan.source, file).metadata, 0
    for index in groups:
        rows = metadata.row_group(index).num_rows
        check_text(evaluator.run(table.slice(start, rows)), f"{file.url}, row group {index}")
        start += rows
    check_text(evaluator.run(table), f"{file.url}, row groups {groups[0]}-{groups[-1]}")
    raise AssertionError("rows with invalid text come from one of their row groups")
