"""The `openveo` command: one module per command group, composed here so `openveo --help` reads as
this file does. Heavy imports (torch, diffusers, the web server) happen inside the commands."""

from __future__ import annotations

from typing import Annotated

import typer

from openveo import __version__
from openveo.cli import admin, generate, loras, models, server, verify
from openveo.cli.options import out

app = typer.Typer(
    help="openveo: self-hosted, open-model video generation behind the Veo 2 APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"openveo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """openveo: self-hosted, open-model video generation behind the Veo 2 APIs."""


# Making videos
app.command()(generate.generate)
app.add_typer(models.app, name="models")
app.add_typer(loras.app, name="loras")
# Running the service
app.command()(server.serve)
app.command()(server.worker)
app.command()(server.bench)
# Operating it
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.credits_app, name="credits")
app.command()(admin.refusals)
app.command()(admin.status)
app.add_typer(admin.db_app, name="db")
app.command()(verify.verify)


def main() -> None:
    app()
