"""The Ray engine's tasks: what runs in Ray's worker processes (driver.py is the driver).

* `run_unit`: one unit of the source, decoded from its fetched bytes and run through the definition, as
  the local engine does (run/unit.py), and for a shuffled conversion staged there too
  (fingerprinted, split by pile, compressed: output/staging.stage_unit). The source is
  reopened once per worker process from its `SourceSpec`, the unit's file's footer comes
  from the driver, and a DuckDB connection per definition is kept between tasks.
* `Fetch`: an actor, one a node, that fetches the units' byte ranges for the tasks, as
  pieces on its own streams (source/fetch.py: as many at once as the link rewards, whatever
  the cores), into the object store. A task gets its unit's bytes as an argument, so it
  holds a CPU only once they are there, and the link is filled while the CPUs work.
* `encode_shard`: one shard, compressed by the same Polars writer as the local engine's
  from the slices of the units' kept rows that make it up.
* `Messages`: an actor, started by the first task with something to say (`say`), that
  holds what the tasks say while they run (a rate-limit wait) until the driver reads it.

A worker process serves many tasks, and on a shared cluster many conversions: what it keeps
between tasks is bounded (WORKER_CACHE, WORKER_FOOTERS).

`ray` itself is imported inside the functions: this module is imported by the driver before
adapter.py has loaded Ray the way shardsql needs it (Ray is an optional extra).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from ... import tuning
from ...autoresearch import TEXT_COLUMN
from ...definition.evaluator import Evaluator
from ...definition.model import Definition
from ...hub.retries import report_waits
from ...hub.storage import Location
from ...output.shards import Written, write_pieces
from ...output.staging import StagedUnit
from ...source.decode import fetch_unit
from ...source.files import ByteCounter, ParquetFooter, Source, SourceSpec, reopen
from ...source.scan import Scan
from ...source.units import Unit
from ..unit import keep, stage

TOKEN_ENV = "HF_TOKEN"
# What a worker process keeps between tasks, so that its memory stays bounded on a cluster that
# serves many conversions: a few reopened sources and DuckDB connections, and a few files' footers.
WORKER_CACHE = 4
WORKER_FOOTERS = 8
SAY_TIMEOUT_S = 10  # how long a task waits for the messages actor to take a line

_K = TypeVar("_K")
_V = TypeVar("_V")

# reopened once per worker process and token: footers read once
_worker_sources: dict[tuple[SourceSpec, str | None], Source] = {}
_worker_evaluators: dict[str, Evaluator] = {}  # one DuckDB connection per definition per worker process
_worker_messages: dict[str, Any] = {}  # handles to the messages actors of the runs this worker spoke in


def run_unit(spec: SourceSpec, definition: Definition, columns: list[str], schema: pa.Schema, token: str | None,
             knobs: tuning.Tuning, messages: str, unit: Unit, footer: ParquetFooter, location: Location | None,
             data: dict[int, bytes], staging: tuple[int, int] | None = None
             ) -> tuple[pa.Table | StagedUnit, tuple[int, int, int, str]]:  # fmt: skip
    """One task (two returns): the unit's kept rows (with `staging`, a shuffled conversion's seed
    and pile bits: staged, a StagedUnit), and (their count, bytes fetched, requests, node id).
    `data` is the unit's planned ranges, as a `Fetch` actor fetched them; `footer` is the
    unit's file's, as the driver read it: no worker reads a footer again; `location`, where
    its bytes are, as the driver resolved it, for a read outside the plan (decode.RangeFile):
    no worker resolves the file while it is fresh; `knobs`, the driver's tuning (tuning.py), in
    effect here too. What the task has to say while it runs (a rate-limit wait) goes to the
    run's `messages` actor."""
    import ray

    _use_token(token)
    tuning.use(knobs)  # the driver's: its timeouts, retries and pieces hold in every task
    if (spec, token) not in _worker_sources:
        _evict(_worker_sources, lambda _: None)
        _worker_sources[spec, token] = reopen(spec)
    cached = _worker_sources[spec, token]
    if unit.file.path not in cached.footers and len(cached.footers) >= WORKER_FOOTERS:
        cached.footers.clear()  # units come in file order: the footers of files behind are done with
    cached.footers[unit.file.path] = footer
    cached.adopt(unit.file, location)
    # Its own counter (what this task fetched), sharing the worker's cached footers and reader.
    source = dataclasses.replace(cached, counter=ByteCounter())
    evaluator = _worker_evaluators.get(definition.sha256)
    if evaluator is None:
        _evict(_worker_evaluators, lambda old: old.close())
        evaluator = _worker_evaluators[definition.sha256] = Evaluator(definition)
    with report_waits(lambda text: say(messages, text)):
        scan = Scan(source, columns, schema)
        if staging is None:
            # Ray's serializer has no string views (Ray 2.60: "Unhandled Arrow array type"),
            # which decode.py reads text as: the kept texts travel as one large_string copy.
            kept = keep(evaluator, scan, unit, data)
            kept = kept.cast(pa.schema([pa.field(TEXT_COLUMN, pa.large_string())]))
        else:
            kept = stage(evaluator, scan, unit, data, *staging, compress=True)
    node = ray.get_runtime_context().get_node_id()
    return kept, (kept.num_rows, source.counter.bytes, source.counter.requests, node)


class Fetch:
    """A Ray actor (threaded, no CPU of its own), one a node: fetches units' planned byte
    ranges for the run's tasks, on the streams of the sources it reopened (source/fetch.py).

    The streams adapt to what the node's link gives, however many tasks run, and are shared
    by every unit the node fetches; how many units are being fetched at once is the driver's
    to say (scheduling.Window, as on the local engine). Each call blocks one of the actor's
    threads until its unit has arrived."""

    def __init__(self) -> None:
        self._sources: dict[SourceSpec, Source] = {}
        self._lock = threading.Lock()
        self._messages = ""  # the name of the messages actor of the run it serves now
        self._waits = report_waits(lambda text: say(self._messages, text))
        self._waits.__enter__()  # for the actor's life: its threads wait out rate limits together

    def fetch(self, spec: SourceSpec, token: str | None, knobs: tuning.Tuning, messages: str, unit: Unit,
              location: Location | None) -> tuple[dict[int, bytes], tuple[int, int, int]]:  # fmt: skip
        """(two returns) the unit's pieces, {start: bytes}, and (bytes fetched, requests, the
        source's streams limit now). The token comes with each call, through the object store,
        never with the actor's creation: an actor restarted by Ray is created again from its
        arguments, which must then still be there. So do the driver's tuning `knobs` and the
        run's `messages` actor: the actor serves one run at a time, and outlives it (driver.Fetchers)."""
        with self._lock:
            _use_token(token)  # the same for every call of a run
            tuning.use(knobs)  # the driver's, as in the tasks
            self._messages = messages
            if spec not in self._sources:
                _evict(self._sources, lambda _: None)
                self._sources[spec] = reopen(spec)
            cached = self._sources[spec]
        cached.adopt(unit.file, location)
        source = dataclasses.replace(cached, counter=ByteCounter())  # this unit's counts, the shared streams
        data = fetch_unit(source, unit)
        return data, (source.counter.bytes, source.counter.requests, cached.fetcher.streams.limit)

    def ready(self) -> bool:
        """Answers once the actor is up (driver.Fetchers asks before a run takes it up again)."""
        return True


def _use_token(token: str | None) -> None:
    """Read by reopen() and the messages, as in the driver. A worker serves many conversions:
    one without a token must not use, or be told about, the token of one before it."""
    if token:
        os.environ[TOKEN_ENV] = token
    else:
        os.environ.pop(TOKEN_ENV, None)


def encode_shard(slices: list[tuple[int, int]], row_group_size: int, *tables: pa.Table) -> tuple[bytes, Written, str]:
    """One task: a shard's parquet bytes from (offset, rows) slices of the units' kept rows, what
    went into them, and the node id. The same writer as the local engine's, fed the same slices:
    the same bytes."""
    import ray

    pieces = (table.slice(offset, rows) for table, (offset, rows) in zip(tables, slices, strict=True))
    with tempfile.TemporaryDirectory(prefix="shardsql-shard-") as folder:
        path = Path(folder) / "shard.parquet"
        written = write_pieces(pieces, path, row_group_size)
        data = path.read_bytes()
    return data, written, ray.get_runtime_context().get_node_id()


def _evict(cache: dict[_K, _V], close: Callable[[_V], None]) -> None:
    """Make room in a worker's cache (a long-lived cluster serves many conversions): oldest first."""
    while len(cache) >= WORKER_CACHE:
        close(cache.pop(next(iter(cache))))


def say(messages: str, text: str) -> None:
    """From a task: pass `text` to the driver, through the run's actor named `messages`. The
    first task with something to say starts it (most runs have nothing to say, and an actor
    costs a worker process). Waits until the actor has it (the task is about to wait anyway),
    so that it is said before the task's result arrives; a message that cannot be delivered
    is dropped, never a reason to fail the task."""
    import ray

    try:
        actor = _worker_messages.get(messages)
        if actor is None:
            # Kept here: Ray removes a (non-detached) actor once no handle to it is left. The
            # driver removes it at the end of the run; a worker keeps a few runs' at most.
            _evict(_worker_messages, lambda _: None)
            options = {"name": messages, "get_if_exists": True, "num_cpus": 0}
            actor = _worker_messages[messages] = ray.remote(Messages).options(**options).remote()
        ray.get(actor.say.remote(text), timeout=SAY_TIMEOUT_S)
    except Exception:
        pass


class Messages:
    """A Ray actor: lines the tasks have to say while they run (a rate-limit wait of minutes
    must not look like a hang), taken by the driver for its progress display."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.append(text)

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines
