"""Drift against a reference through a real `weir sidecar` (two workers, multiprocess
metrics): digits v1 with the reference.json models/build_samples.py writes from its held-out
digits. The same digits as live traffic drift next to nothing; then traffic of one class only
drifts far, and the alert rule fires on the figures this sidecar exported (promtool)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from sklearn.datasets import load_digits

from models import build_samples
from sidecar.serving.drift import REFERENCE_FILE

ROOT = Path(__file__).resolve().parents[3]
WINDOW = 500  # the alert's least rows: the window here is what it judges


def send(url: str, rows: np.ndarray) -> None:
    session = requests.Session()
    for row in rows:
        body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                            "data": row.tolist()}]}  # fmt: skip
        answer = session.post(f"{url}/v2/models/digits/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text


def drift(sidecar, signal: str) -> tuple[float, float]:
    text = requests.get(f"{sidecar.url}/metrics", timeout=5).text
    found = {}
    for line in text.splitlines():
        if line.startswith("weir_prediction_drift") and f'signal="{signal}"' in line:
            head, value = line.rsplit(" ", 1)
            found[head.split("{")[0]] = float(value)
    return found["weir_prediction_drift"], found["weir_prediction_drift_rows"]


def test_matching_traffic_drifts_little_and_one_class_fires_the_alert(
    spawn_sidecar, private_repository, tmp_path: Path
) -> None:
    models = private_repository("digits")
    (written,) = build_samples.write_references(models, ("digits/1",))
    assert written.name == REFERENCE_FILE
    sidecar = spawn_sidecar(models, "--workers", "2", "--drift-window-rows", str(WINDOW))

    held_out = build_samples.held_out_digits()
    send(sidecar.url, held_out)  # the reference's own rows, as clients send them
    class_psi, rows = drift(sidecar, "class")
    confidence_psi, _ = drift(sidecar, "confidence")
    print(f"matching traffic: class PSI {class_psi:.4f}, confidence PSI {confidence_psi:.4f}")
    assert rows == len(held_out)  # no earlier reading: every row since the start
    assert class_psi < 0.01 and confidence_psi < 0.01

    x, y = load_digits(return_X_y=True)
    threes = (x[y == 3] / 16.0).astype(np.float32)
    for _ in range(2):  # readings between: whichever worker answers, the same window
        send(sidecar.url, threes)
        drift(sidecar, "class")
    send(sidecar.url, threes)
    class_psi, rows = drift(sidecar, "class")
    confidence_psi, conf_rows = drift(sidecar, "confidence")
    print(f"one class only: class PSI {class_psi:.3f} over {rows:g} rows, confidence PSI "
          f"{confidence_psi:.3f} over {conf_rows:g}")  # fmt: skip
    assert rows == 3 * len(threes) >= WINDOW  # the latest rows, none of the matching ones
    assert class_psi > 1.0

    if shutil.which("promtool") is None:
        pytest.skip("promtool missing: apt-get install -y prometheus")
    alerts = ROOT / "scripts" / "observability" / "alerts.yml"
    (rule,) = [
        r for g in yaml.safe_load(alerts.read_text())["groups"] for r in g["rules"]
        if r.get("alert") == "WeirPredictionDrift"
    ]  # fmt: skip
    description = rule["annotations"]["description"]
    psi = f"{class_psi:.4g}"  # as the alert's humanize writes it
    labels = 'model="digits",version="1",signal="class",instance="sidecar"'
    (tmp_path / "drift_test.yml").write_text(f"""\
rule_files: [{alerts}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'weir_prediction_drift{{{labels}}}'
        values: '{class_psi}x30'
      - series: 'weir_prediction_drift_rows{{{labels}}}'
        values: '{rows:g}x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: WeirPredictionDrift
        exp_alerts:
          - exp_labels: {{severity: warn, model: digits, version: "1", signal: class}}
            exp_annotations:
              summary: 'digits v1: class distribution drifted from its reference (PSI {psi})'
              description: {json.dumps(description)}
""")
    tested = subprocess.run(
        ["promtool", "test", "rules", "drift_test.yml"], cwd=tmp_path, capture_output=True,
        text=True,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
