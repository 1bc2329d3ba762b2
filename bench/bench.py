"""shardsql's benchmark: speed, memory, requests and bytes, against the goals, in one run.

    uv run python bench/bench.py [--layouts fineweb-edu-1k,pubmed-1k] [--repeats 3] ...

For each source layout (data.py: the real datasets' row-group sizes and document lengths)
it converts the same files with each contender, the same way (median of --repeats runs,
interleaved, fresh output folders), and checks every run's shards against the seed's:

- the seed's per-row Python loop (convert_dataset.py's rechunk_to_shards);
- shardsql's `convert` on the local folder (and, for the main layouts, through the local
  Hub stand-in, with and without 50 ms added to every request);
- a hand-written Polars pipeline (scan, filter, head, partitioned sink).

On the main layout it also measures shardsql's peak RSS in a fresh process for N and 3N
shards, and the requests and bytes the stand-in served against the bytes needed.

It prints one table against the goals and writes bench/results/latest.md and latest.json.
With --scaling it measures instead how the local and the Ray engines scale with workers
(scaling.py) and writes bench/results/scaling.md and scaling.json.
A missed goal is reported as missed; the exit status is 0 unless something failed to run
or the shards are wrong.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmark's own modules

import measure  # noqa: E402
from contenders import DATASET, polars_pipeline, seed_loop, shardsql_convert  # noqa: E402
from data import DATA_DIR, DataSpec, ensure_data  # noqa: E402
from hub import HubProcess, serve  # noqa: E402
from report import Contender, Row, render  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATENCY_S = 0.05
GOAL_SPEEDUP_VS_SEED = 2.0  # shardsql at least 2x faster than the seed loop
GOAL_VS_POLARS = 1.2  # shardsql at most 1.2x the hand-written Polars pipeline's time
GOAL_RSS_MB = 500.0  # peak RSS at most 500 MB ...
GOAL_RSS_FLAT = 1.10  # ... and flat: the 3N run's peak within +10% of the N run's
GOAL_BYTES_RATIO = 1.25  # bytes fetched at most 1.25x the compressed bytes of the chunks needed
GOAL_MB_PER_REQUEST = 8.0  # file reads of at least 8 MB on average: the Hub rations requests
GOAL_LATENCY_RATIO = 1.5  # 50 ms per request costs at most 1.5x the no-latency Hub time


@dataclass(frozen=True)
class Layout:
    name: str
    what: str
    row_group_rows: int
    median_chars: int
    sigma: float
    hub: bool  # also through the stand-in: requests, bytes, latency
    main: bool = False  # the layout for peak RSS (needs 3N shards of data)


# Log-normal lengths: mean = median x exp(sigma^2 / 2).
LAYOUTS = {
    layout.name: layout
    for layout in (
        Layout(
            "fineweb-edu-1k",
            "FineWeb-Edu lengths (mean ~3,500 chars), 1,000-row groups as datatrove wrote FineWeb",
            1_000,
            2_450,
            0.85,
            hub=True,
            main=True,
        ),  # fmt: skip
        Layout(
            "pubmed-1k", "PubMed-abstract lengths (mean ~1,200 chars), 1,000-row groups", 1_000, 1_000, 0.6, hub=False
        ),  # fmt: skip
        Layout(
            "fineweb-edu-100",
            "FineWeb-Edu lengths, ~100-row groups as the Hub's parquet conversions have",
            100,
            2_450,
            0.85,
            hub=True,
        ),  # fmt: skip
        Layout(
            "fineweb-edu-10k",
            "FineWeb-Edu lengths, 10,000-row groups (flatters shardsql: for comparison)",
            10_000,
            2_450,
            0.85,
            hub=False,
        ),  # fmt: skip
    )
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated, of {', '.join(LAYOUTS)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply rows per shard and source rows (default 1)")
    parser.add_argument("--num-shards", type=int, default=4, help="training shards N of the timed runs (default 4)")
    parser.add_argument("--rss-factor", type=int, default=3, help="the RSS runs use N and this times N (default 3)")
    parser.add_argument("--rows-per-shard", type=int, default=20_000, help="rows a shard, before --scale (20,000)")
    parser.add_argument("--files", type=int, default=3, help="source parquet files (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each contender; the median counts (3)")
    parser.add_argument("--seed", type=int, default=0, help="the data generator's seed (default 0)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (default bench/results)")
    parser.add_argument("--scaling", action="store_true", help="only the scaling table (workers, engines)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # internal: the stand-in's process
    args = parser.parse_args(argv)
    unknown = set(args.layouts.split(",")) - set(LAYOUTS)
    if unknown:
        parser.error(f"unknown layouts: {', '.join(sorted(unknown))}")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    # Before anything imports huggingface_hub: no telemetry, no token, no user cache.
    work = Path(tempfile.mkdtemp(prefix="shardsql-bench-"))
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HOME"] = str(work / "hf-home")
    os.environ.pop("HF_TOKEN", None)
    started = time.perf_counter()
    try:
        if args.scaling:
            from scaling import run_scaling

            return run_scaling(args, work, log)
        return run(args, work, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, started: float) -> int:
    rows_per_shard = max(1, round(args.rows_per_shard * args.scale))
    n = args.num_shards
    info = measure.machine()  # also imports the libraries, before any clock starts
    import shardsql.convert  # noqa: F401

    load_before = measure.load_average()
    sections: list[tuple[str, list[Row]]] = []
    layouts: dict[str, dict] = {}
    ok = True
    for name in args.layouts.split(","):
        layout = LAYOUTS[name]
        shards_of_data = n * args.rss_factor if layout.main else n
        # Enough source rows for the largest run and ~10% to spare, in whole row groups.
        rows_total = math.ceil((shards_of_data + 1) * rows_per_shard / 0.97 * 1.10)
        per_file = math.ceil(rows_total / args.files / layout.row_group_rows) * layout.row_group_rows
        spec = DataSpec(args.files, per_file, layout.row_group_rows, layout.median_chars, layout.sigma, args.seed)
        repo_dir, data_dir, stats = ensure_data(spec, log)
        rows, record, fine = run_layout(args, layout, work / name, repo_dir, data_dir, stats, rows_per_shard)
        sections.append((f"{layout.name}: {layout.what}", rows))
        layouts[name] = record | {"data": stats | {"folder": str(DATA_DIR / spec.key())}}
        ok &= fine
    total = time.perf_counter() - started
    all_rows = [row for _, section in sections for row in section]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "load_average": {"before": load_before, "after": measure.load_average()},
        "parameters": {
            "dataset": DATASET,
            "num_shards": n,
            "rss_num_shards": [n, n * args.rss_factor],
            "rows_per_shard": rows_per_shard,
            "repeats": args.repeats,
            "statistic": "median of the timed rounds, after one warm-up round; contenders interleaved",
            "latency_ms": LATENCY_S * 1000,
        },
        "layouts": layouts,
        "table": [row.__dict__ for row in all_rows],
        "goals_missed": [
            f"{title.split(':')[0]}: {row.measure}" for title, rows in sections for row in rows if row.met is False
        ],
        "wall_seconds": round(total, 1),
    }
    markdown = render(result, sections)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(markdown)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out / 'latest.md'} and {args.out / 'latest.json'} ({total:.0f} s)")
    return 0 if ok else 1


def run_layout(args, layout: Layout, work: Path, repo_dir: Path, data_dir: Path, stats: dict, rows_per_shard: int):
    """Time every contender on one layout; return its table rows, its record and whether shards were right."""
    n = args.num_shards
    files = sorted(data_dir.glob("*.parquet"))
    log(
        f"{layout.name}: {stats['rows']:,} rows in {stats['files']} files, {stats['row_groups']} row groups, "
        f"{stats['bytes_on_disk'] / 1e6:,.0f} MB, mean {stats['mean_chars']:,} characters a document"
    )
    for path in files:  # warm the page cache: the figures are CPU cost, not disk speed
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass
    hub = HubProcess(repo_dir) if layout.hub else None
    if hub:
        os.environ["HF_ENDPOINT"] = hub.url
    seed_out = work / "seed-reference"
    seed_docs: list[int] = []

    def seed(out: Path) -> int:
        seed_docs.append(seed_loop(files, out, n, rows_per_shard))
        return seed_docs[-1]

    def in_data(out: Path) -> Path:
        return out / "data"

    contenders = [
        Contender("seed loop", seed, lambda out: out),
        Contender(
            "shardsql, local folder", lambda out: shardsql_convert(out, n, rows_per_shard, str(data_dir)), in_data
        ),  # fmt: skip
        Contender("Polars pipeline", lambda out: polars_pipeline(files, out, n, rows_per_shard), lambda out: out),
    ]
    if hub:
        via_hub = lambda out: shardsql_convert(out, n, rows_per_shard, None)  # noqa: E731
        contenders += [
            Contender("shardsql, via Hub", via_hub, in_data, hub=True),
            Contender(
                f"shardsql, via Hub +{LATENCY_S * 1000:.0f} ms", via_hub, in_data, hub=True, latency_s=LATENCY_S
            ),  # fmt: skip
        ]
    try:
        for round_index in range(args.repeats + 1):
            log("  warm-up round" if round_index == 0 else f"  round {round_index}/{args.repeats}")
            for contender in contenders:
                attempt(contender, work / f"run-{round_index}-{contenders.index(contender)}", seed_out, hub,
                        timed=round_index > 0)  # fmt: skip
        rss = measure_rss(args, layout, work, rows_per_shard) if layout.main else {}
    finally:
        if hub:
            hub.close()
            os.environ.pop("HF_ENDPOINT", None)
    rows = layout_rows(layout, contenders, rss, files, seed_docs[-1], n)
    record = {"contenders": {c.name: c.record() for c in contenders}, "peak_rss_mb": rss}
    fine = all(c.check[0] for c in contenders[1:] if c.name.startswith("shardsql"))
    return rows, record, fine


def attempt(contender: Contender, out: Path, seed_out: Path, hub: HubProcess | None, timed: bool) -> None:
    if contender.hub:
        hub.ask("latency", contender.latency_s)
        hub.ask("reset")
    gc.collect()
    cpu, begin = measure.cpu_seconds(), time.perf_counter()
    contender.run(out)
    seconds, cpu = time.perf_counter() - begin, measure.cpu_seconds() - cpu
    if contender.hub:
        contender.served.append(hub.ask("stats"))
        hub.ask("latency", 0)
    folder = contender.shards_in(out)
    if not seed_out.exists():  # the seed loop runs first
        shutil.copytree(folder, seed_out)
    else:  # every run is checked: a fast but wrong result must not pass
        ok, detail = measure.compare_shards(folder, seed_out)
        if contender.check is None or not ok:
            contender.check = (ok, detail) if contender.check is None or contender.check[0] else contender.check
    contender.layout = contender.layout or measure.shard_layout(folder)
    shutil.rmtree(out, ignore_errors=True)
    if timed:
        contender.seconds.append(seconds)
        contender.cpu.append(cpu)
    log(f"    {contender.name}: {seconds:.2f} s, {cpu:.2f} s CPU{'' if timed else ' (warm-up)'}")


def measure_rss(args, layout: Layout, work: Path, rows_per_shard: int) -> dict:
    """Peak RSS of the CLI in a fresh process, through the stand-in, for N and 3N shards."""
    rss = {}
    for shards in (args.num_shards, args.num_shards * args.rss_factor):
        command = ["convert", DATASET, "--num-shards", str(shards), "--rows-per-shard", str(rows_per_shard)]
        command += ["--cache-dir", str(work / f"rss-{shards}"), "--yes", "--quiet"]
        log(f"  peak RSS of `shardsql {' '.join(command[:6])}` in a fresh process...")
        rss[str(shards)], seconds = measure.peak_rss(measure.RUN_CLI, command, dict(os.environ))
        log(f"    {rss[str(shards)]:.0f} MB, {seconds:.1f} s")
        shutil.rmtree(work / f"rss-{shards}", ignore_errors=True)
    rss["imports_only"], _ = measure.peak_rss(measure.IMPORTS_ONLY, [], dict(os.environ))
    return rss


def layout_rows(layout: Layout, contenders: list[Contender], rss: dict, files, docs_read: int, n: int) -> list[Row]:
    by_name = {c.name: c for c in contenders}
    seed, local, polars = by_name["seed loop"], by_name["shardsql, local folder"], by_name["Polars pipeline"]

    def timing(c: Contender) -> Row:
        mb = c.layout["bytes"] / 1e6
        return Row(f"{c.name}: wall time (CPU time), output size", f"{c.median:.2f} s ({c.median_cpu:.2f} s), "
                   f"{mb:,.0f} MB")  # fmt: skip

    def speedup(c: Contender) -> Row:
        x = seed.median / c.median
        return Row(f"speed-up over the seed loop, {c.name}", f"{x:.2f}x", f">= {GOAL_SPEEDUP_VS_SEED:g}x",
                   x >= GOAL_SPEEDUP_VS_SEED)  # fmt: skip

    x = local.median / polars.median
    rows = [timing(c) for c in contenders]
    rows += [speedup(local)]
    rows += [
        Row("shardsql, local folder / Polars pipeline", f"{x:.2f}x", f"<= {GOAL_VS_POLARS:g}x", x <= GOAL_VS_POLARS)
    ]
    if layout.hub:
        hub, latency = contenders[3], contenders[4]
        rows.append(speedup(hub))
        served = hub.served[-1]
        chunks, footers = measure.bytes_needed(files, docs_read)
        ratio = served["bytes_served"] / chunks
        per_request = served["bytes_served"] / max(served["file_requests"], 1) / 1e6
        # Each file's footer takes two small requests (its length, then the footer): a short
        # run over few files counts them more than a full-size conversion does.
        data_requests = max(served["file_requests"] - 2 * len(files), 1)
        per_data_request = (served["bytes_served"] - footers) / data_requests / 1e6
        rows += [
            Row(
                "bytes fetched / compressed bytes of the text chunks needed",
                f"{ratio:.3f} "
                f"({served['bytes_served'] / 1e6:,.1f} / {chunks / 1e6:,.1f} MB; footers {footers / 1e6:.2f} MB)",
                f"<= {GOAL_BYTES_RATIO:g}",
                ratio <= GOAL_BYTES_RATIO,
            ),  # fmt: skip
            Row(
                "file requests, and MB per request",
                f"{served['file_requests']}, {per_request:.1f} MB",
                f">= {GOAL_MB_PER_REQUEST:g} MB",
                per_request >= GOAL_MB_PER_REQUEST,
            ),  # fmt: skip
            Row(
                "data requests (the footers' two a file left out), and MB per request",
                f"{data_requests}, {per_data_request:.1f} MB",
            ),
        ]
        slow = latency.median / hub.median
        rows.append(Row(f"via Hub with {LATENCY_S * 1000:.0f} ms per request / without", f"{slow:.2f}x "
                        f"({latency.median:.2f} s / {hub.median:.2f} s)", f"<= {GOAL_LATENCY_RATIO:g}x",
                        slow <= GOAL_LATENCY_RATIO))  # fmt: skip
    if rss:
        (n_1, rss_1), (n_3, rss_3) = list(rss.items())[:2]
        rows += [
            Row(
                f"peak RSS, {n_1} and {n_3} training shards (fresh process, via Hub)",
                f"{rss_1:.0f} MB, {rss_3:.0f} MB",
                f"<= {GOAL_RSS_MB:.0f} MB",
                max(rss_1, rss_3) <= GOAL_RSS_MB,
            ),  # fmt: skip
            Row(
                f"peak RSS growth from {n_1} to {n_3} shards",
                f"{rss_3 / rss_1:.2f}x ({rss_3 - rss_1:+.0f} MB)",
                f"flat (<= {GOAL_RSS_FLAT:.2f}x)",
                rss_3 / rss_1 <= GOAL_RSS_FLAT,
            ),  # fmt: skip
            Row(
                "peak RSS of a process that only imports the libraries (for information)",
                f"{rss['imports_only']:.0f} MB",
            ),  # fmt: skip
        ]
    for c in contenders[1:]:
        equal = c.name.startswith("shardsql")
        extra = "" if c.layout["row_groups_1024"] else "; row groups not all 1,024"
        rows.append(Row(f"{c.name}: shards equal the seed loop's, every run", c.check[1] + extra,
                        "equal" if equal else "", c.check[0] if equal else None))  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.exit(main())
