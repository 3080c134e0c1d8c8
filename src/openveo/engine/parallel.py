"""One video on several GPUs: a group of processes, one per GPU, that run every generation together.

The GPUs split first by guidance (CFG-parallel: one computes the prompt pass, the other the
negative-prompt pass, then they swap results), then by sequence (context parallelism: diffusers'
Ulysses or ring attention). Rank 0 is the leader: it alone talks to the queue and writes files; it
hands each request to the others and they follow it step for step. The control messages (requests,
cancel votes) go over a gloo group on the CPU, so they never wait behind GPU work.

Processes find each other through torch's usual variables (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT), so `torchrun` can start a group as well as `openveo worker --gpus-per-video`.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from openveo.engine.optimize import UnsupportedMode

log = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(minutes=30)  # longer than any one generation step, so a hung peer surfaces


class GroupBroken(RuntimeError):
    """A peer of this group is gone or stuck: the group cannot make videos any more and must be
    restarted whole (its supervisor does that when the process exits)."""


@dataclass(frozen=True)
class Plan:
    cfg: int = 1
    ring: int = 1
    ulysses: int = 1

    @property
    def size(self) -> int:
        return self.cfg * self.ring * self.ulysses

    @property
    def context_parallel(self) -> bool:
        return self.ring * self.ulysses > 1


def plan_for(gpus: int, context_parallel: str = "ulysses") -> Plan:
    """CFG-parallel first (it needs no attention changes and halves the work exactly), the rest by
    sequence."""
    cfg = 2 if gpus % 2 == 0 else 1
    rest = gpus // cfg
    return Plan(cfg, rest if context_parallel == "ring" else 1, rest if context_parallel == "ulysses" else 1)


class Group:
    """This process's place in its video group."""

    def __init__(self, plan: Plan, device: torch.device) -> None:
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=TIMEOUT)
        if dist.get_world_size() != plan.size:
            raise ValueError(f"a {plan} group needs {plan.size} processes, not {dist.get_world_size()}")
        self.plan = plan
        self.rank = dist.get_rank()
        self.device = device
        self.mesh = init_device_mesh(
            device.type, (plan.cfg, plan.ring, plan.ulysses), mesh_dim_names=("cfg", "ring", "ulysses")
        )
        self.cfg_group = self.mesh["cfg"].get_group() if plan.cfg > 1 else None
        self.cfg_rank = self.mesh["cfg"].get_local_rank()
        self.control = dist.new_group(backend="gloo")

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def split_sequence(self, denoiser: Any) -> None:
        """Context parallelism through diffusers' own plan for the model (Wan declares one)."""
        if not self.plan.context_parallel:
            return
        from diffusers import ContextParallelConfig

        config = ContextParallelConfig(
            ring_degree=self.plan.ring, ulysses_degree=self.plan.ulysses, mesh=self.mesh["ring", "ulysses"]
        )
        if not torch.accelerator.device_count():
            # diffusers places each rank on accelerator `rank % count`, which a machine without one lacks.
            raise UnsupportedMode(
                "context parallelism needs GPUs; without them a group can only split by guidance "
                "(gpus_per_video 2)"
            )
        denoiser.enable_parallelism(config=config)

    def share(self, message: Any) -> Any:
        """The leader's message, on every rank (None tells the followers to stop)."""
        box = [message if self.leader else None]
        try:
            dist.broadcast_object_list(box, src=0, group=self.control)
        except Exception as exc:
            raise GroupBroken(f"rank {self.rank}: the group's leader is gone ({exc})") from exc
        return box[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank says so: a cancel stops the whole group at the same step."""
        vote = torch.tensor([int(flag)])
        try:
            dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=self.control)
        except Exception as exc:
            raise GroupBroken(f"rank {self.rank}: a peer of the group is gone ({exc})") from exc
        return bool(vote.item())

    def lost_peer(self, exc: BaseException) -> bool:
        """Whether an error raised inside the model is a collective that lost its peer (a rank died
        mid-step, in an all-gather of CFG-parallel or context parallelism), not the job's own."""
        if isinstance(exc, getattr(dist, "DistError", ())):
            return True
        text = str(exc)
        return any(sign in text for sign in ("gloo", "NCCL", "Connection reset by peer", "Connection closed"))

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def group_from_environment(gpus_per_video: int, context_parallel: str, device: torch.device) -> Group | None:
    """The group this process belongs to, when started as one of several (RANK and WORLD_SIZE set)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and gpus_per_video == 1:
        return None
    if world != gpus_per_video:
        raise ValueError(f"gpus_per_video={gpus_per_video} but this group has WORLD_SIZE={world}")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0"))))
        torch.cuda.set_device(device)
    return Group(plan_for(gpus_per_video, context_parallel), device)
