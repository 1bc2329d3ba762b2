"""glibc's allocator given a fixed mmap threshold: a conversion's memory stays flat, cheaply.

A conversion allocates and frees row-group-sized buffers all the time (decoded pages, Arrow
tables, DuckDB's results, the shards' pieces). The command line tunes the allocator once, at
start (`main`), before any of them; other allocators (not glibc) need nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# glibc's own ceiling for its moving threshold (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit), fixed.
# A lower one made every buffer above it a fresh mmap, faulted in page by page and unmapped
# when freed: at 1 MiB, the main job (`convert fineweb-edu --no-shuffle`, 3 + 1 shards of
# 86,016 rows, bench's fineweb-edu-1k layout, 2 cores) spent 2.5 s of system time against
# 1.4 s at 32 MiB, 9.4 s of wall time against 8.7 s, for a peak RSS of 407 MB against 433 MB.
MMAP_THRESHOLD = 32 << 20
M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def steady_malloc() -> None:
    """Keep glibc from hoarding freed row-group buffers, at a fixed mmap threshold.

    After a large buffer is freed, glibc raises its mmap threshold to that size, and its trim
    threshold to twice that, and then serves later ones from its heaps, keeping up to 64 MiB
    freed at their top: a conversion's memory would keep growing with the size of its row
    groups. A fixed threshold stops the raising (the trim threshold stays at its 128 KiB).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except OSError:  # not glibc: nothing to tune
        pass
