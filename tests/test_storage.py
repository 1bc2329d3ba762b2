"""Reading the Hub as it really answers, against the stand-in with the real huggingface_hub client:
one resolve per file, ranges straight from signed storage URLs, and each of storage's bad days
(a 403 for a valid range, an expired URL, a stale edge's 416, a Content-Range that disagrees, a
CDN that gzips, cold storage's slow first byte, a body that stalls) survived or named in one line."""

from __future__ import annotations

import re
import threading
import time
import types
from collections import Counter

import pytest
from helpers import read_texts
from seed_reference import seed_shards

from shardsql import tuning
from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.errors import SourceError
from shardsql.hub import retries
from shardsql.hub import storage as hub_storage
from shardsql.source import files as sources
from shardsql.source import footers
from shardsql.source.fetch import START_STREAMS

HUB_URL = "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet"
REPO = "HuggingFaceFW/fineweb-edu"
TOKEN = "hf_test_secret_token"


def run(cache, **kw):
    options = ConvertOptions(shuffle=False, num_shards=3, rows_per_shard=800, cache_dir=cache, **kw)
    return convert(catalog.resolve("fineweb-edu"), options)


def shards(cache):
    return {p.name: read_texts(p) for p in sorted((cache / "data").glob("shard_*.parquet"))}


def seed(folder):
    return seed_shards(sorted(folder.glob("*.parquet")), "text", 3, 800)[0]


def storage_gets(hub, status=None):
    return [r for r in hub.requests if r[1].startswith("/__storage/") and r[0] == "GET" and status in (None, r[3])]


def record_headers(hub):
    """(server, path, Accept-Encoding, Authorization) of every file request, from the stand-in's side."""
    seen: list[tuple[str, str, str | None, str | None]] = []

    def hook(handler) -> bool:
        if handler.server.role == "storage" or "/resolve/" in handler.path:
            headers = handler.headers
            seen.append(
                (handler.server.role, handler.path, headers.get("Accept-Encoding"), headers.get("Authorization"))
            )
        return False

    hub.before_response = hook
    return seen


def test_each_file_is_resolved_once_then_read_from_storage_without_the_token(hub, hub_dataset, tmp_path,
                                                                              small_units, monkeypatch):  # fmt: skip
    folder = hub_dataset("fineweb-edu", row_group_size=200, gated=True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    seen = record_headers(hub)
    run(tmp_path)
    assert shards(tmp_path) == seed(folder)
    resolves, reads = hub.requests_per_file("resolve"), hub.requests_per_file("storage")
    assert set(resolves) == set(reads) and set(resolves.values()) == {1}, resolves
    assert sum(reads.values()) > 3 * len(reads), "many ranges a file, each straight to storage"
    assert all(r[3] == 206 for r in storage_gets(hub))
    assert {(role, auth) for role, _, _, auth in seen} == {("hub", f"Bearer {TOKEN}"), ("storage", None)}
    assert {encoding for *_, encoding, _ in seen} == {"identity"}, "a CDN that compresses ignores Range"


def test_a_mirror_without_redirects_and_the_hubs_own_redirects_read_the_same(hub, hub_dataset, tmp_path,
                                                                               monkeypatch):  # fmt: skip
    folder = hub_dataset("fineweb-edu", row_group_size=200, gated=True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.redirect_files = False  # a mirror that answers /resolve/ with the bytes, every time
    run(tmp_path / "mirror")
    assert shards(tmp_path / "mirror") == seed(folder) and not storage_gets(hub)
    hub.reset_counters()
    hub.redirect_files, hub.resolve_via_cache = True, True  # a renamed repo, then resolve-cache, then storage
    hub.rename(REPO, "HuggingFaceFW/fineweb-edu-renamed")
    seen = record_headers(hub)
    run(tmp_path / "redirected")
    assert shards(tmp_path / "redirected") == seed(folder)
    hops = Counter(path.split("?")[0].rsplit("/", 1)[-1] for role, path, *_ in seen if role == "hub")
    assert set(hops.values()) == {2}, f"each file: the rename's 307, then the 302 to storage ({hops})"
    assert {auth for role, _, _, auth in seen if role == "hub"} == {f"Bearer {TOKEN}"}, "the token stays on the Hub"


def test_a_403_from_storage_resolves_the_file_again_and_the_run_goes_on(hub, hub_dataset, tmp_path, small_units):
    folder = hub_dataset("fineweb-edu", row_group_size=200)
    hub.storage_fault("access-denied", times=2)  # xet-core#897: AccessDenied for valid ranges
    run(tmp_path)
    assert shards(tmp_path) == seed(folder)
    assert len(storage_gets(hub, 403)) == 2
    resolves = hub.requests_per_file("resolve")
    assert sum(resolves.values()) == len(resolves) + 2, "each 403 cost one resolve more, no more"


def test_a_403_that_persists_names_the_storage_host_not_the_token(hub, hub_dataset, tmp_path, monkeypatch):
    hub_dataset("fineweb-edu")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    live = tmp_path / "data"
    live.mkdir()
    (live / "shard_00000.parquet").write_bytes(b"old data")
    hub.storage_fault("access-denied", times=100)
    with pytest.raises(SourceError) as caught:
        run(tmp_path)
    host = hub.storage_url.removeprefix("http://")
    assert re.fullmatch(
        rf"cannot read hf://datasets/{REPO}/sample/10BT/000_00000\.parquet \(bytes \d+-\d+\) after 6 attempts over "
        rf"\d+ s: the storage host {re.escape(host)} refuses bytes \d+-\d+ of hf://\S+ \(403 AccessDenied: Access "
        r"Denied\), also after resolving the file again\. Run the same command again to resume from the last "
        r"complete shard\.",
        str(caught.value),
    ), caught.value
    assert "token" not in str(caught.value).lower()
    assert [p.name for p in live.iterdir()] == ["shard_00000.parquet"] and (
        live / "shard_00000.parquet"
    ).read_bytes() == b"old data"
    # The first files' footers are read at once: each read met a 403 at every attempt, and resolved again each time.
    first = f"{REPO}/sample/10BT/000_00000.parquet"
    assert len([r for r in storage_gets(hub, 403) if "/000_00000.parquet?" in r[1]]) == tuning.current().retry_attempts
    assert hub.requests_per_file("resolve")[first] == tuning.current().retry_attempts


def test_an_expired_url_is_resolved_again_without_using_an_attempt(tune, hub, hub_dataset):
    hub_dataset("fineweb-edu")
    clock = [time.time()]
    hub.clock = lambda: clock[0]
    source = sources.open_source(HUB_URL)
    file = source.files[0]
    footers.read_footer(source, file)  # resolved: the URL is valid for an hour of the stand-in's clock
    clock[0] += 3601  # the hour passes on storage's side; this machine's clock says otherwise
    tune(retry_attempts=1)  # a failed attempt would end the read
    assert source.fetch(file, 0, 4) == b"PAR1"
    assert [r[3] for r in storage_gets(hub)][-2:] == [403, 206]
    assert hub.requests_per_file("resolve")[f"{REPO}/sample/10BT/000_00000.parquet"] == 2


def test_a_url_is_resolved_again_shortly_before_it_expires(hub, hub_dataset, monkeypatch):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    file = source.files[0]
    footers.read_footer(source, file)

    # This machine's clock, 58 minutes on: inside the margin before the URL's hour ends.
    later = types.SimpleNamespace(time=lambda: time.time() + 3480, strptime=time.strptime)
    monkeypatch.setattr(hub_storage, "time", later)
    hub.reset_counters()
    assert source.fetch(file, 0, 4) == b"PAR1"
    assert [(r[1].split("/")[1], r[3]) for r in hub.requests] == [("datasets", 302), ("__storage", 206)]


@pytest.mark.parametrize("styles", [("amz",), ("cloudfront",), ("amz", "cloudfront"), ()])
def test_a_urls_lifetime_is_read_from_its_own_signature(hub, hub_dataset, styles):
    hub_dataset("fineweb-edu")
    hub.signed_url_styles, hub.url_lifetime_s = styles, 1234
    clock = time.time() - 86_400  # storage's clock a day behind this machine's: the URL's own terms count
    hub.clock = lambda: clock
    source = sources.open_source(HUB_URL)
    location = source.location(source.files[0])
    expected = 1234 if styles else hub_storage.DEFAULT_LIFETIME_S
    assert location is not None and location.seconds_left() == pytest.approx(expected, abs=5)


def test_a_stale_edge_416_is_retried_and_one_that_persists_is_named(hub, hub_dataset):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    file = source.files[0]
    hub.storage_fault("stale-416", times=2, total=177)  # datasets#7685: a stale object in the CDN's edge
    assert footers.read_footer(source, file).num_rows == 3000
    assert [r[3] for r in storage_gets(hub)][:3] == [416, 416, 206]
    hub.storage_fault("stale-416", times=100, total=177)
    with pytest.raises(SourceError) as caught:
        source.fetch(file, 0, 100)
    host = hub.storage_url.removeprefix("http://")
    assert "after 6 attempts over" in str(caught.value)
    said = f"{host} answered 416 for bytes 0-99 of {file.url} ({file.size:,} bytes as listed): it holds a copy of"
    assert f"{said} 177 bytes" in str(caught.value)


def test_a_416_for_a_range_past_the_listed_size_is_an_error_at_once(hub, hub_dataset):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    file = source.files[0]
    with pytest.raises(SourceError, match=r"answered 416 \(range not satisfiable\) for bytes"):
        source.fetch(file, file.size + 10, file.size + 20)
    assert len(storage_gets(hub, 416)) == 1, "not retried: the file is as listed, the range is not in it"


@pytest.mark.parametrize("total", ["*", "wrong"])
def test_a_206_whose_content_range_disagrees_is_retried_then_named(hub, hub_dataset, total):
    folder = hub_dataset("fineweb-edu")
    data = (folder / "000_00000.parquet").read_bytes()
    source = sources.open_source(HUB_URL)
    file = source.files[0]
    footers.read_footer(source, file)
    bad = {"left": 2}

    def wrong_content_range(handler) -> bool:
        if handler.server.role != "storage" or handler.command != "GET" or bad["left"] <= 0:
            return False
        bad["left"] -= 1
        first, last = (int(x) for x in handler.headers["Range"].removeprefix("bytes=").split("-"))
        said = f"bytes {first + 1}-{last + 1}/{len(data)}" if total == "*" else f"bytes {first}-{last}/{len(data) + 5}"
        body = data[first : last + 1]
        handler.send_response(206)
        handler.send_header("Content-Range", said)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    hub.before_response = wrong_content_range
    assert source.fetch(file, 100, 200) == data[100:200], "two wrong answers, then the right one"
    bad["left"] = 100
    with pytest.raises(SourceError, match=r"after 6 attempts over \d+ s: 127\.0\.0\.1:\d+ answered bytes "):
        source.fetch(file, 100, 200)


def test_a_cdn_that_gzips_never_gets_the_chance(hub, hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu")
    hub.storage_gzips = True  # storage compresses whenever the client admits gzip, ignoring Range
    run(tmp_path)
    assert shards(tmp_path) == seed(folder)
    assert all(r[3] == 206 for r in storage_gets(hub))


def test_cold_storages_slow_first_byte_is_waited_for_and_a_stalled_body_is_not(tune, hub, hub_dataset):
    hub_dataset("fineweb-edu")
    tune(read_timeout_s=0.5)
    tune(first_byte_timeout_s=30.0)
    source = sources.open_source(HUB_URL)
    file = source.files[0]
    footers.read_footer(source, file)
    stalls = {"cold": 1, "mid-body": 0}

    def cold_then_stalled(handler) -> bool:
        if handler.server.role != "storage" or handler.command != "GET":
            return False
        if stalls["cold"]:  # cold storage: 1.5 s before the first byte, then the answer
            stalls["cold"] -= 1
            time.sleep(1.5)
            return False
        if stalls["mid-body"]:  # half the body, then nothing until the stand-in stops
            stalls["mid-body"] -= 1
            first, last = (int(x) for x in handler.headers["Range"].removeprefix("bytes=").split("-"))
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {first}-{last}/{file.size}")
            handler.send_header("Content-Length", str(last - first + 1))
            handler.end_headers()
            handler.wfile.write(b"\0" * ((last - first + 1) // 2))
            handler.wfile.flush()
            hub.wait_stalled()
            handler.close_connection = True
            return True
        return False

    hub.before_response = cold_then_stalled
    tune(retry_attempts=1)
    assert source.fetch(file, 0, 4) == b"PAR1", "1.5 s to the first byte: within its timeout, no attempt failed"
    tune(retry_attempts=6)
    stalls["mid-body"] = 1
    began = time.monotonic()
    assert source.fetch(file, 0, 40_000) == (hub.repos[REPO].revisions["main"].files[
        "sample/10BT/000_00000.parquet"][:40_000])  # fmt: skip
    assert time.monotonic() - began < 20, "the stalled body was given up after its read timeout, not 30 s"


def test_the_rate_limit_hint_is_only_for_requests_without_a_token(hub, hub_dataset, monkeypatch, tmp_path):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    hub.limit_rate(resolvers=0, window_s=1)
    lift = threading.Timer(0.3, lambda: setattr(hub, "budgets", {}))
    messages: list[str] = []
    with retries.report_waits(messages.append):
        lift.start()
        footers.read_footer(source, source.files[0])
    assert messages == ["rate-limited by the Hub (resolvers): waiting 1 s (an HF_TOKEN raises the limit)"]
    monkeypatch.setattr(retries, "_reported_until", {})
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    tokened = sources.open_source(HUB_URL)
    hub.limit_rate(resolvers=0, window_s=1)
    messages.clear()
    with retries.report_waits(messages.append):
        threading.Timer(0.3, lambda: setattr(hub, "budgets", {})).start()
        footers.read_footer(tokened, tokened.files[1])
    assert messages == ["rate-limited by the Hub (resolvers): waiting 1 s"]


def test_a_link_that_rewards_more_streams_gets_them(tune, hub, hub_dataset, tmp_path, small_units):
    folder = hub_dataset("fineweb-edu", row_group_size=100)
    # Slow connections on a wide link: each stream more adds to the rate, whatever the cores. Most
    # of the source is wanted, so that many units may be fetched at once, in many pieces.
    hub.model_network(connection_bytes_per_s=400_000, link_bytes_per_s=100_000_000)
    tune(piece_bytes=16 << 10)
    options = ConvertOptions(shuffle=False, num_shards=3, rows_per_shard=2000, cache_dir=tmp_path, workers=1)
    convert(catalog.resolve("fineweb-edu"), options)
    assert shards(tmp_path) == seed_shards(sorted(folder.glob("*.parquet")), "text", 3, 2000)[0]
    assert hub.most_reads_at_once() > START_STREAMS, "more reads at once than the streams started with"


def test_a_link_one_stream_fills_keeps_few_streams(hub, hub_dataset, tmp_path, small_units):
    folder = hub_dataset("fineweb-edu", row_group_size=100)
    hub.model_network(connection_bytes_per_s=2_000_000, link_bytes_per_s=2_000_000)  # one stream fills it
    options = ConvertOptions(shuffle=False, num_shards=3, rows_per_shard=2000, cache_dir=tmp_path, workers=1)
    convert(catalog.resolve("fineweb-edu"), options)
    assert shards(tmp_path) == seed_shards(sorted(folder.glob("*.parquet")), "text", 3, 2000)[0]
    assert hub.most_reads_at_once() <= START_STREAMS * 3 // 2, "one step up at most, then undone"
