"""A model's shadow traffic in the release: which version computes a copy of a sampled share
of the model's requests, answering no client, so that its answers are compared with the live
ones (sidecar/serving/shadow.py).

```yaml
shadow: {version: "3", sample: 10%}   # sample: of the requests another version answers
```

The sidecar that answers a request computes its shadow copy (no second HTTP request, no JSON
parsed at the edge), so the shadow version must be served by the same sidecars as every other
version of the model: none may name `upstreams` of its own that the shadow does not share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, field_validator

from scripts.release.rollout import Percent
from scripts.release.sections import Strict
from scripts.release.values import version_key


class Shadow(Strict):
    version: str = Field(description="the version that computes the copies (answers no client)")
    sample: Annotated[Percent, Field(gt=0)] = Field(
        0.1, description="share of the requests other versions answer that are shadowed"
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        return version_key(value)


def check_shadow(shadow: Shadow, versions: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The shadow against its model, as (key, problem) pairs."""
    if shadow.version not in versions:
        return [
            (
                "version",
                f"shadow.version {shadow.version} is not under versions "
                f"(versions: {', '.join(versions)})",
            )
        ]
    own = versions[shadow.version].upstreams
    apart = [v for v, spec in versions.items() if spec.upstreams != own]
    if apart:
        where = f"upstreams {own}" if own else "the model's pool"
        return [
            (
                "version",
                f"shadow version {shadow.version} is served by {where}, but version(s) "
                f"{', '.join(apart)} by other sidecars: the sidecar that answers a request "
                "computes its shadow copy, so every version must be served by the same "
                "sidecars (give them the same `upstreams`, or none)",
            )
        ]
    return []
