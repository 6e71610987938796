"""A rollout's counts per version: what a window of the edge's and sidecars' counters holds,
and the window itself, the difference of two readings (scripts/rollout/analysis.py judges it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Histogram:
    """Upper bounds (the last may be inf) and the count in each bucket, not cumulative."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    @classmethod
    def from_cumulative(cls, buckets: Mapping[float, float]) -> Histogram:
        bounds = tuple(sorted(buckets))
        cumulative = [buckets[b] for b in bounds]
        counts = [c - p for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
        return cls(bounds, tuple(counts))

    @property
    def total(self) -> float:
        return sum(self.counts)

    def minus(self, earlier: Histogram) -> Histogram | None:
        if earlier.bounds != self.bounds:
            return None
        counts = tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True))
        return None if any(c < 0 for c in counts) else Histogram(self.bounds, counts)

    def plus(self, other: Histogram) -> Histogram:
        if other.bounds != self.bounds:
            raise ValueError("histograms with different buckets cannot be added")
        return Histogram(
            self.bounds, tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        )


@dataclass(frozen=True)
class Signals:
    """One version's counts, as read (cumulative) or over a window (a difference)."""

    requests: float = 0.0
    server_failures: float = 0.0
    client_errors: float = 0.0
    latency: Histogram | None = None
    confidence: Histogram | None = None
    classes: Mapping[str, float] = field(default_factory=dict)
    # By shadow version: rows this version answered that it computed too, and the rows of
    # those whose top-1 class it agreed with (sidecar: weir_shadow_*_total).
    shadow_compared: Mapping[str, float] = field(default_factory=dict)
    shadow_agreed: Mapping[str, float] = field(default_factory=dict)

    @property
    def attempts(self) -> float:
        return self.requests + self.server_failures


def _minus_hist(later: Histogram | None, earlier: Histogram | None) -> Histogram | bool | None:
    if later is None:
        return None
    if earlier is None:
        return later
    return later.minus(earlier) or False


def window(earlier: Signals, later: Signals) -> Signals | None:
    """The counts between two readings; None when a counter went back (an edge or sidecar
    restarted in between: the window says nothing and must start again)."""
    scalars = (
        later.requests - earlier.requests,
        later.server_failures - earlier.server_failures,
        later.client_errors - earlier.client_errors,
    )
    latency = _minus_hist(later.latency, earlier.latency)
    confidence = _minus_hist(later.confidence, earlier.confidence)
    classes = {k: v - earlier.classes.get(k, 0.0) for k, v in later.classes.items()}
    gone = set(earlier.classes) - set(later.classes)
    if min(scalars) < 0 or latency is False or confidence is False or gone:
        return None
    if any(v < 0 for v in classes.values()):
        return None
    compared = _minus_map(later.shadow_compared, earlier.shadow_compared)
    agreed = _minus_map(later.shadow_agreed, earlier.shadow_agreed)
    if compared is None or agreed is None:
        return None
    assert not isinstance(latency, bool) and not isinstance(confidence, bool)
    return Signals(
        *scalars,
        latency=latency,
        confidence=confidence,
        classes=classes,
        shadow_compared=compared,
        shadow_agreed=agreed,
    )


def _minus_map(later: Mapping[str, float], earlier: Mapping[str, float]) -> dict[str, float] | None:
    out = {k: v - earlier.get(k, 0.0) for k, v in later.items()}
    if set(earlier) - set(later) or any(v < 0 for v in out.values()):
        return None
    return out


def _plus_map(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + v
    return out


def combine(parts: Iterable[Signals]) -> Signals:
    """The stable side when several versions are stable: their counts summed."""
    total = Signals()
    for part in parts:
        classes = dict(total.classes)
        for k, v in part.classes.items():
            classes[k] = classes.get(k, 0.0) + v
        total = Signals(
            total.requests + part.requests,
            total.server_failures + part.server_failures,
            total.client_errors + part.client_errors,
            _plus(total.latency, part.latency),
            _plus(total.confidence, part.confidence),
            classes,
            _plus_map(total.shadow_compared, part.shadow_compared),
            _plus_map(total.shadow_agreed, part.shadow_agreed),
        )
    return total


def _plus(a: Histogram | None, b: Histogram | None) -> Histogram | None:
    if a is None:
        return b
    return a if b is None else a.plus(b)
