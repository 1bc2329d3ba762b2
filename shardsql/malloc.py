"""glibc's allocator told to return large freed buffers to the system: a conversion's memory stays flat.

A conversion allocates and frees row-group-sized buffers all the time (decoded pages, Arrow
tables, the shards' pieces). The command line tunes the allocator once, at start (`main`),
before any of them; other allocators (not glibc) need nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def steady_malloc() -> None:
    """Keep glibc from hoarding freed row-group buffers.

    After a large buffer is freed, glibc raises its mmap threshold to that size and serves
    later ones from its heaps, which it rarely returns to the system: a conversion's memory
    would keep growing with the size of its row groups. A fixed threshold stops that.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB
    except OSError:  # not glibc: nothing to tune
        pass
