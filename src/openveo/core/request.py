"""The one protocol-free generation request, and the validation every protocol goes through.

Protocols parse their wire format into a plain dict with these field names and call
`build_request`; an `InvalidRequest` names the field and the allowed values so each protocol can
answer in its own error format (renaming the field to its own wire name).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import TypeAdapter

from openveo.core.catalog import (
    MIN_CONTEXT_FRAMES,
    Capability,
    Catalog,
    MissingCapability,
    Preset,
    UnknownModel,
)
from openveo.core.errors import InvalidRequest
from openveo.core.loras import LORA_NAME, MAX_LORAS, SCALE_RANGE, Lora, LoraUse
from openveo.core.media import VideoInfo, check_image, mask_box, probe_video
from openveo.core.text import load_stored, text_problem

MAX_NUM_VIDEOS = 4
MAX_SEED = 2**63 - 1
RANDOM_SEED = -1
GUIDANCE_RANGE = (0.0, 30.0)
MAX_NEGATIVE_PROMPT_CHARS = 32_000
MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE = 64, 3840
MAX_ASPECT_MISMATCH = 0.05  # |log(ratio / aspect)|: up to ~5% is cropped away, more is refused
MIN_OUTPAINT_BOX = 16  # px at the model's size: where an outpaint's source goes
MAX_REFERENCE_IMAGES = 3  # Veo's limit for asset references
REFERENCE_TYPES = ("asset", "style")  # Veo's; only asset references are served (docs/api.md)

__all__ = ["InvalidRequest"]  # re-exported: every layer refuses with it


class MaskMode(StrEnum):
    """How a mask edits a source video (Veo's `maskMode`; white in the mask image marks the region)."""

    INSERT = "insert"  # make what the prompt describes inside the region
    REMOVE = "remove"  # Veo: track the object the region marks on the first frame, and remove it
    REMOVE_STATIC = "remove_static"  # remove what is inside the region, in every frame
    OUTPAINT = "outpaint"  # the region is where the source goes on a new canvas; make the rest


# Veo's REMOVE follows an object through the video; no model here tracks one (docs/api.md).
UNSERVED_MASK_MODES = {
    MaskMode.REMOVE: "tracks an object through the video, and no model here tracks one; use remove_static "
    "with a mask over the whole region the object moves through",
}


@dataclass(frozen=True)
class GenerationRequest:
    """A validated, normalised request: `model` is a preset name and `seed` is always concrete."""

    prompt: str
    model: str
    seed: int
    duration_s: int = 5
    aspect_ratio: str = "16:9"
    negative_prompt: str | None = None
    num_videos: int = 1
    image: bytes | None = None  # the first frame
    last_image: bytes | None = None  # the last frame (after a first one)
    reference_images: tuple[bytes, ...] = ()  # subjects or objects the video must show (asset references)
    source_video: bytes | None = None  # extend this video (the answer is it with `duration_s` seconds more),
    mask: bytes | None = None  # or, with a mask image, edit it inside the mask's white region
    mask_mode: MaskMode | None = None
    steps: int | None = None
    guidance: float | None = None
    seed_was_random: bool = False
    output_size: tuple[int, int] | None = None  # (width, height) to resize to; None = the model's own
    loras: tuple[LoraUse, ...] = ()  # adapters applied on top of the model, in this order

    def to_json(self) -> str:
        """As stored with its job: everything but the media inputs (up to 20 MB each; the store keeps
        them apart, `media`)."""
        return _STORED.dump_json(self, exclude={*MEDIA_FIELDS, REFERENCES}).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> GenerationRequest:
        """Without its media inputs, which the store keeps apart."""
        return _STORED.validate_python(load_stored(text))

    @property
    def media(self) -> dict[str, bytes]:
        """The media inputs it carries, by name: its fields', and `reference_images.0`, `.1`, ..."""
        media = {name: value for name in MEDIA_FIELDS if (value := getattr(self, name)) is not None}
        media |= {f"{REFERENCES}.{index}": image for index, image in enumerate(self.reference_images)}
        return media

    def as_fields(self) -> dict[str, Any]:
        """The fields that make this request again through `build_request` (a remix: another prompt
        over the same inputs and settings). What validation derived from the inputs (an extension's
        or an edit's shape, an edit's length) is left for it to derive again."""
        fields: dict[str, Any] = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "model": self.model,
            "seed": self.seed,
            "num_videos": self.num_videos,
            "image": self.image,
            "last_image": self.last_image,
            REFERENCES: list(self.reference_images),
            "source_video": self.source_video,
            "mask": self.mask,
            "mask_mode": self.mask_mode,
            "steps": self.steps,
            "guidance": self.guidance,
            "loras": [{"name": use.name, "scale": use.scale} for use in self.loras],
        }
        if self.source_video is None:
            fields |= {"aspect_ratio": self.aspect_ratio, "output_size": self.output_size}
        if self.mask is None:  # an edit keeps its source's length; an extension adds these seconds
            fields["duration_s"] = self.duration_s
        return fields

    def with_media(self, media: Mapping[str, bytes]) -> GenerationRequest:
        """This request with the media inputs `media` names (as `media` spells them) put back."""
        references = sorted(
            (int(name.rpartition(".")[2]), data)
            for name, data in media.items()
            if name.startswith(REFERENCES)
        )
        return replace(
            self,
            image=media.get("image"),
            last_image=media.get("last_image"),
            source_video=media.get("source_video"),
            mask=media.get("mask"),
            reference_images=tuple(data for _, data in references),
        )


# Inputs that are files, not parameters: kept out of the request's JSON, stored beside it.
MEDIA_FIELDS = ("image", "last_image", "source_video", "mask")
REFERENCES = "reference_images"
# The request field that asks for each capability (what an error about it names).
CAPABILITY_FIELDS = {
    Capability.TEXT: "image",  # text alone: an image-to-video model answers that the image is required
    Capability.FIRST_FRAME: "image",
    Capability.LAST_FRAME: "last_image",
    Capability.REFERENCE_IMAGES: REFERENCES,
    Capability.EXTEND: "source_video",
    Capability.MASK: "mask",
}
_CAN = {
    Capability.TEXT: "make video from text alone",
    Capability.FIRST_FRAME: "start a video on a given image",
    Capability.LAST_FRAME: "end a video on a given image",
    Capability.REFERENCE_IMAGES: "show the subjects of reference images",
    Capability.EXTEND: "extend a video",
    Capability.MASK: "edit a video inside a mask",
}


def needs_of(fields: Mapping[str, Any]) -> frozenset[Capability]:
    """What a request's inputs (raw fields or validated) ask of a model: the catalog routes by it."""
    if fields.get("source_video"):
        # A mask edits the video; without one, it is continued from its last frames.
        needs = {Capability.MASK if fields.get("mask") else Capability.EXTEND}
    else:
        needs = {Capability.FIRST_FRAME if fields.get("image") else Capability.TEXT}
    if fields.get("last_image"):
        needs.add(Capability.LAST_FRAME)
    if fields.get(REFERENCES):
        needs.add(Capability.REFERENCE_IMAGES)
    return frozenset(needs)


_STORED: TypeAdapter[GenerationRequest] = TypeAdapter(GenerationRequest)


@dataclass(frozen=True)
class Limits:
    max_prompt_chars: int = 32_000
    max_image_bytes: int = 20 * 1024 * 1024
    max_video_bytes: int = 24 * 1024 * 1024  # a source video to extend (base64 in a 32 MiB body)
    max_lora_rank: int = 128  # the rank a request's adapters may add up to: a compiled worker's slot


NO_LORAS: Mapping[str, Lora] = MappingProxyType({})


def build_request(
    fields: Mapping[str, Any], catalog: Catalog, limits: Limits, loras: Mapping[str, Lora] = NO_LORAS
) -> GenerationRequest:
    """Validate raw fields (strings from forms are fine) against the limits, the model's preset and
    the registered LoRA adapters (by name)."""
    unknown = set(fields) - _FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidRequest(name, f"is not a known field; known fields: {', '.join(sorted(_FIELDS))}")

    prompt = _required_text(fields.get("prompt"), "prompt", limits.max_prompt_chars)
    negative = _text(fields.get("negative_prompt"), "negative_prompt", MAX_NEGATIVE_PROMPT_CHARS)
    image = check_image(fields.get("image"), "image", limits.max_image_bytes)
    last_image = check_image(fields.get("last_image"), "last_image", limits.max_image_bytes)
    if last_image is not None and image is None:
        raise InvalidRequest("last_image", "needs a first frame: send image as well")
    references = _references(fields.get(REFERENCES), limits.max_image_bytes)
    source = fields.get("source_video") or None
    if source is not None and image is not None:
        raise InvalidRequest(
            "image", "cannot be sent with a video to extend: an extension starts from the video's last frames"
        )
    mask = check_image(fields.get("mask"), "mask", limits.max_image_bytes)
    mask_mode = _mask_mode(fields.get("mask_mode"), mask, source)
    needs = needs_of(
        {
            "image": image,
            "last_image": last_image,
            REFERENCES: references,
            "source_video": source,
            "mask": mask,
        }
    )
    preset = _preset(fields.get("model"), catalog, needs)

    aspect = fields.get("aspect_ratio")
    output_size = None
    if source is not None and mask is not None and mask_mode is not None:
        duration, aspect, output_size = _edit(source, mask, mask_mode, preset, fields, aspect, limits)
    elif source is not None:
        duration, aspect, output_size = _extension(source, preset, fields, aspect, limits)
    else:
        value = fields.get("duration_s")
        duration = preset.default_duration if value is None else _integer(value, "duration_s")
        if duration not in preset.durations:
            raise InvalidRequest(
                "duration_s", f"must be one of {_listing(preset.durations)} seconds; got {duration}"
            )
    if aspect is None or aspect == "":
        aspect = "16:9"
    if aspect not in preset.aspect_ratios:
        raise InvalidRequest(
            "aspect_ratio", f"must be one of {_listing(preset.aspect_ratios)}; got {aspect!r}"
        )

    num_videos = _integer(fields.get("num_videos", 1), "num_videos")
    if not 1 <= num_videos <= MAX_NUM_VIDEOS:
        raise InvalidRequest("num_videos", f"must be from 1 to {MAX_NUM_VIDEOS}; got {num_videos}")

    seed, drawn = _seed(fields.get("seed"))
    steps = _optional_int(fields.get("steps"), "steps", 1, preset.max_steps)
    if steps is not None and preset.timesteps is not None and steps != len(preset.timesteps):
        raise InvalidRequest(
            "steps", f"must be {len(preset.timesteps)}: {preset.name} samples at fixed timesteps; got {steps}"
        )
    guidance = _optional_float(fields.get("guidance"), "guidance", *GUIDANCE_RANGE)
    if source is None:
        output_size = _output_size(fields.get("output_size"), aspect)
    uses = _loras(fields.get("loras"), preset, catalog, loras, limits.max_lora_rank)

    return GenerationRequest(
        prompt=prompt,
        model=preset.name,
        seed=seed,
        duration_s=duration,
        aspect_ratio=aspect,
        negative_prompt=negative,
        num_videos=num_videos,
        image=image,
        last_image=last_image,
        reference_images=references,
        source_video=source,
        mask=mask,
        mask_mode=mask_mode,
        steps=steps,
        guidance=guidance,
        seed_was_random=drawn,
        output_size=output_size,
        loras=uses,
    )


_FIELDS = {
    "prompt",
    "negative_prompt",
    "model",
    "seed",
    "duration_s",
    "aspect_ratio",
    "num_videos",
    "image",
    "last_image",
    REFERENCES,
    "source_video",
    "mask",
    "mask_mode",
    "steps",
    "guidance",
    "output_size",
    "loras",
}


def _listing(values: tuple[Any, ...]) -> str:
    return ", ".join(str(v) for v in values)


def _required_text(value: Any, field: str, limit: int) -> str:
    text = _text(value, field, limit, required=True)
    assert text is not None  # _text raises for a required field without text
    return text


def _text(value: Any, field: str, limit: int, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise InvalidRequest(field, "is required and must be a non-empty string")
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(field, "must be a non-empty string")
    if problem := text_problem(value):
        raise InvalidRequest(field, problem)
    if len(value) > limit:
        raise InvalidRequest(field, f"must be at most {limit} characters; got {len(value)}")
    return value.strip()


def _preset(value: Any, catalog: Catalog, needs: frozenset[Capability]) -> Preset:
    """The preset named, or the one its alias routes a request with these inputs to."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest("model", f"is required; choose one of: {', '.join(catalog.names())}")
    try:
        return catalog.route(value, needs)
    except UnknownModel as exc:
        raise InvalidRequest("model", f"must be one of: {', '.join(exc.known)}; got {value!r}") from None
    except MissingCapability as exc:
        raise _refusal(exc) from None


def _refusal(exc: MissingCapability) -> InvalidRequest:
    field, name = CAPABILITY_FIELDS[exc.capability], exc.preset.name
    others = ", ".join(exc.serving) or "none in this catalog"
    if not exc.required:
        return InvalidRequest(
            field, f"is not supported by {name}; models that {_CAN[exc.capability]}: {others}"
        )
    if exc.capability == Capability.LAST_FRAME:
        return InvalidRequest(
            field, f"is required: {name} makes video between a first and a last image; models that start "
            f"on a first image alone: {others}",
        )  # fmt: skip
    return InvalidRequest(
        field, f"is required: {name} makes video from an image; models that make it from text alone: {others}"
    )


def _integer(value: Any, field: str) -> int:
    """Ints, integral floats and numeric strings ("5", "5.0") — what forms and JSON clients send."""
    if isinstance(value, bool):
        raise InvalidRequest(field, f"must be an integer; got {value!r}")
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InvalidRequest(field, f"must be an integer; got {value!r}") from None
    if not number.is_integer():
        raise InvalidRequest(field, f"must be an integer; got {value!r}")
    return int(number)


def _optional_int(value: Any, field: str, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    number = _integer(value, field)
    if not low <= number <= high:
        raise InvalidRequest(field, f"must be from {low} to {high}; got {number}")
    return number


def _optional_float(value: Any, field: str, low: float, high: float) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(field, f"must be a number from {low:g} to {high:g}; got {value!r}") from None
    if not low <= number <= high:
        raise InvalidRequest(field, f"must be a number from {low:g} to {high:g}; got {value!r}")
    return number


def _seed(value: Any) -> tuple[int, bool]:
    """None or -1 draws a random seed, which the result reports so the video can be made again."""
    if value is None or value == "":
        return secrets.randbelow(2**32), True
    seed = _integer(value, "seed")
    if seed == RANDOM_SEED:
        return secrets.randbelow(2**32), True
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequest("seed", f"must be -1 (random) or an integer from 0 to {MAX_SEED}; got {seed}")
    return seed, False


def _references(value: Any, max_bytes: int) -> tuple[bytes, ...]:
    """Asset references: images, or `{"image": ..., "type": "asset"}`; at most `MAX_REFERENCE_IMAGES`."""
    if value is None or value == "" or (isinstance(value, (list, tuple)) and not value):
        return ()
    if not isinstance(value, (list, tuple)):
        raise InvalidRequest(REFERENCES, "must be a list of images")
    if len(value) > MAX_REFERENCE_IMAGES:
        raise InvalidRequest(REFERENCES, f"may hold at most {MAX_REFERENCE_IMAGES} images; got {len(value)}")
    images = []
    for index, item in enumerate(value):
        field = f"{REFERENCES}[{index}]"
        entry = item if isinstance(item, Mapping) else {"image": item}
        kind = entry.get("type") or "asset"
        if set(entry) - {"image", "type"} or not isinstance(kind, str):
            raise InvalidRequest(field, 'must be an image, or {"image": ..., "type": "asset"}')
        if kind.lower() not in REFERENCE_TYPES:
            raise InvalidRequest(field, f"has the reference type {kind!r}; the types are asset and style")
        if kind.lower() == "style":
            raise InvalidRequest(
                field, f"is a {kind} reference; only asset references (a subject, an object or a scene the "
                "video shows) are served here: no open model here takes a style from an image",
            )  # fmt: skip
        image = check_image(entry.get("image"), field, max_bytes)
        if image is None:
            raise InvalidRequest(field, "must be the bytes of a PNG, JPEG or WebP image")
        images.append(image)
    return tuple(images)


def _source(source: Any, preset: Preset, limits: Limits) -> VideoInfo:
    """A source video (to extend or edit) the model can continue: its frame rate, enough frames,
    even sides."""
    info = probe_video(source, "source_video", limits.max_video_bytes)
    if abs(info.fps - preset.fps) > 0.01:
        raise InvalidRequest(
            "source_video", f"must be at {preset.fps} fps, the rate {preset.name} makes; got {info.fps:g} fps"
        )
    if info.frames < MIN_CONTEXT_FRAMES:
        raise InvalidRequest(
            "source_video", f"must have at least {MIN_CONTEXT_FRAMES} frames to continue; got {info.frames}"
        )
    if info.width % 2 or info.height % 2:
        raise InvalidRequest("source_video", f"must have even sides; got {info.width}x{info.height}")
    return info


def _shape_of(width: int, height: int, preset: Preset, field: str) -> str:
    """The aspect ratio of the preset's sizes nearest `width`x`height`, refused when none is close."""

    def mismatch(shape: str) -> float:  # against the size the model makes for it
        made_width, made_height = preset.size_for(shape)
        return abs(math.log((width / height) / (made_width / made_height)))

    shape = min(preset.aspect_ratios, key=mismatch)
    if mismatch(shape) > MAX_ASPECT_MISMATCH:
        raise InvalidRequest(
            field,
            f"is {width}x{height}; {preset.name} makes videos of aspect ratio "
            f"{_listing(preset.aspect_ratios)}",
        )
    return shape


def _keeps_shape(
    fields: Mapping[str, Any], aspect: Any, shape: str, size: tuple[int, int], what: str
) -> None:
    """An extension or an edit takes its shape from its inputs: a different one asked for is refused."""
    if aspect and aspect != shape:
        raise InvalidRequest("aspect_ratio", f"must be {shape}, the {what}'s, or left out; got {aspect!r}")
    if fields.get("output_size") not in (None, ""):
        raise InvalidRequest(
            "output_size", f"cannot be set here: the video keeps the {what}'s {size[0]}x{size[1]}"
        )


def _extension(
    source: Any,
    preset: Preset,
    fields: Mapping[str, Any],
    aspect: Any,
    limits: Limits,
) -> tuple[int, str, tuple[int, int]]:
    """An extension's (seconds added, aspect ratio, size): the source video's own shape and frame
    rate, which the model must make; `duration_s` counts only the new seconds (what is charged)."""
    info = _source(source, preset, limits)
    shape = _shape_of(info.width, info.height, preset, "source_video")
    _keeps_shape(fields, aspect, shape, (info.width, info.height), "source video")
    most = preset.max_extension_s
    value = fields.get("duration_s")
    duration = most if value is None else _integer(value, "duration_s")
    if not 1 <= duration <= most:
        raise InvalidRequest(
            "duration_s",
            f"must be from 1 to {most} seconds for an extension by {preset.name} (the seconds added); "
            f"got {duration}",
        )
    return duration, shape, (info.width, info.height)


def _mask_mode(value: Any, mask: bytes | None, source: Any) -> MaskMode | None:
    """The mode of a mask, which edits a source video: both or neither, and a mode served here."""
    if mask is None:
        if value not in (None, ""):
            raise InvalidRequest("mask_mode", "needs a mask: send the mask image as well")
        return None
    if not source:
        raise InvalidRequest("mask", "edits a video: send the video to edit as well")
    modes = ", ".join(MaskMode)
    if value in (None, ""):
        raise InvalidRequest("mask_mode", f"is required with a mask; one of {modes}")
    if not isinstance(value, str) or value.lower() not in MaskMode._value2member_map_:
        raise InvalidRequest("mask_mode", f"must be one of {modes}; got {value!r}")
    mode = MaskMode(value.lower())
    if mode in UNSERVED_MASK_MODES:
        raise InvalidRequest("mask_mode", f"{value} is not served here: it {UNSERVED_MASK_MODES[mode]}")
    return mode


def _edit(
    source: Any,
    mask: bytes,
    mode: MaskMode,
    preset: Preset,
    fields: Mapping[str, Any],
    aspect: Any,
    limits: Limits,
) -> tuple[int, str, tuple[int, int]]:
    """An edit's (seconds, aspect ratio, size). Insert and remove keep the source's shape and take a
    mask of it; an outpaint's mask is the new canvas (one of the model's shapes), and its white box is
    where the source goes. It is one pass, so the source is at most the model's trained length."""
    info = _source(source, preset, limits)
    if info.frames > preset.trained_frames:
        longest = preset.trained_frames / preset.fps
        raise InvalidRequest(
            "source_video",
            f"must be at most {preset.trained_frames} frames ({longest:.2f} s) to edit with {preset.name}, "
            f"one pass of the model; got {info.frames}",
        )
    box = mask_box(mask, "mask")
    if mode == MaskMode.OUTPAINT:
        shape = _shape_of(box.width, box.height, preset, "mask")
        if box.covers_all:
            raise InvalidRequest("mask", "is white all over: an outpaint's white box is where the source "
                                 "goes, and the black around it is made")  # fmt: skip
        size = preset.size_for(shape)
        left, top, right, bottom = box.box
        scale = min(size[0] / box.width, size[1] / box.height)
        if min(right - left, bottom - top) * scale < MIN_OUTPAINT_BOX:
            raise InvalidRequest(
                "mask", f"has a white box too small to hold the video: at least {MIN_OUTPAINT_BOX} pixels a "
                f"side at {preset.name}'s {size[0]}x{size[1]}",
            )  # fmt: skip
        what = "mask's canvas"
    else:
        shape = _shape_of(info.width, info.height, preset, "source_video")
        if abs(math.log((box.width / box.height) / (info.width / info.height))) > MAX_ASPECT_MISMATCH:
            raise InvalidRequest(
                "mask", f"is {box.width}x{box.height}; it must have the source video's aspect ratio "
                f"({info.width}x{info.height})",
            )  # fmt: skip
        size = (info.width, info.height)
        what = "source video"
    _keeps_shape(fields, aspect, shape, size, what)
    if fields.get("duration_s") not in (None, ""):
        raise InvalidRequest("duration_s", "cannot be set for an edit: it keeps the source video's length")
    return max(1, round(info.duration_s)), shape, size


def _ratio(aspect: str) -> float:
    across, down = (int(n) for n in aspect.split(":"))
    return across / down


def _output_size(value: Any, aspect: str) -> tuple[int, int] | None:
    """A final size ("1280x720" or (1280, 720)) close to the aspect ratio: the frames are scaled to
    cover it and center-cropped, so nothing is stretched; far-off shapes are refused, not distorted."""
    if value is None or value == "":
        return None
    sides = value.lower().split("x") if isinstance(value, str) else value
    if not isinstance(sides, (list, tuple)) or len(sides) != 2:
        raise InvalidRequest("output_size", f"must be WIDTHxHEIGHT, like 1280x720; got {value!r}")
    width, height = (_integer(side, "output_size") for side in sides)
    low, high = MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE
    if not (low <= width <= high and low <= height <= high) or width % 2 or height % 2:
        raise InvalidRequest(
            "output_size", f"sides must be even numbers from {low} to {high}; got {width}x{height}"
        )
    if abs(math.log((width / height) / _ratio(aspect))) > MAX_ASPECT_MISMATCH:
        raise InvalidRequest("output_size", f"{width}x{height} does not have the aspect ratio {aspect}")
    return width, height


def _loras(
    value: Any, preset: Preset, catalog: Catalog, registry: Mapping[str, Lora], max_rank: int
) -> tuple[LoraUse, ...]:
    """`[{"name": ..., "scale": ...}, ...]` (a bare name means scale 1): registered adapters that fit
    the preset, each once, at most `MAX_LORAS`."""
    if value is None or value == [] or value == "":
        return ()
    if not isinstance(value, (list, tuple)):
        raise InvalidRequest("loras", 'must be a list like [{"name": "my-style", "scale": 0.8}]')
    if len(value) > MAX_LORAS:
        raise InvalidRequest("loras", f"may name at most {MAX_LORAS} adapters; got {len(value)}")
    uses: list[LoraUse] = []
    ranks = 0
    for index, item in enumerate(value):
        field = f"loras[{index}]"
        entry = {"name": item} if isinstance(item, str) else item
        if not isinstance(entry, Mapping) or set(entry) - {"name", "scale"}:
            raise InvalidRequest(field, 'must be {"name": ..., "scale": ...} (scale optional, default 1)')
        name = entry.get("name")
        if not isinstance(name, str) or not LORA_NAME.match(name):
            raise InvalidRequest(f"{field}.name", f"must be the name of a registered adapter; got {name!r}")
        scale = _optional_float(entry.get("scale"), f"{field}.scale", *SCALE_RANGE)
        lora = registry.get(name)
        if lora is None:
            fitting = sorted(n for n, known in registry.items() if known.fits(preset))
            offer = f"adapters for {preset.name}: {', '.join(fitting)}" if fitting else "none fits it"
            raise InvalidRequest(f"{field}.name", f"{name!r} is not a registered adapter; {offer}")
        if not lora.fits(preset):
            fits = [p.name for p in catalog.presets.values() if lora.fits(p)]
            made_for = ", ".join(fits) or f"a model not served here ({lora.shape.backbone})"
            raise InvalidRequest(
                f"{field}.name", f"{name!r} is an adapter for {made_for}; not for {preset.name}"
            )
        if lora.problem:
            raise InvalidRequest(f"{field}.name", f"{name!r} cannot be used: {lora.problem}")
        if lora.shape.rank > max_rank:
            raise InvalidRequest(
                f"{field}.name",
                f"{name!r} has rank {lora.shape.rank}; this server takes adapters up to rank {max_rank}",
            )
        if any(use.name == name for use in uses):
            raise InvalidRequest(f"{field}.name", f"{name!r} is named twice")
        uses.append(LoraUse(name=name, sha256=lora.sha256, scale=1.0 if scale is None else scale))
        ranks += lora.shape.rank
    if ranks > max_rank:  # a compiled worker holds them side by side in one slot of that rank
        raise InvalidRequest(
            "loras", f"the adapters' ranks add up to {ranks}; this server takes up to {max_rank} per request"
        )
    return tuple(uses)
