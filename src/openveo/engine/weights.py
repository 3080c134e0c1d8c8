"""Where a preset's weights are: a local copy, the Hugging Face cache, or nowhere yet. No torch here.

Lookup order: `MODELS_DIR/<preset name>` (a local copy, or the built tiny model), then the
Hugging Face cache for the preset's repo id. Loading itself always goes through diffusers'
`from_pretrained` on whichever of the two was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openveo.core.catalog import Distillation, Preset


class ModelNotAvailable(RuntimeError):
    """The weights are not on this machine; the message says how to get them."""

    def __init__(self, preset: Preset, local_dir: Path, reason: str = "") -> None:
        self.preset = preset
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"Model {preset.name!r} is not available offline{detail}. Fetch it with "
            f"`openveo models download {preset.name}` (Hugging Face repo {preset.repo}), "
            f"or put a diffusers-format copy (with model_index.json) in {local_dir}."
        )


@dataclass(frozen=True)
class WeightsLocation:
    source: str  # what from_pretrained gets: a local folder or a repo id
    local: bool  # True for a folder under the models dir
    present: bool


def local_dir(preset: Preset, models_root: Path) -> Path:
    return models_root / preset.name


def locate(preset: Preset, models_root: Path) -> WeightsLocation:
    folder = local_dir(preset, models_root)
    if (folder / "model_index.json").exists():
        return WeightsLocation(str(folder), local=True, present=True)
    if preset.tiny:  # built on first use, into the models dir
        return WeightsLocation(str(folder), local=True, present=False)
    return WeightsLocation(preset.repo, local=False, present=_in_hf_cache(preset.repo))


def distillation_file(preset: Preset, lora: Distillation, models_root: Path, *, allow_download: bool) -> Path:
    """The distillation LoRA's file: built offline for a tiny preset, else from the Hugging Face
    cache (fetched when downloads are allowed). Raises `ModelNotAvailable`."""
    if lora.repo == "tiny":
        return local_dir(preset, models_root) / "distillation" / lora.file
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(lora.repo, lora.file, local_files_only=not allow_download))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        reason = f"distillation LoRA {lora.repo}/{lora.file} not found ({str(exc).splitlines()[0]})"
        raise ModelNotAvailable(preset, local_dir(preset, models_root), reason) from exc


def _in_hf_cache(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "model_index.json")
    return isinstance(found, str)
