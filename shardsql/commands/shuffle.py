"""A shuffled conversion (the default): a seeded, deduplicated sample spread over the whole source.

Two phases, each resumable: `Shuffled.prepare` selects, `Shuffled.batches` gives the rows that
the conversion's one shard writer writes (convert.py's pipeline, which chooses this `Mode`
unless `--no-shuffle` is given or a single dataset's definition has its own top-level ORDER BY).
What is drawn is a `Plan` of parts (commands/plan.py builds it): one for a dataset, one per
component of a mixture, and with --val-from the validation shard's parts, first.

1. **Select** (commands/shuffle_select.py). For each part in turn, units are drawn in the seed's random order over all
   its source's files (source/draw.py) and run through the executor as an in-order
   conversion's are, so their kept rows arrive in draw order whatever the workers or the
   engine; each unit's kept rows are staged by the unit's own work, where it ran (a worker
   thread, a Ray task: fingerprints, pile by shuffle key, compressed texts; output/staging/),
   and here only appended to the piles on disk, each row's ordinal g (its part in the high
   bits) counted in draw order. A whole-source definition (DISTINCT, GROUP BY, LIMIT, ...)
   stages its query's result the same way, here, in pieces of about a unit. Once a part's
   rows drawn reach its target, the distinct texts are counted from the piles' keys: a
   part's selection is its first `wanted` texts in draw order (a text drawn by two parts is
   the first part's). The parts' selections are then interleaved on the keys alone
   (commands/shuffle_merge.count_shares) to see that each holds its share; a part short of distinct texts,
   or of its share, draws more (deterministically: how many depends only on the counts).
2. **Write.** The piles are read one leaf at a time in key order, each sorted by
   (key, fingerprint, g) and deduplicated; each part's rows, in that order, are interleaved
   by the weights (commands/shuffle_merge.Merged) and streamed into the shard writer: the training shards, then
   the validation shard of `--val-rows` rows (the last rows of the stream, or --val-from's
   parts interleaved the same way), pinned as shard_06542.parquet.

Checkpoints: in phase 1 at every flush of the piles (each part's next slot, rows staged and
target, the piles' sizes; a resume truncates the piles to those sizes and draws on from
there, so no staged unit is fetched again); in phase 2 after every shard (each part's rows
taken and their sizes so far: the interleave's exact state). A whole-source query cannot
stop midway: a rerun in its phase 1 runs it again from the start.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import ConversionError
from ..invocation import explain_command
from ..output import staging
from ..output.cache_dir import free_space
from ..output.checkpoint import (
    Checkpoint,
    MergePosition,
    PartDraw,
    PartOutcome,
    Selected,
    ShuffleState,
    WritePosition,
)
from ..output.shards import ShardSizes
from ..progress import Progress
from ..run.executor import Executor, available_cores
from ..run.local import SPILL_DIR
from ..wording import count, format_size
from .options import ConvertOptions
from .plan import Plan, kept_nothing
from .shuffle_merge import Count, Merged
from .shuffle_select import Select

PILES_DIR = "piles"  # in the staging folder
# A part's first draw is its wanted rows and this much more, for the duplicates most sources hold
# (the benchmark's FineWeb-Edu-like files: 0.6%): a second round costs another pass over the keys
# and a restart of the executor, about 1 s of the main job's 18; 1% more reading costs less.
FIRST_DRAW_MARGIN = 1.01
FIRST_MARGIN = 1.02  # a mixture's parts' first selections: their estimated shares, and this much more


class _Output:
    """Phase 2's rows: the training parts interleaved, then (with --val-from) the validation parts'."""

    def __init__(self, piles: staging.Piles, seed: int, plan: Plan, cuts: list[int], merged_rows: int,
                 val_rows: int, start: MergePosition | None):  # fmt: skip
        self.piles, self.seed, self.plan, self.cuts, self.val_rows = piles, seed, plan, cuts, val_rows
        self.merged = Merged(piles, seed, plan, cuts, merged_rows, start, with_texts=True)
        self.in_val = False

    def batches(self) -> Generator[pa.Table, None, None]:
        for batch in self.merged.batches():
            yield batch.table
        val = self.plan.group(True)
        if not val:
            return
        self.in_val = True  # the validation shard is written whole: no position inside it
        if self.plan.parts[val[0]].given is not None:
            return  # the live validation shard: its file is kept as it is (Shuffled.live)
        merged = Merged(self.piles, self.seed, self.plan, self.cuts, self.val_rows, None, True, validation=True)
        for batch in merged.batches():
            yield batch.table

    def position(self, pending: int) -> MergePosition:
        return self.merged.position(0 if self.in_val else pending)


def _expected_texts(plan: Plan, draws: list[PartDraw]) -> float:
    """The texts of the selection expected, uncompressed: each part's rows to draw at its
    estimated text bytes a row. What sizes the piles (staging.pile_bits budgets texts)."""
    return float(sum(d.target * part.row_chars for d, part in zip(draws, plan.parts, strict=True)))


def _expected_bytes(plan: Plan, draws: list[PartDraw]) -> float:
    """The staging's expected size on disk, its texts as they are, and their keys: the dry
    run's rule (staging.expected_bytes), which the free disk is weighed against."""
    return sum(staging.expected_bytes(d.target, part.row_chars) for d, part in zip(draws, plan.parts, strict=True))


def _wanted(plan: Plan, merged_rows: int, val_rows: int) -> list[int]:
    """Each part's first selection: its share of its group's rows, by documents, or by
    characters at its estimated characters a row. Where parts share a group, 2% and 16 rows
    more: the count that follows corrects a short one, and an excess costs reading."""
    wanted = []
    for part in plan.parts:
        group = plan.group(part.validation)
        rows = val_rows if part.validation else merged_rows
        if len(group) == 1:
            wanted.append(rows)
            continue
        if (plan.val_mix_by if part.validation else plan.mix_by) == "characters":
            scale = [float(plan.parts[i].weight) / max(1.0, plan.parts[i].row_chars) for i in group]
            share = float(part.weight) / max(1.0, part.row_chars) / sum(scale)
        else:
            share = float(part.weight)
        wanted.append(math.ceil(share * rows * FIRST_MARGIN) + 16)
    return wanted


class Shuffled:
    """A shuffled conversion's rows, as the pipeline (convert.py) writes them: `prepare` is phase 1
    (draw, stage, select), resuming from the checkpoint's `shuffle` where an interrupted run left
    it; `batches` is phase 2's output, from `position`; `finish`, each part's account."""

    def __init__(self, plan: Plan, *, executor: Executor[Any], options: ConvertOptions, folder: Path,
                 checkpoint: Checkpoint, progress: Progress):  # fmt: skip
        self.plan, self.executor, self.options, self.folder = plan, executor, options, folder
        self.checkpoint, self.progress = checkpoint, progress
        self.val_rows = options.val_rows or options.rows_per_shard
        val = plan.group(True)
        self.live = plan.parts[val[0]].given if val else None  # --val-from live: that file is the validation shard
        if val and plan.parts[val[0]].given is not None:
            self.val_rows = plan.parts[val[0]].given_rows
        # Without --val-from, the validation shard's rows are merged with the training rows.
        self.merged_rows = options.num_shards * options.rows_per_shard + (0 if val else self.val_rows)
        whole_source = any(p.shape is not None and not p.shape.row_by_row for p in plan.parts)
        state = checkpoint.shuffle
        if state is None or (state.phase == "select" and whole_source):
            wanted = _wanted(plan, self.merged_rows, self.val_rows)
            draws = [PartDraw(target=math.ceil(w * FIRST_DRAW_MARGIN), wanted=w) for w in wanted]
            # As many piles as keep each within half the sort budget: none is split on disk.
            state = ShuffleState(draws, pile_bits=staging.pile_bits(_expected_texts(plan, draws)))
            checkpoint.write_at = None
        self.state = checkpoint.shuffle = state
        self.piles = staging.Piles(folder / PILES_DIR, options.seed, state.sizes, state.pile_bits)
        staged = sum(p.staged for p in state.parts)
        self.uses_executor = state.phase == "select"  # phase 2 reads the piles, here
        self.rows_here, self.digest = True, False
        self.rows_wanted = self.merged_rows + (self.val_rows if val else 0)
        self.kept_before = staged
        # Source rows read for them: a given file's (--val-from live) are none, as the progress counts them.
        self.read_before = sum(p.read for p, part in zip(state.parts, plan.parts, strict=True) if part.given is None)
        self._output: _Output | None = None

    def _save(self, state: ShuffleState | None = None) -> None:
        """Save the checkpoint, with `state` as the shuffle's (a stager's snapshot, or the live one)."""
        self.checkpoint.shuffle = state if state is not None else self.state
        self.checkpoint.save(self.folder)

    def prepare(self) -> None:
        """Phase 1, unless an interrupted run finished it: the parts' selections, counted and checked."""
        state, plan, options = self.state, self.plan, self.options
        if state.selected is not None:
            return
        if self.kept_before:
            self.progress.message(f"Resuming the selection after {count(self.kept_before)} drawn.")
        workers = self.executor.record.workers if self.executor.record.engine == "local" else available_cores()
        select = Select(plan, self.executor, self.piles, state, self._save, self.progress, workers,
                        self.folder / SPILL_DIR, compress=self._short_of_disk())  # fmt: skip
        selections, counts = select.run(options.seed, self.merged_rows, self.val_rows)
        for validation, counted in counts.items():
            # Without --val-from the validation shard's rows are drawn with the training rows.
            held = 0 if validation or plan.group(True) else self.val_rows
            _check_shares(plan, selections, counted, self.val_rows if validation else self.merged_rows, state, options,
                          held)  # fmt: skip
        if plan.group(True) and counts[False].rows < self.merged_rows:
            # Short training rows (--allow-short) end at a shard: the validation shard follows them.
            counts[False].rows -= counts[False].rows % options.rows_per_shard
        state.selected = Selected(
            cuts=[x.cut for x in selections],
            duplicates=[x.duplicates for x in selections],
            rows=counts[False].rows,
            written=[sum(c.rows_by_part[i] for c in counts.values()) for i in range(len(plan.parts))],
            chars=[sum(c.chars_by_part[i] for c in counts.values()) for i in range(len(plan.parts))],
            val_rows=counts[True].rows if True in counts else self.val_rows,
        )
        self._save()

    def _short_of_disk(self) -> bool:
        """Whether the staging must compress every text, the disk holding it having too little
        room for the rest of the draw as it is (staging.must_compress); said when so."""
        left = max(0.0, _expected_bytes(self.plan, self.state.parts) - sum(self.state.sizes.values()))
        free = free_space(self.folder)
        if not staging.must_compress(left, free):
            return False
        self.progress.message(
            f"Staging compressed: {format_size(free)} free on the disk of {self.folder}, and about "
            f"{format_size(left)} to stage as it is (slower, smaller)."
        )
        return True

    @property
    def sizes(self) -> ShardSizes:
        """The shards of phase 2: with --val-from, as many training shards as the selection fills."""
        selected, options = self._selected, self.options
        num_shards = options.num_shards if not self.plan.group(True) else selected.rows // options.rows_per_shard
        return dataclasses.replace(options.shard_sizes, num_shards=num_shards, val_rows=selected.val_rows)

    @property
    def _selected(self) -> Selected:
        if self.state.selected is None:
            raise RuntimeError("the selection is not made: prepare() first")
        return self.state.selected

    def batches(self) -> Generator[pa.Table, None, None]:
        start = self.checkpoint.write_at
        assert start is None or isinstance(start, MergePosition)
        selected = self._selected
        self._output = _Output(self.piles, self.options.seed, self.plan, selected.cuts, selected.rows,
                               selected.val_rows, start)  # fmt: skip
        return self._output.batches()

    def position(self, pending: int) -> MergePosition:
        assert self._output is not None
        return self._output.position(pending)

    def saved(self, position: WritePosition) -> None:
        """The checkpoint says the rows before `position` are in complete shards: the piles all of
        whose rows those are let go of their texts, so staging's disk shrinks as the shards grow
        (with --val-from, the validation shard's parts are read from the same piles afterwards:
        they are kept until the end)."""
        if self._output is None or self.plan.group(True):
            return
        assert isinstance(position, MergePosition)
        # Removed on a thread (Piles.release); those of the shard before are waited for, so the
        # staging trails the shards by one shard's piles at most.
        self.piles.settle()
        ends = self._output.merged.pile_ends
        while ends and all(seen <= taken for seen, taken in zip(ends[0][1], position.taken, strict=True)):
            self.piles.release(ends.popleft()[0])

    def finish(self) -> list[PartOutcome]:
        """Each part's account; the piles removed (the staging folder becomes the data folder)."""
        selected = self._selected
        if len(self.plan.parts) == 1 and self._output is not None:  # its characters: count_shares skipped them
            selected.chars = list(self._output.merged.merge.chars)
        self.piles.close()
        staging.clear(self.folder / PILES_DIR)
        return [
            PartOutcome(part.name, part.validation, p.read, p.staged, duplicates, written, chars)
            for part, p, duplicates, written, chars in zip(
                self.plan.parts, self.state.parts, selected.duplicates, selected.written, selected.chars, strict=True
            )
        ]


def _check_shares(plan: Plan, selections: list[staging.Selection], counted: Count, rows: int, state: ShuffleState,
                  options: ConvertOptions, held: int) -> None:  # fmt: skip
    """A part that cannot give its share stops a mixture (unless --allow-short): never other proportions.
    One mixed with others that gives no row at all stops it even so: only its filter can help."""
    if counted.dry is None:
        return
    part, selection, draw = plan.parts[counted.dry], selections[counted.dry], state.parts[counted.dry]
    explain = explain_command(part.name, part.definition.path) if part.definition else "shardsql explain"
    if selection.rows == 0 and part.given is None and len(plan.group(part.validation)) > 1:
        if draw.staged == 0:
            raise kept_nothing(f"component {part.name}'s filter", draw.read, explain)
        raise ConversionError(
            f"component {part.name} gives the mixture no rows: the {count(draw.staged)} its filter kept (of "
            f"{draw.read:,} read) are all duplicate texts, of its own or of another component's. See what it keeps "
            f"with `{explain}`. Your data folder was not changed."
        )
    if plan.allow_short:
        return
    # Only what can help: more source files only where --num-source held the source back.
    more_files = "" if options.num_source is None else f", more source files (--num-source, now {options.num_source})"
    raise ConversionError(
        f"component {part.name} ran out: its source gives only {count(selection.rows, 'distinct row')} "
        f"(of {draw.read:,} read, {draw.read - draw.staged:,} were removed by its filter and "
        f"{selection.duplicates:,} as duplicate texts), so the mixture stops after {counted.rows:,} of the "
        f"{count(rows)} wanted"
        + (f" ({held:,} of them for the validation shard)" if held else "")
        + f". See what its filter removes with `{explain}`; use fewer --num-shards or --rows-per-shard"
        f"{more_files}, or --allow-short to write the smaller output in the same proportions."
    )
