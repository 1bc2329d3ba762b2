"""Where the main job's time goes, by thread and by stage (`just bench --profile`, or this file).

    uv run python bench/profiling.py [--rate 100] [--scale 1] [--shuffled]

Runs the main job (fineweb-edu, 3 + 1 shards of 86,016 rows, the fineweb-edu-1k layout's
local folder) once in a fresh process under py-spy (`py-spy record --threads --format raw`;
py-spy from PATH, else `uvx py-spy`), and once more per contender, without py-spy, sampling
every thread's CPU time from /proc (measure.ThreadCPU: native threads too, which py-spy does
not see: DuckDB's and Polars' own). It prints and writes bench/results/profile.md (with
--shuffled, the shuffled conversion's: profile-shuffled.md):

- per thread group, the CPU seconds from /proc, for shardsql and for the Polars one-liner;
- per thread group and stage, py-spy's seconds of Python threads not waiting (samples /
  rate), a stage named from the deepest frame of the stack that a rule below recognises.

py-spy's raw samples (flame-graph input: `flamegraph.pl bench/.data/profile/shardsql.txt`)
are kept in bench/.data/profile/. py-spy's view includes the process's start and imports;
the /proc view covers the conversion only.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
from data import DATA_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "profile.md"
RAW_DIR = DATA_DIR / "profile"

# (pattern in a frame, stage), tried from the stack's leaf to its root: the first frame that
# matches names the stage. Library and function names, so a move of shardsql's modules does
# not break them all.
STAGES = (
    (r"_find_and_load|<module> \(", "importing modules"),
    (
        r"Condition\.wait|Event\.wait|Queue\.get|Queue\.put|_worker \(concurrent/futures/thread\.py:8[01]\)"
        r"|Thread\.join|_wait_for_tstate_lock|acquire|Future\.result|as_completed",
        "waiting (queues, locks, pools)",
    ),
    (r"sink_parquet|write_parquet|write_pieces|polars", "Polars: encoding and compressing shards"),
    (r"pyarrow/parquet|ParquetFile|read_row_group|iter_batches|decode", "pyarrow: reading and decoding row groups"),
    (r"duckdb|Engine\.run|_register", "DuckDB: the definition's filter"),
    (r"httpx|huggingface_hub|fsspec|fetch|_read_range|urllib", "fetching bytes"),
    (r"checkpoint|manifest|sha256|hashlib", "checkpoints and hashes"),
    (r"RowStream|take|_Writers|_Output|feed|ordered", "cutting rows into shards"),
)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples a second (100)")
    parser.add_argument("--scale", type=float, default=1.0, help="as bench.py's --scale (1)")
    parser.add_argument("--shuffled", action="store_true", help="the shuffled conversion (default: --no-shuffle)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: shardsql|polars, the job in JSON
    return parser.parse_args(argv)


def child(which: str, job: dict) -> None:
    """In the fresh process: one conversion, its threads' CPU from /proc printed as JSON."""
    from contenders import import_shardsql, polars_pipeline, shardsql_convert

    import_shardsql()
    import polars  # noqa: F401

    out = Path(tempfile.mkdtemp(prefix="profile-"))
    begin, cpu = time.perf_counter(), measure.cpu_seconds()
    with measure.ThreadCPU() as threads:
        if which == "shardsql":
            shardsql_convert(out, job["num_shards"], job["rows_per_shard"], job["source"], shuffle=job["shuffled"])
        else:
            polars_pipeline(out / "shards", files=sorted(Path(job["source"]).glob("*.parquet")),
                            num_shards=job["num_shards"], rows_per_shard=job["rows_per_shard"])  # fmt: skip
    seconds, cpu = time.perf_counter() - begin, measure.cpu_seconds() - cpu
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"seconds": round(seconds, 2), "cpu": round(cpu, 2), "threads": threads.seconds}))


def py_spy() -> list[str] | None:
    found = shutil.which("py-spy")
    if found:
        return [found]
    uvx = shutil.which("uvx") or str(ROOT / ".tools" / "bin" / "uvx")
    return [uvx, "py-spy"] if Path(uvx).exists() else None


def thread_group(head: str) -> str:
    """`thread (tid): name` -> the name without its number; `thread (tid)` (no name) -> one group."""
    if ": " not in head:
        return "threads without a Python name"
    name = head.split(": ", 1)[1]
    return re.sub(r"[_-]?\d+$", "", name) or name


# Stages named by a frame anywhere in the stack, before STAGES: decode.py's Polars calls run
# through the same Polars functions (collect) as the shard writers' sinks.
CALLER_STAGES = ((r"^_read_texts \(", "Polars: decoding text"),)


def stage(frames: list[str]) -> str:
    for pattern, label in CALLER_STAGES:
        if any(re.search(pattern, frame) for frame in frames):
            return label
    for frame in reversed(frames):
        for pattern, label in STAGES:
            if re.search(pattern, frame):
                return label
    return "other: " + frames[-1].split(" (")[0] if frames else "no Python frame (native code, start or exit)"


def summarise(raw: Path, rate: int) -> dict[str, dict[str, float]]:
    """py-spy's raw lines (`thread (tid): name;frame;...;frame count`) -> seconds by thread group and stage."""
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        head, *frames = stack.split(";")
        if thread_group(head) != "cpu-sampler":  # ThreadCPU's own sampler
            table[thread_group(head)][stage(frames)] += int(count) / rate
    return {group: dict(stages) for group, stages in table.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        which, job = args.child.split(":", 1)
        child(which, json.loads(job))
        return 0
    import bench

    bench_args = bench.parse_args(["--scale", str(args.scale)])
    _, data_dir, stats, _ = bench.layout_data(bench_args, bench.LAYOUTS["fineweb-edu-1k"])
    job = {
        "source": str(data_dir),
        "num_shards": 3,
        "rows_per_shard": bench.scaled(bench_args, bench.ROWS_PER_SHARD),
        "shuffled": args.shuffled,
    }
    RAW_DIR.mkdir(parents=True, exist_ok=True)

    def run(which: str, under: list[str] | None = None) -> dict:
        command = [sys.executable, __file__, "--child", f"{which}:{json.dumps(job)}"]
        done = subprocess.run((under or []) + command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"profile: the {which} run failed:\n{done.stderr[-3000:]}")
        return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])

    bench.log(f"profile: {job['num_shards']} + 1 shards of {job['rows_per_shard']:,} rows from {data_dir}")
    plain = {which: run(which) for which in ("shardsql", "polars")}  # per-thread CPU from /proc
    spy, spied, note = py_spy(), None, ""
    suffix = "-shuffled" if args.shuffled else ""
    raw = RAW_DIR / f"shardsql{suffix}.txt"
    results = RESULTS.with_name(f"profile{suffix}.md")
    if spy:
        record = spy + ["record", "--threads", "--format", "raw", "--rate", str(args.rate), "-o", str(raw), "--"]
        try:
            run("shardsql", record)
            spied = summarise(raw, args.rate)
        except SystemExit as error:
            note = f"py-spy could not record here ({str(error).splitlines()[-1]}); the /proc figures stand alone."
    else:
        note = "py-spy was not found (neither on PATH nor uvx): the /proc figures stand alone."
    markdown = render(job, plain, spied, raw, args.rate, note)
    print(markdown)
    results.write_text(markdown)
    bench.log(f"wrote {results}")
    return 0


def render(job: dict, plain: dict, spied: dict | None, raw: Path, rate: int, note: str) -> str:
    s, p = plain["shardsql"], plain["polars"]
    lines = [
        "# Where the main job's time goes" + (": shuffled" if job["shuffled"] else ": --no-shuffle"),
        "",
        f"`fineweb-edu`, {job['num_shards']} + 1 shards of {job['rows_per_shard']:,} rows from the fineweb-edu-1k "
        f"layout's local folder, one run each in a fresh process; load average {measure.load_average()}.",
        "",
        f"shardsql: {s['seconds']:.2f} s wall, {s['cpu']:.2f} s CPU. Polars one-liner: {p['seconds']:.2f} s wall, "
        f"{p['cpu']:.2f} s CPU.",
        "",
        "CPU seconds by thread group (from /proc, every 20 ms; native threads included):",
        "",
        "| threads | shardsql | Polars one-liner |",
        "| --- | --- | --- |",
    ]
    for group in dict.fromkeys([*s["threads"], *p["threads"]]):
        lines.append(f"| {group} | {s['threads'].get(group, 0):.2f} | {p['threads'].get(group, 0):.2f} |")
    if spied:
        lines += [
            "",
            f"shardsql under py-spy (Python threads only, {rate} samples a second, the whole process with its "
            f"start and imports; raw samples in `{raw.relative_to(ROOT)}`): seconds by thread and stage.",
            "",
            "| thread | stage | seconds |",
            "| --- | --- | --- |",
        ]
        for group, stages in sorted(spied.items(), key=lambda kv: -sum(kv[1].values())):
            for label, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
                if seconds >= 0.05:
                    lines.append(f"| {group} | {label} | {seconds:.2f} |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
