"""The window analysis: deltas, error ratio, p99 from buckets, PSI, and the verdicts."""

from __future__ import annotations

import math
import random

import pytest

from scripts.release.rollout import Analysis
from scripts.rollout.analysis import FAIL, INCONCLUSIVE, PASS, Check, error_ratio, judge
from scripts.rollout.counts import Histogram, Signals, combine, window
from scripts.rollout.stats import count_above, poisson_by_chance, psi, psi_by_chance, quantile

BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, math.inf)
CONF = (0.5, 0.9, 0.99, 1.0, math.inf)


def hist(bounds: tuple[float, ...], counts: list[float]) -> Histogram:
    return Histogram(bounds, tuple(counts))


def healthy(n: float = 1000, failures: float = 0, scale: float = 1.0) -> Signals:
    """n requests with a latency spread over the low buckets, balanced classes."""
    latency = [0, n * 0.5, n * 0.4, n * 0.09, n * 0.01, 0, 0, 0]
    if scale != 1.0:  # everything slower: shift the counts up the buckets
        latency = [0, 0, 0, 0, n * 0.5, n * 0.4, n * 0.1, 0]
    return Signals(
        requests=n,
        server_failures=failures,
        latency=hist(BOUNDS, latency),
        confidence=hist(CONF, [n * 0.05, n * 0.15, n * 0.3, n * 0.5, 0]),
        classes={str(c): n / 10 for c in range(10)},
    )


# ------------------------------------------------------------------------ histograms, windows


def test_cumulative_buckets_become_per_bucket_counts() -> None:
    h = Histogram.from_cumulative({0.1: 2, 0.5: 5, math.inf: 6})
    assert h.bounds == (0.1, 0.5, math.inf) and h.counts == (2, 3, 1) and h.total == 6


def test_a_window_is_the_difference_of_two_readings() -> None:
    before = Signals(10, 1, 2, hist(CONF, [1, 2, 3, 4, 0]), None, {"1": 5})
    after = Signals(30, 2, 2, hist(CONF, [2, 4, 6, 8, 0]), None, {"1": 9, "2": 1})
    w = window(before, after)
    assert w is not None
    assert (w.requests, w.server_failures, w.client_errors) == (20, 1, 0)
    assert w.latency == hist(CONF, [1, 2, 3, 4, 0])
    assert dict(w.classes) == {"1": 4, "2": 1}


@pytest.mark.parametrize(
    "after",
    [
        Signals(5),  # an edge restart: its counters start at 0 again
        Signals(30, latency=hist(CONF, [0, 0, 0, 0, 0])),
        Signals(30, latency=hist(CONF, [1, 2, 3, 4, 0]), classes={}),  # class "1" gone
    ],
)
def test_a_counter_that_went_back_gives_no_window(after: Signals) -> None:
    before = Signals(10, latency=hist(CONF, [1, 2, 3, 4, 0]), classes={"1": 5})
    assert window(before, after) is None


def test_stable_versions_are_summed() -> None:
    both = combine([healthy(100, 1), healthy(300, 2)])
    assert both.requests == 400 and both.server_failures == 3
    assert both.latency is not None and both.latency.total == 400
    assert both.classes["3"] == 40


# ------------------------------------------------------------------------ figures


def test_error_ratio_counts_failures_among_attempts() -> None:
    # 95 answered, 5 failed and answered by the fallback: 5 of 100 attempts.
    assert error_ratio(Signals(requests=95, server_failures=5)) == pytest.approx(0.05)
    assert error_ratio(Signals()) is None


def test_p99_interpolates_inside_its_bucket_like_histogram_quantile() -> None:
    # 100 observations: 90 in (0, 0.01], 10 in (0.01, 0.05]; rank 99 is 9/10 into the second.
    h = hist((0.01, 0.05, math.inf), [90, 10, 0])
    assert quantile(h, 0.99) == pytest.approx(0.01 + 0.04 * 0.9)
    assert quantile(h, 0.5) == pytest.approx(0.01 * 50 / 90)


def test_p99_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert quantile(hist((0.01, 0.05, math.inf), [50, 0, 50]), 0.99) == 0.05


def test_observations_above_a_threshold_are_interpolated_in_its_bucket() -> None:
    h = hist((0.01, 0.05, math.inf), [90, 10, 4])
    assert count_above(h, 0.03) == pytest.approx(5 + 4)
    assert count_above(h, 0.0) == pytest.approx(104)
    assert count_above(h, 1.0) == pytest.approx(4)  # the +Inf bucket is above anything


def test_poisson_by_chance_is_its_upper_tail() -> None:
    # Exact 0.999 quantiles (scipy.stats.poisson.ppf): 9 for a mean of 2.57, 73 for 50.
    assert 9 <= poisson_by_chance(2.57) <= 11
    assert 73 <= poisson_by_chance(50) <= 76
    assert poisson_by_chance(0) == 0


def test_a_high_p99_from_a_few_slow_requests_holds_instead_of_failing() -> None:
    """Two shared cores: a canary of 257 requests whose 3 slowest met a stall elsewhere."""
    stable = Signals(5000, latency=hist(BOUNDS, [0, 2500, 2000, 450, 50, 0, 0, 0]))
    canary = Signals(257, latency=hist(BOUNDS, [0, 130, 100, 20, 3, 4, 0, 0]))
    verdict = judge(Analysis(), 200, stable, canary)
    (p99,) = [c for c in verdict.checks if c.name == "p99"]
    assert p99.verdict == INCONCLUSIVE and "what chance gives" in p99.text
    assert verdict.verdict == INCONCLUSIVE


def test_p99_of_nothing_is_none() -> None:
    assert quantile(hist((0.01, math.inf), [0, 0]), 0.99) is None
    assert quantile(None, 0.99) is None


def test_psi_of_identical_distributions_is_zero() -> None:
    counts = {str(c): 100.0 for c in range(10)}
    assert psi(counts, counts) == pytest.approx(0.0)


def test_psi_compares_shares_not_counts() -> None:
    a = {"x": 1000.0, "y": 3000.0}
    assert psi(a, {"x": 100.0, "y": 300.0}) == pytest.approx(0.0, abs=1e-4)


def test_psi_of_a_class_never_predicted_is_large_not_infinite() -> None:
    stable = {str(c): 100.0 for c in range(10)}
    canary = {str(c): (0.0 if c == 3 else 100.0) for c in range(10)}
    value = psi(stable, canary)
    assert value is not None and 0.5 < value < 1.0


def test_psi_skips_bins_neither_side_saw() -> None:
    assert psi({"a": 5.0, "b": 0.0}, {"a": 7.0, "b": 0.0}) == pytest.approx(0.0)


SHARES = [0.02, 0.03, 0.05, 0.05, 0.05, 0.1, 0.1, 0.1, 0.15, 0.15, 0.1, 0.1]


def _samples(rng: random.Random, n: int) -> dict[str, float]:
    counts = {str(b): 0.0 for b in range(len(SHARES))}
    for b in rng.choices(range(len(SHARES)), SHARES, k=n):
        counts[str(b)] += 1
    return counts


@pytest.mark.parametrize("rows", [50, 100, 200])
def test_two_samples_of_one_distribution_almost_never_fail(rows: int) -> None:
    """Small windows of identical versions go over 0.2 by chance (12 confidence buckets, 100
    rows: 1 window in 30); that is inconclusive, and fails about once in a thousand windows."""
    rng = random.Random(rows)
    verdicts = [
        judge_classes(_samples(rng, 5000), _samples(rng, rows), min_rows=rows) for _ in range(1000)
    ]
    assert verdicts.count(FAIL) <= 5, verdicts.count(FAIL)


def judge_classes(stable: dict[str, float], canary: dict[str, float], min_rows: int) -> str:
    n_s, n_c = sum(stable.values()), sum(canary.values())
    verdict = judge(
        Analysis(),
        min_rows,
        Signals(requests=n_s, classes=stable),
        Signals(requests=n_c, classes=canary),
    )
    (check,) = [c for c in verdict.checks if c.name == "classes"]
    return check.verdict


def test_a_psi_over_the_bound_that_chance_explains_holds_for_more_rows() -> None:
    stable = {str(c): 500.0 for c in range(10)}
    canary = {str(c): (0.0 if c == 3 else 90 / 9) for c in range(10)}  # 90 rows, no 3s
    check = psi_check(stable, canary)
    assert check.verdict == INCONCLUSIVE and "by chance" in check.text
    canary = {str(c): (0.0 if c == 3 else 300 / 9) for c in range(10)}
    assert psi_check(stable, canary).verdict == FAIL


def psi_check(stable: dict[str, float], canary: dict[str, float]) -> Check:
    verdict = judge(
        Analysis(),
        10,
        Signals(requests=5000, classes=stable),
        Signals(requests=300, classes=canary),
    )
    (check,) = [c for c in verdict.checks if c.name == "classes"]
    return check


def test_psi_by_chance_shrinks_with_the_rows() -> None:
    small = psi_by_chance({"a": 50.0, "b": 50.0}, {"a": 50.0, "b": 50.0})
    large = psi_by_chance({"a": 5000.0, "b": 5000.0}, {"a": 5000.0, "b": 5000.0})
    assert small > 10 * large > 0


# ------------------------------------------------------------------------ verdicts


def test_a_healthy_canary_passes_with_every_figure() -> None:
    verdict = judge(Analysis(), 200, healthy(5000), healthy(500))
    assert verdict.verdict == PASS
    assert [c.name for c in verdict.checks] == ["errors", "p99", "confidence", "classes"]
    assert all(c.verdict == PASS for c in verdict.checks)
    errors = verdict.checks[0]
    assert errors.figures["canary_ratio"] == 0 and errors.figures["delta"] == 0


def test_five_percent_server_failures_fail_on_the_error_ratio() -> None:
    canary = healthy(475, failures=25)
    verdict = judge(Analysis(), 200, healthy(5000, failures=5), canary)
    assert verdict.verdict == FAIL
    assert [c.name for c in verdict.failed] == ["errors"]
    assert verdict.failed[0].figures["canary_ratio"] == pytest.approx(0.05)
    assert "5.00%" in verdict.summary() and "over 0.50%" in verdict.summary()


def test_client_errors_are_shown_but_never_judged() -> None:
    canary = Signals(**{**healthy(500).__dict__, "client_errors": 400})
    verdict = judge(Analysis(), 200, healthy(5000), canary)
    assert verdict.verdict == PASS
    assert verdict.checks[0].figures["canary_client_errors"] == 400


def test_a_slower_canary_fails_on_p99() -> None:
    verdict = judge(Analysis(), 200, healthy(5000), healthy(500, scale=10))
    assert [c.name for c in verdict.failed] == ["p99"]


def test_a_p99_ratio_within_the_slack_passes() -> None:
    bounds = (0.001, 0.005, math.inf)
    stable = Signals(1000, latency=hist(bounds, [1000, 0, 0]))
    canary = Signals(1000, latency=hist(bounds, [0, 1000, 0]))
    assert judge(Analysis(), 200, stable, canary).verdict == PASS  # x5, but 4 ms apart
    tight = Analysis.model_validate({"p99_slack": "1ms"})
    assert judge(tight, 200, stable, canary).verdict == FAIL


def test_a_canary_that_never_predicts_one_class_fails_on_classes_alone() -> None:
    n = 500
    canary = Signals(
        **{
            **healthy(n).__dict__,
            "classes": {str(c): (0.0 if c == 3 else n / 9) for c in range(10)},
        }
    )
    verdict = judge(Analysis(), 200, healthy(5000), canary)
    assert [c.name for c in verdict.failed] == ["classes"]
    value = verdict.failed[0].figures["psi"]
    assert value is not None and value > 0.2


def test_collapsed_confidence_fails_on_confidence() -> None:
    canary = Signals(**{**healthy(500).__dict__, "confidence": hist(CONF, [400, 100, 0, 0, 0])})
    assert [c.name for c in judge(Analysis(), 200, healthy(5000), canary).failed] == ["confidence"]


@pytest.mark.parametrize(
    ("stable", "canary"), [(healthy(5000), healthy(150)), (healthy(150), healthy(5000))]
)
def test_too_few_requests_on_either_side_is_inconclusive_never_a_pass(
    stable: Signals, canary: Signals
) -> None:
    verdict = judge(Analysis(), 200, stable, canary)
    assert verdict.verdict == INCONCLUSIVE
    assert verdict.checks[0].name == "traffic" and "150 of the 200" in verdict.summary()


def test_no_traffic_at_all_is_inconclusive() -> None:
    verdict = judge(Analysis(), 200, healthy(5000), Signals())
    assert verdict.verdict == INCONCLUSIVE
    assert "canary had 0 of the 200" in verdict.summary()


def test_failures_below_min_requests_are_not_judged_yet() -> None:
    verdict = judge(Analysis(), 200, healthy(5000), healthy(90, failures=10))
    assert verdict.verdict == INCONCLUSIVE


def test_a_model_without_confidence_is_judged_on_the_rest() -> None:
    stable = Signals(1000, latency=hist(BOUNDS, [0, 1000, 0, 0, 0, 0, 0, 0]))
    canary = Signals(1000, latency=hist(BOUNDS, [0, 1000, 0, 0, 0, 0, 0, 0]))
    verdict = judge(Analysis(), 200, stable, canary)
    assert verdict.verdict == PASS and [c.name for c in verdict.checks] == ["errors", "p99"]


def test_shadow_agreement_below_its_bound_fails() -> None:
    verdict = judge(Analysis(), 200, healthy(5000), healthy(500), shadow=(48, 480))
    assert [c.name for c in verdict.failed] == ["shadow"]
    assert "10.00%" in verdict.summary()
    assert judge(Analysis(), 200, healthy(5000), healthy(500), shadow=(475, 480)).verdict == PASS
