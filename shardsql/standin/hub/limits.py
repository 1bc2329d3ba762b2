"""Rate-limit budgets as the Hub enforces them: a number of requests per fixed time window.

The real Hub counts, per IP, `/resolve/` requests ("resolvers") and API calls ("api") in
5-minute windows, and past a budget answers 429 with IETF draft headers and no Retry-After:

    RateLimit: "resolvers";r=0;t=212
    RateLimit-Policy: "fixed window";"resolvers";q=3000;w=300

Answers within the budget carry the same headers with the requests remaining (`r`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class Budget:
    """`quota` requests in each fixed window of `window_s` seconds, starting at the first request."""

    def __init__(self, name: str, quota: int, window_s: int, clock: Callable[[], float] = time.monotonic):
        self.name, self.quota, self.window_s = name, quota, window_s
        self._clock = clock  # a test may pass its own, to move to the next window without waiting for it
        self.refused = 0  # requests answered 429
        self._start: float | None = None
        self._used = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, dict[str, str]]:
        """Count one request: (allowed, the RateLimit headers to answer with)."""
        with self._lock:
            now = self._clock()
            if self._start is None:
                self._start = now
            if now - self._start >= self.window_s:  # a new window, aligned to the first one
                self._start += (now - self._start) // self.window_s * self.window_s
                self._used = 0
            # Elapsed time first: `start + window - now` can round up past the window (301 for 300).
            reset = max(1, math.ceil(self.window_s - (now - self._start)))
            allowed = self._used < self.quota
            self._used += allowed
            self.refused += not allowed
            return allowed, self._headers(self.quota - self._used, reset)

    def _headers(self, remaining: int, reset: int) -> dict[str, str]:
        return {
            "RateLimit": f'"{self.name}";r={remaining};t={reset}',
            "RateLimit-Policy": f'"fixed window";"{self.name}";q={self.quota};w={self.window_s}',
        }
