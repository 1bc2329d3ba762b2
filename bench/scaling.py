"""The scaling table (`just bench --scaling`): rows a second for 1, 2, 4, ... workers up to the
machine's cores, and the speed-up over 1 worker, for the local engine (threads) and the Ray
engine (tasks on a local Ray), plus what starting Ray costs.

The same conversion each time (fineweb-edu on a local folder of FineWeb-Edu-shaped files in
1,000-row groups, N training shards + 1), so the only difference is where the units run;
every run's shards must be byte for byte the first run's. Ray is started once for the warm
runs (its start-up is measured on its own, and in one cold run that starts and stops its own
Ray, as a one-off `shardsql convert --engine ray` without RAY_ADDRESS does).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import measure
from contenders import DATASET
from data import DataSpec, ensure_data

ROW_GROUP_ROWS, MEDIAN_CHARS, SIGMA = 1_000, 2_450, 0.85  # bench.py's fineweb-edu-1k layout
LOCAL_RAY_OBJECT_STORE = 256 << 20


def worker_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to the cores, and the cores themselves."""
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return [*counts, cores]


def _convert(cache: Path, source: Path, args, engine: str, workers: int) -> tuple[float, list[str]]:
    from shardsql.catalog import resolve
    from shardsql.convert import ConvertOptions, convert

    options = ConvertOptions(num_shards=args.num_shards, rows_per_shard=args.rows_per_shard, source=str(source),
                             cache_dir=cache, engine=engine, workers=workers)  # fmt: skip
    begin = time.perf_counter()
    result = convert(resolve(DATASET), options)
    seconds = time.perf_counter() - begin
    shutil.rmtree(cache, ignore_errors=True)
    return seconds, [s.sha256 for s in result.shards]


def _timed(run: Callable[[], tuple[float, list[str]]], repeats: int, want: list[str]) -> list[float]:
    """One warm-up, then `repeats` timed runs; every run's shards must be `want`."""
    seconds = []
    for index in range(repeats + 1):
        took, hashes = run()
        if hashes != want:
            raise SystemExit("scaling: the shards differ from the first run's: the engines must agree")
        if index:
            seconds.append(took)
    return seconds


def run_scaling(args, work: Path, log: Callable[[str], None]) -> int:
    cores = os.cpu_count() or 1
    rows = (args.num_shards + 1) * args.rows_per_shard
    per_file = -(-round(rows * 1.15 / args.files) // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
    spec = DataSpec(args.files, per_file, ROW_GROUP_ROWS, MEDIAN_CHARS, SIGMA, args.seed)
    _, source, stats = ensure_data(spec, log)
    info = measure.machine()
    load_before = measure.load_average()
    log(f"scaling: {rows:,} rows into {args.num_shards} + 1 shards, workers {worker_counts(cores)}, {cores} cores")
    _, want = _convert(work / "reference", source, args, "local", 1)
    results: dict[str, dict[int, list[float]]] = {"local": {}, "ray": {}}
    for workers in worker_counts(cores):
        results["local"][workers] = _timed(
            lambda w=workers: _convert(work / "run", source, args, "local", w), args.repeats, want
        )
        log(f"  local, {workers} workers: {statistics.median(results['local'][workers]):.2f} s")
    from shardsql.ray_engine import require

    ray = require()  # before anything else imports ray: its workers must use this Python
    cold, hashes = _convert(work / "cold", source, args, "ray", cores)  # starts and stops its own Ray
    if hashes != want:
        raise SystemExit("scaling: the Ray engine's shards differ from the local engine's")
    log(f"  ray, cold (starts its own Ray): {cold:.2f} s")
    begin = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, object_store_memory=LOCAL_RAY_OBJECT_STORE,
             log_to_driver=False, logging_level="WARNING")  # fmt: skip
    ray_start = time.perf_counter() - begin
    try:
        for workers in worker_counts(cores):
            results["ray"][workers] = _timed(
                lambda w=workers: _convert(work / "run", source, args, "ray", w), args.repeats, want
            )
            log(f"  ray, {workers} workers: {statistics.median(results['ray'][workers]):.2f} s")
    finally:
        ray.shutdown()
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "load_average": {"before": load_before, "after": measure.load_average()},
        "parameters": {
            "dataset": DATASET,
            "num_shards": args.num_shards,
            "rows_per_shard": args.rows_per_shard,
            "rows_written": rows,
            "repeats": args.repeats,
            "data": stats,
        },  # fmt: skip
        "seconds": {engine: {str(w): s for w, s in by.items()} for engine, by in results.items()},
        "ray_start_seconds": round(ray_start, 2),
        "ray_cold_run_seconds": round(cold, 2),
    }
    markdown = render(record, results, rows)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaling.md").write_text(markdown)
    (args.out / "scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {args.out / 'scaling.md'} and {args.out / 'scaling.json'}")
    return 0


def render(record: dict, results: dict[str, dict[int, list[float]]], rows: int) -> str:
    m = record["machine"]
    lines = [
        "# shardsql scaling",
        "",
        f"{record['date']}; {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, Python {m['python']}; "
        f"shardsql {m['shardsql_commit']}; load average {record['load_average']['before']} before, "
        f"{record['load_average']['after']} after.",
        f"`{DATASET}` on a local folder, {rows:,} rows written; median of {record['parameters']['repeats']} runs "
        "after a warm-up; every run's shards identical.",
        "",
        "| engine | workers | seconds | rows a second | speed-up over 1 worker |",
        "| --- | --- | --- | --- | --- |",
    ]
    for engine, by_workers in results.items():
        one = statistics.median(by_workers[1])
        for workers, seconds in by_workers.items():
            median = statistics.median(seconds)
            lines.append(f"| {engine} | {workers} | {median:.2f} | {rows / median:,.0f} | {one / median:.2f}x |")
    lines += [
        "",
        f"Ray start-up (a local Ray, `ray.init`): {record['ray_start_seconds']:.1f} s. A cold `--engine ray` run "
        f"that starts and stops its own Ray: {record['ray_cold_run_seconds']:.1f} s.",
        "",
    ]
    return "\n".join(lines)
