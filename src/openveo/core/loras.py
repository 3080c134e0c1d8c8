"""LoRA adapters as every layer sees them: what an adapter file holds, which presets it fits, and a
request's choice of adapters. No torch: the API reads a file's shape from its safetensors header.

A LoRA adds `scale * B @ A` to some of the transformer's linear layers. Its tensors name the layers
(one of the two key formats diffusers loads, below) and their shapes give the rank (A's rows) and
the width of the transformer it was trained on (A's columns at the first attention's query), so an
adapter for another model is refused before a job is queued, not when its weights fail to load.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from openveo.core.catalog import Backbone, Preset

MAX_LORAS = 4  # adapters per request
SCALE_RANGE = (0.0, 2.0)
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
LORA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# The layer names each format gives a block's first attention query, and the words for A and B.
#   diffusers:  transformer.blocks.0.attn1.to_q.lora_A.weight             (Wan)
#               transformer.transformer_blocks.0.attn1.to_q.lora_A.weight (LTX)
#   original:   diffusion_model.blocks.0.self_attn.q.lora_down.weight     (Wan's own names; LightX2V,
#               ComfyUI and most trainers save these, with lora_down/lora_up or lora_A/lora_B)
_KEY = re.compile(
    r"^(?:(?P<prefix>transformer|transformer_2|diffusion_model|model\.diffusion_model)\.)?"
    r"(?P<blocks>blocks|transformer_blocks)\.(?P<block>\d+)\.(?P<module>.+?)\."
    r"(?P<part>lora_A|lora_B|lora_down|lora_up)(?:\.default)?\.weight$"
)
_QUERY = {"attn1.to_q", "self_attn.q"}


class UnreadableLora(ValueError):
    """The file is not a LoRA this service can load; the message says what is wrong with it."""


@dataclass(frozen=True)
class LoraShape:
    """What an adapter file's tensors say about it."""

    backbone: Backbone  # the transformer it was trained on
    rank: int  # the largest rank of any of its layers
    layers: int  # how many linear layers it changes
    key_format: str  # "diffusers" | "original"


@dataclass(frozen=True)
class Lora:
    """A registered adapter: a name requests use, and the stored file it stands for."""

    name: str
    sha256: str  # of the file; the worker loads exactly this file, whatever the name means later
    size: int  # bytes
    shape: LoraShape
    source: str  # where the operator took it from: a path, or repo/file on the Hugging Face Hub
    model: str | None = None  # only for this preset and the presets built on it (None: by shape)
    problem: str | None = None  # why it cannot be used now (its stored file is gone or damaged)

    def fits(self, preset: Preset) -> bool:
        if self.model is not None and self.model not in (preset.name, preset.base):
            return False
        return self.shape.backbone == preset.backbone


@dataclass(frozen=True)
class LoraUse:
    """One adapter of a request: which file, and how strongly it applies."""

    name: str
    sha256: str
    scale: float = 1.0


def inspect_lora(path: Path) -> LoraShape:
    """Read a safetensors file's header and say what LoRA it is; raises `UnreadableLora`."""
    header = read_header(path)
    family = ""
    dim = 0
    blocks: set[int] = set()
    ranks: list[int] = []
    formats: set[str] = set()
    for key, info in header.items():
        match = _KEY.match(key)
        if match is None or not isinstance(info, dict):
            continue
        shape = info.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) for n in shape)):
            raise UnreadableLora(f"tensor {key} is not a matrix (shape {shape})")
        family = "ltx" if match["blocks"] == "transformer_blocks" else "wan"
        blocks.add(int(match["block"]))
        formats.add("diffusers" if match["part"] in ("lora_A", "lora_B") else "original")
        if match["part"] in ("lora_A", "lora_down"):
            ranks.append(shape[0])
            if match["module"] in _QUERY:
                dim = shape[1]
    if not ranks:
        raise UnreadableLora(
            "holds no LoRA weights of a Wan or LTX transformer (keys like "
            "transformer.blocks.0.attn1.to_q.lora_A.weight or "
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight)"
        )
    if not dim:
        raise UnreadableLora("does not adapt the attention's query layer, so its model cannot be told")
    return LoraShape(
        backbone=Backbone(family, dim, max(blocks) + 1),
        rank=max(ranks),
        layers=len(ranks),
        key_format="+".join(sorted(formats)),
    )


def read_header(path: Path) -> dict[str, object]:
    """The tensor table of a safetensors file, checked against the file's length (a truncated
    download is caught here, not half-way through loading)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            prefix = file.read(8)
            if len(prefix) < 8:
                raise UnreadableLora("is not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", prefix)
            if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
                raise UnreadableLora("is not a safetensors file (bad header length)")
            header = json.loads(file.read(length))
    except FileNotFoundError:
        raise UnreadableLora("does not exist") from None
    except IsADirectoryError:
        raise UnreadableLora("is a directory, not a .safetensors file") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UnreadableLora("is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise UnreadableLora("is not a safetensors file (its header is not a table)")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets)):
            raise UnreadableLora(f"is not a safetensors file (tensor {key} has no data offsets)")
        end = max(end, offsets[1])
    if 8 + length + end != size:
        raise UnreadableLora(f"is truncated or padded: {size} bytes, its header describes {8 + length + end}")
    return {key: value for key, value in header.items() if key != "__metadata__"}
