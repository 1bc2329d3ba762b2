"""Measurements and checks: what a run costs (a fresh process's wall time, CPU time, peak RSS
and bytes written, or an in-process call's), a folder's peak size while a run goes, shards
compared with the seed's, their layout, the bytes a conversion needs, and the machine."""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = Path(__file__).resolve().parent / "launch.py"


@dataclass(frozen=True)
class Usage:
    """What one run cost."""

    seconds: float  # wall time
    cpu: float  # user + system time, all threads; of a fresh process, its whole tree
    peak_rss_mb: float | None = None  # a fresh process's (ru_maxrss); None for an in-process call
    # A fresh process tree's /proc/<pid>/io (Linux; launch.py): bytes it sent or dirtied for storage, and of
    # those, dirty pages dropped unwritten (files deleted first). None in-process or without /proc.
    write_bytes: int | None = None
    cancelled_write_bytes: int | None = None


def fresh_process(command: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[Usage, str]:
    """Run `command` as a fresh process, started by launch.py (which says why); return what it
    cost and its output (stdout then stderr). Raises RuntimeError, with the output, if it fails."""
    with tempfile.TemporaryDirectory(prefix="launch-") as folder:
        report = Path(folder) / "usage.json"
        done = subprocess.run([sys.executable, "-I", "-S", str(LAUNCH), str(report), *command], env=env, cwd=cwd,
                              capture_output=True, text=True)  # fmt: skip
        output = done.stdout + done.stderr
        if done.returncode != 0 or not report.exists():
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{output}")
        got = json.loads(report.read_text())
    usage = Usage(got["seconds"], got["user_seconds"] + got["system_seconds"], got["peak_rss_mb"],
                  got.get("write_bytes"), got.get("cancelled_write_bytes"))  # fmt: skip
    return usage, output


def in_process(call: Callable[[], object]) -> Usage:
    """Run `call` in this process (imports done before): its wall time and this process's CPU time."""
    gc.collect()
    cpu, begin = cpu_seconds(), time.perf_counter()
    call()
    return Usage(time.perf_counter() - begin, cpu_seconds() - cpu)


def warm_page_cache(paths: list[Path]) -> None:
    """Read the files once: the figures are then CPU cost, not disk speed."""
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


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


def compare_shuffled(got_dir: Path, want_dir: Path, whose: str = "the seed's") -> tuple[bool, str]:
    """A shuffled run against the seed loop's (or `whose`): the same shard names and row counts, and no text twice."""
    import hashlib

    import pyarrow.parquet as pq

    got, want = shard_files(got_dir), shard_files(want_dir)
    if list(got) != list(want):
        return False, f"shard names differ: {list(got)} vs {list(want)}"
    seen, rows = set(), 0
    for name in want:
        texts = pq.read_table(got[name], columns=["text"])["text"]
        expected = pq.read_metadata(want[name]).num_rows
        if len(texts) != expected:
            return False, f"{name}: {len(texts):,} rows, {whose} has {expected:,}"
        seen.update(hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts.to_pylist())
        rows += len(texts)
    if len(seen) != rows:
        return False, f"{rows - len(seen):,} texts repeated"
    return True, f"{len(want)} shards, {rows:,} rows, as many as {whose}, no text twice"


def shard_layout(folder: Path) -> dict:
    """Row-group sizes, codecs and bytes of the shards in a folder."""
    import pyarrow.parquet as pq

    groups, codecs = {}, set()
    for name, path in shard_files(folder).items():
        meta = pq.ParquetFile(path).metadata
        groups[name] = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        codecs |= {meta.row_group(i).column(0).compression.lower() for i in range(meta.num_row_groups)}
    size = sum(p.stat().st_size for p in shard_files(folder).values())
    exact = all(all(g == 1024 for g in sizes[:-1]) and sizes[-1] <= 1024 for sizes in groups.values())
    return {"row_groups": groups, "bytes": size, "row_groups_1024": exact, "codecs": sorted(codecs)}


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


def cpu_seconds() -> float:
    """CPU time of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def filesystem(path: Path) -> str:
    """The type of the filesystem holding `path` (Linux: /proc/mounts), else "?"."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "?"
    path = path.resolve()
    found = [(len(point), kind) for point, kind in mounts if path.is_relative_to(point.replace("\\040", " "))]
    return max(found)[1] if found else "?"


def record_head(machine_info: dict, load_before: str) -> dict:
    """The first fields of every results record: when it ended, the machine, and the load
    average before the run and now (after it)."""
    from datetime import UTC, datetime

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info,
        "load_average": {"before": load_before, "after": load_average()},
    }


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


# Which part of a conversion a thread does, by its name (Python's thread names, or the OS's
# for native threads: Polars' streaming engine runs on "async-executor" threads, its scans of
# a unit's text as well as its shard sinks).
THREAD_GROUPS = (
    ("shardsql-unit", "units: decode (pyarrow's part), filter, check"),
    ("async-executor", "Polars: decoding text, compressing shards"),
    ("polars", "Polars: decoding text, compressing shards"),
    ("tokio", "Polars: decoding text, compressing shards"),
    ("shardsql-write", "feeding the shard writers, their sha256"),
    ("shardsql-fetch", "fetching byte ranges"),
    ("MainThread", "main thread: cutting shards, checkpoints"),
)


class ThreadCPU:
    """CPU seconds by thread group while the `with` block runs (Linux): samples
    /proc/self/task every `every` seconds, so a thread's last moments before it exits are
    missed. It costs CPU itself: use it on a run that is not timed."""

    def __init__(self, every: float = 0.02):
        import threading

        self.every, self.seconds, self._names = every, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cpu-sampler", daemon=True)
        self._start: dict[int, float] = {}

    def _read(self) -> dict[int, float]:
        import threading

        python = {t.native_id: t.name for t in threading.enumerate()}
        tick, now = os.sysconf("SC_CLK_TCK"), {}
        for task in Path("/proc/self/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (task / "comm").read_text().strip()
            except OSError:
                continue  # the thread ended
            tid = int(task.name)
            now[tid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            self._names[tid] = python.get(tid, comm)
        return now

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self._latest.update(self._read())

    def __enter__(self) -> ThreadCPU:
        self._start = self._read()
        self._latest = dict(self._start)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._latest.update(self._read())
        groups: dict[str, float] = {}
        for tid, seconds in self._latest.items():
            name = self._names.get(tid, "?")
            if name == "cpu-sampler":
                continue
            group = next((label for prefix, label in THREAD_GROUPS if name.startswith(prefix)), "other threads")
            groups[group] = groups.get(group, 0.0) + seconds - self._start.get(tid, 0.0)
        self.seconds = {group: round(s, 2) for group, s in sorted(groups.items(), key=lambda kv: -kv[1])}


class FolderPeak:
    """The most bytes a folder's whole tree held while the `with` block ran: its files' sizes
    summed every `every` seconds by a thread of this process (and once on entry and on exit),
    so a peak shorter than `every` can be missed. `peak_bytes` is in files' sizes (what they
    hold, as the shards' sizes are counted); `peak_allocated` in blocks allocated (what du
    counts), beside it. Files that vanish while it walks are skipped."""

    def __init__(self, folder: Path, every: float = 0.1):
        import threading

        self.folder, self.every = folder, every
        self.peak_bytes = self.peak_allocated = self.samples = 0
        self.peak_at: float | None = None  # seconds after entry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="folder-sampler", daemon=True)

    def size(self) -> tuple[int, int]:
        """The folder's files now: (bytes, bytes allocated)."""
        size = allocated = 0
        pending = [self.folder]
        while pending:
            try:
                with os.scandir(pending.pop()) as entries:
                    for entry in entries:
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                pending.append(Path(entry.path))
                            elif entry.is_file(follow_symlinks=False):
                                stat = entry.stat(follow_symlinks=False)
                                size += stat.st_size
                                allocated += stat.st_blocks * 512
                        except OSError:
                            continue  # removed while we looked
            except OSError:
                continue  # a folder removed, or not made yet
        return size, allocated

    def _sample(self) -> None:
        size, allocated = self.size()
        self.samples += 1
        if size > self.peak_bytes:
            self.peak_bytes, self.peak_at = size, time.perf_counter() - self._begin
        self.peak_allocated = max(self.peak_allocated, allocated)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> FolderPeak:
        self._begin = time.perf_counter()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def record(self) -> dict:
        return {"peak_bytes": self.peak_bytes, "peak_allocated_bytes": self.peak_allocated, "samples": self.samples,
                "peak_at_seconds": None if self.peak_at is None else round(self.peak_at, 2),
                "every_seconds": self.every}  # fmt: skip
