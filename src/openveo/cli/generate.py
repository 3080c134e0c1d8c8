"""`openveo generate`: one video (or a few) from a prompt, straight to MP4 files, with no server."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from openveo.cli.options import DataDir, err, fail, out, settings_from, setup_logging
from openveo.config import Settings
from openveo.core.catalog import Preset
from openveo.core.request import GenerationRequest, InvalidRequest, Limits, build_request

if TYPE_CHECKING:
    from openveo.engine.engine import Generation
    from openveo.worker.delivery import Delivery

# How the CLI spells each request field, so validation errors name the flag the user typed.
CLI_FLAGS = {
    "prompt": "PROMPT",
    "negative_prompt": "--negative-prompt",
    "model": "--model",
    "seed": "--seed",
    "duration_s": "--duration",
    "aspect_ratio": "--aspect-ratio",
    "num_videos": "--num-videos",
    "image": "--image",
    "last_image": "--last-image",
    "reference_images": "--reference-image",
    "source_video": "--extend",
    "mask": "--mask",
    "mask_mode": "--mask-mode",
    "steps": "--steps",
    "guidance": "--guidance",
}


def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.")],
    model: Annotated[
        str | None, typer.Option(help="Preset or alias; `openveo models list` shows them.")
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            help="Seconds of video, as the model allows (4 to 8; default 5, or the model's one length); "
            "with --extend, the seconds added."
        ),
    ] = None,
    aspect_ratio: Annotated[
        str | None,
        typer.Option(
            help="16:9 (landscape) or 9:16 (portrait); 1:1 where offered. Default 16:9; with --extend or "
            "--edit, the source's (an outpaint's: the mask's)."
        ),
    ] = None,
    seed: Annotated[str, typer.Option(help="-1 draws a random seed, which the summary reports.")] = "-1",
    negative_prompt: Annotated[str | None, typer.Option(help="What to steer away from.")] = None,
    num_videos: Annotated[str, typer.Option(help="1 to 4 videos, seeds SEED, SEED+1, ...")] = "1",
    image: Annotated[
        Path | None, typer.Option(help="First frame for image-to-video (PNG/JPEG/WebP).")
    ] = None,
    last_image: Annotated[
        Path | None,
        typer.Option(
            help="Last frame, after --image (a first-and-last-frame model, e.g. wan2.1-flf2v-14b-720p)."
        ),
    ] = None,
    reference_image: Annotated[
        list[Path] | None,
        typer.Option(
            help="A subject, object or scene the video must show; up to 3, each with its own flag "
            "(a reference-image model, e.g. wan2.1-vace-1.3b)."
        ),
    ] = None,
    extend: Annotated[
        Path | None,
        typer.Option(
            help="An MP4 to continue from its last frames: the output is it with --duration seconds more "
            "(a model that extends, e.g. wan2.1-vace-1.3b)."
        ),
    ] = None,
    edit: Annotated[
        Path | None,
        typer.Option(
            help="An MP4 to remake inside --mask (at most one pass of the model, e.g. 5 s for "
            "wan2.1-vace-1.3b); the output keeps its length."
        ),
    ] = None,
    mask: Annotated[
        Path | None,
        typer.Option(
            help="With --edit: an image whose white region is remade (outpaint: where the video goes)."
        ),
    ] = None,
    mask_mode: Annotated[
        str | None,
        typer.Option(
            help="With --mask: insert (make the prompt's object in the region), remove_static (remove what "
            "is in it) or outpaint (the region is where the video goes; make the rest)."
        ),
    ] = None,
    steps: Annotated[str | None, typer.Option(help="Denoising steps (default: the model's).")] = None,
    guidance: Annotated[str | None, typer.Option(help="Guidance scale (default: the model's).")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="MP4 path (default openveo-SEED.mp4); N>1 adds -1..-N."),
    ] = None,
    thumbnail: Annotated[bool, typer.Option(help="Also write a JPEG thumbnail beside each MP4.")] = False,
    crf: Annotated[
        int | None, typer.Option(min=0, max=51, help="x264 quality, lower is better (default 18).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cuda, cuda:N or cpu.")] = None,
    data_dir: DataDir = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log loading and timing details.")] = False,
) -> None:
    """Generate a video from a prompt and write it as an MP4.

    Example: openveo generate "a red panda riding a skateboard" --model tiny --duration 5 -o panda.mp4
    """
    setup_logging(verbose)
    settings = settings_from(data_dir, device=device, video_crf=crf)
    catalog = settings.catalog()
    fields: dict[str, object] = {
        "prompt": prompt,
        "model": model or settings.model,
        "duration_s": duration,
        "aspect_ratio": aspect_ratio,
        "seed": seed,
        "negative_prompt": negative_prompt,
        "num_videos": num_videos,
        "steps": steps,
        "guidance": guidance,
        "mask_mode": mask_mode,
    }
    if extend is not None and edit is not None:
        raise fail("--extend and --edit each take the source video: give one of them")
    if edit is not None and mask is None:
        raise fail("--edit needs --mask (and --mask-mode): the mask's white region is what is remade")
    flags = {**CLI_FLAGS, "source_video": "--edit"} if edit is not None else CLI_FLAGS
    inputs = (("image", image), ("last_image", last_image), ("source_video", extend or edit), ("mask", mask))
    for name, path in inputs:
        if path is not None:
            fields[name] = _read(path, flags[name])
    if reference_image:
        fields["reference_images"] = [_read(path, CLI_FLAGS["reference_images"]) for path in reference_image]
    if output is not None and output.suffix.lower() != ".mp4":
        raise fail(f"--output must end in .mp4; got {str(output)!r}")
    try:
        limits = Limits(settings.max_prompt_chars, settings.max_image_bytes, settings.max_video_bytes)
        request = build_request(fields, catalog, limits)
    except InvalidRequest as exc:
        raise fail(exc.message(flags.get(exc.field.partition("[")[0]))) from None
    preset = catalog.resolve(request.model)
    if preset.tiny:
        err.print(
            f"[yellow]note:[/] {preset.name} is a tiny random-weight test model: it makes abstract noise."
        )
    paths = _output_paths(output or Path(f"openveo-{request.seed}.mp4"), request.num_videos)
    _run_generation(settings, request, preset, paths, thumbnail)


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise fail(f"{flag} cannot be read: {exc.strerror or exc}") from None


def _output_paths(base: Path, count: int) -> list[Path]:
    if count == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i}{base.suffix}") for i in range(1, count + 1)]


def _run_generation(
    settings: Settings, request: GenerationRequest, preset: Preset, paths: list[Path], thumbnail: bool
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from openveo.core.job import new_job_id
    from openveo.engine.engine import Canceled, Engine
    from openveo.engine.pipelines import quiet_libraries
    from openveo.engine.weights import ModelNotAvailable
    from openveo.worker.delivery import VideoPaths

    quiet_libraries(logging.getLogger().isEnabledFor(logging.INFO))
    delivery = _delivery(settings)
    job_id = new_job_id()  # what the watermark and the manifest name this video by
    engine = Engine(settings, settings.catalog())
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(f"Loading {preset.name}", total=None)
        try:
            engine.load(preset.name)
            loaded_at = time.perf_counter()
            progress.update(
                task, description="Denoising", total=(request.steps or preset.steps) * request.num_videos
            )
            result = engine.generate(
                request,
                on_progress=lambda done, total: progress.update(task, completed=done),
                watermark=delivery.watermark(job_id),
            )
        except ModelNotAvailable as exc:
            raise fail(str(exc), code=3) from None
        except (Canceled, KeyboardInterrupt):
            raise fail("canceled; nothing was written", code=130) from None
        progress.update(task, description="Encoding MP4")
        targets = [VideoPaths(path, path.with_suffix(".jpg") if thumbnail else None) for path in paths]
        result.timings["video_encode"] = delivery.write(result, job_id, targets)

    err.print(_summary(request, result, delivery, job_id, loaded_at - started, time.perf_counter() - started))
    for path in paths:
        out.print(str(path), highlight=False, soft_wrap=True)


def _delivery(settings: Settings) -> Delivery:
    """How the video is written and marked: as the deployment's workers do (its secret lives in the
    database, so `verify` reads this video alike)."""
    from openveo.cli.options import database
    from openveo.service.links import load_secret
    from openveo.service.provenance import open_stamp
    from openveo.worker.delivery import Delivery

    db = database(settings)
    try:
        return Delivery(settings.video_crf, open_stamp(settings, db, load_secret(db, settings.data_dir)))
    finally:
        db.dispose()


def _summary(
    request: GenerationRequest,
    result: Generation,
    delivery: Delivery,
    job_id: str,
    load_s: float,
    total_s: float,
) -> Table:
    preset = result.preset
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_row("model", preset.name + (" (tiny test model)" if preset.tiny else ""))
    summary.add_row(
        "seed", ", ".join(str(s) for s in result.seeds) + (" (random)" if request.seed_was_random else "")
    )
    summary.add_row("size", f"{result.width}x{result.height} ({request.aspect_ratio})")
    summary.add_row(
        "frames", f"{result.num_frames} at {result.fps} fps = {result.num_frames / result.fps:.2f} s"
    )
    summary.add_row("steps", str(result.steps))
    provenance = delivery.provenance(job_id)
    marks = [
        f"watermark (job {job_id[:12]})" if provenance.watermark else "",
        "C2PA signed" if provenance.signed else "",
    ]
    summary.add_row("provenance", ", ".join(m for m in marks if m) or "off")
    summary.add_row("model load", f"{load_s:.2f} s")
    for stage, seconds in result.timings.items():
        summary.add_row(stage.replace("_", " "), f"{seconds:.2f} s")
    summary.add_row("total", f"{total_s:.2f} s")
    return summary
