"""What every command shares: the consoles, the options that recur (data dir, database, model,
storage), settings from flags, failing with a clear message, and the database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from openveo.config import Settings

if TYPE_CHECKING:
    from openveo.store.db import Database

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="OPENVEO_DATA_DIR", help="Data directory (default ~/.openveo)."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="OPENVEO_DATABASE_URL", help="Default: SQLite in the data dir."),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        envvar="OPENVEO_MODEL",
        help="Model the workers load; protocol names (veo-2, ...) point at it. `tiny` runs offline.",
    ),
]
Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="OPENVEO_STORAGE",
        help="Where results go: s3://BUCKET/PREFIX on any S3-compatible store (set OPENVEO_S3_ENDPOINT_URL "
        "for MinIO and other non-AWS stores) or a directory. Default: DATA_DIR/results.",
    ),
]
Device = Annotated[str | None, typer.Option(envvar="OPENVEO_DEVICE", help="auto, cuda, cuda:N or cpu.")]


def settings_from(data_dir: Path | None, **overrides: object) -> Settings:
    """The settings, with the flags the user gave (None: not given) over the environment's."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)  # type: ignore[arg-type]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print the error and return the exit to raise."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def setup_logging(verbose: bool, log_format: str = "text") -> None:
    from openveo import logs

    logs.setup(verbose, log_format)


def check_model(settings: Settings) -> None:
    """Refuse at start a --model (or alias) that names nothing."""
    try:
        settings.catalog()
    except (ValueError, LookupError) as exc:
        raise fail(f"--model: {exc}") from None


def database(settings: Settings) -> Database:
    """The deployment's database, migrated to the newest schema."""
    from openveo.store.db import Database

    db = Database(settings.db_url)
    db.upgrade()
    return db


def when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))
