"""The statistics of a rollout's analysis, on counts: a quantile from histogram buckets,
PSI between two distributions, and how far samples of one distribution stray by chance (so
that a small window is inconclusive rather than a failure)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from scripts.rollout.counts import Histogram

# PSI with Jeffreys' prior (PSI_PRIOR rows more in each bin: a zero would make it infinite):
# one definition, the sidecars' drift gauge's, so that the rollout and drift read alike.
from sidecar.serving.drift import PSI_PRIOR, psi

__all__ = ["PSI_PRIOR", "count_above", "poisson_by_chance", "psi", "psi_by_chance", "quantile"]

# A PSI over its bound fails only when samples of one distribution would exceed it by chance
# less than once in a thousand windows (z of the normal's 0.999 quantile): small windows of
# two identical models otherwise differ by more than 0.2 over 12 confidence buckets.
CHANCE_Z = 3.090


def quantile(histogram: Histogram | None, q: float) -> float | None:
    """The q-quantile, interpolated linearly inside its bucket (the first bucket starts at 0;
    in the +Inf bucket, the highest finite bound): Prometheus' `histogram_quantile`."""
    if histogram is None or histogram.total <= 0:
        return None
    rank = q * histogram.total
    seen, lower = 0.0, 0.0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
        if count > 0 and seen + count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - seen) / count
        seen += count
        if not math.isinf(bound):
            lower = bound
    return lower


def count_above(histogram: Histogram, threshold: float) -> float:
    """Observations above `threshold`, interpolated linearly inside its bucket."""
    above, lower = 0.0, 0.0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
        if lower >= threshold:
            above += count
        elif bound > threshold:
            share = 1.0 if math.isinf(bound) else (bound - threshold) / (bound - lower)
            above += count * share
        if not math.isinf(bound):
            lower = bound
    return above


def poisson_by_chance(mean: float) -> float:
    """A count a Poisson variable of this mean exceeds by chance less than once in a thousand
    draws: Wilson and Hilferty's quantile (z = CHANCE_Z), one or two above the exact one."""
    if mean <= 0:
        return 0.0
    return mean * (1 - 1 / (9 * mean) + CHANCE_Z / (3 * math.sqrt(mean))) ** 3


def psi_by_chance(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """The PSI that two samples of one distribution, of these sizes and over these bins, exceed
    by chance once in CHANCE windows: n_eff * PSI is about chi-square with bins - 1 degrees
    of freedom (n_eff = n1 n2 / (n1 + n2)); the quantile by Wilson and Hilferty."""
    n1, n2 = sum(expected.values()), sum(actual.values())
    used = {
        k for k in set(expected) | set(actual) if expected.get(k, 0) > 0 or actual.get(k, 0) > 0
    }
    k = max(len(used) - 1, 1)
    z = CHANCE_Z
    chi2 = k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3
    return chi2 * (n1 + n2) / (n1 * n2) if n1 > 0 and n2 > 0 else math.inf


def agreement_upper(agreed: float, compared: float) -> float | None:
    """The upper end of Wilson's score interval for a rate of agreed/compared (z = CHANCE_Z):
    a true rate above it gives so few agreements less than once in a thousand windows."""
    if compared <= 0:
        return None
    p, n, z2 = agreed / compared, compared, CHANCE_Z * CHANCE_Z
    centre = p + z2 / (2 * n)
    spread = CHANCE_Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z2 / n))
