"""Runs one command as a fresh process and records what it cost: wall time, CPU time, peak RSS, bytes written.

    python -I -S bench/launch.py REPORT.json COMMAND [ARG ...]

The benchmark starts every contender through this small process (measure.fresh_process)
rather than itself, for its peak RSS: Linux carries the RSS high-water mark of the process
that starts a child over into the child's ru_maxrss across exec (fork, vfork and posix_spawn
alike), so a child of the benchmark, which holds GBs after its in-process runs, would report
the benchmark's peak as its own. A child of this process inherits only this process's few
MB (`launcher_rss_mb` in the report). Hence the standard library only, and no more of it than
needed.

The CPU time is the child's user + system time and that of every descendant it waited for
(os.wait4's accounting), all threads: the process tree's. So are the bytes written (Linux):
this process's /proc/self/io after the child is reaped less before it was spawned, since
reaping a child adds its I/O counters, and those of the descendants it waited for, to the
parent's (`write_bytes`: bytes the tree sent, or dirtied, for storage, none on a tmpfs;
`cancelled_write_bytes`: of those, dirty pages dropped unwritten, their files truncated or
deleted first). The wall time runs from the spawn to the child's exit, as a shell's `time`
measures it. The command's output goes where this process's goes; its exit status is this
process's.
"""

import json
import os
import sys
import time


def main() -> int:
    report, command = sys.argv[1], sys.argv[2:]
    launcher_kb = _vm_hwm_kb()
    io_before = _io()
    begin = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - begin
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    rss_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    code = os.waitstatus_to_exitcode(status)
    io_after = _io()
    written = {key: io_after[key] - io_before[key] if io_before and io_after else None
               for key in ("write_bytes", "cancelled_write_bytes")}  # fmt: skip
    with open(report, "w") as handle:
        json.dump({"seconds": seconds, "user_seconds": usage.ru_utime, "system_seconds": usage.ru_stime,
                   "peak_rss_mb": rss_mb, "launcher_rss_mb": launcher_kb / 1024 if launcher_kb else None,
                   "exit_code": code, **written}, handle)  # fmt: skip
    return code if code >= 0 else 128 - code  # killed by a signal: as a shell reports it


def _vm_hwm_kb() -> int | None:
    """This process's own peak RSS (Linux), the floor a child's ru_maxrss starts from."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def _io() -> dict[str, int] | None:
    """This process's I/O counters (Linux), its reaped children's included."""
    try:
        with open("/proc/self/io") as io:
            return {key: int(value) for key, value in (line.split(": ") for line in io)}
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
