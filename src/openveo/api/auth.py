"""API keys on requests: read from the headers, checked against the database."""

from __future__ import annotations

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
