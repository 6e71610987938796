"""Circuit breaker per version: which upstream outcomes open it, how probes close it, and that
the edge's own answers (429s, fallbacks) never count."""

from __future__ import annotations

import re
import time

import pytest

# (upstream answers in order, breaker state afterwards) with failures: 3 within 10s. "500m": a
# 500 marked `X-Weir-Failure: server`, the sidecar's own failure; "500": unmarked.
SEQUENCES = [
    (["500m", "500m", "500m"], "open"),
    (["502", "503m", "504"], "open"),  # 502/504 without the mark: no sidecar answered
    (["500m", "200", "500m", "200", "500m"], "open"),  # within the window, not in a row
    (["500m", "500m"], "closed"),
    (["500", "503", "500", "503", "500"], "closed"),  # unmarked: maybe the client's doing
    (["400", "404", "422", "400", "404"], "closed"),  # the client's mistakes
    (["200"] * 5, "closed"),
]


def _answer(upstream, answer: str) -> int:
    status = int(answer.rstrip("m"))
    upstream.control(status=0 if status == 200 else status, marked=answer.endswith("m"))
    return status


@pytest.mark.parametrize(("answers", "expected"), SEQUENCES)
def test_status_sequences(harness, upstreams, tools, answers, expected) -> None:
    harness.start(tools.two_versions(upstreams))
    for answer in answers:
        status = _answer(upstreams["2"], answer)
        code, headers, _ = harness.infer("digits", version="2")
        if status >= 500:
            # Never the sidecar's 5xx: the fallback version answers, marked.
            assert code == 200 and headers["x-weir-model-version"] == "1"
            reason = "overloaded" if status == 503 else "upstream-error"
            assert headers["x-weir-fallback"] == reason
            assert "x-weir-failure" not in headers
        else:
            assert code == status and "x-weir-fallback" not in headers
    assert harness.breaker("digits", "2") == expected
    assert harness.breaker("digits", "1") == "closed"


def test_a_hundred_client_caused_errors_leave_it_closed(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    client = tools.Client(harness.listen)
    try:
        for status in (500, 400):  # an older sidecar's unmarked 500 on a hostile body; a 400
            upstreams["2"].control(status=status, marked=False)
            for _ in range(100):
                code, _, _ = client.post("/v2/models/digits/versions/2/infer")
                assert code == (200 if status == 500 else 400)
    finally:
        client.close()
    assert upstreams["2"].count() == 200  # every one reached version 2: none was shed
    assert harness.breaker("digits", "2") == "closed"
    assert _transitions(harness, "closed", "open") == 0
    upstreams["2"].control(status=0)
    code, headers, _ = harness.infer("digits", version="2")
    assert code == 200 and headers["x-weir-model-version"] == "2"


def test_a_client_error_during_half_open_neither_closes_nor_reopens(
    harness, upstreams, tools
) -> None:
    harness.start(tools.two_versions(upstreams))  # probes: 2, open_for 1s
    upstreams["2"].control(status=500, marked=True)
    for _ in range(3):
        harness.infer("digits", version="2")
    opened = harness.status()["models"]["digits"]["versions"]["2"]["breaker"]
    assert opened["state"] == "open"
    while time.time() < opened["open_until"] + 0.05:
        time.sleep(0.05)
    for status in (400, 500):  # the client's mistake; an unmarked 500
        upstreams["2"].control(status=status, marked=False)
        code, _, _ = harness.infer("digits", version="2")
        assert code == (400 if status == 400 else 200)
        breaker = harness.status()["models"]["digits"]["versions"]["2"]["breaker"]
        assert breaker["state"] == "half_open"  # not closed, not re-opened for twice as long
        assert breaker["open_until"] == opened["open_until"]
    upstreams["2"].control(status=0)
    # The slots came back: the two probes that succeed are still to come.
    code, headers, _ = harness.infer("digits", version="2")
    assert code == 200 and headers["x-weir-model-version"] == "2"
    assert harness.breaker("digits", "2") == "half_open"
    harness.infer("digits", version="2")
    deadline = time.monotonic() + 5
    while harness.breaker("digits", "2") != "closed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert harness.breaker("digits", "2") == "closed"
    assert _transitions(harness, "half_open", "open") == 0


def test_timeouts_and_connect_errors_open_it(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    upstreams["2"].control(delay=1.5)  # longer than the 1s timeout
    for _ in range(3):
        code, headers, _ = harness.infer("digits", version="2")
        assert code == 200 and headers["x-weir-fallback"] == "upstream-error"
    assert harness.breaker("digits", "2") == "open"
    upstreams["1"].kill()  # now a connect error: fallback v1 is gone too
    for _ in range(3):
        code, headers, body = harness.infer("digits", version="1")
        assert code == 503 and headers["x-weir-fallback"] == "upstream-error" and "error" in body
        assert headers["retry-after"]
    assert harness.breaker("digits", "1") == "open"


def test_open_breaker_answers_with_fallback_and_probes_close_it(harness, upstreams, tools) -> None:
    models = tools.two_versions(upstreams)
    models["digits"]["breaker"].update(open_for="3s", max_open_for="6s")
    harness.start(models)
    upstreams["2"].control(status=500, marked=True)
    for _ in range(3):
        harness.infer("digits", version="2")
    calls = upstreams["2"].count()
    breaker = harness.status()["models"]["digits"]["versions"]["2"]["breaker"]
    assert breaker["state"] == "open"
    # While open, version 2 is not even asked; its share meets the fallback. Only requests
    # sent well before open_until are sure to meet an open breaker, however slow this machine.
    asked = 0
    while asked < 10 and time.time() < breaker["open_until"] - 0.5:
        code, headers, _ = harness.infer("digits", version="2")
        assert (
            headers["x-weir-fallback"] == "breaker-open" and headers["x-weir-model-version"] == "1"
        )
        asked += 1
    assert upstreams["2"].count() == calls
    # Fallback answers never feed a breaker: one transition to open, not more.
    assert _transitions(harness, "closed", "open") == 1

    upstreams["2"].control(status=0)
    while time.time() < breaker["open_until"] + 0.05:
        time.sleep(0.05)
    for _ in range(2):  # probes: 2
        code, headers, _ = harness.infer("digits", version="2")
        assert code == 200 and headers["x-weir-model-version"] == "2"
        assert "x-weir-fallback" not in headers
    # The last probe's outcome is recorded in nginx's log phase, after its answer went out.
    deadline = time.monotonic() + 5
    while harness.breaker("digits", "2") != "closed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert harness.breaker("digits", "2") == "closed"
    assert _transitions(harness, "open", "half_open") == 1
    assert _transitions(harness, "half_open", "closed") == 1


def test_failed_probe_reopens_for_twice_as_long(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    upstreams["2"].control(status=500, marked=True)
    for _ in range(3):
        harness.infer("digits", version="2")
    time.sleep(1.1)
    before = time.time()
    harness.infer("digits", version="2")  # the probe fails
    after = time.time()
    status = harness.status()["models"]["digits"]["versions"]["2"]["breaker"]
    assert status["state"] == "open"
    # Reopened for 2 x open_for (2 s) from a moment within the probe's request (the edge's
    # clock has millisecond resolution).
    assert before + 2.0 - 0.01 <= status["open_until"] <= after + 2.0 + 0.01
    assert _transitions(harness, "half_open", "open") == 1


def test_rate_limited_requests_never_count(harness, upstreams, tools) -> None:
    # 1r/m, burst 1: two requests pass, however slowly the 20 are sent (under a minute).
    models = tools.two_versions(upstreams, rate_limit={"rate": "1r/m", "burst": 1, "key": "global"})
    harness.start(models)
    upstreams["2"].control(status=500, marked=True)
    codes = [harness.infer("digits", version="2")[0] for _ in range(20)]
    assert codes.count(429) >= 17
    reached = upstreams["2"].count()
    assert reached < 3
    assert harness.breaker("digits", "2") == "closed"  # only `reached` real failures so far


def _transitions(harness, source: str, target: str) -> int:
    pattern = (
        r'weir_edge_breaker_transitions_total\{model="digits",version="2",'
        rf'from="{source}",to="{target}"\}} (\d+)'
    )
    match = re.search(pattern, harness.metrics())
    return int(match.group(1)) if match else 0
