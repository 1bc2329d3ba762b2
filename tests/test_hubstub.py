"""The Hub stand-in, exercised through the real huggingface_hub client (no mocks, no network)."""

import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi, HfFileSystem, constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session

from shardsql.standin.hub import HubStandIn

TOKEN = "hf_stand_in_token"
REPO = "org/name"
PARQUET_REF = "refs/convert/parquet"
TRAIN = f"datasets/{REPO}/default/train/0000.parquet"  # in PARQUET_REF
TABLE = pa.table({"id": list(range(3000)), "text": [f"row {i} " * (i % 7) for i in range(3000)]})


pytestmark = pytest.mark.usefixtures("loopback_only")  # conftest: nothing leaves the machine


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    main, converted = tmp_path / "main", tmp_path / "converted"
    (main / "data").mkdir(parents=True)
    (main / "README.md").write_text("# A dataset\n")
    (main / "data" / "train.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(500)))
    (main / "data" / "blob.bin").write_bytes(random.Random(0).randbytes(200_000))  # several write chunks
    for split, rows in [("train", TABLE), ("train", TABLE.slice(0, 10)), ("test", TABLE.slice(0, 100))]:
        out = converted / "default" / split
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows, out / f"{len(list(out.iterdir())):04d}.parquet", row_group_size=500)
    return {"main": main, PARQUET_REF: converted}


@pytest.fixture
def hub(folders):
    with HubStandIn(token=TOKEN) as hub:
        hub.shas = {rev: hub.add_dataset(REPO, folder, revision=rev) for rev, folder in folders.items()}
        hub.add_dataset("org/gated", folders["main"], gated=True)
        yield hub


@pytest.fixture
def fs(hub) -> HfFileSystem:
    return HfFileSystem(endpoint=hub.url, token=False, skip_instance_cache=True)


def local(folders, rev: str, path: str) -> bytes:
    return (folders[rev] / path).read_bytes()


def resolve_gets(hub) -> list[tuple]:
    return [r for r in hub.requests if r[0] == "GET" and "/resolve/" in r[1]]


def test_dataset_info_sha_for_branch_ref_and_sha(hub, folders):
    api = HfApi(endpoint=hub.url, token=False)
    main_sha, ref_sha = hub.shas["main"], hub.shas[PARQUET_REF]
    assert re.fullmatch("[0-9a-f]{40}", main_sha) and main_sha != ref_sha
    assert api.dataset_info(REPO).sha == main_sha
    assert api.dataset_info(REPO, revision="main").sha == main_sha
    assert api.dataset_info(REPO, revision=PARQUET_REF).sha == ref_sha
    assert api.dataset_info(REPO, revision=ref_sha).sha == ref_sha
    assert "/revision/refs%2Fconvert%2Fparquet" in hub.requests[2][1]
    info = api.dataset_info(REPO, files_metadata=True)
    assert {s.rfilename: s.size for s in info.siblings}["README.md"] == len("# A dataset\n")
    with HubStandIn() as other:  # deterministic: same content, same sha
        assert other.add_dataset(REPO, folders["main"]) == main_sha


def test_listing_never_downloads_and_reports_sizes(hub, fs, folders):
    found = fs.glob(f"datasets/{REPO}/default/train/*.parquet", revision=PARQUET_REF, detail=True)
    assert sorted(found) == [f"datasets/{REPO}@{PARQUET_REF}/default/train/{n:04d}.parquet" for n in (0, 1)]
    for name, info in found.items():
        assert info["size"] == len(local(folders, PARQUET_REF, name.split("@")[1].split("/", 3)[3]))
    assert fs.ls(f"datasets/{REPO}", detail=False) == [f"datasets/{REPO}/README.md", f"datasets/{REPO}/data"]
    assert fs.find(f"datasets/{REPO}/data") == [f"datasets/{REPO}/data/{n}" for n in ("blob.bin", "train.jsonl")]
    assert fs.info(f"datasets/{REPO}/data/blob.bin")["size"] == 200_000
    assert fs.info(f"datasets/{REPO}/data")["type"] == "directory"
    assert fs.exists(f"datasets/{REPO}/README.md") and not fs.exists(f"datasets/{REPO}/nope.md")
    assert hub.bytes_served == 0 and not resolve_gets(hub)


def test_tree_pagination(hub, fs):
    hub.tree_page_size, hub.tree_page_size_expanded = 2, 1
    api = HfApi(endpoint=hub.url, token=False)
    tree = list(api.list_repo_tree(REPO, recursive=True, repo_type="dataset", revision=PARQUET_REF))
    assert sorted(e.path for e in tree) == [
        "default",
        "default/test",
        "default/test/0000.parquet",
        "default/train",
        "default/train/0000.parquet",
        "default/train/0001.parquet",
    ]
    assert sum("cursor=" in r[1] for r in hub.requests) == 2
    expanded = list(api.list_repo_tree(REPO, "data", expand=True, repo_type="dataset"))
    assert [e.last_commit.oid for e in expanded] == [hub.shas["main"]] * 2
    assert len(fs.find(f"datasets/{REPO}", revision=PARQUET_REF)) == 3


def test_paths_info(hub, fs):
    api = HfApi(endpoint=hub.url, token=False)
    infos = api.get_paths_info(REPO, ["README.md", "data", "missing"], repo_type="dataset", expand=True)
    assert [(type(i).__name__, i.path) for i in infos] == [("RepoFile", "README.md"), ("RepoFolder", "data")]
    assert infos[0].size == len("# A dataset\n") and infos[0].security.safe
    assert fs.info(f"datasets/{REPO}/data/train.jsonl", refresh=True)["size"] > 0
    assert hub.requests[-1][0] == "POST" and "/paths-info/main" in hub.requests[-1][1]


@pytest.mark.parametrize("revision_in_path", ["refs%2Fconvert%2Fparquet", PARQUET_REF])
def test_revision_in_path(fs, folders, revision_in_path):
    path = TRAIN.replace(REPO, f"{REPO}@{revision_in_path}")
    expected = local(folders, PARQUET_REF, "default/train/0000.parquet")
    assert fs.info(path)["size"] == len(expected)
    assert fs.cat_file(path) == expected


def test_unquoted_ref_in_urls(hub, folders):
    session, ref_sha = get_session(), hub.shas[PARQUET_REF]
    tree = session.get(f"{hub.url}/api/datasets/{REPO}/tree/{PARQUET_REF}/default/train").json()
    assert [e["path"] for e in tree] == ["default/train/0000.parquet", "default/train/0001.parquet"]
    resolved = session.get(f"{hub.url}/datasets/{REPO}/resolve/{PARQUET_REF}/default/test/0000.parquet")
    assert resolved.content == local(folders, PARQUET_REF, "default/test/0000.parquet")
    assert resolved.headers["X-Repo-Commit"] == ref_sha
    assert session.get(f"{hub.url}/api/datasets/{REPO}/revision/{PARQUET_REF}").json()["sha"] == ref_sha


@pytest.mark.parametrize("cache_type", ["none", "readahead"])
def test_open_seek_read_exact_bytes(fs, folders, cache_type):
    expected = local(folders, "main", "data/blob.bin")
    with fs.open(f"datasets/{REPO}/data/blob.bin", "rb", revision="main", cache_type=cache_type) as f:
        for offset, length in [(0, 4), (123_456, 70_000), (199_990, 50), (5, 1), (200_000, 10)]:
            f.seek(offset)
            assert f.read(length) == expected[offset : offset + length]
        f.seek(-8, 2)
        assert f.read() == expected[-8:]


def test_cat_file_counts_exactly_the_requested_ranges(hub, fs, folders):
    expected = local(folders, PARQUET_REF, "default/train/0000.parquet")
    fs.info(TRAIN, revision=PARQUET_REF)  # fill the listing cache first: only content requests remain
    hub.reset_counters()
    ranges = [(0, 4), (100, 5000), (-8, None), (len(expected) - 1, len(expected))]
    for start, end in ranges:
        got = fs.cat_file(TRAIN, start=start, end=end, revision=PARQUET_REF, cache_type="none")
        assert got == expected[start:end]
    assert hub.bytes_served == 4 + 4900 + 8 + 1 == sum(r[4] for r in resolve_gets(hub))
    assert [r[2] for r in resolve_gets(hub)][:2] == ["bytes=0-3", "bytes=100-4999"]
    # The default read-ahead cache asks for more than the range: still, only what was sent is counted.
    hub.reset_counters()
    assert fs.cat_file(TRAIN, start=10, end=20, revision=PARQUET_REF) == expected[10:20]
    assert hub.bytes_served == sum(r[4] for r in resolve_gets(hub)) >= 10


def test_read_block(fs, folders):
    expected = local(folders, "main", "data/train.jsonl")
    path = f"datasets/{REPO}/data/train.jsonl"
    assert fs.read_block(path, 100, 50) == expected[100:150]
    block = fs.read_block(path, 100, 50, delimiter=b"\n")
    start = expected.index(b"\n", 100) + 1
    assert block == expected[start : expected.index(b"\n", 150) + 1]


def test_pyarrow_reads_parquet_through_ranges(hub, fs):
    with fs.open(TRAIN, "rb", revision=PARQUET_REF, cache_type="none") as f:
        parquet = pq.ParquetFile(f)
        assert parquet.metadata.num_row_groups == 6
        assert parquet.read_row_group(3).equals(TABLE.slice(1500, 500))
        assert parquet.read().equals(TABLE)
    assert {r[3] for r in resolve_gets(hub)} == {206}


def test_block_size_0_streams_and_cannot_seek(hub, fs, folders):
    expected = local(folders, PARQUET_REF, "default/train/0000.parquet")
    with fs.open(TRAIN, "rb", revision=PARQUET_REF, block_size=0) as f:
        assert f.read(10) + f.read() == expected
    assert [(r[2], r[3]) for r in resolve_gets(hub)] == [(None, 200)]  # one plain GET, streamed
    # huggingface_hub 2.4.0's streaming file refuses to seek, so pyarrow cannot use it: use cache_type="none".
    with (
        fs.open(TRAIN, "rb", revision=PARQUET_REF, block_size=0) as f,
        pytest.raises(ValueError, match="seek"),
    ):
        pq.ParquetFile(f)


def test_http_ranges_and_headers(hub, folders):
    data = local(folders, "main", "README.md")
    url, size, session = f"{hub.url}/datasets/{REPO}/resolve/main/README.md", len(data), get_session()
    cases = {
        "bytes=2-5": (2, 6),
        "bytes=3-": (3, size),
        "bytes=-4": (size - 4, size),
        "bytes=-999": (0, size),
    }
    for header, (start, end) in cases.items():
        r = session.get(url, headers={"Range": header})
        assert (r.status_code, r.content) == (206, data[start:end])
        assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
    for header in (f"bytes={size}-", "bytes=-0"):
        r = session.get(url, headers={"Range": header})
        assert (r.status_code, r.headers["Content-Range"]) == (416, f"bytes */{size}")
    assert session.get(url, headers={"Range": "bytes=0-1,4-5"}).content == data  # multi-range: ignored
    served = hub.bytes_served
    head = session.head(url)
    assert head.headers["Content-Length"] == str(size) and head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["X-Repo-Commit"] == hub.shas["main"] and head.headers["ETag"].startswith('"')
    assert hub.bytes_served == served == 4 + (size - 3) + 4 + size + size
    assert hub.requests[-1] == ("HEAD", "/datasets/org/name/resolve/main/README.md", None, 200, 0)
    metadata = get_hf_file_metadata(hf_hub_url(REPO, "README.md", repo_type="dataset", endpoint=hub.url))
    assert (metadata.size, metadata.commit_hash) == (size, hub.shas["main"])
    hub.reset_counters()
    assert (hub.bytes_served, hub.requests) == (0, [])


def test_bytes_served_is_thread_safe(hub, fs, folders):
    expected = local(folders, "main", "data/blob.bin")
    fs.info(f"datasets/{REPO}/data/blob.bin")
    hub.reset_counters()
    starts = range(0, 190_000, 5_000)

    def read(start: int) -> bytes:
        return fs.cat_file(f"datasets/{REPO}/data/blob.bin", start=start, end=start + 1000, cache_type="none")

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(read, starts)) == [expected[s : s + 1000] for s in starts]
    assert hub.bytes_served == 1000 * len(starts) and len(hub.requests) == len(starts)


def test_a_client_hanging_up_mid_body_is_counted_as_sent(tmp_path, capfd):
    size = 8 << 20  # more than the socket buffers can hold while the client reads nothing
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "big.bin").write_bytes(bytes(size))
    with HubStandIn() as hub:
        hub.add_dataset("org/big", tmp_path / "big")
        host, port = hub.url.removeprefix("http://").split(":")
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect((host, int(port)))
            client.sendall(b"GET /datasets/org/big/resolve/main/big.bin HTTP/1.1\r\nHost: stub\r\n\r\n")
            assert client.recv(1024).startswith(b"HTTP/1.1 200")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        deadline = time.monotonic() + 30
        while hub.requests[0][4] == size and time.monotonic() < deadline:
            time.sleep(0.01)  # the server notices on its next write
        assert hub.requests[0][4] < size and hub.bytes_served == hub.requests[0][4]
    assert capfd.readouterr().err == ""


def test_errors_map_to_client_exceptions(hub, fs):
    api, session = HfApi(endpoint=hub.url, token=False), get_session()
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("org/missing")
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info(REPO, revision="nope")
    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(hf_hub_url(REPO, "nope.txt", repo_type="dataset", endpoint=hub.url))
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree(REPO, "nope", repo_type="dataset"))
    codes = {
        "/api/datasets/org/missing/tree/main": "RepoNotFound",  # the spelling huggingface_hub checks
        f"/api/datasets/{REPO}/tree/nope": "RevisionNotFound",
        f"/datasets/{REPO}/resolve/main/nope.txt": "EntryNotFound",
        f"/datasets/{REPO}/resolve/main/data": "EntryNotFound",
    }
    for path, code in codes.items():
        r = session.get(hub.url + path)
        assert (r.status_code, r.headers["X-Error-Code"], "error" in r.json()) == (404, code, True)
    # The last one has no "datasets/" prefix: a model repo, which the stand-in never has.
    for path in ("datasets/org/missing/x", f"datasets/{REPO}@nope/x", f"datasets/{REPO}/nope.txt", REPO):
        with pytest.raises(FileNotFoundError):
            fs.open(path, "rb")


def test_gated_repo_needs_the_token(hub, fs, tmp_path):
    path = "datasets/org/gated/README.md"
    assert HfApi(endpoint=hub.url, token=False).dataset_info("org/gated").gated == "auto"  # info is public
    assert fs.info(path)["size"] == len("# A dataset\n")  # so are listings
    with pytest.raises(GatedRepoError) as no_token:
        fs.cat_file(path)
    assert no_token.value.response.status_code == 401 and "restricted" in no_token.value.server_message
    wrong = HfFileSystem(endpoint=hub.url, token="hf_wrong", skip_instance_cache=True)
    with pytest.raises(GatedRepoError) as wrong_token:
        wrong.cat_file(path)
    assert wrong_token.value.response.status_code == 403
    right = HfFileSystem(endpoint=hub.url, token=TOKEN, skip_instance_cache=True)
    assert right.cat_file(path) == b"# A dataset\n"
    api = HfApi(endpoint=hub.url, token=TOKEN)
    downloaded = api.hf_hub_download("org/gated", "README.md", repo_type="dataset", cache_dir=tmp_path / "c")
    assert Path(downloaded).read_bytes() == b"# A dataset\n"


def test_endpoint_from_environment(hub, monkeypatch, tmp_path):
    # HF_ENDPOINT is read at import time: setting it in a running process changes nothing.
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert HfApi().endpoint != hub.url
    # In-process, patching constants.ENDPOINT alone leaves file URLs on huggingface.co; the template must follow.
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    implicit = HfFileSystem(token=False, skip_instance_cache=True)
    assert implicit.url(f"datasets/{REPO}/README.md").startswith("https://huggingface.co/")
    template = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    implicit = HfFileSystem(token=False, skip_instance_cache=True)
    assert implicit.cat_file(f"datasets/{REPO}/README.md") == b"# A dataset\n"
    assert HfApi(token=False).dataset_info(REPO).sha == hub.shas["main"]
    # A process that imports huggingface_hub with HF_ENDPOINT set (the CLI, a worker) uses it.
    code = (
        "from huggingface_hub import HfApi, HfFileSystem\n"
        f"print(HfApi(token=False).dataset_info({REPO!r}).sha)\n"
        f"print(HfFileSystem(token=False).cat_file('datasets/{REPO}/README.md').decode())\n"
    )
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path), "HF_HUB_DISABLE_TELEMETRY": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split("\n")[:2] == [hub.shas["main"], "# A dataset"], done.stderr


def test_quiet_hook_and_stop(hub, fs, capfd):
    with fs.open(f"datasets/{REPO}/data/blob.bin", block_size=0) as f:
        f.read(10)  # closing an unfinished stream makes the client hang up mid-body
    get_session().get(hub.url + "/nowhere")

    def teapot(handler) -> bool:
        handler.send_response(418)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True

    hub.before_response = teapot
    assert get_session().get(hub.url + f"/api/datasets/{REPO}").status_code == 418
    assert hub.requests[-1][3] == 418
    url = hub.url
    hub.stop()
    with pytest.raises(httpx2.TransportError):
        get_session().get(url + f"/api/datasets/{REPO}", timeout=2)
    with pytest.raises(RuntimeError):
        hub.url  # noqa: B018
    assert capfd.readouterr().err == ""


def test_routes_are_strict(hub):
    session = get_session()
    cases = [
        ("POST", f"/api/datasets/{REPO}/tree/main", 405),
        ("GET", f"/api/datasets/{REPO}/paths-info/main", 405),
        ("PUT", f"/datasets/{REPO}/resolve/main/README.md", 405),
        ("GET", f"/api/datasets/{REPO}/revision/main/extra", 404),
        ("GET", f"/api/datasets/{REPO}/revision/{PARQUET_REF}/extra", 404),
        ("POST", f"/api/datasets/{REPO}/paths-info/main/extra", 404),
        ("GET", f"/__storage/{REPO}/{'0' * 40}/README.md", 404),  # storage paths only on the storage host
        ("GET", f"/api/datasets/{REPO}/revision/{PARQUET_REF}", 200),
    ]
    got = [(m, p, session.request(m, hub.url + p).status_code) for m, p, _ in cases]
    assert got == cases
    assert session.get(f"{hub.storage_url}/api/datasets/{REPO}").status_code == 404  # and no API there


def test_rate_limit_budget_per_window(hub):
    # The windows' clock is the test's: the requests are in one window however slow the machine,
    # and the next window comes when the test says, not after a sleep.
    now = [1000.0]
    hub.limit_rate(resolvers=2, api=1, window_s=300, clock=lambda: now[0])
    session, url = get_session(), f"{hub.url}/datasets/{REPO}/resolve/main/README.md"
    answers = []
    for _ in range(3):
        answers.append(session.get(url))
        now[0] += 100  # t= counts down the window from its first request
    assert [(r.status_code, r.headers["RateLimit"]) for r in answers] == [
        (200, '"resolvers";r=1;t=300'),
        (200, '"resolvers";r=0;t=200'),
        (429, '"resolvers";r=0;t=100'),
    ]
    assert "Retry-After" not in answers[2].headers
    api = [session.get(f"{hub.url}/api/datasets/{REPO}").status_code for _ in range(2)]
    assert api == [200, 429] and hub.budgets["api"].refused == 1
    now[0] = 1000.0 + 300  # the next window
    again = session.get(url)
    assert (again.status_code, again.headers["RateLimit"]) == (200, '"resolvers";r=1;t=300')


def test_storage_is_another_origin_and_may_ignore_range(hub, folders):
    hub.redirect_files = True
    session, data = get_session(), local(folders, "main", "data/blob.bin")
    url = f"{hub.url}/datasets/{REPO}/resolve/main/data/blob.bin"
    first = session.get(url, headers={"Range": "bytes=10-19", "Authorization": f"Bearer {TOKEN}"})
    assert (first.status_code, first.content) == (206, data[10:20])
    assert first.history[0].headers["Location"].startswith(hub.storage_url + "/__storage/")
    assert hub.storage_url != hub.url
    hub.storage_ignores_range = True
    whole = session.get(url, headers={"Range": "bytes=10-19"})
    assert (whole.status_code, whole.headers["Accept-Ranges"], len(whole.content)) == (200, "none", len(data))
    assert [(role, auth) for role, path, auth in hub.authorizations] == [
        ("hub", f"Bearer {TOKEN}"),
        ("storage", None),  # the client drops the token on the way to another origin
        ("hub", None),
        ("storage", None),
    ]


def test_an_invalid_token_is_refused_everywhere_on_the_hub(hub):
    api = HfApi(endpoint=hub.url, token="not-a-hub-token")
    with pytest.raises(HfHubHTTPError) as caught:
        api.dataset_info(REPO)  # a public repo: the real Hub refuses a bad token all the same
    assert caught.value.response.status_code == 401
    assert caught.value.response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"


def test_a_stalled_request_gets_no_answer_then_a_closed_connection(hub):
    hub.stall_s = 0.3
    hub.stall("api")
    with pytest.raises(httpx2.TransportError):
        get_session().get(f"{hub.url}/api/datasets/{REPO}", timeout=5)
    assert get_session().get(f"{hub.url}/api/datasets/{REPO}").status_code == 200
    with pytest.raises(ValueError, match="kind must be one of"):
        hub.stall("everything")


def test_the_agent_registry_is_fetched_once_a_day_as_from_the_hub(hub, tmp_path):
    """huggingface_hub 2.4 fetches the Hub's agent-harness registry on its first request and keeps
    it a day in HF_HOME. The stand-in answers it as the Hub does, so only a day's first process
    pays its round trip (a 404 would make every process ask again)."""
    code = f"from huggingface_hub import HfApi\nHfApi().repo_info({REPO!r}, repo_type='dataset')"
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_TELEMETRY"}
    env |= {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home")}
    hub.reset_counters()
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=120)
    asked = [r for r in hub.requests if r[1] == "/api/agent-harnesses"]
    assert [r[3] for r in asked] == [200], hub.requests
    assert json.loads((tmp_path / "hf-home" / ".agent_harnesses.json").read_text()) == {
        "standardEnvVars": [],
        "harnesses": {},
    }
