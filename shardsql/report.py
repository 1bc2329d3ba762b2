"""What the commands print: the library's results laid out as lines of text, one function a result.

The command line (cli.py) calls the library, hands the result to one of these and echoes
the lines; nothing here reads, computes or decides anything the library owns (a dry run's
estimates are commands/estimates.py's, a manifest's fields output/manifest.py's). Kept apart
from cli.py so that the commands stay a thin layer of options and calls, and so that what a
command prints can be read (and changed) in one place.

Only light modules are imported at the top, as cli.py imports this one for every command
(`shardsql list` and `--help` stay instant); the result types are named for annotations only.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .consumers import DEFAULT, Consumer
from .definition.mixture import Mixture, percent
from .definition.model import Definition
from .invocation import shardsql_command
from .output import manifest
from .wording import count, format_size

if TYPE_CHECKING:
    from .commands.convert import ConvertResult
    from .commands.demo import DemoResult, Served
    from .commands.estimates import Estimates
    from .commands.explain import Measured
    from .commands.options import ConvertOptions
    from .commands.preview import MixturePreview, Preview
    from .definition.analysis import Shape
    from .explain_report import Style
    from .output.cache_dir import CacheDir
    from .output.verify import VerifyReport
    from .source.files import Source


def catalog(definitions: list[Definition | Mixture]) -> Iterator[str]:
    """`shardsql list`: each definition's name and description, and its source or mix."""
    width = max((len(d.name) for d in definitions), default=4)
    for d in definitions:
        yield f"{d.name:<{width}}  {d.description}"
        if isinstance(d, Mixture):
            yield f"{'':<{width}}  mix: {d.mix}"
        else:
            yield f"{'':<{width}}  {d.source}" + (f"  (revision {d.revision})" if d.revision else "")


def definition(d: Definition, shape: Shape) -> Iterator[str]:
    """`shardsql show`'s header of a dataset: its fields, how it runs, its SQL."""
    order = (
        "its own ORDER BY, kept (convert does not shuffle it)"
        if shape.ordered
        else "shuffled by convert (--seed N; --no-shuffle: source order)"
    )
    yield from _fields([("name", d.name), ("file", d.path), ("description", d.description), ("source", d.source),
                        ("revision", d.revision or "(default)"), *d.extra.items(), ("sha256", d.sha256)])  # fmt: skip
    yield f"path:        {shape.path} ({shape.reason})\norder:       {order}\n"
    yield d.sql + "\n"


def _fields(fields: list[tuple[str, object]]) -> Iterator[str]:
    """`show`'s fields, a line each: the name and its colon in 12 columns, then the value."""
    for key, value in fields:
        yield f"{key + ':':<12} {value}"


def mixture(m: Mixture) -> Iterator[str]:
    """`shardsql show`'s header of a mixture: its fields, its components and their weights."""
    yield from _fields([("name", m.name), ("file", m.path), ("description", m.description), ("mix-by", m.mix_by),
                        *m.extra.items(), ("sha256", f"{m.sha256}\n")])  # fmt: skip
    yield f"components ({len(m.components)}):"
    for c in m.components:
        d = c.definition
        yield f"  {d.name}  {percent(c.weight)} of the {m.mix_by}"
        yield f"    file:      {d.path}"
        yield f"    source:    {d.source}"
        yield f"    revision:  {d.revision or '(default)'}"
    yield ""


def resolved(source: Source, label: str = "") -> Iterator[str]:
    """The source files a definition reads (after --revision and --source), with their sizes."""
    pinned = f" at {source.revision} (commit {source.commit})" if source.commit else ""
    total = format_size(sum(f.size for f in source.files))
    yield f"resolved:    {label}{source.url}{pinned}: {count(len(source.files), 'file')}, {total}"
    for file in source.files:
        yield f"  {file.url}  {format_size(file.size)}"


def preview(p: Preview, options: ConvertOptions, estimates: Estimates | None) -> Iterator[str]:
    """A dataset's dry run: its files from their footers, what is wanted, and the estimates."""
    source = p.source
    pinned = f" at {source.revision} (commit {source.commit})" if source.commit else ""
    yield f"Dataset:  {p.definition.name}  ({p.definition.path})"
    yield f"Source:   {source.url}{pinned}"
    yield f"Columns read: {', '.join(p.columns)}"
    yield f"Path:     {p.shape.path} ({p.shape.reason})"
    yield f"Files ({len(p.footers)}):"
    for footer in p.footers:
        md, size = footer.metadata, format_size(footer.file.size)
        yield f"  {footer.file.url}  {size}  {count(md.num_rows)}  {count(md.num_row_groups, 'row group')}"
    total_size = sum(f.file.size for f in p.footers)
    columns = format_size(p.column_bytes())
    yield f"Total:    {count(p.source_rows)}, {format_size(total_size)}; the columns read are {columns} compressed"
    if options.val_rows is None:
        shape = f"{count(options.num_shards + 1, 'shard')} x {count(options.rows_per_shard)}"
    else:
        shape = (f"{count(options.num_shards, 'shard')} x {count(options.rows_per_shard)} + "
                 f"{count(options.val_rows, 'validation row')}")  # fmt: skip
    yield f"Wanted:   {shape} = {count(p.rows_wanted)} kept"
    if p.source_rows < p.rows_wanted:
        yield (
            f"Estimate: the source has fewer rows than wanted even if every row is kept: "
            f"at most {count(p.source_rows // options.rows_per_shard, 'full shard')}"
        )
    else:
        bytes_per_row = p.column_bytes() / max(p.source_rows, 1)
        yield f"Estimate: at least {format_size(bytes_per_row * p.rows_wanted)} fetched (more as the filter drops rows)"
    if estimates is not None:
        tokens, val_rows = estimates.val_tokens, estimates.val_rows
        yield f"Validation: {count(val_rows)}, about {count(tokens, 'token')} (UTF-8 bytes / 4, at the source's mean)"
        advice = options.consumer.val_advice(tokens, val_rows, options.num_shards * options.rows_per_shard)
        if advice:
            yield f"warning: {advice}"
        if estimates.staging_bytes is not None:
            yield (
                f"Staging: at most about {format_size(estimates.staging_bytes)} on disk in the cache folder while it "
                "runs (the selection, shuffled on disk; less where the texts compress well, more where the filter or "
                "duplicates make it draw more)"
            )
            if estimates.compressed:
                yield (
                    f"          The disk has only {format_size(estimates.free_bytes)} free, so every text will be "
                    "staged compressed: slower, and about 1.1x the shards on disk at most"
                )
    yield f"Output:   {options.cache.data} (for {options.consumer.name})"
    fetched = f"{format_size(source.counter.bytes)} in {count(source.counter.requests, 'request')}"
    yield f"Dry run: only parquet footers were read ({fetched})."


def mixture_preview(m: MixturePreview, options: ConvertOptions) -> Iterator[str]:
    """A mixture's dry run: what each component is expected to give and fetch for its share."""
    mixture = m.mixture
    yield f"Mixture:  {mixture.name}  ({mixture.path}), by {mixture.mix_by}"
    val_rows = options.val_rows or options.rows_per_shard
    shards, validation = count(options.num_shards, "shard"), count(val_rows, "validation row")
    shape = f"{shards} x {count(options.rows_per_shard)} + {validation}"
    yield f"Wanted:   {shape} = {count(options.rows_wanted)}, shuffled together"
    for c in m.components:
        p = c.preview
        pinned = f" (commit {p.source.commit[:12]})" if p.source.commit else ""
        yield f"  {p.definition.name}  {float(c.weight):.1%}: {p.source.url}{pinned}"
        files = count(len(p.footers), "file")
        yield f"    {files}, {count(p.source_rows)}; mean {c.chars_per_row:,.0f} characters a row"
        yield f"    needs about {count(c.rows)} kept, {format_size(c.bytes)} fetched (more as its filter drops)"
        if c.rows > p.source_rows:
            yield f"    warning: its source has only {count(p.source_rows)}: the mixture would stop there"
    yield f"Output:   {options.cache.data} (for {options.consumer.name})"
    fetched = sum(c.preview.source.counter.bytes for c in m.components)
    yield f"Dry run: only parquet footers were read ({format_size(fetched)})."


def result(r: ConvertResult, next_steps: bool = True) -> Iterator[str]:
    """A finished conversion: where its rows came from, the shards, and (`next_steps`) what to run next."""
    source = r.source
    filtered = r.rows_read - r.rows_kept
    if source is not None:
        pinned = f" @ {source.commit[:12]}" if source.commit else ""
        yield f"\nDone: {r.definition.name} from {source.url}{pinned}"
    else:
        yield f"\nDone: {r.definition.name}"
    training = [p for p in r.parts if not p.validation]
    rows, chars = sum(p.rows_written for p in training) or 1, sum(p.chars_written for p in training) or 1
    for part in r.parts:
        share = f"{part.chars_written / chars:.1%} of characters, {part.rows_written / rows:.1%} of rows"
        role = "the validation shard" if part.validation else share
        yield f"  {part.name}: {count(part.rows_written)}, {count(part.chars_written, 'character')} ({role})"
    yield f"  shards:  {r.train_shards} training + 1 validation ({r.shards[-1].name}) in {r.data_dir}"
    validation, written = r.shards[-1].rows, sum(s.rows for s in r.shards)
    # Rows read from the sources: a validation shard kept from another run (--val-from live) is none of them.
    given = f" (+ the validation shard's {validation:,} from {r.val_from})" if r.val_from == "live" else ""
    written -= validation if given else 0
    yield f"  rows:    {r.rows_read:,} read, {filtered:,} filtered, {r.rows_kept:,} kept, {written:,} written{given}"
    if source is not None:
        requests = count(source.counter.requests, "request")
        yield f"  fetched: {format_size(source.counter.bytes)} in {requests} (by this run)"
    if r.order == "shuffled":
        yield f"  order:   shuffled (seed {r.seed}); {count(r.duplicates_removed, 'duplicate text')} removed"
    else:
        yield "  order:   " + ("the definition's ORDER BY" if r.order == "sql" else "source order (--no-shuffle)")
    tokens = r.val_tokens
    origin = f" from {r.val_from}" if r.val_from else ""
    yield f"  validation: {count(validation)}{origin}, about {count(tokens, 'token')} (UTF-8 bytes / 4)"
    advice = r.consumer.val_advice(tokens, validation, sum(s.rows for s in r.shards[:-1]))
    if advice:
        yield f"  warning: {advice}"
    yield f"  record:  {r.manifest_path}"
    if r.backup:
        yield f"  backup:  previous data and tokenizer in {r.backup}"
    if next_steps:
        yield ""
        yield from r.next_lines()


def explained(m: Measured, style: Style | None = None) -> Iterator[str]:
    """One definition measured by `explain`, as text (`style` None: for this terminal) or markdown:
    laid out by explain_report.py, which owns the review report."""
    from . import explain_report

    yield from explain_report.explained(m, style or explain_report.terminal_style())


def verified(report: VerifyReport) -> Iterator[str]:
    """A folder that passed `verify`: a mixture's components, the validation shard's size, and OK."""
    for part in manifest.components(report.manifest):
        role = "validation shard" if part.validation else f"weight {float(part.weight):.1%}"
        chars = count(part.characters_written, "character")
        yield f"Component {part.name} ({role}): {count(part.rows_written)}, {chars}"
    if report.val_tokens is not None:
        origin = manifest.validation_from(report.manifest)
        origin = f" from {origin}" if origin else ""
        yield f"Validation shard{origin}: about {count(report.val_tokens, 'token')} (UTF-8 bytes / 4)"
    yield f"OK: {count(report.shards_checked, 'shard')} in {report.directory}, as {report.consumer.name} reads them"


def backups(cache: CacheDir, hints: list[str] | None = None) -> Iterator[str]:
    """A cache folder's backups as a table, and what the live data is; where it has none, the
    `hints` (consumers.elsewhere: another consumer's data, and the --for that reaches it)."""
    found = cache.backups()
    if not found:
        yield f"No backups in {cache.root}."
        yield from (f"{hint}." for hint in hints or [])
        return
    width = max(len(b.name) for b in found)
    yield f"{'name':<{width}}  {'label':<20}  shards  {'size':>9}  date"
    for b in found:
        yield f"{b.name:<{width}}  {b.label:<20}  {b.shards:>6}  {format_size(b.bytes):>9}  {b.created:%Y-%m-%d %H:%M}"
    yield f"\nLive data: {cache.live_label()} in {cache.data} (for {cache.consumer.name})"


def for_flag(consumer: Consumer) -> str:
    """The `--for` a command line needs for `consumer`: none for the default."""
    return "" if consumer == DEFAULT else f" --for {consumer.name}"


def demo_intro(slow_link: bool) -> Iterator[str]:
    """What the demo is about to do (said before it starts, on stderr)."""
    from .commands.demo import DEMO_DATASET, DEMO_MIXTURE, SLOW_LINK_PLAYS

    yield (
        f"Demo: converting generated {DEMO_DATASET} data served by a local Hub stand-in, then the "
        f"{DEMO_MIXTURE} mixture with the same validation shard (--val-from live)."
    )
    if slow_link:
        yield f"The stand-in plays {SLOW_LINK_PLAYS}."


def demo(d: DemoResult, consumer: Consumer, real: ConvertOptions) -> Iterator[str]:
    """The demo's two conversions, what the stand-in served, and what to run for real data (`real`'s)."""
    yield from result(d.result, next_steps=False)
    yield from result(d.mixture, next_steps=False)
    same = d.result.shards[-1].sha256 == d.mixture.shards[-1].sha256
    yield (
        f"\nThe validation shard is {'the same' if same else 'NOT the same'} in both runs (sha256 "
        f"{d.mixture.shards[-1].sha256[:16]}...): their val_bpb measure the same text."
    )
    yield (
        f"For the first conversion, the stand-in at {d.endpoint} served {format_size(d.bytes_served)} of "
        f"{format_size(d.source_bytes)} in the source files: only the columns and row groups needed."
    )
    made = "a temporary folder made for it" if d.temporary else "the folder you gave"
    yield f"\nThat was the demo: a generated sample, not real data. Its files are in {d.workdir} ({made}):"
    data = f"{consumer.name}/{consumer.data_folder}/"
    yield f"  hub/ holds the generated source, {data} the shards; your real {consumer.base_dir()} is untouched."
    yield f"  Remove them with: rm -rf {shlex.quote(str(d.workdir))}"
    yield "\nNext, for real data (from huggingface.co, or a mirror through HF_ENDPOINT):"
    flag, run = for_flag(consumer), shardsql_command()
    commands = [
        (f"{run} list", "the datasets you can convert"),
        (f"{run} convert NAME --dry-run{flag}", "the files, sizes and rows a conversion reads (footers only)"),
        (f"{run} convert NAME{flag}", f"the shards, into {real.cache.data}"),
    ]
    width = max(38, *(len(command) + 1 for command, _ in commands))
    for command, what in commands:
        yield f"  {command:<{width}} {what}"
    yield from consumer.next_lines(real.num_shards, real.cache.root, when="Then")
    yield f"To try every command offline first: {run} demo --serve{flag}"


def serving(served: Served, folder: Path, consumer: Consumer) -> Iterator[str]:
    """`demo --serve`: where the stand-in serves, and the commands to try against it, each as the
    user pastes it (the convert's shards kept in the stand-in's folder, where verify reads them)."""
    cache = shlex.quote(str(folder / consumer.name))
    data = shlex.quote(str(folder / consumer.name / consumer.data_folder))
    flag, run = for_flag(consumer), shardsql_command()
    yield f"A local Hub stand-in serves generated data at {served.endpoint}, from {folder}."
    yield f"It plays {served.plays}."
    yield "In another terminal, point shardsql at it (and keep your real token away from it):\n"
    yield f"  export HF_ENDPOINT={served.endpoint} HF_HUB_DISABLE_TELEMETRY=1; unset HF_TOKEN\n"
    yield "Then every command works offline, e.g.:"
    yield f"  {run} show fineweb-edu"
    yield f"  {run} convert fineweb-edu --dry-run{flag}"
    yield f"  {run} convert fineweb-edu --num-shards 2 --rows-per-shard 1000{flag} --cache-dir {cache}"
    yield f"  {run} verify {data}"
    yield f'  {run} sql "SELECT int_score, count(*) FROM source.fineweb_edu GROUP BY 1 ORDER BY 1"'
    yield f"  {run} explain fineweb-edu-high"
    yield f"(--cache-dir keeps the shards out of your real {consumer.base_dir()}; verify reads them there.)"
