"""One video on several devices: CFG-parallel x Ulysses context parallel over a real gloo process
group of four CPU processes, against the single-process engine."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from openveo.engine.parallel import Plan, plan_for
from tests.engine.group_member import member
from tests.engine.speed_helpers import baseline, psnr, short_request

EXACT_DB = 45.0


def test_plans_split_guidance_first_then_the_sequence():
    assert plan_for(1) == Plan(1, 1, 1)
    assert plan_for(2) == Plan(cfg=2)
    assert plan_for(4) == Plan(cfg=2, ulysses=2)
    assert plan_for(8, "ring") == Plan(cfg=2, ring=4)
    assert plan_for(3) == Plan(ulysses=3)


@pytest.mark.slow  # four processes in a gloo group
def test_group_of_four_makes_the_plain_diffusers_video(engine, settings, tmp_path):
    """Also: a cancel on the leader stops all four at the same step and the group takes the next job."""
    engine.load("tiny-wan2.1")  # builds the tiny model once, before four processes look for it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(
        member, args=(4, port, str(settings.model_root), str(tmp_path), "tiny-wan2.1"), nprocs=4, join=True
    )
    reference = baseline(settings, short_request("tiny-wan2.1", steps=3))
    reference.assert_matches(torch.from_numpy(np.load(tmp_path / "latents.npy")))
    assert psnr(reference.frames, np.load(tmp_path / "frames.npy")) >= EXACT_DB
