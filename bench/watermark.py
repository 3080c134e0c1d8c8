"""Watermark robustness benchmark: embed, deliver, transform with ffmpeg, detect.

    python bench/watermark.py [--quick] [--sources natural,life] [--frames 80] [--wrong-keys 2]
    python bench/watermark.py --render bench/results/watermark-cpu-DATE.json   # markdown only

Takes ~20-25 minutes on 2 CPU cores (ffmpeg encodes dominate; detection is ~0.4 s per video).

Every test video is marked with a random 64-bit payload, delivered as openveo delivers it (libx264
CRF 18, yuv420p, preset medium), then transformed by a real `ffmpeg` command (re-encode, downscale,
crop, flip, frame-rate change, trim, ...), decoded with PyAV and given to `detect`. Sources are varied
on purpose: ffmpeg's lavfi generators (testsrc2, mandelbrot, life, cellauto, gradients, scrolling
smptehdbars, rgbtestsrc) and a synthesised natural-looking scene (a slow pan over a large procedural
image with smooth gradients, textures, flat dark shadows and clipped highlights and colours).

False positives: the unmarked videos (delivered and transformed) are checked with the bench key, and
every marked video is also checked with several wrong keys; the table reports how many were "found"
(must be 0) and the distribution of their detection scores against the threshold.

Writes bench/results/watermark-cpu-<yyyy-mm-dd>.json and .md (with "-partial" when run on a subset)
and prints the markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from common import cpu_name

from openveo.provenance import watermark as wm

RESULTS = Path(__file__).parent / "results"
KEY = b"openveo-bench-key"
FPS = 16


# --- sources ---------------------------------------------------------------------------------------


def lavfi(spec: str, width: int, height: int, frames: int) -> np.ndarray:
    """Frames of an ffmpeg lavfi source, decoded to rgb24."""
    cmd = [
        "ffmpeg", "-v", "error", "-f", "lavfi", "-i", spec, "-frames:v", str(frames),
        "-vf", f"scale={width}:{height},format=rgb24", "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
    ]  # fmt: skip
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)[:frames].copy()


def _fractal(height: int, width: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """1/f^beta noise, zero mean, unit variance."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius ** (beta / 2)
    spectrum[0, 0] = 0
    img = np.fft.irfft2(spectrum, s=(height, width))
    return (img - img.mean()) / img.std()


def natural_scene(width: int, height: int, frames: int, seed: int = 7) -> np.ndarray:
    """A slow pan across a large procedural landscape: sky gradient with a clipped sun, textured
    ground, sharp-edged buildings, a flat near-black shadow and a saturated red object."""
    rng = np.random.default_rng(seed)
    pan = max(2, width // 400)  # px per frame
    cw, ch = width + pan * frames + 8, height
    y = np.linspace(0, 1, ch)[:, None]
    x = np.linspace(0, 1, cw)[None, :]
    horizon = 0.45 + 0.05 * _fractal(1, cw, 3.0, rng)[0][None, :] * 0.5
    sky = np.stack([120 + 100 * y, 160 + 80 * y, 235 + 15 * y], -1) * np.ones((1, cw, 1))
    sun = np.exp(-(((x - 0.3) * cw / ch) ** 2 + (y - 0.15) ** 2) / 0.006)[..., None] * 400
    sky = sky + sun + 6 * _fractal(ch, cw, 3.2, rng)[..., None]
    tex = _fractal(ch, cw, 1.8, rng)
    ground = np.stack([90 + 35 * tex, 110 + 40 * tex, 60 + 25 * tex], -1) * (0.8 + 0.4 * y[..., None])
    img = np.where((y > horizon)[..., None], ground, sky)
    for _ in range(max(3, cw // 300)):  # buildings: flat faces, sharp edges, windows
        x0 = rng.integers(0, cw - 60)
        bw, bh = rng.integers(40, 160), rng.integers(ch // 8, ch // 3)
        top = int(0.45 * ch) - bh
        shade = rng.uniform(40, 200)
        img[top : int(0.5 * ch), x0 : x0 + bw] = shade * np.array([1.0, 0.95, 0.9])
        img[top + 6 : int(0.5 * ch) : 14, x0 + 4 : x0 + bw - 4 : 2] = 250
    img[int(0.78 * ch) :, : cw // 3] = 10  # flat shadow, near black
    cx, cy, r = cw // 2, int(0.7 * ch), ch // 10
    yy, xx = np.ogrid[:ch, :cw]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = [255, 0, 0]  # saturated red ball
    img = np.clip(img, 0, 255).astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        view = img[:, t * pan : t * pan + width]
        out[t] = np.clip(view + rng.normal(0, 1.0, view.shape[:2])[..., None], 0, 255).astype(np.uint8)
    return out


def tiny_model(width: int, height: int, frames: int) -> np.ndarray:
    """The tiny test model's random-weight output (what the test suite's videos hold), built offline and
    run through openveo's engine, which scales it to this size as it does for an OpenAI-protocol size:
    a 96x160 native frame, 7.5x at 720p, whose VAE leaves a strong 2-px grid that lands on the mark's
    chips. Its own frame count (41: 5 s at the tiny presets' 8 fps), whatever `frames` says."""
    from openveo.config import Settings
    from openveo.core.catalog import Catalog
    from openveo.core.request import GenerationRequest
    from openveo.engine.engine import Engine
    from openveo.engine.tiny import ensure_tiny
    from openveo.engine.weights import local_dir

    catalog, models = Catalog(), Path(tempfile.gettempdir()) / "openveo-bench-models"
    preset = catalog.resolve("tiny")
    ensure_tiny(preset.repo, local_dir(preset, models))
    with tempfile.TemporaryDirectory() as data_dir:
        engine = Engine(Settings(data_dir=Path(data_dir), models_dir=models, device="cpu"), catalog)
        request = GenerationRequest(
            prompt="a lighthouse at dusk",
            model=preset.name,
            seed=width * height,
            aspect_ratio="16:9" if width >= height else "9:16",
            output_size=(width, height),
        )
        return engine.generate(request).videos[0]


SOURCES: dict[str, Callable[[int, int, int], np.ndarray]] = {
    "natural": natural_scene,
    "testsrc2": lambda w, h, n: lavfi(f"testsrc2=size={w}x{h}:rate={FPS}", w, h, n),
    "mandelbrot": lambda w, h, n: lavfi(f"mandelbrot=size={w}x{h}:rate={FPS}", w, h, n),
    "life": lambda w, h, n: lavfi(
        f"life=size={w // 4}x{h // 4}:rate={FPS}:mold=10:ratio=0.2:death_color=#203040:life_color=#e0c080",
        w,
        h,
        n,
    ),
    "cellauto": lambda w, h, n: lavfi(f"cellauto=size={w // 2}x{h // 2}:rate={FPS}:rule=110", w, h, n),
    "gradients": lambda w, h, n: lavfi(f"gradients=size={w}x{h}:rate={FPS}:speed=0.02", w, h, n),
    "smptehdbars": lambda w, h, n: lavfi(
        f"smptehdbars=size={w}x{h}:rate={FPS},scroll=horizontal=0.004", w, h, n
    ),
    "rgbtestsrc": lambda w, h, n: lavfi(f"rgbtestsrc=size={w}x{h}:rate={FPS}", w, h, n),
    "tiny": tiny_model,
}


# --- delivery and transformations ------------------------------------------------------------------


def encode(frames: np.ndarray, path: Path, crf: int = 18) -> None:
    """What openveo delivers: H.264 yuv420p, preset medium (engine/video.py's write_mp4)."""
    _, height, width, _ = frames.shape
    cmd = [
        "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
        "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-crf", str(crf), "-preset", "medium",
        "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# name -> (ffmpeg output arguments, required by the "done when")
TRANSFORMS: dict[str, tuple[list[str], bool]] = {
    "delivered (CRF 18)": ([], True),
    "CRF 28": (["-crf", "28"], True),
    "480p (scale=-2:480)": (["-vf", "scale=-2:480"], True),
    "crop 10% centred": (["-vf", "crop=iw*0.9:ih*0.9"], True),
    "crop 10% off-centre": (["-vf", "crop=iw*0.9:ih*0.9:0:ih*0.02"], True),
    "480p + CRF 28": (["-vf", "scale=-2:480", "-crf", "28"], False),
    "crop 10% + CRF 28": (["-vf", "crop=iw*0.9:ih*0.9", "-crf", "28"], False),
    "CRF 35": (["-crf", "35"], False),
    "360p": (["-vf", "scale=-2:360"], False),
    "360p + CRF 28": (["-vf", "scale=-2:360", "-crf", "28"], False),
    "crop 20% centred": (["-vf", "crop=iw*0.8:ih*0.8"], False),
    "crop 10% + scale back": (["-vf", "crop=iw*0.9:ih*0.9,scale=iw/0.9:ih/0.9"], False),
    "horizontal flip": (["-vf", "hflip"], False),
    "rotate 90°": (["-vf", "transpose=1"], False),
    "12 fps": (["-vf", "fps=12"], False),
    "first 2 s": (["-t", "2"], False),
    "brightness/contrast": (["-vf", "eq=brightness=0.06:contrast=1.15"], False),
    "blur (gblur sigma 1.5)": (["-vf", "gblur=sigma=1.5"], False),
    "16:9 → 4:3 letterbox": (["-vf", "pad=iw:iw*3/4:0:(oh-ih)/2"], False),
}
QUICK = ["delivered (CRF 18)", "CRF 28", "480p (scale=-2:480)", "crop 10% centred", "crop 10% off-centre"]


def transform(src: Path, dst: Path, args: list[str]) -> Path:
    """Re-encode with ffmpeg's own defaults (libx264 CRF 23 unless the transformation says otherwise)."""
    if not args:
        return src
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    if "-crf" not in args:
        cmd += ["-crf", "23"]
    subprocess.run([*cmd, str(dst)], check=True)
    return dst


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Row:
    transform: str
    required: bool
    results: list[dict] = field(default_factory=list)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def bit_accuracy(decoded: int | None, payload: int) -> float:
    if decoded is None:
        return 0.0
    return 1 - bin((decoded ^ payload) & (2**wm.PAYLOAD_BITS - 1)).count("1") / wm.PAYLOAD_BITS


def z_threshold(hypotheses: int) -> float:
    """The pilot z-score at which p_value crosses FALSE_POSITIVE_RATE."""
    lo, hi = 0.0, 40.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) * hypotheses < wm.FALSE_POSITIVE_RATE:
            hi = mid
        else:
            lo = mid
    return hi


def run(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(2026)
    names = QUICK if args.quick else list(TRANSFORMS)
    main_size = (1280, 720)
    sources = args.sources.split(",") if args.sources else list(SOURCES)
    cases = [(src, main_size) for src in sources]
    if not args.quick and not args.sources:  # other sizes: natural and testsrc2, required rows only
        cases += [
            (src, size)
            for size in [(832, 480), (480, 832), (704, 480), (512, 512), (160, 96)]
            for src in ("natural", "testsrc2")
        ]
    rows = {name: Row(name, TRANSFORMS[name][1]) for name in names}
    nulls: list[dict] = []
    psnrs, embed_s, detect_s = [], [], []
    wrong_keys = [f"wrong-{i}".encode() for i in range(args.wrong_keys)]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for src, (width, height) in cases:
            if src != "natural" and (width, height) != main_size and args.quick:
                continue
            frames = SOURCES[src](width, height, args.frames)
            payload = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
            start = time.perf_counter()
            marked = wm.embed(frames, KEY, payload)
            embed_s.append((time.perf_counter() - start) / len(frames))
            psnrs.append(
                {"source": src, "size": f"{width}x{height}", "psnr_db": round(psnr(marked, frames), 2)}
            )
            plain_mp4, marked_mp4 = tmp / "plain.mp4", tmp / "marked.mp4"
            encode(marked, marked_mp4)
            main = (width, height) == main_size
            raw = _null(wm.detect(frames, KEY))
            nulls.append({"kind": "unmarked", "source": src, "transform": "raw frames", **raw})
            encode(frames, plain_mp4)
            for name in names:
                ffargs, required = TRANSFORMS[name]
                if (not main and not required) or ("480p" in name and height < 480):
                    continue  # other sizes: required rows only; no upscaling "downscales"
                video = decode(transform(marked_mp4, tmp / "out.mp4", ffargs))
                start = time.perf_counter()
                found = wm.detect(video, KEY)
                detect_s.append(time.perf_counter() - start)
                rows[name].results.append(
                    {
                        "source": src,
                        "size": f"{width}x{height}",
                        "found": found.found,
                        "bit_accuracy": bit_accuracy(found.best_guess, payload),
                        "payload_exact": found.payload == payload,
                        "payload_wrong": found.payload is not None and found.payload != payload,
                        "payload_confidence": round(found.payload_confidence, 4),
                        "z": round(found.z_score, 2),
                        "p_value": found.p_value,
                        "bit_confidence": round(found.bit_confidence, 4),
                        "transform_detected": found.transform,
                    }
                )
                for wrong in wrong_keys:
                    other = wm.detect(video, wrong)
                    nulls.append({"kind": "wrong key", "source": src, "transform": name, **_null(other)})
                if name in QUICK:
                    plain = decode(transform(plain_mp4, tmp / "plain-out.mp4", ffargs))
                    other = _null(wm.detect(plain, KEY))
                    nulls.append({"kind": "unmarked", "source": src, "transform": name, **other})
                print(f"{src} {width}x{height} {name}: {rows[name].results[-1]}", file=sys.stderr, flush=True)
        timing = time_720p(rng, tmp)
    hypotheses = max(n["hypotheses"] for n in nulls)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "settings": {
            "frames": args.frames,
            "fps": FPS,
            "psnr_target_db": wm.PSNR_DB,
            "tiles_per_side": wm.TILES_PER_SIDE,
            "chips": wm.CHIPS,
            "delivery": "libx264 CRF 18 preset medium yuv420p; transformations re-encode at CRF 23 "
            "unless stated",
        },
        "psnr": psnrs,
        "transforms": [_summary(row) for row in rows.values()],
        "false_positives": _null_summary(nulls, hypotheses),
        "timing": {
            **timing,
            "embed_ms_per_frame_all_sizes_mean": round(1000 * statistics.fmean(embed_s), 2),
            "detect_s_bench_videos_mean": round(statistics.fmean(detect_s), 3),
        },
        "rows": {row.transform: row.results for row in rows.values()},
        "nulls": nulls,
    }


def _null(d: wm.Detection) -> dict:
    return {"found": d.found, "z": round(d.z_score, 3), "p_value": d.p_value, "hypotheses": d.hypotheses}


def _summary(row: Row) -> dict:
    acc = [r["bit_accuracy"] for r in row.results]
    return {
        "transform": row.transform,
        "required": row.required,
        "videos": len(row.results),
        "found": sum(r["found"] for r in row.results),
        "payload_exact": sum(r["payload_exact"] for r in row.results),
        "payload_wrong": sum(r["payload_wrong"] for r in row.results),
        "bit_accuracy_mean": round(statistics.fmean(acc), 4) if acc else None,
        "bit_accuracy_min": round(min(acc), 4) if acc else None,
        "z_min": min((r["z"] for r in row.results), default=None),
        "z_median": round(statistics.median(r["z"] for r in row.results), 2) if acc else None,
        "worst": min(row.results, key=lambda r: (r["bit_accuracy"], r["z"]))["source"] if acc else None,
    }


def _null_summary(nulls: list[dict], hypotheses: int) -> dict:
    out = {"z_threshold": round(z_threshold(hypotheses), 2), "hypotheses": hypotheses}
    for kind in ("unmarked", "wrong key"):
        zs = sorted(n["z"] for n in nulls if n["kind"] == kind)
        if zs:
            out[kind] = {
                "videos": len(zs),
                "found": sum(n["found"] for n in nulls if n["kind"] == kind),
                "z_median": round(statistics.median(zs), 2),
                "z_p99": round(zs[min(len(zs) - 1, round(0.99 * (len(zs) - 1)))], 2),
                "z_max": round(zs[-1], 2),
                "p_value_min": min(n["p_value"] for n in nulls if n["kind"] == kind),
            }
    return out


def time_720p(rng: np.random.Generator, tmp: Path) -> dict:
    """Embed per frame and detect for a 5-s 1280x720 24-fps video (120 frames), decoded from MP4."""
    frames = natural_scene(1280, 720, 120, seed=11)
    pattern_start = time.perf_counter()
    wm.watermark_pattern(b"timing-key", 12345, 720, 1280)
    pattern_s = time.perf_counter() - pattern_start
    start = time.perf_counter()
    marked = wm.embed(frames, b"timing-key", 12345)
    embed_s = time.perf_counter() - start
    encode(marked, tmp / "timing.mp4")
    video = decode(tmp / "timing.mp4")
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        result = wm.detect(video, b"timing-key")
        runs.append(time.perf_counter() - start)
    assert result.payload == 12345, result
    return {
        "pattern_720p_s": round(pattern_s, 4),
        "embed_720p_ms_per_frame": round(1000 * embed_s / len(frames), 2),
        "detect_720p_5s_120_frames_s": round(statistics.median(runs), 3),
    }


def machine() -> dict:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ffmpeg": " ".join(
            subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()[:3]
        ),
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# Watermark robustness: CPU: {m['cpu']}, {m['cores']} cores",
        "",
        f"{result['date']} · numpy {m['numpy']} · {m['ffmpeg']}",
        f"{result['settings']['frames']} frames at {FPS} fps per video; {result['settings']['delivery']}.",
        "",
        "| transformation | required | videos | found | exact payload | wrong payload | bit acc. mean "
        "| bit acc. min | z median | z min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["transforms"]:
        lines.append(
            f"| {s['transform']} | {'yes' if s['required'] else ''} | {s['videos']} | {s['found']} | "
            f"{s['payload_exact']} | {s['payload_wrong']} | {100 * s['bit_accuracy_mean']:.1f} % | "
            f"{100 * s['bit_accuracy_min']:.1f} % | {s['z_median']} | {s['z_min']} |"
        )
    lines += [
        "",
        "Per video (✓ exact payload; found: detected, payload withheld as unsure; ✗ not detected, with",
        "the bit accuracy of the best guess, %):",
        "",
    ]
    lines += _matrix(result, lambda size: size == "1280x720", "1280x720")
    lines += [""]
    lines += _matrix(result, lambda size: size != "1280x720", "other sizes")
    fp = result["false_positives"]
    lines += [
        "",
        f"False positives (threshold: p < {wm.FALSE_POSITIVE_RATE:g} ⇔ pilot z > {fp['z_threshold']}, "
        f"{fp['hypotheses']:,} hypotheses):",
        "",
        "| checked | videos | found | z median | z p99 | z max | smallest p |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("unmarked", "wrong key"):
        if kind in fp:
            k = fp[kind]
            lines.append(
                f"| {kind} | {k['videos']} | {k['found']} | {k['z_median']} | {k['z_p99']} | {k['z_max']} | "
                f"{k['p_value_min']:.2g} |"
            )
    psnr_values = [p["psnr_db"] for p in result["psnr"]]
    t = result["timing"]
    lines += [
        "",
        f"PSNR marked vs unmarked frames: min {min(psnr_values):.2f} dB, "
        f"mean {statistics.fmean(psnr_values):.2f} dB over {len(psnr_values)} videos.",
        "",
        f"Timing (5-s 1280x720 video, 120 frames): pattern {t['pattern_720p_s'] * 1000:.0f} ms, "
        f"embed (numpy) {t['embed_720p_ms_per_frame']} ms/frame, "
        f"detect {t['detect_720p_5s_120_frames_s']} s.",
    ]
    return "\n".join(lines) + "\n"


def _matrix(result: dict, pick: Callable[[str], bool], title: str) -> list[str]:
    """Transformations x videos, one cell per detection."""
    columns: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    for name, rows in result["rows"].items():
        for r in rows:
            if not pick(r["size"]):
                continue
            column = r["source"] if title == "1280x720" else f"{r['source']} {r['size']}"
            if column not in columns:
                columns.append(column)
            if r["payload_exact"]:
                cell = "✓"
            elif r["found"]:
                cell = "found" if not r["payload_wrong"] else "WRONG"
            else:
                cell = f"✗ {100 * r['bit_accuracy']:.0f}"
            cells[name, column] = cell
    names = [n for n in result["rows"] if any((n, c) in cells for c in columns)]
    out = [f"| {title} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in names:
        out.append(f"| {name} | " + " | ".join(cells.get((name, c), "") for c in columns) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="required transformations, 720p only")
    parser.add_argument("--frames", type=int, default=80, help="frames per test video (80 = 5 s at 16 fps)")
    parser.add_argument("--wrong-keys", type=int, default=2, help="wrong keys tried on every marked video")
    parser.add_argument("--sources", help="comma-separated subset of: " + ", ".join(SOURCES))
    parser.add_argument("--render", type=Path, help="only re-render the markdown of an earlier JSON result")
    args = parser.parse_args()
    if args.render:
        result = json.loads(args.render.read_text())
        md = markdown(result) + f"\nBench wall time: {result['bench_wall_s']} s.\n"
        args.render.with_suffix(".md").write_text(md)
        print(md)
        return
    started = time.perf_counter()
    result = run(args)
    result["bench_wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    partial = args.quick or args.sources or args.frames != 80
    stem = f"watermark-cpu-{dt.date.today().isoformat()}{'-partial' if partial else ''}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result) + f"\nBench wall time: {result['bench_wall_s']} s.\n"
    (RESULTS / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
