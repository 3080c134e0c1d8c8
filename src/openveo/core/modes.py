"""Names of the opt-in faster modes, parsed without torch so settings can check them at start."""

from __future__ import annotations

from dataclasses import dataclass

STEP_CACHE_DEFAULTS = {"first-block": 0.05, "taylorseer": 5}


@dataclass(frozen=True)
class StepCache:
    """first-block: skip the remaining blocks while the first block's output changes less than
    `value` (relative); taylorseer: compute every `value`-th step, extrapolate the ones between."""

    kind: str
    value: float


def parse_step_cache(text: str) -> StepCache | None:
    """'none' | 'first-block[:THRESHOLD]' | 'taylorseer[:INTERVAL]'."""
    kind, _, value = text.strip().lower().partition(":")
    if kind in ("", "none", "off"):
        return None
    if kind not in STEP_CACHE_DEFAULTS:
        raise ValueError(
            f"unknown step cache {text!r}: use none, first-block[:THRESHOLD] or taylorseer[:INTERVAL]"
        )
    try:
        number = float(value) if value else float(STEP_CACHE_DEFAULTS[kind])
    except ValueError:
        raise ValueError(f"step cache {text!r}: {value!r} is not a number") from None
    if kind == "taylorseer" and (number < 2 or number != int(number)):
        raise ValueError(f"step cache {text!r}: the interval must be a whole number of steps, 2 or more")
    if kind == "first-block" and not 0 < number < 1:
        raise ValueError(f"step cache {text!r}: the threshold must be between 0 and 1")
    return StepCache(kind, number)
