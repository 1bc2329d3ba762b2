"""The Ray engine on a real local Ray cluster of two nodes, against the local engine.

The shards must be byte for byte the local engine's, for the built-in definitions read
through the Hub stand-in (which Ray's workers reach on 127.0.0.1), also when a worker is
killed mid-task (Ray runs the task again) and when the run is interrupted and resumed.

One cluster and one stand-in serve the whole module: starting Ray costs seconds, and
workers are reused across tests only while their environment (HF_ENDPOINT) is the same.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # workers use this Python (see run/ray/adapter.py)
# grpcio's default epoll1 poller sometimes aborts Ray Client's server on this project's CI-like
# sandboxes ("Check failed: next_worker->state == KICKED"); the portable poller does not.
os.environ.setdefault("GRPC_POLL_STRATEGY", "poll")
ray = pytest.importorskip("ray")
# Under `-n` (pytest-xdist, as ./dev test runs), every test here runs in one worker: the
# module's cluster is started once, and its CPUs are this machine's.
pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.xdist_group("ray")]

from helpers import Events, StopAfter  # noqa: E402

from shardsql.commands.convert import convert  # noqa: E402
from shardsql.commands.options import ConvertOptions  # noqa: E402
from shardsql.definition import catalog  # noqa: E402
from shardsql.progress import Progress  # noqa: E402
from shardsql.standin.hub import HubStandIn  # noqa: E402
from shardsql.standin.samples import LAYOUTS, write_sample  # noqa: E402

NODES, CPUS_PER_NODE = 2, 1
OBJECT_STORE_BYTES = 100 << 20
# Every built-in dataset definition (mixtures are not): filters on a score, a struct, other text columns.
DATASETS = sorted(d.name for d in catalog.load_datasets())
TOKEN, GATED_REPO = "hf_ray_test_secret_token", "org/gated-pubmed"
SHARDS, ROWS_PER_SHARD = 4, 600  # 3,000 kept rows of 6,000: several tasks, and the run stops early


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray cluster of two simulated nodes on this machine, joined by this process."""
    from ray.cluster_utils import Cluster

    node = {"num_cpus": CPUS_PER_NODE, "object_store_memory": OBJECT_STORE_BYTES}
    head = {**node, "include_dashboard": False, "ray_client_server_port": _free_port()}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    cluster.client_port = head["ray_client_server_port"]
    for _ in range(NODES - 1):
        cluster.add_node(**node)
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    _stop_client_servers(cluster.address)


def _stop_client_servers(address: str) -> None:
    """Ray Client's per-client server outlives the cluster for about 30 s, on a fixed port
    (23000 up), which a test run started meanwhile would share. Stop this cluster's."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            continue
        if b"--mode=specific-server" in args and f"--address={address}".encode() in args:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


@pytest.fixture(scope="module")
def ray_hub(tmp_path_factory):
    """The Hub stand-in serving a sample of each dataset at its real repo and revision."""
    with HubStandIn(token=TOKEN) as stand_in:
        stand_in.redirect_files = True  # as the Hub does: /resolve/ answers 302 to a signed storage URL
        for dataset in DATASETS:
            repo, revision, *_ = LAYOUTS[dataset]
            root = tmp_path_factory.mktemp(dataset)
            write_sample(dataset, root, files=2, rows_per_file=3000, row_group_size=250)
            stand_in.add_dataset(repo, root, revision=revision)
            if dataset == "pubmed-abstract":
                stand_in.add_dataset(GATED_REPO, root, revision=revision, gated=True)
        yield stand_in


@pytest.fixture
def hub_env(ray_hub, ray_cluster, monkeypatch, small_units):
    monkeypatch.setenv("HF_ENDPOINT", ray_hub.url)
    ray_hub.before_response, ray_hub.budgets, ray_hub.redirect_files = None, {}, True
    yield ray_hub
    ray_hub.before_response, ray_hub.budgets, ray_hub.redirect_files = None, {}, True
    ray_hub.play_network(None)


def run(dataset, cache, engine="ray", workers=None, shuffle=True, **kw):
    options = ConvertOptions(
        num_shards=SHARDS, rows_per_shard=ROWS_PER_SHARD, cache_dir=cache, engine=engine, workers=workers,
        shuffle=shuffle,
    )  # fmt: skip
    return convert(catalog.resolve(dataset), options, **kw)


def hashes(result) -> list[tuple[str, str]]:
    return [(s.name, s.sha256) for s in result.shards]


class Counts(Progress):
    """The progress display's last figures."""

    def update(self, read, kept, fetched, used=None):
        super().update(read, kept, fetched, used)
        self.last = (read, kept, fetched, used)


@pytest.mark.parametrize("dataset", DATASETS)
def test_ray_gives_the_local_engines_bytes(hub_env, tmp_path, dataset):
    local_progress, ray_progress = Counts(), Counts()
    local = run(dataset, tmp_path / "local", engine="local", workers=2, progress=local_progress)
    hub_env.reset_counters()
    on_ray = run(dataset, tmp_path / "ray", progress=ray_progress)
    assert hashes(on_ray) == hashes(local) and len(local.shards) == SHARDS + 1
    # The validation shard's texts are counted by the task that compressed it: never read back.
    assert on_ray.shards[-1].text_bytes == local.shards[-1].text_bytes is not None
    assert on_ray.val_tokens == local.val_tokens > 0
    # Progress adds up the tasks' rows and bytes (and those of the units run): the same as the
    # local engine's, since the workers read no footer (the driver hands them the ones it read). Nothing is read twice.
    assert ray_progress.last == local_progress.last and ray_progress.shards == SHARDS + 1
    reads = [(path.split("?")[0], span) for method, path, span, *_ in hub_env.requests
             if method == "GET" and path.startswith("/__storage/")]  # fmt: skip
    assert len(reads) == len(set(reads)), "a byte range was read twice (a footer by each worker?)"
    resolves = hub_env.requests_per_file("resolve")
    assert resolves and set(resolves.values()) == {1}, f"each file resolved once, by the driver: {resolves}"
    record = json.loads(on_ray.manifest_path.read_text())
    engine = record["engine"]
    assert engine["name"] == "ray" and engine["workers"] == NODES * CPUS_PER_NODE
    assert engine["tasks"] >= 2 and 1 <= engine["nodes"] <= NODES
    local_record = json.loads(local.manifest_path.read_text())
    assert record["rows"] == local_record["rows"]  # the same rows read: both stop at the same unit
    assert local_record["engine"] == {"name": "local", "workers": 2, "tasks": engine["tasks"], "nodes": 1}


def test_a_mixture_with_val_from_on_ray_gives_the_local_engines_bytes(hub_env, tmp_path):
    """The built-in mixture, its validation shard from a third dataset: the same bytes on either engine."""
    results = {}
    for engine in ("local", "ray"):
        options = ConvertOptions(num_shards=SHARDS, rows_per_shard=ROWS_PER_SHARD, cache_dir=tmp_path / engine,
                                 engine=engine, workers=2 if engine == "local" else None,
                                 val_from="pubmed-abstract")  # fmt: skip
        results[engine] = convert(catalog.resolve("edu-code-mix"), options)
    assert hashes(results["ray"]) == hashes(results["local"]) and len(results["ray"].shards) == SHARDS + 1
    record = json.loads(results["ray"].manifest_path.read_text())
    assert record["engine"]["name"] == "ray"
    assert [c["name"] for c in record["components"]] == ["pubmed-abstract", "fineweb-edu-high", "github-code-python"]


def test_a_no_shuffle_mixture_on_ray_gives_the_local_engines_bytes(hub_env, tmp_path):
    """A --no-shuffle mixture interleaves its components' rows here, whichever engine ran their
    units: Ray's kept rows are fetched from its object store, and the shards are the local engine's."""
    results = {}
    for engine in ("local", "ray"):
        options = ConvertOptions(num_shards=SHARDS, rows_per_shard=ROWS_PER_SHARD, cache_dir=tmp_path / engine,
                                 engine=engine, workers=2 if engine == "local" else None, shuffle=False)  # fmt: skip
        results[engine] = convert(catalog.resolve("edu-code-mix"), options)
    assert hashes(results["ray"]) == hashes(results["local"]) and len(results["ray"].shards) == SHARDS + 1
    record = json.loads(results["ray"].manifest_path.read_text())
    assert record["engine"]["name"] == "ray" and record["order"]["order"] == "source"


def _pid_on_port(port: int) -> int | None:
    """The process holding a TCP socket whose local port is `port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # the process is gone
        for fd in fds:
            # One fd at a time: a busy process (a Ray worker) closes fds between the listing and
            # the readlink, and one that vanished must not hide the process's others.
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
            except OSError:
                continue
    return None


class KillReader:
    """A stand-in hook: the first data read from a Ray worker kills that worker (SIGKILL),
    mid-fetch, before it gets an answer. The readers are the run's fetch actors."""

    def __init__(self):
        self.killed: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, handler) -> bool:
        if handler.server.role != "storage" or not handler.headers.get("Range"):
            return False
        with self._lock:
            if self.killed:
                return False
            pid = _pid_on_port(handler.client_address[1])
            if pid is None or pid == os.getpid():
                return False  # the driver's footer reads
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)
        handler.close_connection = True
        return True  # no answer: the reader is dead


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker's pid through /proc")
def test_a_fetch_actor_killed_mid_fetch_is_restarted_and_the_bytes_are_the_same(hub_env, tmp_path):
    local = run("fineweb-edu-high", tmp_path / "local", engine="local", workers=2)
    hub_env.before_response = killer = KillReader()
    on_ray = run("fineweb-edu-high", tmp_path / "ray")
    assert len(killer.killed) == 1, "a fetch actor was killed mid-fetch"
    assert _dead(killer.killed[0])
    assert hashes(on_ray) == hashes(local)


def _dead(pid: int) -> bool:
    """Whether process `pid` has ended: gone, or a zombie its parent (Ray's raylet) has not
    reaped yet, which a loaded machine may leave for a while."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


class FaultWorkerRead:
    """A stand-in hook: storage answers the first data read from a Ray worker (not the driver's
    footer reads) with a fault of `kind` (HubStandIn.storage_fault)."""

    def __init__(self, hub, kind: str):
        self.hub, self.kind, self.pid = hub, kind, None
        self._lock = threading.Lock()

    def __call__(self, handler) -> bool:
        if handler.server.role != "storage" or not handler.headers.get("Range"):
            return False
        with self._lock:
            if self.pid is not None:
                return False
            pid = _pid_on_port(handler.client_address[1])
            if pid is None or pid == os.getpid():
                return False
            self.pid = pid
            self.hub.storage_fault(self.kind)  # taken by this very request, as it goes on
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the reader's pid through /proc")
@pytest.mark.parametrize("kind, status", [("access-denied", 403), ("stale-416", 416)])
def test_storage_faults_met_by_a_fetch_actor_are_retried_and_the_bytes_are_the_same(hub_env, tmp_path, kind, status):
    local = run("fineweb-edu-high", tmp_path / "local", engine="local", workers=2)
    hub_env.reset_counters()
    hub_env.before_response = fault = FaultWorkerRead(hub_env, kind)
    on_ray = run("fineweb-edu-high", tmp_path / "ray")
    assert fault.pid is not None, "a Ray worker read from storage"
    assert [t for t in hub_env.transfers if t.kind == "storage" and t.status == status], f"storage answered {status}"
    assert hashes(on_ray) == hashes(local)


class KillTask:
    """Kills (SIGKILL) the first Ray worker seen running the task `name`: Ray titles a worker's
    process `ray::<task>` while it runs that task."""

    def __init__(self, name: str):
        self.title = f"ray::{name}".encode()
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self):
        while not self._stop.is_set() and not self.killed:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        title = handle.read(64)
                except OSError:
                    continue
                if title.startswith(self.title):
                    os.kill(int(pid), signal.SIGKILL)
                    self.killed.append(int(pid))
                    return


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
@pytest.mark.parametrize("task", ["run_unit", "encode_shard", "Fetch.fetch"])
def test_a_worker_killed_mid_task_is_retried_and_the_bytes_are_the_same(hub_env, tmp_path, task):
    """Fetch.fetch: the fetch actor killed while it fetches a unit (a threaded actor's process is
    titled by the call it runs). Ray restarts it and the driver asks the lost fetches again once it
    answers: Ray's own retries came at once, while it still took the dead actor for alive, and a
    run of `.ci/run` failed on all three refused ("temporarily unavailable")."""
    # In order: a shuffled conversion compresses its shards on the driver (README, Scaling out).
    local = run("fineweb-edu", tmp_path / "local", engine="local", workers=2, shuffle=False)
    with KillTask(task) as killer:
        on_ray = run("fineweb-edu", tmp_path / "ray", shuffle=False)
    assert len(killer.killed) == 1, f"a worker was killed while it ran {task}"
    assert hashes(on_ray) == hashes(local)


class HoldReads:
    """A stand-in hook: holds the Ray workers' storage reads (not the driver's footer reads)
    until `at_once` of them are held together, then lets them all go; if that many do not
    come within `patience_s`, it gives up and holds none. `most`: the most held at once."""

    def __init__(self, at_once: int, patience_s: float = 60):
        self.at_once, self.patience_s, self.most, self.released = at_once, patience_s, 0, False
        self._held = 0
        self._cv = threading.Condition()

    def __call__(self, handler) -> bool:
        if handler.server.role != "storage" or not handler.headers.get("Range"):
            return False
        if _pid_on_port(handler.client_address[1]) in (None, os.getpid()):
            return False
        with self._cv:
            if not self.released:
                self._held += 1
                self.most = max(self.most, self._held)
                if self._held >= self.at_once:
                    self.released = True
                    self._cv.notify_all()
                elif not self._cv.wait_for(lambda: self.released, timeout=self.patience_s):
                    self.released = True  # gave up: `most` says how many came
                    self._cv.notify_all()
                self._held -= 1
        return False  # answered as usual


def _fresh_fetch_actors() -> None:
    """The next run starts fetch actors of its own. The actors an earlier test's run left for the
    next (driver.Fetchers.take) keep what that run ended with: its streams (fewer after its 429s:
    the rate-limit test refuses every fourth read), and its sources with their files' storage
    URLs, still fresh (a test that turns the stand-in's redirects off would read no /resolve/)."""
    from shardsql.run.ray.driver import Fetchers

    with Fetchers._spare_lock:
        spare, Fetchers._spare = Fetchers._spare, None
    if spare is not None:
        spare.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tells the driver's reads from /proc")
def test_ray_fetches_as_many_ranges_at_once_as_its_streams_allow_not_as_its_tasks(tune, hub_env, tmp_path):
    """The fetch actors make as many requests at once as their streams allow (8 to start with),
    whatever the workers: a task waits for its bytes, holding no CPU. Before, each task fetched
    its own unit: at most two tasks a worker, one read for each of its unit's ranges (two here),
    so one worker made four at most, and the stand-in would wait in vain for eight."""
    from shardsql.source.fetch import START_STREAMS

    local = run("fineweb-edu", tmp_path / "local", engine="local", workers=2, shuffle=False)
    _fresh_fetch_actors()
    tune(unit_bytes=16 << 10)  # a row group a unit: many units, all of them wanted
    hub_env.before_response = held = HoldReads(START_STREAMS)
    on_ray = run("fineweb-edu", tmp_path / "ray", workers=1, shuffle=False)
    assert hashes(on_ray) == hashes(local)
    assert held.most == START_STREAMS, f"at most {held.most} reads at once"


def test_ray_tasks_and_fetch_actors_use_the_drivers_tuning(tune, hub_env, tmp_path):
    """The driver's tuning knobs (tuning.py) hold in its tasks and fetch actors, as in the local
    engine's threads: with pieces of 8 KiB, Ray reads the same units in the same pieces."""

    def storage_reads():
        return sorted((path.split("?")[0], span) for method, path, span, *_ in hub_env.requests
                      if method == "GET" and path.startswith("/__storage/"))  # fmt: skip

    tune(piece_bytes=8 << 10)  # units of 64 KiB (small_units): ranges of several pieces each
    hub_env.reset_counters()
    local = run("fineweb-edu", tmp_path / "local", engine="local", workers=2, shuffle=False)
    local_reads = storage_reads()
    hub_env.reset_counters()
    on_ray = run("fineweb-edu", tmp_path / "ray", workers=2, shuffle=False)
    assert hashes(on_ray) == hashes(local)
    assert len(local_reads) > 2 * json.loads(local.manifest_path.read_text())["engine"]["tasks"], "pieces, not ranges"
    assert storage_reads() == local_reads


@pytest.mark.parametrize("first", ["ray", "local"])
def test_an_interrupted_run_resumes_on_ray_to_identical_shards(hub_env, tmp_path, first):
    local = run("pubmed-abstract", tmp_path / "local", engine="local", workers=1)
    with pytest.raises(KeyboardInterrupt):
        run("pubmed-abstract", tmp_path / "ray", engine=first, progress=StopAfter(2))
    assert (tmp_path / "ray" / ".shardsql-staging" / "shard_00000.parquet").exists()
    resumed = run("pubmed-abstract", tmp_path / "ray")
    assert hashes(resumed) == hashes(local)


def test_ray_address_names_the_cluster_to_join(hub_env, ray_cluster, tmp_path, monkeypatch):
    local = run("cosmopedia-v2", tmp_path / "local", engine="local", workers=2)
    ray.shutdown()  # this process is no longer connected: the run joins the cluster at RAY_ADDRESS
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    said = io.StringIO()
    try:
        on_ray = run("cosmopedia-v2", tmp_path / "ray", workers=1, progress=Progress(stream=said))
        assert not ray.is_initialized(), "the run leaves the cluster it joined"
    finally:
        ray.init(address=ray_cluster.address, log_to_driver=False, logging_level="WARNING")
    assert hashes(on_ray) == hashes(local)
    assert json.loads(on_ray.manifest_path.read_text())["engine"]["workers"] == 1
    assert f"Ray: joining the cluster at RAY_ADDRESS={ray_cluster.address}..." in said.getvalue()
    assert f"Ray: {NODES} nodes with {NODES * CPUS_PER_NODE} CPUs; this run uses 1 of them." in said.getvalue()


def test_without_ray_address_a_run_starts_its_own_ray_and_stops_it(tune, hub_env, tmp_path):
    """`convert --engine ray` with no RAY_ADDRESS, in a process of its own (this one has joined
    the test cluster): it starts a local Ray, says so, and stops it."""
    import subprocess

    # The subprocess's units are the default size: a shuffle's draw (its slots) depends on it.
    tune(unit_bytes=8 << 20)

    local = run("pubmed-abstract", tmp_path / "local", engine="local", workers=2)
    args = ["convert", "pubmed-abstract", "--engine", "ray", "--workers", "2", "--num-shards", str(SHARDS),
            "--rows-per-shard", str(ROWS_PER_SHARD), "--cache-dir", str(tmp_path / "ray"), "--yes"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "shardsql", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "Ray: starting a local Ray with 2 CPUs for this run (set RAY_ADDRESS to use a cluster)..." in said
    assert "Ray: 1 node with 2 CPUs; this run uses 2 of them." in said
    assert "Token authentication is enabled" not in said  # Ray's notice about the Ray it starts, not for our users
    record = json.loads((tmp_path / "ray" / "data" / "manifest.json").read_text())
    assert [(s["name"], s["sha256"]) for s in record["shards"]] == hashes(local)
    assert record["engine"]["name"] == "ray"


def test_ray_client_joins_a_cluster_by_its_ray_url(hub_env, ray_cluster, tmp_path, monkeypatch):
    """RAY_ADDRESS=ray://host:port (Ray Client, as the README shows): the same bytes, the
    compressed shards coming back through the client."""
    local = run("github-code-python", tmp_path / "local", engine="local", workers=2)
    ray.shutdown()
    monkeypatch.setenv("RAY_ADDRESS", f"ray://127.0.0.1:{ray_cluster.client_port}")
    try:
        on_ray = run("github-code-python", tmp_path / "ray")
        assert not ray.is_initialized(), "the run leaves the cluster it joined"
    finally:
        monkeypatch.delenv("RAY_ADDRESS")  # or ray.init would take the ray:// URL and join as a client again
        ray.init(address=ray_cluster.address, log_to_driver=False, logging_level="WARNING")
    assert hashes(on_ray) == hashes(local)
    record = json.loads(on_ray.manifest_path.read_text())["engine"]
    assert record["name"] == "ray" and record["workers"] == NODES * CPUS_PER_NODE


def test_a_whole_source_definition_runs_locally_under_ray(hub_env, tmp_path):
    path = tmp_path / "sorted.sql"
    path.write_text(
        "-- description: sorted\n-- source: hf://datasets/uiyunkim-hub/pubmed-abstract@~parquet/default/train/*.parquet\n\n"
        "SELECT abstract AS text FROM source WHERE abstract IS NOT NULL ORDER BY pmid DESC\n"
    )
    definition = catalog.load_file(path)
    options = ConvertOptions(num_shards=2, rows_per_shard=500, cache_dir=tmp_path / "c", engine="ray")
    result = convert(definition, options)
    assert json.loads(result.manifest_path.read_text())["engine"]["name"] == "local"


def test_the_command_line_runs_on_ray(hub_env, tmp_path):
    from click.testing import CliRunner

    from shardsql.cli import cli

    args = ["convert", "github-code-python", "--engine", "ray", "--num-shards", "2", "--rows-per-shard", "500"]
    result = CliRunner().invoke(cli, [*args, "--cache-dir", str(tmp_path), "--yes", "--quiet"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert record["engine"]["name"] == "ray" and len(record["shards"]) == 3


def test_a_gated_dataset_on_ray_and_the_token_is_in_no_ray_log(hub_env, ray_cluster, tmp_path, monkeypatch):
    path = tmp_path / "gated.sql"
    path.write_text(
        f"-- description: gated\n-- source: hf://datasets/{GATED_REPO}@~parquet/default/train/*.parquet\n\n"
        "SELECT abstract AS text FROM source WHERE length(abstract) >= 50\n"
    )
    monkeypatch.setenv("HF_TOKEN", TOKEN)

    def run_gated(cache, engine):
        options = ConvertOptions(num_shards=3, rows_per_shard=500, cache_dir=cache, engine=engine, workers=2)
        return convert(catalog.load_file(path), options)

    assert hashes(run_gated(tmp_path / "ray", "ray")) == hashes(run_gated(tmp_path / "local", "local"))
    session = Path(ray_cluster.head_node.get_session_dir_path())
    leaks = [p for p in session.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert not leaks, leaks


def test_rate_limits_met_in_ray_tasks_are_waited_out_and_said(hub_env, tmp_path):
    local = run("fineweb-edu", tmp_path / "local", engine="local", workers=2)
    _fresh_fetch_actors()  # not ones that still hold a storage URL for these files: they would read no /resolve/
    # A mirror without storage redirects: each range is a /resolve/, so the workers' reads run into it.
    hub_env.redirect_files = False
    # The budget's windows counted in requests, not seconds: every fourth /resolve/ is refused
    # (a 1 s wait), however fast the machine. Timed by the clock, a loaded machine's tasks asked
    # fewer than 3 a second and none was refused.
    calls = itertools.count()
    hub_env.limit_rate(resolvers=3, window_s=1, clock=lambda: next(calls) / 4)
    events = Events()
    on_ray = run("fineweb-edu", tmp_path / "ray", progress=events)
    assert hashes(on_ray) == hashes(local)
    assert hub_env.budgets["resolvers"].refused > 0
    # (Whether it ends with the hint about HF_TOKEN depends on a saved login on this machine.)
    said = [i for i, line in enumerate(events.lines) if line.startswith("rate-limited") and "(in a Ray task)" in line]
    assert said, "\n".join(events.lines)
    last_shard = max(i for i, line in enumerate(events.lines) if line.startswith("shard_"))
    assert said[0] < last_shard, "said while the run goes on, not after it"


def test_what_a_task_says_reaches_the_driver_while_the_run_goes_on(ray_cluster):
    """A rate-limit wait in a task is said through the run's messages actor (run/ray/tasks.say),
    which the first such task starts; the driver passes it on within a second, not at the end."""
    import time

    from shardsql.run.ray.driver import RayExecutor
    from shardsql.run.ray.tasks import say

    said: list[str] = []
    with RayExecutor(2, said.append) as ray_run:
        ray.get(ray.remote(say).remote(ray_run.messages, "rate-limited by the Hub: waiting 9 s"))
        deadline = time.monotonic() + 10
        while "rate-limited by the Hub: waiting 9 s (in a Ray task)" not in said and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "rate-limited by the Hub: waiting 9 s (in a Ray task)" in said, said
    assert said.count("rate-limited by the Hub: waiting 9 s (in a Ray task)") == 1


def test_a_worker_does_not_keep_a_token_for_the_next_conversion(hub_env, tmp_path, monkeypatch):
    """On a shared cluster a worker serves many conversions: one run without a token sends
    none, even on workers that served a run with one."""
    path = tmp_path / "gated.sql"
    path.write_text(
        f"-- description: gated\n-- source: hf://datasets/{GATED_REPO}@~parquet/default/train/*.parquet\n\n"
        "SELECT abstract AS text FROM source WHERE length(abstract) >= 50\n"
    )
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    options = ConvertOptions(num_shards=3, rows_per_shard=500, cache_dir=tmp_path / "gated", engine="ray")
    convert(catalog.load_file(path), options)
    assert any(auth == f"Bearer {TOKEN}" for _, _, auth in hub_env.authorizations)
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))  # no saved login either
    hub_env.reset_counters()
    run("pubmed-abstract", tmp_path / "public")
    assert hub_env.authorizations and not [a for a in hub_env.authorizations if a[2]], "a token was sent"


def test_ray_tasks_refuse_null_texts_naming_the_row_group(hub_env, tmp_path):
    from shardsql.errors import ConversionError

    # The samples' text has NULLs; a definition that keeps them must fail in the task, as locally.
    path = tmp_path / "keeps-nulls.sql"
    source = "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet"
    path.write_text(f"-- description: keeps NULL texts\n-- source: {source}\n\nSELECT text FROM source\n")
    options = ConvertOptions(num_shards=SHARDS, rows_per_shard=ROWS_PER_SHARD, cache_dir=tmp_path / "c", engine="ray")
    with pytest.raises(ConversionError, match=r"000_00000\.parquet, row group \d+: the definition keeps \d+ NULL"):
        convert(catalog.load_file(path), options)
    assert not (tmp_path / "c" / "data").exists()


def test_the_next_run_of_the_process_takes_up_the_fetch_actors_and_a_failed_run_leaves_none(hub_env, tmp_path):
    """A fetch actor's start costs seconds (a worker process and its imports): the same
    process's next run on the cluster takes up the last run's actors, and gets the same bytes;
    a run that fails closes them."""
    from shardsql.errors import ConversionError
    from shardsql.run.ray.driver import Fetchers

    first = run("fineweb-edu", tmp_path / "first")
    actors = Fetchers._spare
    assert actors is not None and actors.actors, "the run left its fetch actors for the next"
    second = run("fineweb-edu", tmp_path / "second")
    assert Fetchers._spare is actors, "the next run fetched with them and left them again"
    assert hashes(second) == hashes(first)

    path = tmp_path / "keeps-nulls.sql"  # fails in a task: the samples' text has NULLs
    source = "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet"
    path.write_text(f"-- description: keeps NULL texts\n-- source: {source}\n\nSELECT text FROM source\n")
    options = ConvertOptions(num_shards=SHARDS, rows_per_shard=ROWS_PER_SHARD, cache_dir=tmp_path / "c", engine="ray")
    with pytest.raises(ConversionError, match="NULL"):
        convert(catalog.load_file(path), options)
    assert Fetchers._spare is None
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actors.actors[0].ready.remote(), timeout=60)


def test_shards_are_compressed_in_ray_tasks_not_by_the_driver(hub_env, tmp_path, monkeypatch):
    """Compressing is most of a conversion's CPU: under Ray the driver only cuts shards and
    writes the bytes its tasks compressed, so a cluster's cores do the work. (In order: a
    shuffled conversion on Ray compresses its shards on the driver, as the README says.)"""
    import polars as pl

    local = run("fineweb-edu-high", tmp_path / "local", engine="local", workers=2, shuffle=False)

    def driver_compresses(*args, **kwargs):
        raise AssertionError("the driver compressed a shard")

    # Polars' parquet writer in this process only, not in Ray's workers: whatever path the
    # driver took to compress a shard would end here.
    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", driver_compresses)
    on_ray = run("fineweb-edu-high", tmp_path / "ray", shuffle=False)
    assert hashes(on_ray) == hashes(local) and len(on_ray.shards) == SHARDS + 1
    assert not list((tmp_path / "ray").rglob("*.partial"))


def test_a_shuffled_conversion_on_ray_stages_in_tasks_and_fetches_no_row_to_the_driver(hub_env, tmp_path, monkeypatch):
    """Each unit is staged in its own task (fingerprints, piles, zstd: output/staging.stage_unit):
    the driver gets its keys and compressed texts, never its uncompressed rows (issue 15), and
    stages nothing itself. The bytes are the local engine's."""
    import pyarrow as pa

    from shardsql.output import staging
    from shardsql.run import unit

    local = run("fineweb-edu", tmp_path / "local", engine="local", workers=2)
    real_get, fetched = ray.get, []

    def get(refs, *args, **kwargs):
        result = real_get(refs, *args, **kwargs)
        for value in result if isinstance(result, list | tuple) else [result]:
            if isinstance(value, pa.Table | pa.RecordBatch | pa.Array | pa.ChunkedArray):
                raise AssertionError("the driver fetched a unit's rows from the object store")
            fetched.append(type(value).__name__)
        return result

    def driver_stages(*args, **kwargs):
        raise AssertionError("the driver staged a unit's rows itself")

    # In this process only (the driver), not in Ray's workers.
    monkeypatch.setattr(ray, "get", get)
    monkeypatch.setattr(staging, "stage_unit", driver_stages)
    monkeypatch.setattr(unit, "stage_unit", driver_stages)
    on_ray = run("fineweb-edu", tmp_path / "ray")
    assert hashes(on_ray) == hashes(local) and len(on_ray.shards) == SHARDS + 1
    assert "StagedUnit" in fetched


@pytest.mark.parametrize("offset, length", [(0, None), (0, 3), (2, None), (2, 3), (7, 5), (10, None), (12, 4)])
def test_remote_rows_slice_as_a_table_does(offset, length):
    import pyarrow as pa

    from shardsql.run.ray.driver import RemoteRows

    unit = pa.table({"text": [str(i) for i in range(10)]})
    sliced = RemoteRows("ref", 1, 9).slice(offset, length)  # rows 1..9 of the unit's kept rows
    expected = unit.slice(1).slice(offset, length)
    assert sliced.num_rows == expected.num_rows
    assert unit.slice(sliced.offset, sliced.num_rows).equals(expected)
