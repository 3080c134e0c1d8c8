"""API keys: random secrets shown once, stored only as SHA-256 hashes (they are high-entropy, so a
fast hash is the right tool), each with a credit balance kept by `billing`."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, Row, or_, select, update

from openveo.service import billing
from openveo.store.db import Database
from openveo.store.schema import api_keys

SECRET_PREFIX = "ov-"


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    balance: int  # micro-credits
    created_at: float
    revoked_at: float | None

    @property
    def credits(self) -> float:
        return billing.to_credits(self.balance)


class KeyNotFound(LookupError):
    pass


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(db: Database, name: str, credits: float) -> tuple[ApiKey, str]:
    """A new key and its secret (the only time the secret exists outside the client)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with db.write() as conn:
        key_id: int = conn.execute(
            api_keys.insert()
            .values(
                name=name,
                key_hash=hash_secret(secret),
                prefix=secret[:10],
                balance=0,
                created_at=time.time(),
            )
            .returning(api_keys.c.id)
        ).scalar_one()
        if credits:
            billing.grant(conn, key_id, billing.to_micro(credits), "initial credits")
        return _get(conn, key_id), secret


def authenticate(db: Database, secret: str) -> ApiKey | None:
    """The key this secret belongs to (revoked ones included: callers say why they refuse)."""
    with db.read() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_hash == hash_secret(secret))).first()
    return _key(row) if row else None


def list_keys(db: Database) -> list[ApiKey]:
    with db.read() as conn:
        return [_key(row) for row in conn.execute(select(api_keys).order_by(api_keys.c.id))]


def find_key(conn: Connection, ref: str) -> ApiKey:
    """A key by its secret, its id, its prefix or its name (the last two only when unambiguous)."""
    clauses = [api_keys.c.key_hash == hash_secret(ref), api_keys.c.prefix == ref, api_keys.c.name == ref]
    if ref.isdigit():
        clauses.append(api_keys.c.id == int(ref))
    rows = conn.execute(select(api_keys).where(or_(*clauses))).all()
    if len(rows) != 1:
        problem = "no key matches" if not rows else f"{len(rows)} keys match"
        raise KeyNotFound(f"{problem} {ref!r}; give the key itself, its id or its prefix")
    return _key(rows[0])


def revoke_key(db: Database, ref: str) -> ApiKey:
    with db.write() as conn:
        key = find_key(conn, ref)
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key.id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        return _get(conn, key.id)


def add_credits(db: Database, ref: str, credits: float, note: str | None = None) -> ApiKey:
    with db.write() as conn:
        key = find_key(conn, ref)
        billing.grant(conn, key.id, billing.to_micro(credits), note or "credits added")
        return _get(conn, key.id)


def show_key(db: Database, ref: str) -> ApiKey:
    with db.read() as conn:
        return find_key(conn, ref)


def count_keys(db: Database) -> int:
    with db.read() as conn:
        return len(conn.execute(select(api_keys.c.id)).all())


def _get(conn: Connection, key_id: int) -> ApiKey:
    return _key(conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one())


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(**{f.name: row._mapping[f.name] for f in fields(ApiKey)})
