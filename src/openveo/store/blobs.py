"""Result files (MP4s, thumbnails, spritesheets) under keys like `jobs/<id>/attempt-1/video-0.mp4`.

Two stores with one interface: a local directory (the default) and any S3-compatible bucket
(`store/s3.py`). Workers write each file whole on local disk first and then `put` it, so a reader
never sees half a file in either store.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol

CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".png": "image/png"}


def content_type(key: str) -> str:
    return CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")


class BlobMissing(LookupError):
    """The file is not (or no longer) stored: its retention ended or its job was deleted."""


class StorageUnavailable(RuntimeError):
    """The configured store cannot be used (unreachable, no such bucket, no credentials)."""


class Blobs(Protocol):
    def put(self, key: str, source: Path) -> None:
        """Store the finished local file `source` under `key` (it is moved or uploaded)."""

    def read_bytes(self, key: str) -> bytes:
        """The whole file; raises `BlobMissing`."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every file whose key starts with `prefix/` (a job's or an attempt's folder)."""

    def local_path(self, key: str) -> Path | None:
        """A path the API can serve directly (with HTTP Range), or None when the store is remote."""

    def presigned_url(self, key: str, expires_at: float) -> str | None:
        """A URL that downloads `key` until `expires_at` without the API, or None when the API's own
        signed `/files/` links must be used."""

    def check(self) -> None:
        """Raise at start, not at the first result, when the store cannot be reached."""


class LocalBlobs:
    """Files under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    def put(self, key: str, source: Path) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.move(source, partial)  # a copy when the staging area is on another file system
        os.chmod(partial, 0o600)  # results are the key holder's: served by the API, read by nobody else
        os.replace(partial, target)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobMissing(key) from None

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    def presigned_url(self, key: str, expires_at: float) -> str | None:
        return None

    def check(self) -> None:
        pass  # folders are made on the first write, so a store still empty is fine


def open_blobs(storage: str | None, default_root: Path, *, s3_endpoint_url: str | None = None) -> Blobs:
    """`s3://bucket/prefix` (any S3-compatible endpoint), a local directory, or `default_root`.
    Raises `StorageUnavailable` for a setting that names no usable store."""
    if storage and storage.startswith("s3://"):
        from openveo.store.s3 import S3Blobs

        return S3Blobs.from_uri(storage, endpoint_url=s3_endpoint_url)
    if storage and "://" in storage:
        raise StorageUnavailable(f"storage must be s3://BUCKET/PREFIX or a local directory, not {storage!r}")
    return LocalBlobs(Path(storage).expanduser() if storage else default_root)
