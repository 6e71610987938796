"""Admin API: bearer token, loopback only, kill/revive/split live without reload, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_admin_requires_the_bearer_token(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    status, headers, body = harness.admin_call("GET", "/admin/status", token=None)
    assert status == 401 and "error" in body
    assert headers["www-authenticate"].startswith("Bearer")
    assert harness.admin_call("GET", "/admin/status", token="wrong")[0] in (401, 403)
    assert harness.admin_call("POST", "/admin/models/digits/kill", token="wrong")[0] in (401, 403)
    # A token in the query string is not a token.
    assert tools.request("GET", harness.admin, f"/admin/status?token={tools.TOKEN}")[0] == 401
    assert harness.admin_call("GET", "/metrics", token=None)[0] == 401
    assert harness.admin_call("GET", "/admin/status")[0] == 200
    # Nothing changed by the refused calls.
    assert harness.status()["models"]["digits"]["killed"] is False


def _listening(port: int) -> list[str]:
    """Local addresses listening on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                found.append(address)
    return found


def test_admin_listens_on_loopback_only(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    port = int(harness.admin.rsplit(":", 1)[1])
    assert _listening(port) == ["0100007F"]  # 127.0.0.1, nothing else


def test_edge_refuses_to_start_without_a_token(harness, upstreams, tools, monkeypatch) -> None:
    from scripts.edge.errors import DeployError

    monkeypatch.delenv("WEIR_ADMIN_TOKEN")
    with pytest.raises(DeployError, match="no admin token"):
        harness.start(tools.two_versions(upstreams))
    assert harness.runtime.edge_pid() is None


def test_open_admin_is_an_explicit_choice(harness, upstreams, tools, monkeypatch) -> None:
    monkeypatch.delenv("WEIR_ADMIN_TOKEN")
    harness.start(tools.two_versions(upstreams), admin_auth="open")
    assert harness.admin_call("GET", "/admin/status", token=None)[0] == 200


def test_kill_revive_and_split_take_effect_without_reload(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    workers = harness.workers()
    assert len(workers) == 2

    assert harness.admin_call("POST", "/admin/models/digits/kill")[0] == 200
    status, headers, body = harness.infer("digits", headers={"X-User-Id": "a"})
    assert headers["x-weir-fallback"] == "killed"
    assert status == 503 and "error" in body and headers["retry-after"]

    assert harness.admin_call("DELETE", "/admin/models/digits/kill")[0] == 200
    status, headers, _ = harness.infer("digits", headers={"X-User-Id": "a"})
    assert status == 200 and "x-weir-fallback" not in headers

    # A killed version's share goes to the other version, with no fallback marker.
    assert harness.admin_call("POST", "/admin/models/digits/versions/2/kill")[0] == 200
    seen = {
        harness.infer("digits", headers={"X-User-Id": f"u{i}"})[1]["x-weir-model-version"]
        for i in range(40)
    }
    assert seen == {"1"}
    # Pinned to the killed version: the fallback answers, and says so.
    status, headers, _ = harness.infer("digits", version="2")
    assert status == 200 and headers["x-weir-fallback"] == "killed"
    assert headers["x-weir-model-version"] == "1"
    harness.admin_call("DELETE", "/admin/models/digits/versions/2/kill")

    assert harness.admin_call("PUT", "/admin/models/digits/split", {"2": 100})[0] == 200
    seen = {
        harness.infer("digits", headers={"X-User-Id": f"u{i}"})[1]["x-weir-model-version"]
        for i in range(40)
    }
    assert seen == {"2"}
    assert harness.status()["models"]["digits"]["weights"]["effective"] == {"1": 0, "2": 100}
    bad = harness.admin_call("PUT", "/admin/models/digits/split", {"7": 100})
    assert bad[0] == 400 and "not in the release" in bad[2]["error"]
    assert harness.admin_call("DELETE", "/admin/models/digits/split")[0] == 200

    assert harness.workers() == workers  # no reload happened


def test_kill_survives_reload_and_restart(harness, upstreams, tools) -> None:
    from scripts.deploy.pipeline import apply_release

    harness.start(tools.two_versions(upstreams))
    workers = harness.workers()
    harness.admin_call("POST", "/admin/models/digits/kill")
    harness.admin_call("PUT", "/admin/models/digits/split", {"1": 100})

    # A timeout is wiring: this apply really reloads nginx (new worker processes).
    models = tools.two_versions(upstreams, timeout="2s")
    assert "reloaded" in apply_release(harness.write(harness.release(models)), harness.runtime)
    assert set(harness.workers()).isdisjoint(workers)
    assert harness.infer("digits")[1]["x-weir-fallback"] == "killed"

    harness.restart()
    status, headers, _ = harness.infer("digits")
    assert headers["x-weir-fallback"] == "killed" and status == 503
    assert harness.status()["models"]["digits"]["weights"]["override"] == {"1": 100}
    harness.admin_call("DELETE", "/admin/models/digits/kill")
    assert harness.infer("digits")[0] == 200


def test_status_and_metrics(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    harness.infer("digits", version="1")
    status = harness.status()
    assert status["revision"] == 1 and len(status["checksum"]) == 64
    digits = status["models"]["digits"]
    assert set(digits["versions"]) == {"1", "2"}
    assert digits["versions"]["1"]["breaker"]["state"] == "closed"
    counted = 'weir_edge_requests_total{model="digits",version="1",status="200"} 1'
    metrics = harness.metrics(counted)
    for name in (
        "weir_edge_requests_total",
        "weir_edge_rate_limited_total",
        "weir_edge_fallbacks_total",
        "weir_edge_breaker_transitions_total",
        "weir_edge_breaker_state",
        "weir_edge_upstream_response_seconds_bucket",
        "weir_edge_config_info",
    ):
        assert name in metrics
    assert counted in metrics


def test_concurrent_changes_then_restart_keep_the_last_state(harness, upstreams, tools) -> None:
    """Both workers save the state file at once: every call succeeds, and the file holds the
    state after the last change (a stale snapshot never wins)."""
    import threading

    harness.start(tools.two_versions(upstreams))
    # Each thread toggles its own switch and ends on a known value.
    paths = {
        "model": ("/admin/models/digits/kill", "POST"),
        "v1": ("/admin/models/digits/versions/1/kill", "DELETE"),
        "v2": ("/admin/models/digits/versions/2/kill", "POST"),
    }
    answers: list[tuple[int, object]] = []
    lock = threading.Lock()

    def toggle(path: str, last: str) -> None:
        other = "DELETE" if last == "POST" else "POST"
        for i in range(16):
            status, _, body = harness.admin_call(other if i % 2 == 0 else last, path)
            with lock:
                answers.append((status, body))

    def split() -> None:
        for i in range(16):
            weights = {"1": 30, "2": 70} if i % 2 else {"1": 100}
            status, _, body = harness.admin_call("PUT", "/admin/models/digits/split", weights)
            with lock:
                answers.append((status, body))

    threads = [threading.Thread(target=toggle, args=spec) for spec in paths.values()]
    threads.append(threading.Thread(target=split))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a for a in answers if a[0] != 200] == []

    def check() -> None:
        digits = harness.status()["models"]["digits"]
        assert digits["killed"] is True
        assert digits["versions"]["1"]["killed"] is False
        assert digits["versions"]["2"]["killed"] is True
        assert digits["weights"]["override"] == {"1": 30, "2": 70}

    check()
    harness.restart()
    check()


def test_the_harness_moves_to_new_ports_when_one_is_taken(harness, upstreams, tools) -> None:
    """Ports are picked free then bound later by nginx: a port taken in between (EADDRINUSE)
    costs a retry, not a failed test."""
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = f"127.0.0.1:{blocker.getsockname()[1]}"
        harness.listen = taken
        harness.start(tools.two_versions(upstreams))
    assert harness.listen != taken
    assert harness.infer("digits")[0] == 200
    assert harness.status()["revision"] == 1
