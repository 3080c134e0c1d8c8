"""Signed, expiring links to result files, so a browser or an SDK can download a video without the API
key (the way S3 presigned URLs work). HMAC-SHA256 over the file's key and the expiry time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from openveo.store.db import Database
from openveo.store.schema import server_secrets

SIGNING = "signing"


def load_secret(db: Database, data_dir: Path) -> bytes:
    """The deployment's signing secret. It lives in the database, so every API server and worker on
    it signs and checks alike; made on first start (adopting `DATA_DIR/secret.key` from versions that
    kept it there, so links and webhook secrets already handed out stay valid)."""
    stored = _stored_secret(db)
    if stored is None:
        legacy = data_dir / "secret.key"
        candidate = legacy.read_text().strip() if legacy.is_file() else secrets.token_hex(32)
        try:
            with db.write() as conn:
                conn.execute(
                    server_secrets.insert().values(name=SIGNING, value=candidate, created_at=time.time())
                )
        except IntegrityError:
            pass  # another process made it first: use theirs
        stored = _stored_secret(db)
    assert stored is not None
    return bytes.fromhex(stored)


def _stored_secret(db: Database) -> str | None:
    with db.read() as conn:
        return conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == SIGNING)).scalar()


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def query(self, key: str, expires: float) -> str:
        """The query string that makes a link to `key` valid until `expires` (Unix seconds)."""
        stamp = int(expires)
        return f"expires={stamp}&signature={self.signature(key, stamp)}"

    def valid(self, key: str, expires: str, signature: str) -> bool:
        try:
            stamp = int(expires)
        except ValueError:
            return False
        expected = self.signature(key, stamp).encode()
        return stamp >= time.time() and hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
