"""shardsql's benchmark: the real job's speed, CPU, memory, requests and bytes, against the goals.

    uv run python bench/bench.py [--layouts fineweb-edu-1k,pubmed-1k] [--repeats 2] [--scale 0.1] ...

The main job is what users run: `convert fineweb-edu`, 3 + 1 shards of 86,016 rows, from
three FineWeb-Edu-shaped files of 120,000 unique documents (data.py) in 1,000-row groups.
For each source layout it converts the same files with each contender, the same way
(interleaved, fresh output folders, one warm-up round, then the best and the median of
--repeats), each a fresh process started as its user starts it, timed for wall time, CPU
time (user + system of the process tree) and peak RSS, all writing shardsql's codec and
row groups; and it checks every run's shards against the seed's:

- the seed's per-row Python loop, `python seed_loop.py` (convert_dataset.py's rechunk_to_shards);
- the `shardsql convert` command on the local folder (and, for the Hub layouts, through the
  local Hub stand-in, with and without 50 ms added to every request);
- the hand-written Polars one-liner, `python -c "..."` (scan, filter, head, partitioned sink).

The report opens with what a user sees: the main and the small job's fresh processes against
the goals. The same three as library calls after their imports, as the benchmark timed them
before, are only a diagnostic (what start-up costs), in sections labelled so.

Beside the main job: the small job (6 + 1 shards of 20,000 rows of short documents,
fineweb-edu-high), the old 20,000-row case, peak RSS in a fresh process at two shard
counts, shardsql's fixed cost (a fresh process on a tiny job) and its read-ahead on a small
job. It prints one table against the goals and writes bench/results/latest.md and
latest.json. --headline runs only the headline's two jobs (a few minutes). With --scaling it
measures instead how the local and the Ray engines scale with workers (scaling.py); with
--shards-scaling how the shuffled conversion scales with the number of shards against
--no-shuffle, at 10 and 40 shards (shards_scaling.py). A missed goal is reported as missed;
the exit status is 0 unless something failed to run or the shards are wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmark's own modules

import measure  # noqa: E402
from contenders import (  # noqa: E402
    DATASET,
    HIGH,
    IMPORTS_CODE,
    import_shardsql,
    polars_command,
    polars_pipeline,
    seed_command,
    seed_loop,
    shard_format,
    shardsql_cli,
    shardsql_command,
    shardsql_convert,
)
from data import DATA_DIR, DataSpec, ensure_data  # noqa: E402
from hub import HubProcess, serve  # noqa: E402
from link import SCALE_SHARDS, link_rows, scale_rows  # noqa: E402
from report import Contender, Headline, Ratio, Row, render  # noqa: E402
from seed_loop import documents_read  # noqa: E402
from shards_scaling import parse_counts as shard_counts  # noqa: E402
from shards_scaling import run_shards_scaling  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATENCY_S = 0.05
GOAL_SPEEDUP_VS_SEED = 1.8  # shardsql at least 1.8x faster than the seed loop (issue 26)
GOAL_VS_POLARS = 1.2  # shardsql at most 1.2x the hand-written Polars one-liner's time ...
GOAL_CPU_VS_POLARS = 1.2  # ... and at most 1.2x its CPU time
GOAL_SMALL_VS_POLARS = 1.5  # the small job: at most 1.5x Polars' time ...
GOAL_SMALL_VS_SEED = 1.5  # ... and at least 1.5x faster than the seed loop
GOAL_RSS_MB = 500.0  # peak RSS at most 500 MB ...
GOAL_RSS_FLAT = 1.10  # ... and flat: the larger run's peak within +10% of the smaller's
GOAL_RSS_SHUFFLED_MB = 1000.0  # a shuffled conversion's peak RSS at most 1 GB
GOAL_FIXED_S = 0.3  # fixed cost of a conversion
GOAL_BYTES_RATIO = 1.25  # bytes fetched at most 1.25x the compressed bytes of the chunks needed
# Storage requests of at least 4 MB on average (issue 23): the Hub rations resolves, one a file now, not
# storage requests; pieces of 4 MB and more let several streams share a unit.
GOAL_MB_PER_REQUEST = 4.0
GOAL_LATENCY_RATIO = 1.5  # 50 ms per request costs at most 1.5x the no-latency Hub time
GOAL_SHUFFLE_RATIO = 1.3  # a shuffled conversion at most 1.3x the time of a --no-shuffle one (issue 26)
# The contenders' names. Each is a fresh process started as its user starts it; IN_PROCESS marks
# the diagnostic's library calls in the benchmark's process.
SEED, POLARS, LOCAL = "seed loop", "Polars one-liner", "shardsql --no-shuffle, local folder"
SHUFFLED = "shardsql, shuffled (the default), local folder"
VIA_HUB = "shardsql --no-shuffle, via Hub"
IN_PROCESS = ", in-process"
LINK_TITLE = "100 ms round trips, 4 MB/s a connection, 25 MB/s in all, resolves 10 a 10 s"

ROWS_PER_SHARD = 86_016  # shardsql's default, autoresearch's shard
SMALL_ROWS_PER_SHARD = 20_000  # the small job's and the old case's shards
READ_AHEAD = (2, 3_000)  # the read-ahead job: 2 + 1 shards (3 in all) of 3,000 rows
TINY = (1, 1_024)  # the fixed-cost job: 1 + 1 shards of 1,024 rows


@dataclass(frozen=True)
class Layout:
    name: str
    what: str
    row_group_rows: int
    median_chars: int
    sigma: float
    hub: bool  # also through the stand-in: requests, bytes, latency
    main: bool = False  # the layout of the main job: peak RSS, fixed cost, read-ahead, the old 20,000-row case
    small: bool = False  # also the small job (6 + 1 shards of 20,000 rows, fineweb-edu-high)
    default: bool = True  # in the default run


# Log-normal lengths: mean = median x exp(sigma^2 / 2) (a little less: the longest are cut at 250,000).
LAYOUTS = {
    layout.name: layout
    for layout in (
        Layout(
            "fineweb-edu-1k",
            "FineWeb-Edu lengths (mean ~4,700 chars, log-normal, heavy tail), 1,000-row "
            "groups as datatrove wrote FineWeb",
            1_000,
            2_770,
            1.0,
            hub=True,
            main=True,
        ),  # fmt: skip
        Layout(
            "pubmed-1k",
            "short documents, PubMed-like (mean ~1,360 chars), 1,000-row groups",
            1_000,
            1_100,
            0.6,
            hub=False,
            small=True,
        ),  # fmt: skip
        Layout(
            "fineweb-edu-100",
            "the same documents as fineweb-edu-1k in 100-row groups, as the Hub's parquet conversions have",
            100,
            2_770,
            1.0,
            hub=True,
        ),  # fmt: skip
        Layout(
            "fineweb-edu-10k",
            "the same documents in 10,000-row groups (flatters shardsql; not in the default run)",
            10_000,
            2_770,
            1.0,
            hub=False,
            default=False,
        ),  # fmt: skip
    )
}


@dataclass(frozen=True)
class Job:
    title: str
    dataset: str
    num_shards: int
    rows_per_shard: int
    hub: bool  # also through the stand-in
    small: bool = False  # the small job's goals
    old_case: bool = False  # the 20,000-row case of earlier runs: figures without goals
    shuffled: bool = False  # also the shuffled default
    diagnose: bool = False  # also the in-process diagnostic (seed loop, shardsql, Polars as library calls)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = ",".join(name for name, layout in LAYOUTS.items() if layout.default)
    parser.add_argument("--layouts", default=default, help=f"comma-separated, of {', '.join(LAYOUTS)} ({default})")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply rows a shard and a file (default 1)")
    parser.add_argument("--num-shards", type=int, help="training shards of the main job (3; --scaling: 4)")
    parser.add_argument("--rss-shards", type=int, default=6, help="the larger peak-RSS run's training shards (6)")
    parser.add_argument("--rows-per-shard", type=int, help="rows a shard of the main job (86,016; --scaling: 20,000)")
    parser.add_argument("--files", type=int, help="source parquet files (default 3; --shards-scaling: 8)")
    parser.add_argument("--rows-per-file", type=int, default=120_000, help="rows a source file (120,000)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds after the warm-up; the best counts (2)")
    parser.add_argument("--seed", type=int, default=0, help="the data generator's seed (default 0)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (default bench/results)")
    parser.add_argument("--scaling", action="store_true", help="only the scaling table (workers, engines)")
    parser.add_argument("--shards-scaling", action="store_true",
                        help="only the shuffled conversion against --no-shuffle at --shard-counts shards "
                        "(shards_scaling.py)")  # fmt: skip
    parser.add_argument("--shard-counts", default="10,40",
                        help="--shards-scaling: the training shards of each run, comma-separated (10,40)")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="only the main job's profile by thread (profiling.py)")
    parser.add_argument("--link", action="store_true", help="only the main job through a modelled link, then 30 + 1 "
                        "shards --no-shuffle through it locally and on Ray (link.py)")  # fmt: skip
    parser.add_argument("--headline", action="store_true",
                        help="only the headline's jobs: the main job and the small job, seed loop, Polars, shardsql "
                        "--no-shuffle, and their in-process diagnostic")  # fmt: skip
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # internal: the stand-in's process
    args = parser.parse_args(argv)
    unknown = set(args.layouts.split(",")) - set(LAYOUTS)
    if unknown:
        parser.error(f"unknown layouts: {', '.join(sorted(unknown))}")
    if args.link and args.layouts == default:
        args.layouts = next(name for name, layout in LAYOUTS.items() if layout.main)
    if args.headline and args.layouts == default:
        args.layouts = ",".join(name for name, layout in LAYOUTS.items() if layout.main or layout.small)
    if args.shards_scaling:
        try:
            shard_counts(args.shard_counts)
        except ValueError as error:
            parser.error(str(error))
    if not args.shards_scaling:  # shards_scaling.py has its own default
        args.files = args.files or 3
    if args.scaling:
        args.num_shards = args.num_shards or 4
        args.rows_per_shard = args.rows_per_shard or SMALL_ROWS_PER_SHARD
        args.repeats = max(args.repeats, 3)
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.profile:
        import profiling

        return profiling.main(["--scale", str(args.scale)])
    # Before anything imports huggingface_hub: no telemetry, no token, no user cache.
    work = Path(tempfile.mkdtemp(prefix="shardsql-bench-"))
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HOME"] = str(work / "hf-home")
    os.environ.pop("HF_TOKEN", None)
    # Each contender's Python caches its modules' bytecode from its first run on (the warm-up
    # round), as a user's does. Where the environment turns that off (PYTHONDONTWRITEBYTECODE,
    # as some containers do), every fresh process would recompile the Python sources it imports:
    # 0.4 s of a tiny conversion's 0.9 s on the benchmark's machine, which is not what users see.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    try:
        if args.scaling:
            from scaling import run_scaling

            return run_scaling(args, work, log)
        if args.shards_scaling:
            return run_shards_scaling(args, log)
        return run(args, work, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def scaled(args, rows: int) -> int:
    return max(1, round(rows * args.scale))


def layout_data(args, layout: Layout) -> tuple[Path, Path, dict, DataSpec]:
    per_file = -(-scaled(args, args.rows_per_file) // max(layout.row_group_rows, 1_000)) * max(
        layout.row_group_rows, 1_000
    )
    spec = DataSpec(args.files, per_file, layout.row_group_rows, layout.median_chars, layout.sigma, args.seed)
    repo_dir, data_dir, stats = ensure_data(spec, log)
    return repo_dir, data_dir, stats, spec


def run(args: argparse.Namespace, work: Path, started: float) -> int:
    n = args.num_shards or 3
    rows_per_shard = scaled(args, args.rows_per_shard or ROWS_PER_SHARD)
    small_rows = scaled(args, SMALL_ROWS_PER_SHARD)
    names = args.layouts.split(",")
    prepared = {name: layout_data(args, LAYOUTS[name]) for name in names}  # data first: generation is not timed
    info = measure.machine()  # also imports the libraries, before any clock starts
    import_shardsql()

    load_before = measure.load_average()
    sections: list[tuple[str, list[Row]]] = []
    layouts: dict[str, dict] = {}
    ok = True
    headlines: list[Headline] = []
    for name in names:
        layout = LAYOUTS[name]
        repo_dir, data_dir, stats, spec = prepared[name]
        record = {"data": stats | {"folder": str(DATA_DIR / spec.key())}, "jobs": {}}
        log(
            f"{layout.name}: {stats['rows']:,} rows in {stats['files']} files, {stats['row_groups']} row groups, "
            f"{stats['bytes_on_disk'] / 1e6:,.0f} MB, mean {stats['mean_chars']:,} characters a document"
        )
        files = sorted(data_dir.glob("*.parquet"))
        measure.warm_page_cache(files)
        everything = not args.link and not args.headline
        hub = HubProcess(repo_dir) if layout.hub and everything else None
        if hub:
            os.environ["HF_ENDPOINT"] = hub.url
        try:
            jobs = []
            if not args.link and (layout.main or not args.headline):
                jobs.append(Job(f"{DATASET}, {n} + 1 shards of {rows_per_shard:,} rows", DATASET, n, rows_per_shard,
                                hub=hub is not None, shuffled=everything, diagnose=layout.main))  # fmt: skip
            if layout.small and not args.link:
                jobs.append(Job(f"the small job: {HIGH}, 6 + 1 shards of {small_rows:,} rows", HIGH, 6, small_rows,
                                hub=False, small=True, diagnose=True))  # fmt: skip
            if layout.main and everything:
                jobs.append(Job(f"the old case: {DATASET}, 4 + 1 shards of {small_rows:,} rows", DATASET, 4,
                                small_rows, hub=False, old_case=True))  # fmt: skip
            for job in jobs:
                by_name, job_record, fine = run_job(args, job, work / name, data_dir, files, hub)
                sections.append((f"{layout.name}, {job.title}", job_rows(job, by_name, files, job_record)))
                if job.diagnose:
                    title = (f"{layout.name}, {job.title}: diagnostic, in-process library calls after their imports "
                             "(not what a user sees; the headline's figures are the fresh processes')")  # fmt: skip
                    sections.append((title, diagnostic_rows(job, by_name)))
                    fresh = [by_name[SEED], by_name[POLARS], by_name[LOCAL]]
                    what = f"`{job.dataset}` on {layout.name}, {job.num_shards} + 1 x {job.rows_per_shard:,} rows"
                    headlines.append(Headline("small job" if job.small else "main job", what, fresh,
                                              ratios(job, *fresh)))  # fmt: skip
                record["jobs"][job.title] = job_record
                ok &= fine
            if layout.main and everything:
                extra, extra_record = main_extras(args, work / name, spec, files, hub, n, rows_per_shard)
                sections.append((f"{layout.name}: memory, fixed cost, read-ahead", extra))
                record |= extra_record
            if layout.main and not args.headline:
                link, record["link"] = link_rows(work / name, repo_dir, files, n, rows_per_shard, log)
                title = f"{layout.name}: the main job through a modelled link ({LINK_TITLE})"
                sections.append((title, link))
            if layout.main and args.link:  # the user-scale pair: minutes more, so with --link alone
                scale, record["link_at_scale"] = scale_rows(work / name, rows_per_shard, args.seed, log)
                sections.append((f"at a user's scale: {SCALE_SHARDS} + 1 shards through the same link", scale))
            sections.append((f"{layout.name}: the source data", data_rows(stats)))
        finally:
            if hub:
                hub.close()
                os.environ.pop("HF_ENDPOINT", None)
        layouts[name] = record
    total = time.perf_counter() - started
    all_rows = [row for _, section in sections for row in section]
    result = {
        **measure.record_head(info, load_before),
        "parameters": {
            "dataset": DATASET,
            "num_shards": n,
            "rows_per_shard": rows_per_shard,
            "files": args.files,
            "rows_per_file": scaled(args, args.rows_per_file),
            "repeats": args.repeats,
            "statistic": "best (lowest) of the timed rounds, wall and CPU each, after one warm-up round, the "
            "median beside it; contenders interleaved; each a fresh process, but in the diagnostic sections",
            "shard_format": shard_format(),
            "latency_ms": LATENCY_S * 1000,
        },
        "layouts": layouts,
        "headline": [h.record() for h in headlines],
        "table": [row.__dict__ for row in all_rows],
        "goals_missed": [
            f"{title.split(':')[0]}: {row.measure}" for title, rows in sections for row in rows if row.met is False
        ],
        "wall_seconds": round(total, 1),
    }
    markdown = render(result, sections, headlines)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "link" if args.link else "latest"
    (args.out / f"{name}.md").write_text(markdown)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out / f'{name}.md'} and {args.out / f'{name}.json'} ({total:.0f} s)")
    return 0 if ok else 1


def run_job(args, job: Job, work: Path, data_dir: Path, files: list[Path], hub: HubProcess | None):
    """Time every contender on one job; return them by name, the job's record and whether shardsql's
    shards were right."""
    n, rows_per_shard, dataset = job.num_shards, job.rows_per_shard, job.dataset
    log(f"  {job.title}")
    work = work / job.dataset / f"{n}x{rows_per_shard}"
    seed_out = work / "seed-reference"
    seed_docs: list[int] = []
    shape = {"num_shards": n, "rows_per_shard": rows_per_shard, "dataset": dataset}

    def seed(out: Path) -> measure.Usage:
        usage, output = measure.fresh_process(seed_command(out, source_dir=data_dir, **shape))
        seed_docs.append(documents_read(output))
        return usage

    def fresh(command: Callable[[Path], list[str]]) -> Callable[[Path], measure.Usage]:
        return lambda out: measure.fresh_process(command(out))[0]

    def in_data(out: Path) -> Path:
        return out / "data"

    def itself(out: Path) -> Path:
        return out

    def local(shuffle: bool) -> Callable[[Path], list[str]]:
        return lambda out: shardsql_command(out, source=str(data_dir), shuffle=shuffle, **shape)

    contenders = [
        Contender(SEED, seed, itself),
        Contender(LOCAL, fresh(local(False)), in_data),
        Contender(POLARS, fresh(lambda out: polars_command(out, files=files, **shape)), itself),
    ]  # fmt: skip
    if job.shuffled:  # the default conversion: shuffled, deduplicated
        contenders.insert(2, Contender(SHUFFLED, fresh(local(True)), in_data, in_order=False))
    if job.hub and hub:
        via_hub = fresh(lambda out: shardsql_command(out, source=None, **shape))
        contenders += [
            Contender(VIA_HUB, via_hub, in_data, hub=True),
            Contender(f"{VIA_HUB} +{LATENCY_S * 1000:.0f} ms", via_hub, in_data, hub=True, latency_s=LATENCY_S),
        ]
    if job.diagnose:  # the same three as library calls in this process, after the imports
        contenders += [
            Contender(SEED + IN_PROCESS, lambda out: measure.in_process(lambda: seed_loop(out, files=files, **shape)),
                      itself, in_process=True),
            Contender(LOCAL + IN_PROCESS, lambda out: measure.in_process(
                lambda: shardsql_convert(out, n, rows_per_shard, str(data_dir), dataset=dataset)), in_data,
                      in_process=True),
            Contender(POLARS + IN_PROCESS, lambda out: measure.in_process(
                lambda: polars_pipeline(out, files=files, **shape)), itself, in_process=True),
        ]  # fmt: skip
    for round_index in range(args.repeats + 1):
        log("    warm-up round" if round_index == 0 else f"    round {round_index}/{args.repeats}")
        for index, contender in enumerate(contenders):
            attempt(contender, work / f"run-{round_index}-{index}", seed_out, hub, timed=round_index > 0)
    shutil.rmtree(seed_out, ignore_errors=True)
    record = {"contenders": {c.name: c.record() for c in contenders}, "source_rows_read": seed_docs[-1]}
    fine = all(c.check[0] for c in contenders[1:] if c.name.startswith("shardsql"))
    return {c.name: c for c in contenders}, record, fine


def attempt(contender: Contender, out: Path, seed_out: Path, hub: HubProcess | None, timed: bool) -> None:
    if contender.hub:
        hub.ask("latency", contender.latency_s)
        hub.ask("reset")
    usage = contender.run(out)
    if contender.hub:
        contender.served.append(hub.ask("stats"))
        hub.ask("latency", 0)
    folder = contender.shards_in(out)
    if not seed_out.exists():  # the seed loop runs first
        shutil.copytree(folder, seed_out)
    else:  # every run is checked: a fast but wrong result must not pass
        compare = measure.compare_shards if contender.in_order else measure.compare_shuffled
        ok, detail = compare(folder, seed_out)
        if contender.check is None or not ok:
            contender.check = (ok, detail) if contender.check is None or contender.check[0] else contender.check
    contender.layout = contender.layout or measure.shard_layout(folder)
    shutil.rmtree(out, ignore_errors=True)
    if timed:
        contender.add(usage)
    rss = "" if usage.peak_rss_mb is None else f", peak RSS {usage.peak_rss_mb:,.0f} MB"
    log(f"    {contender.name}: {usage.seconds:.2f} s, {usage.cpu:.2f} s CPU{rss}{'' if timed else ' (warm-up)'}")


def data_rows(stats: dict) -> list[Row]:
    """What the generated files hold, against real FineWeb-Edu where the issue gives a figure."""
    c = stats["compression"]
    return [
        Row("rows, distinct texts, mean characters a document (nulls left out)",
            f"{stats['rows']:,}, {stats['distinct_texts']:,}, {stats['mean_chars']:,}"),
        Row("kept by fineweb-edu; by fineweb-edu-high", f"{stats['kept_fineweb_edu']:.1%}; "
            f"{stats['kept_fineweb_edu_high']:.1%}"),
        Row(f"text bytes / compressed bytes, the first {c['rows']:,} texts written as a shard (1,024-row groups): "
            "snappy; zstd-1 (real FineWeb-Edu: 414 MB of text, 2.03x; 2.67x)",
            f"{c['snappy_ratio']:.2f}x; {c['zstd_1_ratio']:.2f}x ({c['text_mb']:,.0f} MB of text: "
            f"{c['snappy_mb']:,.0f} MB; {c['zstd_1_mb']:,.0f} MB)"),
    ]  # fmt: skip


def ratios(job: Job, seed: Contender, polars: Contender, shardsql: Contender) -> dict[str, tuple[Ratio, Ratio]]:
    """shardsql against the Polars one-liner (its time over Polars') and the seed loop (the seed's time over
    shardsql's: a speed-up), each (wall time, CPU time), best against best, with the job's goals; none for the
    old case, or for library calls (the diagnostic). Keyed by what is compared."""
    judged = not job.old_case and not shardsql.in_process

    def goal(value: float | None) -> float | None:
        return value if judged else None

    vs_polars, vs_seed = f"{shardsql.name} / {polars.name}", f"speed-up of {shardsql.name} over the {seed.name}"
    return {
        vs_polars: (Ratio(shardsql.best / polars.best, goal(GOAL_SMALL_VS_POLARS if job.small else GOAL_VS_POLARS)),
                    Ratio(shardsql.best_cpu / polars.best_cpu, goal(None if job.small else GOAL_CPU_VS_POLARS))),
        vs_seed: (Ratio(seed.best / shardsql.best, goal(GOAL_SMALL_VS_SEED if job.small else GOAL_SPEEDUP_VS_SEED),
                        at_least=True),
                  Ratio(seed.best_cpu / shardsql.best_cpu)),
    }  # fmt: skip


def ratio_row(label: str, ratio: Ratio) -> Row:
    return Row(label, ratio.text(), ratio.goal_text, ratio.met)


def ratio_rows(compared: dict[str, tuple[Ratio, Ratio]]) -> list[Row]:
    return [ratio_row(f"{label}: {what}", ratio) for label, pair in compared.items()
            for what, ratio in zip(("wall time", "CPU time"), pair, strict=True)]  # fmt: skip


def job_rows(job: Job, by_name: dict[str, Contender], files: list[Path], record: dict) -> list[Row]:
    """The job's fresh processes: their times, shardsql's ratios against the goals, the checks of their shards."""
    fresh = [c for c in by_name.values() if not c.in_process]
    seed, polars, local = by_name[SEED], by_name[POLARS], by_name[LOCAL]
    rows = [Row(f"{c.name}: wall time, CPU time: best (median); peak RSS; output size",
                f"{c.timing_text()}; {c.layout['bytes'] / 1e6:,.0f} MB") for c in fresh]  # fmt: skip
    rows += ratio_rows(ratios(job, seed, polars, local))
    if VIA_HUB in by_name:
        hub, latency = by_name[VIA_HUB], by_name[f"{VIA_HUB} +{LATENCY_S * 1000:.0f} ms"]
        label, (wall, _) = list(ratios(job, seed, polars, hub).items())[1]  # the speed-up over the seed loop
        rows.append(ratio_row(f"{label}: wall time", wall))
        rows += served_rows(hub.served[-1], files, record["source_rows_read"])
        slow = latency.best / hub.best
        rows.append(Row(f"via Hub with {LATENCY_S * 1000:.0f} ms per request / without", f"{slow:.2f}x "
                        f"({latency.best:.2f} s / {hub.best:.2f} s)", f"<= {GOAL_LATENCY_RATIO:g}x",
                        slow <= GOAL_LATENCY_RATIO))  # fmt: skip
    if SHUFFLED in by_name:
        shuffled = by_name[SHUFFLED]
        slow, slow_cpu = shuffled.best / local.best, shuffled.best_cpu / local.best_cpu
        rows.append(Row("shuffled / --no-shuffle (local folder): wall time; CPU time",
                        f"{slow:.2f}x; {slow_cpu:.2f}x ({shuffled.best:.2f} s / {local.best:.2f} s)",
                        f"<= {GOAL_SHUFFLE_RATIO:g}x", slow <= GOAL_SHUFFLE_RATIO))  # fmt: skip
    rows += check_rows(list(by_name.values()))
    return rows


def check_rows(contenders: list[Contender]) -> list[Row]:
    """Every contender's shards: the seed loop's rows (shardsql's must be), and shardsql's codec and row groups."""
    rows = []
    for c in contenders[1:]:
        equal = c.name.startswith("shardsql")
        what = "shards equal the seed loop's" if c.in_order else "the seed's shards and rows, no text twice"
        rows.append(Row(f"{c.name}: {what}, every run", c.check[1], "equal" if equal else "",
                        c.check[0] if equal else None))  # fmt: skip
    codec = shard_format()["compression"]
    odd = [
        f"{c.name}: {', '.join(c.layout['codecs'])}"
        + ("" if c.layout["row_groups_1024"] else ", row groups not all 1,024")
        for c in contenders
        if c.layout["codecs"] != [codec] or not c.layout["row_groups_1024"]
    ]
    rows.append(Row("every contender's shards: codec, row groups", "; ".join(odd) or f"all {codec}, 1,024-row groups",
                    f"shardsql's: {codec}, 1,024", not odd))  # fmt: skip
    return rows


def diagnostic_rows(job: Job, by_name: dict[str, Contender]) -> list[Row]:
    """The in-process library calls: their times, the same ratios (without goals), and what a fresh process adds."""
    names = (SEED, POLARS, LOCAL)
    calls = [by_name[name + IN_PROCESS] for name in names]
    rows = [Row(f"{c.name}: wall time, CPU time: best (median)", c.timing_text()) for c in calls]
    rows += ratio_rows(ratios(job, *calls))
    for name in names:
        fresh, call = by_name[name], by_name[name + IN_PROCESS]
        rows.append(Row(f"{name}: the fresh process less the library call (start, imports, exit), wall; CPU",
                        f"{fresh.best - call.best:+.2f} s; {fresh.best_cpu - call.best_cpu:+.2f} s"))  # fmt: skip
    return rows


def served_rows(served: dict, files: list[Path], docs_read: int, label: str = "") -> list[Row]:
    """Bytes fetched against the text chunks needed; requests and MB per request."""
    chunks, footers = measure.bytes_needed(files, docs_read)
    ratio = served["bytes_served"] / chunks
    per_request = served["bytes_served"] / max(served["file_requests"], 1) / 1e6
    # Each file's footer takes two small requests (its length, then the footer): a short
    # run over few files counts them more than a full-size conversion does.
    data_requests = max(served["file_requests"] - 2 * len(files), 1)
    per_data_request = (served["bytes_served"] - footers) / data_requests / 1e6
    return [
        Row(f"bytes fetched / compressed bytes of the text chunks needed{label}", f"{ratio:.3f} "
            f"({served['bytes_served'] / 1e6:,.1f} / {chunks / 1e6:,.1f} MB; footers {footers / 1e6:.2f} MB)",
            f"<= {GOAL_BYTES_RATIO:g}", ratio <= GOAL_BYTES_RATIO),
        # The goal is the main job's: a small job's units are cut to the few rows it needs.
        Row(f"file requests, and MB per request{label}", f"{served['file_requests']}, {per_request:.1f} MB",
            *((f">= {GOAL_MB_PER_REQUEST:g} MB", per_request >= GOAL_MB_PER_REQUEST) if not label else ())),
        Row(f"data requests (the footers' two a file left out), and MB per request{label}",
            f"{data_requests}, {per_data_request:.1f} MB"),
    ]  # fmt: skip


def main_extras(args, work: Path, spec: DataSpec, files, hub, n: int, rows_per_shard: int):
    """Peak RSS at two shard counts, the fixed cost, and the read-ahead on a small job."""
    rows: list[Row] = []
    rss = measure_rss(args, work, spec, n, rows_per_shard)
    n_2 = args.rss_shards
    for order, limit in (("no-shuffle", GOAL_RSS_MB), ("shuffled", GOAL_RSS_SHUFFLED_MB)):
        rss_1, rss_2 = rss[f"{order} {n}"], rss[f"{order} {n_2}"]
        rows += [
            Row(f"peak RSS, {order}, {n} + 1 and {n_2} + 1 shards of {rows_per_shard:,} rows (fresh process, via Hub)",
                f"{rss_1:.0f} MB, {rss_2:.0f} MB", f"<= {limit:.0f} MB", max(rss_1, rss_2) <= limit),
            Row(f"peak RSS growth, {order}, from {n} + 1 to {n_2} + 1 shards",
                f"{rss_2 / rss_1:.2f}x ({rss_2 - rss_1:+.0f} MB)", f"flat (<= {GOAL_RSS_FLAT:.2f}x)",
                rss_2 / rss_1 <= GOAL_RSS_FLAT),
        ]  # fmt: skip
    rows.append(Row("peak RSS of a process that only imports the libraries and shardsql (for information)",
                    f"{rss['imports_only']:.0f} MB"))  # fmt: skip
    fixed = fixed_cost(work, files)
    rows += [
        Row(f"fixed cost: wall time of a fresh `shardsql convert --no-shuffle` process, {TINY[0]} + 1 shards of "
            f"{TINY[1]:,} rows from a local folder (best of 5; median)", f"{fixed['convert_best']:.2f} s "
            f"({fixed['convert_median']:.2f} s)", f"<= {GOAL_FIXED_S:g} s", fixed["convert_best"] <= GOAL_FIXED_S),
        Row("  beside it: a fresh Python process importing duckdb, polars, pyarrow.parquet, huggingface_hub; and "
            "one doing nothing (best of 5)", f"{fixed['imports_best']:.2f} s; {fixed['python_best']:.2f} s"),
        Row("  the convert process less the library imports (shardsql's own imports and work)",
            f"{fixed['convert_best'] - fixed['imports_best']:.2f} s"),
    ]  # fmt: skip
    read_ahead = measure_read_ahead(work, files, hub)
    for label, got in read_ahead["runs"].items():
        shards, rows_each = READ_AHEAD
        what = f" (read-ahead: {shards} + 1 shards of {rows_each:,} rows, via Hub, {label})"
        rows += served_rows(got["served"], files, read_ahead["source_rows_read"], what)[:2]
        rows.append(Row(f"  its shards equal the seed loop's ({label})", got["check"][1], "equal", got["check"][0]))
    return rows, {"peak_rss_mb": rss, "fixed_cost_seconds": fixed, "read_ahead": read_ahead}


def measure_rss(args, work: Path, spec: DataSpec, n: int, rows_per_shard: int) -> dict:
    """Peak RSS of the CLI in a fresh process, through a stand-in, for n and --rss-shards shards.

    Both runs read the same stand-in, serving as many files of the layout's unique documents as
    the larger run needs (the layout's own files first): only the number of shards differs
    between them. Unique, since a shuffled run removes repeated texts: files served twice over
    would leave it short of rows, and it would write fewer shards than asked."""
    kept = spec.files * spec.rows_per_file * 0.95  # the fineweb-edu definition keeps ~97.5%
    copies = -(-(max(n, args.rss_shards) + 1) * rows_per_shard // int(kept))
    repo_dir, _, _ = ensure_data(dataclasses.replace(spec, files=spec.files * copies), log)
    hub = HubProcess(repo_dir)
    rss = {}
    try:
        for order in ("--no-shuffle", "shuffled"):
            for shards in (n, args.rss_shards):
                command = ["convert", DATASET, "--num-shards", str(shards), "--rows-per-shard", str(rows_per_shard)]
                command += ["--cache-dir", str(work / f"rss-{shards}"), "--yes", "--quiet"]
                command += [order] if order.startswith("--") else []
                log(f"  peak RSS of `shardsql {' '.join(command[:6])}` ({order}) in a fresh process "
                    f"({copies}x the files)...")  # fmt: skip
                env = dict(os.environ) | {"HF_ENDPOINT": hub.url}
                key = f"{order.lstrip('-')} {shards}"
                usage, _ = measure.fresh_process(shardsql_cli() + command, env=env)
                rss[key] = usage.peak_rss_mb
                log(f"    {rss[key]:.0f} MB, {usage.seconds:.1f} s")
                shutil.rmtree(work / f"rss-{shards}", ignore_errors=True)
    finally:
        hub.close()
    rss["imports_only"] = measure.fresh_process([sys.executable, "-c", IMPORTS_CODE])[0].peak_rss_mb
    return rss


def fixed_cost(work: Path, files: list[Path], runs: int = 5) -> dict:
    """Wall time of fresh processes: `shardsql convert` on a tiny local folder, the bare
    library imports, and an empty Python, each best (and median) of `runs` after one warm-up."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tiny = work / "tiny-source"
    tiny.mkdir(parents=True, exist_ok=True)
    batch = next(pq.ParquetFile(files[0]).iter_batches(batch_size=3 * TINY[1]))
    pq.write_table(pa.Table.from_batches([batch]), tiny / "000_00000.parquet", row_group_size=1_000)
    cli = shardsql_cli()  # the installed command, as a user runs it
    commands = {
        "convert": cli + ["convert", DATASET, "--no-shuffle", "--source", str(tiny), "--num-shards", str(TINY[0]),
                          "--rows-per-shard", str(TINY[1]), "--yes", "--quiet", "--cache-dir"],
        "imports": [sys.executable, "-c", "import duckdb, polars, pyarrow.parquet, huggingface_hub"],
        "python": [sys.executable, "-c", "pass"],
    }  # fmt: skip
    log("  fixed cost: fresh processes on a tiny job...")
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(runs + 1):
        for name, command in commands.items():
            if name == "convert":
                command = command + [str(work / f"tiny-{index}")]
            usage, _ = measure.fresh_process(command, cwd=work)
            if index:
                seconds[name].append(usage.seconds)
    out = {}
    for name, values in seconds.items():
        out[f"{name}_best"] = round(min(values), 3)
        out[f"{name}_median"] = round(statistics.median(values), 3)
        out[f"{name}_all"] = [round(v, 3) for v in values]
    log(
        f"    convert {out['convert_best']:.2f} s, imports {out['imports_best']:.2f} s, "
        f"python {out['python_best']:.2f} s"
    )
    return out


def measure_read_ahead(work: Path, files: list[Path], hub: HubProcess) -> dict:
    """Bytes the stand-in served for a small job, by default and with --workers 16."""
    shards, rows = READ_AHEAD
    reference = work / "read-ahead-seed"
    docs = seed_loop(reference, files=files, num_shards=shards, rows_per_shard=rows)
    runs = {}
    for label, workers in (("default workers", None), ("--workers 16", 16)):
        hub.ask("latency", 0)
        hub.ask("reset")
        out = work / f"read-ahead-{workers}"
        shardsql_convert(out, shards, rows, None, workers=workers)
        runs[label] = {"served": hub.ask("stats"), "check": measure.compare_shards(out / "data", reference)}
        shutil.rmtree(out, ignore_errors=True)
        log(f"  read-ahead, {label}: {runs[label]['served']['bytes_served'] / 1e6:.1f} MB served")
    shutil.rmtree(reference, ignore_errors=True)
    return {"source_rows_read": docs, "runs": runs}


if __name__ == "__main__":
    sys.exit(main())
