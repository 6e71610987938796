"""Sidecar settings: command-line flags override `WEIR_*` environment variables override defaults.

Every field is documented; `Settings.from_env()` reads `WEIR_<FIELD>` (upper case). Read by
the server layer (launcher, gunicorn config, workers), which hands the serving layer explicit
values; the batching defaults are `sidecar.serving.model_config.Batching`'s, declared there once.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sidecar.serving.model_config import Batching

ENV_PREFIX = "WEIR_"
_BATCHING = Batching.model_fields


class Settings(BaseModel):
    """How one sidecar process group runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: str = Field("models", description="Model repository: <name>/<version>/model.onnx.")
    device: str = Field("cpu", description="'cpu', or the index of the GPU this sidecar owns.")
    host: str = Field("127.0.0.1", description="TCP address to bind when no socket is given.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to bind (0: any free port).")
    socket: str | None = Field(None, description="Unix socket path; replaces host and port.")
    workers: int = Field(
        0,
        ge=0,
        le=64,
        description="gunicorn worker processes; 0: one per CPU (at most 4) on cpu, 1 on a GPU.",
    )
    worker_class: Literal["uvicorn", "gthread", "meinheld"] = Field(
        "uvicorn",
        description="uvicorn: an asyncio loop per worker, models computing on threads of "
        "their own; gthread: a thread per request; meinheld: one event loop per worker, "
        "batches computing on it (needs the optional meinheld package).",
    )
    threads: int = Field(32, ge=1, description="Threads per worker under gthread.")
    write_timeout: float = Field(
        30.0,
        gt=0,
        description="Drop a client that has taken nothing of its answer for this many "
        "seconds (uvicorn worker).",
    )
    read_timeout: float = Field(
        60.0,
        gt=0,
        description="Answer 408 and close when a request (headers and body) has not arrived "
        "whole this many seconds after its first byte, or after connecting (uvicorn worker).",
    )
    max_connections: int = Field(
        4096,
        ge=1,
        description="Connections one worker holds at once; beyond them a new one is answered "
        "503 and closed (uvicorn; gthread waits for a free one).",
    )
    intra_op_threads: int = Field(
        0, ge=0, description="ORT intra-op threads per session; 0: CPUs divided by workers."
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes."
    )
    max_in_flight_bytes: int = Field(
        0,
        ge=0,
        description="Request bytes one worker holds at once (bodies being read, requests "
        "queued or computing), beyond which it answers 503; 0: max(256 MiB, 4 x max body).",
    )
    max_batch_size: int = Field(
        _BATCHING["max_batch_size"].default,
        ge=0,
        description="Default rows per batch for models whose config says nothing.",
    )
    max_queue_delay_ms: float = Field(
        _BATCHING["max_queue_delay_ms"].default,
        ge=0,
        description="Default wait for company before a partial batch runs (ms).",
    )
    max_queue_size: int = Field(
        _BATCHING["max_queue_size"].default,
        ge=1,
        description="Default bound on queued requests per model version.",
    )
    drain_seconds: float = Field(
        1.0, ge=0, description="After SIGTERM: seconds to keep serving with readiness 503."
    )
    graceful_timeout: int = Field(
        30, ge=1, description="Seconds from SIGTERM until workers are killed, drain included."
    )
    metrics_dir: str | None = Field(
        None, description="PROMETHEUS_MULTIPROC_DIR; default: a fresh temporary directory."
    )
    repository_poll_seconds: float = Field(
        2.0,
        ge=0,
        description="Rescan the model repository this often: new versions load while serving, "
        "removed ones retire (0: never).",
    )
    drift_window_rows: int = Field(
        1000,
        ge=10,
        description="Drift (weir_prediction_drift) is measured on at least this many of each "
        "version's latest rows.",
    )
    log_level: str = Field("info", description="gunicorn and sidecar log level.")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value != "cpu" and not value.isdigit():
            raise ValueError("device must be 'cpu' or a GPU index such as 0")
        return value

    def worker_count(self) -> int:
        """Workers to start: each holds one copy of every model."""
        if self.workers:
            return self.workers
        if self.device != "cpu":
            return 1
        return max(1, min(4, len(os.sched_getaffinity(0))))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from WEIR_* variables, then explicit overrides (flags) on top."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in env:
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def to_env(self) -> dict[str, str]:
        """The WEIR_* variables that reproduce these settings in a worker process."""
        return {
            ENV_PREFIX + name.upper(): str(value)
            for name, value in self.model_dump().items()
            if value is not None
        }
