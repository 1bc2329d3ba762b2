"""Progress reporting for long conversions: a live rich display on a terminal, plain
timestamped lines otherwise (CI logs, `| tee`), nothing at all for library callers.

The conversion calls `update` from whichever thread Polars pulls data on, so reporters
only store numbers there and draw at a bounded rate.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from .wording import count, format_size

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

    from .output.shards import ShardInfo

PLAIN_INTERVAL_S = 10.0  # a plain line at most this often, besides one per shard


class Progress:
    """No progress display; messages (resuming, source ran out) go to `stream` if given.

    The base of the others. `rows_wanted` is the kept rows to produce.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.rows_wanted = 0
        self.shards_wanted = 0
        self.read = self.kept = self.fetched = 0
        self.used: int | None = None  # the bytes fetched for the rows counted in `kept` (this run's)
        self.shards = 0
        self.started = time.monotonic()
        self._kept_at_start = 0  # a resumed run starts with rows kept before it: not part of its rate
        self._all_in: tuple[float, int] | None = None  # once every row wanted is kept: (when, shards then)

    def start(self, rows_wanted: int, shards_wanted: int, kept: int = 0, shards: int = 0, read: int = 0) -> None:
        """`kept`, `shards` and `read`: a resumed run's, from the interrupted runs before it. Its
        counts of rows are the conversion's totals from the start; its bytes are its own."""
        self.rows_wanted, self.shards_wanted = rows_wanted, shards_wanted
        self.kept = self._kept_at_start = kept
        self.read = read
        self.fetched, self.used = 0, None
        self.shards = shards
        self.started = time.monotonic()
        self._all_in = (self.started, shards) if rows_wanted and kept >= rows_wanted else None

    def update(self, read: int, kept: int, fetched: int, used: int | None = None) -> None:
        """The rows read and kept so far, the bytes fetched (this run's), and of those `used`:
        the bytes of the units whose rows are counted (fetched ones still waiting for a worker
        are not), which the job's whole is estimated from; without it, from all the bytes fetched."""
        self.read, self.kept, self.fetched, self.used = read, kept, fetched, used
        if self._all_in is None and self.rows_wanted and kept >= self.rows_wanted:
            self._all_in = (time.monotonic(), self.shards)

    def shard(self, info: ShardInfo) -> None:
        self.shards += 1

    def shard_name(self, info: ShardInfo) -> str:
        """The name a shard just written lands as: the last of those wanted is the validation shard,
        renamed to shard_06542.parquet when the conversion completes."""
        from .autoresearch import VAL_SHARD_NAME

        if self.shards == self.shards_wanted and info.name != VAL_SHARD_NAME:
            return f"{VAL_SHARD_NAME} (the validation shard)"
        return info.name

    def message(self, text: str) -> None:
        if self._stream is not None:
            print(text, file=self._stream, flush=True)

    def stop(self) -> None:
        pass

    def rate(self) -> float:
        """Rows kept a second by this run (a resumed run's rows before it left out)."""
        return (self.kept - self._kept_at_start) / max(time.monotonic() - self.started, 1e-9)

    def eta(self) -> float | None:
        """Seconds left (None: not known yet). While rows come in: the rows still wanted at the
        rate so far. Once every row is in (a shuffle's second phase, which writes the shards
        from its staging): the shards still to write, at the pace of those written since."""
        if self._all_in is None:
            rate = self.rate()
            return (self.rows_wanted - min(self.kept, self.rows_wanted)) / rate if rate > 0 else None
        since, shards = self._all_in
        left, written = self.shards_wanted - self.shards, self.shards - shards
        if left <= 0:
            return 0.0
        return left * (time.monotonic() - since) / written if written > 0 else None

    def status(self) -> str:
        # No rate before this run has kept a row: a resumed run's rows before it are none of its own.
        rate = f"{self.rate():,.0f} rows/s, " if self.kept > self._kept_at_start else ""
        return (
            f"{count(self.read)} read, {self.kept:,} kept, {self.shards}/{count(self.shards_wanted, 'shard')}, "
            f"{self.fetch_status()}, {rate}{eta_text(self.eta())}"
        )

    def fetch_status(self, word: str = " fetched") -> str:
        """What has arrived of the bytes this run reads, and how fast: "120.5 MiB of ~830 MiB fetched,
        24.1 MiB/s". The whole is estimated from the bytes each kept row has cost so far: those
        of the units whose rows are counted, where the caller says (`used`). Bytes fetched ahead,
        for units not yet run, would count the cost of rows not yet kept: at the first unit of a
        40-shard shuffle, 6 times the job's bytes."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        kept, wanted = self.kept - self._kept_at_start, self.rows_wanted - self._kept_at_start
        cost = self.fetched if self.used is None else self.used
        whole = f" of ~{format_size(max(self.fetched, cost * wanted / kept))}" if 0 < kept < wanted and cost else ""
        # A resumed run's rows are the conversion's totals; its bytes are this run's alone.
        word += " this run" if self._kept_at_start else ""
        speed = f", {format_size(self.fetched / elapsed)}/s" if self.fetched else ""  # none before a byte arrives
        return f"{format_size(self.fetched)}{whole}{word}{speed}"


def eta_text(seconds: float | None) -> str:
    """The time left as the status says it: "ETA 14s", or "ETA ?" while it is not known."""
    return f"ETA {seconds:,.0f}s" if seconds is not None else "ETA ?"


class PlainProgress(Progress):
    """One line per shard and a status line every PLAIN_INTERVAL_S, for logs: the first that long
    after the start, not at the first unit, whose rate would count the start-up alone."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self._last = 0.0

    def start(self, rows_wanted: int, shards_wanted: int, kept: int = 0, shards: int = 0, read: int = 0) -> None:
        super().start(rows_wanted, shards_wanted, kept, shards, read)
        self._last = self.started

    def _print(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def update(self, read: int, kept: int, fetched: int, used: int | None = None) -> None:
        super().update(read, kept, fetched, used)
        now = time.monotonic()
        if now - self._last >= PLAIN_INTERVAL_S:
            self._last = now
            self._print(f"  {self.status()}")

    def shard(self, info: ShardInfo) -> None:
        super().shard(info)
        wrote = f"wrote {self.shard_name(info)}: {count(info.rows)}, {format_size(info.bytes)}"
        self._print(f"  {wrote}  ({self.status()})")


class RichProgress(Progress):
    """A live progress bar over kept rows, with the counters beside it."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        # Imported here: rich's progress display costs about 0.2 s to import, and only a
        # terminal shows it (logs and library callers never do).
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as Bar

        self._console = console or Console(stderr=True)
        self._bar = Bar(
            TextColumn("[bold]converting"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            console=self._console,
            transient=False,
        )
        self._task: TaskID | None = None

    def start(self, rows_wanted: int, shards_wanted: int, kept: int = 0, shards: int = 0, read: int = 0) -> None:
        super().start(rows_wanted, shards_wanted, kept, shards, read)
        self._task = self._bar.add_task("convert", total=rows_wanted, completed=min(kept, rows_wanted), status="")
        self._bar.start()

    def update(self, read: int, kept: int, fetched: int, used: int | None = None) -> None:
        super().update(read, kept, fetched, used)
        if self._task is not None:
            # Short: the bar, its label and the time left share one line of the terminal.
            # Our ETA, not rich's: that one reads the bar (kept rows), full through a shuffle's writing.
            status = (f"{read:,} read, {kept:,} kept, {self.shards}/{count(self.shards_wanted, 'shard')}, "
                      f"{self.fetch_status('')}, {eta_text(self.eta())}")  # fmt: skip
            self._bar.update(self._task, completed=min(kept, self.rows_wanted), status=status)

    def shard(self, info: ShardInfo) -> None:
        super().shard(info)
        line = f"  wrote {self.shard_name(info)}: {count(info.rows)}, {format_size(info.bytes)}"
        self._bar.console.print(line, highlight=False)
        self.update(self.read, self.kept, self.fetched, self.used)  # redraw: the shard count changed

    def message(self, text: str) -> None:
        self._bar.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        self._bar.stop()


def for_terminal(quiet: bool = False) -> Progress:
    """The reporter that suits where stderr goes."""
    if quiet:
        return Progress(sys.stderr)
    return RichProgress() if sys.stderr.isatty() else PlainProgress()
