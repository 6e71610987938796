"""The Lua settings: what `weir render/apply` writes to settings.json for the edge's Lua.

Twin: lua/weir/settings.lua, whose FIELDS declares every field Lua reads, with its type (and
checks them when it loads the file). The JSON schema generated from `LuaSettings`
(lua_settings.schema.json, next to this file) is committed; tests/unit/edge/test_lua_settings.py
fails when it is stale and checks Lua's declaration against it and against rendered samples.
Regenerate it with:

    .venv/bin/python -m scripts.edge.lua_settings
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scripts.edge import names
from scripts.release import Release
from scripts.runtime import RuntimeDir

SCHEMA_PATH = Path(__file__).with_name("lua_settings.schema.json")
# Sticky buckets per model: weights resolve to 0.1 %, the schema's precision. Two hashes of
# 25 and 40 buckets (4 % and 2.5 %, exact in split_clients' two decimals) make the 1000.
HIGH, LOW = 25, 40
BUCKETS = HIGH * LOW


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerSettings(_Settings):
    failures: int = Field(description="upstream failures within the window that open it")
    window: float = Field(description="seconds the failures are counted over")
    open_for: float = Field(description="first open period, seconds; doubles on each re-open")
    max_open_for: float = Field(description="cap of the doubling, seconds")
    probes: int = Field(description="half-open probes that must succeed to close it")
    probe_ttl: float = Field(
        description="seconds after which a probe slot whose request never reported is given back"
    )


class FallbackSettings(_Settings):
    """Either `version`, or a placeholder `status` with its `body`."""

    version: str | None = Field(None, description="answer with this version instead")
    status: int | None = Field(None, description="placeholder status")
    body: str | None = Field(None, description="placeholder body, JSON text")

    @model_validator(mode="after")
    def _one_kind(self) -> FallbackSettings:
        if (self.version is None) == (self.status is None or self.body is None):
            raise ValueError("a fallback is either a version or a status with a body")
        return self


class ModelSettings(_Settings):
    versions: list[str] = Field(description="the release's versions, in order")
    upstreams: dict[str, str] = Field(description="version -> nginx upstream name")
    weights: dict[str, float] = Field(description="version -> the release's weight (any scale)")
    force_var: str | None = Field(
        None, description="nginx variable of the header that forces a version, if any"
    )
    bucket_hi_var: str = Field(description="nginx variable: split_clients' first sticky hash")
    bucket_lo_var: str = Field(description="nginx variable: split_clients' second sticky hash")
    fallback: FallbackSettings
    breaker: BreakerSettings
    retry_after: int = Field(description="Retry-After seconds of a rate-limited answer")
    shadow_version: str | None = Field(
        None, description="the version named in X-Weir-Shadow on sampled requests, if any"
    )
    shadow_sample: float | None = Field(
        None, description="share (0 to 1] of the other versions' requests shadowed"
    )


class LuaSettings(_Settings):
    revision: int = Field(description="the release's revision")
    buckets: int = Field(description="sticky buckets per model (high x low)")
    low_buckets: int = Field(description="buckets of the second hash")
    admin_auth: Literal["token", "open"] = Field(description="the admin API's authentication")
    admin_listen: str = Field(description="the admin listener (read by `weir apply`, not Lua)")
    token_file: str = Field(description="the admin token file, when WEIR_ADMIN_TOKEN is unset")
    state_file: str = Field(description="where live overrides (kills, splits) are persisted")
    models: dict[str, ModelSettings]
    wiring: str = Field(description="hash of what needs a reload to change (nginx.conf, ...)")
    checksum: str = Field(description="checksum of the whole revision (render sums the rest)")


def _placeholder(name: str) -> dict[str, str]:
    return {"error": f"model {name} is unavailable at the moment; retry shortly"}


def _fallback(name: str, release: Release) -> FallbackSettings:
    fallback = release.models[name].fallback
    if fallback is not None and fallback.version is not None:
        return FallbackSettings(version=fallback.version)
    status = fallback.status if fallback is not None and fallback.status is not None else 503
    body = fallback.body if fallback is not None and fallback.body is not None else None
    text = json.dumps(_placeholder(name) if body is None else body, separators=(",", ":"))
    return FallbackSettings(status=status, body=text)


def lua_settings(release: Release, runtime: RuntimeDir, wiring: str) -> LuaSettings:
    """What the Lua modules read at start: one entry per model, times in seconds."""
    models: dict[str, ModelSettings] = {}
    for name, model in release.models.items():
        limit = model.rate_limit
        force = model.release.force_header
        models[name] = ModelSettings(
            versions=list(model.versions),
            upstreams={v: names.upstream_name(name, v) for v in model.versions},
            weights=model.weights(),
            force_var=names.header_var(force) if force else None,
            bucket_hi_var=names.bucket_hi_var(name),
            bucket_lo_var=names.bucket_lo_var(name),
            fallback=_fallback(name, release),
            # A probe slot is given back if its request never reports (client gone).
            breaker=BreakerSettings(**model.breaker.model_dump(), probe_ttl=2 * model.timeout + 5),
            retry_after=max(1, math.ceil(1 / limit.per_second)) if limit else 1,
            shadow_version=model.shadow.version if model.shadow else None,
            shadow_sample=model.shadow.sample if model.shadow else None,
        )
    return LuaSettings(
        revision=release.revision,
        buckets=BUCKETS,
        low_buckets=LOW,
        admin_auth=release.edge.admin_auth,
        admin_listen=release.edge.admin_listen,
        token_file=str(runtime.token_file),
        state_file=str(runtime.state_file),
        models=models,
        wiring=wiring,
        checksum="",  # render sums everything else first, then sets it
    )


def as_json(settings: LuaSettings, *, checksum: bool = True) -> dict[str, Any]:
    """The settings as settings.json holds them (absent, not null, where a field is unset)."""
    exclude = None if checksum else {"checksum"}
    return settings.model_dump(mode="json", exclude_none=True, exclude=exclude)


def schema_text() -> str:
    return json.dumps(LuaSettings.model_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH}", file=sys.stderr)
