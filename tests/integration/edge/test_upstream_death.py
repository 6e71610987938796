"""SIGKILL one version's sidecar under load: only successes or marked fallbacks reach clients,
the breaker opens, and once the sidecar is back its probes close the breaker."""

from __future__ import annotations

import threading
import time
from collections import Counter


def test_sigkill_under_load(harness, upstreams, tools) -> None:
    models = tools.two_versions(upstreams)
    models["digits"]["breaker"] = {
        "failures": 3,
        "window": "10s",
        "open_for": "1s",
        "max_open_for": "2s",
        "probes": 2,
    }
    harness.start(models)
    answers: Counter[str] = Counter()
    bad: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load(index: int) -> None:
        client = tools.Client(harness.listen)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                status, headers, _ = client.post(
                    "/v2/models/digits/infer", headers={"X-User-Id": f"{index}-{n}"}
                )
            except Exception as exc:
                with lock:
                    bad.append(repr(exc))
                continue
            with lock:
                if status == 200:
                    fallback = headers.get("x-weir-fallback", "")
                    answers[f"v{headers['x-weir-model-version']}:{fallback}"] += 1
                else:
                    bad.append(f"{status} {headers.get('x-weir-fallback')}")
            time.sleep(0.002)
        client.close()

    threads = [threading.Thread(target=load, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        upstreams["2"].kill()
        deadline = time.monotonic() + 5
        while harness.breaker("digits", "2") == "closed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert harness.breaker("digits", "2") != "closed"
        time.sleep(0.5)
        upstreams["2"].start()  # back, on the same port
        deadline = time.monotonic() + 8
        while harness.breaker("digits", "2") != "closed" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert harness.breaker("digits", "2") == "closed"
        before = answers["v2:"]
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert bad == []  # never a bare 502/504, never a reset
    assert answers["v1:upstream-error"] + answers["v1:breaker-open"] > 0
    assert answers["v2:"] > before  # traffic flows back to version 2
    opened, closed = 'from="closed",to="open"', 'from="half_open",to="closed"'
    metrics = harness.metrics(opened, closed)
    assert opened in metrics and closed in metrics
    log = harness.runtime.error_log.read_text()
    assert "weir breaker digits/2: closed -> open (3 upstream failures within 10s" in log
    assert "weir breaker digits/2: half_open -> closed (probes succeeded)" in log
