"""The operator's LoRA registry: adapters are added from a file or the Hugging Face Hub by the operator
(`openveo loras add`), and requests only ever name them, so no request makes the server fetch a file.

A registered adapter is a row (name → sha256, shape, source) plus a copy of the file in the result
store under `loras/<sha256>/`, where every worker of the deployment finds it, on this machine or
another. The file is checked when it is added; requests are checked against the row, before any
credit is reserved.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import TypeAdapter
from sqlalchemy import delete, func, insert, select

from openveo.core.catalog import Catalog, UnknownModel
from openveo.core.loras import LORA_NAME, Lora, LoraShape, UnreadableLora, inspect_lora, read_header
from openveo.store.blobs import BlobMissing, Blobs
from openveo.store.db import Database
from openveo.store.schema import loras

log = logging.getLogger(__name__)

_SHAPE: TypeAdapter[LoraShape] = TypeAdapter(LoraShape)
FILE_NAME = "adapter.safetensors"


class LoraRefused(ValueError):
    """The operator's `add` cannot be done; the message says why."""


def file_key(sha256: str) -> str:
    return f"loras/{sha256}/{FILE_NAME}"


@dataclass
class LoraRegistry:
    db: Database
    blobs: Blobs
    catalog: Catalog
    staging: Path  # a local folder on the result store's side of a rename

    def all(self) -> dict[str, Lora]:
        with self.db.read() as conn:
            rows = conn.execute(select(loras).order_by(loras.c.name)).all()
        return {
            row.name: Lora(
                name=row.name,
                sha256=row.sha256,
                size=row.size,
                shape=_SHAPE.validate_json(row.shape),
                source=row.source,
                model=row.model,
            )
            for row in rows
        }

    def checked(self) -> Mapping[str, Lora]:
        """The adapters as a request sees them: each one it names has its stored file checked."""
        return CheckedLoras(self.all(), self.blobs)

    def add(self, name: str, path: Path, *, source: str | None = None, model: str | None = None) -> Lora:
        """Check the file, copy it into the store and register it as `name`; raises `LoraRefused`."""
        if not LORA_NAME.match(name):
            raise LoraRefused(
                f"name {name!r} must be 1-64 letters, digits, '.', '_' or '-', from a letter or digit"
            )
        try:
            shape = inspect_lora(path)
        except UnreadableLora as exc:
            raise LoraRefused(f"{path} {exc}") from None
        if model is not None:
            try:
                model = self.catalog.resolve(model).name
            except UnknownModel as exc:
                raise LoraRefused(str(exc)) from None
        lora = Lora(name, _sha256(path), path.stat().st_size, shape, source or str(path), model)
        fits = [p.name for p in self.catalog.presets.values() if lora.fits(p)]
        if not fits:
            wanted = f"{model}'s ({self.catalog.resolve(model).backbone})" if model else "any preset's"
            raise LoraRefused(f"{path} was trained on a {shape.backbone}; that is not {wanted}")
        if name in self.all():
            raise LoraRefused(f"an adapter named {name!r} is registered already; remove it first")
        self._store(path, lora.sha256)
        with self.db.write() as conn:
            conn.execute(
                insert(loras).values(
                    name=name,
                    sha256=lora.sha256,
                    size=lora.size,
                    shape=_SHAPE.dump_json(shape).decode(),
                    source=lora.source,
                    model=model,
                    created_at=time.time(),
                )
            )
        log.info("LoRA %s registered (rank %d, fits %s)", name, shape.rank, ", ".join(fits))
        return lora

    def remove(self, name: str) -> bool:
        """Unregister `name`; its file goes too unless another name holds the same file. Jobs queued
        with it fail (refunded) when a worker cannot find the file."""
        with self.db.write() as conn:
            sha = conn.execute(select(loras.c.sha256).where(loras.c.name == name)).scalar()
            if sha is None:
                return False
            conn.execute(delete(loras).where(loras.c.name == name))
            shared = conn.execute(select(func.count()).where(loras.c.sha256 == sha)).scalar()
        if not shared:
            self.blobs.delete_prefix(f"loras/{sha}")
        return True

    def scan(self, folders: Iterable[Path]) -> list[str]:
        """Register every `*.safetensors` in `folders` under its file name (without the suffix) that is
        not registered yet; files that cannot be used are logged and left out. The names added."""
        added = []
        known = self.all()
        for folder in folders:
            for path in sorted(Path(folder).expanduser().glob("*.safetensors")):
                if path.stem in known:
                    continue
                try:
                    self.add(path.stem, path)
                except LoraRefused as exc:
                    log.warning("LoRA %s left out: %s", path, exc)
                    continue
                added.append(path.stem)
        return added

    def _store(self, path: Path, sha256: str) -> None:
        """Copy the file into the store (`put` moves its source, and the operator's file stays)."""
        self.staging.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.staging) as scratch:
            copy = Path(scratch) / FILE_NAME
            shutil.copyfile(path, copy)
            self.blobs.put(file_key(sha256), copy)


class CheckedLoras(Mapping[str, Lora]):
    """Registered adapters; looking one up checks its file in a local store (still there, whole), so
    that a request for a damaged one is refused before it is charged. A remote store's file is
    checked by the worker, against its sha256, when it downloads it."""

    def __init__(self, registered: dict[str, Lora], blobs: Blobs) -> None:
        self._registered = registered
        self._blobs = blobs

    def __getitem__(self, name: str) -> Lora:
        lora = self._registered[name]
        path = self._blobs.local_path(file_key(lora.sha256))
        if path is None:
            return lora
        try:
            read_header(path)
        except UnreadableLora as exc:
            return replace(lora, problem=f"its stored file {exc}")
        return lora

    def __iter__(self) -> Iterator[str]:
        return iter(self._registered)

    def __len__(self) -> int:
        return len(self._registered)


def local_file(blobs: Blobs, use_sha256: str, cache: Path) -> Path:
    """A local path of the adapter file `use_sha256` for a worker to load: the store's own file when
    it is local, else a checked copy downloaded once into `cache`. Raises `BlobMissing`."""
    key = file_key(use_sha256)
    path = blobs.local_path(key)
    if path is not None:
        if not path.exists():
            raise BlobMissing(key)
        return path
    target = cache / f"{use_sha256}.safetensors"
    if not target.exists():
        data = blobs.read_bytes(key)
        if hashlib.sha256(data).hexdigest() != use_sha256:
            raise BlobMissing(f"{key} (its content does not match its sha256)")
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
