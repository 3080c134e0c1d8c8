"""`openveo serve`, `openveo worker` and `openveo bench`: the long-running service, a worker on its
own (or one per GPU), and the engine benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from openveo.cli.options import (
    DatabaseUrl,
    DataDir,
    Device,
    Model,
    Storage,
    check_model,
    err,
    fail,
    out,
    settings_from,
    setup_logging,
)

if TYPE_CHECKING:
    from openveo.bench.engine import Run


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

    settings = settings_from(
        data_dir,
        host=host,
        port=port,
        model=model,
        workers=workers,
        database_url=database_url,
        storage=storage,
    )
    setup_logging(True, settings.log_format)
    check_model(settings)
    try:
        serving.run(settings, settings.workers)
    except StorageUnavailable as exc:
        raise fail(f"--storage: {exc}", code=3) from None


def worker(
    model: Model = None,
    database_url: DatabaseUrl = None,
    storage: Storage = None,
    device: Device = None,
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
            "--gpus-per-video 2 runs two workers of two GPUs. Without GPUs: two CPU processes split the "
            "guidance (context parallelism needs GPUs).",
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

    settings = settings_from(
        data_dir,
        model=model,
        database_url=database_url,
        device=device,
        storage=storage,
        gpus_per_video=gpus_per_video,
    )
    setup_logging(True, settings.log_format)
    check_model(settings)
    in_group = "WORLD_SIZE" in os.environ  # one process of a group a supervisor (or torchrun) started
    try:
        if gpus is not None or (settings.gpus_per_video > 1 and not in_group):
            from openveo.serve import run_workers, visible_gpus

            listed = [g.strip() for g in gpus.split(",") if g.strip()] if gpus is not None else visible_gpus()
            if gpus is not None and (not listed or not all(g.isdigit() for g in listed)):
                raise fail(f"--gpus: expected GPU indices like 0,1, not {gpus!r}")
            if listed and len(listed) % settings.gpus_per_video:
                raise fail(
                    f"--gpus-per-video {settings.gpus_per_video} does not divide the {len(listed)} GPUs"
                )
            run_workers(settings, listed, migrate=migrate)
        else:
            from openveo.worker.main import run_worker

            run_worker(settings, migrate=migrate)
    except ModelNotAvailable as exc:
        raise fail(str(exc), code=3) from None
    except StorageUnavailable as exc:
        raise fail(f"--storage: {exc}", code=3) from None


def bench(
    arch: Annotated[
        list[str] | None,
        typer.Option(
            "--arch",
            help="Architecture to measure (repeatable), each the network of its catalog preset and "
            "fast preset: wan2.1-t2v-1.3b, wan2.2-ti2v-5b, wan2.1-t2v-14b, wan2.2-t2v-a14b (two experts), "
            "wan2.1-i2v-14b-480p (CLIP image encoder), wan2.2-i2v-a14b, or the CPU-sized tiny-wan2.1, "
            "tiny-wan2.2, tiny-wan2.1-i2v, tiny-wan2.2-a14b. Default: every full-size one.",
        ),
    ] = None,
    tiny: Annotated[bool, typer.Option(help="Measure the tiny architectures (runs on a CPU).")] = False,
    steps: Annotated[
        int | None, typer.Option(min=1, help="Denoising steps (default: the preset's, 40 or 50; tiny: 4).")
    ] = None,
    modes: Annotated[
        str,
        typer.Option(
            help="Runs after baseline and openveo (comma list): first-block, taylorseer, fast (the fast "
            "tier's 4-step unguided sampling on the same network), fast+lora (the same with a random "
            "rank-64 request LoRA on every block linear), fp8."
        ),
    ] = "first-block,taylorseer,fast,fast+lora,fp8",
    out_dir: Annotated[Path, typer.Option("--out", help="Where the JSON and markdown go.")] = Path(
        "bench/results"
    ),
    device: Annotated[str | None, typer.Option(envvar="OPENVEO_DEVICE", help="auto, cuda, cpu.")] = None,
) -> None:
    """Benchmark the engine: plain diffusers (bf16, default attention, no compile) against openveo on
    the same random-weight full-size network and seed. Reports per-stage seconds, transformer passes,
    seconds per step, peak GPU memory and PSNR of openveo's frames against the baseline's, then the
    opt-in modes, then the VAE decode alone in fp32 and bf16.
    Speed settings (OPENVEO_ATTENTION, OPENVEO_COMPILE, ...) apply to the openveo runs."""
    from rich.progress import Progress

    from openveo.bench.engine import ARCHITECTURES, MODES, TINY, benchmark, write_results
    from openveo.engine.pipelines import quiet_libraries

    known = [*ARCHITECTURES, *TINY]
    chosen = arch or (list(TINY) if tiny else list(ARCHITECTURES))
    for name in chosen:
        if name not in known:
            raise fail(f"--arch: unknown architecture {name!r}; choose from {', '.join(known)}")
    chosen_modes = tuple(m.strip() for m in modes.split(",") if m.strip())
    for mode in chosen_modes:
        if mode not in MODES:
            raise fail(f"--modes: unknown mode {mode!r}; choose from {', '.join(MODES[1:])}")
    settings = settings_from(None, device=device)
    setup_logging(False, settings.log_format)
    quiet_libraries()
    runs_per_case = 2 + len(chosen_modes)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("benchmark", total=len(chosen) * runs_per_case)

        def on_run(name: str, run: Run) -> None:
            progress.advance(task)
            detail = f"skipped ({run.skipped})" if run.skipped else f"{run.seconds['end_to_end']:.2f}s"
            psnr = "" if run.psnr_db is None else f", PSNR {run.psnr_db} dB"
            err.print(f"{name} {run.mode}: {detail}{psnr}")

        results = benchmark(chosen, settings, modes=chosen_modes, steps=steps, on_run=on_run)
    json_path, md_path = write_results(results, out_dir)
    out.print(md_path.read_text(), markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {json_path} and {md_path}", soft_wrap=True)
