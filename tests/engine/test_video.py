"""MP4 and thumbnail writing: atomic, fast-start, tagged."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openveo.engine.video import VideoEncodeError, video_metadata, write_mp4, write_thumbnail
from tests.helpers import decode


def frames(count=25, width=64, height=48):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def test_mp4_is_fast_start_h264_with_metadata(tmp_path):
    path = write_mp4(frames(), tmp_path / "v.mp4", 24, metadata=video_metadata("tiny-ltx", 5))
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # index first: playable while downloading
    video = decode(path)
    assert len(video["frames"]) == 25 and video["fps"] == 24
    assert "AI-generated" in video["metadata"]["comment"] and video["metadata"]["openveo_seed"] == "5"


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "broken.mp4"
    with pytest.raises(
        VideoEncodeError, match="video encode failed"
    ):  # odd sizes cannot be yuv420p: the encoder refuses mid-write
        write_mp4(frames(width=63, height=47), target, 24)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_only_on_success(tmp_path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"old")
    with pytest.raises(VideoEncodeError):
        write_mp4(frames(width=63, height=47), target, 24)
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_thumbnail_is_the_middle_frame(tmp_path):
    clip = np.stack([np.full((48, 64, 3), 25 * i, dtype=np.uint8) for i in range(9)])  # frame i is grey 25*i
    path = write_thumbnail(clip, tmp_path / "t.jpg")
    with Image.open(path) as img:
        assert img.format == "JPEG" and img.size == (64, 48)
        assert abs(np.asarray(img).mean() - 100) < 3
