"""Per-model `config.yaml`: batching, labels, NaN/Inf policy, image limits and an optional
model class (pre- and post-processing in Python, `sidecar.serving.model_class`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    from sidecar.codec.images import ImageLimits


class Batching(BaseModel):
    """Dynamic batching for one model (all versions, unless a version overrides it).

    The one declaration of batching and its defaults: `sidecar.settings` takes its defaults
    from here (a sidecar's `WEIR_MAX_BATCH_SIZE` etc. then stand for fields a config.yaml leaves
    out), and the release schema may import it. A field counts as given only when it is in
    `model_fields_set`: a version override that names one field inherits the others from the
    model's `batching`, then from the sidecar's settings. `null` is the same as leaving it out.
    """

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(64, ge=0, description="Rows per batch; 0 runs each request alone.")
    max_queue_delay_ms: float = Field(
        0.0,
        ge=0,
        description="Longest a request waits for company while the model is idle and its "
        "batch not full (0: batch what arrives together, never wait; under load, requests "
        "that arrive while a batch computes form the next one either way).",
    )
    max_queue_size: int = Field(
        256, ge=1, description="Queued requests beyond this are refused with 503."
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_not_given(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    def given(self, key: str) -> Any:
        """The field's value when this config sets it, else None (inherit)."""
        return getattr(self, key) if key in self.model_fields_set else None


ImageFormat = Literal["PNG", "JPEG"]
IMAGE_FORMATS: tuple[ImageFormat, ...] = ("PNG", "JPEG")


class Images(BaseModel):
    """Limits on each encoded image a model class decodes (`ModelContext.decode_image`)."""

    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(
        8 * 1024 * 1024, ge=1, description="Largest encoded image file, in bytes."
    )
    max_pixels: int = Field(
        4096 * 4096,
        ge=1,
        le=64 * 1024 * 1024,
        description="Most pixels (width x height) an image may declare; checked from its "
        "header before anything is decoded (decompression bombs).",
    )
    max_images: int = Field(
        64,
        ge=1,
        description="Most encoded images (BYTES elements) one request may carry: each costs "
        "a decode, so the body limit alone would let thousands of small files in.",
    )
    formats: list[ImageFormat] = Field(
        default_factory=lambda: list(IMAGE_FORMATS), min_length=1, description="Accepted formats."
    )

    def limits(self) -> ImageLimits:
        from sidecar.codec.images import ImageLimits  # Pillow: only where images are decoded

        return ImageLimits(self.max_bytes, self.max_pixels, tuple(self.formats))


class ModelConfig(BaseModel):
    """Everything optional: a model folder without config.yaml uses the sidecar defaults."""

    model_config = ConfigDict(extra="forbid")

    batching: Batching = Field(default_factory=Batching)
    versions: dict[str, Batching] = Field(
        default_factory=dict, description="Per-version batching overrides."
    )
    nan_policy: Literal["reject", "allow"] = Field(
        "reject", description="Float inputs holding NaN or Inf: refuse with 400, or pass."
    )
    labels: list[str] | None = Field(None, description="Class names, in output order.")
    confidence_output: str | None = Field(
        None, description="Output whose top value feeds the confidence histogram (default: first)."
    )
    confidence: Literal["auto", "probabilities", "logits", "none"] = Field(
        "auto", description="How to read the confidence output; auto: softmax unless in [0,1]."
    )
    model_class: str | None = Field(
        None,
        description="Python file in the model folder defining class Model (pre- and "
        "post-processing, the signature clients see): sidecar/serving/model_class.py.",
    )
    hook: str | None = Field(
        None,
        description="The older name: a file defining postprocess(outputs, labels) (or a "
        "Model class), loaded as model_class is.",
    )
    images: Images = Field(default_factory=Images)

    @model_validator(mode="after")
    def _one_model_file(self) -> ModelConfig:
        if self.model_class and self.hook:
            raise ValueError("give model_class or hook (its older name), not both")
        return self

    @property
    def model_file(self) -> str | None:
        return self.model_class or self.hook


class ConfigError(ValueError):
    """config.yaml is unreadable or invalid; the message names the file and the key."""


CONFIG_FILE = "config.yaml"


def load_model_config(model_dir: Path) -> ModelConfig:
    path = model_dir / CONFIG_FILE
    if not path.exists():
        return ModelConfig()
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        return ModelConfig.model_validate(doc)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
