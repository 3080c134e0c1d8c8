"""What `/openapi.json` says each route's body is. The routes read their bodies themselves (bodies.py:
JSON, multipart or urlencoded, one parser for all), so FastAPI cannot infer these; they are written
here, next to each other, and a fuzzer (schemathesis, tests/api/test_fuzz.py) sends what they
describe and more. Every body refuses names it does not list."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

TEXT: Schema = {"type": "string", "minLength": 1}
URL: Schema = {"type": "string", "format": "uri", "description": "an http(s) URL the server may reach"}
SEED: Schema = {"type": "integer", "minimum": -1, "description": "-1 or absent: a random seed"}
IMAGE: Schema = {
    "type": "string",
    "description": "a PNG, JPEG or WebP image: a data URL, bare base64 or an http(s) URL "
    "(a file part in multipart/form-data)",
}
LORAS: Schema = {
    "type": "array",
    "maxItems": 4,
    "description": "LoRA adapters the operator registered (GET /v1/loras), applied in order",
    "items": {
        "type": "object",
        "properties": {"name": TEXT, "scale": {"type": "number", "minimum": 0, "maximum": 2, "default": 1}},
        "required": ["name"],
        "additionalProperties": False,
    },
}
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def fields(properties: Schema, *, required: tuple[str, ...] = ("prompt",)) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def body(schema: Schema, *, forms: bool = True, files: tuple[str, ...] = ()) -> dict[str, Any]:
    """`openapi_extra` for a route whose body is `schema` as JSON and, with `forms`, as a form; the
    `files` may be uploaded as file parts of multipart/form-data."""
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if forms:
        form = {**schema, "properties": {**schema["properties"]}}
        for name in files:
            form["properties"][name] = {"type": "string", "format": "binary"}
        content.update({kind: {"schema": form} for kind in FORM_TYPES})
    return {"requestBody": {"required": True, "content": content}}


SEGMIND = fields(
    {
        "prompt": TEXT,
        "negative_prompt": {"type": "string"},
        "duration": {"type": "integer", "description": "seconds; the model's durations"},
        "aspect_ratio": {"type": "string", "enum": ["16:9", "9:16"]},
        "seed": SEED,
        "image": IMAGE,
        "last_frame": {**IMAGE, "description": f"the last frame, after image: {IMAGE['description']}"},
        "resolution": {"type": "string", "enum": ["720p", "1080p"]},
        "generate_audio": {"type": "boolean", "enum": [False], "description": "the models here are silent"},
        "webhook_url": URL,
        "lora": {"type": "string", "description": "a registered LoRA adapter's name (openveo)"},
        "lora_scale": {"type": "number", "minimum": 0, "maximum": 2},
    }
)

NATIVE = fields(
    {
        "prompt": TEXT,
        "negative_prompt": {"type": "string"},
        "model": {"type": "string", "description": "a preset or alias (GET /v1/models)"},
        "seed": SEED,
        "duration_s": {"type": "integer"},
        "aspect_ratio": {"type": "string", "enum": ["16:9", "9:16"]},
        "num_videos": {"type": "integer", "minimum": 1, "maximum": 4},
        "image": IMAGE,
        "last_image": {
            **IMAGE,
            "description": f"the last frame (image is the first): {IMAGE['description']}",
        },
        "reference_images": {
            "type": "array",
            "maxItems": 3,
            "description": "subjects, objects or scenes the video shows (asset references)",
            "items": IMAGE,
        },
        "source_video": {
            "description": 'a video to extend: {"id": JOB} (one of the caller\'s) or the MP4 (base64, '
            "a data URL or a file part); duration_s is then the seconds added",
            "oneOf": [
                {"type": "string"},
                fields({"id": TEXT, "index": {"type": "integer", "minimum": 0}}, required=("id",)),
            ],
        },
        "mask": {
            **IMAGE,
            "description": "with source_video: edit it inside this image's white region (an outpaint: "
            f"the white box is where the video goes on the mask's canvas). {IMAGE['description']}",
        },
        "mask_mode": {"type": "string", "enum": ["insert", "remove_static", "outpaint"]},
        "steps": {"type": "integer", "minimum": 1},
        "guidance": {"type": "number", "minimum": 0, "maximum": 30},
        "output_size": {"type": "string", "pattern": "^[0-9]+x[0-9]+$", "examples": ["1280x720"]},
        "loras": LORAS,
        "webhook_url": URL,
    }
)

OPENAI_CREATE = fields(
    {
        "prompt": TEXT,
        "model": {"type": "string", "default": "sora-2"},
        "seconds": {"type": "string", "enum": ["4", "8", "12"]},
        "size": {
            "type": "string",
            "pattern": "^[0-9]+x[0-9]+$",
            "description": "Sora's sizes (720x1280, 1280x720, 1024x1792, 1792x1024: scaled to), or, in "
            "the open servers' dialect, a size the model makes (832x480)",
        },
        "input_reference": IMAGE,
        "seed": SEED,
        "webhook_url": URL,
        "loras": LORAS,
        # the open servers' dialect (SGLang, vLLM-Omni, FastVideo)
        "num_frames": {"type": "integer", "minimum": 1},
        "fps": {"type": "integer", "minimum": 1},
        "num_inference_steps": {"type": "integer", "minimum": 1},
        "guidance_scale": {"type": "number", "minimum": 0, "maximum": 30},
        "negative_prompt": {"type": "string"},
    }
)

OPENAI_REMIX = fields({"prompt": TEXT})
OPENAI_EXTEND = fields(
    {
        "prompt": TEXT,
        "seconds": {"type": "string", "description": "the seconds added"},
        "video": {"description": 'the video to extend: {"id": "video_..."} or an MP4 file part'},
        "model": {"type": "string", "default": "sora-2"},
        "seed": SEED,
        "webhook_url": URL,
    },
    required=("prompt", "video"),
)

GOOGLE_IMAGE: Schema = {
    "type": "object",
    "properties": {"bytesBase64Encoded": {"type": "string"}, "mimeType": {"type": "string"}},
    "required": ["bytesBase64Encoded"],
}
GOOGLE_PREDICT = fields(
    {
        "instances": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": fields(
                {
                    "prompt": TEXT,
                    "image": GOOGLE_IMAGE,
                    "lastFrame": GOOGLE_IMAGE,
                    "referenceImages": {
                        "type": "array",
                        "maxItems": 3,
                        "items": fields(
                            {
                                "image": GOOGLE_IMAGE,
                                "referenceType": {"type": "string", "enum": ["asset", "ASSET"]},
                            },
                            required=("image",),
                        ),
                    },
                    "video": {
                        "type": "object",
                        "description": "to extend: bytesBase64Encoded (Vertex), encodedVideo or a uri this "
                        "server returned (Gemini)",
                        "properties": {
                            "bytesBase64Encoded": {"type": "string"},
                            "encodedVideo": {"type": "string"},
                            "uri": {"type": "string"},
                            "gcsUri": {"type": "string"},
                            "mimeType": {"type": "string"},
                            "encoding": {"type": "string"},
                        },
                    },
                    "mask": {
                        "type": "object",
                        "description": "with video: edit it inside the image's white region",
                        "properties": {
                            **GOOGLE_IMAGE["properties"],
                            "maskMode": {"type": "string", "enum": ["INSERT", "REMOVE_STATIC", "OUTPAINT"]},
                        },
                        "required": ["bytesBase64Encoded", "maskMode"],
                    },
                }
            ),
        },
        "parameters": {
            "type": "object",
            "properties": {
                "sampleCount": {"type": "integer", "minimum": 1, "maximum": 4},
                "durationSeconds": {"type": "integer"},
                "aspectRatio": {"type": "string", "enum": ["16:9", "9:16"]},
                "resolution": {"type": "string", "enum": ["720p"]},
                "fps": {"type": "integer"},
                "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
                "personGeneration": {"type": "string"},
                "negativePrompt": {"type": "string"},
                "enhancePrompt": {"type": "boolean"},
                "compressionQuality": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "webhookConfig": {
            "type": "object",
            "properties": {"uris": {"type": "array", "items": URL, "minItems": 1, "maxItems": 1}},
        },
    },
    required=("instances",),
)
GOOGLE_FETCH = fields(
    {"operationName": {"type": "string", "description": "the name predictLongRunning answered"}},
    required=("operationName",),
)
GOOGLE_VERTEX = body({"oneOf": [GOOGLE_PREDICT, GOOGLE_FETCH]}, forms=False)  # by the action

VIDEO: Schema = {"type": "string", "format": "binary"}
VERIFY = {
    "requestBody": {
        "required": True,
        "content": {
            "video/mp4": {"schema": VIDEO},
            "application/octet-stream": {"schema": VIDEO},
            "multipart/form-data": {"schema": fields({"file": VIDEO}, required=("file",))},
        },
    }
}
