"""Serving nanochat as well as autoresearch (issue 27): `--for nanochat` writes the same shards
into nanochat's data folder, backs up its data and tokenizer, resumes, and `verify`, `backups`
and `restore` know its layout; the shards read as nanochat's loader reads them."""

import hashlib
import re
import shlex
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import StopAfter, no_toy_set

from shardsql import report
from shardsql.autoresearch import ROW_GROUP_SIZE, VAL_SHARD_NAME
from shardsql.cli import cli
from shardsql.commands.convert import convert
from shardsql.commands.demo import Served
from shardsql.commands.options import ConvertOptions
from shardsql.consumers import AUTORESEARCH, NANOCHAT
from shardsql.definition import catalog
from shardsql.output import verify
from shardsql.progress import Progress
from shardsql.standin.samples import LAYOUTS, write_sample

DATA = "base_data_climbmix"
TOK_TRAIN, BASE_TRAIN = "python -m scripts.tok_train", "python -m scripts.base_train"
DOWNLOADER = "Do not run nanochat's downloader, python -m nanochat.dataset -n N, on this folder"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A generated FineWeb-Edu sample: 3 files of 3,000 rows in 500-row groups."""
    root = tmp_path_factory.mktemp("source")
    write_sample("fineweb-edu", root, files=3, rows_per_file=3000, row_group_size=500)
    return root / LAYOUTS["fineweb-edu"][2]


@pytest.fixture
def home(monkeypatch, tmp_path):
    """NANOCHAT_BASE_DIR set to a folder of its own, and a HOME that must stay empty."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "nanochat-base"))
    return home


def old_nanochat(base):
    """nanochat's folder as its downloader and tokenizer training leave it, plus a checkpoint."""
    files = {
        f"{DATA}/shard_00000.parquet": b"climbmix shard 0",
        f"{DATA}/{VAL_SHARD_NAME}": b"climbmix validation shard",
        "tokenizer/tokenizer.pkl": b"climbmix tokenizer",
        "tokenizer/token_bytes.pt": b"climbmix token bytes",
        "base_checkpoints/d20/model_000100.pt": b"a model trained on climbmix",
    }
    for name, content in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(content)
    return files


def nanochats_reading(data_dir, split: str, rank: int = 0, world: int = 1) -> list[str]:
    """The texts nanochat's loader gives one GPU rank, as issue 27 describes it (not its code):
    every *.parquet file in sorted order, the last one the validation split and the others
    training; rank `rank` of `world` reads row groups rank, rank + world, ... of each file."""
    files = sorted(data_dir.glob("*.parquet"))
    files = files[:-1] if split == "train" else files[-1:]
    texts = []
    for path in files:
        parquet = pq.ParquetFile(path)
        for group in range(rank, parquet.num_row_groups, world):
            texts += parquet.read_row_group(group, columns=["text"]).column("text").to_pylist()
    return texts


def shard_hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_nanochats_loader_reads_the_shards_from_its_base_folder(source, home, tmp_path):
    base = tmp_path / "nanochat-base"
    result = run("convert", "fineweb-edu", "--for", "nanochat", "--source", source, "--num-shards", 2,
                 "--rows-per-shard", 2048, "--yes")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = base / DATA
    names = [p.name for p in sorted(data.glob("*.parquet"))]
    assert names == ["shard_00000.parquet", "shard_00001.parquet", VAL_SHARD_NAME]
    # Every shard in 1,024-row groups, so that each rank's stride takes whole groups.
    for path in data.glob("*.parquet"):
        metadata = pq.read_metadata(path)
        assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [ROW_GROUP_SIZE] * 2
    training = [t for name in names[:-1] for t in pq.read_table(data / name)["text"].to_pylist()]
    validation = nanochats_reading(data, "val")
    assert validation == pq.read_table(data / VAL_SHARD_NAME)["text"].to_pylist() and len(validation) == 2048
    for world in (1, 2, 4):
        per_rank = [nanochats_reading(data, "train", rank, world) for rank in range(world)]
        # The ranks together read every training row once, and no rank a validation row.
        assert Counter(t for texts in per_rank for t in texts) == Counter(training), world
        if world == 2:  # two row groups a shard: one for each rank
            assert [len(texts) for texts in per_rank] == [2 * 1024, 2 * 1024]
    assert not set(validation) & set(training)
    assert all(isinstance(t, str) and t for t in training + validation)
    assert not (home / ".cache").exists(), "autoresearch's folder and ~/.cache/nanochat stay untouched"
    # The summary gives nanochat's next steps, in order, and its downloader's trap; not autoresearch's.
    out = result.output
    assert f"in {data}" in out and "Next: in your nanochat checkout, train the tokenizer" in out
    assert out.index(TOK_TRAIN) < out.index(BASE_TRAIN) < out.index(DOWNLOADER)
    assert "export NANOCHAT_BASE_DIR" not in out, "nanochat reads this base folder already"
    assert "prepare.py" not in out


def test_a_nanochat_conversion_backs_up_its_data_and_tokenizer_and_restore_brings_them_back(source, home, tmp_path):
    base = tmp_path / "nanochat-base"
    before = old_nanochat(base)
    result = run("convert", "fineweb-edu", "--for", "nanochat", "--source", source, "--num-shards", 2,
                 "--rows-per-shard", 1000, "--yes")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"backup:  previous data and tokenizer in {base / 'backup_climbmix'}" in result.output
    backup = base / "backup_climbmix"
    for name, content in before.items():
        kept = base / name if name.startswith("base_checkpoints/") else backup / name
        assert kept.read_bytes() == content, name
    assert not (base / "tokenizer").exists(), "nanochat must train a tokenizer for the new data"
    assert not (base / "data").exists(), "nothing in autoresearch's layout"
    assert len(list((base / DATA).glob("*.parquet"))) == 3

    listing = run("backups", "--for", "nanochat")
    assert listing.exit_code == 0, listing.output
    assert "climbmix  climbmix                   2" in listing.output
    assert f"Live data: fineweb-edu in {base / DATA} (for nanochat)" in listing.output
    # Without --for, the layout is found from the live data's manifest.
    assert run("backups", "--cache-dir", base).output == listing.output

    restored = run("restore", "--for", "nanochat")
    assert restored.exit_code == 0, restored.output
    assert f"Restored climbmix (2 shards) into {base / DATA}." in restored.output
    assert "now the backup fineweb-edu" in restored.output
    assert {name: (base / name).read_bytes() for name in before} == before
    # The live climbmix data has no manifest: the layout is found from the folders' names.
    again = run("restore", "fineweb-edu", "--cache-dir", base)
    assert again.exit_code == 0, again.output
    assert f"Restored fineweb-edu (3 shards) into {base / DATA}." in again.output
    assert (base / "backup_climbmix" / "tokenizer" / "tokenizer.pkl").read_bytes() == b"climbmix tokenizer"
    assert run("verify", "--for", "nanochat").exit_code == 0


def test_cache_dir_overrides_nanochats_base_folder(source, home, tmp_path):
    env_base, given = tmp_path / "nanochat-base", tmp_path / "elsewhere"
    before = old_nanochat(env_base)
    result = run("convert", "fineweb-edu", "--for", "nanochat", "--source", source, "--num-shards", 1,
                 "--rows-per-shard", 1000, "--cache-dir", given, "--yes")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (given / DATA).glob("*.parquet")) == ["shard_00000.parquet", VAL_SHARD_NAME]
    assert {name: (env_base / name).read_bytes() for name in before} == before
    assert not list(env_base.glob("backup_*"))
    # nanochat must then read the folder the shards went to: the first step says how.
    steps = result.output[result.output.index("Next: in your nanochat checkout") :].splitlines()
    assert steps[1:3] == [f"  export NANOCHAT_BASE_DIR={given}", f"  {TOK_TRAIN}"]


def export_line(output: str) -> str | None:
    """The summary's `export NANOCHAT_BASE_DIR=...` line, if any."""
    steps = output[output.index("Next: in your nanochat checkout") :].splitlines()
    return steps[1] if steps[1].startswith("  export ") else None


def test_a_relative_cache_dir_is_exported_absolute_for_nanochats_checkout(source, home, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # the user's folder now; their nanochat checkout is elsewhere
    result = run("convert", "fineweb-edu", "--for", "nanochat", "--source", source, "--num-shards", 1,
                 "--rows-per-shard", 1000, "--cache-dir", "rel cd", "--yes")  # fmt: skip
    assert result.exit_code == 0, result.output
    given = work / "rel cd"
    assert (given / DATA / VAL_SHARD_NAME).is_file()
    assert f"in {given / DATA}" in result.output
    assert export_line(result.output) == f"  export NANOCHAT_BASE_DIR={shlex.quote(str(given))}"
    assert "'" in export_line(result.output), "quoted, as a shell reads it"


@pytest.mark.parametrize("value", ["nc-rel", "~/nc"])
def test_a_nanochat_base_dir_nanochat_reads_elsewhere_is_exported_absolute(value, source, home, tmp_path,
                                                                            monkeypatch):  # fmt: skip
    """nanochat reads a relative NANOCHAT_BASE_DIR from its checkout, and expands no "~"; shardsql
    reads it from where it runs, "~" expanded: the next steps export the folder it wrote."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("NANOCHAT_BASE_DIR", value)
    result = run("convert", "fineweb-edu", "--for", "nanochat", "--source", source, "--num-shards", 1,
                 "--rows-per-shard", 1000, "--yes")  # fmt: skip
    assert result.exit_code == 0, result.output
    base = work / "nc-rel" if value == "nc-rel" else home / "nc"
    assert (base / DATA / VAL_SHARD_NAME).is_file()
    assert export_line(result.output) == f"  export NANOCHAT_BASE_DIR={base}"


def test_an_interrupted_nanochat_conversion_resumes_to_autoresearchs_very_shards(source, home, tmp_path):
    base = tmp_path / "nanochat-base"
    before = old_nanochat(base)
    definition = catalog.resolve("fineweb-edu")
    common = {"num_shards": 3, "rows_per_shard": 1024, "source": str(source)}
    reference = convert(definition, ConvertOptions(**common, cache_dir=tmp_path / "autoresearch"))
    options = ConvertOptions(**common, consumer=NANOCHAT)  # its base folder: NANOCHAT_BASE_DIR's
    assert options.cache_dir == base
    with pytest.raises(KeyboardInterrupt):
        convert(definition, options, progress=StopAfter(1))
    assert {name: (base / name).read_bytes() for name in before} == before, "the live data is untouched"
    assert (base / ".shardsql-staging" / "checkpoint.json").is_file()
    messages = []

    class Recorder(Progress):
        def message(self, text):
            messages.append(text)

    result = convert(definition, options, Recorder())
    assert messages[0].startswith("Resuming an interrupted run after "), messages
    assert result.data_dir == base / DATA and result.backup == base / "backup_climbmix"
    assert shard_hashes(base / DATA) == shard_hashes(reference.data_dir), "the same shards for either consumer"
    record = verify.verify(base / DATA).manifest
    assert record["options"]["consumer"] == "nanochat" and record["options"]["cache_dir"] == str(base)


def test_a_second_nanochat_conversion_is_refused_while_one_runs(source, home, tmp_path):
    base = tmp_path / "nanochat-base"
    old_nanochat(base)
    with ConvertOptions(consumer=NANOCHAT).cache.lock():
        result = run("convert", "fineweb-edu", "--for", "nanochat", "--source", source, "--yes")
        assert result.exit_code == 1 and "is in use by another shardsql conversion" in result.output
        assert "in use by another shardsql" in run("restore", "--for", "nanochat").output


@pytest.fixture(scope="module")
def converted(source, tmp_path_factory):
    """One nanochat conversion (2 training shards of 1,000 rows + the validation shard), made once."""
    base = tmp_path_factory.mktemp("nanochat")
    convert(catalog.resolve("fineweb-edu"), ConvertOptions(num_shards=2, rows_per_shard=1000, source=str(source),
                                                           consumer=NANOCHAT, cache_dir=base))  # fmt: skip
    return base / DATA


@pytest.fixture
def data(converted, tmp_path):
    """A fresh copy of the nanochat set, in a folder of nanochat's name, for one test to tamper with."""
    return shutil.copytree(converted, tmp_path / DATA)


def write_texts(path, texts) -> None:
    pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), path)


def test_verify_checks_a_nanochat_set_for_nanochat_found_from_its_manifest(data, tmp_path):
    report = verify.verify(data)
    assert report.ok, report.errors
    assert report.consumer == NANOCHAT and report.shards_checked == 3
    assert report.warnings == [], "a toy set, as its summary said nothing of the validation shard's size"
    assert verify.verify(data, AUTORESEARCH).consumer == AUTORESEARCH, "--for outranks the manifest"
    # A full-sized set: sized for nanochat's evaluation (base_train's --eval-tokens), which says what it assumes.
    (_, warning) = verify.verify(no_toy_set(tmp_path / "full" / DATA)).warnings
    assert warning == (
        f"{VAL_SHARD_NAME}: the validation shard holds about 2,000 tokens (UTF-8 bytes / 4), under the 67,108,864 "
        "tokens that nanochat's evaluation reads without repeating text (at the default --eval-tokens of python -m "
        "scripts.base_train; a larger value needs more); --val-rows 67,109 would reach it"
    )


def test_verify_finds_nanochat_by_its_folder_name_without_a_manifest(data, tmp_path):
    (data / "manifest.json").unlink()
    assert verify.verify(data).consumer == NANOCHAT
    assert verify.verify(shutil.copytree(data, tmp_path / "data")).consumer == AUTORESEARCH


def test_a_climbmix_shard_added_by_nanochats_downloader_is_an_error(data):
    write_texts(data / "shard_00002.parquet", ["a climbmix document"])
    report = verify.verify(data)
    assert report.errors == ["shard_00002.parquet: not listed in manifest.json (nanochat would train on it)"]


def test_a_file_sorting_after_the_validation_shard_is_an_error_for_nanochat_only(data):
    (data / "manifest.json").unlink()
    write_texts(data / "shard_06543.parquet", ["a text nanochat would evaluate on"])
    assert verify.verify(data, NANOCHAT).errors == [
        f"shard_06543.parquet: sorts after {VAL_SHARD_NAME}, so nanochat would evaluate on shard_06543.parquet "
        f"(the last file in sorted order) and train on {VAL_SHARD_NAME}"
    ]
    assert verify.verify(data, AUTORESEARCH).ok, "autoresearch finds its validation shard by name"


def test_without_the_validation_shard_nanochat_evaluates_on_the_last_file(data):
    (data / "manifest.json").unlink()
    (data / VAL_SHARD_NAME).unlink()
    report = verify.verify(data, NANOCHAT)
    assert report.ok, report.errors
    assert report.warnings[1] == (
        f"{VAL_SHARD_NAME}: missing; nanochat evaluates on the last file in sorted order instead, "
        "shard_00001.parquet, and does not train on it"
    )
    assert verify.verify(data, AUTORESEARCH).errors == [
        f"{VAL_SHARD_NAME}: missing; autoresearch evaluates on it (the validation shard)"
    ]


def test_nanochat_needs_two_files_texts_without_nulls_and_readable_row_groups(data):
    (data / "manifest.json").unlink()
    (data / "shard_00000.parquet").unlink()
    write_texts(data / "shard_00001.parquet", ["a", None])
    errors = verify.verify(data).errors
    assert errors == ["shard_00001.parquet: column 'text' has 1 nulls, expected none (nanochat needs a string in "
                      "every row)"]  # fmt: skip
    (data / "shard_00001.parquet").unlink()
    assert verify.verify(data).errors == [
        f"{VAL_SHARD_NAME}: the only parquet file in {data}; nanochat needs at least two (training shards and the "
        f"validation shard: nanochat evaluates on the last file in sorted order, which must be {VAL_SHARD_NAME})"
    ]
    write_texts(data / "shard_00000.parquet", ["a text"] * 100)
    path = data / "shard_00000.parquet"
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
    raw = bytearray(path.read_bytes())
    raw[chunk.data_page_offset : chunk.data_page_offset + 32] = b"\xff" * 32
    path.write_bytes(bytes(raw))
    (error,) = verify.verify(data).errors
    assert error.startswith("shard_00000.parquet: row group 0 ") and error.endswith("nanochat cannot read it")


def test_verify_command_defaults_to_nanochats_data_folder(converted, home, tmp_path):
    shutil.copytree(converted, tmp_path / "nanochat-base" / DATA)
    result = run("verify", "--for", "nanochat")
    assert result.exit_code == 0, result.output
    assert f"OK: 3 shards in {tmp_path / 'nanochat-base' / DATA}, as nanochat reads them" in result.output


@pytest.mark.parametrize("where", ["NANOCHAT_BASE_DIR", "~/.cache/nanochat"])
def test_without_for_verify_and_backups_point_at_nanochats_data(where, converted, home, tmp_path, monkeypatch):
    if where == "NANOCHAT_BASE_DIR":
        base = tmp_path / "nanochat-base"
    else:
        monkeypatch.delenv("NANOCHAT_BASE_DIR")
        base = home / ".cache" / "nanochat"
    shutil.copytree(converted, base / DATA)
    autoresearch = home / ".cache" / "autoresearch"
    hint = f"nanochat's data is in {base / DATA}: add --for nanochat"
    verified = run("verify")
    assert (verified.exit_code, verified.output) == (
        1,
        f"Error: {autoresearch / 'data'}: no such directory, so no shards to verify; {hint}\n",
    )
    assert run("backups").output == f"No backups in {autoresearch}.\n{hint}.\n"
    # Where it was asked for, or nanochat has no data, no hint.
    assert hint not in run("verify", "--for", "autoresearch").output
    assert hint not in run("backups", "--for", "autoresearch").output
    shutil.rmtree(base / DATA)
    assert run("backups").output == f"No backups in {autoresearch}.\n"


def test_the_dry_run_names_nanochats_folder_and_what_its_warning_assumes(source, tmp_path):
    dry = ["convert", "fineweb-edu", "--source", source, "--cache-dir", tmp_path / "base", "--dry-run"]
    nanochat, autoresearch = run(*dry, "--for", "nanochat"), run(*dry)
    assert nanochat.exit_code == 0 and autoresearch.exit_code == 0, nanochat.output + autoresearch.output
    assert f"Output:   {tmp_path / 'base' / DATA} (for nanochat)" in nanochat.output
    assert f"Output:   {tmp_path / 'base' / 'data'} (for autoresearch)" in autoresearch.output
    assumed = (
        "under the 67,108,864 tokens that nanochat's evaluation reads without repeating text (at the default "
        "--eval-tokens of python -m scripts.base_train; a larger value needs more); --val-rows"
    )
    assert assumed in nanochat.output
    assert "under the 33,554,432 tokens that autoresearch's evaluation reads without repeating text; --val-rows" in (
        autoresearch.output
    )
    assert not (tmp_path / "base").exists()


def test_a_folder_holding_both_layouts_needs_for(tmp_path):
    for folder in ("data", DATA, f"backup_climbmix/{DATA}"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / VAL_SHARD_NAME).write_bytes(b"x")
    result = run("backups", "--cache-dir", tmp_path)
    assert (result.exit_code, result.output) == (
        2,
        f"Error: {tmp_path} holds autoresearch's data/ and nanochat's {DATA}/: say which with --for, "
        "e.g. --for nanochat\n",
    )
    listing = run("backups", "--cache-dir", tmp_path, "--for", "nanochat")
    assert "climbmix  climbmix                   1" in listing.output, listing.output
    assert f"Live data: climbmix in {tmp_path / DATA} (for nanochat)" in listing.output


def test_too_many_shards_names_nanochats_rule():
    result = run("convert", "fineweb-edu", "--for", "nanochat", "--num-shards", 6543)
    assert result.exit_code == 2
    assert f"(nanochat evaluates on the last file in sorted order, which must be {VAL_SHARD_NAME})" in result.output


def test_the_demo_for_nanochat_ends_with_nanochats_next_steps(home, tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSQL_COMMAND", "shardsql")  # as where `shardsql` is on PATH
    result = run("demo", "--for", "nanochat", "--workdir", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo" / "nanochat" / DATA / VAL_SHARD_NAME).is_file()
    out = result.output[result.output.index("That was the demo") :]
    (line,) = [line for line in out.splitlines() if line.startswith("  shardsql convert NAME --for nanochat ")]
    assert line.endswith(f" the shards, into {tmp_path / 'nanochat-base' / DATA}")
    real = out.index(line)
    assert real < out.index("Then: in your nanochat checkout") < out.index(TOK_TRAIN) < out.index(BASE_TRAIN)
    assert out.index(BASE_TRAIN) < out.index(DOWNLOADER)
    assert ", nor runs/speedrun.sh, which runs it:" in out, "speedrun.sh runs the downloader itself"
    assert "prepare.py" not in result.output and not (home / ".cache").exists()


@pytest.mark.parametrize("consumer", [NANOCHAT, AUTORESEARCH])
def test_demo_serve_gives_every_convert_line_the_for_it_was_given(consumer, tmp_path):
    served = Served(endpoint="http://127.0.0.1:8123", workdir=tmp_path, plays="nothing")
    lines = list(report.serving(served, tmp_path, consumer))
    converts = [line for line in lines if " convert " in line]
    assert len(converts) == 2, lines
    flag = "--for nanochat"
    assert all((flag in line) == (consumer == NANOCHAT) for line in converts), converts


def test_the_validation_warning_has_one_threshold_and_keeps_quiet_on_toy_runs():
    # A real run (10 shards of 86,016 rows) with a short validation shard: warned, once, one number.
    advice = AUTORESEARCH.val_advice(228_000, 2_048, 10 * 86_016)
    assert advice == (
        "the validation shard holds about 228,000 tokens (UTF-8 bytes / 4), under the 33,554,432 tokens that "
        "autoresearch's evaluation reads without repeating text; --val-rows 302,293 would reach it"
    )
    assert f"{AUTORESEARCH.val_tokens_wanted:,}" == "33,554,432" and "20,971,520" not in advice
    # The demo's toy run (2 + 1 shards of 2,048 rows) holds less than one evaluation in all: no warning.
    assert AUTORESEARCH.val_advice(228_000, 2_048, 2 * 2_048) is None
    assert AUTORESEARCH.val_advice(AUTORESEARCH.val_tokens_wanted, 2_048, 10 * 86_016) is None


def test_nanochats_threshold_is_sized_for_its_own_evaluation():
    # scripts.base_train's --eval-tokens defaults to 80 * 524,288, twice autoresearch's EVAL_TOKENS (40 * 524,288):
    # the same 8/5 margin for the same BOS-aligned packing gives twice the threshold, and twice the --val-rows.
    assert (AUTORESEARCH.eval_tokens, NANOCHAT.eval_tokens) == (20_971_520, 41_943_040)
    assert NANOCHAT.val_tokens_wanted == 67_108_864 == 2 * AUTORESEARCH.val_tokens_wanted
    advice = NANOCHAT.val_advice(228_000, 2_048, 10 * 86_016)
    assert advice is not None and "under the 67,108,864 tokens that nanochat's evaluation" in advice
    assert "--eval-tokens of python -m scripts.base_train" in advice and "--val-rows 604,585 would" in advice
    # Between the two thresholds: enough for autoresearch, not for nanochat.
    assert AUTORESEARCH.val_advice(40_000_000, 100_000, 10 * 86_016) is None
    assert NANOCHAT.val_advice(40_000_000, 100_000, 10 * 86_016) is not None
    # A toy run by nanochat's threshold, though not by autoresearch's: quiet for nanochat only.
    assert NANOCHAT.val_advice(20_000_000, 100_000, 150_000) is None
    assert AUTORESEARCH.val_advice(20_000_000, 100_000, 150_000) is not None


def test_the_docs_give_the_validation_threshold_once():
    root = Path(__file__).resolve().parent.parent
    texts = [p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))]]
    assert sum(t.count("33,554,432") for t in texts) == 1 and sum(t.count("67,108,864") for t in texts) == 1
    assert not any(re.search(r"\b(21M|32M|~32M)\b", t) for t in texts)


def test_autoresearchs_next_steps_say_when_the_shards_are_not_in_the_folder_it_reads(source, home, tmp_path):
    """autoresearch reads ~/.cache/autoresearch/data only: after a --cache-dir conversion, its next
    steps say that prepare.py will not read these shards; after a conversion into its own folder,
    they do not."""
    given = tmp_path / "a try"
    elsewhere = run("convert", "fineweb-edu", "--source", source, "--num-shards", 1, "--rows-per-shard", 1000,
                    "--cache-dir", given, "--yes")  # fmt: skip
    assert elsewhere.exit_code == 0, elsewhere.output
    steps = elsewhere.output[elsewhere.output.index("Next: in your autoresearch checkout") :].splitlines()
    own = home / ".cache" / "autoresearch" / "data"
    assert steps[1] == (
        f"  # autoresearch reads {own}, not {given / 'data'}: convert without --cache-dir to train on this set"
    )
    assert steps[2] == "  uv run prepare.py --num-shards 1"
    default = run("convert", "fineweb-edu", "--source", source, "--num-shards", 1, "--rows-per-shard", 1000, "--yes")
    assert default.exit_code == 0, default.output
    assert (own / VAL_SHARD_NAME).is_file()
    assert "convert without --cache-dir" not in default.output
