"""A definition means what its SQL means over the whole source, read as one view.

Each definition below is converted with every row group its own unit (so an engine that
evaluated the SQL unit by unit would get DISTINCT, ORDER BY, LIMIT, aggregates, windows,
subqueries and joins wrong), and the shards must hold exactly DuckDB's answer over the
same files read at once. `sql` and `explain` must agree with `convert`.
"""

from __future__ import annotations

import sys

import duckdb
import pytest
from helpers import CASES, definition_file, read_texts, run_query

from shardsql.commands import explain
from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition.evaluator import Evaluator


def duckdb_answer(folder, sql: str) -> list[str]:
    """The SQL over all files read at once, by DuckDB alone."""
    con = duckdb.connect()
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    con.execute(f"CREATE VIEW source AS SELECT * FROM read_parquet({files})")
    return [row[0] for row in con.execute(f"SELECT text FROM ({sql})").fetchall()]


def converted(definition, tmp_path, workers: int = 2) -> list[str]:
    cache = tmp_path / "cache"
    options = ConvertOptions(shuffle=False, num_shards=500, rows_per_shard=4, cache_dir=cache, workers=workers)
    result = convert(definition, options)
    return [text for shard in result.shards for text in read_texts(cache / "data" / shard.name)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_convert_equals_the_sql_over_the_whole_source(source_folder, tmp_path, case):
    sql, row_by_row, ordered = CASES[case]
    definition = definition_file(source_folder, sql)
    got, want = converted(definition, tmp_path), duckdb_answer(source_folder, sql)
    assert len(want) >= 8, "the case must keep enough rows to span several shards"
    assert (got if ordered else sorted(got)) == (want if ordered else sorted(want))
    assert shape(definition).row_by_row is row_by_row, "the case must test the path it is named for"


def shape(definition):
    evaluator = Evaluator(definition)
    evaluator.close()
    return evaluator.shape


@pytest.mark.parametrize("case", ["distinct", "order-by", "limit", "scalar-subquery", "filter", "struct-field"])
def test_sql_and_explain_agree_with_convert(source_folder, tmp_path, monkeypatch, case):
    sql, _, ordered = CASES[case]
    definition = definition_file(source_folder, sql)
    monkeypatch.setenv("SHARDSQL_SQL_DIR", str(definition.path.parent))
    got = converted(definition, tmp_path)
    via_sql = run_query("SELECT text FROM my_case").table["text"].to_pylist()
    assert (via_sql if ordered else sorted(via_sql)) == (got if ordered else sorted(got))
    table, _ = explain.sample(definition, columns_for=[definition], rows=10_000)
    assert explain.funnel(definition, table).rows_out == len(got)


def test_worker_counts_give_the_same_bytes(source_folder, tmp_path):
    definition = definition_file(source_folder, CASES["filter"][0])
    hashes = []
    for workers in (1, 3):
        cache = tmp_path / f"cache-{workers}"
        options = ConvertOptions(num_shards=500, rows_per_shard=4, cache_dir=cache, workers=workers)
        hashes.append([s.sha256 for s in convert(definition, options).shards])
    assert hashes[0] == hashes[1]


def test_show_and_the_dry_run_say_which_path_a_definition_takes(source_folder):
    from click.testing import CliRunner

    from shardsql.cli import cli

    definition = definition_file(source_folder, CASES["order-by"][0])
    shown = CliRunner().invoke(cli, ["show", str(definition.path)])
    assert "path:        whole source (ORDER BY: reads the whole source)" in shown.output
    dry = CliRunner().invoke(cli, ["convert", "fineweb-edu", "--source", str(source_folder), "--dry-run"])
    assert "Path:     row by row (a projection and a filter over source: stops reading when the shards" in dry.output


def test_workers_must_be_at_least_one(source_folder, tmp_path):
    from click.testing import CliRunner

    from shardsql.cli import cli

    args = ["convert", "fineweb-edu", "--source", str(source_folder), "--workers", "0", "--cache-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--workers must be at least 1, got 0" in result.output


def test_the_ray_engine_without_ray_installed_is_one_clear_line(source_folder, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from shardsql.cli import cli

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as without the extra
    args = ["convert", "fineweb-edu", "--source", str(source_folder), "--engine", "ray", "--cache-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, [*args, "--yes"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: --engine ray needs Ray: pip install 'shardsql[ray]' (or, in a clone, uv sync --extra ray)"
    )
    assert not (tmp_path / "data").exists()


def test_the_default_workers_are_the_cores_this_process_may_use(source_folder, tmp_path):
    """Pinned to one CPU (as taskset or a container's cpuset does), a conversion runs one
    worker, not one per CPU of the machine."""
    import json
    import os
    import subprocess

    pin_then_run = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from shardsql.cli import cli; cli(prog_name='shardsql')"
    )
    args = ["convert", "fineweb-edu", "--source", str(source_folder), "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(
        [sys.executable, "-c", pin_then_run, *args, "--num-shards", "2", "--rows-per-shard", "10", "--yes", "-q"],
        capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "cache" / "data" / "manifest.json").read_text())
    assert record["engine"]["workers"] == 1
