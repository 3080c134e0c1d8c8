"""The `openveo` command. Heavy imports (torch, diffusers) happen inside the commands that need them."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from openveo import __version__
from openveo.config import Settings
from openveo.engine.catalog import Catalog, Preset
from openveo.service.requests import GenerationRequest, InvalidRequest, Limits, build_request

app = typer.Typer(
    help="openveo: self-hosted, open-model video generation behind the Veo 2 APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List and download the models openveo can run.", no_args_is_help=True)
app.add_typer(models_app, name="models")
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
credits_app = typer.Typer(help="Add credits to a key and show its balance.", no_args_is_help=True)
app.add_typer(credits_app, name="credits")
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

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
    "steps": "--steps",
    "guidance": "--guidance",
}

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="OPENVEO_DATA_DIR", help="Data directory (default ~/.openveo)."),
]


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def _catalog(settings: Settings) -> Catalog:
    return settings.catalog()


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    from openveo import logs

    logs.setup(verbose, log_format)


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


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.")],
    model: Annotated[
        str | None, typer.Option(help="Preset or alias; `openveo models list` shows them.")
    ] = None,
    duration: Annotated[str, typer.Option(help="Seconds of video: 5, 6, 7 or 8.")] = "5",
    aspect_ratio: Annotated[
        str, typer.Option(help="16:9 (landscape) or 9:16 (portrait); 1:1 where offered.")
    ] = "16:9",
    seed: Annotated[str, typer.Option(help="-1 draws a random seed, which the summary reports.")] = "-1",
    negative_prompt: Annotated[str | None, typer.Option(help="What to steer away from.")] = None,
    num_videos: Annotated[str, typer.Option(help="1 to 4 videos, seeds SEED, SEED+1, ...")] = "1",
    image: Annotated[
        Path | None, typer.Option(help="First frame for image-to-video (PNG/JPEG/WebP).")
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
    _setup_logging(verbose)
    settings = _settings(data_dir, device=device, video_crf=crf)
    catalog = _catalog(settings)
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
    }
    if image is not None:
        try:
            fields["image"] = image.read_bytes()
        except OSError as exc:
            raise _fail(f"--image cannot be read: {exc.strerror or exc}") from None
    if output is not None and output.suffix.lower() != ".mp4":
        raise _fail(f"--output must end in .mp4; got {str(output)!r}")
    try:
        request = build_request(fields, catalog, Limits(settings.max_prompt_chars, settings.max_image_bytes))
    except InvalidRequest as exc:
        raise _fail(exc.message(CLI_FLAGS.get(exc.field))) from None
    preset = catalog.resolve(request.model)
    if preset.tiny:
        err.print(
            f"[yellow]note:[/] {preset.name} is a tiny random-weight test model: it makes abstract noise."
        )
    paths = _output_paths(output or Path(f"openveo-{request.seed}.mp4"), request.num_videos)
    _run_generation(settings, catalog, request, preset, paths, thumbnail)


def _output_paths(base: Path, count: int) -> list[Path]:
    if count == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i}{base.suffix}") for i in range(1, count + 1)]


def _run_generation(
    settings: Settings,
    catalog: Catalog,
    request: GenerationRequest,
    preset: Preset,
    paths: list[Path],
    thumbnail: bool,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from openveo.engine.engine import Canceled, Engine
    from openveo.engine.pipelines import quiet_libraries
    from openveo.engine.video import video_metadata, write_mp4, write_thumbnail
    from openveo.engine.weights import ModelNotAvailable
    from openveo.service.jobs import new_job_id

    quiet_libraries(logging.getLogger().isEnabledFor(logging.INFO))
    stamp = _stamp(settings)
    job_id = new_job_id()  # what the watermark and the manifest name this video by
    watermark = stamp.watermark(job_id)
    engine = Engine(settings, catalog)
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
                watermark=watermark,
            )
        except ModelNotAvailable as exc:
            raise _fail(str(exc), code=3) from None
        except (Canceled, KeyboardInterrupt):
            raise _fail("canceled; nothing was written", code=130) from None
        progress.update(task, description="Encoding MP4")
        encode_started = time.perf_counter()
        for path, video, seed in zip(paths, result.videos, result.seeds, strict=True):
            write_mp4(
                video, path, result.fps, crf=settings.video_crf, metadata=video_metadata(preset.name, seed)
            )
            stamp.sign(path, model=preset.name, seed=seed, job_id=job_id)
            if thumbnail:
                write_thumbnail(video, path.with_suffix(".jpg"))
        result.timings["video_encode"] = time.perf_counter() - encode_started

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
    marks = [
        f"watermark (job {job_id[:12]})" if watermark else "",
        "C2PA signed" if stamp.credentials else "",
    ]
    summary.add_row("provenance", ", ".join(m for m in marks if m) or "off")
    summary.add_row("model load", f"{loaded_at - started:.2f} s")
    for stage, seconds in result.timings.items():
        summary.add_row(stage.replace("_", " "), f"{seconds:.2f} s")
    summary.add_row("total", f"{time.perf_counter() - started:.2f} s")
    err.print(summary)
    for path in paths:
        out.print(str(path), highlight=False, soft_wrap=True)


@models_app.command("list")
def models_list(data_dir: DataDir = None) -> None:
    """Show every preset: native sizes, fps, frames for 5-8 s, price, and whether its weights are here."""
    from openveo.engine.weights import locate

    settings = _settings(data_dir)
    catalog = _catalog(settings)
    table = Table(title="openveo models")
    for column in ("name", "modes", "sizes (w x h)", "fps", "frames 5-8 s", "steps", "credits/s", "weights"):
        table.add_column(column)
    for preset in catalog.presets.values():
        where = locate(preset, settings.model_root)
        weights = "present" if where.present else "built on first use" if preset.tiny else "missing"
        sizes = ", ".join(f"{a} {w}x{h}" for a, (w, h) in preset.sizes.items())
        frames = "-".join(str(preset.frames_for(d)) for d in (preset.durations[0], preset.durations[-1]))
        modes = "text, image" if preset.supports_image else "text"
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
    aliases = ", ".join(f"{a} → {t}" for a, t in sorted(catalog.aliases.items()))
    out.print(f"aliases: {aliases}", highlight=False)
    out.print(f"local copies go in {settings.model_root}/<name>", highlight=False)


@models_app.command("download")
def models_download(
    name: Annotated[str, typer.Argument(help="Preset name or alias.")],
    data_dir: DataDir = None,
) -> None:
    """Fetch a model's diffusers weights into the Hugging Face cache (tiny models are built locally)."""
    _setup_logging(False)
    settings = _settings(data_dir)
    catalog = _catalog(settings)
    try:
        preset = catalog.resolve(name)
    except LookupError as exc:
        raise _fail(str(exc)) from None
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
        raise _fail(f"download of {preset.repo} failed: {str(exc).splitlines()[0]}", code=3) from None
    out.print(f"{preset.name} ready at {path}", highlight=False)


Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        envvar="OPENVEO_MODEL",
        help="Model the workers load; protocol names (veo-2, ...) point at it. `tiny` runs offline.",
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="OPENVEO_DATABASE_URL", help="Default: SQLite in the data dir."),
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


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(envvar="OPENVEO_HOST", help="Listen address (default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(envvar="OPENVEO_PORT", help="Listen port (default 8000).")
    ] = None,
    model: Model = None,
    workers: Annotated[
        int | None,
        typer.Option(
            envvar="OPENVEO_WORKERS",
            min=0,
            help="Worker processes (default: one per GPU, else one; 0: API only).",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    storage: Storage = None,
    data_dir: DataDir = None,
) -> None:
    """Run the API server (Segmind, Google, OpenAI and the native job API) and its workers. Stop with
    Ctrl-C: running jobs go back to the queue and run after the next start."""
    from openveo import serve as serving
    from openveo.store.blobs import StorageUnavailable

    settings = _settings(
        data_dir,
        host=host,
        port=port,
        model=model,
        workers=workers,
        database_url=database_url,
        storage=storage,
    )
    _setup_logging(True, settings.log_format)
    _check_model(settings)
    try:
        serving.run(settings, settings.workers)
    except StorageUnavailable as exc:
        raise _fail(f"--storage: {exc}", code=3) from None


@app.command()
def worker(
    model: Model = None,
    database_url: DatabaseUrl = None,
    storage: Storage = None,
    device: Annotated[
        str | None, typer.Option(envvar="OPENVEO_DEVICE", help="auto, cuda, cuda:N or cpu.")
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            help="Run one worker per listed GPU, e.g. 0,1, each seeing only its own GPU (so --device "
            "cuda means that one)."
        ),
    ] = None,
    gpus_per_video: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar="OPENVEO_GPUS_PER_VIDEO",
            help="GPUs that make each video together (CFG-parallel, then context-parallel): --gpus 0,1,2,3 "
            "--gpus-per-video 2 runs two workers of two GPUs. Without GPUs: that many CPU processes.",
        ),
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations first.")] = True,
    data_dir: DataDir = None,
) -> None:
    """Run a worker on this machine against the shared database and result store: load the model once,
    then claim and run queued jobs for it, one at a time. SIGTERM finishes the current job and exits;
    Ctrl-C gives it back to the queue at once."""
    import os

    from openveo.engine.weights import ModelNotAvailable
    from openveo.store.blobs import StorageUnavailable

    settings = _settings(
        data_dir,
        model=model,
        database_url=database_url,
        device=device,
        storage=storage,
        gpus_per_video=gpus_per_video,
    )
    _setup_logging(True, settings.log_format)
    _check_model(settings)
    in_group = "WORLD_SIZE" in os.environ  # one process of a group a supervisor (or torchrun) started
    try:
        if gpus is not None or (settings.gpus_per_video > 1 and not in_group):
            from openveo.serve import run_workers, visible_gpus

            listed = [g.strip() for g in gpus.split(",") if g.strip()] if gpus is not None else visible_gpus()
            if gpus is not None and (not listed or not all(g.isdigit() for g in listed)):
                raise _fail(f"--gpus: expected GPU indices like 0,1, not {gpus!r}")
            if listed and len(listed) % settings.gpus_per_video:
                raise _fail(
                    f"--gpus-per-video {settings.gpus_per_video} does not divide the {len(listed)} GPUs"
                )
            run_workers(settings, listed, migrate=migrate)
        else:
            from openveo.worker.main import run_worker

            run_worker(settings, migrate=migrate)
    except ModelNotAvailable as exc:
        raise _fail(str(exc), code=3) from None
    except StorageUnavailable as exc:
        raise _fail(f"--storage: {exc}", code=3) from None


@app.command()
def bench(
    arch: Annotated[
        list[str] | None,
        typer.Option(
            "--arch",
            help="Architecture to measure (repeatable): wan2.1-t2v-1.3b, wan2.2-ti2v-5b, wan2.1-t2v-14b, "
            "or the CPU-sized tiny-wan2.1 / tiny-wan2.2. Default: the three full-size ones.",
        ),
    ] = None,
    tiny: Annotated[bool, typer.Option(help="Measure the tiny architectures (runs on a CPU).")] = False,
    steps: Annotated[int | None, typer.Option(min=1, help="Denoising steps (default 50; tiny: 4).")] = None,
    modes: Annotated[
        str, typer.Option(help="Runs after baseline and openveo: first-block, taylorseer, fp8 (comma list).")
    ] = "first-block,taylorseer,fp8",
    out_dir: Annotated[Path, typer.Option("--out", help="Where the JSON and markdown go.")] = Path(
        "bench/results"
    ),
    device: Annotated[str | None, typer.Option(envvar="OPENVEO_DEVICE", help="auto, cuda, cpu.")] = None,
) -> None:
    """Benchmark the engine: plain diffusers (bf16, default attention, no compile) against openveo on
    the same random-weight full-size network and seed. Reports per-stage seconds, seconds per step,
    peak GPU memory and PSNR of openveo's frames against the baseline's, then the opt-in modes.
    Speed settings (OPENVEO_ATTENTION, OPENVEO_COMPILE, ...) apply to the openveo runs."""
    from rich.progress import Progress

    from openveo.engine.benchmark import ARCHITECTURES, MODES, TINY, benchmark, write_results
    from openveo.engine.pipelines import quiet_libraries

    known = [*ARCHITECTURES, *TINY]
    chosen = arch or (list(TINY) if tiny else list(ARCHITECTURES))
    for name in chosen:
        if name not in known:
            raise _fail(f"--arch: unknown architecture {name!r}; choose from {', '.join(known)}")
    chosen_modes = tuple(m.strip() for m in modes.split(",") if m.strip())
    for mode in chosen_modes:
        if mode not in MODES:
            raise _fail(f"--modes: unknown mode {mode!r}; choose from {', '.join(MODES[1:])}")
    settings = _settings(None, device=device)
    _setup_logging(False, settings.log_format)
    quiet_libraries()
    runs_per_case = 2 + len(chosen_modes)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("benchmark", total=len(chosen) * runs_per_case)

        def on_run(name: str, run) -> None:
            progress.advance(task)
            detail = f"skipped ({run.skipped})" if run.skipped else f"{run.seconds['end_to_end']:.2f}s"
            psnr = "" if run.psnr_db is None else f", PSNR {run.psnr_db} dB"
            err.print(f"{name} {run.mode}: {detail}{psnr}")

        results = benchmark(chosen, settings, modes=chosen_modes, steps=steps, on_run=on_run)
    json_path, md_path = write_results(results, out_dir)
    out.print(md_path.read_text(), markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {json_path} and {md_path}", soft_wrap=True)


def _check_model(settings: Settings) -> None:
    try:
        settings.catalog()
    except (ValueError, LookupError) as exc:
        raise _fail(f"--model: {exc}") from None


def _stamp(settings: Settings):
    """The deployment's provenance (its secret lives in the database, so `verify` reads alike)."""
    from openveo.provenance.stamp import open_stamp
    from openveo.service.links import load_secret

    db = _database(settings)
    try:
        return open_stamp(settings, db, load_secret(db, settings.data_dir))
    finally:
        db.dispose()


def _database(settings: Settings):
    from openveo.store.db import Database

    db = Database(settings.db_url)
    db.upgrade()
    return db


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    credits: Annotated[float, typer.Option(min=0, help="Starting balance.")] = 0.0,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Make a key. Its secret is printed once, as the last line of stdout; only a hash is stored."""
    from openveo.service.billing import credits_text
    from openveo.service.keys import create_key

    key, secret = create_key(_database(_settings(data_dir, database_url=database_url)), name, credits)
    err.print(
        f"key {key.id} ({key.name}) with {credits_text(key.balance)} credits; store the secret now:",
        highlight=False,
    )
    out.print(secret, highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Every key: id, name, prefix, balance, created, revoked."""
    from openveo.service.billing import credits_text
    from openveo.service.keys import list_keys

    table = Table("id", "name", "prefix", "credits", "created", "status")
    for key in list_keys(_database(_settings(data_dir, database_url=database_url))):
        status = "revoked " + _when(key.revoked_at) if key.revoked_at else "active"
        table.add_row(
            str(key.id), key.name, key.prefix + "…", credits_text(key.balance), _when(key.created_at), status
        )
    out.print(table)


@app.command()
def refusals(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    key: Annotated[int | None, typer.Option(help="Only this key's (its id).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as a JSON array.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Prompts the content policy refused, on every API server of the deployment: when, which key,
    protocol and model, which rule (terms, patterns, people, moderation), why, and the prompt."""
    import dataclasses
    import json

    from openveo.service.refusals import recent

    found = recent(_database(_settings(data_dir, database_url=database_url)), limit=limit, key_id=key)
    if as_json:
        out.print_json(json.dumps([dataclasses.asdict(refusal) for refusal in found]))
        return
    table = Table("when", "key", "protocol", "model", "rule", "reason", "prompt")
    for refusal in found:
        table.add_row(
            _when(refusal.created_at),
            str(refusal.key_id),
            refusal.protocol,
            refusal.model,
            refusal.source,
            refusal.reason,
            refusal.prompt[:80],
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key itself, its id or its prefix.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Revoke a key: it is refused from now on. Its history stays."""
    from openveo.service.keys import KeyNotFound, revoke_key

    try:
        revoked = revoke_key(_database(_settings(data_dir, database_url=database_url)), key)
    except KeyNotFound as exc:
        raise _fail(str(exc)) from None
    out.print(f"revoked key {revoked.id} ({revoked.name})", highlight=False)


@credits_app.command("add")
def credits_add(
    key: Annotated[str, typer.Argument(help="The key itself, its id or its prefix.")],
    amount: Annotated[
        float,
        typer.Argument(help="Credits to add; to take some away: `credits add KEY -- -5` (never below 0)."),
    ],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Add credits to a key; prints the new balance."""
    from openveo.service.billing import InsufficientCredits, credits_text
    from openveo.service.keys import KeyNotFound, add_credits

    try:
        updated = add_credits(_database(_settings(data_dir, database_url=database_url)), key, amount)
    except (KeyNotFound, InsufficientCredits) as exc:
        raise _fail(str(exc)) from None
    out.print(credits_text(updated.balance), highlight=False)


@credits_app.command("show")
def credits_show(
    key: Annotated[str, typer.Argument(help="The key itself, its id or its prefix.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print a key's balance."""
    from openveo.service.billing import credits_text
    from openveo.service.keys import KeyNotFound, show_key

    try:
        shown = show_key(_database(_settings(data_dir, database_url=database_url)), key)
    except KeyNotFound as exc:
        raise _fail(str(exc)) from None
    out.print(credits_text(shown.balance), highlight=False)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Workers (live or gone), queued jobs per model, and recent failures."""
    import json

    from openveo.service.workers import WorkerRegistry

    report = WorkerRegistry(_database(_settings(data_dir, database_url=database_url))).status()
    if as_json:
        out.print_json(json.dumps(report))
        return
    now = time.time()
    table = Table("worker", "models", "device", "state", "job", "last beat", title="Workers")
    for worker in report["workers"]:
        state = worker["state"] if worker["live"] else f"gone ({worker['state']})"
        table.add_row(
            worker["id"],
            ", ".join(worker["models"]),
            worker["device"],
            state,
            worker["current_job"] or "",
            f"{now - worker['heartbeat_at']:.0f} s ago",
        )
    out.print(table)
    queue = Table("model", "queued", title="Queue")
    for model, count in sorted(report["queue"].items()):
        note = "  (no live worker serves it)" if model in report["waiting_without_worker"] else ""
        queue.add_row(model, f"{count}{note}")
    out.print(queue)
    failures = Table("job", "model", "error", "when", title="Recent failures")
    for failure in report["recent_failures"]:
        failures.add_row(
            failure["id"], failure["model"], failure["error"] or "", _when(failure["finished_at"])
        )
    out.print(failures)


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="The video to check (MP4 or anything FFmpeg reads).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Was this video made by this openveo deployment? Checks its signed C2PA manifest and looks for
    the invisible watermark (which survives re-encoding, downscaling and cropping, where the manifest
    does not). Exit status: 0 made by openveo, 1 no sign of openveo, 2 not readable."""
    import json

    from openveo.provenance.verify import NotAVideo, open_verifier, stored_original
    from openveo.service.jobs import Jobs
    from openveo.service.links import load_secret
    from openveo.service.runtime import result_store

    if not file.is_file():
        raise _fail(f"no such file: {file}")
    settings = _settings(data_dir, database_url=database_url)
    db = _database(settings)
    jobs = Jobs(db)

    def find_job(prefix: str) -> dict | None:
        job = jobs.by_prefix(prefix)
        return job and {
            "id": job.id,
            "key_id": job.key_id,
            "model": job.model,
            "created": _when(job.created_at),
        }

    original = stored_original(jobs, result_store(settings, check=False))  # read only if needed
    try:
        verifier = open_verifier(settings, db, load_secret(db, settings.data_dir), find_job, original)
        report = verifier.verify(file)
    except NotAVideo as exc:
        raise _fail(str(exc)) from None
    finally:
        db.dispose()
    if as_json:
        out.print_json(json.dumps(report))
    else:
        out.print(_verify_table(report))
    raise typer.Exit(0 if report["made_by_openveo"] else 1)


def _verify_table(report: dict) -> Table:
    manifest, mark = report["manifest"], report["watermark"]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("file", report["file"])
    if not manifest["present"]:
        table.add_row("manifest", "none (no C2PA manifest; re-encoding or editing removes it)")
    else:
        table.add_row("manifest", _manifest_facts(manifest))
        for problem in manifest["problems"]:
            table.add_row("", f"problem: {problem}")
    if mark["found"] and mark["payload"] is None:
        table.add_row("watermark", "found, but too damaged to read whose it is")
    elif mark["found"]:
        where = "this deployment" if mark["this_deployment"] else f"another deployment ({mark['server']})"
        job = mark.get("job")
        found = f"found: {where}, job {job['id'] if job else mark['job_id_prefix'] + '...'}"
        if job:
            found += f" (key {job['key_id']}, {job['model']}, {job['created']})"
        table.add_row("watermark", found)
    else:
        table.add_row("watermark", "not found")
    table.add_row("", f"confidence {mark['confidence']:.3f}, p-value {mark['p_value']:.2g}")
    if recovered := report.get("recovered_manifest"):
        binding = (
            "its soft binding names this watermark" if recovered["binds_this_video"] else "NOT bound to it"
        )
        table.add_row("original", f"the job's stored video: {_manifest_facts(recovered)}; {binding}")
    table.add_row("verdict", "made by openveo" if report["made_by_openveo"] else "no sign of openveo")
    return table


def _manifest_facts(manifest: dict) -> str:
    trust = (
        "trusted"
        if manifest["trusted"]
        else "valid, signer not trusted here"
        if manifest["valid"]
        else "INVALID"
    )
    facts = [trust, f"signed by {manifest['signer']} ({manifest['issuer']})"]
    if manifest["ai_generated"]:
        facts.append("AI-generated (trainedAlgorithmicMedia)")
    if generation := manifest["generation"]:
        facts.append(f"model {generation.get('model')}, job {generation.get('job_id')}")
    return "; ".join(facts)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Apply migrations up to the newest (serve and worker do this at start too)."""
    settings = _settings(data_dir, database_url=database_url)
    _database(settings).dispose()
    out.print(f"database at {settings.db_url} is up to date", highlight=False)


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
