"""One process of a video group in the parallel test (started by torch.multiprocessing.spawn)."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from openveo.config import Settings
from openveo.core.catalog import Catalog
from openveo.engine.engine import Canceled, Engine
from openveo.engine.parallel import group_from_environment
from openveo.engine.pipelines import quiet_libraries
from tests.engine.speed_helpers import capture_latents, short_request


def member(rank: int, world: int, port: int, models_dir: str, out: str, model_name: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # The one stand-in of this test: diffusers places each context-parallel rank on accelerator
    # `rank % count`, and this machine has no accelerator; told it has one, the CPU ranks run Ulysses.
    with mock.patch("torch.accelerator.device_count", return_value=1):
        _member(world, models_dir, out, model_name)


def _member(world: int, models_dir: str, out: str, model_name: str) -> None:
    torch.set_num_threads(1)
    quiet_libraries()
    settings = Settings(models_dir=Path(models_dir), data_dir=Path(out), device="cpu", gpus_per_video=world)
    group = group_from_environment(settings.gpus_per_video, settings.context_parallel, torch.device("cpu"))
    engine = Engine(settings, Catalog(), group)
    model = engine.load(model_name)
    if not group.leader:
        engine.follow()
        group.close()
        return
    # A cancel asked on the leader alone stops every rank at the same step, and the group goes on.
    try:
        engine.generate(short_request(model_name, steps=4), should_cancel=_after_steps(2))
        raise AssertionError("not canceled")
    except Canceled:
        pass
    latents = capture_latents(model.pipe)
    generation = engine.generate(short_request(model_name, steps=3))
    engine.release_followers()
    np.save(Path(out) / "frames.npy", generation.videos[0])
    np.save(Path(out) / "latents.npy", latents[0].numpy())
    group.close()


def _after_steps(n: int):
    calls = iter(range(1_000_000))
    return lambda: next(calls) >= n
