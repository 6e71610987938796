"""Weir's Prometheus alert rules, generated from the release (each model's timeout budget).

    python -m scripts.observability.alerts release.yaml > scripts/observability/alerts.yml

What an on-call engineer is paged for: a model version answering errors, its p99 eating its
timeout budget, an open breaker, batching queues refusing work, a model version not ready, its
predictions drifting from their reference, a shadow version disagreeing with the live answers,
a rate-limit surge, and a scrape target gone. A test
keeps the committed file equal to this output for release.yaml; `promtool test rules` runs
tests/unit/observability/alerts_test.yml.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from scripts.args import add_release_file
from scripts.release import Release, ReleaseError, load_release

ERROR_RATIO = 0.05  # 5xx answers over all answers, per model and version
BUDGET = 0.8  # p99 above this fraction of the model's timeout
SURGE_RATIO = 0.10  # 429s over all requests, per model
DRIFT_PSI = 0.25  # PSI of a version's predictions against its reference: a real shift
DRIFT_MIN_ROWS = 500  # ... measured on at least this many rows (a smaller window is noise)
SHADOW_AGREEMENT = 0.9  # top-1 agreement of a shadow version with the live answers, at least
SHADOW_MIN_ROWS = 200  # ... over this many compared rows in 10 minutes
TIMEOUT = "weir:model_timeout_seconds"


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, desc: str) -> dict:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": desc},
    }


def rules(release: Release) -> dict[str, Any]:
    budgets = [
        {
            "record": TIMEOUT,
            "expr": f"vector({model.timeout:g})",
            "labels": {"model": name},
        }
        for name, model in sorted(release.models.items())
    ]
    answered = "sum by (model, version) (rate(weir_edge_requests_total[5m]))"
    alerts = [
        _alert(
            "WeirModelErrorRatioHigh",
            f'sum by (model, version) (rate(weir_edge_requests_total{{status=~"5.."}}[5m]))\n'
            f"  / {answered} > {ERROR_RATIO:g}\n"
            "unless on (model, version) weir_edge_killed == 1",
            "5m",
            "page",
            "{{ $labels.model }} v{{ $labels.version }}: {{ $value | humanizePercentage }} 5xx",
            'More than 5% of the edge\'s answers for this model version are 5xx (version "": '
            "the edge's own placeholder answers; not while a kill switch is on for it). Check "
            "its sidecar logs and breaker state.",
        ),
        _alert(
            "WeirModelP99NearTimeout",
            "histogram_quantile(0.99, sum by (le, model, version)\n"
            "  (rate(weir_edge_upstream_response_seconds_bucket[5m])))\n"
            f"  > on (model) group_left {BUDGET:g} * {TIMEOUT}",
            "10m",
            "page",
            "{{ $labels.model }} v{{ $labels.version }}: p99 {{ $value | humanizeDuration }} "
            "is over 80% of its timeout",
            "Upstream p99 at the edge uses more than 80% of the model's timeout budget: requests "
            "are about to time out. Look at queue wait vs compute; scale out or cut batch delay.",
        ),
        _alert(
            "WeirBreakerOpen",
            "max by (model, version) (weir_edge_breaker_state) == 1",
            "1m",
            "page",
            "{{ $labels.model }} v{{ $labels.version }}: circuit breaker open",
            "The edge stopped sending this version traffic after repeated upstream failures; "
            "its fallback answers. The sidecar is failing or gone.",
        ),
        _alert(
            "WeirQueueRejections",
            "sum by (model, version)\n"
            '  (rate(weir_inference_request_failure_total{reason="queue_full"}[5m])) > 0',
            "5m",
            "warn",
            "{{ $labels.model }} v{{ $labels.version }}: batching queue full "
            "({{ $value | humanize }}/s refused)",
            "The sidecar refuses requests because its batching queue is full: it is saturated. "
            "Scale out, or raise max_queue_size if latency allows.",
        ),
        _alert(
            "WeirModelNotReady",
            "min by (model, version, device) (weir_model_ready) == 0",
            "2m",
            "page",
            "{{ $labels.model }} v{{ $labels.version }} not ready on device {{ $labels.device }}",
            "A sidecar worker has not loaded (or lost) this model version.",
        ),
        _alert(
            "WeirPredictionDrift",
            "max by (model, version, signal) (\n"
            f"  weir_prediction_drift > {DRIFT_PSI:g}\n"
            f"  and weir_prediction_drift_rows >= {DRIFT_MIN_ROWS})",
            "15m",
            "warn",
            "{{ $labels.model }} v{{ $labels.version }}: {{ $labels.signal }} distribution "
            "drifted from its reference (PSI {{ $value | humanize }})",
            "Over the sidecar's last rows (weir_prediction_drift_rows) this version predicts "
            "differently from its reference.json (PSI over 0.25: a real shift). Its traffic "
            "changed (a new client, a broken feature pipeline upstream) or the model is wrong "
            "on it: compare the panels of predicted classes and confidence. If the new "
            "distribution is right, capture it: weir drift capture MODEL VERSION.",
        ),
        _alert(
            "WeirShadowDisagreement",
            "sum by (model, version, shadow) (rate(weir_shadow_agreements_total[10m]))\n"
            "  / sum by (model, version, shadow) (rate(weir_shadow_comparisons_total[10m]))\n"
            f"  < {SHADOW_AGREEMENT:g}\n"
            "and sum by (model, version, shadow) (increase(weir_shadow_comparisons_total[10m]))"
            f" >= {SHADOW_MIN_ROWS}",
            "10m",
            "warn",
            "{{ $labels.model }}: shadow v{{ $labels.shadow }} agrees with live "
            "v{{ $labels.version }} on {{ $value | humanizePercentage }} of rows",
            "The shadow version's top-1 class differs from the live answers on more than 10% "
            "of the same requests: do not promote it before you know why (a rollout judging "
            "agreement would roll it back). Compare the shadow's outputs on a few requests; "
            "if a different answer is intended (a model retrained on new labels), this is "
            "expected and the shadow has served its purpose: remove it from the release.",
        ),
        _alert(
            "WeirRateLimitSurge",
            "sum by (model) (rate(weir_edge_rate_limited_total[5m]))\n"
            "  / (sum by (model) (rate(weir_edge_requests_total[5m]))\n"
            "     + sum by (model) (rate(weir_edge_rate_limited_total[5m])))"
            f" > {SURGE_RATIO:g}",
            "10m",
            "warn",
            "{{ $labels.model }}: {{ $value | humanizePercentage }} of requests rate-limited",
            "More than 10% of this model's requests get 429: a client surge, or limits too low "
            "for real traffic (limits hold per edge replica).",
        ),
        _alert(
            "WeirScrapeTargetDown",
            'up{job=~"weir-.*"} == 0',
            "2m",
            "page",
            "{{ $labels.job }} {{ $labels.instance }} {{ $labels.device }} is not scraped",
            "Prometheus cannot scrape the edge's admin listener or a relayed sidecar: the "
            "edge is down, the token changed, or the sidecar is gone.",
        ),
    ]
    return {
        "groups": [
            {"name": "weir-budgets", "rules": budgets},
            {"name": "weir-alerts", "rules": alerts},
        ]
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    )


_Dumper.add_representer(str, _str)


def render(release: Release) -> str:
    head = (
        "# Weir alert rules, generated: python -m scripts.observability.alerts release.yaml\n"
        "# Tested by tests/unit/observability/alerts_test.yml (promtool test rules).\n"
    )
    return head + yaml.dump(rules(release), Dumper=_Dumper, sort_keys=False, width=100)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.observability.alerts")
    add_release_file(parser)
    args = parser.parse_args(argv)
    try:
        release = load_release(args.file).release
    except ReleaseError as exc:
        print(f"alerts: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render(release))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
