"""A mixture's interleave: its components' rows merged so that every stretch of the output carries the weights.

Each component (a "part") gives its rows in its own order (shuffled, or source order with
--no-shuffle). A row of part p whose part's cumulative size, itself included, is S gets
the virtual time S / w_p, where the size is the row's characters when mixing by
characters and 1 when mixing by documents. The output is every row in (time, part)
order, each part's rows keeping their own order. Up to any point of the output, part p
has then given w_p of the total size to within one of its rows: the whole output and
every shard hold the weights, not just on average.

The merge is online and exact whatever the chunking: rows are fed to it per part in any
chunks, and a row is emitted once no row still to come can precede it, that is once its
(time, part) is at most every part's last fed (time, part). A part whose rows have ended
stays in that minimum: past its last row the output would drift from the weights, so the
merge stops there (`stuck`) and says which part ran dry. Times are float64 quotients of
exact integer sums: the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

NEVER = float("inf")


class Interleave:
    """The merge of `len(weights)` parts; `sizes` are each part's cumulative sizes already emitted (a resume's)."""

    def __init__(self, weights: Sequence[Fraction], sizes: Sequence[int] | None = None):
        self.weights = [float(w) for w in weights]
        self.sizes = list(sizes) if sizes is not None else [0] * len(weights)  # fed so far, per part
        self._times: list[np.ndarray] = [np.empty(0) for _ in weights]  # fed, not yet emitted
        self._last = [-NEVER if s == 0 else s / w for s, w in zip(self.sizes, self.weights, strict=True)]
        self._ended = [False] * len(weights)

    def feed(self, part: int, sizes: np.ndarray) -> None:
        """Rows of `part`, in its order, by size (characters, or 1 each)."""
        if not len(sizes):
            return
        total = self.sizes[part] + np.cumsum(np.asarray(sizes, dtype=np.int64))
        self.sizes[part] = int(total[-1])
        times = total / self.weights[part]
        self._times[part] = np.concatenate([self._times[part], times]) if len(self._times[part]) else times
        self._last[part] = float(times[-1])

    def end(self, part: int) -> None:
        """`part` has no more rows."""
        self._ended[part] = True

    def pending(self, part: int) -> int:
        return len(self._times[part])

    @property
    def waiting(self) -> int | None:
        """The part whose next rows the merge needs before it can emit more (None: that part has ended)."""
        part = min(range(len(self.weights)), key=lambda p: (self._last[p], p))
        return None if self._ended[part] else part

    @property
    def dry(self) -> int | None:
        """The part that ran out of rows and holds the merge (None while every part has rows to come)."""
        part = min(range(len(self.weights)), key=lambda p: (self._last[p], p))
        return part if self._ended[part] and not len(self._times[part]) else None

    def emit(self, limit: int) -> np.ndarray:
        """The parts of the next rows of the output, at most `limit` of them, in order (may be none:
        the merge waits for rows of the part behind, or is stuck on a part that ran dry)."""
        if limit <= 0:
            return np.empty(0, dtype=np.int32)
        bound = min(range(len(self.weights)), key=lambda p: (self._last[p], p))
        bound_time = self._last[bound]
        times, parts = [], []
        for part, pending in enumerate(self._times):
            # (t, part) <= (bound_time, bound): at or before the bound's time, ties by part.
            count = (
                len(pending)
                if part == bound
                else int(np.searchsorted(pending, bound_time, side="right" if part < bound else "left"))
            )
            times.append(pending[:count])
            parts.append(np.full(count, part, dtype=np.int32))
        merged_times, merged_parts = np.concatenate(times), np.concatenate(parts)
        order = np.lexsort((merged_parts, merged_times))[:limit]  # stable: a part's rows stay in order
        picks = merged_parts[order]
        for part in range(len(self._times)):
            taken = int(np.count_nonzero(picks == part))
            self._times[part] = self._times[part][taken:]
        return picks
