"""`openveo models`: the presets openveo can run, and fetching their weights."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from openveo.cli.options import DataDir, err, fail, out, settings_from, setup_logging
from openveo.core.catalog import Capability

app = typer.Typer(help="List and download the models openveo can run.", no_args_is_help=True)


@app.command("list")
def models_list(data_dir: DataDir = None) -> None:
    """Show every preset: native sizes, fps, frames for 4-8 s, price, and whether its weights are here."""
    from openveo.engine.weights import locate

    settings = settings_from(data_dir)
    catalog = settings.catalog()
    table = Table(title="openveo models")
    for column in ("name", "modes", "sizes (w x h)", "fps", "frames 4-8 s", "steps", "credits/s", "weights"):
        table.add_column(column)
    for preset in catalog.presets.values():
        where = locate(preset, settings.model_root)
        weights = "present" if where.present else "built on first use" if preset.tiny else "missing"
        sizes = ", ".join(f"{a} {w}x{h}" for a, (w, h) in preset.sizes.items())
        frames = "-".join(str(preset.frames_for(d)) for d in (preset.durations[0], preset.durations[-1]))
        modes = ", ".join(  # the ones it cannot run without are starred
            f"{c}{'*' if c in preset.requires else ''}" for c in Capability if c in preset.capabilities
        )
        table.add_row(
            preset.name + (" (test)" if preset.tiny else ""),
            modes,
            sizes,
            str(preset.fps),
            frames,
            str(preset.steps),
            f"{preset.price_per_second:g}",
            weights,
        )
    out.print(table)
    out.print("modes: * = required (an image-to-video model needs its image)", highlight=False)
    aliases = ", ".join(f"{a} → {t}" for a, t in sorted(catalog.aliases.items()))
    out.print(f"aliases: {aliases}", highlight=False)
    out.print(f"local copies go in {settings.model_root}/<name>", highlight=False)


@app.command("download")
def models_download(
    name: Annotated[str, typer.Argument(help="Preset name or alias.")],
    data_dir: DataDir = None,
) -> None:
    """Fetch a model's diffusers weights, and a fast preset's distillation LoRAs, into the Hugging Face
    cache (tiny models are built locally)."""
    setup_logging(False)
    settings = settings_from(data_dir)
    try:
        preset = settings.catalog().resolve(name)
    except LookupError as exc:
        raise fail(str(exc)) from None
    if preset.tiny:
        from openveo.engine.tiny import ensure_tiny
        from openveo.engine.weights import local_dir

        path = ensure_tiny(preset.repo, local_dir(preset, settings.model_root))
        out.print(f"{preset.name} built at {path}", highlight=False)
        return
    from diffusers import DiffusionPipeline

    err.print(f"Downloading {preset.repo} (only the diffusers-format files) ...")
    try:
        path = DiffusionPipeline.download(preset.repo)
    except Exception as exc:  # network, auth, disk: say which, in one line
        raise fail(f"download of {preset.repo} failed: {str(exc).splitlines()[0]}", code=3) from None
    for lora in preset.distillation:  # a fast preset's distillation LoRAs, beside its base weights
        from huggingface_hub import hf_hub_download

        err.print(f"Downloading {lora.file} from {lora.repo} (rank {lora.rank}, into {lora.into}) ...")
        try:
            hf_hub_download(lora.repo, lora.file)
        except Exception as exc:
            reason = str(exc).splitlines()[0]
            raise fail(f"download of {lora.repo}/{lora.file} failed: {reason}", code=3) from None
    out.print(f"{preset.name} ready at {path}", highlight=False)
