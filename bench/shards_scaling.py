"""The shards-scaling table (`just bench --shards-scaling`): how the shuffled conversion (the
default) grows with the number of shards, against `--no-shuffle`, at 10 and 40 shards of
86,016 rows (`--shard-counts`, `--rows-per-shard`).

Each run is a fresh process, the `shardsql convert fineweb-edu --source DIR --num-shards N
--rows-per-shard R --cache-dir CACHE --yes --quiet` command (with `--no-shuffle`, or not),
started through launch.py as the main benchmark starts it: wall time, CPU time (user + system
of the process tree), peak RSS and the tree's bytes written (/proc/<pid>/io write_bytes). While
it runs, a thread of this process sums the sizes of the files under CACHE every 0.1 s: the
cache folder's peak, its staging folder included, against the size of the shards it ends with.
`--repeats` (2) rounds a count, each a `--no-shuffle` run then a shuffled one, as the main
benchmark interleaves its contenders: each mode's best wall time and best CPU time count (the
median beside them), its highest peak RSS and peak disk. Before each run, the source is read
into the page cache and the disks synced (the previous run's dirty pages are not written back
during the next). The `--no-shuffle` shards must be N + 1 of R rows in 1,024-row groups; the
shuffled ones the first `--no-shuffle` run's names and row counts, and no text twice
(measure.compare_shuffled), in every round.

The source is FineWeb-Edu-shaped (data.py: unique documents, FineWeb-Edu's columns, ~3% nulls
and short texts) in 8 files (`--files`) of 1,000-row groups, with enough rows for the largest
count + 1 after the definition's filter, and shorter documents than the main job's: log-normal
lengths of FineWeb-Edu's shape (sigma 1.0) with a mean of about 1,500 characters, as the
issue's own measurement had (40 + 1 shards of FineWeb-Edu's mean of ~4,700 would be about 17 GB
of text). Generated once into bench/.data/<key>/; the conversions' cache folders go beside it
(on the same disk, not a tmpfs where write_bytes reads 0) and are removed after.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import measure
from contenders import DATASET, shardsql_command
from data import DataSpec, ensure_data

ROWS_PER_SHARD = 86_016
SHARD_COUNTS = (10, 40)
FILES = 8
ROW_GROUP_ROWS = 1_000
SIGMA = 1.0  # FineWeb-Edu's log-normal shape (bench.py's fineweb-edu-1k layout) ...
MEDIAN_CHARS = 886  # ... scaled to a mean of ~1,500 characters (generated: 1,500 at seed 0)
KEPT = 0.95  # the fineweb-edu definition keeps ~97.5% of the generated rows: generate for 95%
SAMPLE_EVERY_S = 0.1
GOAL_WALL_RATIO = 1.3  # shuffled wall time at most 1.3x --no-shuffle's, at every count (issue 26)
GOAL_DISK_RATIO = 1.6  # the cache folder's peak, shuffled, at most 1.6x the shards it writes
MODES = (("--no-shuffle", False), ("shuffled", True))


def parse_counts(text: str) -> list[int]:
    """The training shards of each run, from "10,40": at least one each, smallest first."""
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise ValueError(f"shard counts must be whole numbers of at least 1: {text!r}")
    return counts


def source_spec(largest: int, rows_per_shard: int, files: int, seed: int) -> DataSpec:
    """Enough rows for `largest` + 1 shards after the filter, in whole row groups a file."""
    rows = (largest + 1) * rows_per_shard / KEPT
    per_file = math.ceil(rows / files / ROW_GROUP_ROWS) * ROW_GROUP_ROWS
    return DataSpec(files, per_file, ROW_GROUP_ROWS, MEDIAN_CHARS, SIGMA, seed)


def run_shards_scaling(args, log: Callable[[str], None]) -> int:
    started = time.perf_counter()
    counts = parse_counts(args.shard_counts)
    rows_per_shard = max(1, round((args.rows_per_shard or ROWS_PER_SHARD) * args.scale))
    spec = source_spec(counts[-1], rows_per_shard, args.files or FILES, args.seed)
    repo, source, stats = ensure_data(spec, log)
    files = sorted(source.glob("*.parquet"))
    info = measure.machine()
    work = Path(tempfile.mkdtemp(prefix=".shards-scaling-", dir=repo.parent.parent))  # beside the data
    load_before = measure.load_average()
    log(f"shards scaling: {', '.join(map(str, counts))} + 1 shards of {rows_per_shard:,} rows, --no-shuffle and "
        f"shuffled; {stats['rows']:,} rows in {len(files)} files, mean {stats['mean_chars']:,} characters")  # fmt: skip
    rounds = max(1, args.repeats)
    runs: dict[int, dict] = {}
    ok = True
    try:
        for n in counts:
            done: dict[str, list[dict]] = {mode: [] for mode, _ in MODES}
            reference = work / f"{n}-no-shuffle-0" / "data"  # the first --no-shuffle run's shards
            for round_index in range(rounds):
                for mode, shuffle in MODES:
                    cache = work / f"{n}-{mode.strip('-')}-{round_index}"
                    command = shardsql_command(cache, num_shards=n, rows_per_shard=rows_per_shard,
                                               source=str(source), shuffle=shuffle)  # fmt: skip
                    measure.warm_page_cache(files)
                    os.sync()
                    got = convert_once(command, cache)
                    got["check"] = check(cache / "data", n, rows_per_shard, reference, shuffle)
                    ok &= got["check"]["ok"]
                    done[mode].append(got)
                    log(f"  {n} + 1 shards, {mode}, round {round_index + 1}/{rounds}: {got['seconds']:.2f} s, "
                        f"{got['cpu_seconds']:.2f} s CPU, peak RSS {got['peak_rss_mb']:,.0f} MB, peak disk "
                        f"{got['disk']['peak_bytes'] / 1e6:,.0f} MB for {got['output_bytes'] / 1e6:,.0f} MB of "
                        f"shards; {got['check']['detail']}")  # fmt: skip
                    if cache != reference.parent:  # the reference is kept for the shuffled runs
                        shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(reference.parent, ignore_errors=True)
            runs[n] = {mode: summary(done[mode], n) for mode, _ in MODES}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {
        **measure.record_head(info, load_before),
        "parameters": {
            "dataset": DATASET,
            "shard_counts": counts,
            "rows_per_shard": rows_per_shard,
            "files": spec.files,
            "rows_per_file": spec.rows_per_file,
            "row_group_rows": spec.row_group_rows,
            "lengths": f"log-normal, median {spec.median_chars:,} characters, sigma {spec.sigma:g} (FineWeb-Edu's "
            f"shape, mean ~{spec.mean_chars:,}), the longest cut at 250,000",
            "data": stats,
            "cache_filesystem": measure.filesystem(work.parent),
            "sample_every_seconds": SAMPLE_EVERY_S,
            "runs_per_mode_and_count": rounds,
        },
        "runs": {str(n): by_mode | {"ratios": ratios(by_mode)} for n, by_mode in runs.items()},
    }
    record["goals_missed"] = [
        f"{n} shards: {what}" for n, by_mode in record["runs"].items() for what, r in by_mode["ratios"].items()
        if r["met"] is False
    ]  # fmt: skip
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    markdown = render(record)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shards-scaling.md").write_text(markdown)
    (args.out / "shards-scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {args.out / 'shards-scaling.md'} and {args.out / 'shards-scaling.json'}")
    return 0 if ok else 1


def summary(rounds: list[dict], n: int) -> dict:
    """A mode's runs at one count: the fastest run's record, with the best CPU time, the
    medians, the highest peak RSS and peak disk of them all, every run's check, and each run
    (`rounds`)."""
    fastest = min(rounds, key=lambda r: r["seconds"])
    fullest = max(rounds, key=lambda r: r["disk"]["peak_bytes"])
    failed = [r["check"] for r in rounds if not r["check"]["ok"]]
    return fastest | {
        "seconds_a_shard": round(fastest["seconds"] / (n + 1), 3),  # of the n + 1 written
        "seconds_median": round(statistics.median(r["seconds"] for r in rounds), 3),
        "cpu_seconds": min(r["cpu_seconds"] for r in rounds),
        "cpu_seconds_median": round(statistics.median(r["cpu_seconds"] for r in rounds), 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds),
        "disk": fullest["disk"],
        "check": failed[0] if failed else fastest["check"],
        "rounds": [{key: r[key] for key in ("seconds", "cpu_seconds", "peak_rss_mb")} for r in rounds],
    }


def convert_once(command: list[str], cache: Path) -> dict:
    """One conversion in a fresh process, the cache folder's size sampled while it runs."""
    with measure.FolderPeak(cache, SAMPLE_EVERY_S) as disk:
        usage, _ = measure.fresh_process(command)
    layout = measure.shard_layout(cache / "data")
    return {
        "command": command,
        "seconds": round(usage.seconds, 3),
        "cpu_seconds": round(usage.cpu, 3),
        "peak_rss_mb": round(usage.peak_rss_mb),
        "write_bytes": usage.write_bytes,
        "cancelled_write_bytes": usage.cancelled_write_bytes,
        "output_bytes": layout["bytes"],
        "shards": len(layout["row_groups"]),
        "codecs": layout["codecs"],
        "row_groups_all_1024": layout["row_groups_1024"],
        "disk": disk.record(),
    }


def check(folder: Path, n: int, rows_per_shard: int, in_order: Path, shuffled: bool) -> dict:
    """--no-shuffle: n + 1 shards of `rows_per_shard` rows in 1,024-row groups. Shuffled: the
    --no-shuffle run's shard names and row counts (`in_order`), no text twice."""
    if shuffled:
        ok, detail = measure.compare_shuffled(folder, in_order, whose="--no-shuffle's")
        return {"ok": ok, "detail": detail}
    layout = measure.shard_layout(folder)
    sizes = {name: sum(groups) for name, groups in layout["row_groups"].items()}
    ok = len(sizes) == n + 1 and set(sizes.values()) == {rows_per_shard} and layout["row_groups_1024"]
    detail = f"{len(sizes)} shards of {', '.join(f'{r:,}' for r in sorted(set(sizes.values())))} rows"
    return {"ok": ok, "detail": detail + ("" if layout["row_groups_1024"] else ", row groups not all 1,024")}


def ratios(by_mode: dict[str, dict]) -> dict[str, dict]:
    """Shuffled against --no-shuffle (wall time, CPU time), and each mode's peak disk against its shards."""
    slow, fast = by_mode["shuffled"], by_mode["--no-shuffle"]

    def ratio(value: float, goal: float | None) -> dict:
        return {"value": round(value, 3), "goal": None if goal is None else f"<= {goal:g}x",
                "met": None if goal is None else value <= goal}  # fmt: skip

    return {
        "shuffled / --no-shuffle, wall time": ratio(slow["seconds"] / fast["seconds"], GOAL_WALL_RATIO),
        "shuffled / --no-shuffle, CPU time": ratio(slow["cpu_seconds"] / fast["cpu_seconds"], None),
        "shuffled: peak disk of the cache folder / its shards": ratio(
            slow["disk"]["peak_bytes"] / slow["output_bytes"], GOAL_DISK_RATIO
        ),
        "--no-shuffle: peak disk of the cache folder / its shards": ratio(
            fast["disk"]["peak_bytes"] / fast["output_bytes"], None
        ),
    }


def _label(mode: str) -> str:
    return f"`{mode}`" if mode.startswith("--") else mode


def _met(r: dict) -> str:
    return "" if r["met"] is None else ("yes" if r["met"] else "**NO**")


def _mb(value: int | None) -> str:
    return "?" if value is None else f"{value / 1e6:,.0f} MB"


def render(record: dict) -> str:
    m, p, runs = record["machine"], record["parameters"], record["runs"]
    d = p["data"]
    lines = [
        "# shardsql: the shuffled conversion against `--no-shuffle`, by number of shards",
        "",
        f"{record['date']}; {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, Python {m['python']}, "
        f"polars {m['polars']}, duckdb {m['duckdb']}, pyarrow {m['pyarrow']}; shardsql {m['shardsql_commit']}; "
        f"load average {record['load_average']['before']} before, {record['load_average']['after']} after; "
        f"the benchmark took {record['wall_seconds']:.0f} s.",
        "",
        f"`shardsql convert {p['dataset']} --source DIR --num-shards N --rows-per-shard {p['rows_per_shard']} "
        "--cache-dir CACHE --yes --quiet`, with `--no-shuffle` and without (the shuffled default), each a fresh "
        f"process, {p['runs_per_mode_and_count']} rounds a count, each `--no-shuffle` then shuffled; wall and CPU: "
        "the best run's (the median in brackets); peak RSS and peak disk: the highest run's. Source in the page "
        "cache, disks synced before each run. "
        f"Source: {p['files']} files of {p['rows_per_file']:,} unique FineWeb-Edu-shaped documents "
        f"({d['rows']:,} rows, {d['bytes_on_disk'] / 1e9:.2f} GB, {p['row_group_rows']:,}-row groups, snappy), "
        f"lengths {p['lengths']}: a mean of {d['mean_chars']:,} characters generated; fineweb-edu keeps "
        f"{d['kept_fineweb_edu']:.1%}. CACHE on {p['cache_filesystem']}.",
        "",
        "Wall time from the spawn to the exit; a shard: of the N + 1 written. CPU: user + system of the process "
        "tree. Written: the tree's /proc/<pid>/io write_bytes (in brackets, cancelled_write_bytes: dirty pages "
        f"of files deleted before they were written back). Peak disk: the files under CACHE, sampled every "
        f"{p['sample_every_seconds']:g} s while the run went (its staging folder included).",
        "",
        "| shards | mode | wall | wall a shard | CPU | peak RSS | written (cancelled) | shards' size | peak disk "
        "of CACHE | peak disk / shards | shards right |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, by_mode in runs.items():
        for mode, _ in MODES:
            r = by_mode[mode]
            cells = [f"{n} + 1", _label(mode), f"{r['seconds']:.2f} s ({r['seconds_median']:.2f})",
                     f"{r['seconds_a_shard']:.2f} s", f"{r['cpu_seconds']:.2f} s ({r['cpu_seconds_median']:.2f})",
                     f"{r['peak_rss_mb']:,} MB",
                     f"{_mb(r['write_bytes'])} ({_mb(r['cancelled_write_bytes'])})", _mb(r["output_bytes"]),
                     _mb(r["disk"]["peak_bytes"]), f"{r['disk']['peak_bytes'] / r['output_bytes']:.2f}x",
                     ("yes: " if r["check"]["ok"] else "**NO**: ") + r["check"]["detail"]]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"| shards | shuffled / `--no-shuffle`: wall (goal <= {GOAL_WALL_RATIO:g}x) | met | CPU | shuffled: peak "
        f"disk of CACHE / its shards (goal <= {GOAL_DISK_RATIO:g}x) | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for n, by_mode in runs.items():
        wall, cpu, disk, _ = by_mode["ratios"].values()
        lines.append(f"| {n} + 1 | {wall['value']:.2f}x | {_met(wall)} | {cpu['value']:.2f}x | "
                     f"{disk['value']:.2f}x | {_met(disk)} |")  # fmt: skip
    if len(runs) > 1:
        (low, first), (high, last) = list(runs.items())[0], list(runs.items())[-1]
        growth = "; ".join(
            f"{_label(mode)} {first[mode]['seconds_a_shard']:.2f} s to {last[mode]['seconds_a_shard']:.2f} s "
            f"({last[mode]['seconds_a_shard'] / first[mode]['seconds_a_shard']:.2f}x)"
            for mode, _ in MODES
        )
        lines += ["", f"Wall time a shard from {low} + 1 to {high} + 1 shards: {growth}."]
    missed = record["goals_missed"]
    lines += ["", f"Goals missed: {'; '.join(missed)}." if missed else "All goals met.", ""]
    return "\n".join(lines)
