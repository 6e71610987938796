"""Rate limits: nginx's leaky bucket per model; rejections are V2-shaped 429s with Retry-After."""

from __future__ import annotations

import threading
import time


def _paced(harness, tools, rate: float, seconds: float, headers=None) -> list[tuple[int, dict]]:
    """Send `rate` requests a second for `seconds` from two threads, on schedule."""
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.05
    total = int(rate * seconds)

    def work(offset: int) -> None:
        client = tools.Client(harness.listen)
        try:
            for i in range(offset, total, 2):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                status, hdrs, _ = client.post("/v2/models/digits/infer", headers=headers or {})
                with lock:
                    results.append((status, hdrs))
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_twice_the_rate_accepts_rate_times_time_plus_burst(harness, upstreams, tools) -> None:
    rate, burst, seconds = 40, 10, 3.0
    models = tools.two_versions(
        upstreams, rate_limit={"rate": f"{rate}r/s", "burst": burst, "key": "global"}
    )
    harness.start(models)
    results = _paced(harness, tools, 2 * rate, seconds)
    accepted = sum(1 for status, _ in results if status == 200)
    rejected = [hdrs for status, hdrs in results if status == 429]
    assert accepted + len(rejected) == len(results)
    expected = rate * seconds + burst
    assert abs(accepted - expected) <= 0.1 * expected, (accepted, expected)
    assert all(h.get("retry-after") == "1" for h in rejected)
    assert all(h["content-type"] == "application/json" for h in rejected)
    counted = f'weir_edge_rate_limited_total{{model="digits"}} {len(rejected)}'
    metrics = harness.metrics(counted)
    assert counted in metrics
    # Rejected requests are not traffic: only the accepted ones are counted as requests.
    assert 'status="429"' not in metrics


def test_limit_per_header_key_is_per_client(harness, upstreams, tools) -> None:
    models = tools.two_versions(
        upstreams, rate_limit={"rate": "1r/m", "burst": 2, "key": "header:X-Api-Key"}
    )
    harness.start(models)
    a = [harness.infer("digits", headers={"X-Api-Key": "a"})[0] for _ in range(6)]
    b = [harness.infer("digits", headers={"X-Api-Key": "b"})[0] for _ in range(6)]
    assert a.count(200) == 3 and b.count(200) == 3
    status, headers, body = harness.infer("digits", headers={"X-Api-Key": "a"})
    assert status == 429 and "rate limit" in body["error"]
    assert headers["retry-after"] == "60"  # one request a minute
