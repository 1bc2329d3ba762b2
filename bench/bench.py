"""shardsql's benchmark: speed, memory and bytes fetched, against the goals, in one run.

    uv run python bench/bench.py [--scale 2] [--repeats 3] [--num-shards 4] ...

It generates FineWeb-Edu-shaped parquet files (cached in bench/.data/, keyed by the
generator's parameters), then measures on the same files, each contender the same way
(median of --repeats runs, interleaved, fresh output folders):

- the seed's per-row Python loop (convert_dataset.py's rechunk_to_shards, copied below);
- shardsql's `convert` on the local folder, and through the local Hub stand-in;
- a hand-written Polars pipeline (scan, filter, head, partitioned sink);
- shardsql through the stand-in with 50 ms added to every request;
- shardsql's peak RSS in a fresh subprocess, for --num-shards N and 3N;
- the bytes the stand-in served, over the bytes the conversion needs;
- that shardsql's shards equal the seed loop's, row for row.

It prints a table (figure, goal, met) and writes bench/results/latest.md and latest.json.
A missed goal is reported as missed; the exit status is 0 unless something failed to run
or the shards are wrong.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
RESULTS_DIR = BENCH_DIR / "results"
DATASET = "fineweb-edu"  # sql/fineweb-edu.sql: text IS NOT NULL AND length(text) >= 50
REPO = "HuggingFaceFW/fineweb-edu"
REPO_SUBDIR = "sample/10BT"  # where the definition's source glob looks
VAL_SHARD_INDEX = 6542
LATENCY_S = 0.05
GENERATOR_VERSION = 1  # bump when the generated data changes, to invalidate bench/.data

# Goals (fixed: a missed goal is reported as missed, never tuned).
GOAL_SPEEDUP_VS_SEED = 2.0  # shardsql at least 2x faster than the seed loop
GOAL_VS_POLARS = 1.2  # shardsql at most 1.2x the hand-written Polars pipeline's time
GOAL_RSS_MB = 500.0  # peak RSS at most 500 MB ...
GOAL_RSS_FLAT = 1.10  # ... and flat: the 3N run's peak within +10% of the N run's
GOAL_BYTES_RATIO = 1.05  # bytes fetched at most 1.05x the bytes needed
GOAL_LATENCY_RATIO = 1.5  # 50 ms per request costs at most 1.5x the no-latency Hub time


# --------------------------------------------------------------------------------------
# Data: FineWeb-Edu-shaped parquet files
# --------------------------------------------------------------------------------------

COMMON_WORDS = (
    "the of and to a in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more can who its into some "
    "them other than then only time these may first also new two like people could any our way what about out "
    "over many my even most such used after made where through before must between each water called years both "
    "students learning school children history energy system different important example because however during "
    "often number part form world information research health study process data development language social "
    "science cells body plants found known include including small large high level well still while under "
    "around those life early might long very own said much great state common should human education teachers "
    "community environment scientists species natural change power country government understanding particular "
    "several another without against within local century war city american university university children's "
    "disease treatment patients blood brain heart food soil climate temperature carbon earth ocean river land"
).split()
# Some non-ASCII, as in real English web text: accents, curly quotes, dashes, symbols.
ODD_WORDS = "café naïve résumé façade — “the world” it’s °C €10 über São Zürich 1998 3.5% 19th (see e.g.".split()
SYLLABLES = "ka ri to me na lo su pe ti ra mo ne di co la ve si tu ba ge ro ma ni pa de fo li sa ta".split()
SUFFIXES = ("", "", "s", "ed", "ing", "tion", "al", "ly", "ment", "er")
DUMPS = [f"CC-MAIN-{y}-{w:02d}" for y in range(2013, 2025) for w in (10, 22, 40)]


@dataclass(frozen=True)
class DataSpec:
    files: int
    rows_per_file: int
    row_group_rows: int
    median_chars: int
    sigma: float
    seed: int

    def key(self) -> str:
        text = json.dumps({**self.__dict__, "v": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """~30k words, Zipf-weighted: real common words first, a long tail of made-up ones."""
    words = list(dict.fromkeys(COMMON_WORDS))
    seen = set(words)
    while len(words) < 30_000:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 3, 4)))) + rng.choice(SUFFIXES)
        if word not in seen:
            seen.add(word)
            words.append(word)
    weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(words))]
    words += ODD_WORDS
    weights += [weights[300]] * len(ODD_WORDS)
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    return words, cumulative


def _prose_pool(rng: random.Random, chars: int) -> str:
    """Sentences and paragraphs of Zipf-distributed words; documents are cut from this."""
    words, cumulative = _vocabulary(rng)
    parts: list[str] = []
    size = 0
    while size < chars:
        batch = rng.choices(words, cum_weights=cumulative, k=500_000)
        sentences, i = [], 0
        while i < len(batch):
            n = rng.randint(6, 32)
            sentence = batch[i : i + n]
            i += n
            sentence[0] = sentence[0].capitalize()
            if len(sentence) > 12:
                sentence[rng.randrange(3, len(sentence) - 3)] += ","
            sentences.append(" ".join(sentence) + ("." if rng.random() < 0.93 else rng.choice("?!:")))
        paragraphs, j = [], 0
        while j < len(sentences):
            k = rng.randint(2, 8)
            paragraphs.append(" ".join(sentences[j : j + k]))
            j += k
        chunk = "\n\n".join(paragraphs)
        parts.append(chunk)
        size += len(chunk)
    return "\n\n".join(parts)


def _document(rng: random.Random, pool: str, spec: DataSpec) -> str | None:
    """A document of log-normal length (mean ~3.7k chars), or a null/short row (~3%)."""
    roll = rng.random()
    if roll < 0.015:
        return None
    if roll < 0.03:  # short texts, some right at the filter's edge (49 and 50 characters)
        n = rng.choice((0, 5, 20, 40, 49, 49, 50, 50, 51))
        start = rng.randrange(len(pool) - 100)
        return pool[start : start + n]
    target = min(max(int(rng.lognormvariate(math.log(spec.median_chars), spec.sigma)), 60), 150_000)
    pieces, have = [], 0
    while have < target:
        want = min(target - have, rng.randint(400, 4000))
        start = pool.find(". ", rng.randrange(len(pool) - want - 10_000)) + 2  # a sentence start
        piece = pool[start : start + want]
        cut = piece.rfind(" ")
        piece = piece[:cut] if cut > 40 else piece
        pieces.append(piece)
        have += len(piece) + 2
    return "\n\n".join(pieces)


def _row_group(rng: random.Random, pool: str, spec: DataSpec, first_id: int, rows: int, stats: dict):
    import pyarrow as pa

    texts = [_document(rng, pool, spec) for _ in range(rows)]
    stats["rows"] += rows
    stats["null_rows"] += sum(t is None for t in texts)
    stats["short_rows"] += sum(t is not None and len(t) < 50 for t in texts)
    stats["text_chars"] += sum(len(t) for t in texts if t)
    stats["non_ascii_docs"] += sum(t is not None and not t.isascii() for t in texts)
    dumps = [rng.choice(DUMPS) for _ in range(rows)]
    scores = [round(rng.uniform(2.5, 5.0), 6) for _ in range(rows)]
    return pa.table(
        {
            "text": pa.array(texts, pa.string()),
            "id": [f"<urn:uuid:{rng.getrandbits(128):032x}>" for _ in range(rows)],
            "dump": dumps,
            "url": [f"https://www.site{rng.randrange(50_000)}.org/articles/{first_id + i}" for i in range(rows)],
            "file_path": [
                f"s3://commoncrawl/crawl-data/{d}/segments/{rng.randrange(10**12)}.{rng.randrange(100)}/warc/"
                f"{d}-{rng.randrange(100_000):05d}.warc.gz"
                for d in dumps
            ],
            "language": ["en"] * rows,
            "language_score": pa.array([rng.uniform(0.65, 1.0) for _ in range(rows)], pa.float64()),
            "token_count": pa.array([len(t or "") * 10 // 45 for t in texts], pa.int64()),
            "score": pa.array(scores, pa.float64()),
            "int_score": pa.array([round(s) for s in scores], pa.int64()),
        }
    )


def ensure_data(spec: DataSpec, log: Callable[[str], None]) -> tuple[Path, Path, dict]:
    """The repo folder (served by the stand-in), its parquet folder and the data's statistics.

    Generated once per spec into bench/.data/<key>/ and reused by later runs."""
    import pyarrow.parquet as pq

    home = DATA_DIR / spec.key()
    repo, files = home / "repo", home / "repo" / REPO_SUBDIR
    done = home / "stats.json"
    if done.exists():
        return repo, files, json.loads(done.read_text())
    log(f"generating {spec.files} files x {spec.rows_per_file:,} rows into {home} (cached for later runs)...")
    started = time.perf_counter()
    shutil.rmtree(home, ignore_errors=True)
    staging = DATA_DIR / f".{spec.key()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "repo" / REPO_SUBDIR).mkdir(parents=True)
    rng = random.Random(spec.seed)
    pool = _prose_pool(rng, 48_000_000)
    stats = dict.fromkeys(("rows", "null_rows", "short_rows", "text_chars", "non_ascii_docs"), 0)
    for index in range(spec.files):
        path = staging / "repo" / REPO_SUBDIR / f"{index:03d}_00000.parquet"
        writer = None
        for first in range(0, spec.rows_per_file, spec.row_group_rows):
            rows = min(spec.row_group_rows, spec.rows_per_file - first)
            table = _row_group(rng, pool, spec, index * spec.rows_per_file + first, rows, stats)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=spec.row_group_rows)
        writer.close()
    paths = sorted((staging / "repo" / REPO_SUBDIR).glob("*.parquet"))
    metas = [pq.ParquetFile(path).metadata for path in paths]
    docs = stats["rows"] - stats["null_rows"]
    stats |= {
        "files": len(paths),
        "row_groups": sum(m.num_row_groups for m in metas),
        "bytes_on_disk": sum(path.stat().st_size for path in paths),
        "mean_chars": round(stats["text_chars"] / max(docs, 1)),
        "generation_seconds": round(time.perf_counter() - started, 1),
        "spec": spec.__dict__,
    }
    (staging / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    staging.rename(home)
    log(f"generated in {stats['generation_seconds']:.1f} s")
    return repo, files, stats


# --------------------------------------------------------------------------------------
# Contenders
# --------------------------------------------------------------------------------------


def seed_loop(source_files: list[Path], output_dir: Path, num_shards: int, rows_per_shard: int) -> int:
    """The seed's rechunk_to_shards (convert_dataset.py), logic unchanged, as in tests/seed_reference.py,
    writing shards with pyarrow as the seed's _write_shard does. Returns the documents read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text_col, min_score = "text", None  # fineweb-edu: no score filter
    score_col = "int_score" if min_score is not None else None

    def write_shard(shard_idx: int, texts: list[str]) -> None:
        path = os.path.join(output_dir, f"shard_{shard_idx:05d}.parquet")
        schema = pa.schema([("text", pa.string())])
        writer = pq.ParquetWriter(path, schema)
        for rg_start in range(0, len(texts), 1024):
            writer.write_table(pa.table({"text": texts[rg_start : rg_start + 1024]}, schema=schema))
        writer.close()

    os.makedirs(output_dir, exist_ok=True)
    shard_idx = 0
    doc_buffer: list[str] = []
    total_docs = filtered_docs = 0
    for src_path in sorted(source_files):
        pf = pq.ParquetFile(src_path)
        for rg_idx in range(pf.num_row_groups):
            rg = pf.read_row_group(rg_idx, columns=[text_col] + ([score_col] if score_col else []))
            texts = rg.column(text_col).to_pylist()
            scores = rg.column(score_col).to_pylist() if score_col else [None] * len(texts)
            for text, score in zip(texts, scores, strict=True):
                total_docs += 1
                if min_score is not None and score is not None and score < min_score:
                    filtered_docs += 1
                    continue
                if not text or len(text) < 50:
                    filtered_docs += 1
                    continue
                doc_buffer.append(text)
                if len(doc_buffer) >= rows_per_shard:
                    write_shard(shard_idx, doc_buffer[:rows_per_shard])
                    doc_buffer = doc_buffer[rows_per_shard:]
                    shard_idx += 1
                    if shard_idx >= num_shards + 1:
                        break
            if shard_idx >= num_shards + 1:
                break
        if shard_idx >= num_shards + 1:
            break
    if doc_buffer and shard_idx < num_shards + 1:
        write_shard(shard_idx, doc_buffer)
        shard_idx += 1
    if shard_idx > 0:
        last_path = os.path.join(output_dir, f"shard_{shard_idx - 1:05d}.parquet")
        if shard_idx - 1 != VAL_SHARD_INDEX:
            shutil.move(last_path, os.path.join(output_dir, f"shard_{VAL_SHARD_INDEX:05d}.parquet"))
    return total_docs


def polars_pipeline(source_files: list[Path], output_dir: Path, num_shards: int, rows_per_shard: int) -> None:
    """What one would write by hand with Polars: scan, filter, take the rows, partitioned sink."""
    import polars as pl

    text = pl.col("text")
    (
        pl.scan_parquet(source_files)
        .select("text")
        .filter(text.is_not_null() & (text.str.len_chars() >= 50))
        .head((num_shards + 1) * rows_per_shard)
        .sink_parquet(
            pl.PartitionBy(
                output_dir,
                file_path_provider=lambda args: f"shard_{args.index_in_partition:05d}.parquet",
                max_rows_per_file=rows_per_shard,
                approximate_bytes_per_file=None,
            ),
            row_group_size=1024,
            mkdir=True,
        )
    )
    last = sorted(output_dir.glob("shard_*.parquet"))[-1]
    last.rename(output_dir / f"shard_{VAL_SHARD_INDEX:05d}.parquet")


def shardsql_convert(cache_dir: Path, num_shards: int, rows_per_shard: int, source: str | None):
    from shardsql.catalog import resolve
    from shardsql.convert import ConvertOptions, convert

    options = ConvertOptions(num_shards=num_shards, rows_per_shard=rows_per_shard, source=source, cache_dir=cache_dir)
    return convert(resolve(DATASET), options)


# --------------------------------------------------------------------------------------
# Checks and measurements
# --------------------------------------------------------------------------------------


def shard_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.glob("shard_*.parquet"))}


def compare_shards(got_dir: Path, want_dir: Path) -> tuple[bool, str]:
    """Same shard names, and the same texts in the same order in each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    got, want = shard_files(got_dir), shard_files(want_dir)
    if list(got) != list(want):
        return False, f"shard names differ: {list(got)} vs {list(want)}"
    rows = 0
    for name in want:
        a = pq.read_table(got[name], columns=["text"])["text"].cast(pa.large_string())
        b = pq.read_table(want[name], columns=["text"])["text"].cast(pa.large_string())
        if len(a) != len(b):
            return False, f"{name}: {len(a):,} rows, the seed's has {len(b):,}"
        if not a.equals(b):
            return False, f"{name}: texts differ from the seed's"
        rows += len(b)
    return True, f"{len(want)} shards, {rows:,} rows identical"


def shard_layout(folder: Path) -> dict:
    """Row-group sizes and bytes of the shards in a folder."""
    import pyarrow.parquet as pq

    groups = {}
    for name, path in shard_files(folder).items():
        meta = pq.ParquetFile(path).metadata
        groups[name] = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    size = sum(p.stat().st_size for p in shard_files(folder).values())
    exact = all(all(g == 1024 for g in sizes[:-1]) and sizes[-1] <= 1024 for sizes in groups.values())
    return {"row_groups": groups, "bytes": size, "row_groups_1024": exact}


def bytes_needed(files: list[Path], rows_needed: int) -> tuple[int, int]:
    """Compressed bytes of the `text` chunks of the row groups holding the first `rows_needed`
    source rows, plus the footers of the files they are in (as tests/test_convert.py counts)."""
    import pyarrow.parquet as pq

    chunks = footers = seen = 0
    for path in files:
        if seen >= rows_needed:
            break
        meta = pq.ParquetFile(path).metadata
        footers += meta.serialized_size + 8
        text = meta.schema.to_arrow_schema().get_field_index("text")
        for i in range(meta.num_row_groups):
            if seen >= rows_needed:
                break
            chunks += meta.row_group(i).column(text).total_compressed_size
            seen += meta.row_group(i).num_rows
    return chunks, footers


# Runs the CLI in a fresh process and reports that process's own peak RSS (VmHWM) as it
# exits. Not ru_maxrss: Linux carries a forked child's pre-exec high-water mark (the size of
# the process that forked it) over into ru_maxrss across exec.
RSS_REPORT = """
import atexit, sys
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("PEAK_RSS_KB", line.split()[1], file=sys.__stderr__, flush=True)
atexit.register(report)
"""
RUN_CLI = RSS_REPORT + "from shardsql.cli import main\nsys.argv = ['shardsql', *sys.argv[1:]]\nmain()\n"
IMPORTS_ONLY = (
    RSS_REPORT + "import duckdb, polars, pyarrow.parquet, huggingface_hub, shardsql.convert, shardsql.engine\n"
)


def peak_rss(code: str, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run `python -c code *args` in a fresh process; return (its peak RSS in MB, its wall time in s)."""
    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    found = re.findall(r"^PEAK_RSS_KB (\d+)$", child.stderr, re.MULTILINE)
    if child.returncode != 0 or not found:
        raise RuntimeError(f"shardsql {' '.join(args)} failed ({child.returncode}):\n{child.stdout}{child.stderr}")
    return int(found[-1]) / 1024, seconds


def cpu_seconds() -> float:
    """CPU time of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> dict:
    import duckdb
    import huggingface_hub
    import polars
    import pyarrow

    model, memory = "unknown", None
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        kib = next(
            line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")
        )
        memory = round(int(kib) / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--", "shardsql", "sql")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "polars": polars.__version__,
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "huggingface_hub": huggingface_hub.__version__,
        "shardsql_commit": commit + (" with uncommitted changes in shardsql/ or sql/" if dirty else ""),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# --------------------------------------------------------------------------------------
# The Hub stand-in, in its own process
# --------------------------------------------------------------------------------------
# In production the Hub is another machine. Served from the benchmark's own process, the
# stand-in's HTTP work would share the GIL with the conversion it measures; in its own
# process it only shares the CPUs. It answers one-line commands on stdin.


def serve(repo_dir: Path) -> None:
    """`bench.py --serve REPO_DIR`: run the stand-in; print its URL; answer commands."""
    from shardsql.hubstub import HubStandIn

    hub = HubStandIn().start()
    hub.add_dataset(REPO, repo_dir, revision="main")
    print(hub.url, flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "reset":
            hub.reset_counters()
            reply = {}
        elif command == "latency":
            hub.before_response = _delay(float(rest[0]))
            reply = {}
        elif command == "stats":
            resolve = [r for r in hub.requests if "/resolve/" in r[1]]
            reply = {"bytes_served": hub.bytes_served, "requests": len(hub.requests), "file_requests": len(resolve)}
        else:
            reply = {"error": f"unknown command {command}"}
        print(json.dumps(reply), flush=True)
    hub.stop()


def _delay(seconds: float):
    """A `before_response` hook adding `seconds` to every request (None: no delay)."""
    if not seconds:
        return None
    return lambda handler: time.sleep(seconds) or False


class HubProcess:
    def __init__(self, repo_dir: Path):
        self._child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(repo_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.url = self._child.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the Hub stand-in did not start")

    def ask(self, *command: object) -> dict:
        self._child.stdin.write(" ".join(map(str, command)) + "\n")
        self._child.stdin.flush()
        return json.loads(self._child.stdout.readline())

    def close(self) -> None:
        self._child.stdin.close()
        self._child.wait(timeout=30)


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    figure: str
    goal: str = ""
    met: bool | None = None  # None: for information

    @property
    def met_text(self) -> str:
        return "" if self.met is None else ("yes" if self.met else "**NO**")


@dataclass
class Contender:
    name: str
    run: Callable[[Path], object]  # output folder in; its result out
    shards_in: Callable[[Path], Path]  # output folder -> the folder holding its shards
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    hub: list[dict] = field(default_factory=list)
    check: tuple[bool, str] | None = None
    layout: dict | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply rows per shard and source rows (default 1)")
    parser.add_argument("--num-shards", type=int, default=4, help="training shards N of the timed runs (default 4)")
    parser.add_argument("--rss-factor", type=int, default=3, help="the RSS runs use N and this times N (default 3)")
    parser.add_argument("--rows-per-shard", type=int, default=20_000, help="rows a shard, before --scale (20,000)")
    parser.add_argument("--row-group-rows", type=int, default=10_000, help="source row group size (default 10,000)")
    parser.add_argument("--files", type=int, default=3, help="source parquet files (default 3)")
    parser.add_argument("--median-chars", type=int, default=2_600, help="median document length (default 2,600)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each contender; the median counts (5)")
    parser.add_argument("--seed", type=int, default=0, help="the data generator's seed (default 0)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (default bench/results)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # internal: the stand-in's process
    return parser.parse_args(argv)


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
    hub = None
    started = time.perf_counter()
    try:
        rows_per_shard = max(1, round(args.rows_per_shard * args.scale))
        n_rss = args.num_shards * args.rss_factor
        # Enough source rows for the larger RSS run and ~10% to spare, in whole row groups.
        rows_total = math.ceil((n_rss + 1) * rows_per_shard / 0.97 * 1.10)
        per_file = math.ceil(rows_total / args.files / args.row_group_rows) * args.row_group_rows
        spec = DataSpec(args.files, per_file, args.row_group_rows, args.median_chars, 0.85, args.seed)
        repo_dir, data_dir, stats = ensure_data(spec, log)
        hub = HubProcess(repo_dir)
        os.environ["HF_ENDPOINT"] = hub.url
        return run(args, work, hub, data_dir, stats, rows_per_shard, started)
    finally:
        if hub is not None:
            hub.close()
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, hub: HubProcess, data_dir: Path, stats: dict, rows_per_shard: int, started: float) -> int:
    n, n_rss = args.num_shards, args.num_shards * args.rss_factor
    files = sorted(data_dir.glob("*.parquet"))
    log(
        f"data: {stats['rows']:,} rows in {stats['files']} files, {stats['row_groups']} row groups, "
        f"{stats['bytes_on_disk'] / 1e6:,.0f} MB, mean {stats['mean_chars']:,} characters a document"
    )
    info = machine()  # also imports the libraries, before any clock starts
    import shardsql.convert  # noqa: F401
    import shardsql.engine  # noqa: F401

    load_before = load_average()
    for path in files:  # warm the page cache
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass

    seed_out = work / "seed-reference"
    seed_docs: list[int] = []

    def seed(out: Path) -> int:
        docs = seed_loop(files, out, n, rows_per_shard)
        seed_docs.append(docs)
        return docs

    def local(out: Path):
        return shardsql_convert(out, n, rows_per_shard, str(data_dir))

    def through_hub(out: Path):
        return shardsql_convert(out, n, rows_per_shard, None)

    def polars(out: Path) -> None:
        polars_pipeline(files, out, n, rows_per_shard)

    def in_data(out: Path) -> Path:
        return out / "data"

    def same(out: Path) -> Path:
        return out

    contenders = [
        Contender("seed loop", seed, same),
        Contender("shardsql, local folder", local, in_data),
        Contender("shardsql, via Hub", through_hub, in_data),
        Contender("Polars pipeline", polars, same),
        Contender(f"shardsql, via Hub +{LATENCY_S * 1000:.0f} ms", through_hub, in_data),
    ]
    seed_c, local_c, hub_c, polars_c, latency_c = contenders
    latency_of = {latency_c.name: LATENCY_S}
    rows_read: list[int] = []

    def attempt(contender: Contender, round_index: int, timed: bool) -> None:
        out = work / f"run-{round_index}-{contenders.index(contender)}"
        is_hub = contender in (hub_c, latency_c)
        if is_hub:
            hub.ask("latency", latency_of.get(contender.name, 0))
            hub.ask("reset")
        gc.collect()
        cpu, begin = cpu_seconds(), time.perf_counter()
        result = contender.run(out)
        seconds, cpu = time.perf_counter() - begin, cpu_seconds() - cpu
        if is_hub:
            contender.hub.append(hub.ask("stats"))
            hub.ask("latency", 0)
        if hasattr(result, "rows_read"):
            rows_read.append(result.rows_read)
        folder = contender.shards_in(out)
        if contender is seed_c and not seed_out.exists():
            shutil.copytree(folder, seed_out)
        if contender is not seed_c:  # every run is checked: a fast but wrong result must not pass
            ok, detail = compare_shards(folder, seed_out)
            if contender.check is None or not ok:
                contender.check = (ok, detail) if contender.check is None or contender.check[0] else contender.check
        contender.layout = contender.layout or shard_layout(folder)
        shutil.rmtree(out, ignore_errors=True)
        if timed:
            contender.seconds.append(seconds)
            contender.cpu.append(cpu)
        log(f"  {contender.name}: {seconds:.2f} s, {cpu:.2f} s CPU{'' if timed else ' (warm-up)'}")

    log(f"{n} training shards + 1 of {rows_per_shard:,} rows: 1 warm-up round, then {args.repeats} timed rounds")
    for round_index in range(args.repeats + 1):
        log("warm-up round" if round_index == 0 else f"round {round_index}/{args.repeats}")
        for contender in contenders:
            attempt(contender, round_index, timed=round_index > 0)

    # Peak RSS, each in a fresh process, through the Hub stand-in (the production path).
    rss: dict[int, tuple[float, float]] = {}
    for shards in (n, n_rss):
        command = ["convert", DATASET, "--num-shards", str(shards), "--rows-per-shard", str(rows_per_shard)]
        command += ["--cache-dir", str(work / f"rss-{shards}"), "--yes", "--quiet"]
        log(f"peak RSS of `shardsql {' '.join(command[:6])}` in a fresh process...")
        hub.ask("latency", 0)
        rss[shards] = peak_rss(RUN_CLI, command, dict(os.environ))
        log(f"  {rss[shards][0]:.0f} MB, {rss[shards][1]:.1f} s")
        shutil.rmtree(work / f"rss-{shards}", ignore_errors=True)
    rss_imports, _ = peak_rss(IMPORTS_ONLY, [], dict(os.environ))
    load_after = load_average()

    # Bytes needed: the text chunks of the row groups holding the rows the seed loop read, plus footers.
    docs_read = seed_docs[-1]
    chunks, footers = bytes_needed(files, docs_read)
    needed = chunks + footers
    fetched = max(s["bytes_served"] for s in hub_c.hub)
    rows = table_rows(contenders, rss, rss_imports, fetched, needed, n, n_rss)
    total = time.perf_counter() - started

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "load_average": {"before": load_before, "after": load_after},
        "parameters": {
            "dataset": DATASET,
            "num_shards": n,
            "rss_num_shards": [n, n_rss],
            "rows_per_shard": rows_per_shard,
            "row_group_size": 1024,
            "repeats": args.repeats,
            "statistic": "median of the timed rounds, after one warm-up round; contenders interleaved",
            "latency_ms": LATENCY_S * 1000,
            "scale": args.scale,
        },
        "data": stats | {"folder": str((DATA_DIR / DataSpec(**stats["spec"]).key()).relative_to(ROOT))},
        "contenders": {
            c.name: {
                "seconds": [round(s, 3) for s in c.seconds],
                "cpu_seconds": [round(s, 3) for s in c.cpu],
                "median_seconds": round(c.median, 3),
                "min_seconds": round(min(c.seconds), 3),
                "median_cpu_seconds": round(c.median_cpu, 3),
                "same_as_seed": None if c.check is None else {"ok": c.check[0], "detail": c.check[1]},
                "output_bytes": c.layout["bytes"],
                "row_groups_all_1024": c.layout["row_groups_1024"],
                "shard_row_groups": c.layout["row_groups"],
                "hub": c.hub or None,
            }
            for c in contenders
        },
        "peak_rss_mb": {str(k): round(v[0], 1) for k, v in rss.items()} | {"imports_only": round(rss_imports, 1)},
        "peak_rss_run_seconds": {str(k): round(v[1], 2) for k, v in rss.items()},
        "bytes": {
            "fetched": fetched,
            "needed": needed,
            "needed_text_chunks": chunks,
            "needed_footers": footers,
            "source_rows_needed": docs_read,
            "source_rows_read_by_shardsql": max(rows_read),
        },
        "table": [row.__dict__ for row in rows],
        "goals_missed": [row.measure for row in rows if row.met is False],
        "wall_seconds": round(total, 1),
    }
    markdown = render(result, rows)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(markdown)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out / 'latest.md'} and {args.out / 'latest.json'} ({total:.0f} s)")
    return 0 if all(c.check[0] for c in (local_c, hub_c, latency_c)) else 1


def table_rows(contenders, rss, rss_imports, fetched, needed, n, n_rss) -> list[Row]:
    seed_c, local_c, hub_c, polars_c, latency_c = contenders
    seed_t, local_t, hub_t, polars_t, latency_t = (c.median for c in contenders)
    rss_n, rss_3n = rss[n][0], rss[n_rss][0]

    def timing(c: Contender, what: str) -> Row:
        mb = c.layout["bytes"] / 1e6
        return Row(
            f"{what}: wall time (CPU time), output size", f"{c.median:.2f} s ({c.median_cpu:.2f} s), {mb:,.0f} MB"
        )

    rows = [
        timing(seed_c, "seed loop, per-row Python + pyarrow writer (snappy), local files"),
        timing(local_c, "shardsql convert, local folder"),
        timing(hub_c, "shardsql convert, through the Hub stand-in"),
        timing(polars_c, "hand-written Polars pipeline, local files"),
        Row(
            "speed-up over the seed loop, local (seed / shardsql)",
            f"{seed_t / local_t:.2f}x",
            f">= {GOAL_SPEEDUP_VS_SEED:g}x",
            seed_t / local_t >= GOAL_SPEEDUP_VS_SEED,
        ),
        Row(
            "speed-up over the seed loop, via Hub (seed / shardsql via Hub)",
            f"{seed_t / hub_t:.2f}x",
            f">= {GOAL_SPEEDUP_VS_SEED:g}x",
            seed_t / hub_t >= GOAL_SPEEDUP_VS_SEED,
        ),
        Row(
            "shardsql local / Polars pipeline",
            f"{local_t / polars_t:.2f}x",
            f"<= {GOAL_VS_POLARS:g}x",
            local_t / polars_t <= GOAL_VS_POLARS,
        ),
        Row("shardsql via Hub / Polars pipeline (for information)", f"{hub_t / polars_t:.2f}x"),
        Row(
            f"peak RSS, {n} training shards (fresh process, via Hub)",
            f"{rss_n:.0f} MB",
            f"<= {GOAL_RSS_MB:.0f} MB",
            rss_n <= GOAL_RSS_MB,
        ),
        Row(
            f"peak RSS, {n_rss} training shards (fresh process, via Hub)",
            f"{rss_3n:.0f} MB",
            f"<= {GOAL_RSS_MB:.0f} MB",
            rss_3n <= GOAL_RSS_MB,
        ),
        Row(
            f"peak RSS growth from {n} to {n_rss} shards",
            f"{rss_3n / rss_n:.2f}x ({rss_3n - rss_n:+.0f} MB)",
            f"flat (<= {GOAL_RSS_FLAT:.2f}x)",
            rss_3n / rss_n <= GOAL_RSS_FLAT,
        ),
        Row("peak RSS of a process that only imports the libraries (for information)", f"{rss_imports:.0f} MB"),
        Row(
            "bytes fetched from the Hub / bytes needed",
            f"{fetched / needed:.3f} ({fetched / 1e6:,.1f} / {needed / 1e6:,.1f} MB)",
            f"<= {GOAL_BYTES_RATIO:g}",
            fetched / needed <= GOAL_BYTES_RATIO,
        ),
        Row(
            f"via Hub with {LATENCY_S * 1000:.0f} ms per request / without",
            f"{latency_t / hub_t:.2f}x ({latency_t:.2f} s / {hub_t:.2f} s)",
            f"<= {GOAL_LATENCY_RATIO:g}x",
            latency_t / hub_t <= GOAL_LATENCY_RATIO,
        ),
    ]
    for c in (local_c, hub_c, latency_c):
        rows.append(Row(f"{c.name}: shards equal the seed loop's, every run", c.check[1], "equal", c.check[0]))
    layout = "" if polars_c.layout["row_groups_1024"] else "; row groups not all 1,024"
    rows.append(Row("Polars pipeline: shards equal the seed loop's (for information)", polars_c.check[1] + layout))
    return rows


def render(result: dict, rows: list[Row]) -> str:
    m, p, d = result["machine"], result["parameters"], result["data"]
    lines = [
        "# shardsql benchmark",
        "",
        f"- Date: {result['date']}; shardsql at {m['shardsql_commit']}; "
        f"the benchmark took {result['wall_seconds']:.0f} s",
        f"- Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, {m['platform']}; load average "
        f"{result['load_average']['before']} before, {result['load_average']['after']} after",
        f"- Python {m['python']}, polars {m['polars']}, duckdb {m['duckdb']}, pyarrow {m['pyarrow']}, "
        f"huggingface_hub {m['huggingface_hub']}",
        f"- Data: {d['rows']:,} FineWeb-Edu-shaped rows (10 columns) in {d['files']} files, {d['row_groups']} row "
        f"groups of {d['spec']['row_group_rows']:,} rows, {d['bytes_on_disk'] / 1e6:,.0f} MB (snappy); mean "
        f"{d['mean_chars']:,} characters a document; {d['null_rows']:,} null and {d['short_rows']:,} short rows",
        f"- Runs: `{p['dataset']}`, {p['num_shards']} training shards + 1 of {p['rows_per_shard']:,} rows, "
        f"1,024-row row groups ({result['bytes']['source_rows_needed']:,} source rows needed); median of "
        f"{p['repeats']} interleaved runs after a warm-up round; warm page cache; the Hub stand-in runs in its own "
        "process",
        "",
        "| # | measure | result | goal | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, row in enumerate(rows, 1):
        lines.append(f"| {i} | {row.measure} | {row.figure} | {row.goal} | {row.met_text} |")
    missed = result["goals_missed"]
    lines += ["", f"Goals missed: {'; '.join(missed)}." if missed else "All goals met.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
