"""The report as printed and as saved beside the new model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from scripts.quantize.accuracy import Verdict, compare
from scripts.quantize.report import Report, format_table
from scripts.quantize.timing import Speed

CPU = {"cpu": "Test CPU", "x86": True, "avx2": True, "avx512": False, "vnni": False, "amx": False}


def report(speed: bool = True, labels: bool = True, precision: str = "int8") -> Report:
    source = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype=np.float32)
    new = np.array([[0.85, 0.15], [0.25, 0.75], [0.45, 0.55]], dtype=np.float32)
    accuracy = compare(source, new, np.array([0, 1, 0]) if labels else None)
    speeds = (Speed(1.5, 3.0, 1.4, 700.0, 400, 40), Speed(0.5, 1.6, 0.6, 1900.0, 400, 40))
    return Report(
        model="digits",
        source_version="2",
        new_version="3",
        source_bytes=19524,
        new_bytes=7538,
        accuracy=accuracy,
        verdict=Verdict(False, "refused: for the test"),
        tolerance=0.01,
        speed=speeds if speed else None,
        options={"precision": precision, "mode": "static", "reduce_range": True},
        cpu=CPU,
        onnxruntime="1.31.1",
        data_source="three rows",
        notes=("a note",),
    )


def test_the_table_holds_every_figure() -> None:
    text = format_table(report())
    assert text.startswith("weir quantize: digits v2 -> v3")
    for expected in (
        "19.1 KiB",
        "7.4 KiB (2.59x smaller)",
        "1.500 ms",
        "0.500 ms",
        "3.000 ms",
        "1.600 ms",
        "700 rows/s",
        "1,900 rows/s",
        "66.67%",  # accuracy: the new version got the third row wrong
        "100.00%",  # the source got every row right
        "0.15000 / 0.08333",
        "avx2 yes, avx512 no, vnni no",
        "reduce_range=True",
        "onnxruntime 1.31.1",
        "note: a note",
        "refused: for the test",
    ):
        assert expected in text, expected
    assert all(line == line.rstrip() for line in text.splitlines())


def test_without_labels_the_table_shows_the_expected_accuracy() -> None:
    text = format_table(report(labels=False))
    assert "expected accuracy (no labels)" in text
    assert "accuracy (3 rows)" in text


def test_fp16_says_its_speed_is_for_a_gpu_to_judge() -> None:
    text = format_table(report(speed=False, precision="fp16"))
    assert "p50" not in text
    assert "only be judged on a GPU" in text
    assert "v3 (fp16)" in text
    assert "GPU" in json.loads(report(speed=False).to_json())["speed"]


def test_the_json_report() -> None:
    doc = json.loads(report().to_json())
    assert doc["written"] is False and doc["verdict"] == "refused: for the test"
    assert doc["size"] == {"source_bytes": 19524, "new_bytes": 7538, "ratio": 2.59}
    assert doc["speed"]["source"]["batch1_p50_ms"] == 1.5
    assert doc["speed"]["new"]["batch32_rows_per_s"] == 1900.0
    assert doc["accuracy"]["top1_agreement"] == 2 / 3
    assert doc["accuracy"]["loss_measure"].startswith("relative top-1 accuracy loss")
    assert doc["cpu"]["vnni"] is False and doc["onnxruntime"] == "1.31.1"


def test_a_version_that_grew_says_larger() -> None:
    grown = dataclasses.replace(report(), source_bytes=200, new_bytes=1000)
    assert "(5.00x larger)" in format_table(grown)
