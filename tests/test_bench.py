"""The benchmark's harness (bench/): what it times and what it compares, on a tiny job.

Every contender runs as a fresh process, started as its user starts it, and writes the
same rows as the seed in shardsql's codec and row groups; the launcher counts a child's
whole process tree's CPU and a peak RSS that is the child's own, not the benchmark's. No
assertion here is about speed: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from seed_reference import seed_shards

from shardsql.autoresearch import ROW_GROUP_SIZE
from shardsql.output.shards import COMPRESSION
from shardsql.standin.samples import write_sample

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import contenders  # noqa: E402
import data  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import seed_loop  # noqa: E402
import shards_scaling  # noqa: E402

import bench  # noqa: E402

pytestmark = pytest.mark.slow  # fresh processes of every contender
JOB = {"num_shards": 2, "rows_per_shard": 700}


@pytest.fixture
def source(tmp_path) -> list[Path]:
    """Two FineWeb-Edu-shaped files (nulls, short texts, int_score) of 1,500 rows in 500-row groups."""
    return write_sample("fineweb-edu", tmp_path / "repo", files=2, rows_per_file=1_500, row_group_size=500)


def test_the_launcher_counts_the_cpu_of_the_childs_whole_tree():
    # The child starts a grandchild that spins, reports its own CPU time, and is waited for.
    spin = "import resource\nx = 0\nfor i in range(3_000_000): x += i\nu = resource.getrusage(resource.RUSAGE_SELF)\n"
    spin += "print('SELF', u.ru_utime + u.ru_stime)"
    child = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {spin!r}], check=True)"
    usage, output = measure.fresh_process([sys.executable, "-c", child])
    grandchild_cpu = float(output.split("SELF")[1])
    assert usage.cpu >= grandchild_cpu > 0
    assert usage.seconds > 0


def test_the_launcher_reports_the_childs_own_peak_rss_not_the_benchmarks():
    # This process's high-water mark now exceeds 400 MB; a child of it would report at least that.
    ballast = bytearray(400 << 20)
    ballast[:: 1 << 12] = b"\1" * len(ballast[:: 1 << 12])
    del ballast
    small, _ = measure.fresh_process([sys.executable, "-c", "pass"])
    touch = "b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096])"
    big, _ = measure.fresh_process([sys.executable, "-c", touch])
    assert small.peak_rss_mb < 100
    assert big.peak_rss_mb > 200 > small.peak_rss_mb


def test_the_launcher_counts_the_bytes_the_childs_tree_writes(tmp_path):
    # The grandchild writes 4 MB and syncs it; on a tmpfs nothing goes to storage, and write_bytes stays 0.
    write = f"import os\nwith open({str(tmp_path / 'out')!r}, 'wb') as f:\n    f.write(b'x' * (4 << 20)); os.fsync(f)"
    child = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {write!r}], check=True)"
    usage, _ = measure.fresh_process([sys.executable, "-c", child])
    assert usage.write_bytes is not None and usage.cancelled_write_bytes is not None
    if measure.filesystem(tmp_path) != "tmpfs":
        assert usage.write_bytes >= 4 << 20


def test_a_failing_command_raises_with_its_output():
    with pytest.raises(RuntimeError, match="no such dataset here"):
        measure.fresh_process([sys.executable, "-c", "import sys; sys.exit('no such dataset here')"])


@pytest.mark.parametrize("dataset", [contenders.DATASET, contenders.HIGH])
def test_every_contender_as_its_user_runs_it_writes_the_seeds_rows_in_shardsqls_format(tmp_path, source, dataset):
    """`python seed_loop.py`, `python -c "<Polars one-liner>"` and the `shardsql` command, each a fresh
    process: the seed's shards (the test oracle's), snappy like shardsql's, in 1,024-row groups."""
    job = JOB | {"dataset": dataset}
    runs = {
        "seed": contenders.seed_command(tmp_path / "seed", source_dir=source[0].parent, **job),
        "polars": contenders.polars_command(tmp_path / "polars", files=source, **job),
        "shardsql": contenders.shardsql_command(tmp_path / "shardsql", source=str(source[0].parent), **job),
    }
    outputs = {name: measure.fresh_process(command)[1] for name, command in runs.items()}
    min_score = contenders.MIN_SCORE[dataset]
    want, docs_read, _ = seed_shards(source, "text", job["num_shards"], job["rows_per_shard"], min_score)
    assert seed_loop.documents_read(outputs["seed"]) == docs_read
    assert "shard_06542.parquet" in want
    for name, folder in (("seed", "seed"), ("polars", "polars"), ("shardsql", "shardsql/data")):
        shards = measure.shard_files(tmp_path / folder)
        assert {n: pq.read_table(p)["text"].to_pylist() for n, p in shards.items()} == want, name
        layout = measure.shard_layout(tmp_path / folder)
        assert layout["codecs"] == [COMPRESSION.lower()], name
        assert layout["row_groups_1024"], name
    assert ROW_GROUP_SIZE == 1024  # what shard_layout checks
    assert contenders.shard_format()["compression"] == COMPRESSION


def test_the_polars_one_liner_names_shardsqls_codec_explicitly(tmp_path):
    code = contenders.polars_code(tmp_path, files=[tmp_path / "a.parquet"], **JOB)
    assert f"compression={COMPRESSION!r}" in code
    assert f"row_group_size={ROW_GROUP_SIZE}" in code
    compile(code, "<the Polars one-liner>", "exec")


def test_a_job_times_fresh_processes_and_keeps_the_library_calls_as_a_diagnostic(tmp_path, source):
    job = bench.Job("the small job", contenders.HIGH, JOB["num_shards"], JOB["rows_per_shard"], hub=False, small=True,
                    diagnose=True)  # fmt: skip
    by_name, record, fine = bench.run_job(argparse.Namespace(repeats=2), job, tmp_path / "work", source[0].parent,
                                          source, None)  # fmt: skip
    assert fine
    fresh = [by_name[name] for name in (bench.SEED, bench.POLARS, bench.LOCAL)]
    calls = [by_name[name + bench.IN_PROCESS] for name in (bench.SEED, bench.POLARS, bench.LOCAL)]
    for c in fresh:
        assert not c.in_process and len(c.seconds) == len(c.cpu) == len(c.peak_rss) == 2
        assert all(rss > 0 for rss in c.peak_rss)
    for c in calls:
        assert c.in_process and len(c.seconds) == 2 and not c.peak_rss
    for c in fresh[1:] + calls:
        assert c.check[0], (c.name, c.check)
    assert record["source_rows_read"] == seed_shards(source, "text", job.num_shards, job.rows_per_shard, 3)[1]

    rows = bench.job_rows(job, by_name, source, record)
    judged = {row.measure for row in rows if row.goal.endswith("x")}  # the ratios with a goal
    assert f"{bench.LOCAL} / {bench.POLARS}: wall time" in judged  # the goals are the fresh processes'
    assert not any(bench.IN_PROCESS in label for label in judged)
    codec_row = next(row for row in rows if row.measure.startswith("every contender's shards"))
    assert codec_row.met and COMPRESSION in codec_row.figure
    diagnostic = bench.diagnostic_rows(job, by_name)
    assert not any(row.goal for row in diagnostic)  # figures only, never the goals
    assert any(row.measure.startswith(f"{bench.LOCAL}: the fresh process less the library call") for row in diagnostic)


def contender(name: str, seconds: float, cpu: float, *, in_process: bool = False) -> report.Contender:
    c = report.Contender(name, lambda out: None, lambda out: out, in_process=in_process)
    c.add(measure.Usage(seconds, cpu, None if in_process else 100.0))
    return c


def test_the_ratios_are_shardsqls_against_polars_and_the_seed_with_the_jobs_goals():
    main = bench.Job("main", contenders.DATASET, 3, 86_016, hub=False)
    seed, polars, shardsql = contender("seed loop", 9.0, 9.0), contender("Polars", 3.0, 6.0), contender("it", 4.5, 6.0)
    (vs_polars, (wall, cpu)), (vs_seed, (speed_up, speed_up_cpu)) = bench.ratios(main, seed, polars, shardsql).items()
    assert vs_polars == "it / Polars" and vs_seed == "speed-up of it over the seed loop"
    assert (wall.value, wall.goal, wall.met) == (1.5, bench.GOAL_VS_POLARS, False)
    assert (cpu.value, cpu.goal, cpu.met) == (1.0, bench.GOAL_CPU_VS_POLARS, True)
    assert (speed_up.value, speed_up.goal_text, speed_up.met) == (2.0, ">= 1.8x", True)
    assert speed_up_cpu.goal is None
    small = bench.Job("small", contenders.HIGH, 6, 20_000, hub=False, small=True)
    (_, (wall, cpu)), (_, (speed_up, _)) = bench.ratios(small, seed, polars, shardsql).items()
    assert (wall.goal, cpu.goal, speed_up.goal) == (bench.GOAL_SMALL_VS_POLARS, None, bench.GOAL_SMALL_VS_SEED)
    call = contender("it, in-process", 4.5, 6.0, in_process=True)
    assert all(r.goal is None for pair in bench.ratios(main, seed, polars, call).values() for r in pair)


def test_the_headline_puts_wall_and_cpu_side_by_side_beside_the_goals():
    main = bench.Job("main", contenders.DATASET, 3, 86_016, hub=False)
    three = [contender("seed loop", 9.0, 9.0), contender("Polars one-liner", 3.0, 6.0), contender("shardsql", 4.5, 6.0)]
    lines = report.render_headline([report.Headline("main job", "the main job", three, bench.ratios(main, *three))], 2)
    table = "\n".join(lines)
    assert "| contender | main job: wall | main job: CPU | main job: peak RSS |" in table
    assert "| shardsql | 4.50 s (4.50) | 6.00 s (6.00) | 100 MB |" in table
    assert "| **shardsql / Polars one-liner** | **1.50x** (goal <= 1.2x: **NO**) | **1.00x** (goal <= 1.2x: yes) |" in (
        table
    )
    assert "**2.00x** (goal >= 1.8x: yes)" in table
    assert lines[0].startswith("## What a user sees")


def test_shards_scaling_runs_both_modes_at_each_count_and_samples_the_cache_folders_disk(tmp_path, monkeypatch):
    """`bench.py --shards-scaling` on a tiny job: at each count a fresh `--no-shuffle` and a shuffled
    `shardsql convert` in each of two rounds, each with its cost, its bytes written and its cache
    folder's peak size, its shards checked; a row of ratios a count, of the best runs, against
    the goals; the cache folders removed."""
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")  # the source, and the runs' cache folders beside it
    out = tmp_path / "results"
    args = bench.parse_args(["--shards-scaling", "--shard-counts", "3,2", "--rows-per-shard", "300", "--files", "2",
                             "--out", str(out)])  # fmt: skip
    assert shards_scaling.run_shards_scaling(args, lambda message: None) == 0
    record, markdown = json.loads((out / "shards-scaling.json").read_text()), (out / "shards-scaling.md").read_text()
    assert list(record["runs"]) == ["2", "3"] and record["parameters"]["rows_per_shard"] == 300
    on_disk = measure.filesystem(tmp_path) != "tmpfs"  # a tmpfs sends nothing to storage
    for n, by_mode in record["runs"].items():
        for mode in ("--no-shuffle", "shuffled"):
            run = by_mode[mode]
            assert ("--no-shuffle" in run["command"]) == (mode == "--no-shuffle"), mode
            assert run["command"][run["command"].index("--num-shards") + 1] == n
            assert run["check"]["ok"] and run["shards"] == int(n) + 1, (n, mode, run["check"])
            assert run["seconds"] > 0 and run["cpu_seconds"] > 0 and run["peak_rss_mb"] > 0
            assert run["seconds_a_shard"] == pytest.approx(run["seconds"] / (int(n) + 1), abs=1e-3)
            # Two rounds (--repeats' default), interleaved: the best wall and CPU time of them count.
            assert len(run["rounds"]) == 2 and run["seconds"] == min(r["seconds"] for r in run["rounds"])
            assert run["cpu_seconds"] == min(r["cpu_seconds"] for r in run["rounds"])
            assert run["peak_rss_mb"] == max(r["peak_rss_mb"] for r in run["rounds"])
            assert run["write_bytes"] >= (run["output_bytes"] if on_disk else 0)
            assert run["disk"]["samples"] >= 2 and run["disk"]["peak_bytes"] >= run["output_bytes"] > 0
        assert "no text twice" in by_mode["shuffled"]["check"]["detail"]
        ratios = by_mode["ratios"]
        wall = ratios["shuffled / --no-shuffle, wall time"]
        disk = ratios["shuffled: peak disk of the cache folder / its shards"]
        assert wall["goal"] == "<= 1.3x" and disk["goal"] == "<= 1.6x"
        assert wall["value"] == pytest.approx(by_mode["shuffled"]["seconds"] / by_mode["--no-shuffle"]["seconds"],
                                              rel=1e-2)  # fmt: skip
        assert disk["value"] == pytest.approx(
            by_mode["shuffled"]["disk"]["peak_bytes"] / by_mode["shuffled"]["output_bytes"], rel=1e-2
        )
        assert f"| {n} + 1 | {wall['value']:.2f}x | {'yes' if wall['met'] else '**NO**'} |" in markdown
    assert "Wall time a shard from 2 + 1 to 3 + 1 shards" in markdown
    assert not list((tmp_path / "data").glob(".shards-scaling-*"))  # the runs' cache folders are gone
