"""The one settings object: built once at start from `OPENVEO_*` variables and CLI flags, passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from openveo.core.catalog import Capability, Catalog


def _default_data_dir() -> Path:
    return Path.home() / ".openveo"


class Settings(BaseSettings):
    """Everything an operator can change. Dict values are given as JSON in the environment."""

    model_config = SettingsConfigDict(env_prefix="OPENVEO_", extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir, description="Databases, results and tiny models."
    )
    models_dir: Path | None = Field(
        default=None, description="Local model copies, one folder per preset name (default: DATA_DIR/models)."
    )
    model: str = Field(default="wan2.2-ti2v-5b", description="Default model (preset name or alias).")
    fast_model: str | None = Field(
        default=None,
        description="What Google's fast ids (veo-3.1-fast-generate-001, ...) run, e.g. "
        "wan2.2-ti2v-5b-fast; a worker must serve it (default: MODEL).",
    )
    aliases: dict[str, str] = Field(
        default_factory=dict, description="Extra or overriding protocol-name → preset aliases."
    )
    capability_models: dict[Capability, str] = Field(
        default_factory=dict,
        description="For a request under a protocol model name (veo-2, sora-2, ...) whose model cannot do "
        'what it asks, the preset that can, per capability: {"last_frame": "wan2.1-flf2v-14b-720p"}; '
        "a worker must serve it (docs/api.md).",
    )
    device: str = Field(
        default="auto", description="'auto' (CUDA if present, else CPU), 'cuda', 'cuda:1', 'cpu'."
    )
    auto_download: bool = Field(
        default=False, description="Fetch missing weights from the Hugging Face Hub on first load."
    )
    max_prompt_chars: int = Field(default=32_000, ge=1)
    max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_video_bytes: int = Field(
        default=24 * 1024 * 1024, ge=1, description="Largest source video a request may extend."
    )
    video_crf: int = Field(default=18, ge=0, le=51, description="x264 quality: lower is better and larger.")

    # Service
    host: str = Field(default="127.0.0.1", description="Address the API server listens on.")
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach this server at (default: from the request's Host and "
        "X-Forwarded-* headers). Absolute result URLs start with it.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL (default: sqlite in DATA_DIR/openveo.db)."
    )
    storage: str | None = Field(
        default=None,
        description="Where results go: s3://BUCKET/PREFIX (any S3-compatible store) or a local "
        "directory (default: DATA_DIR/results).",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible store that is not AWS (MinIO, Ceph, R2...)."
    )
    workers: int | None = Field(
        default=None, ge=0, description="Worker processes `serve` spawns (default: one per GPU, else one)."
    )
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="Largest request body.")
    retention_s: int = Field(default=3600, ge=1, description="How long results stay downloadable.")
    queue_timeout_s: int = Field(
        default=24 * 3600, ge=1, description="A job still queued after this long expires (refunded)."
    )
    lease_s: float = Field(default=30.0, gt=0, description="A worker's claim on a job lasts this long.")
    max_attempts: int = Field(default=3, ge=1, description="Runs of a job before it fails for good.")
    rate_limit_per_minute: int = Field(
        default=120, ge=0, description="Generation requests per key per minute (0: no limit)."
    )
    initial_credits: float = Field(
        default=100.0, ge=0, description="Credits of the key `serve` makes when there is none."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Logs of serve and worker: readable lines, or JSON objects with request and job ids.",
    )
    admin_token: str | None = Field(
        default=None, description="Bearer token for /v1/admin/* (unset: the admin endpoints are off)."
    )
    webhook_retry_s: float = Field(
        default=5.0, gt=0, description="First webhook retry delay; later ones grow to an hour."
    )
    allow_image_urls: bool = Field(
        default=True, description="Fetch http(s) image URLs given as image-to-video input."
    )
    outbound_allow: str = Field(
        default="",
        description="Internal destinations the server may send to (image URLs, webhooks), comma-separated "
        "CIDR ranges and host names, e.g. 10.0.0.0/8,hooks.internal; everything not public is refused "
        "otherwise (docs/api.md#outbound-requests).",
    )

    # Provenance (docs/provenance.md): every video is watermarked and carries signed Content Credentials.
    watermark: bool = Field(
        default=True, description="Embed the invisible watermark (deployment + job) in every video."
    )
    c2pa: bool = Field(default=True, description="Sign a C2PA manifest into every MP4.")
    c2pa_cert: Path | None = Field(
        default=None,
        description="PEM certificate chain (signing certificate first) for C2PA manifests "
        "(default: one made in DATA_DIR/c2pa on first start).",
    )
    c2pa_key: Path | None = Field(default=None, description="PEM private key of OPENVEO_C2PA_CERT.")
    c2pa_trust_anchors: Path | None = Field(
        default=None, description="PEM root certificates `verify` trusts besides this data dir's own."
    )

    # Content policy (docs/provenance.md#content-policy): checked before a job is accepted.
    blocked_terms: str | None = Field(
        default=None, description="Words or phrases refused in prompts, comma-separated (any case)."
    )
    blocked_terms_file: Path | None = Field(
        default=None, description="More blocked terms: one per line or comma-separated; # comments."
    )
    blocked_patterns: list[str] = Field(
        default_factory=list, description="Regular expressions refused in prompts (a JSON list)."
    )
    moderation_url: str | None = Field(
        default=None, description="Moderation webhook asked about every prompt before it is accepted."
    )
    moderation_token: str | None = Field(default=None, description="Bearer token for the moderation webhook.")
    moderation_timeout_s: float = Field(default=10.0, gt=0)
    moderation_fail_open: bool = Field(
        default=False, description="Accept prompts when the moderation webhook fails (default: refuse)."
    )
    person_generation: Literal["dont_allow", "allow_adult", "allow_all"] = Field(
        default="allow_adult",
        description="People in videos: none, adults only (Veo's default), or all; requests may only "
        "ask for stricter.",
    )

    # Engine speed: docs/performance.md says what each knob does and what it costs.
    attention: str = Field(
        default="auto",
        description="Attention backend: 'auto' (the fastest this GPU has) or a diffusers backend name "
        "(native, flash, _flash_3, _native_cudnn, sage, ...).",
    )
    compile: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Regional torch.compile of the repeated transformer blocks, warmed up for every "
        "served shape before the first job ('auto': on with CUDA).",
    )
    batch_cfg: bool = Field(
        default=True, description="Run the prompt and negative-prompt passes as one batch (Wan)."
    )
    vae_tiling: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Tiled VAE decode ('auto': only when an untiled decode runs out of memory).",
    )
    vae_dtype: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="The Wan VAE's precision on a GPU ('auto': bf16 when, on this model's weights, it "
        "decodes a probe latent within 40 dB PSNR of fp32; else fp32 as Wan's authors run it).",
    )
    offload: Literal["none", "model", "group", "sequential"] = Field(
        default="none", description="Keep weights in CPU memory for GPUs too small for the model."
    )
    quantize: Literal["none", "fp8"] = Field(
        default="none", description="Opt-in: fp8 weights and activations in the transformer (torchao)."
    )
    step_cache: str = Field(
        default="none",
        description="Opt-in step caching: none, first-block[:THRESHOLD] or taylorseer[:INTERVAL].",
    )
    lora_max_rank: int = Field(
        default=128,
        ge=1,
        le=1024,
        description="Largest total LoRA rank of one request's adapters; a compiled transformer "
        "reserves a slot of this rank, so that switching adapters compiles nothing new (docs/loras.md).",
    )
    lora_dirs: str = Field(
        default="",
        description="Folders whose *.safetensors LoRAs `serve` registers at start under their file "
        "names, separated by ':' like PATH.",
    )
    lora_price_per_second: float = Field(
        default=0.0, ge=0, description="Credits per second of video for each LoRA a request applies."
    )
    lora_cache_gib: float = Field(
        default=4.0,
        ge=0,
        description="CPU memory a worker keeps for adapters it has loaded, least recently used "
        "dropped first (the GPU keeps the last few in use).",
    )
    gpus_per_video: int = Field(
        default=1, ge=1, description="GPUs that share one video (CFG-parallel, then context-parallel)."
    )
    context_parallel: Literal["ulysses", "ring"] = Field(
        default="ulysses", description="How GPUs beyond CFG-parallel split the sequence."
    )

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        import re

        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"blocked pattern {pattern!r} is not a regular expression: {exc}") from None
        return patterns

    @field_validator("step_cache")
    @classmethod
    def _known_step_cache(cls, value: str) -> str:
        from openveo.core.modes import parse_step_cache

        parse_step_cache(value)
        return value

    @property
    def lora_folders(self) -> list[Path]:
        return [Path(part).expanduser() for part in self.lora_dirs.split(os.pathsep) if part]

    @property
    def model_root(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    def catalog(self) -> Catalog:
        """Presets plus aliases, with the protocol names (veo-2, sora-2, ...) pointing at `model`."""
        return Catalog(
            aliases=self.aliases,
            default_model=self.model,
            fast_model=self.fast_model,
            capability_models=self.capability_models,
        )

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'openveo.db'}"

    @property
    def staging_dir(self) -> Path:
        """Where a worker writes result files whole before storing them."""
        return self.data_dir / "staging"
