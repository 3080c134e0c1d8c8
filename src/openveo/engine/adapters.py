"""LoRA adapters on a loaded model: each generation runs with exactly its request's adapters, and one
without adapters runs the base model exactly (PEFT's layers are bypassed, not zeroed).

Two tiers, least recently used dropped first: adapter files read into CPU memory (up to a byte
budget), and the last few adapters resident in the transformer as PEFT layers (`GPU_SLOTS`), so a
popular adapter costs one `set_adapters` call per job rather than a load.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from openveo.core.loras import LoraUse

log = logging.getLogger(__name__)

GPU_SLOTS = 8  # adapters kept loaded in the transformer; more are reloaded from the CPU tier

LocateFn = Callable[[str], Path]  # sha256 → a local file of that adapter


class AdapterError(RuntimeError):
    """An adapter file that the pipeline cannot load (its layers do not match the transformer)."""


class Adapters:
    def __init__(self, pipe: Any, locate: LocateFn, cpu_budget_bytes: int, gpu_slots: int = GPU_SLOTS):
        self.pipe = pipe
        self.locate = locate
        self.cpu_budget_bytes = cpu_budget_bytes
        self.gpu_slots = gpu_slots
        self._cpu: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()  # sha256 → state dict
        self._resident: OrderedDict[str, None] = OrderedDict()  # sha256s loaded into the transformer
        self._enabled = False
        # Wan 2.2 A14B: a single-file adapter goes into both experts.
        self._targets = [name for name in ("transformer", "transformer_2") if getattr(pipe, name, None)]

    @property
    def resident(self) -> list[str]:
        return list(self._resident)

    def activate(self, uses: tuple[LoraUse, ...]) -> None:
        """Make `uses` (and nothing else) the adapters of the next generation."""
        if not uses:
            if self._enabled:
                self.pipe.disable_lora()
                self._enabled = False
            return
        for use in uses:
            self._load(use.sha256)
        names = [_adapter_name(use.sha256) for use in uses]
        self.pipe.enable_lora()
        self.pipe.set_adapters(names, [use.scale for use in uses])
        self._enabled = True

    def _load(self, sha256: str) -> None:
        if sha256 in self._resident:
            self._resident.move_to_end(sha256)
            return
        while len(self._resident) >= self.gpu_slots:
            evicted, _ = self._resident.popitem(last=False)
            self.pipe.delete_adapters([_adapter_name(evicted)])
        started = time.perf_counter()
        state = self._state_dict(sha256)
        try:
            for target in self._targets:
                self.pipe.load_lora_weights(
                    dict(state),
                    adapter_name=_adapter_name(sha256),
                    load_into_transformer_2=target == "transformer_2",
                )
        except (ValueError, KeyError, RuntimeError) as exc:
            self._drop_partial(sha256)
            raise AdapterError(f"LoRA {sha256[:12]} does not load into this model: {exc}") from exc
        self._resident[sha256] = None
        log.info("LoRA %s loaded in %.2fs", sha256[:12], time.perf_counter() - started)

    def _state_dict(self, sha256: str) -> dict[str, torch.Tensor]:
        if sha256 in self._cpu:
            self._cpu.move_to_end(sha256)
            return self._cpu[sha256]
        state = load_file(self.locate(sha256))
        self._cpu[sha256] = state
        while len(self._cpu) > 1 and _bytes(self._cpu) > self.cpu_budget_bytes:
            self._cpu.popitem(last=False)
        return state

    def _drop_partial(self, sha256: str) -> None:
        """After a failed load, leave no half-loaded adapter behind in either expert."""
        name = _adapter_name(sha256)
        for target in self._targets:
            module = getattr(self.pipe, target)
            if name in getattr(module, "peft_config", {}):
                module.delete_adapters([name])


def _adapter_name(sha256: str) -> str:
    return f"lora_{sha256[:16]}"


def _bytes(states: OrderedDict[str, dict[str, torch.Tensor]]) -> int:
    return sum(t.numel() * t.element_size() for state in states.values() for t in state.values())
