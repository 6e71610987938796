"""The release's sections that concern the whole machine or pod rather than one model: the edge's
listeners and process settings, the sidecars' devices and pools, and autoscaling for
`weir k8s`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scripts.release.values import POOL_RE, MemorySize, Size, check_listen


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


DEFAULT_POOL = "default"  # a model's pool when it names none


class Pool(Strict):
    """One sidecar pool: its own sidecar process group per device, serving only its models.
    Every setting left out is the sidecar's own default (no CPU set, no memory limit)."""

    workers: int | None = Field(
        None, ge=1, le=64, description="HTTP worker processes per sidecar (the sidecar's default)"
    )
    cpus: list[Annotated[int, Field(ge=0, le=1023)]] | None = Field(
        None, description="CPU indexes the pool's sidecars run on (default: inherited)"
    )
    memory: MemorySize | None = Field(
        None, description="memory limit per sidecar of the pool, e.g. 2g (default: none)"
    )

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError("list CPU indexes once each, at least one: [0, 1]; or leave cpus out")
        return value

    @property
    def intra_op_threads(self) -> int | None:
        """ONNX Runtime threads per session: the pool's CPUs shared by its workers (None: the
        sidecar decides), at least one. Given explicitly so that ORT never oversubscribes the
        CPU set."""
        if self.cpus is None:
            return None
        return max(1, len(self.cpus) // (self.workers or 1))


class SidecarsSection(Strict):
    devices: Literal["auto", "cpu"] | list[Annotated[int, Field(ge=0, le=63)]] = "auto"
    pools: dict[str, Pool] = Field(
        default_factory=dict,
        description="sidecar pools by name; a model joins one with `pool: NAME` (default: "
        "default, which may be configured here too)",
    )

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("list GPU indexes once each, at least one: [0, 1]")
        return value

    @field_validator("pools", mode="before")
    @classmethod
    def _pool_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                if not isinstance(name, str) or not POOL_RE.fullmatch(name):
                    raise ValueError(
                        f"pool name {name!r} is not allowed: lowercase letters, digits and -, "
                        "starting and ending with a letter or digit, at most 32 characters "
                        "(it names Kubernetes containers and files), e.g. heavy"
                    )
            return {name: ({} if spec is None else spec) for name, spec in value.items()}
        return value

    def undeclared(self, model: str, pool: str) -> str | None:
        """Why `model` cannot be in `pool` (None: it can)."""
        if pool == DEFAULT_POOL or pool in self.pools:
            return None
        names = f"it declares {', '.join(self.pools)}" if self.pools else "it declares none"
        return (
            f"model {model} is placed in pool {pool}, which sidecars.pools does not declare "
            f"({names}): declare it there (`{pool}: {{cpus: [1], memory: 2g}}`), name a "
            f"declared pool, or leave pool out (the {DEFAULT_POOL} pool)"
        )

    def pool(self, name: str) -> Pool:
        """A pool's settings: the declared ones, or the sidecar's defaults for `default`."""
        spec = self.pools.get(name)
        return Pool() if spec is None else spec


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
