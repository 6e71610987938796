"""The release's sections that concern the whole machine or pod rather than one model: the edge's
listeners and process settings, the sidecars' devices, and autoscaling for `weir k8s`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scripts.release.values import Size, check_listen


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EdgeSection(Strict):
    """The edge's listeners and process settings."""

    listen: str = Field("0.0.0.0:8080", description="data-plane port or host:port")
    admin_listen: str = Field("127.0.0.1:9901", description="admin API, loopback only")
    admin_auth: Literal["token", "open"] = Field(
        "token",
        description="token: bearer token required (env WEIR_ADMIN_TOKEN or the token file); "
        "open: no token, an explicit choice for a loopback-only admin listener",
    )
    max_body: Size = Field(16 * 1024**2, description="largest request body accepted")
    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=64)] = "auto"
    worker_connections: int = Field(4096, ge=64, le=65536)
    keepalive: int = Field(32, ge=0, le=1024, description="idle upstream connections per worker")
    access_log: bool = Field(False, description="write an access log (costs throughput)")
    metrics_listen: str | None = Field(
        None,
        description="a listener answering only GET /metrics and /metrics/sidecars/<device>, "
        "without a token (metrics carry no secrets), for a cluster's Prometheus; off by default",
    )

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: Any) -> str:
        return check_listen(value, loopback=False)

    @field_validator("admin_listen", mode="before")
    @classmethod
    def _admin_listen(cls, value: Any) -> str:
        return check_listen(value, loopback=True)

    @field_validator("metrics_listen", mode="before")
    @classmethod
    def _metrics_listen(cls, value: Any) -> str | None:
        return None if value is None else check_listen(value, loopback=False)

    @model_validator(mode="after")
    def _metrics_port_is_its_own(self) -> EdgeSection:
        if self.metrics_listen is not None:
            port = self.metrics_listen.rsplit(":", 1)[-1]
            taken = {a.rsplit(":", 1)[-1] for a in (self.listen, self.admin_listen)}
            if port in taken:
                raise ValueError(
                    f"metrics_listen {self.metrics_listen} shares a port with listen or "
                    "admin_listen: give the metrics listener its own port"
                )
        return self


class SidecarsSection(Strict):
    devices: Literal["auto", "cpu"] | list[Annotated[int, Field(ge=0, le=63)]] = "auto"

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("list GPU indexes once each, at least one: [0, 1]")
        return value


class Scaling(Strict):
    metric: Literal["queue", "inflight", "cpu"] = Field(description="`weir k8s`'s autoscaler")
    target: float = Field(gt=0, description="value to scale at (cpu: utilization percent)")
    min: int = Field(1, ge=1, le=1000)
    max: int = Field(8, ge=1, le=1000)

    @model_validator(mode="after")
    def _bounds(self) -> Scaling:
        if self.max < self.min:
            raise ValueError(f"scaling.max ({self.max}) is below scaling.min ({self.min})")
        return self
