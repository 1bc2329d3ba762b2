"""`shardsql demo`: the whole conversion path, offline, in a temporary folder.

It generates a sample shaped like FineWeb-Edu (its lengths and scores: `standin/samples.py`),
serves it from the local Hub stand-in (the same one the tests use), points `HF_ENDPOINT` at
it and runs the real `fineweb-edu` conversion through huggingface_hub; then the
`edu-code-mix` mixture (FineWeb-Edu with Python code), keeping the first conversion's
validation shard (`--val-from live`) so that the two runs' val_bpb would be comparable. Both
go into a cache folder laid out for the consumer asked for (`--for`: `autoresearch/data/` or
`nanochat/base_data_climbmix/` in the demo's folder). A newcomer sees every stage work with
no network, and the user's real cache folders (`~/.cache/autoresearch`, nanochat's) are
never touched.

`shardsql demo --serve` (`serving` here) instead serves a generated sample of every
built-in dataset's repo (SERVE_FILES x SERVE_ROWS_PER_FILE rows each, realistic texts)
until Ctrl-C, so that every command in the README can be tried offline from another
terminal with `HF_ENDPOINT` pointing at the stand-in. Both redirect file reads to a storage
host with signed URLs, as the Hub does.

`--slow-link` makes the stand-in play the slow link of a machine far from the Hub's CDN
(`SLOW_LINK`: 100 ms round trips, 4 MB/s a connection, 25 MB/s for the whole link) and redirect
file reads to storage, so that anyone can watch a conversion on one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn

from ..consumers import DEFAULT, Consumer
from ..definition.catalog import resolve
from ..hub.client import disable_telemetry
from ..progress import Progress
from ..standin.hub import HubStandIn
from ..standin.hub.network import SLOW_LINK
from ..standin.samples import LAYOUTS, write_sample
from .convert import ConvertResult, convert
from .options import LIVE, ConvertOptions

DEMO_DATASET = "fineweb-edu"
DEMO_MIXTURE = "edu-code-mix"  # fineweb-edu-high (the same repo) and github-code-python
DEMO_FILES = 3  # of realistic texts (samples.py): FineWeb-Edu's 12,000 rows hold ~55M characters
DEMO_ROWS_PER_FILE = 4000
DEMO_ROW_GROUP = 500
DEMO_SHARDS = 2
DEMO_ROWS_PER_SHARD = 1024  # the demo reads about a third of the source: it shows that reads are lazy
# per repo, for `demo --serve`: 8,000 rows a dataset of realistic texts (FineWeb-Edu's hold ~37M
# characters; all repos ~90 MB of parquet), generated in about 2 s; enough for `explain` and
# `sql`, and for `convert` with small sizes (README: `--num-shards 2 --rows-per-shard 1000`)
SERVE_FILES = 2
SERVE_ROWS_PER_FILE = 4000
REDIRECT = "the Hub's redirect of file reads to a storage host (signed URLs)"
SLOW_LINK_PLAYS = f"a slow link: {SLOW_LINK.describe()}; and {REDIRECT}"


@dataclass
class DemoResult:
    result: ConvertResult
    mixture: ConvertResult  # the mixture, with the first conversion's validation shard kept
    bytes_served: int  # by the first conversion (the mixture's reads come after)
    source_bytes: int  # of the first conversion's source files
    endpoint: str
    workdir: Path
    temporary: bool  # the workdir is a temporary folder the demo made (not --workdir)


@dataclass
class Served:
    """The stand-in serving generated data: where, what, and from which folder."""

    endpoint: str
    workdir: Path
    repos: dict[str, str] = field(default_factory=dict)  # repo -> revision
    plays: str = ""  # what the stand-in plays, in words
    hub: HubStandIn | None = None  # the stand-in itself (its counters, its settings)


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _play_slow_link(hub: HubStandIn) -> str:
    """Make `hub` play SLOW_LINK, reads redirected to storage; say so."""
    hub.redirect_files = True
    hub.play_network(SLOW_LINK)
    return SLOW_LINK_PLAYS


def run_demo(workdir: Path | None = None, *, progress: Progress | None = None, slow_link: bool = False,
             consumer: Consumer = DEFAULT) -> DemoResult:  # fmt: skip
    """Run the demo in `workdir` (a new temporary folder if None) and return what it did.

    `slow_link`: the stand-in plays SLOW_LINK (see the module's docstring). The shards go to
    `consumer`'s data folder in `workdir/<its name>`."""
    temporary = workdir is None
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="shardsql-demo-"))
    repo, revision = LAYOUTS[DEMO_DATASET][0], LAYOUTS[DEMO_DATASET][1]
    repo_dir = workdir / "hub" / repo
    paths = write_sample(DEMO_DATASET, repo_dir, DEMO_FILES, DEMO_ROWS_PER_FILE, DEMO_ROW_GROUP, realistic=True)
    code_repo, code_revision = LAYOUTS["github-code-python"][0], LAYOUTS["github-code-python"][1]
    write_sample("github-code-python", workdir / "hub" / code_repo, DEMO_FILES, DEMO_ROWS_PER_FILE,
                 DEMO_ROW_GROUP, realistic=True)  # fmt: skip
    options = ConvertOptions(
        num_shards=DEMO_SHARDS, rows_per_shard=DEMO_ROWS_PER_SHARD, consumer=consumer, cache_dir=workdir / consumer.name
    )
    with HubStandIn() as hub:
        hub.redirect_files = True  # as the Hub does: file reads go to a storage host, with signed URLs
        if slow_link:
            _play_slow_link(hub)
        hub.add_dataset(repo, repo_dir, revision=revision)
        hub.add_dataset(code_repo, workdir / "hub" / code_repo, revision=code_revision)
        # HF_TOKEN is cleared: a real token must never be sent to the stand-in. Telemetry is
        # off: huggingface_hub would otherwise report to the real Hub, and the demo is offline.
        with _env("HF_ENDPOINT", hub.url), _env("HF_TOKEN", ""), _env("HF_HUB_DISABLE_TELEMETRY", "1"):
            disable_telemetry()
            result = convert(resolve(DEMO_DATASET), options, progress)
            served = hub.bytes_served
            # The mixture replaces it, keeping its validation shard: the runs' val_bpb compare.
            mixed = dataclasses.replace(options, val_from=LIVE, skip_backup=True)
            mixture = convert(resolve(DEMO_MIXTURE), mixed, progress)
        endpoint = hub.url
    return DemoResult(result, mixture, served, sum(p.stat().st_size for p in paths), endpoint, workdir, temporary)


@contextmanager
def serving(workdir: Path, slow_link: bool = False, realistic: bool = True) -> Iterator[Served]:
    """Serve a generated sample of every built-in dataset's Hub repo from `workdir` while the block runs.

    `slow_link`: the stand-in plays SLOW_LINK (see the module's docstring). `realistic`: the
    real sets' lengths and form; else the tests' short texts (samples.py)."""
    with HubStandIn() as hub:
        hub.redirect_files = True  # as the Hub does: file reads go to a storage host, with signed URLs
        plays = _play_slow_link(hub) if slow_link else REDIRECT
        served = Served(hub.url, workdir, plays=plays, hub=hub)
        for dataset, (repo, revision, *_rest) in LAYOUTS.items():
            if repo in served.repos:  # several definitions read one repo (fineweb-edu, fineweb-edu-high)
                continue
            folder = workdir / "hub" / repo
            write_sample(dataset, folder, SERVE_FILES, SERVE_ROWS_PER_FILE, DEMO_ROW_GROUP, realistic=realistic)
            hub.add_dataset(repo, folder, revision=revision)
            served.repos[repo] = revision
        yield served


def serve_until_stopped(workdir: Path | None, *, slow_link: bool, say: Callable[[str], None],
                        ready: Callable[[Served, Path], None]) -> None:  # fmt: skip
    """`demo --serve`: generate the samples in `workdir` (a temporary folder, removed after, when
    None), serve them until Ctrl-C or SIGTERM (a service manager, `kill`), which stop it cleanly.
    `ready` is told what is served (to print how to use it); `say`, what is happening."""

    def stop(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    folder = Path(tempfile.mkdtemp(prefix="shardsql-serve-")) if workdir is None else workdir
    say("Generating a sample of every built-in dataset ...")
    try:
        with serving(folder, slow_link) as served:
            ready(served, folder)
            say("Serving until Ctrl-C.")
            sys.stdout.flush()
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        say("\nStopped serving.")
    finally:
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    if workdir is None:
        say(f"Removed {folder}.")
