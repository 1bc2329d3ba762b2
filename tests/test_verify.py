"""`verify` on a real converted set, then on copies of it tampered with in each way it must catch."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import no_toy_set

from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.consumers import AUTORESEARCH
from shardsql.definition import catalog
from shardsql.errors import VerifyError
from shardsql.output import verify
from shardsql.output.verify import VerifyReport
from shardsql.standin.samples import LAYOUTS, write_sample

VAL = "shard_06542.parquet"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One real conversion (2 training shards of 1000 rows + the validation shard), made once."""
    root = tmp_path_factory.mktemp("source")
    write_sample("fineweb-edu", root, files=3, rows_per_file=3000, row_group_size=500)
    cache = tmp_path_factory.mktemp("cache")
    source = root / LAYOUTS["fineweb-edu"][2]  # write_sample lays files out as in the Hub repo
    options = ConvertOptions(num_shards=2, rows_per_shard=1000, source=str(source), cache_dir=cache)
    convert(catalog.resolve("fineweb-edu"), options)
    return cache / "data"


@pytest.fixture
def data(converted, tmp_path):
    """A fresh copy of the converted set, for one test to tamper with."""
    return shutil.copytree(converted, tmp_path / "data")


def _only_error(report: VerifyReport) -> str:
    assert len(report.errors) == 1, report.errors
    return report.errors[0]


def test_a_good_toy_set_verifies_without_the_validation_warning_its_summary_left_out(data):
    report = verify.verify(data)
    assert report.ok, report.errors
    assert report.shards_checked == 3 and report.directory == data
    assert report.manifest["dataset"] == "fineweb-edu"
    # 2 + 1 shards of 1,000 rows hold less than one evaluation in all: `convert` said nothing of the
    # validation shard's size, and neither does `verify` (one rule: Consumer.val_advice).
    assert report.warnings == [] and report.val_tokens > 0


def test_a_full_sized_set_with_a_small_validation_shard_is_warned_once(tmp_path):
    folder = no_toy_set(tmp_path / "data")
    report = verify.verify(folder)
    assert report.ok, report.errors
    assert report.warnings[0].startswith("manifest.json: not found in ")
    # One warning, one threshold: the --val-rows that would reach it at the shard's mean (1,000 tokens a row).
    assert report.warnings[1:] == [
        f"{VAL}: the validation shard holds about 2,000 tokens (UTF-8 bytes / 4), under the 33,554,432 tokens "
        "that autoresearch's evaluation reads without repeating text; --val-rows 33,555 would reach it"
    ]
    assert report.warnings[1] == f"{VAL}: {AUTORESEARCH.val_advice(2_000, 2, 70_000)}"
    assert "20,971,520" not in report.warnings[1]
    assert report.ok, "a warning is not a problem"


def test_the_default_directory_is_autoresearchs_data_folder(data, monkeypatch, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(data, home / ".cache" / "autoresearch" / "data")
    monkeypatch.setenv("HOME", str(home))
    report = verify.verify()
    assert report.directory == home / ".cache" / "autoresearch" / "data"
    assert report.ok and report.consumer == AUTORESEARCH


def test_a_changed_byte_is_a_sha256_mismatch(data):
    path = data / "shard_00000.parquet"
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    expected = json.loads((data / "manifest.json").read_text())["shards"][0]["sha256"]
    error = _only_error(verify.verify(data))
    assert error.startswith("shard_00000.parquet: sha256 is ")
    assert error.endswith(f", manifest.json says {expected}")


def test_a_missing_shard(data):
    (data / "shard_00001.parquet").unlink()
    assert _only_error(verify.verify(data)) == "shard_00001.parquet: missing (listed in manifest.json)"


def test_an_extra_shard(data):
    shutil.copy(data / "shard_00000.parquet", data / "shard_00002.parquet")
    error = _only_error(verify.verify(data))
    assert error == "shard_00002.parquet: not listed in manifest.json (prepare.py would train on it)"


def test_a_shard_rewritten_with_other_row_groups(data):
    path = data / "shard_00000.parquet"
    pq.write_table(pq.read_table(path), path, row_group_size=500)
    errors = verify.verify(data).errors
    assert (
        "shard_00000.parquet: row group 0 has 500 rows, expected 1,024 "
        "(options.row_group_size in manifest.json; only a file's last row group may be smaller)"
    ) in errors
    assert any(e.startswith("shard_00000.parquet: size is ") and "bytes, manifest.json says" in e for e in errors)
    assert all(e.startswith("shard_00000.parquet: ") for e in errors), errors


def test_a_shard_with_a_wrong_column_name(data):
    path = data / "shard_00001.parquet"
    pq.write_table(pq.read_table(path).rename_columns(["body"]), path)
    errors = verify.verify(data).errors
    assert "shard_00001.parquet: columns are ['body'], expected ['text']" in errors


def test_a_missing_validation_shard_with_a_manifest(data):
    (data / VAL).unlink()
    assert _only_error(verify.verify(data)) == f"{VAL}: missing (listed in manifest.json)"


def test_a_missing_validation_shard_without_a_manifest(data):
    (data / "manifest.json").unlink()
    (data / VAL).rename(data / "shard_00002.parquet")
    error = _only_error(verify.verify(data))
    assert error == f"{VAL}: missing; autoresearch evaluates on it (the validation shard)"


def test_a_manifest_naming_another_validation_shard(data):
    record = json.loads((data / "manifest.json").read_text())
    record["shards"][-1]["name"] = "shard_00002.parquet"
    (data / "manifest.json").write_text(json.dumps(record))
    (data / VAL).rename(data / "shard_00002.parquet")
    assert verify.verify(data).errors == [
        f"manifest.json: the validation (last) shard is shard_00002.parquet, expected {VAL}",
        f"{VAL}: missing; autoresearch evaluates on it (the validation shard)",
    ]


@pytest.mark.parametrize("name", ["shard_00000.parquet", VAL])
def test_a_truncated_file_is_reported_not_raised(data, name):
    path = data / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    errors = verify.verify(data).errors
    assert any(e.startswith(f"{name}: not a readable parquet file (") for e in errors), errors
    assert any(e.startswith(f"{name}: size is ") for e in errors)
    assert all(e.startswith(f"{name}: ") for e in errors), errors


def test_only_one_shard_and_no_manifest(data):
    for path in data.iterdir():
        if path.name != VAL:
            path.unlink()
    report = verify.verify(data)
    assert _only_error(report).startswith(f"{VAL}: the only parquet file in {data}; autoresearch needs at least two")


def test_a_set_without_a_manifest_verifies_with_a_note(data):
    (data / "manifest.json").unlink()
    report = verify.verify(data)
    assert report.ok and report.manifest is None and report.shards_checked == 3
    (warning,) = report.warnings  # a toy set: no validation-size warning
    assert warning.startswith(f"manifest.json: not found in {data}; checked only what autoresearch needs")


def test_without_a_manifest_extra_columns_pass_but_nulls_and_a_missing_text_column_do_not(data):
    (data / "manifest.json").unlink()
    table = pa.table({"text": ["a", None, "c"], "id": [1, 2, 3]})
    pq.write_table(table, data / "shard_00000.parquet")
    pq.write_table(table.select(["id"]), data / "shard_00001.parquet")
    assert verify.verify(data).errors == [
        "shard_00000.parquet: column 'text' has 1 nulls, expected none (prepare.py fails on a null)",
        "shard_00001.parquet: columns are ['id'], expected a 'text' column, which autoresearch reads",
    ]


@pytest.mark.parametrize("text", ["{not json", "[]"])
def test_a_manifest_that_is_not_a_json_object_is_an_error(data, text):
    (data / "manifest.json").write_text(text)
    error = _only_error(verify.verify(data))
    assert error == "manifest.json: not a readable JSON object; checked only what autoresearch needs"


def test_no_directory_or_no_shards_is_a_verify_error(tmp_path):
    with pytest.raises(VerifyError, match="no such directory"):
        verify.verify(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(VerifyError, match=r"no shard files \(shard_NNNNN.parquet\) to verify"):
        verify.verify(tmp_path)


def _corrupt_first_data_page(path):
    """Overwrite bytes in the middle of the first row group's text data (compressed pages)."""
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    raw = bytearray(path.read_bytes())
    raw[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(raw))


def test_without_a_manifest_a_corrupted_data_page_is_an_error(data):
    (data / "manifest.json").unlink()
    _corrupt_first_data_page(data / "shard_00000.parquet")
    error = _only_error(verify.verify(data))
    assert error.startswith("shard_00000.parquet: row group 0 is damaged ("), error
    assert error.endswith("prepare.py cannot read it")


def test_without_a_manifest_invalid_utf8_and_real_nulls_are_errors(data):
    (data / "manifest.json").unlink()
    bad = pa.array([b"ok", b"caf\xc3"], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"text": bad}), data / "shard_00000.parquet")
    # Nulls without statistics: only decoding finds them.
    pq.write_table(pa.table({"text": ["a", None]}), data / "shard_00001.parquet", write_statistics=False)
    errors = verify.verify(data).errors
    assert errors[0].startswith("shard_00000.parquet: row group 0 is not valid UTF-8 ("), errors
    assert errors[1] == "shard_00001.parquet: column 'text' has 1 nulls, expected none (prepare.py fails on a null)"
    assert len(errors) == 2
