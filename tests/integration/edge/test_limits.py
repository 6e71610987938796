"""Limits that hold: a key header left out is limited too (or refused), metadata and health have
their own per-client limit, and readiness does not fan out to the upstreams per request."""

from __future__ import annotations

import http.client
import time

import pytest

from scripts.release import ReleaseError, parse_release


def _header_limited(upstreams, tools, **limit):
    return tools.two_versions(
        upstreams, rate_limit={"rate": "1r/m", "burst": 2, "key": "header:X-Api-Key", **limit}
    )


def test_requests_without_the_key_header_are_limited_per_address(harness, upstreams, tools):
    harness.start(_header_limited(upstreams, tools))
    codes = [harness.infer("digits")[0] for _ in range(30)]
    assert codes.count(200) == 3 and codes.count(429) == 27  # the burst, then limited
    # The address and key spaces are apart: a key equal to the address is its own key.
    keyed = [harness.infer("digits", headers={"X-Api-Key": "127.0.0.1"})[0] for _ in range(4)]
    assert keyed == [200, 200, 200, 429]
    status, headers, body = harness.infer("digits")
    assert status == 429 and "rate limit" in body["error"] and headers["retry-after"] == "60"


def test_requests_without_the_key_header_can_be_refused(harness, upstreams, tools):
    harness.start(_header_limited(upstreams, tools, missing_key="reject"))
    for _ in range(5):
        status, headers, body = harness.infer("digits")
        assert status == 401 and headers["content-type"] == "application/json"
        assert "X-Api-Key" in body["error"]
    assert upstreams["1"].count() + upstreams["2"].count() == 0
    codes = [harness.infer("digits", headers={"X-Api-Key": "k"})[0] for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_missing_key_needs_a_header_key() -> None:
    text = """
revision: 1
models:
  digits:
    versions: {"1": {}}
    rate_limit: {rate: 5r/s, key: remote_addr, missing_key: reject}
"""
    with pytest.raises(ReleaseError, match="missing_key applies to key: header:NAME only"):
        parse_release(text)


def _get_many(address: str, path: str, count: int) -> list[int]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    codes = []
    try:
        for _ in range(count):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            codes.append(response.status)
            if response.status == 429:
                assert response.getheader("Content-Type") == "application/json"
                assert response.getheader("Retry-After") == "1"
    finally:
        conn.close()
    return codes


@pytest.mark.parametrize(
    "path", ["/v2/models/digits", "/v2/models/digits/ready", "/v2/health/ready"]
)
def test_metadata_and_health_have_their_own_limit(harness, upstreams, tools, path) -> None:
    harness.start(tools.two_versions(upstreams))
    codes = _get_many(harness.listen, path, 400)  # 50 r/s per client, burst 100
    assert codes[:100] == [200] * 100
    assert codes.count(429) > 100 and set(codes) == {200, 429}
    assert harness.infer("digits")[0] == 200  # infer is limited apart


def test_readiness_is_answered_from_a_cache(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    before = upstreams["1"].count("ready")
    codes = _get_many(harness.listen, "/v2/health/ready", 80)
    assert codes == [200] * 80
    # At most one check per second: not 80 per upstream.
    assert upstreams["1"].count("ready") - before <= 3
    upstreams["2"].kill()
    deadline = time.monotonic() + 5
    while tools.request("GET", harness.listen, "/v2/health/ready")[0] == 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status, headers, body = tools.request("GET", harness.listen, "/v2/health/ready")
    assert status == 503 and "weir_digits_v2" in body["error"] and headers["retry-after"] == "1"
