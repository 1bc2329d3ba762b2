"""Converting mixtures and --val-from: exact shares by characters or documents, overall and in
every shard; deduplication across components; a validation shard that stays the same across
conversions; a component that runs out; the same bytes however the conversion runs."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import StopAfter, killed_at_checkpoint, read_texts

from shardsql.autoresearch import VAL_SHARD_NAME
from shardsql.cli import cli
from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.errors import ConversionError, OptionsError
from shardsql.output import interleave
from shardsql.output.verify import verify

ROWS_PER_SHARD = 400
SHARED = [f"shared boilerplate number {i} " + "cookie notice " * 20 for i in range(30)]


def write_component(folder: Path, tag: str, mean_chars: int, files: int = 4, rows: int = 900) -> Path:
    """Parquet files of unique texts tagged `tag:` (so a test can tell each output row's
    component), lengths spread around `mean_chars` (from half to twice it); every 20th row is
    one of SHARED, the same texts in every component."""
    rng = random.Random(f"{tag}-{mean_chars}")
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        texts = []
        for r in range(rows):
            if r % 20 == 0:
                texts.append(SHARED[(f * rows + r) // 20 % len(SHARED)])
                continue
            length = rng.randint(mean_chars // 2, mean_chars * 2)
            head = f"{tag}: file {f} row {r} "
            texts.append(head + "".join(rng.choices("abcdefgh ", k=length - len(head))))
        pq.write_table(pa.table({"text": texts}), folder / f"part-{f}.parquet", row_group_size=100)
    return folder


def dataset(defs: Path, name: str, source: Path) -> Path:
    path = defs / f"{name}.sql"
    path.write_text(
        f"-- description: {name}\n-- source: {source}\n\nSELECT text FROM source WHERE length(text) >= 10\n"
    )
    return path


@pytest.fixture(scope="module")
def source_files(tmp_path_factory) -> Path:
    """The components' parquet files, written once for the module (the tests only read them)."""
    root = tmp_path_factory.mktemp("components")
    write_component(root / "code", "code", 1500)
    write_component(root / "abstracts", "abstract", 300)
    write_component(root / "held", "held", 500, files=2, rows=600)
    return root


@pytest.fixture
def sources(tune, tmp_path, monkeypatch, source_files):
    """Two components of very different lengths (code-like and abstract-like) and a third for
    --val-from, as definitions in one folder, with units of about 16 KiB."""
    tune(unit_bytes=16 << 10)
    tune(min_slot_bytes=1)
    defs = tmp_path / "defs"
    defs.mkdir()
    monkeypatch.setenv(catalog.SQL_DIR_ENV, str(defs))  # the components by name, as a user's own folder
    for name in ("code", "abstracts", "held"):
        dataset(defs, name, source_files / name)
    return defs


def mixture(defs: Path, mix: str, by: str = "characters", name: str = "mix") -> catalog.Mixture:
    path = defs / f"{name}.sql"
    path.write_text(f"-- description: a test mixture\n-- mix: {mix}\n-- mix-by: {by}\n")
    return catalog.load_file(path)


def run(model, cache: Path, **kw):
    options = dict(num_shards=4, rows_per_shard=ROWS_PER_SHARD, cache_dir=cache, workers=2) | kw
    return convert(model, ConvertOptions(**options))


def shares(texts: list[str]) -> dict[str, tuple[float, float]]:
    """Each tag's share of the characters and of the rows (SHARED texts count as neither)."""
    tagged = [(t.split(":", 1)[0], len(t)) for t in texts if ":" in t]
    chars = sum(n for _, n in tagged)
    return {
        tag: (sum(n for g, n in tagged if g == tag) / chars, sum(1 for g, _ in tagged if g == tag) / len(tagged))
        for tag in {g for g, _ in tagged}
    }


def shard_texts(result) -> list[list[str]]:
    return [read_texts(result.data_dir / s.name) for s in result.shards]


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


@pytest.mark.parametrize("by, index", [("characters", 0), ("documents", 1)])
def test_shares_hold_over_the_whole_output_and_in_every_shard(sources, tmp_path, by, index):
    result = run(mixture(sources, "code 70%, abstracts 30%", by), tmp_path / "cache")
    per_shard = shard_texts(result)
    assert [len(t) for t in per_shard] == [ROWS_PER_SHARD] * 5
    overall = shares([t for texts in per_shard for t in texts])
    assert abs(overall["code"][index] - 0.70) <= 0.005 and abs(overall["abstract"][index] - 0.30) <= 0.005
    for texts in per_shard:
        mine = shares(texts)
        assert abs(mine["code"][index] - 0.70) <= 0.03, mine
    # The other measure is far off: lengths differ five-fold, so the mix-by matters.
    assert abs(overall["code"][1 - index] - 0.70) > 0.1
    record = json.loads(result.manifest_path.read_text())
    assert record["mix_by"] == by and record["definition"]["sha256"] == result.definition.sha256
    components = {c["name"]: c for c in record["components"]}
    assert set(components) == {"code", "abstracts"}
    written = sum(c["rows"]["written"] for c in components.values())
    assert written == sum(s.rows for s in result.shards)
    code = components["code"]
    assert code["weight"] == "7/10"
    assert code["definition"]["sha256"] == catalog.resolve(str(sources / "code.sql")).sha256
    chars = sum(c["characters_written"] for c in components.values())
    recorded = (code["characters_written"] / chars, code["rows"]["written"] / written)
    assert abs(recorded[index] - 0.70) <= 0.005  # the manifest's counts are the shards' own


def test_a_parts_backlog_waits_on_disk_and_the_bytes_do_not_change(tune, sources, tmp_path, monkeypatch):
    """A part read ahead of the interleave (its selection holds more rows than it gives) keeps
    its backlog in a file past QUEUE_BYTES: the same shards, and the file was used."""
    mix = mixture(sources, "code 50%, abstracts 50%")
    default = run(mix, tmp_path / "a")
    writes = []
    original = interleave.RowQueue._write
    tune(queue_bytes=4 << 10)
    monkeypatch.setattr(interleave.RowQueue, "_write", lambda self, *a: writes.append(1) or original(self, *a))
    spilled = run(mix, tmp_path / "b")
    assert writes and hashes(spilled.data_dir) == hashes(default.data_dir)
    assert not list((tmp_path / "b").rglob("queue-*"))


def test_no_text_twice_across_components_and_the_same_bytes_for_any_workers(sources, tmp_path):
    mix = mixture(sources, "code 50%, abstracts 50%")
    one = run(mix, tmp_path / "a", workers=1)
    three = run(mix, tmp_path / "b", workers=3)
    assert hashes(one.data_dir) == hashes(three.data_dir)
    texts = [t for texts in shard_texts(one) for t in texts]
    assert len(texts) == len(set(texts))
    assert any(t in SHARED for t in texts)  # the shared texts are kept once, not dropped everywhere
    assert sum(p.duplicates for p in one.parts) > 0
    other_seed = run(mix, tmp_path / "c", seed=1)
    assert hashes(other_seed.data_dir) != hashes(one.data_dir)


def test_a_component_that_runs_out_stops_the_mixture_unless_allow_short(sources, tmp_path):
    mix = mixture(sources, "held 50%, code 50%", "documents")
    with pytest.raises(
        ConversionError, match=r"component held ran out: its source gives only [\d,]+ distinct rows"
    ) as e:
        run(mix, tmp_path / "a", num_shards=6)
    # Where its rows went, what to look at, and only what can help (the source was read whole).
    assert re.search(
        r"\(of [\d,]+ read, [\d,]+ were removed by its filter and [\d,]+ as duplicate texts\)", str(e.value)
    )
    assert re.search(r"rows wanted \([\d,]+ of them for the validation shard\)\. See what its filter removes with "
                     r"`\S*shardsql explain ", str(e.value)), str(e.value)  # fmt: skip
    assert "--num-source" not in str(e.value)
    assert not (tmp_path / "a" / "data").exists()
    short = run(mix, tmp_path / "b", num_shards=6, allow_short=True)
    texts = [t for texts in shard_texts(short) for t in texts]
    assert short.ran_out and len(texts) < 7 * ROWS_PER_SHARD
    written = {p.name: p.rows_written for p in short.parts}
    assert written["held"] + written["code"] == len(texts)
    assert abs(written["held"] / len(texts) - 0.5) <= 0.005  # the same proportions, fewer rows


def test_val_from_gives_two_conversions_the_same_validation_shard(sources, tmp_path):
    held = str(sources / "held.sql")
    code = run(catalog.resolve(str(sources / "code.sql")), tmp_path / "a", val_from=held)
    mix = run(mixture(sources, "code 30%, abstracts 70%"), tmp_path / "b", val_from=held, num_shards=3)
    val_a, val_b = code.data_dir / VAL_SHARD_NAME, mix.data_dir / VAL_SHARD_NAME
    assert val_a.read_bytes() == val_b.read_bytes()
    val = set(read_texts(val_a))
    assert len(val) == ROWS_PER_SHARD and all(t.startswith("held:") or t in SHARED for t in val)
    for result in (code, mix):
        training = [t for texts in shard_texts(result)[:-1] for t in texts]
        assert not val & set(training) and not any(t.startswith("held:") for t in training)
        record = json.loads(result.manifest_path.read_text())
        assert record["validation"]["from"] == held
        assert record["validation"]["sha256"] == hashlib.sha256(val_a.read_bytes()).hexdigest()
        assert [c["role"] for c in record["components"]][0] == "validation"
        assert verify(result.data_dir).ok
    out = CliRunner().invoke(cli, ["verify", str(mix.data_dir)])
    assert out.exit_code == 0, out.output
    assert f"Component held (validation shard): {ROWS_PER_SHARD:,} rows" in out.output
    assert "Component code (weight 30.0%)" in out.output and f"Validation shard from {held}" in out.output
    # A manifest whose components do not add up to its shards is caught.
    record = json.loads(mix.manifest_path.read_text())
    record["components"][1]["rows"]["written"] += 1
    mix.manifest_path.write_text(json.dumps(record))
    assert any("do not add up" in e for e in verify(mix.data_dir).errors)
    # Shards 0-2 of the single dataset are all code; the mixture's keep its shares.
    assert abs(shares([t for texts in shard_texts(mix)[:-1] for t in texts])["code"][0] - 0.30) <= 0.005


def test_val_from_live_keeps_the_live_validation_shard(sources, tmp_path):
    cache = tmp_path / "cache"
    first = run(catalog.resolve(str(sources / "held.sql")), cache, num_shards=1)
    live = (first.data_dir / VAL_SHARD_NAME).read_bytes()
    live_texts = set(read_texts(first.data_dir / VAL_SHARD_NAME))
    second = run(mixture(sources, "code 60%, abstracts 40%"), cache, val_from="live", skip_backup=True)
    assert (second.data_dir / VAL_SHARD_NAME).read_bytes() == live
    training = {t for texts in shard_texts(second)[:-1] for t in texts}
    assert not training & live_texts
    record = json.loads(second.manifest_path.read_text())
    assert record["validation"]["from"] == "live"
    assert record["shards"][-1]["sha256"] == hashlib.sha256(live).hexdigest()


@pytest.mark.parametrize("by, index", [("characters", 0), ("documents", 1)])
def test_no_shuffle_interleaves_each_components_first_rows_in_source_order(sources, tmp_path, by, index):
    mix = mixture(sources, "code 70%, abstracts 30%", by)
    result = run(mix, tmp_path / "mix", shuffle=False)
    per_shard = shard_texts(result)
    assert [len(t) for t in per_shard] == [ROWS_PER_SHARD] * 5
    texts = [t for shard in per_shard for t in shard]
    # Not deduplicated: the SHARED texts come from both components, so the exact shares are
    # the manifest's; the tagged rows alone are within a point of them.
    record = json.loads(result.manifest_path.read_text())
    counts = {c["name"]: (c["characters_written"], c["rows"]["written"]) for c in record["components"]}
    total = [sum(c[i] for c in counts.values()) for i in (0, 1)]
    assert abs(counts["code"][index] / total[index] - 0.70) <= 0.005
    assert abs(shares(texts)["code"][index] - 0.70) <= 0.01
    for shard in per_shard:
        assert abs(shares(shard)["code"][index] - 0.70) <= 0.03
    # Each component's rows are its own --no-shuffle conversion's first rows, in that order.
    for name, tag in (("code", "code"), ("abstracts", "abstract")):
        alone = run(catalog.resolve(name), tmp_path / name, shuffle=False, num_shards=8)
        own = [t for shard in shard_texts(alone) for t in shard if t.startswith(tag + ":")]
        mine = [t for t in texts if t.startswith(tag + ":")]
        assert own[: len(mine)] == mine
    assert record["order"]["order"] == "source" and record["order"]["duplicates_removed"] == 0
    assert sum(c["rows"]["written"] for c in record["components"]) == len(texts)
    assert hashes(run(mix, tmp_path / "again", shuffle=False, workers=3).data_dir) == hashes(result.data_dir)


def test_mixture_errors_are_one_line_with_what_to_do(sources, tmp_path):
    mix = mixture(sources, "code 70%, abstracts 30%")
    distinct = sources / "distinct.sql"
    code = catalog.resolve("code").source
    distinct.write_text(f"-- description: whole source\n-- source: {code}\n\nSELECT DISTINCT text FROM source\n")
    whole = mixture(sources, "distinct 50%, abstracts 50%", name="whole")
    with pytest.raises(OptionsError, match="distinct is a whole-source definition .* Drop --no-shuffle"):
        run(whole, tmp_path / "a", shuffle=False)
    with pytest.raises(OptionsError, match="drop --no-shuffle"):
        run(catalog.resolve(str(sources / "code.sql")), tmp_path / "a", shuffle=False, val_from="held")
    with pytest.raises(OptionsError, match="no validation shard"):
        run(mix, tmp_path / "empty", val_from="live")
    (tmp_path / "broken" / "data").mkdir(parents=True)
    (tmp_path / "broken" / "data" / VAL_SHARD_NAME).write_bytes(b"PAR1 not a shard")  # the data's fault: exit 1
    with pytest.raises(ConversionError, match=r"--val-from live: .* is not a readable shard \(.*\); restore a good"):
        run(mix, tmp_path / "broken", val_from="live")
    refused = "--source applies to one dataset, and mix is a mixture: give it to `shardsql convert`"
    with pytest.raises(OptionsError, match=refused):
        run(mix, tmp_path / "a", source=catalog.resolve("code").source)


def test_the_dry_run_says_what_each_component_needs(sources, tmp_path):
    path = mixture(sources, "code 70%, abstracts 30%").path
    result = CliRunner().invoke(cli, ["convert", str(path), "--dry-run", "--num-shards", "4", "--rows-per-shard",
                                      str(ROWS_PER_SHARD), "--cache-dir", str(tmp_path / "c")])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Mixture:  mix" in out and "by characters" in out
    code_rows = int(out.split("code  70.0%")[1].split("needs about ")[1].split(" rows")[0].replace(",", ""))
    abstract_rows = int(out.split("abstracts  30.0%")[1].split("needs about ")[1].split(" rows")[0].replace(",", ""))
    # By characters, the short abstracts give 30% of the characters in more rows than 30% of them.
    assert code_rows + abstract_rows == 5 * ROWS_PER_SHARD and abstract_rows > code_rows


RUNNER = """
import sys
from shardsql import tuning
tuning.use(tuning.Tuning(unit_bytes=16 << 10, min_slot_bytes=1))
from shardsql.cli import main
sys.argv = ["shardsql", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("order", [["--val-from", "held"], ["--no-shuffle"]])
def test_a_killed_mixture_resumes_to_the_same_bytes(sources, tmp_path, order):
    mix = mixture(sources, "code 70%, abstracts 30%")
    args = [sys.executable, "-c", RUNNER, "convert", str(mix.path), "--num-shards", "4", "--rows-per-shard",
            str(ROWS_PER_SHARD), "--yes", "--quiet", "--workers", "2", *order]  # fmt: skip
    reference = subprocess.run([*args, "--cache-dir", str(tmp_path / "ref")], capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    cache = tmp_path / "run"
    killed = [args[0], "-c", killed_at_checkpoint("len(c.shards) >= 2") + RUNNER, *args[3:]]
    proc = subprocess.run([*killed, "--cache-dir", str(cache)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    resumed = subprocess.run([*args, "--cache-dir", str(cache)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming an interrupted run after" in resumed.stderr
    assert hashes(cache / "data") == hashes(tmp_path / "ref" / "data")
    shutil.rmtree(tmp_path / "ref")


def test_a_no_shuffle_mixture_resumed_with_smaller_units_writes_what_it_would_have(sources, tmp_path, tune):
    """A resume's units need not be the first run's (their size follows the rows still wanted):
    where the first unit of a component's resume keeps fewer rows than the shards already hold
    from where it starts, the rest are skipped from the units after it, not read again."""
    mix = mixture(sources, "code 70%, abstracts 30%")
    run(mix, tmp_path / "ref", shuffle=False)
    tune(unit_bytes=8 << 20)  # a unit is a whole file in the first run
    with pytest.raises(KeyboardInterrupt):
        convert(mix, ConvertOptions(num_shards=4, rows_per_shard=ROWS_PER_SHARD, cache_dir=tmp_path / "run",
                                    workers=2, shuffle=False), progress=StopAfter(2))  # fmt: skip
    tune(unit_bytes=1)  # one row group a unit: the resume's first units keep fewer rows than the first run's
    run(mix, tmp_path / "run", shuffle=False)
    assert hashes(tmp_path / "run" / "data") == hashes(tmp_path / "ref" / "data")


@pytest.mark.parametrize("allow_short", [False, True])
@pytest.mark.parametrize("shuffle", [True, False])
def test_a_component_that_keeps_nothing_points_only_at_its_filter(sources, source_files, tmp_path, shuffle,
                                                                   allow_short):  # fmt: skip
    """Fewer or smaller shards, more files or --allow-short (which would write nothing) cannot
    help a component whose WHERE keeps no row: as for one dataset, its filter and explain alone."""
    (sources / "none.sql").write_text(f"-- description: none\n-- source: {source_files / 'code'}\n\n"
                                      "SELECT text FROM source WHERE length(text) > 1000000\n")  # fmt: skip
    mix = mixture(sources, "none 50%, code 50%")
    with pytest.raises(ConversionError) as e:
        run(mix, tmp_path / "a", shuffle=shuffle, allow_short=allow_short)
    message = str(e.value)
    assert message.startswith("component none's filter kept no rows: 3,600 rows read, every one removed by its WHERE. "
                              "See what each condition removes with `"), message  # fmt: skip
    assert message.endswith(" explain none`, and loosen it. Your data folder was not changed."), message
    assert not any(useless in message for useless in ("--num-shards", "--rows-per-shard", "--allow-short", "--num-"))
    assert not (tmp_path / "a" / "data").exists()


def test_a_component_that_runs_out_in_source_order_stops_the_mixture_unless_allow_short(sources, tmp_path):
    mix = mixture(sources, "held 50%, code 50%", "documents")
    with pytest.raises(ConversionError, match=r"component held ran out after [\d,]+ rows in source order \(of [\d,]+ "
                       r"read, [\d,]+ were removed by its filter\), so the mixture stops after [\d,]+ of the [\d,]+ "
                       r"rows wanted\. See what its filter removes with `\S*shardsql explain ") as e:  # fmt: skip
        run(mix, tmp_path / "a", num_shards=6, shuffle=False)
    assert "--num-source" not in str(e.value)
    assert not (tmp_path / "a" / "data").exists()
    short = run(mix, tmp_path / "b", num_shards=6, shuffle=False, allow_short=True)
    texts = [t for texts in shard_texts(short) for t in texts]
    assert short.ran_out and len(texts) < 7 * ROWS_PER_SHARD
    written = {p.name: p.rows_written for p in short.parts}
    assert written["held"] + written["code"] == len(texts)
