"""The scaling table (`just bench --scaling`): how a conversion's speed grows with the cores it
is given, for the local engine (threads) and the Ray engine (tasks on a local Ray), plus what
starting Ray costs.

Each configuration runs in a fresh process pinned to its first N CPUs (`sched_setaffinity`,
as `taskset` does) with `--workers N`, so "N cores" means N cores: every thread shardsql,
DuckDB and Polars start, and a local Ray's processes, share them. Counting workers on an
unpinned machine says little, since the shard writers and fetch threads run beside the
workers: one worker alone already keeps two cores busy.

The same conversion each time (fineweb-edu on a local folder of FineWeb-Edu-shaped files in
1,000-row groups, N training shards + 1), so the only difference is the cores; every run's
shards must be byte for byte the first run's. Within a process: one warm-up run, then
--repeats timed runs (median). For Ray, the pinned process starts a local Ray with N CPUs
once (timed: Ray's start-up) and converts on it; and one cold `--engine ray` run on all the
cores starts and stops its own Ray, as a one-off `shardsql convert --engine ray` does.

Where the OS cannot pin a process (macOS), the processes run unpinned and the table says so.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import measure
from contenders import DATASET
from data import DataSpec, ensure_data

ROW_GROUP_ROWS, MEDIAN_CHARS, SIGMA = 1_000, 2_770, 1.0  # bench.py's fineweb-edu-1k layout
CHILD_TIMEOUT_S = 1_800
PINNABLE = hasattr(os, "sched_setaffinity")


def core_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to the cores, and the cores themselves."""
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return [*counts, cores]


def run_scaling(args, work: Path, log: Callable[[str], None]) -> int:
    cpus = sorted(os.sched_getaffinity(0)) if PINNABLE else list(range(os.cpu_count() or 1))
    rows = (args.num_shards + 1) * args.rows_per_shard
    per_file = -(-round(rows * 1.15 / args.files) // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
    spec = DataSpec(args.files, per_file, ROW_GROUP_ROWS, MEDIAN_CHARS, SIGMA, args.seed)
    _, source, stats = ensure_data(spec, log)
    info = measure.machine()
    load_before = measure.load_average()
    counts = core_counts(len(cpus))
    pinned = "pinned to" if PINNABLE else "NOT pinned (no sched_setaffinity here):"
    log(f"scaling: {rows:,} rows into {args.num_shards} + 1 shards, {pinned} {counts} of {len(cpus)} cores")
    job = {"source": str(source), "num_shards": args.num_shards, "rows_per_shard": args.rows_per_shard,
           "repeats": args.repeats, "work": str(work)}  # fmt: skip
    results: dict[str, dict[int, dict]] = {"local": {}, "ray": {}}
    want = None
    for engine in results:
        for n in counts:
            got = _child(job | {"engine": engine, "cores": n, "cpus": cpus[:n]})
            want = want or got["hashes"]
            if got["hashes"] != want:
                raise SystemExit(f"scaling: {engine} on {_cores(n)} wrote different shards: the engines must agree")
            results[engine][n] = got
            log(f"  {engine}, {_cores(n)}: {statistics.median(got['seconds']):.2f} s")
    cold = _child(job | {"engine": "ray", "cores": len(cpus), "cpus": cpus, "cold": True})
    if cold["hashes"] != want:
        raise SystemExit("scaling: the cold Ray run wrote different shards")
    log(f"  ray, cold (starts its own Ray): {cold['seconds'][0]:.2f} s")
    record = {
        **measure.record_head(info, load_before),
        "pinned": PINNABLE,
        "parameters": {
            "dataset": DATASET,
            "num_shards": args.num_shards,
            "rows_per_shard": args.rows_per_shard,
            "rows_written": rows,
            "repeats": args.repeats,
            "data": stats,
        },  # fmt: skip
        "runs": {engine: {str(n): got for n, got in by.items()} for engine, by in results.items()},
        "ray_start_seconds": {str(n): got["ray_start"] for n, got in results["ray"].items()},
        "ray_cold_run_seconds": round(cold["seconds"][0], 2),
    }
    markdown = render(record, results, rows)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaling.md").write_text(markdown)
    (args.out / "scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {args.out / 'scaling.md'} and {args.out / 'scaling.json'}")
    return 0


def _child(job: dict) -> dict:
    """Run one configuration in a fresh process (this file as a script) and return its figures."""
    done = subprocess.run(
        [sys.executable, __file__, json.dumps(job)], capture_output=True, text=True, timeout=CHILD_TIMEOUT_S
    )
    if done.returncode != 0:
        raise SystemExit(f"scaling: the {job['engine']} run on {job['cores']} cores failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(job: dict) -> dict:
    """In the pinned process: warm-up and timed conversions with `--workers` = the cores."""
    if PINNABLE:
        os.sched_setaffinity(0, job["cpus"])  # before anything starts a thread pool sized by the cores
    from contenders import ray_module, shardsql_convert

    cores, work = job["cores"], Path(tempfile.mkdtemp(prefix="scaling-", dir=job["work"]))
    ray_start = None
    if job["engine"] == "ray" and not job.get("cold"):
        ray = ray_module()
        begin = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        ray_start = round(time.perf_counter() - begin, 2)
    seconds, cpu, hashes = [], [], None
    runs = 1 if job.get("cold") else job["repeats"] + 1
    for index in range(runs):

        def options():
            return dict(num_shards=job["num_shards"], rows_per_shard=job["rows_per_shard"], source=job["source"],
                        cache_dir=work / "cache", engine=job["engine"], workers=cores)  # fmt: skip

        begin, begin_cpu = time.perf_counter(), time.process_time()
        result = shardsql_convert(**options())
        took, took_cpu = time.perf_counter() - begin, time.process_time() - begin_cpu
        shutil.rmtree(work / "cache")
        got = [s.sha256 for s in result.shards]
        if hashes is not None and got != hashes:
            raise SystemExit("the shards differ between runs in one process")
        hashes = got
        if index or job.get("cold"):  # the first run of a warm series is its warm-up
            seconds.append(round(took, 3))
            cpu.append(round(took_cpu, 3))
    threads = None
    if job["engine"] == "local" and Path("/proc/self/task").is_dir():  # one more, untimed run
        with measure.ThreadCPU() as threads:
            shardsql_convert(**options())
        shutil.rmtree(work / "cache")
    shutil.rmtree(work, ignore_errors=True)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1 << 10)
    return {"seconds": seconds, "cpu_seconds": cpu, "hashes": hashes, "ray_start": ray_start,
            "thread_cpu_seconds": threads.seconds if threads else None, "peak_rss_mb": round(peak),
            "shared_rss_mb": _shared_rss_mb()}  # fmt: skip


def _shared_rss_mb() -> int | None:
    """This process's resident shared-memory pages now (Linux): under Ray, the pages of the
    object store it has read (the compressed shards), which its RSS counts too."""
    try:
        line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("RssShmem:"))
    except (OSError, StopIteration):
        return None
    return round(int(line.split()[1]) / 1024)


def render(record: dict, results: dict[str, dict[int, dict]], rows: int) -> str:
    m = record["machine"]
    how = "a fresh process pinned to N of the CPUs" if record["pinned"] else "a fresh process, NOT pinned"
    lines = [
        "# shardsql scaling",
        "",
        f"{record['date']}; {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, Python {m['python']}; "
        f"shardsql {m['shardsql_commit']}; load average {record['load_average']['before']} before, "
        f"{record['load_average']['after']} after.",
        f"`{DATASET}` on a local folder, {rows:,} rows written. Each row: {how}, `--workers N`; median of "
        f"{record['parameters']['repeats']} runs after a warm-up; every run's shards identical.",
        "",
        "| engine | cores | seconds | rows a second | speed-up over 1 core | cores busy (driver's CPU time / wall) "
        "| driver's peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for engine, by_cores in results.items():
        one = statistics.median(by_cores[1]["seconds"])
        for n, got in by_cores.items():
            median = statistics.median(got["seconds"])
            busy = statistics.median(got["cpu_seconds"]) / median
            rss = f"{got['peak_rss_mb']} MB"
            if engine == "ray" and got["shared_rss_mb"]:
                rss += f" ({got['shared_rss_mb']} MB shared)"
            cells = f"{median:.2f} | {rows / median:,.0f} | {one / median:.2f}x | {busy:.2f} | {rss}"
            lines.append(f"| {engine} | {n} | {cells} |")
    local = {n: got["thread_cpu_seconds"] for n, got in results["local"].items() if got["thread_cpu_seconds"]}
    if local:
        counts = list(local)
        lines += [
            "",
            "Where the local engine's CPU goes, in seconds, by thread (a separate, untimed run at each core count, "
            "sampled from /proc every 20 ms). A group that stays on one thread cannot use more cores.",
            "",
            "| threads | " + " | ".join(_cores(n) for n in counts) + " |",
            "| --- |" + " --- |" * len(counts),
        ]
        for group in local[counts[-1]]:
            lines.append(f"| {group} | " + " | ".join(f"{local[n].get(group, 0):.2f}" for n in counts) + " |")
    starts = ", ".join(f"{s:.1f} s on {_cores(int(n))}" for n, s in record["ray_start_seconds"].items())
    lines += [
        "",
        "For Ray, the driver's CPU time and peak RSS leave out the tasks, which run in Ray's worker processes. "
        "A peak RSS is the process's over all its runs; under Ray it counts the pages of Ray's shared object "
        "store that the driver has read (the compressed shards it writes), shown in brackets at the end.",
        f"Ray start-up (`ray.init` of a local Ray): {starts}. A cold `--engine ray` run that starts and "
        f"stops its own Ray, on all {m['cpus']} cores: {record['ray_cold_run_seconds']:.1f} s.",
        "",
    ]
    return "\n".join(lines)


def _cores(n: int) -> str:
    return f"{n} core" if n == 1 else f"{n} cores"


if __name__ == "__main__":  # a pinned configuration's process (see _child)
    print(json.dumps(child(json.loads(sys.argv[1]))))
