"""The analysis of one window, canary against stable: pure functions over counts.

A window is the difference of two readings of the same counters (`window`), or what a
Prometheus `increase()` over the interval gives; either way a `Signals` per version:

- `requests`: answers the version gave (edge: `weir_edge_requests_total`, any status; the
  edge's own 429s are not in it), `server_failures`: answers of the version that were the
  server's failure (marked 5xx, 502, 504: `weir_edge_server_failures_total`; the fallback then
  answered, and is counted under its own version). Attempts = requests + server failures.
  Client errors (4xx) are counted and shown, never judged.
- `latency`: the edge's upstream response-time histogram; p99 interpolated inside buckets as
  Prometheus' `histogram_quantile` does.
- `confidence`: the sidecars' top-1 confidence histogram; `classes`: rows per predicted class.
- `shadow_compared`, `shadow_agreed`: rows a version answered that a shadow version computed
  too, and those whose top-1 class they agree on (`agreement`: canary against stable).

Verdicts: FAIL when any bound is broken, else INCONCLUSIVE when either side has fewer than
`min_requests` attempts in the window (or a model signal fewer rows), else PASS. Too little
traffic is never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scripts.release.rollout import Analysis
from scripts.rollout.counts import Histogram, Signals
from scripts.rollout.stats import (
    agreement_upper,
    count_above,
    poisson_by_chance,
    psi,
    psi_by_chance,
    quantile,
)

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


def error_ratio(signals: Signals) -> float | None:
    """Server failures per attempt; None without attempts."""
    return signals.server_failures / signals.attempts if signals.attempts else None


def _bins(histogram: Histogram | None) -> dict[str, float]:
    if histogram is None:
        return {}
    return {f"{b:g}": c for b, c in zip(histogram.bounds, histogram.counts, strict=True)}


@dataclass(frozen=True)
class Check:
    name: str  # errors | p99 | confidence | classes | shadow
    verdict: str  # pass | fail | inconclusive
    text: str  # the figures, for a person
    figures: dict[str, float | None]


@dataclass(frozen=True)
class Verdict:
    verdict: str
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == FAIL]

    def summary(self) -> str:
        """The checks that decided, for a log line: the failed ones, else the inconclusive
        ones, else all."""
        if self.checks and self.checks[0].name == "traffic":
            return self.checks[0].text  # nothing else was judged
        picked = [c for c in self.checks if c.verdict == self.verdict and self.verdict != PASS]
        return "; ".join(c.text for c in (picked or self.checks))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{1000 * value:.1f} ms"


def check_errors(bounds: Analysis, stable: Signals, canary: Signals) -> Check:
    s, c = error_ratio(stable), error_ratio(canary)
    figures = {
        "stable_ratio": s,
        "canary_ratio": c,
        "canary_failures": canary.server_failures,
        "canary_attempts": canary.attempts,
        "canary_client_errors": canary.client_errors,
        "bound": bounds.max_error_ratio_delta,
    }
    if s is None or c is None:
        return Check("errors", INCONCLUSIVE, "error ratio: no requests on one side", figures)
    delta = c - s
    figures["delta"] = delta
    ok = delta <= bounds.max_error_ratio_delta
    text = (
        f"server errors canary {_pct(c)} ({canary.server_failures:g}/{canary.attempts:g}) vs "
        f"stable {_pct(s)}: {'+' if delta >= 0 else ''}{100 * delta:.2f} points "
        f"({'within' if ok else 'over'} {_pct(bounds.max_error_ratio_delta)})"
    )
    return Check("errors", PASS if ok else FAIL, text, figures)


def check_p99(bounds: Analysis, stable: Signals, canary: Signals) -> Check:
    s, c = quantile(stable.latency, 0.99), quantile(canary.latency, 0.99)
    figures = {"stable_p99": s, "canary_p99": c, "bound": bounds.max_p99_ratio}
    if s is None or c is None or canary.latency is None:
        return Check("p99", INCONCLUSIVE, "p99: no latency on one side", figures)
    ratio = c / s if s > 0 else math.inf if c > 0 else 1.0
    figures["ratio"] = ratio if math.isfinite(ratio) else None
    head = f"p99 canary {_ms(c)} vs stable {_ms(s)} (x{ratio:.2f}"
    if ratio <= bounds.max_p99_ratio:
        return Check("p99", PASS, f"{head}, within x{bounds.max_p99_ratio:g})", figures)
    if c - s <= bounds.p99_slack:
        slack = _ms(bounds.p99_slack)
        return Check(
            "p99", PASS, f"{head}, over x{bounds.max_p99_ratio:g} but within {slack})", figures
        )
    # A healthy canary has about 1% of its requests above stable's p99, fewer above the bound:
    # how many it has there says whether a high p99 is a slower version or a few unlucky ones.
    threshold = max(s * bounds.max_p99_ratio, s + bounds.p99_slack)
    above, total = count_above(canary.latency, threshold), canary.latency.total
    chance = poisson_by_chance(0.01 * total)
    figures.update(slow=above, slow_by_chance=chance)
    if above <= chance:
        text = (
            f"{head}, over x{bounds.max_p99_ratio:g}, but {above:.0f} of {total:g} requests above "
            f"{_ms(threshold)} is what chance gives (up to {chance:.0f}): holding for more)"
        )
        return Check("p99", INCONCLUSIVE, text, figures)
    text = (
        f"{head}, over x{bounds.max_p99_ratio:g} and {_ms(c - s)} slower; {above:.0f} of "
        f"{total:g} requests above {_ms(threshold)})"
    )
    return Check("p99", FAIL, text, figures)


def _check_psi(
    name: str,
    what: str,
    bound: float,
    stable: Mapping[str, float],
    canary: Mapping[str, float],
    min_rows: int,
) -> Check:
    value = psi(stable, canary)
    rows = (sum(stable.values()), sum(canary.values()))
    figures = {"psi": value, "bound": bound, "stable_rows": rows[0], "canary_rows": rows[1]}
    if value is None:
        return Check(name, INCONCLUSIVE, f"{what}: not measured (no rows on one side)", figures)
    chance = psi_by_chance(stable, canary)
    figures["by_chance"] = chance
    text = f"{what} PSI {value:.3f}"
    if value <= bound:
        if min(rows) < min_rows:
            return Check(name, INCONCLUSIVE, f"{text} on only {min(rows):g} rows", figures)
        return Check(name, PASS, f"{text} (within {bound:g})", figures)
    if value <= chance:
        # Over the bound, but samples this small drift that far by chance: more rows decide.
        text += f" (over {bound:g}, but {min(rows):g} rows can show {chance:.3f} by chance)"
        return Check(name, INCONCLUSIVE, text, figures)
    return Check(name, FAIL, f"{text} (over {bound:g})", figures)


def check_shadow(bounds: Analysis, agreed: float, compared: float) -> Check:
    """Top-1 agreement of the canary with stable on the same requests (shadow copies). Fails
    only when even the optimistic end of its confidence interval (Wilson's, z = CHANCE_Z: a
    healthy canary fails by chance less than once in a thousand windows) is under the bound;
    passes at or over the bound on `min_shadow_comparisons` rows; otherwise holds for more."""
    bound = bounds.min_shadow_agreement
    need = bounds.min_shadow_comparisons
    rate = agreed / compared if compared else None
    upper = agreement_upper(agreed, compared)
    figures = {
        "agreement": rate,
        "agreed": agreed,
        "compared": compared,
        "upper": upper,
        "bound": bound,
        "min_comparisons": need,
    }
    if rate is None:
        text = (
            "shadow agreement: no rows compared in this window (none sampled yet, or every "
            "copy shed or failed: weir_shadow_shed_total, weir_shadow_failures_total)"
        )
        return Check("shadow", INCONCLUSIVE, text, figures)
    text = f"shadow agreement {_pct(rate)} ({agreed:g}/{compared:g} rows)"
    if upper is not None and upper < bound:
        return Check("shadow", FAIL, f"{text}, under {_pct(bound)}", figures)
    if rate < bound:
        text += f" under {_pct(bound)}, but {compared:g} rows can show that by chance: holding"
        return Check("shadow", INCONCLUSIVE, text, figures)
    if compared < need:
        return Check("shadow", INCONCLUSIVE, f"{text} on only {compared:g} of {need}", figures)
    return Check("shadow", PASS, f"{text} (at least {_pct(bound)})", figures)


def agreement(
    signals: Mapping[str, Signals], canary: str, stable: Iterable[str]
) -> tuple[float, float]:
    """(agreed, compared) rows of the canary against the stable versions on the same
    requests: stable's answers the canary shadowed, and the canary's a stable one shadowed."""
    agreed = compared = 0.0
    mine = signals.get(canary, Signals())
    for version in stable:
        theirs = signals.get(version, Signals())
        agreed += theirs.shadow_agreed.get(canary, 0.0) + mine.shadow_agreed.get(version, 0.0)
        compared += theirs.shadow_compared.get(canary, 0.0) + mine.shadow_compared.get(version, 0.0)
    return agreed, compared


def judge(
    bounds: Analysis,
    min_requests: int,
    stable: Signals,
    canary: Signals,
    shadow: tuple[float, float] | None = None,
) -> Verdict:
    """The window's verdict, every check with its figures. `shadow`: (agreed, compared) rows
    of the canary against stable on the same requests (`agreement`), when the release shadows
    stable's requests to the canary."""
    checks = [check_errors(bounds, stable, canary), check_p99(bounds, stable, canary)]
    if stable.confidence is not None or canary.confidence is not None:
        checks.append(
            _check_psi(
                "confidence",
                "confidence",
                bounds.max_confidence_psi,
                _bins(stable.confidence),
                _bins(canary.confidence),
                min_requests,
            )
        )
    if stable.classes or canary.classes:
        checks.append(
            _check_psi(
                "classes",
                "predicted classes",
                bounds.max_class_psi,
                stable.classes,
                canary.classes,
                min_requests,
            )
        )
    if shadow is not None:
        checks.append(check_shadow(bounds, *shadow))
    few = min(stable.attempts, canary.attempts) < min_requests
    if few:
        side = "canary" if canary.attempts <= stable.attempts else "stable"
        count = min(stable.attempts, canary.attempts)
        checks.insert(
            0,
            Check(
                "traffic",
                INCONCLUSIVE,
                f"too little traffic: {side} had {count:g} of the {min_requests} requests "
                "a window needs",
                {"stable_attempts": stable.attempts, "canary_attempts": canary.attempts},
            ),
        )
        # Below min_requests nothing is judged: a few unlucky requests are no evidence.
        return Verdict(INCONCLUSIVE, checks)
    if any(c.verdict == FAIL for c in checks):
        return Verdict(FAIL, checks)
    if any(c.verdict == INCONCLUSIVE for c in checks):
        return Verdict(INCONCLUSIVE, checks)
    return Verdict(PASS, checks)
