"""The per-key rate limit on generation requests: a token bucket per key, per API server process."""

from __future__ import annotations

import math
import threading
import time


class RateLimited(Exception):
    """Too many generation requests from one key; `retry_after_s` says when the next one is allowed."""

    def __init__(self, per_minute: int, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"rate limit exceeded: {per_minute} generation requests per minute per key; "
            f"retry in {retry_after_s} s"
        )


class RateLimiter:
    """`per_minute` requests, refilled evenly; 0 turns the limit off."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: int) -> None:
        """Take one request from the key's bucket, or raise `RateLimited`."""
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(key_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - stamp) * rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                raise RateLimited(self.per_minute, math.ceil((1.0 - tokens) / rate))
            self._buckets[key_id] = (tokens - 1.0, now)
