"""LoRA adapters on a loaded model: each generation runs with exactly its request's adapters, and one
without adapters runs the base model exactly (PEFT's layers are bypassed, not zeroed).

Two ways, one interface (`activate`, `resident`):
- `Adapters` (eager transformers): the last few adapters stay loaded as PEFT layers (`GPU_SLOTS`), so
  a popular adapter costs one `set_adapters` call per job rather than a load;
- `SwapSlot` (compiled transformers): one fixed-rank slot the adapters are written into, so a switch
  changes numbers, never the graph.
Both keep adapter files read into CPU memory up to a byte budget, least recently used dropped first.
"""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from openveo.core.loras import LoraUse

log = logging.getLogger(__name__)

GPU_SLOTS = 8  # adapters kept loaded in the transformer; more are reloaded from the CPU tier

LocateFn = Callable[[str], Path]  # sha256 → a local file of that adapter
_EXPERTS = ("transformer", "transformer_2")  # Wan 2.2 A14B has two; the others only the first


class AdapterError(RuntimeError):
    """An adapter file that the pipeline cannot load (its layers do not match the transformer)."""


class Adapters:
    def __init__(self, pipe: Any, locate: LocateFn, cpu_budget_bytes: int, gpu_slots: int = GPU_SLOTS):
        self.pipe = pipe
        self.gpu_slots = gpu_slots
        self._files = _CpuTier(locate, cpu_budget_bytes, lambda file: file)
        self._resident: OrderedDict[str, None] = OrderedDict()  # sha256s loaded into the transformer
        self._enabled = False
        # Wan 2.2 A14B: a single-file adapter goes into both experts.
        self._targets = [name for name in _EXPERTS if getattr(pipe, name, None)]

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
        file = self._files.get(sha256)
        try:
            for target in self._targets:
                # diffusers reads an adapter's saved config (its alpha) only from the file itself
                source: Any = str(file.path) if file.metadata else dict(file.tensors)
                self.pipe.load_lora_weights(
                    source,
                    adapter_name=_adapter_name(sha256),
                    load_into_transformer_2=target == "transformer_2",
                )
        except (ValueError, KeyError, RuntimeError) as exc:
            self._drop_partial(sha256)
            raise AdapterError(f"LoRA {sha256[:12]} does not load into this model: {exc}") from exc
        self._resident[sha256] = None
        log.info("LoRA %s loaded in %.2fs", sha256[:12], time.perf_counter() - started)

    def _drop_partial(self, sha256: str) -> None:
        """After a failed load, leave no half-loaded adapter behind in either expert."""
        name = _adapter_name(sha256)
        for target in self._targets:
            module = getattr(self.pipe, target)
            if name in getattr(module, "peft_config", {}):
                module.delete_adapters([name])


class SwapSlot:
    """Adapters for a compiled transformer: one LoRA slot of a fixed rank on every linear layer,
    reserved before the blocks are compiled. A request's adapters are written into it in place,
    side by side along the rank (A stacked, B's columns scaled by each adapter's strength), so the
    compiled graph sees the same parameters whatever it runs and compiles nothing new. Without
    adapters the slot is switched off (PEFT bypasses it: the base model's exact numbers); warm-up
    compiles both graphs.

    The GPU tier is the slot itself (the set it holds costs nothing to run again); the CPU tier
    keeps files read and converted, up to a byte budget.
    """

    NAME = "openveo_slot"

    def __init__(self, pipe: Any, locate: LocateFn, cpu_budget_bytes: int, rank: int):
        self.pipe = pipe
        self.rank = rank
        self._files = _CpuTier(locate, cpu_budget_bytes, lambda file: _by_layer(pipe, file))
        denoisers = [getattr(pipe, n) for n in _EXPERTS if getattr(pipe, n, None)]
        self._denoisers = denoisers
        # Each transformer's slotted layers by name, found once: every switch writes all of them.
        self._slots = [{n: m for n, m in d.named_modules() if _has_slot(m)} for d in denoisers]
        self._holding: tuple[LoraUse, ...] | None = None  # what the slot holds now (None: zeros)
        self._enabled = True  # `reserve` leaves it on; the first generation sets it

    @classmethod
    def reserve(cls, denoisers: list[Any], rank: int) -> None:
        """Put a zero LoRA of `rank` on every linear layer of each transformer; before compiling."""
        from peft import LoraConfig

        for denoiser in denoisers:
            layers = [n for n, m in denoiser.named_modules() if isinstance(m, torch.nn.Linear)]
            config = LoraConfig(r=rank, lora_alpha=rank, target_modules=layers, init_lora_weights=False)
            with warnings.catch_warnings():  # PEFT warns of a second adapter beside any loaded one
                warnings.simplefilter("ignore", UserWarning)
                denoiser.add_adapter(config, adapter_name=cls.NAME)
            for module in filter(_has_slot, denoiser.modules()):
                for part in (module.lora_A[cls.NAME], module.lora_B[cls.NAME]):
                    part.to(denoiser.dtype)
                    torch.nn.init.zeros_(part.weight)
            denoiser.set_adapter(cls.NAME)
        log.info("reserved a rank-%d LoRA slot in %d transformer(s)", rank, len(denoisers))

    @property
    def resident(self) -> list[str]:
        return [use.sha256 for use in self._holding or () if use.scale != 0]

    def activate(self, uses: tuple[LoraUse, ...]) -> None:
        """Make `uses` (and nothing else) the adapters of the next generation. An adapter at scale 0
        adds nothing and is not read: the warm-up uses one to compile the slot's graph."""
        self._enable(bool(uses))
        if not uses or uses == self._holding:
            return
        started = time.perf_counter()
        live = [use for use in uses if use.scale != 0]
        layers = [(use, self._files.get(use.sha256)) for use in live]
        total = sum(_rank(state) for _, state in layers)
        if total > self.rank:
            raise AdapterError(
                f"the adapters' ranks add up to {total}; this worker's compiled slot holds rank {self.rank}"
            )
        self._holding = None  # a failure below leaves the slot unknown: rewritten next time
        for slot in self._slots:
            self._write(slot, layers)
        self._holding = uses
        held = [use.sha256[:12] for use in live]
        log.info("LoRA slot now holds %s (%.2fs)", held, time.perf_counter() - started)

    def _enable(self, on: bool) -> None:
        if on != self._enabled:
            for denoiser in self._denoisers:
                denoiser.enable_adapters() if on else denoiser.disable_adapters()
            self._enabled = on

    def _write(self, slot: dict[str, Any], layers: list[tuple[LoraUse, dict[str, Layer]]]) -> None:
        for _, state in layers:
            if unknown := sorted(set(state) - set(slot)):
                raise AdapterError(f"the adapter targets layers this model has no slot for: {unknown[:3]}")
        with torch.no_grad():
            for name, module in slot.items():
                down, up = module.lora_A[self.NAME].weight, module.lora_B[self.NAME].weight
                down.zero_()
                up.zero_()
                start = 0
                for use, state in layers:
                    if name not in state:
                        continue
                    layer = state[name]
                    end = start + layer.down.shape[0]
                    down[start:end].copy_(layer.down)
                    up[:, start:end].copy_(layer.up * (use.scale * layer.factor))
                    start = end


@dataclass(frozen=True)
class Layer:
    """One linear layer's part of an adapter: the update is factor * up @ down."""

    down: torch.Tensor  # (rank, in)
    up: torch.Tensor  # (out, rank)
    factor: float  # alpha / rank, as the file's metadata sets it (1 where it sets none)


def _by_layer(pipe: Any, file: AdapterFile) -> dict[str, Layer]:
    """An adapter file's tensors by the transformer layer they change, in any key format diffusers
    converts (its own, Wan's original names, musubi's)."""
    converted, _ = pipe.lora_state_dict(dict(file.tensors), return_lora_metadata=True)
    alpha, rank = _alpha(file.metadata)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in converted.items():
        match = re.match(r"^(?:transformer(?:_2)?\.)?(?P<layer>.+)\.lora_(?P<part>[AB])\.weight$", key)
        if match is None:
            raise AdapterError(f"{key!r} is not a LoRA weight a compiled worker can swap in (no bias terms)")
        parts.setdefault(match["layer"], {})[match["part"]] = tensor
    layers = {}
    for name, pair in parts.items():
        if set(pair) != {"A", "B"}:
            raise AdapterError(f"layer {name!r} has only half of its LoRA (A and B go together)")
        down, up = pair["A"], pair["B"]
        factor = 1.0 if alpha is None else alpha / (rank or down.shape[0])
        layers[name] = Layer(down, up, factor)
    return layers


def _alpha(metadata: dict[str, Any] | None) -> tuple[float | None, int | None]:
    """The scaling PEFT would apply: `lora_alpha / r` from an adapter saved with its config (keys
    such as `transformer.lora_alpha`)."""
    if not metadata:
        return None, None
    config = {key.split(".", 1)[-1]: value for key, value in metadata.items()}
    if config.get("alpha_pattern") or config.get("rank_pattern") or config.get("use_dora"):
        raise AdapterError("adapters with per-layer alphas or ranks, or DoRA, cannot go into a compiled slot")
    if config.get("use_rslora"):
        raise AdapterError("rank-stabilised (rsLoRA) adapters cannot go into a compiled slot")
    alpha = config.get("lora_alpha")
    return (None if alpha is None else float(alpha)), config.get("r")


def _rank(state: dict[str, Layer]) -> int:
    return max((layer.down.shape[0] for layer in state.values()), default=0)


def _has_slot(module: torch.nn.Module) -> bool:
    return SwapSlot.NAME in getattr(module, "lora_A", {})


@dataclass(frozen=True)
class AdapterFile:
    path: Path
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any] | None  # diffusers' saved adapter config (`lora_adapter_metadata`)


class _CpuTier:
    """Adapter files read into CPU memory (then converted as the user needs), up to a byte budget."""

    def __init__(self, locate: LocateFn, budget_bytes: int, convert: Callable[[AdapterFile], Any]):
        self.locate = locate
        self.budget_bytes = budget_bytes
        self.convert = convert
        self._held: OrderedDict[str, tuple[Any, int]] = OrderedDict()  # sha256 → (converted, bytes)

    def get(self, sha256: str) -> Any:
        if sha256 in self._held:
            self._held.move_to_end(sha256)
            return self._held[sha256][0]
        path = self.locate(sha256)
        tensors = load_file(path)
        with safe_open(path, framework="pt") as handle:
            raw = (handle.metadata() or {}).get("lora_adapter_metadata")
        converted = self.convert(AdapterFile(path, tensors, json.loads(raw) if raw else None))
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        self._held[sha256] = (converted, size)
        while len(self._held) > 1 and sum(n for _, n in self._held.values()) > self.budget_bytes:
            self._held.popitem(last=False)
        return converted


def _adapter_name(sha256: str) -> str:
    return f"lora_{sha256[:16]}"
