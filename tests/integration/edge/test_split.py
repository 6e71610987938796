"""Grey release: split ratios over distinct users, stickiness, the force header."""

from __future__ import annotations

import threading
from collections import Counter


def _versions_for(
    harness, tools, users: list[str], headers: dict[str, str] | None = None, threads: int = 4
) -> dict[str, str]:
    """Each user's answering version, requests spread over a few keep-alive connections."""
    seen: dict[str, str] = {}
    lock = threading.Lock()

    def work(chunk: list[str]) -> None:
        client = tools.Client(harness.listen)
        try:
            for user in chunk:
                status, hdrs, _ = client.post(
                    "/v2/models/digits/infer", headers={"X-User-Id": user, **(headers or {})}
                )
                assert status == 200 and "x-weir-fallback" not in hdrs
                with lock:
                    seen[user] = hdrs["x-weir-model-version"]
        finally:
            client.close()

    chunks = [users[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(seen) == len(users)
    return seen


def test_ten_thousand_users_split_within_two_points(harness, upstreams, tools) -> None:
    models = tools.two_versions(upstreams)
    models["digits"]["release"]["split"] = {"1": 80, "2": 20}
    harness.start(models)
    users = [f"user-{i}" for i in range(10_000)]
    counts = Counter(_versions_for(harness, tools, users).values())
    share = 100 * counts["2"] / len(users)
    assert abs(share - 20) <= 2, counts


def test_same_user_same_version_and_force_header_wins(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    users = [f"sticky-{i}" for i in range(100)]
    first = _versions_for(harness, tools, users)
    for _ in range(3):
        assert _versions_for(harness, tools, users) == first
    assert set(first.values()) == {"1", "2"}
    forced = _versions_for(harness, tools, users, headers={"X-Weir-Version": "2"})
    assert set(forced.values()) == {"2"}
    # An unknown forced version is a 404 in the V2 shape, not a silent guess.
    status, _, body = harness.infer("digits", headers={"X-Weir-Version": "9"})
    assert status == 404 and "no version 9" in body["error"]


def test_pinned_url_beats_everything(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    harness.admin_call("PUT", "/admin/models/digits/split", {"2": 100})
    status, headers, body = harness.infer("digits", version="1", headers={"X-Weir-Version": "2"})
    assert status == 200 and headers["x-weir-model-version"] == "1"
    assert body["model_version"] == "1"
    assert harness.infer("digits", version="7")[0] == 404


def test_live_override_moves_users_and_killing_redistributes(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    users = [f"o-{i}" for i in range(400)]
    harness.admin_call("PUT", "/admin/models/digits/split", {"1": 25, "2": 75})
    counts = Counter(_versions_for(harness, tools, users).values())
    assert 60 <= 100 * counts["2"] / len(users) <= 90
    harness.admin_call("POST", "/admin/models/digits/versions/1/kill")
    assert set(_versions_for(harness, tools, users).values()) == {"2"}


def test_binary_bodies_pass_through_untouched(harness, upstreams, tools) -> None:
    import hashlib
    import json

    harness.start(tools.two_versions(upstreams), max_body="64k")
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 256},
                }
            ]
        }
    ).encode()
    body = header + bytes(range(256))
    status, _headers, data = tools.request(
        "POST",
        harness.listen,
        "/v2/models/digits/versions/2/infer",
        body,
        {
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert status == 200 and data["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert data["binary_header_length"] == str(len(header))
    status, _, data = tools.request(
        "POST", harness.listen, "/v2/models/digits/infer", b"x" * 70_000
    )
    assert status == 413 and "error" in data
    status, _, data = tools.request("POST", harness.listen, "/v2/models/nope/infer", b"{}")
    assert status == 404 and "unknown model nope" in data["error"]
