"""The few-step samplers of distilled models: the exact timesteps their publishers trained them on.

Stock `WanPipeline` asks its scheduler for `num_inference_steps` evenly spaced, shifted timesteps;
a distilled model wants specific ones (LightX2V: 1000, 750, 500, 250 through shift 5; FastWan:
1000, 757, 522), and DMD-distilled ones re-noise between steps instead of taking an ODE step. This
scheduler pins the timesteps whatever it is asked, and seeds the re-noising, which the pipeline
cannot (it passes no generator to `step`). docs/fast-presets.md cites each recipe.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler


class PinnedTimesteps(FlowMatchEulerDiscreteScheduler):
    """Flow matching at fixed timesteps: σᵢ = shift(tᵢ / 1000), then 0.

    renoise=False: Euler steps x += (σ' − σ)·v (LightX2V, Wan2.2-Lightning).
    renoise=True: x0 = x − σ·v, then (1 − σ')·x0 + σ'·ε with fresh ε (DMD: FastWan); the last step
    lands on σ' = 0, which is x0 itself.
    """

    def __init__(self, timesteps: tuple[float, ...], shift: float | None, renoise: bool) -> None:
        super().__init__(shift=1.0, stochastic_sampling=renoise)
        self.pinned = tuple(timesteps)
        self.pinned_shift = shift or 1.0
        self.noise: torch.Generator | None = None  # seeded per video by the engine

    def pinned_sigmas(self) -> list[float]:
        s = self.pinned_shift
        return [s * (t / 1000) / (1 + (s - 1) * (t / 1000)) for t in self.pinned]

    def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None, **_: Any) -> None:
        if num_inference_steps not in (None, len(self.pinned)):
            raise ValueError(
                f"this model samples at {len(self.pinned)} fixed timesteps, not {num_inference_steps}"
            )
        FlowMatchEulerDiscreteScheduler.set_timesteps(self, sigmas=self.pinned_sigmas(), device=device)

    def step(
        self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, *args: Any, **kwargs: Any
    ):
        if kwargs.get("generator") is None:
            kwargs["generator"] = self.noise
        return FlowMatchEulerDiscreteScheduler.step(self, model_output, timestep, sample, *args, **kwargs)
