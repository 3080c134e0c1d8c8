"""Named output resolutions the protocols take (`resolution: "720p"`): the exact size the video
comes back at for each aspect ratio, scaled from the model's native size (core/request.py's
`output_size`)."""

from __future__ import annotations

from collections.abc import Mapping

RESOLUTIONS: Mapping[str, Mapping[str, tuple[int, int]]] = {
    "720p": {"16:9": (1280, 720), "9:16": (720, 1280)},
    "1080p": {"16:9": (1920, 1080), "9:16": (1080, 1920)},
}
