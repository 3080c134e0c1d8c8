"""An invisible, keyed video watermark that survives re-encoding, downscaling and cropping.

Embedding adds one static luma pattern to every frame (the same offset to R, G and B), so the GPU
engine can apply it as `clamp(round(frames + pattern))`. The pattern is a square tile repeated over
the frame; the tile's side is a third of the frame's shorter side, so a uniform rescale keeps it at
the same relative size, and a crop only moves where the tiles start. Each tile is 32x32 slightly
smoothed +-1 chips at keyed places with keyed signs: 256 carry a pilot (synchronisation and the
detection statistic), 768 carry the 64-bit payload under a rate-1/2, K=7 convolutional code (140
coded bits, 5 or 6 chips each). See docs/watermark.md.

Detection (numpy only, so the API process can run it without torch): average the luma of up to 48
frames (the static mark adds up, moving content averages out), downscale, high-pass and whiten it; for
every candidate tile period fold all tiles into one and cross-correlate the fold with the pilot over
every circular shift and the 8 flips/rotations. The best pilot peak over its null standard deviation
gives a normal-tail p-value, Bonferroni-corrected for every period, shift and orientation tried; the
aligned fold's correlations with each coded bit's chips are soft-decoded (max-log-MAP) into the
payload and a per-bit confidence.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np

PAYLOAD_BITS = 64
FALSE_POSITIVE_RATE = 1e-6
PAYLOAD_CONFIDENCE = 0.8  # payload is None below this estimated probability that all 64 bits are right

PSNR_DB = 41.0  # the mark's strength: PSNR of marked vs unmarked frames (RMS ~2.2), more where clipped
TILES_PER_SIDE = 3.0  # tile side = shorter frame side / 3 ...
MIN_PERIOD = 80.0  # ... but never below 80 px, so tiny frames still get chips of 2.5 px
CHIPS = 32  # chips per tile side
PILOT_CHIPS = 256  # the other 768 carry the 140 coded payload bits, 5 or 6 chips each
CHIP_SIGMA = 0.2  # Gaussian smoothing of the chips, in chips: low/mid frequency only
RENDER = 128  # samples per tile side of the smoothed tile the frame pattern is interpolated from
BINS = 64  # samples per tile side of the detector's fold
DETECT_SIZE = 360  # the detector works on frames downscaled to this shorter side (never upscaled)
MAX_FRAMES = 48  # frames the detector averages, evenly spaced (verify.py decodes this many)
RATIO_RANGE = (2.2, 4.5)  # tiles per shorter side searched: crops up to ~27 %, letterboxing to ~4:3
RATIO_STEP = 0.002  # relative step of the period search (drift < 1/5 chip across a 16:9 frame)
HIGHPASS = 7  # box blur (detect-scale px) subtracted to remove image content
WHITEN = 9  # box (detect-scale px) over which the residual's local RMS is equalised
SPECTRAL_CLIP, SPECTRAL_BOX = 4.0, 41  # spectral peaks above 4x their 41x41 neighbourhood are clipped

_TRANSFORMS = ("none", "flip-h", "flip-v", "rot180", "transpose", "rot90", "rot270", "anti-transpose")


@dataclass(frozen=True)
class Detection:
    """The detector's verdict on one video.

    `found` comes from `p_value`; `payload` is given when found and the decoder is confident of all 64
    bits (`payload_confidence` >= PAYLOAD_CONFIDENCE): a heavily damaged mark can be certainly there
    yet unreadable. `bit_confidence` is the estimated fraction of the 64 payload bits decoded
    correctly: the mean over bits of 1 - P(bit wrong), from each bit's log-likelihood ratio after
    error correction (max-log-MAP margin times the estimated signal amplitude); 1.0 for a clean mark,
    0.5 (and payload_confidence 0) when nothing is found."""

    found: bool
    payload: int | None
    bit_confidence: float
    p_value: float
    z_score: float = 0.0  # pilot correlation / its null standard deviation (what p_value is computed from)
    period: float = 0.0  # detected tile side, in pixels of the frames given
    transform: str = "none"  # flip/rotation the video underwent, as detected
    hypotheses: int = 0  # periods x shifts x orientations tried (the Bonferroni factor)
    payload_confidence: float = 0.0  # estimated probability that all 64 decoded bits are right
    best_guess: int | None = None  # the decoded payload even when not found: for measurements, not trust


def _seed(key: bytes, label: bytes) -> int:
    return int.from_bytes(hashlib.sha256(b"openveo-watermark-v1\0" + label + b"\0" + key).digest()[:8], "big")


def tile_period(height: int, width: int) -> float:
    """The tile side, in pixels, that `watermark_pattern` uses for a frame of this size."""
    return max(min(height, width) / TILES_PER_SIDE, MIN_PERIOD)


def _blur_tile(chips: np.ndarray) -> np.ndarray:
    """(..., CHIPS, CHIPS) chip values -> (..., RENDER, RENDER) smoothed periodic tiles."""
    up = RENDER // CHIPS
    fine = np.repeat(np.repeat(chips, up, axis=-2), up, axis=-1)
    f = np.fft.fftfreq(RENDER)
    sigma = CHIP_SIGMA * up
    g = np.exp(-2 * (math.pi * sigma) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    return np.fft.irfft2(np.fft.rfft2(fine) * g[:, : RENDER // 2 + 1], s=(RENDER, RENDER))


# --- error correction: the standard K=7, rate-1/2 convolutional code (171, 133 octal), zero tail ----

_MEMORY = 6
CODED_BITS = 2 * (PAYLOAD_BITS + _MEMORY)  # 140 coded bits, 5 or 6 chips each
_GENERATORS = (0o171, 0o133)


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    for shift in (4, 2, 1):
        x ^= x >> shift
    return x & 1


_REGISTERS = np.arange(1 << (_MEMORY + 1))  # (state << 1 | input), newest bit lowest
_OUTPUTS = np.stack([_parity(_REGISTERS & g) for g in _GENERATORS], axis=1) * 2.0 - 1.0  # (128, 2)


def _encode(payload: int) -> np.ndarray:
    """64 payload bits (least significant first) -> the 140 coded bits as +-1."""
    if not 0 <= payload < 1 << PAYLOAD_BITS:
        raise ValueError(f"payload must be in [0, 2**{PAYLOAD_BITS})")
    state, out = 0, []
    for i in range(PAYLOAD_BITS + _MEMORY):
        register = (state << 1) | ((payload >> i) & 1 if i < PAYLOAD_BITS else 0)
        out.extend(_OUTPUTS[register])
        state = register & ((1 << _MEMORY) - 1)
    return np.array(out)


_STATES = 1 << _MEMORY
_NEXT = np.arange(_STATES)
_PRED = np.stack([(_NEXT >> 1) | (b << (_MEMORY - 1)) for b in (0, 1)])  # predecessors of each state
_INTO = _OUTPUTS[(_PRED << 1) | (_NEXT & 1)]  # (2, 64, 2): the coded pair on each branch into a state
_FROM = _OUTPUTS[(_NEXT[:, None] << 1) | np.array([0, 1])[None, :]]  # (64, 2 inputs, 2): out of a state


def _decode_bits(soft: np.ndarray) -> tuple[int, np.ndarray]:
    """Max-log-MAP (forward-backward) decoding of the 140 coded-bit correlations.

    Returns the payload (the maximum-likelihood path's bits, as Viterbi's) and, per payload bit, the
    metric margin between the best path with that bit 1 and the best with it 0, in units of the
    soft values: times the signal amplitude, it is the bit's log-likelihood ratio."""
    steps = PAYLOAD_BITS + _MEMORY
    pairs = soft.reshape(steps, 2)
    alpha = np.full((steps + 1, _STATES), -np.inf)
    alpha[0, 0] = 0.0
    for t in range(steps):
        into = alpha[t][_PRED] + _INTO @ pairs[t]  # (2, 64)
        alpha[t + 1] = into.max(axis=0)
        if t >= PAYLOAD_BITS:  # the zero tail: only inputs of 0 (even next states)
            alpha[t + 1][1::2] = -np.inf
    beta = np.full(_STATES, -np.inf)
    beta[0] = 0.0
    margins = np.zeros(PAYLOAD_BITS)
    for t in range(steps - 1, -1, -1):
        if t < PAYLOAD_BITS:
            total = alpha[t + 1] + beta
            margins[t] = total[1::2].max() - total[0::2].max()
        out = _FROM @ pairs[t] + beta[(_NEXT[:, None] << 1 | np.array([0, 1])[None, :]) & (_STATES - 1)]
        if t >= PAYLOAD_BITS:
            out[:, 1] = -np.inf
        beta = out.max(axis=1)
    payload = sum(1 << i for i in range(PAYLOAD_BITS) if margins[i] > 0)
    return payload, margins


@functools.lru_cache(maxsize=16)
def _layout(key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Keyed chip roles (-1 pilot, else the coded bit's index) and chip signs, both (CHIPS, CHIPS)."""
    rng = np.random.default_rng(_seed(key, b"layout"))
    n = CHIPS * CHIPS
    order = rng.permutation(n)
    role = np.empty(n, dtype=np.int64)
    role[order[:PILOT_CHIPS]] = -1
    role[order[PILOT_CHIPS:]] = np.arange(n - PILOT_CHIPS) % CODED_BITS
    signs = rng.choice(np.array([-1.0, 1.0]), size=n)
    return role.reshape(CHIPS, CHIPS), signs.reshape(CHIPS, CHIPS)


@functools.lru_cache(maxsize=16)
def _tile(key: bytes, payload: int) -> np.ndarray:
    """The smoothed (RENDER, RENDER) tile with unit RMS."""
    role, signs = _layout(key)
    coded = _encode(payload)
    chips = signs * np.where(role < 0, 1.0, coded[np.maximum(role, 0)])
    tile = _blur_tile(chips)
    return (tile / np.sqrt(np.mean(tile**2))).astype(np.float32)


def _interp_index(n: int, period: float, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periodic linear-interpolation indices and weights of pixel centres 0..n-1 into a tile."""
    t = (np.arange(n) + 0.5) / period * samples - 0.5
    i0 = np.floor(t)
    frac = (t - i0).astype(np.float32)
    i0 = i0.astype(np.int64) % samples
    return i0, (i0 + 1) % samples, frac


def watermark_pattern(key: bytes, payload: int, height: int, width: int) -> np.ndarray:
    """float32 (height, width) luma offsets, in 0..255 units, added to R, G and B alike of every frame."""
    tile = _tile(bytes(key), int(payload))
    period = tile_period(height, width)
    y0, y1, fy = _interp_index(height, period, RENDER)
    x0, x1, fx = _interp_index(width, period, RENDER)
    rows = tile[y0] * (1 - fy)[:, None] + tile[y1] * fy[:, None]
    out = rows[:, x0] * (1 - fx)[None, :] + rows[:, x1] * fx[None, :]
    return (out * np.float32(_scale(out))).astype(np.float32)


def _scale(unit: np.ndarray) -> float:
    """The gain that puts the mark at exactly PSNR_DB on this frame once rounded (the engine rounds:
    round(pixel + offset) - pixel is round(offset) for integer pixels); clipping only raises it.
    Searched by bisection: the smoothed chips sit near two levels, so rounding is far from uniform."""
    target = 255.0**2 / 10 ** (PSNR_DB / 10)
    sample = unit.ravel()
    start = math.sqrt(target / max(float(np.mean(sample**2)), 1e-12))
    lo, hi = 0.5 * start, 1.5 * start  # mean(round(gain * unit)**2) never falls as the gain grows
    for _ in range(14):
        mid = (lo + hi) / 2
        if float(np.mean(np.rint(sample * mid) ** 2)) <= target:
            lo = mid
        else:
            hi = mid
    return lo


def embed(frames: np.ndarray, key: bytes, payload: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, H, W, 3): clip(round(frames + pattern[..., None])), the numpy
    reference of what the engine does on the GPU."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError("frames must be uint8 (T, H, W, 3)")
    pattern = watermark_pattern(key, payload, frames.shape[1], frames.shape[2])[..., None]
    out = np.empty_like(frames)
    for t in range(frames.shape[0]):  # frame by frame: no float copy of the whole video
        out[t] = np.clip(np.rint(frames[t] + pattern), 0, 255)
    return out


# --- detection ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _templates(key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The pilot (BINS, BINS) and the 140 coded-bit templates (140, BINS, BINS), at the fold's
    resolution, with the chip signs applied (a template correlates positively with a coded +1)."""
    role, signs = _layout(key)
    masks = np.stack([role == -1] + [role == i for i in range(CODED_BITS)]).astype(np.float64)
    smooth = _blur_tile(masks * signs)
    f = RENDER // BINS
    pooled = smooth.reshape(-1, BINS, f, BINS, f).mean(axis=(2, 4))
    return pooled[0], pooled[1:]


def _mean_luma(frames: np.ndarray) -> np.ndarray:
    """Mean luma of up to MAX_FRAMES evenly spaced frames (float64, (H, W))."""
    count = frames.shape[0]
    picks = np.unique(np.linspace(0, count - 1, min(count, MAX_FRAMES)).round().astype(np.int64))
    acc = np.zeros(frames.shape[1:], dtype=np.uint32)
    for t in picks:
        np.add(acc, frames[t], out=acc, casting="unsafe")
    rgb = acc.astype(np.float32) / np.float32(len(picks))
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _area_resize_axis(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Exact area averaging of `a` to `n` samples along `axis` (any, non-integer, factor)."""
    length = a.shape[axis]
    if n == length:
        return a
    a = np.moveaxis(a, axis, 0).astype(np.float64)
    cs = np.concatenate([np.zeros((1, *a.shape[1:])), np.cumsum(a, axis=0)])
    edges = np.linspace(0, length, n + 1)
    i = np.minimum(np.floor(edges).astype(np.int64), length - 1)
    frac = (edges - i)[:, None]
    at = cs[i] + frac * a[i]
    return np.moveaxis((at[1:] - at[:-1]) * (n / length), 0, axis)


def _box(a: np.ndarray, k: int) -> np.ndarray:
    """Separable box mean of odd width k, normalised by the in-frame count at the borders."""
    r = k // 2
    out = a
    for axis in (0, 1):
        n = out.shape[axis]
        moved = np.moveaxis(out, axis, 0)
        cs = np.concatenate([np.zeros((1, *moved.shape[1:])), np.cumsum(moved, axis=0)])
        hi = np.minimum(np.arange(n) + r + 1, n)
        lo = np.maximum(np.arange(n) - r, 0)
        summed = (cs[hi] - cs[lo]) / (hi - lo)[:, None]
        out = np.moveaxis(summed, 0, axis)
    return out


def _clip_spectrum(res: np.ndarray) -> np.ndarray:
    """Tame periodic content (block grids, test-pattern lines, decoder checkerboards): frequencies
    with more than SPECTRAL_CLIP times their neighbourhood's power are scaled down to that."""
    if SPECTRAL_CLIP <= 0:
        return res
    spectrum = np.fft.rfft2(res)
    power = np.abs(spectrum) ** 2
    local = _box(power, SPECTRAL_BOX)
    gain = np.minimum(1.0, np.sqrt(SPECTRAL_CLIP * local / np.maximum(power, 1e-30)))
    return np.fft.irfft2(spectrum * gain, s=res.shape)


def _residual(luma: np.ndarray) -> np.ndarray:
    """High-passed, locally whitened and clipped luma: image content out, the mark's band in."""
    res = _clip_spectrum(luma - _box(luma, HIGHPASS))
    rms = np.sqrt(_box(res**2, WHITEN))
    floor = 0.1 * float(np.median(rms)) + 1e-3
    res = res / (rms + floor)
    return np.clip(res - res.mean(), -3.0, 3.0).astype(np.float32)


def _splat(n: int, scale: float, period: float) -> np.ndarray:
    """(n, BINS) linear-splat weights of detect-scale pixel centres into tile bins."""
    t = (np.arange(n) + 0.5) * scale / period * BINS - 0.5
    i0 = np.floor(t)
    frac = (t - i0).astype(np.float32)
    i0 = i0.astype(np.int64) % BINS
    m = np.zeros((n, BINS), dtype=np.float32)
    rows = np.arange(n)
    m[rows, i0] += 1 - frac
    m[rows, (i0 + 1) % BINS] += frac
    return m


def _orientations(fold: np.ndarray) -> np.ndarray:
    """The fold under the 8 flips/rotations, in _TRANSFORMS order, undoing each transform."""
    t = fold.T
    return np.stack(
        [fold, fold[:, ::-1], fold[::-1, :], fold[::-1, ::-1], t, t[:, ::-1], t[::-1, :], t[::-1, ::-1]]
    )


def _response(period: float) -> np.ndarray:
    """(BINS, BINS // 2 + 1) frequency response, in tile frequencies, of what the detector does to a
    pattern with this period (detect-scale px): area downscale, high-pass and linear binning. Applied
    to the templates so they match the mark as it appears in the fold."""
    ky = np.fft.fftfreq(BINS, 1 / BINS)[:, None]
    kx = np.fft.rfftfreq(BINS, 1 / BINS)[None, :]

    def box(f: np.ndarray, n: int) -> np.ndarray:  # mean over n samples
        s = np.sin(np.pi * f)
        return np.where(np.abs(s) < 1e-9, 1.0, np.sin(np.pi * n * f) / (n * np.where(s == 0, 1, s)))

    fy, fx = ky / period, kx / period
    highpass = 1.0 - box(fy, HIGHPASS) * box(fx, HIGHPASS)
    return highpass * np.sinc(fy) * np.sinc(fx) * np.sinc(ky / BINS) ** 2 * np.sinc(kx / BINS) ** 2


class _Search:
    """Folds the detect-scale residual at candidate tile periods and correlates each fold, under the
    8 orientations, with the (filtered) pilot over every circular shift."""

    def __init__(self, residual: np.ndarray, scale: tuple[float, float], shorter: int, factor: float):
        self.residual, self.scale, self.shorter, self.factor = residual, scale, shorter, factor

    def folds(self, ratio: float) -> np.ndarray:
        period = self.shorter / ratio
        rows = _splat(self.residual.shape[0], self.scale[0], period)
        cols = _splat(self.residual.shape[1], self.scale[1], period)
        return _orientations(rows.T @ self.residual @ cols)

    def response(self, ratio: float) -> np.ndarray:
        return _response(self.shorter / ratio / self.factor)

    def scores(self, ratio: float, pilot_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per orientation: the highest pilot correlation over all shifts, and the surface's spread
        (the null standard deviation of one shift's correlation, sidelobes of a mark included)."""
        filtered = np.conj(pilot_hat * self.response(ratio))
        surfaces = np.fft.irfft2(np.fft.rfft2(self.folds(ratio)) * filtered, s=(BINS, BINS))
        flat = surfaces.reshape(len(surfaces), -1)
        return flat.max(axis=1), flat.std(axis=1)


def _ratios(height: int, width: int) -> np.ndarray:
    """Candidate tiles-per-shorter-side: the search range, plus (tiny frames, where MIN_PERIOD puts
    the nominal ratio outside the range) the nominal ratio for this very frame size and its neighbours."""
    lo, hi = RATIO_RANGE
    grid = np.exp(np.arange(math.log(lo), math.log(hi), RATIO_STEP))
    nominal = min(height, width) / tile_period(height, width)
    if not lo <= nominal <= hi:
        grid = np.concatenate([grid, nominal * np.exp(np.arange(-5, 6) * RATIO_STEP)])
    return np.sort(grid)


def _subbin_peak(surface: np.ndarray) -> tuple[float, float]:
    """The surface's maximum with parabolic sub-bin interpolation along each axis (circular)."""
    iy, ix = np.unravel_index(int(np.argmax(surface)), surface.shape)
    out = []
    for axis, i in ((0, iy), (1, ix)):
        line = surface[:, ix] if axis == 0 else surface[iy, :]
        a, b, c = line[(i - 1) % BINS], line[i], line[(i + 1) % BINS]
        den = a - 2 * b + c
        out.append(float(i) + (0.5 * (a - c) / den if den < 0 else 0.0))
    return out[0], out[1]


@dataclass(frozen=True)
class _Reading:
    z: float  # pilot correlation / its null standard deviation
    payload: int
    margins: np.ndarray  # max-log-MAP metric margins of the 64 payload bits
    amplitude: float  # signal per coded bit, in noise standard deviations


def _read(fold: np.ndarray, pilot_hat: np.ndarray, bits_hat: np.ndarray, response: np.ndarray) -> _Reading:
    """Align one fold onto the pilot, decode the payload and score the pilot.

    The fold is shifted (sub-bin, in the Fourier domain) onto the pilot. The null standard deviation
    of the pilot correlation is the spread, over all circular shifts, of the pilot's correlation
    surface, measured once the mark (rebuilt from the pilot and the decoded codeword, least-squares
    amplitude) is taken out of the fold: with a mark in, the surface also holds the mark's own
    sidelobes (the pilot against the shifted tile), which would cap z near sqrt(PILOT_CHIPS). The
    variance is scaled up for the degrees of freedom the fit takes (its amplitude and, at most, one per
    payload bit) out of the CHIPS**2 the fold has. Coded-bit templates share the pilot's spectrum, so
    their null standard deviation is the pilot's times the square root of their energy ratio."""
    pilot_f = pilot_hat * response
    fold_hat = np.fft.rfft2(fold)
    sy, sx = _subbin_peak(np.fft.irfft2(fold_hat * np.conj(pilot_f), s=(BINS, BINS)))
    ky = np.fft.fftfreq(BINS, 1 / BINS)[:, None]
    kx = np.fft.rfftfreq(BINS, 1 / BINS)[None, :]
    aligned_hat = fold_hat * np.exp(2j * np.pi * (ky * sy + kx * sx) / BINS)
    aligned = np.fft.irfft2(aligned_hat, s=(BINS, BINS))
    pilot = np.fft.irfft2(pilot_f, s=(BINS, BINS))
    bits = np.fft.irfft2(bits_hat * response, s=(BINS, BINS))
    soft = bits.reshape(CODED_BITS, -1) @ aligned.ravel()
    pilot_energy = float(np.sum(pilot**2))
    ratio = math.sqrt(float(np.mean(np.sum(bits**2, axis=(1, 2)))) / max(pilot_energy, 1e-30))

    def spread(data_hat: np.ndarray) -> float:
        return float(np.fft.irfft2(data_hat * np.conj(pilot_f), s=(BINS, BINS)).std())

    first = spread(aligned_hat)  # with the mark's sidelobes: only to decode the codeword to remove
    if first <= 1e-12:
        return _Reading(0.0, 0, np.zeros(PAYLOAD_BITS), 0.0)
    payload, _ = _decode_bits(soft / (first * ratio))
    mark = pilot + np.tensordot(_encode(payload), bits, axes=1)
    gain = float(np.sum(aligned * mark)) / max(float(np.sum(mark * mark)), 1e-30)
    dof = CHIPS * CHIPS
    noise = spread(np.fft.rfft2(aligned - gain * mark)) * math.sqrt(dof / (dof - PAYLOAD_BITS - 1))
    if noise <= 1e-12:
        return _Reading(0.0, payload, np.zeros(PAYLOAD_BITS), 0.0)
    values = soft / (noise * ratio)  # coded-bit correlations, in noise standard deviations
    payload, margins = _decode_bits(values)
    coded = _encode(payload)
    z = float(np.sum(aligned * pilot)) / noise
    # The signal per coded bit: the smallest of three estimates (each biased up in its own way).
    amplitude = min(
        math.sqrt(max(float(np.mean(values**2)) - 1.0, 0.0)),
        float(np.mean(values * coded)),
        z * ratio,
    )
    return _Reading(z, payload, margins, max(amplitude, 0.0))


def detect(frames: np.ndarray, key: bytes) -> Detection:
    """uint8 (T, H, W, 3) frames of a possibly transformed video; any size."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError("frames must be (T, H, W, 3)")
    if frames.dtype != np.uint8:
        frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    count, height, width, _ = frames.shape
    if count == 0 or height < 8 or width < 8:
        return Detection(found=False, payload=None, bit_confidence=0.5, p_value=1.0)
    return _detect_luma(_mean_luma(frames), bytes(key))


def _detect_luma(luma: np.ndarray, key: bytes) -> Detection:
    """`detect` from the frames' mean luma (H, W)."""
    height, width = luma.shape
    shorter = min(height, width)
    factor = max(1.0, shorter / DETECT_SIZE)
    h, w = max(1, round(height / factor)), max(1, round(width / factor))
    residual = _residual(_area_resize_axis(_area_resize_axis(luma, h, 0), w, 1))
    pilot, bit_templates = _templates(key)
    pilot_hat, bits_hat = np.fft.rfft2(pilot), np.fft.rfft2(bit_templates)
    search = _Search(residual, (height / h, width / w), shorter, factor)

    # Coarse: the best period and orientation by self-normalised z (peak / surface spread).
    ratios = _ratios(height, width)
    z = np.zeros((len(ratios), len(_TRANSFORMS)))
    for i, ratio in enumerate(ratios):
        peak, spread = search.scores(ratio, pilot_hat)
        z[i] = np.where(spread > 1e-12, peak / np.maximum(spread, 1e-12), 0.0)
    i, orientation = (int(n) for n in np.unravel_index(int(np.argmax(z)), z.shape))
    # Fine: with a strong mark that z saturates (sidelobes), so refine the period by the peak itself.
    fine = ratios[i] * np.exp(np.linspace(-4 * RATIO_STEP, 4 * RATIO_STEP, 17))
    peaks = [search.scores(ratio, pilot_hat)[0][orientation] for ratio in fine]
    best_ratio = float(fine[int(np.argmax(peaks))])
    hypotheses = (len(ratios) + len(fine)) * len(_TRANSFORMS) * BINS * BINS

    reading = _read(search.folds(best_ratio)[orientation], pilot_hat, bits_hat, search.response(best_ratio))
    p_value = min(1.0, _tail(reading.z) * hypotheses)
    found = p_value < FALSE_POSITIVE_RATE
    # Without a mark the amplitude estimate only fits noise: no mark, no bits to be confident about.
    llr = (reading.amplitude if found else 0.0) * np.abs(reading.margins)
    wrong = np.exp(-llr) / (1.0 + np.exp(-llr))  # P(payload bit wrong)
    exact = float(np.prod(1.0 - wrong)) if found else 0.0
    return Detection(
        found=found,
        payload=reading.payload if found and exact >= PAYLOAD_CONFIDENCE else None,
        bit_confidence=float(1.0 - wrong.mean()),
        p_value=p_value,
        z_score=reading.z,
        period=shorter / best_ratio,
        transform=_TRANSFORMS[orientation],
        hypotheses=hypotheses,
        payload_confidence=exact,
        best_guess=reading.payload,
    )


def _tail(z: float) -> float:
    """P(N(0, 1) > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2))
