"""`shardsql demo --serve` redirects reads to storage as the Hub does (test_cli's `demo --serve` test
runs every command through it), and `--slow-link` plays the slow link of the issue under a conversion."""

from types import SimpleNamespace

import pyarrow.parquet as pq
from click.testing import CliRunner

from shardsql.cli import cli
from shardsql.commands import demo
from shardsql.commands.demo import SLOW_LINK_PLAYS, serving
from shardsql.standin.hub.network import SLOW_LINK


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_served_stand_in_redirects_and_plays_the_slow_link_under_a_conversion(tmp_path, monkeypatch):
    with serving(tmp_path / "served", slow_link=True, realistic=False) as served:  # short texts: quicker
        hub = served.hub
        assert hub.redirect_files and hub.network.model == SLOW_LINK and served.plays == SLOW_LINK_PLAYS
        monkeypatch.setenv("HF_ENDPOINT", served.endpoint)
        cache = tmp_path / "cache"
        hub.reset_counters()
        result = run(
            "convert", "fineweb-edu", "--num-shards", "1", "--rows-per-shard", "500", "--cache-dir", str(cache)
        )
        assert result.exit_code == 0, result.output
        assert pq.read_metadata(cache / "data" / "shard_00000.parquet").num_rows == 500
        hub.settle()
        transfers = list(hub.transfers)
    storage = [t for t in transfers if t.server == "storage"]
    assert storage and all(t.status == 206 for t in storage), "ranged reads from the storage host"
    assert {t.status for t in transfers if t.kind == "resolve"} == {302}
    assert all(t.answered - t.received >= SLOW_LINK.rtt_s for t in transfers)  # a round trip each
    assert all(t.finished - t.answered >= t.body_bytes / SLOW_LINK.connection_bytes_per_s for t in transfers)


def test_demo_serve_says_what_it_plays(monkeypatch, tmp_path):
    def interrupt(seconds: float) -> None:  # Ctrl-C as soon as it starts serving
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "time", SimpleNamespace(sleep=interrupt))  # only the serve loop sleeps
    monkeypatch.setattr(demo, "SERVE_ROWS_PER_FILE", 100)  # what it says, not what it serves, is tested here
    plain = run("demo", "--serve", "--workdir", str(tmp_path / "plain"))
    assert "It plays the Hub's redirect of file reads to a storage host (signed URLs).\n" in plain.output
    slow = run("demo", "--serve", "--slow-link", "--workdir", str(tmp_path / "slow"))
    assert (
        "It plays a slow link: 100 ms round trip (2 more for a new connection), 4 MB/s a connection, "
        "25 MB/s for the whole link; and the Hub's redirect of file reads to a storage host (signed URLs).\n"
    ) in slow.output
    assert "--slow-link" in run("demo", "--help").output
