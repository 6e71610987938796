"""A model's rollout policy in the release: which version is the canary, the weights it steps
through, how long each window lasts, and the bounds its analysis holds it to.

```yaml
rollout:
  canary: "3"
  steps: [1, 5, 25, 50, 100]      # percent of the model's traffic; the last one is 100
  interval: 60s                   # one analysis window
  min_requests: 200               # per version and window: fewer is inconclusive, never a pass
  analysis:
    max_error_ratio_delta: 0.5%   # canary's server-failure ratio minus stable's
    max_p99_ratio: 1.3            # canary's p99 over stable's ...
    p99_slack: 5ms                # ... and only when they differ by more than this
    max_confidence_psi: 0.2       # top-1 confidence distribution, canary vs stable
    max_class_psi: 0.2            # predicted-class distribution, canary vs stable
    min_shadow_agreement: 95%     # top-1 agreement on shadowed requests (shadow: the canary)
    min_shadow_comparisons: 100   # rows compared before agreement can pass
```

Everything but `canary` has a default; what each bound means is in scripts/rollout/analysis.py.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from scripts.release.sections import Strict
from scripts.release.values import Duration, version_key

PERCENT_RE = re.compile(r"\A([0-9]{1,3}(?:\.[0-9]{1,4})?)%\Z")


def parse_percent(value: Any) -> float:
    """'0.5%' -> 0.005. Written with its % so that nobody wonders whether 0.5 means half."""
    if not isinstance(value, str) or not (match := PERCENT_RE.fullmatch(value)):
        raise ValueError("expected a percentage written with %, such as 0.5% or 95%")
    number = float(match.group(1))
    if number > 100:
        raise ValueError("a percentage is at most 100%")
    return number / 100


Percent = Annotated[float, BeforeValidator(parse_percent)]


class Analysis(Strict):
    """Bounds on canary vs stable over one window; a failed bound rolls the canary back."""

    max_error_ratio_delta: Percent = Field(
        0.005, description="server failures (5xx, timeouts) per request, canary minus stable"
    )
    max_p99_ratio: float = Field(1.3, ge=1.0, le=100.0, description="canary p99 / stable p99")
    p99_slack: Duration = Field(
        0.005, description="a p99 ratio fails only when the p99s also differ by more than this"
    )
    max_confidence_psi: float = Field(
        0.2, gt=0, le=10, description="PSI of the top-1 confidence distributions"
    )
    max_class_psi: float = Field(
        0.2, gt=0, le=10, description="PSI of the predicted-class distributions"
    )
    min_shadow_agreement: Percent = Field(
        0.95, description="top-1 agreement with the live answer on shadowed requests"
    )
    min_shadow_comparisons: int = Field(
        100, ge=1, le=10_000_000, description="rows compared before agreement can pass"
    )


class Rollout(Strict):
    canary: str = Field(description="the version rolled out")
    steps: list[Annotated[float, Field(gt=0, le=100)]] = Field(
        [1, 5, 25, 50, 100],
        min_length=1,
        max_length=100,
        description="the canary's percent at each step, increasing, ending at 100",
    )
    interval: Duration = Field(60.0, description="one analysis window")
    min_requests: int = Field(
        200, ge=1, le=10_000_000, description="per version and window; fewer is inconclusive"
    )
    analysis: Analysis = Analysis()

    @field_validator("canary", mode="before")
    @classmethod
    def _canary(cls, value: Any) -> Any:
        return version_key(value)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[float]) -> list[float]:
        for step in value:
            if round(step, 1) != step:
                raise ValueError(f"step {step:g}: at most 1 decimal, like the split's weights")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("steps must increase: [1, 5, 25, 50, 100]")
        if value[-1] != 100:
            raise ValueError(
                "the last step must be 100: the rollout ends with the canary serving all"
            )
        return value

    @model_validator(mode="after")
    def _interval(self) -> Rollout:
        if self.interval < 1 or self.interval > 86400:
            raise ValueError("interval must lie between 1s and 24h")
        return self


def check_rollout(
    rollout: Rollout, versions: dict[str, Any], split: dict[str, float]
) -> list[tuple[str, str]]:
    """The rollout against its model, as (key, problem) pairs: the canary is one of its
    versions, and some other version has weight to be the stable one."""
    if rollout.canary not in versions:
        return [
            (
                "canary",
                f"rollout.canary {rollout.canary} is not under versions "
                f"(versions: {', '.join(versions)})",
            )
        ]
    if not any(v != rollout.canary and weight > 0 for v, weight in split.items()):
        return [
            (
                "canary",
                "the release's split gives no version but the canary "
                f"{rollout.canary} any weight: there is no stable version to compare it with; "
                'give the stable version(s) the weight, e.g. release: {split: {"2": 100}}',
            )
        ]
    return []
