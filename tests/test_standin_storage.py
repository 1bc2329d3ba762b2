"""The stand-in's storage host as the Hub's: the 302 and its headers, signed URLs that expire on the
stand-in's clock, storage faults, gzip, and budgets that storage never spends. Through the real
huggingface_hub client and its httpx2 session, on real sockets."""

import gzip
import hashlib
import random
import re
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from huggingface_hub import HfApi, HfFileSystem, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import build_hf_headers, get_session

from shardsql.standin.hub import HubStandIn

TOKEN = "hf_stand_in_token"
REPO = "org/name"
BLOB = random.Random(1).randbytes(300_000)
START = 1_700_000_000.0  # 2023-11-14T22:13:20Z: the fake clock's first reading
AMZ = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature", "X-Amz-SignedHeaders")
CLOUDFRONT = ("Expires", "Signature", "Key-Pair-Id")


pytestmark = pytest.mark.usefixtures("loopback_only")  # conftest: nothing leaves the machine


class Clock:
    """The stand-in's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub(tmp_path: Path):
    (tmp_path / "repo" / "data").mkdir(parents=True)
    (tmp_path / "repo" / "README.md").write_text("# A dataset\n")
    (tmp_path / "repo" / "data" / "blob.bin").write_bytes(BLOB)
    with HubStandIn(token=TOKEN) as hub:
        hub.sha = hub.add_dataset(REPO, tmp_path / "repo")
        hub.add_dataset("org/gated", tmp_path / "repo", gated=True)
        hub.clock = Clock()
        hub.redirect_files = True
        yield hub


def blob_url(hub: HubStandIn, repo: str = REPO) -> str:
    return f"{hub.url}/datasets/{repo}/resolve/main/data/blob.bin"


def location(hub: HubStandIn) -> str:
    """A fresh signed storage URL for the blob, from the Hub's 302."""
    answer = get_session().get(blob_url(hub), follow_redirects=False)
    assert answer.status_code == 302
    return answer.headers["Location"]


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str | None) -> str:
    """`url` with some query parameters changed (None: removed)."""
    params = {k: v for k, v in (query(url) | changes).items() if v is not None}
    return url.split("?")[0] + "?" + urlencode(params)


def storage_gets(url: str, times: int, **headers: str) -> list[httpx2.Response]:
    return [get_session().get(url, headers=headers) for _ in range(times)]


def test_resolve_answers_the_hubs_302_to_a_signed_url_on_another_origin(hub):
    session, sha256 = get_session(), hashlib.sha256(BLOB).hexdigest()
    answer = session.get(blob_url(hub), follow_redirects=False)
    where = answer.headers["Location"]
    assert answer.status_code == 302 and where.startswith(f"{hub.storage_url}/__storage/{REPO}/{hub.sha}/data/")
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.content == f"Found. Redirecting to {where}".encode()
    assert answer.headers["Content-Length"] == str(len(answer.content))
    assert answer.headers["X-Repo-Commit"] == hub.sha and answer.headers["ETag"].startswith('"')
    assert (answer.headers["X-Linked-Size"], answer.headers["X-Linked-ETag"]) == (str(len(BLOB)), f'"{sha256}"')
    xet_hash = answer.headers["X-Xet-Hash"]
    assert re.fullmatch("[0-9a-f]{64}", xet_hash)
    assert answer.links["xet-reconstruction-info"]["url"] == f"{hub.storage_url}/reconstruction/{xet_hash}"
    assert answer.links["xet-auth"]["url"] == f"{hub.url}/api/datasets/{REPO}/xet-read-token/{hub.sha}"
    # Both signature styles, expiring together an hour after the stand-in's clock.
    params = query(where)
    assert set(AMZ + CLOUDFRONT) <= params.keys()
    assert (params["X-Amz-Date"], params["X-Amz-Expires"]) == ("20231114T221320Z", "3600")
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and params["X-Amz-SignedHeaders"] == "host"
    assert re.fullmatch("[0-9a-f]{64}", params["X-Amz-Signature"])
    assert params["Expires"] == str(int(START) + 3600)
    assert answer.headers["Date"] == formatdate(START, usegmt=True) == "Tue, 14 Nov 2023 22:13:20 GMT"
    # HEAD: the same headers, no body; huggingface_hub reads the file's metadata from them.
    head = session.head(blob_url(hub), follow_redirects=False)
    assert (head.status_code, head.content, head.headers["Location"]) == (302, b"", where)
    assert head.headers["Content-Length"] == answer.headers["Content-Length"]
    metadata = get_hf_file_metadata(hf_hub_url(REPO, "data/blob.bin", repo_type="dataset", endpoint=hub.url))
    assert (metadata.size, metadata.etag, metadata.commit_hash) == (len(BLOB), sha256, hub.sha)
    assert metadata.location.startswith(hub.storage_url) and metadata.xet_file_data.file_hash == xet_hash
    # Followed, the signed URL serves the range, dated by the same clock.
    data = session.get(blob_url(hub), headers={"Range": "bytes=100-199"})
    assert (data.status_code, data.content, data.history[0].status_code) == (206, BLOB[100:200], 302)
    assert data.headers["Date"] == formatdate(START, usegmt=True)


def test_a_storage_url_expires_on_the_stand_ins_clock(hub):
    where = location(hub)
    hub.clock.now = START + 3599
    assert get_session().get(where, headers={"Range": "bytes=0-9"}).content == BLOB[:10]
    hub.clock.now = START + 3600
    expired = get_session().get(where, headers={"Range": "bytes=0-9"})
    assert (expired.status_code, expired.headers["Content-Type"]) == (403, "application/xml")
    assert expired.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>')
    assert "<Message>Request has expired</Message><X-Amz-Expires>3600</X-Amz-Expires>" in expired.text
    assert "<Expires>2023-11-14T23:13:20Z</Expires><ServerTime>2023-11-14T23:13:20Z</ServerTime>" in expired.text
    assert expired.headers["Date"] == formatdate(START + 3600, usegmt=True)
    assert "X-Error-Code" not in expired.headers  # storage is not the Hub
    # Resolving again gives a URL valid from the new time; HfFileSystem reads through it.
    fs = HfFileSystem(endpoint=hub.url, token=False, skip_instance_cache=True)
    assert fs.cat_file(f"datasets/{REPO}/data/blob.bin", start=5, end=50) == BLOB[5:50]
    assert query(location(hub))["X-Amz-Date"] == "20231114T231320Z"


@pytest.mark.parametrize(
    "styles, tamper",
    [
        (("amz",), {"X-Amz-Expires": "999999"}),
        (("amz",), {"X-Amz-Signature": "0" * 64}),
        (("cloudfront",), {"Expires": str(int(START) + 999999)}),
        (("cloudfront",), {"Key-Pair-Id": "KOTHER"}),
        (("amz", "cloudfront"), {"Signature": None, "Expires": None, "Key-Pair-Id": None}),
        (("amz", "cloudfront"), {"X-Amz-Date": "20231114T231320Z"}),
    ],
)
def test_each_signature_style_is_checked(hub, styles, tamper):
    hub.signed_url_styles = styles
    where = location(hub)
    expected = {s: set(AMZ if s == "amz" else CLOUDFRONT) for s in ("amz", "cloudfront")}
    assert all((expected[s] <= query(where).keys()) == (s in styles) for s in expected)
    assert get_session().get(where).content == BLOB
    denied = get_session().get(with_query(where, **tamper))
    assert denied.status_code == 403 and "<Code>AccessDenied</Code><Message>Access Denied</Message>" in denied.text
    assert get_session().get(where.split("?")[0]).status_code == 403  # unsigned


def test_unsigned_urls_never_expire(hub):
    hub.signed_url_styles = ()
    where = location(hub)
    assert "?" not in where
    hub.clock.now = START + 10 * 365 * 86400
    assert get_session().get(where, headers={"Range": "bytes=7-8"}).content == BLOB[7:9]


def test_storage_faults_on_valid_urls(hub):
    where = location(hub)
    hub.storage_fault("access-denied", times=2)
    denied = storage_gets(where, 2, Range="bytes=0-9")
    assert [r.status_code for r in denied] == [403, 403] and "<Message>Access Denied</Message>" in denied[0].text
    assert denied[0].headers["Content-Type"] == "application/xml"
    assert get_session().get(where, headers={"Range": "bytes=0-9"}).content == BLOB[:10]
    # A stale object in the CDN's edge cache: ranges past its end are refused with its size.
    hub.storage_fault("stale-416", times=2, total=177)
    assert get_session().get(where).content == BLOB  # no Range: not what this fault answers
    stale = storage_gets(where, 2, Range="bytes=1000-1999")
    assert [(r.status_code, r.headers["Content-Range"]) for r in stale] == [(416, "bytes */177")] * 2
    assert "<Code>InvalidRange</Code>" in stale[0].text and "<ActualObjectSize>177</ActualObjectSize>" in stale[0].text
    assert get_session().get(where, headers={"Range": "bytes=1000-1999"}).content == BLOB[1000:2000]
    hub.storage_fault("stale-416")  # no size: the stale object ends where the range starts
    assert get_session().get(where, headers={"Range": "bytes=500-599"}).headers["Content-Range"] == "bytes */500"
    # An expired URL is refused as expired, and leaves the fault for the next valid request.
    hub.storage_fault("access-denied")
    hub.clock.now += 3600
    assert "Request has expired" in get_session().get(where).text
    fresh = location(hub)
    assert get_session().get(fresh).status_code == 403 and get_session().get(fresh).status_code == 200
    # Faults are the storage host's: the Hub's own file answers never get them.
    hub.redirect_files = False
    hub.storage_fault("access-denied")
    assert get_session().get(blob_url(hub)).status_code == 200
    with pytest.raises(ValueError, match="kind must be one of"):
        hub.storage_fault("slow")


def test_storage_gzips_the_whole_file_when_the_client_accepts_gzip(hub):
    where = location(hub)
    compressed = gzip.compress(BLOB, mtime=0)
    # Off by default: a range is a range, whatever the client accepts.
    assert get_session().get(where, headers={"Range": "bytes=0-9", "Accept-Encoding": "gzip"}).status_code == 206
    hub.storage_gzips = True
    hub.reset_counters()
    with httpx2.Client() as client:  # httpx2 sends "Accept-Encoding: gzip, deflate" unless told otherwise
        whole = client.get(where, headers={"Range": "bytes=0-9"})
        assert (whole.status_code, whole.headers["Content-Encoding"]) == (200, "gzip")
        assert whole.headers["Content-Length"] == str(len(compressed)) and "Content-Range" not in whole.headers
        assert whole.content == BLOB  # decoded by the client: the whole file, not the range
        with client.stream("GET", where, headers={"Range": "bytes=0-9"}) as raw:
            assert gzip.decompress(b"".join(raw.iter_raw())) == BLOB
        assert hub.bytes_served == 2 * len(compressed)  # what went over the wire
        for accept in ("identity", "gzip;q=0, identity", "br"):
            ranged = client.get(where, headers={"Range": "bytes=0-9", "Accept-Encoding": accept})
            assert (ranged.status_code, ranged.content) == (206, BLOB[:10]), accept
            assert "Content-Encoding" not in ranged.headers
        assert client.get(where, headers={"Range": "bytes=0-9", "Accept-Encoding": "*"}).status_code == 200
        request = client.build_request("GET", where, headers={"Range": "bytes=0-9"})
        del request.headers["Accept-Encoding"]  # none at all: a CDN compresses only when asked
        assert client.send(request).status_code == 206
    # huggingface_hub asks for the real size with identity: its metadata is right.
    assert get_hf_file_metadata(hf_hub_url(REPO, "data/blob.bin", repo_type="dataset", endpoint=hub.url)).size == len(
        BLOB
    )


def test_hf_hub_download_follows_the_signed_url_when_xet_is_not_advertised(hub, tmp_path):
    api = HfApi(endpoint=hub.url, token=TOKEN)
    # Advertised (the default), Xet sends hf_hub_download to Xet's token route, which the stand-in does not play.
    with pytest.raises(HfHubHTTPError, match="xet-read-token"):
        api.hf_hub_download("org/gated", "data/blob.bin", repo_type="dataset", cache_dir=tmp_path / "xet")
    hub.advertise_xet = False
    auth = build_hf_headers(token=TOKEN)
    answer = get_session().head(blob_url(hub, "org/gated"), follow_redirects=False, headers=auth)
    assert answer.status_code == 302 and "X-Xet-Hash" not in answer.headers and "Link" not in answer.headers
    path = api.hf_hub_download("org/gated", "data/blob.bin", repo_type="dataset", cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == BLOB
    storage = [(role, auth) for role, _, auth in hub.authorizations if role == "storage"]
    assert storage == [("storage", None)]  # the client keeps the token on the Hub


def test_rate_limits_name_their_bucket_and_storage_never_spends_one(hub):
    now = [0.0]
    hub.limit_rate(resolvers=2, api=3, window_s=300, clock=lambda: now[0])
    session = get_session()
    first = session.get(blob_url(hub), headers={"Range": "bytes=0-9"})
    assert first.history[0].headers["RateLimit"] == '"resolvers";r=1;t=300'
    assert first.status_code == 206 and "RateLimit" not in first.headers  # the storage answer
    where = first.history[0].headers["Location"]
    assert [r.status_code for r in storage_gets(where, 5)] == [200] * 5
    second = session.get(blob_url(hub), follow_redirects=False)
    assert (second.status_code, second.headers["RateLimit"]) == (302, '"resolvers";r=0;t=300')
    refused = session.get(blob_url(hub), follow_redirects=False)
    assert (refused.status_code, refused.headers["RateLimit"]) == (429, '"resolvers";r=0;t=300')
    assert "Location" not in refused.headers
    assert session.get(f"{hub.url}/api/datasets/{REPO}").headers["RateLimit"] == '"api";r=2;t=300'
    assert hub.budgets["resolvers"].refused == 1 and hub.budgets["api"].refused == 0


def test_counters_tell_resolve_from_storage_and_count_each_files_storage_requests(hub):
    fs = HfFileSystem(endpoint=hub.url, token=False, skip_instance_cache=True)
    fs.info(f"datasets/{REPO}/data/blob.bin")
    hub.reset_counters()
    for start in (0, 1000, 2000):
        got = fs.cat_file(f"datasets/{REPO}/data/blob.bin", start=start, end=start + 10, cache_type="none")
        assert got == BLOB[start : start + 10]
    assert fs.cat_file(f"datasets/{REPO}/README.md", cache_type="none") == b"# A dataset\n"
    assert hub.requests_per_file() == {f"{REPO}/data/blob.bin": 3, f"{REPO}/README.md": 1}
    assert hub.requests_per_file("resolve") == {f"{REPO}/data/blob.bin": 3, f"{REPO}/README.md": 1}
    assert [(t.server, t.kind, t.status) for t in hub.transfers[:2]] == [
        ("hub", "resolve", 302),
        ("storage", "storage", 206),
    ]
    hub.settle()  # the last answer's bytes are recorded as sent
    storage = [t for t in hub.transfers if t.kind == "storage"]
    assert [t.body_bytes for t in storage] == [10, 10, 10, 12] and hub.bytes_served == 42
    assert all(t.received <= t.answered <= t.finished for t in hub.transfers)
    assert len(hub.transfers) == len(hub.requests)
    hub.reset_counters()
    assert hub.transfers == [] and hub.requests_per_file() == {}
