"""Being gentle with the real Hub, tested against the stand-in with the real huggingface_hub client:
rate limits waited out and said, timeouts on every call, Range-ignoring mirrors, cross-origin
storage, every hf:// URL form, and clear one-line errors for network and token failures."""

import io
import re
import socket

import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import read_texts
from seed_reference import seed_shards

from shardsql import tuning
from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.commands.preview import preview
from shardsql.definition import catalog
from shardsql.errors import SourceError
from shardsql.hub import retries
from shardsql.hub import urls as hub_urls
from shardsql.progress import PlainProgress
from shardsql.source import files as sources
from shardsql.source import footers
from shardsql.standin.samples import write_sample

HUB_URL = "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet"
WAIT_MESSAGE = "rate-limited by the Hub (resolvers): waiting 1 s (an HF_TOKEN raises the limit)"
CODE_REPO = "codeparrot/github-code-clean"
PARTIAL = "Python-all/partial-train/*.parquet"


def run(cache, progress=None):
    options = ConvertOptions(shuffle=False, num_shards=3, rows_per_shard=800, cache_dir=cache)
    return convert(catalog.resolve("fineweb-edu"), options, progress)


def shards(cache):
    return {p.name: read_texts(p) for p in sorted((cache / "data").glob("shard_*.parquet"))}


# --- rate limits -------------------------------------------------------------------------------


def test_a_conversion_under_a_resolver_budget_waits_says_so_and_writes_the_same_shards(
    hub, hub_dataset, tmp_path, small_units
):
    folder = hub_dataset("fineweb-edu", row_group_size=200)
    run(tmp_path / "free")
    hub.reset_counters()
    hub.limit_rate(resolvers=1, window_s=1)  # the conversion resolves each of its 3 files once
    output = io.StringIO()
    run(tmp_path / "limited", PlainProgress(output))  # the progress display of a CLI run in a log
    assert shards(tmp_path / "limited") == shards(tmp_path / "free")
    expected = seed_shards(sorted(folder.glob("*.parquet")), "text", 3, 800)[0]
    assert shards(tmp_path / "limited") == expected
    refused = [r for r in hub.requests if r[3] == 429]
    assert refused and hub.budgets["resolvers"].refused == len(refused)
    waits = [line for line in output.getvalue().splitlines() if line.startswith("rate-limited")]
    assert waits and set(waits) == {WAIT_MESSAGE}, output.getvalue()


def test_the_429_carries_only_ratelimit_headers(hub, hub_dataset):
    hub_dataset("fineweb-edu")
    hub.limit_rate(resolvers=1, window_s=300)
    hub.redirect_files = False  # the file itself answers, with the budget's headers
    from huggingface_hub.utils import get_session

    url = f"{hub.url}/datasets/HuggingFaceFW/fineweb-edu/resolve/main/sample/10BT/000_00000.parquet"
    first, second = get_session().get(url, headers={"Range": "bytes=0-3"}), get_session().get(url)
    assert (first.status_code, first.headers["RateLimit"]) == (206, '"resolvers";r=0;t=300')
    assert second.status_code == 429 and "retry-after" not in second.headers
    assert re.fullmatch(r'"resolvers";r=0;t=(300|299)', second.headers["RateLimit"])
    assert second.headers["RateLimit-Policy"] == '"fixed window";"resolvers";q=1;w=300'


def test_a_wait_beyond_the_window_ends_the_run_in_one_line(hub, hub_dataset):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    hub.limit_rate(resolvers=0, window_s=600)
    with pytest.raises(SourceError) as caught:
        footers.read_footer(source, source.files[0])
    size = source.files[0].size
    assert str(caught.value) == (
        f"the Hub rate-limits {source.files[0].url} (bytes {size - 8}-{size}) and asks to wait 600 s, beyond its "
        "300 s window. Run the same command again to resume from the last complete shard."
    )
    assert len([r for r in hub.requests if r[3] == 429]) == 1


def test_listing_under_an_api_budget_waits_and_lists(hub, hub_dataset, monkeypatch):
    hub_dataset("fineweb-edu")
    monkeypatch.setenv("HF_TOKEN", "hf_test_secret_token")  # with a token, the message has no hint
    hub.limit_rate(api=1, window_s=1)
    messages = []
    with retries.report_waits(messages.append):
        source = sources.open_source(HUB_URL)
    assert [f.url.rsplit("/", 1)[1] for f in source.files] == [f"00{i}_00000.parquet" for i in range(3)]
    assert hub.budgets["api"].refused >= 1
    assert messages and all(re.fullmatch(r"rate-limited by the Hub \(api\): waiting [12] s", m) for m in messages)


def test_rate_limit_waits_do_not_use_the_attempt_budget(tune, hub, hub_dataset):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    tune(rate_limit_margin_s=-0.95)  # wait 0.05 s where the Hub says 1 s
    hub.limit_rate(resolvers=0, window_s=1)
    refusals = tuning.current().retry_attempts + 2

    def lift_after_refusals(handler) -> bool:
        if hub.budgets and hub.budgets["resolvers"].refused >= refusals:
            hub.budgets = {}
        return False

    hub.before_response = lift_after_refusals
    messages = []
    with retries.report_waits(messages.append):
        assert footers.read_footer(source, source.files[0]).num_rows == 3000
    assert [r[3] for r in hub.requests if "/resolve/" in r[1]][: refusals + 1] == [429] * refusals + [302]
    assert messages[0] == WAIT_MESSAGE


# --- timeouts ----------------------------------------------------------------------------------


@pytest.fixture
def short_timeouts(tune, hub, monkeypatch):
    # A stalled request gets no answer until the stand-in stops (its default stall_s is a minute),
    # so it times out however long a timeout is; and 1 s leaves a loaded machine time to answer the
    # others (a loopback answer takes milliseconds) while the 11 stalls below cost 11 s in all.
    tune(read_timeout_s=1.0)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_ETAG_TIMEOUT", 1.0)


def test_stalled_reads_time_out_and_are_retried(hub, hub_dataset, tmp_path, short_timeouts):
    folder = hub_dataset("fineweb-edu", row_group_size=200)
    hub.stall("resolve", times=2)
    run(tmp_path)
    assert shards(tmp_path) == seed_shards(sorted(folder.glob("*.parquet")), "text", 3, 800)[0]
    assert hub.take_stall("resolve") is False, "both stalls were met"


def test_stalled_listing_calls_time_out_and_are_retried(hub, hub_dataset, short_timeouts):
    hub_dataset("fineweb-edu")
    hub.stall("api", times=3)
    assert len(sources.open_source(HUB_URL).files) == 3
    assert hub.take_stall("api") is False


def test_a_read_that_always_stalls_ends_in_a_clear_error(hub, hub_dataset, short_timeouts):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    hub.stall("resolve", times=tuning.current().retry_attempts)
    with pytest.raises(SourceError, match=r"after 6 attempts over \d+ s: timed out\. Run the same command again"):
        footers.read_footer(source, source.files[0])


# --- mirrors, redirects, tokens ----------------------------------------------------------------


def test_a_storage_host_that_ignores_range_is_named_at_its_first_answer(hub, hub_dataset):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    hub.redirect_files = hub.storage_ignores_range = True
    hub.reset_counters()
    with pytest.raises(SourceError) as caught:
        footers.read_footer(source, source.files[0])
    file, host = source.files[0], hub.storage_url.removeprefix("http://")
    assert str(caught.value) == (
        f"{host} ignores HTTP Range requests (asked for bytes {file.size - 8}-{file.size - 1} of {file.url}, it "
        "answered 200 with more): shardsql reads byte ranges only; use an endpoint that supports them"
    )
    assert len([r for r in hub.requests if r[1].startswith("/__storage/")]) == 1, "no second download"


def test_redirected_reads_keep_ranges_and_never_send_the_token_to_storage(hub, hub_dataset, tmp_path, monkeypatch):
    folder = hub_dataset("fineweb-edu", row_group_size=200, gated=True)
    monkeypatch.setenv("HF_TOKEN", "hf_test_secret_token")
    hub.redirect_files = True
    run(tmp_path)
    assert shards(tmp_path) == seed_shards(sorted(folder.glob("*.parquet")), "text", 3, 800)[0]
    storage = [r for r in hub.requests if r[1].startswith("/__storage/")]
    assert storage and all(r[3] == 206 and r[2] for r in storage), "ranges survive the redirect"
    seen = {(role, auth) for role, _, auth in hub.authorizations if role == "storage" or "/resolve/" in _}
    assert seen == {("hub", "Bearer hf_test_secret_token"), ("storage", None)}


def test_an_invalid_token_is_named(hub, hub_dataset, monkeypatch):
    hub_dataset("fineweb-edu")
    monkeypatch.setenv("HF_TOKEN", "not-a-token")
    with pytest.raises(SourceError) as caught:
        sources.open_source(HUB_URL)
    assert str(caught.value) == (
        f"the Hub ({hub.url}) rejects your HF_TOKEN as invalid: set a valid token, or unset HF_TOKEN "
        "(public datasets need none)"
    )


def test_a_dead_endpoint_says_what_was_tried(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once closed
    monkeypatch.setenv("HF_ENDPOINT", dead)
    with pytest.raises(SourceError) as caught:
        sources.open_source(HUB_URL)
    assert re.fullmatch(
        rf"cannot reach the Hub at {dead}: 6 attempts over \d+ s failed \(.*\)\. "
        r"Check HF_ENDPOINT and your network connection\.",
        str(caught.value),
    ), caught.value


# --- hf:// URLs and revisions ------------------------------------------------------------------


@pytest.fixture
def parquet_ref(hub, tmp_path):
    """A dataset's automatic parquet conversion: refs/convert/parquet with a partial-train folder."""
    root = tmp_path / "converted"
    write_sample("github-code-python", root, 2, 500, 250)  # Python-all/partial-train/0000.parquet, ...
    return hub.add_dataset(CODE_REPO, root, revision=hub_urls.PARQUET_REF)


@pytest.mark.parametrize(
    "url",
    [
        f"hf://datasets/{CODE_REPO}@refs/convert/parquet/{PARTIAL}",
        f"hf://datasets/{CODE_REPO}@refs%2Fconvert%2Fparquet/{PARTIAL}",
        f"hf://datasets/{CODE_REPO}@~parquet/{PARTIAL}",
    ],
)
def test_every_form_of_the_parquet_ref_reads_the_same_files(hub, parquet_ref, url):
    source = sources.open_source(url)
    assert (source.revision, source.commit) == ("refs/convert/parquet", parquet_ref)
    assert [f.url for f in source.files] == [
        f"hf://datasets/{CODE_REPO}/Python-all/partial-train/{i:04d}.parquet" for i in range(2)
    ]
    assert footers.read_footer(source, source.files[1]).num_rows == 500


def test_a_commit_in_the_url_and_the_definition_revision(hub, parquet_ref):
    pinned = sources.open_source(f"hf://datasets/{CODE_REPO}@{parquet_ref}/{PARTIAL}")
    assert (pinned.revision, pinned.commit, len(pinned.files)) == (parquet_ref, parquet_ref, 2)
    header = sources.open_source(f"hf://datasets/{CODE_REPO}/{PARTIAL}", "refs/convert/parquet")
    assert header.commit == parquet_ref
    same = sources.open_source(f"hf://datasets/{CODE_REPO}@~parquet/{PARTIAL}", "refs/convert/parquet")
    assert same.commit == parquet_ref


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("hf://datasets/a/b/x/*.parquet", ("datasets", "a/b", None, "x/*.parquet")),
        ("hf://datasets/a/b", ("datasets", "a/b", None, "*.parquet")),
        ("hf://datasets/a/b/x/@file.parquet", ("datasets", "a/b", None, "x/@file.parquet")),
        ("hf://datasets/a/b@v1.0/x/y.parquet", ("datasets", "a/b", "v1.0", "x/y.parquet")),
        ("hf://datasets/a/b@refs/pr/12/x/*.parquet", ("datasets", "a/b", "refs/pr/12", "x/*.parquet")),
        ("hf://datasets/a/b@refs/convert/duckdb/x.db", ("datasets", "a/b", "refs/convert/duckdb", "x.db")),
        ("hf://datasets/a/b@refs%2Fpr%2F3", ("datasets", "a/b", "refs/pr/3", "*.parquet")),
        (
            "hf://datasets/a/b@~parquet/default/*.parquet",
            ("datasets", "a/b", "refs/convert/parquet", "default/*.parquet"),
        ),
    ],
)
def test_hf_urls_split_as_huggingface_hub_splits_them(url, expected):
    from huggingface_hub.utils import parse_hf_uri

    parsed = hub_urls.parse_url(url)
    assert (parsed.type, parsed.repo, parsed.revision, parsed.pattern) == expected
    if "~" not in url:  # huggingface_hub knows no alias; everything else it splits the same way
        theirs = parse_hf_uri(url)
        assert (theirs.id, theirs.revision) == (parsed.repo, parsed.revision)
    assert hub_urls.parse_url("/data/local/*.parquet") is None and hub_urls.parse_url("s3://bucket/x") is None


def test_a_url_revision_that_disagrees_is_an_error_unless_overridden(hub, parquet_ref):
    url = f"hf://datasets/{CODE_REPO}@main/{PARTIAL}"
    with pytest.raises(SourceError) as caught:
        sources.open_source(url, "refs/convert/parquet")
    assert str(caught.value) == (
        f"{url} names revision 'main' but the definition's revision is 'refs/convert/parquet': make them agree "
        "(or pass --revision, which overrides both)"
    )
    assert sources.open_source(url, "refs/convert/parquet", override=True).commit == parquet_ref


def test_definition_header_against_url_revision_and_the_command_line_override(hub, parquet_ref, tmp_path):

    definition = tmp_path / "code.sql"
    source = f"hf://datasets/{CODE_REPO}@~parquet/{PARTIAL}"
    definition.write_text(
        f"-- description: code\n-- source: {source}\n-- revision: main\n\nSELECT code AS text FROM source\n"
    )
    with pytest.raises(
        SourceError, match=r"names revision 'refs/convert/parquet' but the definition's revision is 'main'"
    ):
        preview(catalog.resolve(str(definition)), ConvertOptions(num_shards=1, rows_per_shard=100, cache_dir=tmp_path))
    options = ConvertOptions(num_shards=1, rows_per_shard=100, cache_dir=tmp_path, revision=parquet_ref)
    assert preview(catalog.resolve(str(definition)), options).source.commit == parquet_ref  # --revision wins


def test_a_hub_gone_mid_run_says_to_check_the_network(hub, hub_dataset):
    hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    hub.stop()
    with pytest.raises(SourceError) as caught:
        footers.read_footer(source, source.files[0])
    assert re.fullmatch(
        r"cannot read .*000_00000\.parquet \(bytes \d+-\d+\) after 6 attempts over \d+ s: .*\. "
        r"Check HF_ENDPOINT and your network connection\. Run the same command again to resume from the last "
        r"complete shard\.",
        str(caught.value),
    ), caught.value


def test_a_206_longer_than_the_range_is_a_range_ignoring_server(hub, hub_dataset):
    folder = hub_dataset("fineweb-edu")
    source = sources.open_source(HUB_URL)
    data = (folder / "000_00000.parquet").read_bytes()

    def whole_file_as_206(handler) -> bool:
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        return True

    hub.before_response = whole_file_as_206
    hub.reset_counters()
    with pytest.raises(SourceError, match=r"^127\.0\.0\.1:\d+ ignores HTTP Range requests \(asked for bytes"):
        footers.read_footer(source, source.files[0])
    assert len(hub.requests) == 1


def test_a_listing_asked_to_wait_beyond_the_window_ends_at_once(hub, hub_dataset):
    hub_dataset("fineweb-edu")
    hub.limit_rate(api=1, window_s=600)  # the repo info, then the tree listing is refused for 600 s
    with pytest.raises(SourceError) as caught:
        sources.open_source(HUB_URL)
    assert str(caught.value) == (
        "the Hub rate-limits a listing and asks to wait 600 s, beyond its 300 s window. "
        "Run the same command again to resume from the last complete shard."
    )
    assert [r[3] for r in hub.requests] == [200, 429]


def test_offline_mode_fails_at_once(hub, hub_dataset, monkeypatch):
    hub_dataset("fineweb-edu")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        SourceError, match=r"^cannot read HuggingFaceFW/fineweb-edu at the Hub .*offline mode is enabled"
    ):
        sources.open_source(HUB_URL)
    assert hub.requests == []


def test_a_bug_inside_a_read_is_not_retried_nor_reported_as_a_network_fault(hub, hub_dataset, tmp_path, monkeypatch):
    """Only transient failures are retried: a programming error in a read surfaces at once,
    as itself, and the CLI says it is unexpected (not "cannot read ... run again to resume")."""
    from click.testing import CliRunner

    from shardsql.cli import cli
    from shardsql.hub.reader import HubReader

    hub_dataset("fineweb-edu")
    calls = []

    def buggy_read(self, file, start, end):
        calls.append((start, end))
        return {}["a key that is not there"]

    monkeypatch.setattr(HubReader, "read", buggy_read)
    source = sources.open_source(HUB_URL)
    with pytest.raises(KeyError):
        footers.read_footer(source, source.files[0])
    assert len(calls) == 1, "a bug is not retried"
    result = CliRunner().invoke(cli, ["convert", "fineweb-edu", "--yes", "--quiet", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: unexpected KeyError: 'a key that is not there'") and "please report it" in last
    # The first files' footers are read in parallel: each read once, none retried.
    assert "resume" not in result.output and len(calls) >= 2 and len(set(calls[1:])) == len(calls[1:])


def test_a_listing_is_two_api_calls_and_globs_as_fsspec_does(hub, tmp_path):
    """The revision pinned (repo info) and one listing of the glob's fixed folder, recursive only
    where the glob reaches below it; each listing call is a round trip on a real link. The files
    matched are those fsspec's glob rules match (HfFileSystem.glob's), parquet only."""
    root = tmp_path / "repo"
    for name in ["data/a.parquet", "data/b.parquet", "data/notes.txt", "data/x/c.parquet", "data/x/y/d.parquet",
                 "other/e.parquet", "top.parquet"]:  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"text": ["t"]}), root / name)
    hub.add_dataset("org/globs", root)
    repo = "hf://datasets/org/globs"
    expected = {
        "data/*.parquet": ["data/a.parquet", "data/b.parquet"],
        "data/**/*.parquet": ["data/a.parquet", "data/b.parquet", "data/x/c.parquet", "data/x/y/d.parquet"],
        "data/*/*.parquet": ["data/x/c.parquet"],
        "d*/[ab].parquet": ["data/a.parquet", "data/b.parquet"],
        "data/x/c.parquet": ["data/x/c.parquet"],
        "*.parquet": ["top.parquet"],
        "**/*.parquet": [
            "data/a.parquet",
            "data/b.parquet",
            "data/x/c.parquet",
            "data/x/y/d.parquet",
            "other/e.parquet",
            "top.parquet",
        ],
    }
    for pattern, files in expected.items():
        hub.reset_counters()
        source = sources.open_source(f"{repo}/{pattern}")
        assert [f.url.removeprefix(repo + "/") for f in source.files] == files, pattern
        api = [r[1].split("?")[0] for r in hub.requests if r[1].startswith("/api/")]
        assert len(api) == 2 and "/revision/" in api[0] and "/tree/" in api[1], (pattern, api)
    with pytest.raises(SourceError, match="no parquet files match"):
        sources.open_source(f"{repo}/missing/*.parquet")
