"""When the fallback version fails too, the client gets the edge's V2 JSON placeholder."""

from __future__ import annotations


def test_fallback_version_dead_too_answers_json_503(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    upstreams["2"].control(status=500)
    upstreams["1"].kill()  # the fallback version: a connect error
    code, headers, body = harness.infer("digits", version="2")
    assert "text/html" not in headers.get("content-type", "")
    assert code == 503, body
    assert headers["content-type"].startswith("application/json")
    assert isinstance(body, dict) and "error" in body
    assert headers["retry-after"]
    assert headers["x-weir-fallback"] == "upstream-error"


def test_fallback_version_failing_answers_json_503(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    upstreams["2"].control(status=500)
    upstreams["1"].control(status=502)
    code, headers, body = harness.infer("digits", version="2")
    assert code == 503, body
    assert headers["content-type"].startswith("application/json")
    assert isinstance(body, dict) and "error" in body
    assert headers["retry-after"]
    assert headers["x-weir-fallback"] == "upstream-error"
