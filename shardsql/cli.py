"""The command line: a thin layer over the library (commands/, output/).

Each command parses options, calls the library and prints its result: the lines it prints
are laid out by report.py, and what they say (estimates, rules, a manifest's fields) comes
from the library. Errors from the library (`ShardsqlError`) become a one-line message and a
non-zero exit status; `--debug` shows the traceback instead.

The modules that load DuckDB, Polars, pyarrow or huggingface_hub (commands/, source/,
definition/evaluator) are imported inside the commands that need them: `shardsql list`,
`backups` and `--help` stay instant, and a conversion does not wait for what it never uses.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import select
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__, report
from .autoresearch import ROW_GROUP_SIZE, ROWS_PER_SHARD
from .commands.query_output import FORMATS
from .consumers import CONSUMERS, DEFAULT, Consumer, elsewhere, named
from .definition.catalog import load_all, resolve
from .definition.mixture import Mixture
from .errors import ShardsqlError, unexpected
from .malloc import steady_malloc
from .output.cache_dir import CacheDir
from .progress import for_terminal
from .wording import count, format_size

# A command's function, as click's option decorators take and return it.
_F = TypeVar("_F", bound=Callable[..., Any])

HELP_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
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


def consumer_option(default: str | None) -> Callable[[_F], _F]:
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


def revision_option(
    help: str = "Hub revision (branch, tag or commit) instead of the definition's.",
) -> Callable[[_F], _F]:
    return click.option("--revision", help=help)


def source_option(help: str = "Read these files instead of the definition's source: a local folder, a glob or any "
                              "fsspec URL.") -> Callable[[_F], _F]:  # fmt: skip
    return click.option("--source", "source_url", metavar="URL", help=help)


def _echo(lines: Iterable[str], err: bool = False) -> None:
    for line in lines:
        click.echo(line, err=err)


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (`shardsql explain ... | head`)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or a stdout with no file (tests)
        return False


class _Group(click.Group):
    """Turns library errors into clean messages (and tracebacks only with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # here, where a closed pipe is caught, not as the interpreter exits
            return result
        except ShardsqlError as exc:
            if ctx.params.get("debug"):
                traceback.print_exc()
            message, code = str(exc), exc.exit_code
        except KeyboardInterrupt:
            message, code = INTERRUPTED.get(ctx.invoked_subcommand or "", "Interrupted."), 130
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise  # click's own (usage errors, --help, a declined prompt)
        except BrokenPipeError as exc:
            if not _reader_gone():  # another pipe than stdout's (a socket): a failure like any other
                message, code = unexpected(exc), 1
            else:
                # `| head` read what it wanted and closed the pipe: nothing failed. What is still
                # buffered goes nowhere, and the exit is quiet and successful.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise click.exceptions.Exit(0) from None
        except Exception as exc:
            # Anything the library did not turn into a ShardsqlError: still one line, not a
            # traceback; --debug shows it.
            if ctx.params.get("debug"):
                traceback.print_exc()
            message, code = unexpected(exc), 1
        # Raised outside the except block, so the new error does not hold the old one (and,
        # through its traceback, DuckDB objects) until the interpreter exits.
        error = click.ClickException(message)
        error.exit_code = code  # type: ignore[misc]  # click types it a ClassVar, yet exits with the instance's
        raise error


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
      RAY_ADDRESS        the Ray cluster `convert --engine ray` joins (without it: a local Ray)
      HF_HUB_DISABLE_TELEMETRY=1  huggingface_hub reports nothing to huggingface.co (set it for a
                         mirror or the stand-in, as `shardsql demo --serve` says)
    """


@cli.command("list")
def list_command() -> None:
    """List the known datasets and mixtures: name, description, and source or mix."""
    _echo(report.catalog(load_all()))


@cli.command("show")
@click.argument("dataset")
@revision_option()
@source_option()
def show_command(dataset: str, revision: str | None, source_url: str | None) -> None:
    """Show a definition (header and SQL) and the source files it resolves to.

    DATASET is a name from `shardsql list` or the path of a .sql file. For a mixture: its
    components, their weights and definitions, and each one's source files.
    """
    from .commands.options import for_one_dataset
    from .commands.show import resolved, shape

    definition = resolve(dataset)
    for_one_dataset(definition, "show", revision=revision, source=source_url)
    sources = list(resolved(definition, revision, source_url))  # each definition bound: bad SQL fails here
    if isinstance(definition, Mixture):
        _echo(report.mixture(definition))
    else:
        _echo(report.definition(definition, shape(definition)))
    for label, source in sources:
        _echo(report.resolved(source, label))


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
    help="The first kept rows in source order, no deduplication, the last shard as validation: row for row what "
    "the original convert_dataset.py wrote.",
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
def convert_command(dataset: str, source_url: str | None, no_shuffle: bool, dry_run: bool, yes: bool, quiet: bool,
                    **settings: Any) -> None:  # fmt: skip
    """Convert DATASET into shards in CACHE_DIR/data for autoresearch, or, with --for nanochat,
    in CACHE_DIR/base_data_climbmix for nanochat.

    DATASET is a name from `shardsql list` or the path of a .sql file: a dataset, or a
    mixture of datasets in set proportions. The new shards are
    built in a staging folder; the current data and tokenizer are moved to a labelled
    backup only once the new set is complete.

    \b
    Example: shardsql convert fineweb-edu --for nanochat
    """
    from .definition import analysis

    analysis.read_functions_ahead()  # while the modules below import
    from .commands.convert import convert
    from .commands.estimates import estimate
    from .commands.options import ConvertOptions
    from .commands.preview import preview, preview_mixture

    definition = resolve(dataset)
    options = ConvertOptions(source=source_url, shuffle=not no_shuffle, **settings)
    options.validate()
    if dry_run:
        if isinstance(definition, Mixture):
            _echo(report.mixture_preview(preview_mixture(definition, options), options))
        else:
            p = preview(definition, options)
            _echo(report.preview(p, options, estimate(p, options)))
        return
    cache = options.cache
    cache.check_usable()
    if cache.data.exists() and not yes:
        what = "DELETE" if options.skip_backup else "back up"
        question = f"This will {what} the current data and tokenizer in {cache.root} ({cache.live_label()}). Continue?"
        if sys.stdin.isatty():
            click.confirm(question, abort=True)
        elif options.skip_backup:
            raise click.UsageError("--skip-backup deletes the current data; add --yes to confirm.")
    click.echo(f"Converting {definition.name} into {count(options.num_shards, 'training shard')} + 1 validation shard "
               f"for {options.consumer.name}", err=True)  # fmt: skip
    _echo(report.result(convert(definition, options, for_terminal(quiet))))


@cli.command("sql")
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
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
    from .commands import query_output
    from .commands.query import DEFAULT_TABLE_ROWS, stream_query

    if limit is None:
        limit = DEFAULT_TABLE_ROWS if fmt == "table" else 0
    if limit < 0:
        raise click.BadParameter("must be 0 (all rows) or more", param_hint="--limit")
    with stream_query(query, limit=limit or None, revision=revision, source_url=source_url) as (stream, session):
        rows = query_output.write(stream.batches, names=stream.schema.names, fmt=fmt, out=sys.stdout)
        truncated, fetched = session.truncated, stream.bytes_fetched
    note = count(rows) + (" (more not shown: use --limit)" if truncated else "")
    click.echo(f"{note}; fetched {format_size(fetched)}", err=True)


@cli.command("explain")
@click.argument("dataset")
@click.option(
    "--sample-rows",
    default=EXPLAIN_SAMPLE_ROWS,
    show_default=True,
    help="Rows of the source to measure on (its first).",
)
@click.option("--against", metavar="OTHER", help="A second definition (name or .sql file) to measure and compare: "
              "for an edit, the edited one (DATASET the one before it).")  # fmt: skip
@click.option(
    "--format", "fmt", type=click.Choice(["text", "markdown", "html"]), default="text", show_default=True,
    help="text for the terminal (charts of block characters; of # where TERM=dumb or the output is not UTF-8), "
    "markdown for a pull request or a CI job summary, html for a self-contained page (charts as inline SVG; "
    "no script, nothing fetched): shardsql explain NAME --format html > report.html",
)  # fmt: skip
@click.option("--samples", default=3, show_default=True, metavar="N",
              help="Texts shown for each condition (what it removes) and each side of --against (what only it "
                   "keeps), picked by a fixed seed; 0: none.")  # fmt: skip
@click.option("--score", metavar="COLUMN", help="A number column of the source to chart before and after the "
              "filter.  [default: int_score, else score, where the source has one]")  # fmt: skip
@revision_option()
@source_option()
def explain_command(dataset: str, sample_rows: int, against: str | None, fmt: str, samples: int,
                    score: str | None, revision: str | None, source_url: str | None) -> None:  # fmt: skip
    """Show what a definition's filter keeps and removes, on a sample: a review report.

    DATASET is a name or a .sql file. On the first rows of its source: what each condition of
    the WHERE removes (the funnel) and a few of the texts it removes, the characters and
    estimated tokens kept, and the length (and score) distributions before and after. With
    --against, the same for a second definition on the same sample, and how their outputs
    differ (texts only one keeps, how the kept lengths move): what an edit to a definition
    changes (give the definition before the edit first and the edited one as OTHER: the report
    reads from one to the other). For a mixture, each component in turn, each on a sample of
    its own source.
    Example, for a pull request: shardsql explain ./old.sql --against ./new.sql --format markdown
    """
    from .commands.explain import check_against, explain
    from .commands.options import for_one_dataset
    from .explain_html import html_page_end, html_page_start
    from .explain_report import style_for

    if sample_rows < 1:
        raise click.BadParameter("must be at least 1", param_hint="--sample-rows")
    if samples < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--samples")
    first = resolve(dataset)
    for_one_dataset(first, "explain", revision=revision, source=source_url)
    second = check_against(first, resolve(against) if against else None)
    style = style_for(fmt)
    if style.html:
        _echo(html_page_start(f"shardsql explain {first.name}" + (f" --against {second.name}" if second else "")))
    for measured in explain(first, second, rows=sample_rows, revision=revision, source_url=source_url,
                            samples=samples, score=score):  # fmt: skip
        _echo(report.explained(measured, style))
    if style.html:
        _echo(html_page_end())


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
    from .output.verify import verify

    result = verify(directory, consumer)
    _echo((f"warning: {warning}" for warning in result.warnings), err=True)
    _echo((f"error: {error}" for error in result.errors), err=True)
    if not result.ok:
        raise click.ClickException(f"{count(len(result.errors), 'problem')} in {result.directory}")
    _echo(report.verified(result))


@cli.command("backups")
@cache_dir_option
@consumer_option(None)
def backups_command(cache_dir: Path | None, consumer: Consumer | None) -> None:
    """List the backups of earlier data sets: name, label, shards, size and date.

    Of autoresearch's cache folder, or of nanochat's with --for nanochat (or a --cache-dir
    laid out for it)."""
    cache = CacheDir.found(cache_dir, consumer)
    hints = elsewhere(cache.consumer) if cache_dir is None and consumer is None else []
    _echo(report.backups(cache, hints))


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
    click.echo(f"Restored {restored.label} ({count(restored.shards, 'shard')}) into {cache.data}.")
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
    from .commands.demo import run_demo
    from .commands.options import ConvertOptions

    _echo(report.demo_intro(slow_link), err=True)
    demo = run_demo(workdir, progress=for_terminal(), slow_link=slow_link, consumer=consumer)
    _echo(report.demo(demo, consumer, ConvertOptions(consumer=consumer)))


def _serve(workdir: Path | None, slow_link: bool = False, consumer: Consumer = DEFAULT) -> None:
    from .commands.demo import serve_until_stopped

    serve_until_stopped(workdir, slow_link=slow_link, say=lambda text: click.echo(text, err=True),
                        ready=lambda served, folder: _echo(report.serving(served, folder, consumer)))  # fmt: skip


def main() -> None:
    steady_malloc()
    try:
        cli(prog_name="shardsql")  # click ends every run with SystemExit, its exit status
    except SystemExit as end:
        if end.code in (0, None):
            _end_without_teardown()  # returns only where Python must end the process itself
        else:
            # A failed run leaves reference cycles (exception -> traceback -> frames -> DuckDB
            # objects); collect them now, or DuckDB's bindings report them as leaks at exit.
            # A successful run leaves none, and a collection would cost it about 0.25 s.
            gc.collect()
        raise


def _end_without_teardown() -> None:
    """End a successful command as Python ends a process, but for the interpreter's teardown:
    every exit handler run (Ray's shutdown, coverage's save, temporary files' removal), its
    output flushed, and then no module torn down. Tearing down pyarrow's, DuckDB's and Polars'
    modules took 0.1 to 0.15 s of every command (a small conversion: 1.7 to 2.2 s in all).
    Where a thread that keeps a process alive still runs (a thread pool left open), or the
    command failed, it returns: Python ends the process as usual.

    `atexit._run_exitfuncs` is CPython's own step of its exit, not a documented function:
    tests/test_cli.py notices if it stops running the handlers."""
    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`shardsql ... | head`)
            stream.flush()
    os._exit(0)
