"""The link rows: the main job through the stand-in's model of a real network, as a user on one sees it.

The stand-in (its own process) plays the link issue 23 measured on: 100 ms round trip on every
answer (and two more for a new connection's handshakes), 4 MB/s a connection, 25 MB/s for the
whole link, `/resolve/` answered with a 302 to a signed storage URL, and the resolver quota
scaled to the job (10 a 10 s). `shardsql convert` runs as a fresh process from the shell, once
`--no-shuffle` and once shuffled (the default), and once `--no-shuffle --engine ray` (a local
Ray of this machine's cores, its fetch actor's streams). For each: the rate (bytes the stand-in served
over the process's wall time, and over the time between the first read and the last byte:
the shuffled run's read phase), its share of the link, `/resolve/` requests a file, storage
requests and their mean size, the most reads at once, peak RSS, and the shards checked.

With `--link` alone, a user-scale pair follows: `--no-shuffle` on the local engine and on Ray,
30 + 1 shards from the shards-scaling source (shards_scaling.py: 8 files, about 2.6 GB to
fetch), through the same link. A run's start (imports, footers, a local Ray's start and its
fetch actor's) and its tail (the last shards' compression) cost the same at any size: over the
main job's 37 s of link time they weigh far more than over a user's minutes. Ray's shards
there are checked against the local engine's.

Beside them, the figures issue 23 measured before this reader (at 8b4db38), and, on paper, a
16-core box on a 10 Gb/s link: the ranges a second and streams it needs, and what shardsql
would reach there, from this machine's measured CPU cost per MB. Nothing on paper is a
measurement; the table says which rows are which.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import measure
import shards_scaling
from contenders import DATASET, seed_loop, shardsql_cli
from data import ensure_data
from hub import HubProcess
from report import Row

RTT_S, CONNECTION_BPS, LINK_BPS = 0.1, 4e6, 25e6
RESOLVER_QUOTA = (10, 10)  # /resolve/ requests a window of seconds: the Hub's anonymous quota scaled to the job
GOAL_SHARE = 0.9  # of the link's rate
GOAL_MB_PER_STORAGE_REQUEST = 4.0
# The runs: their label, and their flags beside the job's.
RUNS = {"--no-shuffle": ["--no-shuffle"], "shuffled": [], "--no-shuffle on Ray": ["--no-shuffle", "--engine", "ray"]}
# Issue 23's measurements through the same model, before (8b4db38): share of the link, /resolve/ a file.
# Ray's: at a9a4b19, where each task fetched its own unit (95.6 s, at most 4 reads at once; this module's run).
BEFORE = {"--no-shuffle": (0.31, "131 for 3 files (44 a file), 19 refused"), "shuffled": (0.27, "149 for 3 files"),
          "--no-shuffle on Ray": (0.38, "3 for 3 files")}  # fmt: skip
# The box on paper: a 10 Gb/s link, 16 cores, and a CDN's pace per connection and round trip (assumed).
PAPER_LINK_BPS, PAPER_CORES, PAPER_CONNECTION_BPS, PAPER_RTT_S = 1.25e9, 16, 50e6, 0.02
PIECE_MB = 4.5  # a FineWeb-Edu unit's text chunks (about 9 MB) in two pieces
ANONYMOUS_RESOLVES_A_SECOND = 3000 / 300  # the Hub's documented anonymous quota: 3,000 a 5 minutes
FINEWEB_EDU_FILE_MB = 2100  # a file of FineWeb-Edu's sample/10BT, about
SCALE_SHARDS = 30  # the user-scale pair's training shards (`--link` alone)
SCALE_RUNS = {"--no-shuffle": ["--no-shuffle"], "--no-shuffle on Ray": ["--no-shuffle", "--engine", "ray"]}


def link_rows(work: Path, repo_dir: Path, files: list[Path], n: int, rows_per_shard: int, log) -> tuple[list, dict]:
    """The link rows and their record (see the module docstring)."""
    reference = work / "link-seed"
    seed_loop(reference, files=files, num_shards=n, rows_per_shard=rows_per_shard)
    hub = HubProcess(repo_dir)
    runs: dict[str, dict] = {}
    try:
        hub.ask("network", RTT_S, CONNECTION_BPS, LINK_BPS)
        hub.ask("limit", *RESOLVER_QUOTA)
        for order, flags in RUNS.items():
            out = work / f"link-{len(runs)}"
            runs[order] = _served_run(hub, out, n, rows_per_shard, flags, log)
            compare = measure.compare_shards if "--no-shuffle" in flags else measure.compare_shuffled
            runs[order]["check"] = compare(out / "data", reference)
            shutil.rmtree(out, ignore_errors=True)
    finally:
        hub.close()
        shutil.rmtree(reference, ignore_errors=True)
    model = {"rtt_s": RTT_S, "connection_bytes_per_s": CONNECTION_BPS, "link_bytes_per_s": LINK_BPS,
             "resolver_quota": RESOLVER_QUOTA}  # fmt: skip
    return rows(runs), {"model": model, "runs": runs}


def _served_run(hub: HubProcess, out: Path, n: int, rows_per_shard: int, flags: list[str], log) -> dict:
    """One `shardsql convert` through the stand-in's link, a fresh process: its usage and what was served."""
    hub.ask("reset")
    command = ["convert", DATASET, "--num-shards", str(n), "--rows-per-shard", str(rows_per_shard),
               "--cache-dir", str(out), "--yes", "--quiet", *flags]  # fmt: skip
    log(f"  through the modelled link: shardsql {' '.join(command[:4])} {' '.join(flags)} (fresh process)...")
    usage, _ = measure.fresh_process(shardsql_cli() + command, env=dict(os.environ) | {"HF_ENDPOINT": hub.url})
    served = hub.ask("stats")
    log(f"    {usage.seconds:.1f} s, {served['bytes_served'] / 1e6:,.0f} MB, {served['resolves']} resolves, "
        f"at most {served['most_reads_at_once']} reads at once")  # fmt: skip
    return {"seconds": round(usage.seconds, 2), "cpu_seconds": round(usage.cpu, 2),
            "peak_rss_mb": round(usage.peak_rss_mb), "served": served}  # fmt: skip


def scale_rows(work: Path, rows_per_shard: int, seed: int, log) -> tuple[list[Row], dict]:
    """The user-scale pair (see the module docstring): `--no-shuffle` locally and on Ray, SCALE_SHARDS
    + 1 shards through the same link, each one's share of it over its process's wall time."""
    spec = shards_scaling.source_spec(max(shards_scaling.SHARD_COUNTS), rows_per_shard, shards_scaling.FILES, seed)
    repo_dir, _, _ = ensure_data(spec, log)  # the shards-scaling source, shared with --shards-scaling
    hub = HubProcess(repo_dir)
    runs: dict[str, dict] = {}
    outs = {order: work / f"link-scale-{i}" for i, order in enumerate(SCALE_RUNS)}
    try:
        hub.ask("network", RTT_S, CONNECTION_BPS, LINK_BPS)
        hub.ask("limit", *RESOLVER_QUOTA)
        for order, flags in SCALE_RUNS.items():
            runs[order] = _served_run(hub, outs[order], SCALE_SHARDS, rows_per_shard, flags, log)
        local, ray = (outs[order] / "data" for order in SCALE_RUNS)
        check = measure.compare_shards(ray, local)
    finally:
        hub.close()
        for out in outs.values():
            shutil.rmtree(out, ignore_errors=True)
    link_mb = LINK_BPS / 1e6
    out: list[Row] = []
    for order, run in runs.items():
        mb = run["served"]["bytes_served"] / 1e6
        rate = mb / run["seconds"]
        out += [
            Row(f"{SCALE_SHARDS} + 1 shards, {order}: wall time, MB fetched, read rate (over the wall time)",
                f"{run['seconds']:.1f} s, {mb:,.0f} MB, {rate:.1f} MB/s"),
            Row(f"{SCALE_SHARDS} + 1 shards, {order}: share of the link's {link_mb:g} MB/s (over the process's "
                "wall time)", f"{rate / link_mb:.0%}", f">= {GOAL_SHARE:.0%}", rate / link_mb >= GOAL_SHARE),
        ]  # fmt: skip
    out.append(Row(f"{SCALE_SHARDS} + 1 shards: Ray's shards against the local engine's", check[1], "equal", check[0]))
    return out, {"shards": SCALE_SHARDS, "rows_per_shard": rows_per_shard, "runs": runs,
                 "ray_equals_local": check[0]}  # fmt: skip


def rows(runs: dict[str, dict]) -> list[Row]:
    link_mb = LINK_BPS / 1e6
    out: list[Row] = []
    for order, run in runs.items():
        served, before = run["served"], BEFORE[order]
        mb = served["bytes_served"] / 1e6
        wall_rate, read_rate = mb / run["seconds"], mb / max(served["read_seconds"], 1e-9)
        # --no-shuffle: the whole process, as its user waits for it. Shuffled: its read phase (the
        # write phase after it reads nothing).
        in_order = order.startswith("--no-shuffle")
        rate, over = (wall_rate, "the process's wall time") if in_order else (read_rate, "its reads")
        rss_goal = None if "Ray" in order else (500 if in_order else 1000)  # Ray: the driver's alone, for information
        data_requests = max(served["file_requests"] - 2 * served["files"], 1)
        per_request = (served["bytes_served"] / data_requests) / 1e6
        out += [
            Row(f"{order}: wall time, MB fetched, read rate (over the wall time; over the reads)",
                f"{run['seconds']:.1f} s, {mb:,.0f} MB, {wall_rate:.1f} MB/s; {read_rate:.1f} MB/s"),
            Row(f"{order}: share of the link's {link_mb:g} MB/s (over {over}); before, issue 23",
                f"{rate / link_mb:.0%}; before {before[0]:.0%}", f">= {GOAL_SHARE:.0%}", rate / link_mb >= GOAL_SHARE),
            Row(f"{order}: /resolve/ requests for {served['files']} files (refused 429 among them), the most for "
                f"one file; before", f"{served['resolves']} ({served['resolves_refused']}), "
                f"{served['most_resolves_a_file']}; before {before[1]}",
                "<= 1 a file, plus retries", served["resolves"] - served["resolves_refused"] <= served["files"]),
            Row(f"{order}: storage requests (the footers' two a file left out), mean MB; most at once",
                f"{data_requests}, {per_request:.1f} MB; {served['most_reads_at_once']}",
                f">= {GOAL_MB_PER_STORAGE_REQUEST:g} MB", per_request >= GOAL_MB_PER_STORAGE_REQUEST),
            Row(f"{order}: peak RSS (fresh process{'; the driver' if rss_goal is None else ''}), CPU time"
                f"{' (the driver and the Ray processes it reaped)' if rss_goal is None else ''}",
                f"{run['peak_rss_mb']} MB, {run['cpu_seconds']:.1f} s", f"<= {rss_goal} MB" if rss_goal else "",
                run["peak_rss_mb"] <= rss_goal if rss_goal else None),
            Row(f"{order}: shards checked against the seed loop's", run["check"][1], "equal", run["check"][0]),
        ]  # fmt: skip
    out += paper_rows(runs.get("--no-shuffle"))
    return out


def paper_rows(run: dict | None) -> list[Row]:
    """A 16-core box on a 10 Gb/s link, on paper: what it needs of the reader, and what it would reach."""
    link = PAPER_LINK_BPS / 1e6
    per_stream = PIECE_MB / (PAPER_RTT_S + PIECE_MB / (PAPER_CONNECTION_BPS / 1e6))
    streams = link / per_stream
    out = [
        Row(f"on paper, a 10 Gb/s link ({link:,.0f} MB/s): ranges a second at {PIECE_MB} MB; streams at "
            f"{PAPER_CONNECTION_BPS / 1e6:g} MB/s a connection and {PAPER_RTT_S * 1000:g} ms a round trip (assumed)",
            f"{link / PIECE_MB:.0f} a second; {streams:.0f} streams (the ceiling is 32)"),
        Row(f"on paper: /resolve/ a second at that rate, one a file of ~{FINEWEB_EDU_FILE_MB:,} MB; one a range "
            f"of 9 MB, as before; the anonymous quota",
            f"{link / FINEWEB_EDU_FILE_MB:.1f}; {link / 9:.0f} (capping the link at "
            f"{ANONYMOUS_RESOLVES_A_SECOND * 9:.0f} MB/s); {ANONYMOUS_RESOLVES_A_SECOND:g} a second"),
    ]  # fmt: skip
    if run:
        mb_per_cpu_s = run["served"]["bytes_served"] / 1e6 / max(run["cpu_seconds"], 1e-9)
        cores = mb_per_cpu_s * PAPER_CORES
        out.append(Row(f"on paper: what {PAPER_CORES} cores convert (this run's {mb_per_cpu_s:.0f} MB of source a "
                       "CPU-second, here), and so what shardsql would reach on that box",
                       f"{cores:,.0f} MB/s; {min(cores, link):,.0f} MB/s, bound by the "
                       f"{'cores' if cores < link else 'link'}"))  # fmt: skip
    return out
