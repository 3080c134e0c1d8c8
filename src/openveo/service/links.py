"""Signed, expiring links to result files, so a browser or an SDK can download a video without the API
key (the way S3 presigned URLs work). HMAC-SHA256 over the file's key and the expiry time."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path


def load_secret(data_dir: Path) -> bytes:
    """The server's signing secret, made on first start and kept private in the data dir."""
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        os.replace(path.with_suffix(".tmp"), path)
    return bytes.fromhex(path.read_text().strip())


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
