"""`weir_edge_server_failures_total`: a version's own failures, counted under that version
(its fallback's answer is counted under the fallback version), for a rollout's error ratio.
Only what the breaker counts: marked 5xx, 502/504; never an unmarked 500 or a 4xx."""

from __future__ import annotations

import re


def failures(text: str, version: str, status: int) -> int:
    match = re.search(
        rf'weir_edge_server_failures_total{{model="digits",version="{version}",'
        rf'status="{status}"}} (\d+)',
        text,
    )
    return int(match.group(1)) if match else 0


def test_a_marked_500_is_counted_under_the_version_that_failed(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams, breaker={"failures": 1000, "window": "10s"}))
    upstreams["2"].control(status=500, marked=True)
    for _ in range(3):
        code, headers, _ = harness.infer("digits", version="2")
        assert code == 200 and headers["x-weir-fallback"] == "upstream-error"
    text = harness.metrics('version="2",status="500"} 3')
    assert failures(text, "2", 500) == 3
    # The answers themselves came from version 1, and are counted there.
    assert 'weir_edge_requests_total{model="digits",version="1",status="200"} 3' in text


def test_a_connect_error_is_the_servers_failure_too(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams, breaker={"failures": 1000, "window": "10s"}))
    upstreams["2"].kill()
    code, _, _ = harness.infer("digits", version="2")
    assert code == 200
    assert failures(harness.metrics('version="2",status="502"} 1'), "2", 502) == 1


def test_an_unmarked_500_or_a_4xx_is_not_counted(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams, breaker={"failures": 1000, "window": "10s"}))
    upstreams["2"].control(status=500, marked=False)
    harness.infer("digits", version="2")
    upstreams["2"].control(status=400)
    harness.infer("digits", version="2")
    text = harness.metrics('version="2",status="400"} 1')
    assert "weir_edge_server_failures_total{" not in text, text
