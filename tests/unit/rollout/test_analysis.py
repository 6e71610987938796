"""The window analysis: deltas, error ratio, p99 from buckets, PSI, and the verdicts."""

from __future__ import annotations

import math
import random

import pytest

from scripts.release.rollout import Analysis
from scripts.rollout.analysis import FAIL, INCONCLUSIVE, PASS, error_ratio, judge, psi, quantile
from scripts.rollout.counts import Histogram, Signals, combine, window

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


def test_p99_of_nothing_is_none() -> None:
    assert quantile(hist((0.01, math.inf), [0, 0]), 0.99) is None
    assert quantile(None, 0.99) is None


def test_psi_of_identical_distributions_is_zero() -> None:
    counts = {str(c): 100.0 for c in range(10)}
    assert psi(counts, counts) == pytest.approx(0.0)


def test_psi_does_not_depend_on_the_sample_sizes() -> None:
    a = {"x": 10.0, "y": 30.0}
    assert psi(a, {"x": 1.0, "y": 3.0}) == pytest.approx(0.0)


def test_psi_of_a_class_never_predicted_is_large_not_infinite() -> None:
    stable = {str(c): 100.0 for c in range(10)}
    canary = {str(c): (0.0 if c == 3 else 100.0) for c in range(10)}
    value = psi(stable, canary)
    assert value is not None and 0.5 < value < 1.0


def test_psi_skips_bins_neither_side_saw() -> None:
    assert psi({"a": 5.0, "b": 0.0}, {"a": 7.0, "b": 0.0}) == pytest.approx(0.0)


def test_psi_of_two_samples_of_one_distribution_stays_under_the_default_bound() -> None:
    rng = random.Random(7)
    for _ in range(200):
        stable = {str(c): 0.0 for c in range(10)}
        canary = dict(stable)
        for _ in range(5000):
            stable[str(rng.randrange(10))] += 1
        for _ in range(200):  # min_requests of the default
            canary[str(rng.randrange(10))] += 1
        value = psi(stable, canary)
        assert value is not None and value < 0.2


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
    verdict = judge(Analysis(), 200, healthy(5000), healthy(500), shadow=(0.1, 480))
    assert [c.name for c in verdict.failed] == ["shadow"]
    assert "10.00%" in verdict.summary()
    assert judge(Analysis(), 200, healthy(5000), healthy(500), shadow=(0.99, 480)).verdict == PASS
