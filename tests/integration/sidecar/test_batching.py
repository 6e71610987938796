"""Cross-request batching under load, the bounded queue, and the metrics that prove both."""

from __future__ import annotations

import threading
import time

import requests


def _hammer(url: str, body: bytes, headers: dict[str, str], clients: int, each: int):
    results: list[tuple[int, float, str | None]] = []
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as s:
            for _ in range(each):
                started = time.monotonic()
                r = s.post(url, data=body, headers=headers, timeout=30)
                with lock:
                    results.append(
                        (r.status_code, time.monotonic() - started, r.headers.get("Retry-After"))
                    )

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_requests_share_batches(sidecar, cnn_request):
    before_count = sidecar.metric("weir_batch_size_count", model="cnn")
    before_rows = sidecar.metric("weir_batch_size_sum", model="cnn")
    body, headers = cnn_request(1)
    results = _hammer(f"{sidecar.url}/v2/models/cnn/infer", body, headers, clients=24, each=6)
    assert [r[0] for r in results] == [200] * 144
    executions = sidecar.metric("weir_batch_size_count", model="cnn") - before_count
    rows = sidecar.metric("weir_batch_size_sum", model="cnn") - before_rows
    assert rows == 144
    assert executions < 144  # fewer model runs than requests: requests were batched
    assert sidecar.metric("weir_inference_count_total", model="cnn") >= 144


def test_full_queue_answers_503_with_retry_after_and_recovers(
    spawn_sidecar, private_repository, cnn_request
):
    repo = private_repository("cnn")
    (repo / "cnn" / "config.yaml").write_text("batching: {max_batch_size: 4, max_queue_size: 1}\n")
    proc = spawn_sidecar(repo, "--workers", "1")
    body, headers = cnn_request(4)
    results = _hammer(f"{proc.url}/v2/models/cnn/infer", body, headers, clients=12, each=3)
    statuses = {r[0] for r in results}
    assert statuses <= {200, 503}
    refused = [r for r in results if r[0] == 503]
    assert refused and all(r[2] is not None for r in refused)
    assert proc.metric("weir_inference_request_failure_total", reason="queue_full") == len(refused)
    again = requests.post(f"{proc.url}/v2/models/cnn/infer", data=body, headers=headers, timeout=10)
    assert again.status_code == 200


def test_metrics_add_up_across_workers(sidecar):
    before = sidecar.metric("weir_inference_request_success_total", model="digits", version="1")
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [1.0] * 64}]}
    for _ in range(40):  # a fresh connection each time spreads requests over both workers
        r = requests.post(
            f"{sidecar.url}/v2/models/digits/versions/1/infer",
            json=body,
            headers={"Connection": "close"},
            timeout=10,
        )
        assert r.status_code == 200
    # meinheld workers write a batch's metrics right after its responses: a scrape served by
    # the other worker may come first, so wait (bounded) for the count instead of racing it.
    deadline = time.monotonic() + 10
    while True:
        after = sidecar.metric("weir_inference_request_success_total", model="digits", version="1")
        if after - before >= 40 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after - before == 40
    text = requests.get(f"{sidecar.url}/metrics", timeout=5).text
    for family in (
        "weir_request_duration_seconds",
        "weir_queue_duration_seconds",
        "weir_compute_duration_seconds",
        "weir_batch_size",
        "weir_prediction_confidence",
        "weir_queue_depth",
        "weir_requests_in_flight",
        "weir_batch_splits",
        "weir_model_load_seconds",
        "weir_inference_exec_count_total",
        "weir_inference_request_failure_total",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family


def test_a_failing_batch_fails_only_its_requests(spawn_sidecar, fragile_repository):
    proc = spawn_sidecar(fragile_repository, "--workers", "1")
    url = f"{proc.url}/v2/models/fragile/infer"

    def body(k: int) -> dict:
        return {"inputs": [{"name": "x", "shape": [1, k], "datatype": "FP32", "data": [1.0] * k}]}

    results: dict[int, list[requests.Response]] = {1: [], 2: []}

    def client(k: int) -> None:
        with requests.Session() as s:
            for _ in range(5):
                results[k].append(s.post(url, json=body(k), timeout=10))

    threads = [threading.Thread(target=client, args=(k,)) for k in (1, 2, 1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert {r.status_code for r in results[2]} == {500}
    message = results[2][0].json()["error"]
    assert "model 'fragile' version 1 failed" in message and "Reshape" not in message
    assert [r.status_code for r in results[1]] == [200] * 10
    assert requests.get(f"{proc.url}/v2/health/ready", timeout=5).status_code == 200
    assert proc.metric("weir_inference_request_failure_total", reason="inference_error") == 10
