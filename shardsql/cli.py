"""The command line: a thin layer over the library (commands/, output/).

Each command parses options, calls one library function and prints its result. Errors
from the library (`ShardsqlError`) become a one-line message and a non-zero exit status;
`--debug` shows the traceback instead.

The modules that load DuckDB, Polars, pyarrow or huggingface_hub (commands/, source/,
definition/evaluator) are imported inside the commands that need them: `shardsql list`,
`backups` and `--help` stay instant, and a conversion does not wait for what it never uses.
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import gc
import json
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import click

from . import __version__
from .autoresearch import BYTES_PER_TOKEN, ROW_GROUP_SIZE, ROWS_PER_SHARD
from .consumers import CONSUMERS, DEFAULT, Consumer, named
from .definition.catalog import load_all, resolve
from .definition.mixture import Mixture, percent
from .definition.model import Definition
from .errors import OptionsError, ShardsqlError, describe
from .output.cache_dir import CacheDir
from .progress import for_terminal, format_size

HELP_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# The dry run's staging estimate: the texts' own size (they are staged as they are unless they
# compress well: output/staging.py), plus the keys' 32 bytes a row.
STAGING_ROW_BYTES = 32
EXPLAIN_SAMPLE_ROWS = 10_000  # rows of the source `explain` measures on, by default
# What Ctrl-C means depends on the command: a conversion resumes, a query's output is cut short.
INTERRUPTED = {
    "convert": "Interrupted. Your data folder was not changed; run the same command to resume.",
    "sql": "Interrupted: the query was stopped, so its output above is incomplete.",
    "demo": "Interrupted: the demo was stopped; its files are left in its folder.",
}

# Options several commands share, defined once so they read the same everywhere.
cache_dir_option = click.option(
    "--cache-dir", type=click.Path(path_type=Path), default=None,
    help="The consumer's base folder, which holds its data and tokenizer folders and the backups.  [default: "
    + "; ".join(f"{c.name}: {c.base_described()}" for c in CONSUMERS.values()) + "]",
)  # fmt: skip


def consumer_option(default: str | None):
    """`--for NAME`: who reads the shards. `default` None: found from the folder (its manifest,
    else its folders' names: consumers.found)."""
    found = f"the one the data's manifest records, else the one whose data folder is there, else {DEFAULT.name}"
    return click.option(
        "--for", "consumer", type=click.Choice(list(CONSUMERS)), default=default, show_default=default is not None,
        callback=lambda ctx, param, value: named(value) if value else None,
        help="Who reads the shards, each from a data folder of its own in its cache folder: "
        + " or ".join(f"{c.name} ({c.data_folder}/)" for c in CONSUMERS.values())
        + "."
        + ("" if default else f"  [default: {found}]"),
    )  # fmt: skip


def revision_option(help: str = "Hub revision (branch, tag or commit) instead of the definition's."):
    return click.option("--revision", help=help)


def source_option(help: str = "Read these files instead of the definition's source: a local folder, a glob or any "
                              "fsspec URL."):  # fmt: skip
    return click.option("--source", "source_url", metavar="URL", help=help)


def _shape(definition: Definition) -> str:
    """How a definition runs, e.g. "whole source (ORDER BY: reads the whole source)", and its order."""
    from .definition.evaluator import Evaluator

    evaluator = Evaluator(definition)
    evaluator.close()
    shape = evaluator.shape
    order = (
        "its own ORDER BY, kept (convert does not shuffle it)"
        if shape.ordered
        else "shuffled by convert (--seed N; --no-shuffle: source order)"
    )
    return f"{shape.path} ({shape.reason})\norder:       {order}"


class _Group(click.Group):
    """Turns library errors into clean messages (and tracebacks only with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ShardsqlError as exc:
            if ctx.params.get("debug"):
                traceback.print_exc()
            message, code = str(exc), exc.exit_code
        except KeyboardInterrupt:
            message, code = INTERRUPTED.get(ctx.invoked_subcommand or "", "Interrupted."), 130
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit, BrokenPipeError):
            raise  # click's own (usage errors, --help, a declined prompt, `| head` closing the pipe)
        except Exception as exc:
            # Anything the library did not turn into a ShardsqlError: still one line, not a
            # traceback; --debug shows it.
            if ctx.params.get("debug"):
                traceback.print_exc()
            message, code = _unexpected(exc), 1
        # Raised outside the except block, so the new error does not hold the old one (and,
        # through its traceback, DuckDB objects) until the interpreter exits.
        error = click.ClickException(message)
        error.exit_code = code
        raise error


def _unexpected(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text, name = describe(exc), type(exc).__name__
    what = text if text.startswith(name) else f"{name}: {text}"  # describe names the type when there is no text
    return f"unexpected {what} (shardsql --debug COMMAND ... shows the traceback; please report it)"


@click.group(cls=_Group, context_settings=HELP_SETTINGS)
@click.version_option(__version__, prog_name="shardsql")
@click.option("--debug", is_flag=True, help="Show the full traceback when something fails.")
def cli(debug: bool) -> None:
    """Convert Hugging Face Hub datasets into training shards for autoresearch or nanochat
    (--for nanochat), one SQL file per dataset.

    \b
    Environment:
      HF_ENDPOINT        a Hub mirror (default https://huggingface.co); `shardsql demo --serve`
                         prints one to try every command offline
      HF_TOKEN           a token for gated or private datasets (never written anywhere)
      SHARDSQL_SQL_DIR   more folders of dataset definitions (.sql), separated by ':'
      NANOCHAT_BASE_DIR  nanochat's base folder (default ~/.cache/nanochat), as nanochat reads it
    """


@cli.command("list")
def list_command() -> None:
    """List the known datasets and mixtures: name, description, and source or mix."""
    definitions = load_all()
    width = max((len(d.name) for d in definitions), default=4)
    for d in definitions:
        click.echo(f"{d.name:<{width}}  {d.description}")
        if isinstance(d, Mixture):
            click.echo(f"{'':<{width}}  mix: {d.mix}")
        else:
            click.echo(f"{'':<{width}}  {d.source}" + (f"  (revision {d.revision})" if d.revision else ""))


def _for_one_dataset(definition: Definition | Mixture, command: str, **options: str | None) -> None:
    """Refuse options that apply to one dataset (--revision, --source) when `definition` is a mixture."""
    given = [f"--{name.replace('_', '-')}" for name, value in options.items() if value]
    if isinstance(definition, Mixture) and given:
        names = ", ".join(c.definition.name for c in definition.components)
        verb, them = ("apply", "them") if len(given) > 1 else ("applies", "it")
        raise OptionsError(f"{' and '.join(given)} {verb} to one dataset, and {definition.name} is a mixture: "
                           f"give {them} to `shardsql {command}` for one of its components ({names})")  # fmt: skip


def _print_resolved(definition: Definition, revision: str | None = None, source_url: str | None = None,
                    label: str = "") -> None:  # fmt: skip
    """The source files a dataset definition reads (after --revision and --source), with their sizes."""
    from .source.files import open_source

    source = open_source(source_url or definition.source, revision or definition.revision, override=bool(revision))
    pinned = f" at {source.revision} (commit {source.commit})" if source.commit else ""
    total = format_size(sum(f.size for f in source.files))
    click.echo(f"resolved:    {label}{source.url}{pinned}: {len(source.files)} files, {total}")
    for file in source.files:
        click.echo(f"  {file.url}  {format_size(file.size)}")


@cli.command("show")
@click.argument("dataset")
@revision_option()
@source_option()
def show_command(dataset: str, revision: str | None, source_url: str | None) -> None:
    """Show a definition (header and SQL) and the source files it resolves to.

    DATASET is a name from `shardsql list` or the path of a .sql file. For a mixture: its
    components, their weights and definitions, and each one's source files.
    """
    definition = resolve(dataset)
    _for_one_dataset(definition, "show", revision=revision, source=source_url)
    if isinstance(definition, Mixture):
        _show_mixture(definition)
        return
    click.echo(f"name:        {definition.name}")
    click.echo(f"file:        {definition.path}")
    click.echo(f"description: {definition.description}")
    click.echo(f"source:      {definition.source}")
    click.echo(f"revision:    {definition.revision or '(default)'}")
    for key, value in definition.extra.items():
        click.echo(f"{key + ':':<12} {value}")
    click.echo(f"sha256:      {definition.sha256}")
    click.echo(f"path:        {_shape(definition)}\n")
    click.echo(definition.sql + "\n")
    _print_resolved(definition, revision, source_url)


def _show_mixture(m: Mixture) -> None:
    click.echo(f"name:        {m.name}")
    click.echo(f"file:        {m.path}")
    click.echo(f"description: {m.description}")
    click.echo(f"mix-by:      {m.mix_by}")
    for key, value in m.extra.items():
        click.echo(f"{key + ':':<12} {value}")
    click.echo(f"sha256:      {m.sha256}\n")
    click.echo(f"components ({len(m.components)}):")
    for c in m.components:
        d = c.definition
        click.echo(f"  {d.name}  {percent(c.weight)} of the {m.mix_by}")
        click.echo(f"    file:      {d.path}")
        click.echo(f"    source:    {d.source}")
        click.echo(f"    revision:  {d.revision or '(default)'}")
    click.echo("")
    for c in m.components:
        _print_resolved(c.definition, label=f"{c.definition.name}: ")


@cli.command("convert")
@click.argument("dataset")
@click.option(
    "--num-shards", default=10, show_default=True, help="Training shards to write (plus one validation shard)."
)
@click.option("--num-source", type=int, help="Read at most this many source files.  [default: as many as needed]")
@click.option("--rows-per-shard", default=ROWS_PER_SHARD, show_default=True, help="Rows in each shard.")
@click.option("--row-group-size", default=ROW_GROUP_SIZE, show_default=True, help="Rows in each parquet row group.")
@revision_option()
@source_option()
@consumer_option(DEFAULT.name)
@cache_dir_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the files, their sizes and row counts (from footers only) and the estimated output.",
)
@click.option("--skip-backup", is_flag=True, help="Delete the current data and tokenizer instead of backing them up.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option(
    "--workers", type=int, default=None,
    help="Units run at once: threads (local) or Ray tasks (ray); the shards are the same for any number.  "
    "[default: the cores this process may use, or the Ray cluster's CPUs]",
)  # fmt: skip
@click.option(
    "--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
    help="Where row-by-row definitions run: threads on this machine, or Ray tasks on the cluster at RAY_ADDRESS "
    "(a local Ray without it; needs the ray extra). The shards are the same.",
)  # fmt: skip
@click.option(
    "--seed", type=int, default=0, show_default=True,
    help="Seed of the shuffle: which units are drawn from the whole source, and the rows' random order.",
)  # fmt: skip
@click.option(
    "--no-shuffle", is_flag=True,
    help="The first kept rows in source order, no deduplication, the last shard as validation (as before 0.2).",
)  # fmt: skip
@click.option(
    "--val-rows", type=int, default=None,
    help="Rows of the validation shard (shard_06542).  [default: --rows-per-shard]",
)  # fmt: skip
@click.option(
    "--val-from", metavar="NAME|PATH|live",
    help="Take the validation shard from another dataset or mixture (drawn with the same seed, so two "
    "conversions share it byte for byte), or keep the live one (`live`); its texts are kept out of training.",
)  # fmt: skip
@click.option(
    "--allow-short", is_flag=True,
    help="A mixture whose component runs out writes fewer rows in the same proportions instead of stopping.",
)  # fmt: skip
def convert_command(
    dataset,
    num_shards,
    num_source,
    rows_per_shard,
    row_group_size,
    revision,
    source_url,
    consumer,
    cache_dir,
    dry_run,
    skip_backup,
    yes,
    quiet,
    workers,
    engine,
    seed,
    no_shuffle,
    val_rows,
    val_from,
    allow_short,
) -> None:
    """Convert DATASET into shards in CACHE_DIR/data for autoresearch, or, with --for nanochat,
    in CACHE_DIR/base_data_climbmix for nanochat.

    DATASET is a name from `shardsql list` or the path of a .sql file: a dataset, or a
    mixture of datasets in set proportions. The new shards are
    built in a staging folder; the current data and tokenizer are moved to a labelled
    backup only once the new set is complete.

    \b
    Example: shardsql convert fineweb-edu --for nanochat
    """
    from .commands.convert import ConvertOptions, convert
    from .commands.preview import preview, preview_mixture

    definition = resolve(dataset)
    options = ConvertOptions(
        num_shards=num_shards,
        num_source=num_source,
        rows_per_shard=rows_per_shard,
        row_group_size=row_group_size,
        revision=revision,
        source=source_url,
        consumer=consumer,
        cache_dir=cache_dir,
        skip_backup=skip_backup,
        workers=workers,
        engine=engine,
        shuffle=not no_shuffle,
        seed=seed,
        val_rows=val_rows,
        val_from=val_from,
        allow_short=allow_short,
    )
    options.validate()
    if dry_run:
        if isinstance(definition, Mixture):
            _print_mixture_preview(preview_mixture(definition, options), options)
        else:
            _print_preview(preview(definition, options), options)
        return
    cache = options.cache
    cache.check_usable()
    if cache.data.exists() and not yes:
        what = "DELETE" if skip_backup else "back up"
        question = f"This will {what} the current data and tokenizer in {cache.root} ({cache.live_label()}). Continue?"
        if sys.stdin.isatty():
            click.confirm(question, abort=True)
        elif skip_backup:
            raise click.UsageError("--skip-backup deletes the current data; add --yes to confirm.")
    click.echo(f"Converting {definition.name} into {options.num_shards} training shards + 1 validation shard "
               f"for {consumer.name}", err=True)  # fmt: skip
    result = convert(definition, options, for_terminal(quiet))
    _print_result(result)


def _print_preview(p, options) -> None:
    source = p.source
    pinned = f" at {source.revision} (commit {source.commit})" if source.commit else ""
    click.echo(f"Dataset:  {p.definition.name}  ({p.definition.path})")
    click.echo(f"Source:   {source.url}{pinned}")
    click.echo(f"Columns read: {', '.join(p.columns)}")
    click.echo(f"Path:     {p.shape.path} ({p.shape.reason})")
    click.echo(f"Files ({len(p.footers)}):")
    for footer in p.footers:
        md, size = footer.metadata, format_size(footer.file.size)
        click.echo(f"  {footer.file.url}  {size}  {md.num_rows:,} rows  {md.num_row_groups} row groups")
    total_size = sum(f.file.size for f in p.footers)
    columns = format_size(p.column_bytes())
    click.echo(
        f"Total:    {p.source_rows:,} rows, {format_size(total_size)}; the columns read are {columns} compressed"
    )
    if options.val_rows is None:
        shape = f"{options.num_shards + 1} shards x {options.rows_per_shard:,} rows"
    else:
        shape = f"{options.num_shards} shards x {options.rows_per_shard:,} rows + {options.val_rows:,} validation rows"
    click.echo(f"Wanted:   {shape} = {p.rows_wanted:,} rows kept")
    if p.source_rows < p.rows_wanted:
        click.echo(
            f"Estimate: the source has fewer rows than wanted even if every row is kept: "
            f"at most {p.source_rows // options.rows_per_shard} full shards"
        )
    else:
        bytes_per_row = p.column_bytes() / max(p.source_rows, 1)
        click.echo(
            f"Estimate: at least {format_size(bytes_per_row * p.rows_wanted)} fetched (more as the filter drops rows)"
        )
    if p.source_rows:
        text_bytes = p.text_bytes() / p.source_rows  # uncompressed bytes a source row, before filtering
        val_rows = options.val_rows or options.rows_per_shard
        tokens = int(text_bytes * val_rows / BYTES_PER_TOKEN)
        click.echo(f"Validation: {val_rows:,} rows, about {tokens:,} tokens (UTF-8 bytes / 4, at the source's mean)")
        advice = options.consumer.val_advice(tokens, val_rows)
        if advice:
            click.echo(f"warning: {advice}")
        if options.shuffle and not p.shape.ordered:
            staged = p.rows_wanted * (text_bytes + STAGING_ROW_BYTES)
            click.echo(
                f"Staging: at most about {format_size(staged)} on disk in the cache folder while it runs (the "
                "selection, shuffled on disk; less where the texts compress well, more where the filter or "
                "duplicates make it draw more)"
            )
    click.echo(f"Output:   {options.cache.data} (for {options.consumer.name})")
    fetched = f"{format_size(source.counter.bytes)} in {source.counter.requests} requests"
    click.echo(f"Dry run: only parquet footers were read ({fetched}).")


def _print_mixture_preview(m, options) -> None:
    mixture = m.mixture
    click.echo(f"Mixture:  {mixture.name}  ({mixture.path}), by {mixture.mix_by}")
    val_rows = options.val_rows or options.rows_per_shard
    shape = f"{options.num_shards} shards x {options.rows_per_shard:,} rows + {val_rows:,} validation rows"
    click.echo(f"Wanted:   {shape} = {options.rows_wanted:,} rows, shuffled together")
    for c in m.components:
        p = c.preview
        pinned = f" (commit {p.source.commit[:12]})" if p.source.commit else ""
        click.echo(f"  {p.definition.name}  {float(c.weight):.1%}: {p.source.url}{pinned}")
        click.echo(f"    {len(p.footers)} files, {p.source_rows:,} rows; mean {c.chars_per_row:,.0f} characters a row")
        click.echo(f"    needs about {c.rows:,} rows kept, {format_size(c.bytes)} fetched (more as its filter drops)")
        if c.rows > p.source_rows:
            click.echo(f"    warning: its source has only {p.source_rows:,} rows: the mixture would stop there")
    click.echo(f"Output:   {options.cache.data} (for {options.consumer.name})")
    fetched = sum(c.preview.source.counter.bytes for c in m.components)
    click.echo(f"Dry run: only parquet footers were read ({format_size(fetched)}).")


def _print_result(result, next_steps: bool = True) -> None:
    source = result.source
    filtered = result.rows_read - result.rows_kept
    if source is not None:
        pinned = f" @ {source.commit[:12]}" if source.commit else ""
        click.echo(f"\nDone: {result.definition.name} from {source.url}{pinned}")
    else:
        click.echo(f"\nDone: {result.definition.name}")
    training = [p for p in result.parts if not p.validation]
    rows, chars = sum(p.rows_written for p in training) or 1, sum(p.chars_written for p in training) or 1
    for part in result.parts:
        share = f"{part.chars_written / chars:.1%} of characters, {part.rows_written / rows:.1%} of rows"
        role = "the validation shard" if part.validation else share
        click.echo(f"  {part.name}: {part.rows_written:,} rows, {part.chars_written:,} characters ({role})")
    click.echo(
        f"  shards:  {result.train_shards} training + 1 validation ({result.shards[-1].name}) in {result.data_dir}"
    )
    click.echo(
        f"  rows:    {result.rows_read:,} read, {filtered:,} filtered, {result.rows_kept:,} kept, "
        f"{sum(s.rows for s in result.shards):,} written"
    )
    if source is not None:
        click.echo(f"  fetched: {format_size(source.counter.bytes)} in {source.counter.requests} requests")
    if result.order == "shuffled":
        click.echo(f"  order:   shuffled (seed {result.seed}); {result.duplicates_removed:,} duplicate texts removed")
    else:
        click.echo(
            "  order:   " + ("the definition's ORDER BY" if result.order == "sql" else "source order (--no-shuffle)")
        )
    tokens = result.val_tokens
    origin = f" from {result.val_from}" if result.val_from else ""
    click.echo(f"  validation: {result.shards[-1].rows:,} rows{origin}, about {tokens:,} tokens (UTF-8 bytes / 4)")
    advice = result.consumer.val_advice(tokens, result.shards[-1].rows)
    if advice:
        click.echo(f"  warning: {advice}")
    click.echo(f"  record:  {result.manifest_path}")
    if result.backup:
        click.echo(f"  backup:  previous data and tokenizer in {result.backup}")
    if not next_steps:
        return
    click.echo("")
    for line in result.next_lines():
        click.echo(line)


@cli.command("sql")
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--limit", type=int, help="Rows to print (0: all).  [default: 20 for tables, all for csv and json]")
@revision_option("Hub revision for the datasets' sources instead of their definitions'.")
@source_option("Read these files (a local folder, a glob or any fsspec URL) as the view `source`.")
def sql_command(query: str, fmt: str, limit: int | None, revision: str | None, source_url: str | None) -> None:
    """Run one SELECT (DuckDB's dialect) over the datasets, reading only what it needs.

    Every dataset is a view named with `_` for `-` (fineweb_edu_high) holding what its
    definition keeps; its unfiltered source is source.<name> (source.fineweb_edu).
    Example: shardsql sql "SELECT count(*) FROM source.fineweb_edu WHERE int_score >= 4"
    """
    from .commands.query import DEFAULT_TABLE_ROWS, QueryError, stream_query

    if limit is None:
        limit = DEFAULT_TABLE_ROWS if fmt == "table" else 0
    if limit < 0:
        raise click.BadParameter("must be 0 (all rows) or more", param_hint="--limit")
    with stream_query(query, limit or None, revision, source_url) as (stream, session):
        # csv and json are written batch by batch as DuckDB produces them: memory stays
        # bounded whatever the result's size. A table needs all its rows to lay them out.
        write = {"csv": _write_csv, "json": _write_json, "table": _write_table}[fmt]
        try:
            rows = write(stream.schema.names, stream.batches)
        except UnicodeDecodeError as exc:
            raise QueryError(
                f"the result holds text that is not valid UTF-8 ({exc.reason}); the source has such bytes "
                "(cast the column to BLOB to see them)"
            ) from None
        truncated, fetched = session.truncated, stream.bytes_fetched
    note = f"{rows:,} rows" + (" (more not shown: use --limit)" if truncated else "")
    click.echo(f"{note}; fetched {format_size(fetched)}", err=True)


def _write_csv(names: list[str], batches) -> int:
    writer = csv.writer(sys.stdout)
    writer.writerow(names)
    count = 0
    for batch in batches:
        columns = [column.to_pylist() for column in batch.columns]
        writer.writerows(zip(*columns, strict=True))
        count += batch.num_rows
    sys.stdout.flush()
    return count


def _write_json(names: list[str], batches) -> int:
    """A JSON array of row objects, written row by row (one object per row, as json.dumps
    with indent=1 would lay out the whole array)."""
    out, count = sys.stdout, 0
    for batch in batches:
        for row in batch.to_pylist():
            text = json.dumps(row, ensure_ascii=False, indent=1, default=str).replace("\n", "\n ")
            out.write(("[\n " if count == 0 else ",\n ") + text)
            count += 1
    out.write("[]\n" if count == 0 else "\n]\n")
    out.flush()
    return count


def _write_table(names: list[str], batches) -> int:
    from rich.console import Console  # rich's import costs: only tables use it
    from rich.table import Table

    view = Table(*names, show_lines=False)
    for column in view.columns:
        column.overflow, column.no_wrap, column.max_width = "ellipsis", True, 60
    count = 0
    for batch in batches:
        for row in batch.to_pylist():
            view.add_row(*("NULL" if v is None else str(v) for v in row.values()))
            count += 1
    Console(width=max(80, click.get_terminal_size()[0]) if sys.stdout.isatty() else 200).print(view)
    return count


@cli.command("explain")
@click.argument("dataset")
@click.option(
    "--sample-rows",
    default=EXPLAIN_SAMPLE_ROWS,
    show_default=True,
    help="Rows of the source to measure on (its first).",
)
@click.option("--against", metavar="OTHER", help="A second definition (name or .sql file) to measure and compare.")
@revision_option()
@source_option()
def explain_command(dataset: str, sample_rows: int, against: str | None, revision: str | None,
                    source_url: str | None) -> None:  # fmt: skip
    """Show what each condition of a definition's WHERE clause removes, on a sample.

    DATASET is a name or a .sql file. With --against, the same for a second definition on
    the same sample, and how their outputs differ: what an edit to a definition changes.
    For a mixture, each component in turn, each on a sample of its own source.
    """
    from .commands.explain import compare, funnel, sample

    if sample_rows < 1:
        raise click.BadParameter("must be at least 1", param_hint="--sample-rows")
    first = resolve(dataset)
    _for_one_dataset(first, "explain", revision=revision, source=source_url)
    second = resolve(against) if against else None
    mixture = next((d for d in (first, second) if isinstance(d, Mixture)), None)
    if mixture is not None and second is not None:
        raise OptionsError(f"--against compares two datasets, and {mixture.name} is a mixture: compare one of its "
                           f"components ({', '.join(c.definition.name for c in mixture.components)})")  # fmt: skip
    if isinstance(first, Mixture):
        for number, c in enumerate(first.components):
            click.echo(("\n" if number else "") + f"== {c.definition.name}: {percent(c.weight)} of {first.name}'s "
                       f"{first.mix_by} ==")  # fmt: skip
            table, source = sample(c.definition, [c.definition], sample_rows)
            _print_sample(table, source)
            _print_funnel(funnel(c.definition, table))
        return
    # The Hub's default branch is main: no revision and `main` read the same files.
    same_source = second is not None and bool(
        source_url or (second.source, second.revision or "main") == (first.source, first.revision or "main")
    )
    table, source = sample(first, [first, second] if same_source else [first], sample_rows, revision, source_url)
    _print_sample(table, source)
    _print_funnel(funnel(first, table))
    if second is None:
        return
    if not same_source:
        other, other_source = sample(second, [second], sample_rows, revision, None)
        click.echo(f"\n{second.name} reads another source: the first {other.num_rows:,} rows of {other_source.url}\n")
        _print_funnel(funnel(second, other))
        return
    click.echo("")
    _print_funnel(funnel(second, table))
    diff = compare(first, second, table)
    click.echo(f"\nOn the same rows: {diff.both:,} texts kept by both, {diff.only_first:,} only by {first.name}, "
               f"{diff.only_second:,} only by {second.name}.")  # fmt: skip


def _print_sample(table, source) -> None:
    pinned = f" (commit {source.commit[:12]})" if source.commit else ""
    fetched = format_size(source.counter.bytes)
    click.echo(f"Sample: the first {table.num_rows:,} rows of {source.url}{pinned}; fetched {fetched}\n")


def _print_funnel(f) -> None:
    def pct(n: int) -> str:
        return f"{100 * n / f.sample_rows:5.1f}%" if f.sample_rows else "    -"

    click.echo(f"{f.definition.name}  ({f.definition.path})")
    width = max([len(s.condition) for s in f.steps] + [20])
    click.echo(f"  {'':<{width}}  {'rows':>9} {'':>6}  {'chars':>12}  {'removed':>9}  {'alone':>9}")
    click.echo(f"  {'in':<{width}}  {f.sample_rows:>9,} {pct(f.sample_rows)}  {f.chars_in:>12,}")
    for s in f.steps:
        click.echo(f"  {s.condition:<{width}}  {s.rows:>9,} {pct(s.rows)}  {s.chars:>12,}  "
                   f"{s.removed:>9,}  {s.removed_alone:>9,}")  # fmt: skip
    click.echo(f"  {'out':<{width}}  {f.rows_out:>9,} {pct(f.rows_out)}  {f.chars_out:>12,}")


@cli.command("verify")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@consumer_option(None)
def verify_command(directory: Path | None, consumer: Consumer | None) -> None:
    """Check shards against their manifest and against what their consumer needs.

    DIRECTORY defaults to the data folder of --for's consumer (autoresearch's
    ~/.cache/autoresearch/data; nanochat's $NANOCHAT_BASE_DIR/base_data_climbmix). Checks each
    shard's sha256, size, rows, row groups and schema, and the validation shard (for nanochat:
    last in sorted order); exits non-zero on any problem.
    """
    from fractions import Fraction

    from .output.verify import verify

    report = verify(directory, consumer)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if not report.ok:
        raise click.ClickException(f"{len(report.errors)} problem(s) in {report.directory}")
    record = report.manifest or {}
    for part in record.get("components") or []:
        role = (
            "validation shard" if part.get("role") == "validation" else f"weight {float(Fraction(part['weight'])):.1%}"
        )
        click.echo(f"Component {part['name']} ({role}): {part['rows']['written']:,} rows, "
                   f"{part['characters_written']:,} characters")  # fmt: skip
    if report.val_tokens is not None:
        origin = (record.get("validation") or {}).get("from")
        click.echo(f"Validation shard{f' from {origin}' if origin else ''}: about {report.val_tokens:,} tokens "
                   "(UTF-8 bytes / 4)")  # fmt: skip
    click.echo(f"OK: {report.shards_checked} shards in {report.directory}, as {report.consumer.name} reads them")


@cli.command("backups")
@cache_dir_option
@consumer_option(None)
def backups_command(cache_dir: Path | None, consumer: Consumer | None) -> None:
    """List the backups of earlier data sets: name, label, shards, size and date.

    Of autoresearch's cache folder, or of nanochat's with --for nanochat (or a --cache-dir
    laid out for it)."""
    cache = CacheDir.found(cache_dir, consumer)
    backups = cache.backups()
    if not backups:
        click.echo(f"No backups in {cache.root}.")
        return
    width = max(len(b.name) for b in backups)
    click.echo(f"{'name':<{width}}  {'label':<20}  shards  {'size':>9}  date")
    for b in backups:
        click.echo(
            f"{b.name:<{width}}  {b.label:<20}  {b.shards:>6}  {format_size(b.bytes):>9}  {b.created:%Y-%m-%d %H:%M}"
        )
    click.echo(f"\nLive data: {cache.live_label()} in {cache.data} (for {cache.consumer.name})")


@cli.command("restore")
@click.argument("name", required=False)
@cache_dir_option
@consumer_option(None)
def restore_command(name: str | None, cache_dir: Path | None, consumer: Consumer | None) -> None:
    """Make a backup the live data again (default: the original climbmix data).

    NAME is a name from `shardsql backups`. The current data and tokenizer become a backup
    in turn, so nothing is lost. With --for nanochat, in nanochat's cache folder.
    """
    cache = CacheDir.found(cache_dir, consumer)
    with cache.lock():
        restored, kept = cache.restore(name)
    click.echo(f"Restored {restored.label} ({restored.shards} shards) into {cache.data}.")
    if kept:
        click.echo(f"The data that was live is now the backup {kept.name.removeprefix('backup_')}.")


@cli.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Where to put the demo's files.  [default: a new temporary folder]",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Instead, serve generated data for every built-in dataset until Ctrl-C, to try any command offline.",
)
@click.option(
    "--slow-link",
    is_flag=True,
    help="The stand-in plays a slow link (100 ms round trips, 4 MB/s a connection, 25 MB/s in all) and "
    "redirects file reads to a storage host, as the Hub does: watch the demo's conversion, or yours with --serve, "
    "on one.",
)
@consumer_option(DEFAULT.name)
def demo_command(workdir: Path | None, serve: bool, slow_link: bool, consumer: Consumer) -> None:
    """Run a whole conversion offline against a local Hub stand-in on generated data.

    Your real cache folders (~/.cache/autoresearch, nanochat's) are not touched: the shards go
    to the demo's folder, laid out for --for's consumer. With --serve, the stand-in keeps
    serving a sample of every built-in dataset: set HF_ENDPOINT as it says, in another
    terminal, and every command works offline.
    """
    if serve:
        _serve(workdir, slow_link, consumer)
        return
    from .commands.convert import ConvertOptions
    from .commands.demo import DEMO_DATASET, DEMO_MIXTURE, SLOW_LINK_PLAYS, run_demo

    click.echo(f"Demo: converting generated {DEMO_DATASET} data served by a local Hub stand-in, then the "
               f"{DEMO_MIXTURE} mixture with the same validation shard (--val-from live).", err=True)  # fmt: skip
    if slow_link:
        click.echo(f"The stand-in plays {SLOW_LINK_PLAYS}.", err=True)
    demo = run_demo(workdir, for_terminal(), slow_link, consumer)
    _print_result(demo.result, next_steps=False)
    _print_result(demo.mixture, next_steps=False)
    same = demo.result.shards[-1].sha256 == demo.mixture.shards[-1].sha256
    click.echo(f"\nThe validation shard is {'the same' if same else 'NOT the same'} in both runs (sha256 "
               f"{demo.mixture.shards[-1].sha256[:16]}...): their val_bpb measure the same text.")  # fmt: skip
    click.echo(
        f"For the first conversion, the stand-in at {demo.endpoint} served {format_size(demo.bytes_served)} of "
        f"{format_size(demo.source_bytes)} in the source files: only the columns and row groups needed."
    )
    made = "a temporary folder made for it" if demo.temporary else "the folder you gave"
    click.echo(f"\nThat was the demo: a generated sample, not real data. Its files are in {demo.workdir} ({made}):")
    data = f"{consumer.name}/{consumer.data_folder}/"
    click.echo(f"  hub/ holds the generated source, {data} the shards; your real {consumer.base_dir()} is untouched.")
    click.echo(f"  Remove them with: rm -rf {shlex.quote(str(demo.workdir))}")
    click.echo("\nNext, for real data (from huggingface.co, or a mirror through HF_ENDPOINT):")
    flag = _for_flag(consumer)
    real = ConvertOptions(consumer=consumer)
    commands = [
        ("shardsql list", "the datasets you can convert"),
        (f"shardsql convert NAME --dry-run{flag}", "the files, sizes and rows a conversion reads (footers only)"),
        (f"shardsql convert NAME{flag}", f"the shards, into {real.cache.data}"),
    ]
    width = max(38, *(len(command) + 1 for command, _ in commands))
    for command, what in commands:
        click.echo(f"  {command:<{width}} {what}")
    for line in consumer.next_lines(real.num_shards, real.cache_dir, when="Then"):
        click.echo(line)
    click.echo(f"To try every command offline first: shardsql demo --serve{flag}")


def _for_flag(consumer: Consumer) -> str:
    """The `--for` a command line needs for `consumer`: none for the default."""
    return "" if consumer == DEFAULT else f" --for {consumer.name}"


def _serve(workdir: Path | None, slow_link: bool = False, consumer: Consumer = DEFAULT) -> None:
    from .commands.demo import serving

    def stop(signum, frame):  # SIGTERM (a service manager, `kill`) stops serving like Ctrl-C: cleanly
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    temporary = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="shardsql-serve-")) if temporary else workdir
    click.echo("Generating a sample of every built-in dataset ...", err=True)
    try:
        with serving(folder, slow_link) as served:
            cache = shlex.quote(str(folder / consumer.name))
            flag = _for_flag(consumer)
            click.echo(f"A local Hub stand-in serves generated data at {served.endpoint}, from {folder}.")
            click.echo(f"It plays {served.plays}.")
            click.echo("In another terminal, point shardsql at it (and keep your real token away from it):\n")
            click.echo(f"  export HF_ENDPOINT={served.endpoint} HF_HUB_DISABLE_TELEMETRY=1; unset HF_TOKEN\n")
            click.echo("Then every command works offline, e.g.:")
            click.echo("  shardsql show fineweb-edu")
            click.echo("  shardsql convert fineweb-edu --dry-run")
            click.echo(f"  shardsql convert fineweb-edu --num-shards 2 --rows-per-shard 1000{flag} --cache-dir {cache}")
            click.echo('  shardsql sql "SELECT int_score, count(*) FROM source.fineweb_edu GROUP BY 1 ORDER BY 1"')
            click.echo("  shardsql explain fineweb-edu-high")
            click.echo(f"(--cache-dir keeps the shards out of your real {consumer.base_dir()}; "
                       f"verify {cache}/{consumer.data_folder})")  # fmt: skip
            click.echo("Serving until Ctrl-C.", err=True)
            sys.stdout.flush()
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("\nStopped serving.", err=True)
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    if temporary:
        click.echo(f"Removed {folder}.", err=True)


def _steady_malloc() -> None:
    """Keep glibc from hoarding freed row-group buffers.

    After a large buffer is freed, glibc raises its mmap threshold to that size and serves
    later ones from its heaps, which it rarely returns to the system: a conversion's memory
    would keep growing with the size of its row groups. A fixed threshold stops that.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB
    except OSError:  # not glibc: nothing to tune
        pass


def main() -> None:
    _steady_malloc()
    try:
        cli(prog_name="shardsql")  # click ends every run with SystemExit, its exit status
    except SystemExit as end:
        if end.code not in (0, None):
            # A failed run leaves reference cycles (exception -> traceback -> frames -> DuckDB
            # objects); collect them now, or DuckDB's bindings report them as leaks at exit.
            # A successful run leaves none, and a collection would cost it about 0.25 s.
            gc.collect()
        raise
