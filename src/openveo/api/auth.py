"""API keys on requests, and the per-key rate limit on generation requests."""

from __future__ import annotations

import math
import threading
import time

from fastapi import Request

from openveo.api.errors import ApiError
from openveo.service.keys import ApiKey, authenticate
from openveo.store.db import Database


def key_from_headers(request: Request, *, bearer: bool) -> str | None:
    secret = request.headers.get("x-api-key")
    if not secret and bearer:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        secret = token.strip() if scheme.lower() == "bearer" else None
    return secret or None


def require_key(db: Database, secret: str | None, *, missing: str) -> ApiKey:
    if not secret:
        raise ApiError(401, missing)
    key = authenticate(db, secret)
    if key is None:
        raise ApiError(401, "invalid API key")
    if key.revoked_at is not None:
        raise ApiError(401, "this API key has been revoked")
    return key


class RateLimiter:
    """A token bucket per key: `per_minute` requests, refilled evenly. Per API server process."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: int) -> None:
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(key_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - stamp) * rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise ApiError(
                    429,
                    f"rate limit exceeded: {self.per_minute} generation requests per minute per key; "
                    f"retry in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            self._buckets[key_id] = (tokens - 1.0, now)
