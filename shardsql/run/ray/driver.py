"""The Ray engine (`--engine ray`): a row-by-row definition's units run as Ray tasks on a cluster.

The units are the local engine's (run/local.py): the source's units in order, each
unit's kept rows computed independently, the results handed on in unit order, so the
shard writer cuts exactly the same shards. Only where a unit runs changes: here one Ray
task a unit, on any node of the cluster at RAY_ADDRESS, or of a Ray started for the run.

* A unit's bytes are fetched by the run's fetch actor on a node (tasks.Fetch, one a node
  with CPUs, units dealt in turn), as pieces on that actor's streams (source/fetch.py: as
  many at once as the link rewards, whatever the number of cores), into the object store.
  The driver resolves each file's storage location (hub/storage.py: once per file per URL
  lifetime, not once per worker) and passes it with the unit. Which units are being fetched
  and how many are fetched ahead is said by the same `Window` as the local engine's
  (run/scheduling.py), over the streams the actors last reported. Starting an actor costs
  seconds, so they outlive the run: the same process's next run on the cluster takes them
  up again (Fetchers.take).
* A unit's task starts once its bytes are there (Ray runs a task when its arguments are
  ready; no CPU waits for the network). It reopens the source in its worker from a
  `SourceSpec` (URL, commit, files; the Hub endpoint comes through Ray's runtime_env on a
  cluster it joins, and with the environment on a local Ray it starts; the token through the
  object store: Ray writes a runtime_env, env_vars included, into its logs and the workers'
  command lines, so the token is never put there). It gets its file's
  footer from the driver, which read it to split the units (a worker reading every footer
  again would cost the Hub two requests per file per worker), decodes the unit, runs the
  definition with a DuckDB `Evaluator` of its own, and returns the kept rows and their
  count; the driver adds up the bytes and requests fetched for the progress display. For a shuffled
  conversion the task also stages its rows (run/unit.py: fingerprints, piles, zstd), and
  returns that StagedUnit instead: the driver gets each unit's keys and compressed texts and
  only appends them to its piles; no uncompressed row reaches it.
* The driver keeps a bounded window of tasks in flight, in unit order, and starts one only
  while the source rows in flight are fewer than the rows still wanted, as the local engine
  does. A task's kept rows stay in the object store: the driver gets only their count
  (`RemoteRows`), which is all it needs to cut the shards.
* Each shard is compressed by a task of its own (`encode_shard`) from the slices of the
  units' rows that make it up, with the same Polars writer as locally, so the bytes are the
  same. Compressing is about two thirds of a conversion's CPU: done by the driver, it would
  bound what a cluster can add. The driver fetches one compressed shard at a time, writes it
  to the staging folder, and checks it as the local writer does.
* A worker that dies mid-task is retried by Ray (`max_retries`): a unit's result depends
  only on the unit, and a shard's only on its slices, so a retried task returns the same. A
  fetch actor that dies is restarted by Ray, and the driver asks its lost fetches again once
  it answers (`_run`'s `finish`), each unit up to MAX_RETRIES times. Ray would retry them at
  once, before it has noticed the death: every retry was refused in a run of the tests.
* What a task has to say while it runs (a rate-limit wait) goes to a small actor that the
  first such task starts (tasks.say), which the driver reads twice a second for its
  progress display.

Whole-source definitions (ORDER BY, DISTINCT, ...) are not distributed: convert.py runs
them locally. Ray Data's writers are not used: their rows per file are hints and their
writes are not ordered, and autoresearch needs exact shards.

The tasks themselves are in tasks.py. Ray is an optional extra (`pip install
'shardsql[ray]'`): it is loaded by adapter.py, only when a conversion asks for it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ... import tuning
from ...definition.model import Definition
from ...errors import ConversionError, ShardsqlError, describe
from ...hub import client
from ...hub.storage import Location
from ...output.shards import Written
from ...output.staging import StagedUnit
from ...source.fetch import START_STREAMS
from ...source.footers import read_footer
from ...source.scan import Scan
from ...source.units import Unit, units
from ..executor import RunRecord, available_cores
from ..scheduling import KeepRatio, Window, in_order
from .adapter import load_ray, quiet_token_notice
from .tasks import Fetch, encode_shard, run_unit

ENGINE = "ray"
# Passed to every task's worker through runtime_env when set here: where the Hub is. Not the
# token: Ray logs a runtime_env whole (runtime_env_agent.log) and puts it on worker command lines.
# A local Ray that the run starts needs none: its processes inherit this one's environment, and
# a runtime_env would keep its tasks off the workers it starts with (they would wait for new ones).
PASSED_ENV = ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
MAX_RETRIES = 3  # a task whose worker or node died is run again this many times
# Units fetched and waiting for a worker CPU, beyond one a worker: a task's start costs a
# round trip to the cluster, so one waits behind each running task (locally, `ahead_units`: tuning.py).
AHEAD_PER_WORKER = 1
# Bytes in flight beyond the workers' (scheduling.BYTES_PER_WORKER): here the fetched bytes wait
# in the object store, not in the driver's memory, and the tasks stall now and then (a worker
# process starting, a shard's compression holding a CPU for a second or more), which a small
# window passes on to the link. On the bench's modelled link (2 CPUs, main job, two runs each,
# interleaved) the run took 52.7 and 47.4 s with the workers' 48 MB alone, its read rate swinging
# between 19 and 27 MB/s from one second to the next, and 47.1 and 45.6 s with 64 MB more, mostly
# at 24 to 26 MB/s; three units ahead a worker instead, at 48 MB, did nothing (49.2 s, one run).
LINK_BYTES = 64 << 20
TASK_CPUS = 1  # a task runs one DuckDB thread and one decoder
# A fetch actor's threads: each waits for one unit's pieces (the Window bounds how many units
# are being fetched: up to `fetch_ahead` x MAX_STREAMS pieces, fewer units), the streams bound the requests.
FETCH_THREADS = 128
# Shards being compressed at once: each holds its kept rows in the object store (about 300 MB
# for a full FineWeb-Edu shard) until it is written. Enough to keep the cluster busy (writing
# is two thirds of the work), few enough that the object store need not spill.
MAX_SHARDS_IN_FLIGHT = 16
READY_TIMEOUT_S = 30  # fetch actors left by a run that do not answer in this time are replaced
READY_EVERY_S = 0.1  # how often an actor that is "temporarily unavailable" is asked again
MESSAGES_EVERY_S = 0.5  # how often the driver passes on what the tasks said
MESSAGES_TIMEOUT_S = 5  # an actor that does not answer in this time is asked again later


def _connect(ray: Any, workers: int | None, say: Callable[[str], None]) -> bool:
    """Join the cluster at RAY_ADDRESS (or the Ray this process already joined), or start a
    local one with `workers` CPUs. True if this run started it and must shut it down."""
    if ray.is_initialized():
        say("Ray: using the cluster this process has already joined.")
        return False
    address = os.environ.get("RAY_ADDRESS") or "local"
    options: dict[str, Any] = {"address": address}
    if not address.startswith("ray://"):  # Ray Client hands other arguments on to the cluster's own init
        options |= {"log_to_driver": False, "logging_level": "WARNING"}
    if address == "local":
        cpus = workers or available_cores()
        # No dashboard (a web server nobody asked for), and Ray's default object store (30% of
        # memory): it holds the kept rows of the shards being compressed.
        options |= {"num_cpus": cpus, "include_dashboard": False}
        say(f"Ray: starting a local Ray with {cpus} CPUs for this run (set RAY_ADDRESS to use a cluster)...")
    else:
        say(f"Ray: joining the cluster at RAY_ADDRESS={address}...")
    try:
        with quiet_token_notice():  # Ray says at length that the Ray it starts has token authentication on: it should
            ray.init(**options)
    except Exception as exc:
        where = f"the Ray cluster at RAY_ADDRESS={address}" if address != "local" else "a local Ray"
        raise ConversionError(f"cannot start or join {where}: {describe(exc)}") from exc
    return True


def _env() -> dict[str, str]:
    """The Hub settings workers need, from this process."""
    return {name: os.environ[name] for name in PASSED_ENV if os.environ.get(name)}


class RemoteRows:
    """Rows [offset, offset + num_rows) of a unit's kept rows, held in the object store: the
    shard writer's `Rows` (output/shards.py), which it cuts without reading them; only this
    engine's `encode` (a Ray task) reads them."""

    def __init__(self, ref: Any, offset: int, num_rows: int):
        self.ref, self.offset, self.num_rows = ref, offset, num_rows

    def slice(self, offset: int = 0, length: int | None = None) -> RemoteRows:
        offset = min(offset, self.num_rows)
        rows = self.num_rows - offset if length is None else min(length, self.num_rows - offset)
        return RemoteRows(self.ref, self.offset + offset, rows)


@dataclass
class Fetching:
    """A unit's fetch by a fetch actor: its pieces (`data`) and (bytes, requests, streams)
    (`meta`) in the object store, `meta`'s future, whose done() the Window reads, and the
    file's `location` the fetch was given."""

    data: Any
    meta: Any
    future: Future[tuple[int, int, int]]
    location: Location | None

    def done(self) -> bool:
        return self.future.done()


class Fetchers:
    """The fetch actors (tasks.Fetch), one on each node with CPUs, dealt units in turn.
    `limit`: the streams they last said they allow, together (what scheduling.Window reads).

    An actor's start costs seconds (a worker process and its imports), so the actors outlive
    the run that started them: the next run of this process on the same cluster (the same
    Ray job, nodes and Hub settings) takes them up again (`take`, then `keep`), streams and
    all. A run that fails, or that shuts its own Ray down, closes them instead. Runs at once
    in one process each take their own: an actor says what it hears through one run's messages."""

    _spare: Fetchers | None = None  # the actors the last run of this process left, if any
    _spare_lock = threading.Lock()

    def __init__(self, ray: Any, key: tuple[Any, ...], options: dict[str, Any]):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.key = key
        actor = ray.remote(Fetch)
        # Ray restarts a dead actor; its calls in flight fail, and the driver asks them again (`_run`).
        options |= {"num_cpus": 0, "max_concurrency": FETCH_THREADS, "max_restarts": MAX_RETRIES,
                    "max_task_retries": 0}  # fmt: skip

        # Soft: a node that is gone by the time its actor starts is no reason to fail the run.
        def on(node: str) -> dict[str, Any]:
            return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)}

        nodes = key[1]
        self.actors = [actor.options(**options, **on(node)).remote() for node in nodes]
        if not self.actors:  # no node says it has CPUs (yet): one actor, wherever Ray puts it
            self.actors = [actor.options(**options).remote()]
        self.limits = [START_STREAMS] * len(self.actors)
        self._turn = itertools.cycle(range(len(self.actors)))
        self._ray = ray

    @classmethod
    def take(cls, ray: Any, env: dict[str, str]) -> Fetchers:
        """Fetch actors for a run: the ones the last run left, if they serve the same Ray job,
        nodes and Hub settings (`env`, passed to them through runtime_env), else new ones."""
        nodes = tuple(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0)
        key = (ray.get_runtime_context().get_job_id(), nodes, tuple(sorted(env.items())))
        with cls._spare_lock:
            spare, cls._spare = cls._spare, None
        if spare is not None and spare.key == key and spare.alive():
            return spare
        if spare is not None:
            spare.close()
        return cls(ray, key, {"runtime_env": {"env_vars": env}} if env else {})

    def alive(self) -> bool:
        """Whether every actor answers within READY_TIMEOUT_S. One that has just died is
        "temporarily unavailable" until Ray notices and restarts it: asked again until then.
        One that Ray stopped restarting (MAX_RETRIES) would fail the run that took it up."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                self._ray.get([actor.ready.remote() for actor in self.actors], timeout=READY_TIMEOUT_S)
                return True
            except self._ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(READY_EVERY_S)
            except Exception:
                return False

    def keep(self) -> None:
        """Leave the actors for this process's next run (`take`); any left before are closed."""
        with Fetchers._spare_lock:
            spare, Fetchers._spare = Fetchers._spare, self
        if spare is not None:
            spare.close()

    @property
    def limit(self) -> int:
        return sum(self.limits)

    def fetch(self, spec: Any, token: Any, knobs: Any, messages: str, unit: Unit,
              location: Location | None) -> Fetching:  # fmt: skip
        """Start fetching `unit` on the next node's actor (`spec`, `token` and `knobs`: the
        object-store copies of the source's spec, the token and the tuning knobs; `messages`:
        the name of the run's messages actor)."""
        turn = next(self._turn)
        call = self.actors[turn].fetch.options(num_returns=2)
        data, meta = call.remote(spec, token, knobs, messages, unit, location)
        fetching = Fetching(data, meta, meta.future(), location)
        fetching.future.add_done_callback(lambda done: self._heard(turn, done))
        return fetching

    def _heard(self, turn: int, done: Future[tuple[int, int, int]]) -> None:
        if not done.cancelled() and done.exception() is None:
            self.limits[turn] = done.result()[2]

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)


class RayExecutor:
    """One conversion on Ray (executor.Executor): joins (or starts) the cluster on entry and
    leaves it on exit; in between, `row_by_row` runs the units as tasks and `encode`
    compresses shards in tasks."""

    def __init__(self, workers: int | None, say: Callable[[str], None] = lambda _: None):
        self.requested, self.say = workers, say  # --workers; None: the cluster's CPUs
        self.workers = workers or 0  # the run's, once entered (_prepare)
        self.record = RunRecord(ENGINE, workers or 0)
        self.ray: Any = None
        self.started = False
        self._one_shard = threading.Lock()  # the driver holds one compressed shard at a time
        self._stop = threading.Event()
        self.messages = f"shardsql-messages-{uuid.uuid4().hex}"  # the name of the run's Messages actor
        self._actor: Any = None
        self._relay = threading.Thread(target=self._relay_messages, name="shardsql-ray-messages", daemon=True)
        self._fetch: Fetchers | None = None

    def __enter__(self) -> RayExecutor:
        self.ray = load_ray()
        self.started = _connect(self.ray, self.requested, self.say)
        try:
            self._prepare()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _prepare(self) -> None:
        """Size the run to the cluster, say so, define the tasks, and start relaying messages."""
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        self.workers = self.record.workers = self.requested or max(1, cpus)
        nodes = sum(1 for node in self.ray.nodes() if node.get("Alive"))
        self.say(f"Ray: {nodes} node{'s' * (nodes != 1)} with {cpus} CPUs; this run uses {self.workers} of them.")
        options: dict[str, Any] = {"num_cpus": TASK_CPUS, "max_retries": MAX_RETRIES, "retry_exceptions": False}
        if env := self._worker_env():
            options["runtime_env"] = {"env_vars": env}
        self._unit_task = self.ray.remote(run_unit).options(num_returns=2, **options)
        self._shard_task = self.ray.remote(encode_shard).options(**options)
        self._relay.start()

    def __exit__(self, *exc: object) -> None:
        if self._fetch is not None:
            if self.started or (exc and exc[0] is not None):
                self._fetch.close()  # with the Ray it started, or after a failure: nothing to keep
            else:
                self._fetch.keep()
        self._stop.set()
        if self._relay.is_alive():
            self._relay.join()
        if self._actor is not None and not self.started:  # on a cluster this process stays joined to
            with contextlib.suppress(Exception):
                self.ray.kill(self._actor)
        if self.started:
            self.ray.shutdown()

    def _relay_messages(self) -> None:
        """Say what the tasks said, every MESSAGES_EVERY_S seconds and once more at the end."""
        while True:
            stopping = self._stop.wait(MESSAGES_EVERY_S)
            for line in dict.fromkeys(self._take_messages()):  # workers waiting together say it once
                self.say(f"{line} (in a Ray task)")
            if stopping:
                return

    def _take_messages(self) -> list[str]:
        try:
            if self._actor is None:
                self._actor = self.ray.get_actor(self.messages)
            lines: list[str] = self.ray.get(self._actor.take.remote(), timeout=MESSAGES_TIMEOUT_S)
            return lines
        except Exception:  # no actor yet (no task has said anything), or not reachable now: try later
            return []

    @property
    def shards_in_flight(self) -> int:
        return max(2, min(MAX_SHARDS_IN_FLIGHT, self.workers // 2))

    def row_by_row(
        self, scan: Scan, definition: Definition, rows_wanted: Callable[[], int], *, drawn: Iterator[Unit] | None = None
    ) -> Generator[tuple[Unit, RemoteRows], None, None]:
        """(unit, its kept rows as RemoteRows) in order, each unit a Ray task; the units are
        `drawn` when given, else the source's from `scan.start`. The same units, order and
        stopping rule as the local engine's."""
        return self._run(scan, definition, rows_wanted, drawn, None)

    def stage_units(
        self,
        scan: Scan,
        definition: Definition,
        rows_wanted: Callable[[], int],
        *,
        drawn: Iterator[Unit],
        seed: int,
        pile_bits: int,
        compress: bool = False,
    ) -> Generator[tuple[Unit, StagedUnit], None, None]:
        """As `row_by_row`, each unit's kept rows staged by its task: the StagedUnit's keys and
        compressed texts, fetched here (a task compresses every text, `compress` or not: no
        uncompressed row travels to the driver)."""
        return self._run(scan, definition, rows_wanted, drawn, (seed, pile_bits))

    def _run(self, scan: Scan, definition: Definition, rows_wanted: Callable[[], int], drawn: Iterator[Unit] | None,
             staging: tuple[int, int] | None) -> Generator[tuple[Unit, Any], None, None]:  # fmt: skip
        ray = self.ray
        # The task's arguments that every unit shares, in the object store once: the token and this
        # process's tuning knobs (tuning.py) among them, which tasks and fetch actors put in effect.
        settings = (scan.source.spec(), definition, scan.columns, scan.schema, client.token(), tuning.current())
        shared = [ray.put(value) for value in settings]
        fetchers = self._fetchers()
        shared_fetch = (shared[0], shared[4], shared[5], self.messages)  # a fetch's spec, token, knobs, messages
        ratio = KeepRatio()
        window = Window(self.workers, fetchers, rows_wanted, ratio, ahead=AHEAD_PER_WORKER * self.workers,
                        link_bytes=LINK_BYTES, staging=staging is not None)  # fmt: skip
        footers: dict[str, Any] = {}  # the current file's footer, in the object store

        def fetch(todo: Iterator[Unit]) -> Iterator[tuple[Unit, Fetching]]:
            # A unit's fetch starts when the window admits it (as scheduling.fetching does locally).
            for unit in todo:
                # Where the file's bytes are: resolved here once per URL lifetime, not by every worker.
                location = scan.source.location(unit.file)
                yield unit, fetchers.fetch(*shared_fetch, unit, location)

        def submit(item: tuple[Unit, Fetching]) -> tuple[Any, Fetching, Unit]:
            unit, fetching = item
            if unit.file.path not in footers:  # units come file by file (a shuffled draw: any order)
                footers.clear()
                footers[unit.file.path] = ray.put(read_footer(scan.source, unit.file))
            task = self._unit_task.remote(*shared, self.messages, unit, footers[unit.file.path], fetching.location,
                                          fetching.data, staging)  # fmt: skip
            return task, fetching, unit

        # Stopped early (shards full, or an error): the tasks still pending are not needed.
        cancel = lambda handle: ray.cancel(handle[0][1], force=False)  # noqa: E731

        def finish(handle: tuple[Any, Fetching, Unit]) -> tuple[Any, tuple[int, int, int, str]]:
            lost = 0  # times its fetch was lost
            while True:
                (kept, meta), fetching, unit = handle
                try:
                    fetched, requests, _ = ray.get(fetching.meta)
                    rows, more_bytes, more_requests, node = ray.get(meta)
                    kept = kept if staging is None else ray.get(kept)
                    return kept, (rows, fetched + more_bytes, requests + more_requests, node)
                except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
                    # Its fetch actor died mid-fetch, or the fetched bytes were lost with their node:
                    # fetched again once the actors answer (Ray restarts them), up to MAX_RETRIES times.
                    lost += 1
                    if lost > MAX_RETRIES or not fetchers.alive():
                        raise _failure(ray, exc) from exc
                    handle = submit((unit, fetchers.fetch(*shared_fetch, unit, fetching.location)))
                except ray.exceptions.RayError as exc:
                    raise _failure(ray, exc) from exc

        most_rows = window.admission.most_rows
        todo = units(scan.source, scan.columns, scan.start, most_rows=most_rows) if drawn is None else drawn
        for (unit, _), (kept, (rows, fetched, requests, node)) in in_order(fetch(todo), submit, finish, window, cancel):
            ratio.add(unit.rows, rows)
            scan.source.counter.add(fetched, requests)
            self.record.tasks += 1
            self.record.nodes.add(node)
            self.record.rows_read += unit.rows
            yield unit, (RemoteRows(kept, 0, rows) if staging is None else kept)

    def _worker_env(self) -> dict[str, str]:
        """The Hub settings to pass to the run's workers: none where this run started the Ray
        (its workers inherit this process's environment), else `_env()`'s."""
        return {} if self.started else _env()

    def _fetchers(self) -> Fetchers:
        """The run's fetch actors, taken up by its first row-by-row pass."""
        if self._fetch is None:
            self._fetch = Fetchers.take(self.ray, self._worker_env())
        return self._fetch

    def encode(self, pieces: Iterator[RemoteRows], path: Path, row_group_size: int) -> Written:
        """Write the shard made of `pieces` to `path`, compressed by a task, once every piece is known."""
        remote = list(pieces)
        if not sum(piece.num_rows for piece in remote):
            return Written(0, 0)
        slices = [(piece.offset, piece.num_rows) for piece in remote]
        ref = self._shard_task.remote(slices, row_group_size, *[piece.ref for piece in remote])
        with self._one_shard:
            data, written, node = _get(self.ray, ref)
            try:
                path.write_bytes(data)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        self.record.nodes.add(node)
        return Written(*written)

    def to_table(self, rows: RemoteRows) -> pa.Table:
        """The rows, fetched here from the object store (a mixture's interleave reads them)."""
        return _get(self.ray, rows.ref).slice(rows.offset, rows.num_rows)


def _get(ray: Any, ref: Any) -> Any:
    """A task's result; a shardsql error raised in the task is raised here as itself (one line)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        raise _failure(ray, exc) from exc


def _failure(ray: Any, exc: Exception) -> ShardsqlError:
    """What a task's failure (a Ray error) is to the user: a shardsql error raised in the task
    as itself, anything else as a ConversionError that says how to resume."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        if isinstance(exc.cause, ShardsqlError):
            return exc.cause
        return ConversionError(f"a Ray task failed: {describe(exc.cause or exc)}")
    return ConversionError(
        f"a Ray task failed after {MAX_RETRIES} retries: {describe(exc)}. Run the same command again to "
        "resume from the last complete shard."
    )
