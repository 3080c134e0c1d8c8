"""The one settings object: built once at start from `OPENVEO_*` variables and CLI flags, passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    aliases: dict[str, str] = Field(
        default_factory=dict, description="Extra or overriding protocol-name → preset aliases."
    )
    device: str = Field(
        default="auto", description="'auto' (CUDA if present, else CPU), 'cuda', 'cuda:1', 'cpu'."
    )
    auto_download: bool = Field(
        default=False, description="Fetch missing weights from the Hugging Face Hub on first load."
    )
    max_prompt_chars: int = Field(default=32_000, ge=1)
    max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    video_crf: int = Field(default=18, ge=0, le=51, description="x264 quality: lower is better and larger.")

    @property
    def model_root(self) -> Path:
        return self.models_dir or self.data_dir / "models"
