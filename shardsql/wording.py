"""How numbers are said to a person, in every message and report: counts with their noun
("1 row", "2,048 rows") and sizes ("3.4 MiB"). One place, so that no line says "1 rows"."""

from __future__ import annotations


def count(n: int, word: str = "row") -> str:
    """A count for a person, its noun singular for one: "1 row", "2,048 rows", "1 training shard"."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def format_size(n: float) -> str:
    """Bytes for a person, in powers of 1024 named as such (as `du -h` and `df -h` count): 512 B, 3.4 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
