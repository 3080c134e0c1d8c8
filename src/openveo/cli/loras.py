"""`openveo loras`: the LoRA adapters requests may name. The operator adds them from a file or the
Hugging Face Hub; a request only ever names one (docs/loras.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from openveo.cli.options import DatabaseUrl, DataDir, Storage, err, fail, out, settings_from
from openveo.config import Settings

app = typer.Typer(help="Register, list and remove the LoRA adapters requests may use.", no_args_is_help=True)


def _registry(settings: Settings):
    from openveo.service.loras import LoraRegistry
    from openveo.service.runtime import result_store
    from openveo.store.db import Database

    db = Database(settings.db_url)
    db.upgrade()
    return LoraRegistry(db, result_store(settings), settings.catalog(), settings.staging_dir)


@app.command("add")
def loras_add(
    name: Annotated[str, typer.Argument(help="The name requests use, e.g. 'anime-style'.")],
    source: Annotated[
        str, typer.Argument(help="A .safetensors file, or a Hugging Face repo id (then give --file).")
    ],
    file: Annotated[
        str | None, typer.Option("--file", help="The file inside the Hub repo, e.g. loras/style.safetensors.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Only for this preset (and the fast presets built on it). Without it, the adapter "
            "serves every preset whose transformer has its shape.",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    storage: Storage = None,
    data_dir: DataDir = None,
) -> None:
    """Check an adapter file, copy it into the result store (where every worker finds it) and register
    it under NAME. A wrong shape, a broken file or a name in use is refused with the reason."""
    from openveo.service.loras import LoraRefused

    settings = settings_from(data_dir, database_url=database_url, storage=storage)
    path = Path(source).expanduser()
    if not path.exists():
        if "/" not in source or file is None:
            raise fail(f"{source} is no file here; for a Hugging Face repo, give the file with --file")
        path = _download(source, file)
        source = f"{source}/{file}"
    try:
        lora = _registry(settings).add(name, path, source=source, model=model)
    except LoraRefused as exc:
        raise fail(str(exc)) from None
    out.print(
        f"{lora.name}: rank {lora.shape.rank}, {lora.shape.layers} layers, "
        f"{lora.shape.key_format} keys, {lora.size / 2**20:.1f} MiB",
        highlight=False,
    )


def _download(repo: str, file: str) -> Path:
    from huggingface_hub import hf_hub_download

    err.print(f"Downloading {file} from {repo} ...")
    try:
        return Path(hf_hub_download(repo, file))
    except Exception as exc:  # network, auth, no such file: say which, in one line
        raise fail(f"download of {repo}/{file} failed: {str(exc).splitlines()[0]}", code=3) from None


@app.command("list")
def loras_list(database_url: DatabaseUrl = None, storage: Storage = None, data_dir: DataDir = None) -> None:
    """Every registered adapter: its rank, the presets it fits, and where it came from."""
    settings = settings_from(data_dir, database_url=database_url, storage=storage)
    registry = _registry(settings)
    table = Table("name", "rank", "fits", "source", "sha256")
    for lora in registry.all().values():
        fits = [p.name for p in registry.catalog.presets.values() if lora.fits(p)]
        table.add_row(lora.name, str(lora.shape.rank), ", ".join(fits), lora.source, lora.sha256[:12])
    out.print(table)


@app.command("remove")
def loras_remove(
    name: Annotated[str, typer.Argument(help="The adapter's name.")],
    database_url: DatabaseUrl = None,
    storage: Storage = None,
    data_dir: DataDir = None,
) -> None:
    """Unregister an adapter and delete its stored file. Queued jobs that use it fail, refunded."""
    settings = settings_from(data_dir, database_url=database_url, storage=storage)
    if not _registry(settings).remove(name):
        raise fail(f"no adapter named {name!r}")
    out.print(f"{name} removed", highlight=False)
