"""The C2PA roots this deployment's signers chain to, kept in the database: each worker machine makes
its own signing certificate, and any API server (or `openveo verify`) trusts them all."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from openveo.store.db import Database
from openveo.store.schema import server_secrets

PREFIX = "c2pa-root:"


def publish(db: Database, root_pem: bytes) -> None:
    name = PREFIX + hashlib.sha256(root_pem).hexdigest()[:24]
    try:
        with db.write() as conn:
            if conn.execute(select(server_secrets.c.name).where(server_secrets.c.name == name)).first():
                return
            conn.execute(
                server_secrets.insert().values(name=name, value=root_pem.decode(), created_at=time.time())
            )
    except IntegrityError:
        pass  # published by another process at the same moment


def trust_anchors(db: Database, extra: Path | None = None) -> bytes:
    """Every published root, plus the operator's own anchors file."""
    with db.read() as conn:
        rows = conn.execute(
            select(server_secrets.c.value).where(server_secrets.c.name.startswith(PREFIX))
        ).scalars()
        roots = b"".join(value.encode() for value in rows)
    return roots + (extra.read_bytes() if extra else b"")
