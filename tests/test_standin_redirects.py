"""Same-origin redirects on the stand-in, as the Hub sends them: a renamed repo's routes (307 to the
new name) and `resolve` through `/api/resolve-cache/` (307 at the commit). The real
huggingface_hub client must still list, read and get metadata through them."""

from pathlib import Path
from urllib.parse import quote

import pytest
from huggingface_hub import HfApi, HfFileSystem, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import GatedRepoError
from huggingface_hub.utils import get_session

from shardsql.standin.hub import HubStandIn

TOKEN = "hf_stand_in_token"
OLD, NEW = "org/old-name", "org/new-name"
DATA = bytes(range(256)) * 400


pytestmark = pytest.mark.usefixtures("loopback_only")  # conftest: nothing leaves the machine


@pytest.fixture
def hub(tmp_path: Path):
    (tmp_path / "repo" / "data").mkdir(parents=True)
    (tmp_path / "repo" / "data" / "part 0.bin").write_bytes(DATA)  # a space: quoted in every URL
    with HubStandIn(token=TOKEN) as hub:
        hub.sha = hub.add_dataset(OLD, tmp_path / "repo")
        hub.add_dataset("org/gated", tmp_path / "repo", gated=True)
        yield hub


def fs_for(hub: HubStandIn, token: str | bool = False) -> HfFileSystem:
    return HfFileSystem(endpoint=hub.url, token=token, skip_instance_cache=True)


def test_a_renamed_repos_routes_redirect_to_its_new_name(hub, tmp_path):
    hub.rename(OLD, NEW)
    session = get_session()
    cases = {
        f"/api/datasets/{OLD}": f"/api/datasets/{NEW}",
        f"/api/datasets/{OLD}/revision/main": f"/api/datasets/{NEW}/revision/main",
        f"/api/datasets/{OLD}/tree/main/data?recursive=true": f"/api/datasets/{NEW}/tree/main/data?recursive=true",
        f"/datasets/{OLD}/resolve/main/data/part%200.bin": f"/datasets/{NEW}/resolve/main/data/part%200.bin",
    }
    for old, new in cases.items():
        answer = session.get(hub.url + old, follow_redirects=False)
        assert (answer.status_code, answer.headers["Location"]) == (307, new), old
        assert answer.text == f"Temporary Redirect. Redirecting to {new}"
    moved = session.post(f"{hub.url}/api/datasets/{OLD}/paths-info/main", data={"paths": "data"})
    assert [r.status_code for r in moved.history] == [307] and moved.json()[0]["path"] == "data"  # method kept
    # The client follows them all: info, listings, metadata, reads.
    api = HfApi(endpoint=hub.url, token=False)
    assert api.dataset_info(OLD).sha == hub.sha and api.dataset_info(OLD).id == NEW
    assert [f.path for f in api.list_repo_tree(OLD, "data", repo_type="dataset")] == ["data/part 0.bin"]
    fs = fs_for(hub)
    assert fs.cat_file(f"datasets/{OLD}/data/part 0.bin", start=10, end=20, cache_type="none") == DATA[10:20]
    metadata = get_hf_file_metadata(hf_hub_url(OLD, "data/part 0.bin", repo_type="dataset", endpoint=hub.url))
    assert (metadata.size, metadata.commit_hash) == (len(DATA), hub.sha)
    # Storage URLs made before the rename stay valid; a repo added under the old name ends the redirect.
    hub.rename(NEW, "org/third")
    assert fs_for(hub).cat_file(f"datasets/{OLD}/data/part 0.bin") == DATA  # two hops
    (tmp_path / "empty").mkdir()
    hub.add_dataset(OLD, tmp_path / "empty")
    assert session.get(f"{hub.url}/api/datasets/{OLD}").json()["siblings"] == []
    with pytest.raises(ValueError, match="not served"):
        hub.rename("org/missing", "org/x")
    with pytest.raises(ValueError, match="already served"):
        hub.rename(OLD, "org/third")


def test_resolve_through_the_cache_route(hub):
    hub.resolve_via_cache = True
    session, path = get_session(), "data/part%200.bin"
    answer = session.get(f"{hub.url}/datasets/{OLD}/resolve/main/{path}", follow_redirects=False)
    etag = answer.headers["ETag"]
    expected = (
        f"/api/resolve-cache/datasets/{OLD}/{hub.sha}/{path}"
        f"?{quote(f'/datasets/{OLD}/resolve/main/{path}', safe='')}=&etag={quote(etag, safe='')}"
    )
    assert (answer.status_code, answer.headers["Location"]) == (307, expected)
    assert answer.headers["X-Repo-Commit"] == hub.sha
    # The cache route answers as resolve does: the content, ...
    read = session.get(f"{hub.url}/datasets/{OLD}/resolve/main/{path}", headers={"Range": "bytes=5-9"})
    assert (read.status_code, read.content, read.history[0].status_code) == (206, DATA[5:10], 307)
    fs = fs_for(hub)
    assert fs.cat_file(f"datasets/{OLD}/data/part 0.bin", start=100, end=300, cache_type="none") == DATA[100:300]
    url = hf_hub_url(OLD, "data/part 0.bin", repo_type="dataset", endpoint=hub.url)
    assert get_hf_file_metadata(url).size == len(DATA)
    # ... or with redirect_files, the 302 to storage, whose headers the client reads its metadata from.
    hub.redirect_files = True
    hub.reset_counters()
    metadata = get_hf_file_metadata(url)
    assert (metadata.size, metadata.commit_hash) == (len(DATA), hub.sha)
    assert metadata.location.startswith(hub.storage_url)
    assert [r[3] for r in hub.requests] == [307, 302]
    assert fs.cat_file(f"datasets/{OLD}/data/part 0.bin", start=7, end=9, cache_type="none") == DATA[7:9]
    assert [r[3] for r in hub.requests][2:] == [307, 302, 206]
    # A gated repo's content stays gated there (the client keeps its token on a same-origin redirect).
    with pytest.raises(GatedRepoError):
        fs.cat_file("datasets/org/gated/data/part 0.bin")
    assert fs_for(hub, TOKEN).cat_file("datasets/org/gated/data/part 0.bin") == DATA


def test_the_cache_route_does_not_spend_the_resolver_budget(hub):
    hub.resolve_via_cache = True
    now = [0.0]
    hub.limit_rate(resolvers=2, api=1, window_s=300, clock=lambda: now[0])
    url = f"{hub.url}/datasets/{OLD}/resolve/main/data/part%200.bin"
    reads = [get_session().get(url, headers={"Range": "bytes=0-0"}) for _ in range(3)]
    assert [r.status_code for r in reads] == [206, 206, 429]
    assert reads[1].history[0].headers["RateLimit"] == '"resolvers";r=0;t=300'
    assert "RateLimit" not in reads[1].headers  # the cache route's answer: no budget of its own
    assert hub.budgets["api"].refused == 0
