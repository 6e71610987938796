"""The release schema: one strict model for everything the edge and the sidecars are told.

Unknown keys are errors; value types (and their injection-proof patterns) are in `values.py`;
batching is the sidecar's own model, so the release and the sidecars cannot disagree on it.
(A little over 300 lines: the sections of a model are here, their own checks in `rollout.py`,
`shadow.py` and `sections.py`.)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from scripts.release.rollout import Rollout, check_rollout
from scripts.release.sections import (
    DEFAULT_POOL,
    EdgeSection,
    Pool,
    Scaling,
    SidecarsSection,
    Strict,
)
from scripts.release.shadow import Shadow, check_shadow
from scripts.release.values import (
    FALLBACK_STATUSES,
    HEADER_RE,
    NAME_RE,
    RATE_RE,
    Duration,
    PoolName,
    Size,
    check_fallback_body,
    check_key,
    check_upstreams,
    version_key,
)
from sidecar.serving.model_config import Batching


class ReleaseError(ValueError):
    """A release that must not be applied; the message is meant for the person who wrote it."""


# ---------------------------------------------------------------------------- sections


class Version(Strict):
    batching: Batching | None = None
    upstreams: list[str] | None = Field(
        None, description="explicit sidecars for this version: host:port or unix:/path.sock"
    )

    @field_validator("upstreams")
    @classmethod
    def _upstreams(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_upstreams(value)


class ReleasePolicy(Strict):
    split: dict[str, Annotated[float, Field(ge=0, le=100)]] | None = Field(
        None, description="percent per version, summing to 100 (at most 1 decimal)"
    )
    sticky_key: str = Field("remote_addr", description="remote_addr or header:NAME")
    force_header: str | None = Field(None, description="a header naming the version to use")

    @field_validator("split", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {version_key(k): v for k, v in value.items()}
        return value

    @field_validator("split")
    @classmethod
    def _split(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        for version, weight in value.items():
            if round(weight, 1) != weight:
                raise ValueError(f"weight {weight} of version {version}: at most 1 decimal")
        if abs(sum(value.values()) - 100) > 1e-6:
            raise ValueError(f"weights must sum to 100 (they sum to {sum(value.values()):g})")
        return value

    @field_validator("sticky_key")
    @classmethod
    def _sticky(cls, value: str) -> str:
        return check_key(value, ("remote_addr",))

    @field_validator("force_header")
    @classmethod
    def _force(cls, value: str | None) -> str | None:
        if value is not None and not HEADER_RE.fullmatch(value):
            raise ValueError("expected a header name: letters, digits and - (X-Weir-Version)")
        return value


class RateLimit(Strict):
    rate: str = Field(description="NNNr/s or NNNr/m")
    burst: int = Field(0, ge=0, le=1_000_000)
    nodelay: bool = True
    delay: int | None = Field(None, ge=0, le=1_000_000, description="requests served undelayed")
    key: str = Field("remote_addr", description="remote_addr | header:NAME | global")
    missing_key: Literal["remote_addr", "reject"] = Field(
        "remote_addr",
        description="key header:NAME, request without it: limited on its client's address "
        "(remote_addr) or refused with 401 (reject)",
    )
    zone_size: Size = Field(10 * 1024**2, description="shared memory for the keys")

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        if not RATE_RE.fullmatch(value):
            raise ValueError("expected requests per second or minute: 500r/s or 30r/m")
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_key(value, ("remote_addr", "global"))

    @model_validator(mode="after")
    def _delay(self) -> RateLimit:
        if self.delay is not None and self.delay > self.burst:
            raise ValueError(f"delay ({self.delay}) cannot exceed burst ({self.burst})")
        if self.missing_key != "remote_addr" and not self.key.startswith("header:"):
            raise ValueError("missing_key applies to key: header:NAME only; leave it out")
        return self

    @property
    def per_second(self) -> float:
        match = RATE_RE.fullmatch(self.rate)
        assert match
        return int(match.group(1)) / (1 if match.group(2) == "s" else 60)


class Breaker(Strict):
    failures: int = Field(5, ge=1, le=10_000, description="upstream failures that open it")
    window: Duration = Field(10.0, description="...counted within this window")
    open_for: Duration = Field(5.0, description="first open period; doubles on each re-open")
    max_open_for: Duration = Field(300.0, description="cap of the doubling")
    probes: int = Field(3, ge=1, le=1000, description="half-open probes that must succeed")

    @model_validator(mode="after")
    def _cap(self) -> Breaker:
        if self.max_open_for < self.open_for:
            raise ValueError("max_open_for must be at least open_for")
        return self


class Fallback(Strict):
    version: str | None = Field(None, description="answer with this version instead")
    status: int | None = Field(
        None, description=f"placeholder status: one of {', '.join(map(str, FALLBACK_STATUSES))}"
    )
    body: dict[str, Any] | list[Any] | None = Field(None, description="placeholder JSON body")

    @field_validator("status")
    @classmethod
    def _status(cls, value: int | None) -> int | None:
        if value is not None and value not in FALLBACK_STATUSES:
            allowed = ", ".join(map(str, FALLBACK_STATUSES))
            raise ValueError(
                f"a fallback answers with a JSON body: use one of {allowed} (200: a placeholder "
                "answer; 429 or 5xx: tell clients to retry)"
            )
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: Any) -> Any:
        return None if value is None else check_fallback_body(value)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        return None if value is None else version_key(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Fallback:
        if self.version is not None and (self.status is not None or self.body is not None):
            raise ValueError("a fallback is either {version: V} or {status: S, body: {...}}")
        if self.version is None and self.status is None:
            raise ValueError("give either version: V or status: S (with an optional body)")
        return self


class Model(Strict):
    versions: dict[str, Version] = Field(min_length=1)
    release: ReleasePolicy = ReleasePolicy()
    rate_limit: RateLimit | None = None
    breaker: Breaker = Breaker()
    fallback: Fallback | None = None
    timeout: Duration = Field(10.0, description="upstream read/send timeout per request")
    pool: PoolName = Field(DEFAULT_POOL, description="the sidecar pool serving it (sidecars.pools)")
    rollout: Rollout | None = Field(None, description="progressive delivery: `weir rollout`")
    shadow: Shadow | None = Field(None, description="shadow traffic: scripts/release/shadow.py")

    @field_validator("versions", mode="before")
    @classmethod
    def _version_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {version_key(k): ({} if v is None else v) for k, v in value.items()}
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        # render.py writes a fractional timeout in whole milliseconds, which `nginx -t` takes.
        if value > 3600:
            raise ValueError("timeout must be at most 1h")
        return value

    @model_validator(mode="after")
    def _references(self) -> Model:
        for version in self.release.split or {}:
            if version not in self.versions:
                raise ValueError(
                    f"release.split names version {version}, which is not under versions "
                    f"(versions: {', '.join(self.versions)})"
                )
        if self.fallback and self.fallback.version and self.fallback.version not in self.versions:
            raise ValueError(
                f"fallback.version {self.fallback.version} is not under versions "
                f"(versions: {', '.join(self.versions)})"
            )
        return self

    def weights(self) -> dict[str, float]:
        """The YAML's split, or everything on the newest version when none is given."""
        if self.release.split:
            return dict(self.release.split)
        newest = max(self.versions, key=int)
        return {v: (100.0 if v == newest else 0.0) for v in self.versions}


class Release(Strict):
    revision: int = Field(ge=1, le=2**53, description="must increase with every apply")
    edge: EdgeSection = EdgeSection()
    sidecars: SidecarsSection = SidecarsSection()
    models: dict[str, Model] = Field(min_length=1)
    scaling: Scaling | None = Field(None, description="autoscaling for `weir k8s`")

    @field_validator("models", mode="before")
    @classmethod
    def _model_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                if not isinstance(name, str) or not NAME_RE.fullmatch(name):
                    raise ValueError(
                        f"model name {name!r} is not allowed: lowercase letters, digits, _ and -, "
                        "starting with a letter or digit, at most 63 characters"
                    )
            # The rendered config spells a model's name with _ for - in nginx variables,
            # upstream and zone names: two names that differ only there would collide.
            seen: dict[str, str] = {}
            for name in value:
                other = seen.setdefault(name.replace("-", "_"), name)
                if other != name:
                    raise ValueError(
                        f"model names {other!r} and {name!r} differ only by - and _, which the "
                        "edge's nginx config spells the same: rename one of them"
                    )
        return value

    @model_validator(mode="after")
    def _pools_declared(self) -> Release:
        # Raised as its own error at models.NAME.pool: the message points at the model's line.
        errors = [
            InitErrorDetails(
                type=PydanticCustomError("pool_undeclared", problem),
                loc=("models", name, "pool"),
                input=model.pool,
            )
            for name, model in self.models.items()
            if (problem := self.sidecars.undeclared(name, model.pool))
        ]
        if errors:
            raise ValidationError.from_exception_data("Release", errors)
        return self

    @model_validator(mode="after")
    def _rollouts_and_shadows(self) -> Release:
        # Each at its rollout's or shadow's own line.
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(section, problem),
                loc=("models", name, section, key),
                input=getattr(getattr(model, section), key),
            )
            for name, model in self.models.items()
            for section, key, problem in _section_problems(model)
        ]
        if errors:
            raise ValidationError.from_exception_data("Release", errors)
        return self

    def pools(self) -> dict[str, Pool]:
        """The pools that run, in the order the release declares them (`default` first when
        some model is in it): a pool no model names runs no sidecar."""
        used = {model.pool for model in self.models.values()}
        names = [DEFAULT_POOL, *(p for p in self.sidecars.pools if p != DEFAULT_POOL)]
        return {name: self.sidecars.pool(name) for name in names if name in used}

    def pool_models(self, pool: str) -> list[str]:
        """The models the release places in `pool`."""
        return [name for name, model in self.models.items() if model.pool == pool]

    @property
    def longest_timeout(self) -> float:
        return max(model.timeout for model in self.models.values())


def _section_problems(model: Any) -> list[tuple[str, str, str]]:
    """(section, key, problem) of a model's rollout and shadow against the model itself."""
    found = []
    if model.rollout is not None:
        checked = check_rollout(model.rollout, model.versions, model.weights())
        found += [("rollout", key, problem) for key, problem in checked]
    if model.shadow is not None:
        found += [
            ("shadow", key, problem) for key, problem in check_shadow(model.shadow, model.versions)
        ]
    return found
