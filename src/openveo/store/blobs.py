"""Result files (MP4s, thumbnails) under keys like `jobs/<id>/video-0.mp4`. Local directory for now."""

from __future__ import annotations

import shutil
from pathlib import Path


class LocalBlobs:
    """Files under one root. Writers produce a whole file beside the target and rename it into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)
