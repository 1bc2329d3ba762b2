"""Shared fixtures: a real local Hub stand-in, generated source data, a clean environment.

Nothing here reaches the network: the Hub is a `HubStandIn` on 127.0.0.1, spoken to by the
real huggingface_hub client.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

# huggingface_hub 2.4 reports to {HF_ENDPOINT at import}/api/agent-harnesses on its first
# request; tests must never reach out, so it is off before anything imports the client.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FILES, ROW_GROUP, ROWS_PER_FILE, semantic_text

from shardsql import tuning
from shardsql.hub import retries
from shardsql.standin.hub import HubStandIn
from shardsql.standin.samples import LAYOUTS, write_sample


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's Hub settings, token, definitions folder or nanochat folder."""
    for name in (
        "HF_ENDPOINT",
        "HF_TOKEN",
        "SHARDSQL_SQL_DIR",
        "HF_HUB_OFFLINE",
        "NANOCHAT_BASE_DIR",
        "SHARDSQL_COMMAND",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(retries, "_reported_until", {})  # each test hears its own waits


@pytest.fixture(autouse=True)
def tune():
    """Tuning knobs (tuning.py) for this test: `tune(unit_bytes=1)`; all restored after. Every
    test starts with the same retry logic and shorter waits: the suite must stay fast."""
    before = tuning.use(dataclasses.replace(tuning.current(), retry_base_s=0.01, rate_limit_margin_s=0.05,
                                            read_timeout_s=2.0))  # fmt: skip

    def change(**knobs):
        tuning.use(dataclasses.replace(tuning.current(), **knobs))

    yield change
    tuning.use(before)


@pytest.fixture
def loopback_only(monkeypatch):
    """Nothing leaves the machine: a host name other than the loopback's fails to resolve, and
    huggingface_hub's telemetry is off (2.4.0 fetches an "agent harnesses" registry from
    constants.ENDPOINT, huggingface.co, on a process's first request unless it is)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    resolve = socket.getaddrinfo

    def loopback(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test tried to reach {host}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback)


@pytest.fixture
def hub(monkeypatch):
    """A running Hub stand-in, with HF_ENDPOINT pointing at it, redirecting file reads to storage as the Hub does."""
    with HubStandIn(token="hf_test_secret_token") as stand_in:
        stand_in.redirect_files = True  # as the Hub does: /resolve/ answers 302 to a signed storage URL
        monkeypatch.setenv("HF_ENDPOINT", stand_in.url)
        yield stand_in


@pytest.fixture
def hub_dataset(hub, tmp_path):
    """Serve a generated sample of a built-in dataset at its real repo, path and revision.

    Returns the local folder holding the sample's parquet files, in the order the seed reads them.
    """

    def make(dataset: str, files: int = 3, rows_per_file: int = 3000, row_group_size: int = 500, **kw) -> Path:
        repo, revision, sub, *_ = LAYOUTS[dataset]
        root = tmp_path / "repos" / dataset
        write_sample(dataset, root, files, rows_per_file, row_group_size)
        hub.add_dataset(repo, root, revision=revision, **kw)
        return root / sub

    return make


@pytest.fixture
def small_units(tune):
    """Units of about 64 KiB instead of 8 MiB: small test files then split into many units
    (many requests, many batches), as real files of gigabytes do."""
    tune(unit_bytes=64 << 10)


@pytest.fixture
def source_folder(tmp_path, tune):
    """Three files of 7-row row groups; `meta` (a struct) is not the first column. Every
    row group is its own unit."""
    tune(unit_bytes=1)
    folder = tmp_path / "src"
    folder.mkdir()
    for f in range(FILES):
        ids = list(range(f * ROWS_PER_FILE, (f + 1) * ROWS_PER_FILE))
        table = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "meta": pa.array([{"lang": "en" if i % 3 else "fr", "body": f"body of {i}"} for i in ids]),
                "text": pa.array([semantic_text(i) for i in ids], pa.string()),
                "score": pa.array([i / 7 for i in ids], pa.float64()),
            }
        )
        pq.write_table(table, folder / f"part-{f}.parquet", row_group_size=ROW_GROUP)
    return folder
