"""Counters whose label sets the settings make known are exported at 0 from the first scrape,
so a dashboard panel or an alert on them has data before anything happened."""

from __future__ import annotations

import re

TRANSITIONS = [
    ("closed", "open"),
    ("open", "half_open"),
    ("half_open", "closed"),
    ("half_open", "open"),
]
REASONS = ["killed", "breaker-open", "upstream-error", "overloaded"]


def _series(text: str, name: str) -> dict[str, str]:
    return dict(re.findall(rf"^{name}(\{{[^}}]*\}}) (\S+)$", text, re.MULTILINE))


def test_a_fresh_edge_exports_known_counters_at_zero(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    text = harness.metrics()
    transitions = _series(text, "weir_edge_breaker_transitions_total")
    expected = {
        f'{{model="digits",version="{version}",from="{source}",to="{target}"}}'
        for version in ("1", "2")
        for source, target in TRANSITIONS
    }
    assert set(transitions) == expected, text
    assert set(transitions.values()) == {"0"}
    fallbacks = _series(text, "weir_edge_fallbacks_total")
    assert fallbacks == {f'{{model="digits",reason="{reason}"}}': "0" for reason in REASONS}
    assert _series(text, "weir_edge_rate_limited_total") == {'{model="digits"}': "0"}


def test_a_counted_label_set_is_exported_once_with_its_count(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    status, _, _ = harness.admin_call("POST", "/admin/models/digits/kill")
    assert status == 200
    assert harness.infer("digits")[0] == 503
    killed = 'weir_edge_fallbacks_total{model="digits",reason="killed"}'
    text = harness.metrics(killed + " 1")
    assert text.count(killed) == 1, text
    assert 'weir_edge_fallbacks_total{model="digits",reason="overloaded"} 0' in text
