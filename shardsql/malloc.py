"""glibc's allocator given a fixed mmap threshold: a conversion's memory stays flat.

A conversion allocates and frees row-group-sized buffers all the time (decoded pages, Arrow
tables, DuckDB's results, the shards' pieces). The command line tunes the allocator once, at
start (`main`), before any of them; other allocators (not glibc) need nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# Every buffer above this is its own mmap, given back when freed: memory stays flat, at a
# price in page faults. Measured at 32 MiB (glibc's own ceiling), the main job `convert
# fineweb-edu --no-shuffle`, 3 + 1 shards of 86,016 rows (bench's fineweb-edu-1k, 2 cores):
# from a local folder 1.4 s of system time against 2.5 s, 8.7 s of wall time against 9.4 s;
# but through the Hub stand-in, whose pieces (4 to 9 MB each) then stayed in glibc's heaps,
# a peak RSS of 522-541 MB against 465 MB, over the 500 MB goal (`just bench`). So 1 MiB.
MMAP_THRESHOLD = 1 << 20
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
