import dataclasses
import json
import re

import pyarrow.parquet as pq
import pytest
from seed_reference import seed_shards

from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.commands.preview import preview
from shardsql.definition import catalog
from shardsql.errors import ConversionError, DefinitionError, OptionsError, SourceError
from shardsql.output.cache_dir import CacheDir


def _text_chunks_needed(files, rows_needed: int) -> int:
    """Compressed bytes of the `text` chunks of the row groups holding the first `rows_needed` rows."""
    total = seen = 0
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        text = metadata.schema.to_arrow_schema().get_field_index("text")
        for i in range(metadata.num_row_groups):
            if seen >= rows_needed:
                return total
            total += metadata.row_group(i).column(text).total_compressed_size
            seen += metadata.row_group(i).num_rows
    return total


@pytest.mark.parametrize("workers", [1, 2, 16])
def test_bytes_served_stay_near_the_text_chunks_needed(tune, hub, hub_dataset, tmp_path, workers):
    tune(unit_bytes=256 << 10)  # units of several row groups, as real files have
    folder = hub_dataset("fineweb-edu", files=4, rows_per_file=3000, row_group_size=250)
    files = sorted(folder.glob("*.parquet"))
    hub.reset_counters()
    options = ConvertOptions(shuffle=False, num_shards=3, rows_per_shard=1500, cache_dir=tmp_path, workers=workers)
    convert(catalog.resolve("fineweb-edu"), options)
    _, docs_read, _ = seed_shards(files, "text", 3, 1500)
    needed = _text_chunks_needed(files, docs_read)
    assert docs_read < 12_000, "the conversion must stop before the end of the source"
    print(f"served {hub.bytes_served} bytes for {needed} bytes of text chunks needed")
    # Gaps fetched within 15%, and the last units cut to the rows still needed (at the keep
    # ratio so far, with a margin): within 1.25x of the chunks needed whatever the workers,
    # footers aside. (Whole units of this size went a unit beyond: 1.27x.)
    footers = sum(pq.ParquetFile(path).metadata.serialized_size + 8 for path in files)
    assert hub.bytes_served - footers <= 1.25 * needed, (hub.bytes_served, footers, needed)
    file_gets = [r for r in hub.requests if r[0] == "GET" and ("/resolve/" in r[1] or r[1].startswith("/__storage/"))]
    assert file_gets and all(r[2] for r in file_gets), "no whole-file GET"


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_validation_shards_tokens_are_counted_as_it_is_written_not_read_back(hub, hub_dataset, tmp_path,
                                                                                  monkeypatch, shuffle):  # fmt: skip
    """The token estimate of the validation shard (UTF-8 bytes / 4), in the summary and the
    manifest, comes from the texts as the writer took them: the shard is not read back for it."""
    from shardsql.output import verify

    hub_dataset("fineweb-edu-high")
    monkeypatch.setattr(verify, "_text_bytes", lambda path: pytest.fail(f"{path.name} was read back"))
    options = ConvertOptions(num_shards=2, rows_per_shard=1000, cache_dir=tmp_path, shuffle=shuffle)
    result = convert(catalog.resolve("fineweb-edu-high"), options)
    texts = pq.read_table(tmp_path / "data" / "shard_06542.parquet").column("text").to_pylist()
    expected = sum(len(text.encode()) for text in texts) // 4
    assert result.val_tokens == expected > 0
    assert json.loads(result.manifest_path.read_text())["validation"]["tokens"] == expected


def test_manifest_records_how_the_shards_were_made(hub, hub_dataset, tmp_path, monkeypatch):
    hub_dataset("fineweb-edu-high")
    monkeypatch.setenv("HF_TOKEN", "hf_test_secret_token")
    options = ConvertOptions(num_shards=2, rows_per_shard=1000, cache_dir=tmp_path)
    result = convert(catalog.resolve("fineweb-edu-high"), options)
    text = (tmp_path / "data" / "manifest.json").read_text()
    record = json.loads(text)
    definition = catalog.resolve("fineweb-edu-high")
    assert record["dataset"] == "fineweb-edu-high"
    assert record["definition"]["text"] == definition.text
    assert record["definition"]["sha256"] == definition.sha256
    assert record["source"]["commit"] == result.source.commit
    assert record["source"]["revision"] == "main"
    assert [f["url"].rsplit("/", 1)[1] for f in record["source"]["files"]] == [
        "000_00000.parquet",
        "001_00000.parquet",
        "002_00000.parquet",
    ]
    assert record["options"]["num_shards"] == 2 and record["options"]["rows_per_shard"] == 1000
    assert record["rows"]["read"] == result.rows_read
    assert record["rows"]["kept"] + record["rows"]["filtered"] == record["rows"]["read"]
    assert record["rows"]["written"] == 3000
    assert [s["name"] for s in record["shards"]] == [
        "shard_00000.parquet",
        "shard_00001.parquet",
        "shard_06542.parquet",
    ]
    for shard in record["shards"]:
        path = tmp_path / "data" / shard["name"]
        assert shard["bytes"] == path.stat().st_size
        assert shard["rows"] == pq.ParquetFile(path).metadata.num_rows
    assert record["shardsql_version"]
    assert "hf_test_secret_token" not in text


def test_local_source_override_and_num_source(hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu")
    options = ConvertOptions(
        shuffle=False, num_shards=5, rows_per_shard=1000, source=str(folder), num_source=1, cache_dir=tmp_path
    )
    result = convert(catalog.resolve("fineweb-edu"), options)
    assert len(result.source.files) == 1
    assert result.ran_out, "one file of 3000 rows cannot fill 6 shards of 1000"
    expected, _, _ = seed_shards([folder / "000_00000.parquet"], "text", 5, 1000)
    assert [s.name for s in result.shards] == list(expected)


def test_revision_override_is_resolved_and_recorded(hub, hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu")
    commit = hub.add_dataset("HuggingFaceFW/fineweb-edu", folder.parent.parent, revision="v2")
    options = ConvertOptions(num_shards=1, rows_per_shard=1000, revision="v2", cache_dir=tmp_path)
    result = convert(catalog.resolve("fineweb-edu"), options)
    assert (result.source.revision, result.source.commit) == ("v2", commit)


def _live(cache: CacheDir) -> dict:
    return {
        p.relative_to(cache.root).as_posix(): p.read_bytes()
        for p in cache.root.rglob("*")
        if p.is_file() and not p.name.startswith(".shardsql")
    }


@pytest.fixture
def climbmix(tmp_path):
    """A cache folder holding 'original' data and a tokenizer, as autoresearch leaves it."""
    cache = CacheDir(tmp_path / "cache")
    cache.data.mkdir(parents=True)
    (cache.data / "shard_00000.parquet").write_bytes(b"climbmix shard")
    cache.tokenizer.mkdir()
    (cache.tokenizer / "tokenizer.pkl").write_bytes(b"tok")
    return cache


def test_old_data_is_backed_up_with_its_label_and_tokenizer_removed(hub_dataset, climbmix):
    folder = hub_dataset("fineweb-edu")
    before = _live(climbmix)
    options = ConvertOptions(num_shards=1, rows_per_shard=1000, source=str(folder), cache_dir=climbmix.root)
    result = convert(catalog.resolve("fineweb-edu"), options)
    assert result.backup == climbmix.root / "backup_climbmix"
    assert (result.backup / "data" / "shard_00000.parquet").read_bytes() == before["data/shard_00000.parquet"]
    assert (result.backup / "tokenizer" / "tokenizer.pkl").read_bytes() == b"tok"
    assert not climbmix.tokenizer.exists(), "prepare.py must train a new tokenizer"
    # A second conversion backs up the fineweb-edu set under its own name, next to climbmix.
    result = convert(catalog.resolve("fineweb-edu"), options)
    assert result.backup == climbmix.root / "backup_fineweb-edu"
    result = convert(catalog.resolve("fineweb-edu"), options)
    assert result.backup == climbmix.root / "backup_fineweb-edu-2", "an existing backup is never overwritten"
    assert (climbmix.root / "backup_climbmix" / "data" / "shard_00000.parquet").exists()


def test_skip_backup_replaces_the_data(hub_dataset, climbmix):
    folder = hub_dataset("fineweb-edu")
    options = ConvertOptions(
        num_shards=1, rows_per_shard=1000, source=str(folder), cache_dir=climbmix.root, skip_backup=True
    )
    result = convert(catalog.resolve("fineweb-edu"), options)
    assert result.backup is None
    assert sorted(p.name for p in climbmix.root.iterdir() if not p.name.startswith(".")) == ["data"]


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("SELECT body AS text FROM source", DefinitionError),
        ("SELECT text FROM source WHERE false", ConversionError),
    ],
)
def test_a_failed_conversion_leaves_the_live_data_untouched(hub_dataset, climbmix, tmp_path, sql, error):
    folder = hub_dataset("fineweb-edu")
    path = tmp_path / "mine.sql"
    path.write_text(f"-- description: d\n-- source: {folder}\n\n{sql}\n")
    before = _live(climbmix)
    with pytest.raises(error):
        convert(catalog.resolve(str(path)), ConvertOptions(num_shards=1, rows_per_shard=1000, cache_dir=climbmix.root))
    assert _live(climbmix) == before
    assert not climbmix.staging.exists()


def test_too_little_data_for_a_training_shard_is_an_error(hub_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSQL_COMMAND", "./dev shardsql")
    folder = hub_dataset("fineweb-edu", files=1, rows_per_file=500)
    options = ConvertOptions(num_shards=2, rows_per_shard=1000, source=str(folder), cache_dir=tmp_path)
    with pytest.raises(ConversionError) as error:
        convert(catalog.resolve("fineweb-edu"), options)
    assert not (tmp_path / "data").exists()
    # Where the rows went, and only what can help: the source was read whole (no --num-source).
    message = str(error.value)
    went = r"500 rows read, [\d,]+ removed by the filter, [\d,]+ duplicate texts? removed: [\d,]+ left"
    left = int(re.search(r"([\d,]+) left", message)[1].replace(",", ""))
    assert left < 1000 and re.match(rf"the source ran out: {went}, less than one shard of 1,000;", message), message
    assert "`./dev shardsql explain fineweb-edu`" in message
    assert "--num-source" not in message and "more source files" not in message
    # The size it suggests gives the shards asked for, a validation shard as large as the others.
    suggested = int(re.search(r"--rows-per-shard ([\d,]+) for 2 \+ 1 shards", message)[1].replace(",", ""))
    assert suggested == left // 3
    done = convert(catalog.resolve("fineweb-edu"), dataclasses.replace(options, rows_per_shard=suggested))
    assert [s.rows for s in done.shards] == [suggested] * 3 and not done.ran_out


def test_a_filter_that_keeps_nothing_names_the_filter_and_explain(hub_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSQL_COMMAND", "./dev shardsql")
    folder = hub_dataset("fineweb-edu", files=1, rows_per_file=500)
    path = tmp_path / "none.sql"
    path.write_text(f"-- description: d\n-- source: {folder}\n\nSELECT text FROM source WHERE length(text) > 10**9\n")
    options = ConvertOptions(num_shards=2, rows_per_shard=100, cache_dir=tmp_path / "cache", num_source=1)
    with pytest.raises(ConversionError) as error:
        convert(catalog.resolve(str(path)), options)
    assert str(error.value) == (
        f"none's filter kept no rows: 500 rows read, every one removed by its WHERE. See what each condition removes "
        f"with `./dev shardsql explain {path}`, and loosen it. Your data folder was not changed."
    )


def test_invalid_options_are_refused(tmp_path):
    with pytest.raises(OptionsError, match="--rows-per-shard must be at least 1"):
        ConvertOptions(rows_per_shard=0).validate()
    with pytest.raises(OptionsError, match="--num-source must be at least 1"):
        ConvertOptions(num_source=0).validate()
    with pytest.raises(OptionsError, match="--engine must be one of local, ray, got 'spark'"):
        ConvertOptions(engine="spark").validate()


def test_the_dry_run_reads_only_footers(hub, hub_dataset):
    folder = hub_dataset("fineweb-edu")
    hub.reset_counters()
    p = preview(catalog.resolve("fineweb-edu"), ConvertOptions(num_shards=2, rows_per_shard=1000))
    footers = sum(pq.ParquetFile(f).metadata.serialized_size + 8 for f in folder.glob("*.parquet"))
    assert hub.bytes_served == footers
    assert p.source_rows == 9000 and p.rows_wanted == 3000
    assert p.columns == ["text"]


def test_unknown_source_is_a_source_error(hub, tmp_path):
    with pytest.raises(SourceError, match="not found"):
        convert(catalog.resolve("fineweb-edu"), ConvertOptions(cache_dir=tmp_path))


@pytest.mark.parametrize(
    "body",
    [
        "COPY (SELECT text FROM source) TO '{target}'",
        "SELECT content AS text FROM read_text('{secret}')",
        "SELECT text FROM source; COPY (SELECT 1) TO '{target}'",
        "WITH t AS (SELECT * FROM read_csv('{secret}')) SELECT column0 AS text FROM t",
        "SELECT text FROM source WHERE length(text) > (SELECT count(*) FROM glob('{secret}'))",
    ],
)
def test_hostile_definitions_are_refused_and_nothing_is_written(hub_dataset, climbmix, tmp_path, body):
    folder = hub_dataset("fineweb-edu")
    secret, target = tmp_path / "secret.txt", tmp_path / "stolen.csv"
    secret.write_text("x" * 100)
    path = tmp_path / "hostile.sql"
    path.write_text(f"-- description: d\n-- source: {folder}\n\n{body.format(secret=secret, target=target)}\n")
    before = _live(climbmix)
    with pytest.raises(DefinitionError):
        convert(catalog.resolve(str(path)), ConvertOptions(num_shards=1, rows_per_shard=1000, cache_dir=climbmix.root))
    assert not target.exists()
    assert _live(climbmix) == before and not climbmix.staging.exists()


def test_the_token_never_appears_in_output_or_manifest(hub, hub_dataset, tmp_path, monkeypatch, capfd):
    hub_dataset("fineweb-edu", gated=True)
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_secret_value")
    from click.testing import CliRunner

    from shardsql.cli import cli

    failed = CliRunner().invoke(cli, ["--debug", "convert", "fineweb-edu", "--cache-dir", str(tmp_path), "--yes"])
    assert failed.exit_code == 1 and "your HF_TOKEN has no access" in failed.output
    monkeypatch.setenv("HF_TOKEN", "hf_test_secret_token")
    ok = CliRunner().invoke(cli, ["convert", "fineweb-edu", "--num-shards", "1", "--rows-per-shard", "1000",
                                  "--cache-dir", str(tmp_path), "--yes"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    captured = capfd.readouterr()
    everything = failed.output + ok.output + captured.out + captured.err
    everything += "".join(
        p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".parquet"
    )
    assert "hf_wrong_secret_value" not in everything and "hf_test_secret_token" not in everything


def test_file_reads_follow_the_hubs_redirect_to_storage(hub, hub_dataset, tmp_path):
    folder = hub_dataset("fineweb-edu")
    hub.reset_counters()
    convert(
        catalog.resolve("fineweb-edu"),
        ConvertOptions(shuffle=False, num_shards=2, rows_per_shard=1000, cache_dir=tmp_path),
    )
    redirects = [r for r in hub.requests if "/resolve/" in r[1]]
    storage = [r for r in hub.requests if r[1].startswith("/__storage/")]
    assert redirects and all(r[3] == 302 for r in redirects)
    assert storage and all(r[3] == 206 and r[2] for r in storage), "ranges survive the redirect"
    expected, _, _ = seed_shards(sorted(folder.glob("*.parquet")), "text", 2, 1000)
    for name, rows in expected.items():
        assert pq.read_table(tmp_path / "data" / name)["text"].to_pylist() == rows
