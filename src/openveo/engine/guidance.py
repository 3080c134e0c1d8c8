"""Classifier-free guidance as one transformer pass instead of two.

diffusers' Wan pipelines call the transformer twice per step on the same latents: with the prompt,
then with the negative prompt. Two small batches leave an H100 partly idle and read every weight
twice. Here the first call runs both halves as one batch of two (or, in a CFG-parallel group, one
half on each of two GPUs, then swapped), and the second call is answered from that result. The
stock pipeline stays in charge of everything else, so its output is unchanged up to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from diffusers.models.modeling_outputs import Transformer2DModelOutput


class BatchedGuidance:
    """Wraps one denoiser's forward. Active only between `expect()` and `expect(None)`: the caller
    names the exact prompt and negative-prompt tensors it passed to the pipeline, so any other call
    (no guidance, a pipeline that already batches) goes through untouched."""

    def __init__(self, denoiser: torch.nn.Module, group: Any = None, rank_in_group: int = 0) -> None:
        self._forward = denoiser.forward
        self.group = group  # CFG-parallel: two ranks, rank 0 computes the prompt half, rank 1 the other
        self.rank_in_group = rank_in_group
        self._pair: tuple[torch.Tensor, torch.Tensor] | None = None
        self._pending: tuple[torch.Tensor, Any, torch.Tensor] | None = None
        denoiser.forward = self.forward

    def expect(self, positive: torch.Tensor | None = None, negative: torch.Tensor | None = None) -> None:
        self._pair = (positive, negative) if positive is not None and negative is not None else None
        self._pending = None

    def forward(
        self, hidden_states: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor, **kwargs
    ):
        return_dict = kwargs.pop("return_dict", True)
        pair, pending = self._pair, self._pending
        if pair is not None and encoder_hidden_states is pair[0]:
            positive, negative = self._both(hidden_states, timestep, pair, kwargs)
            self._pending = (hidden_states, timestep, negative)
            out = positive
        elif (
            pair is not None
            and pending is not None
            and encoder_hidden_states is pair[1]
            and pending[0] is hidden_states
            and pending[1] is timestep
        ):
            self._pending = None
            out = pending[2]
        else:
            return self._forward(
                hidden_states, timestep, encoder_hidden_states, return_dict=return_dict, **kwargs
            )
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)

    def _both(self, hidden_states, timestep, pair, kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        if self.group is not None:
            mine = self._forward(
                hidden_states, timestep, pair[self.rank_in_group], return_dict=False, **kwargs
            )[0].contiguous()
            halves = [torch.empty_like(mine) for _ in range(2)]
            dist.all_gather(halves, mine, group=self.group)
            return halves[0], halves[1]
        batch = hidden_states.shape[0]
        doubled = {
            k: torch.cat([v, v]) if k in PER_SAMPLE and v is not None else v for k, v in kwargs.items()
        }
        out = self._forward(
            torch.cat([hidden_states, hidden_states]),
            _twice(timestep, batch),
            torch.cat(pair),
            return_dict=False,
            **doubled,
        )[0]
        return out[:batch], out[batch:]


# The Wan transformer's keyword inputs that hold one entry (or a fixed number) per sample, repeated for
# the second half of the batch: CLIP image features (two per sample for a first-and-last-frame model,
# which the transformer pairs up) and VACE's control latents. Anything else (VACE's per-layer scales)
# is the same for both halves.
PER_SAMPLE = ("encoder_hidden_states_image", "control_hidden_states")


def _twice(timestep: Any, batch: int) -> Any:
    """The timestep for both halves: per sample (or per token) if it is, else one for all."""
    if isinstance(timestep, torch.Tensor) and timestep.ndim > 0 and timestep.shape[0] == batch:
        return torch.cat([timestep, timestep])
    return timestep
