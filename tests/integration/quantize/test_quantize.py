"""`weir quantize` on the sample models with real ONNX Runtime: what it writes, what it
reports, and what it refuses (writing nothing)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from scripts.quantize.sessions import open_session
from tests.integration.quantize.conftest import copy_samples, quantize

BENCH = ("--bench-seconds", "3")


@pytest.fixture(scope="module")
def quantized(repository: Path, tmp_path_factory: pytest.TempPathFactory):
    """digits 2 -> 3 and cnn 1 -> 2, once for the module, with what each command printed."""
    repo = copy_samples(repository, tmp_path_factory.mktemp("repo"))
    (repo / "digits" / "2" / "NOTES.txt").write_text("trained on the lab's data of May")
    runs = {
        "digits": quantize(repo, "digits", "2", "--to", "3", *BENCH),
        "cnn": quantize(repo, "cnn", "1", "--to", "2", *BENCH),
    }
    return repo, runs


def report(version_dir: Path) -> dict:
    return json.loads((version_dir / "quantization.json").read_text())


def test_digits_is_written_within_tolerance_and_at_least_2_5x_smaller(quantized) -> None:
    repo, runs = quantized
    done = runs["digits"]
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (repo / "digits" / "3").iterdir()) == [
        "model.onnx",
        "quantization.json",
    ]
    doc = report(repo / "digits" / "3")
    assert any(note.startswith("not copied from v2: NOTES.txt") for note in doc["notes"])
    assert doc["written"] and doc["size"]["ratio"] >= 2.5
    assert doc["accuracy"]["rows"] == 450 and doc["accuracy"]["loss"] <= 0.01
    assert doc["accuracy"]["source_accuracy"] > 0.9
    assert doc["options"]["mode"] == "static" and doc["options"]["format"] == "qdq"
    assert doc["options"]["per_channel"] is False  # dense only
    assert doc["options"]["reduce_range"] == doc["cpu"]["reduce_range_recommended"]
    for version in ("source", "new"):
        assert doc["speed"][version]["batch1_samples"] >= 1
        assert doc["speed"][version]["batch32_rows_per_s"] > 0


def test_cnn_is_at_least_3_5x_smaller_and_judged_without_labels(quantized) -> None:
    repo, runs = quantized
    done = runs["cnn"]
    assert done.returncode == 0, done.stderr
    doc = report(repo / "cnn" / "2")
    assert doc["size"]["ratio"] >= 3.5
    assert doc["accuracy"]["source_accuracy"] is None
    assert "no labels" in doc["accuracy"]["loss_measure"]
    assert doc["options"]["per_channel"] is True  # convolutions


def test_the_printed_report_holds_the_figures(quantized) -> None:
    _, runs = quantized
    out = runs["digits"].stdout
    for row in ("size", "batch-1 p50", "batch-1 p99", "batch-32 throughput", "top-1 agreement"):
        assert row in out, row
    assert "accuracy (450 rows)" in out and "vnni" in out and "onnxruntime" in out
    assert "within tolerance" in out and "weir apply" in out


def test_the_new_version_keeps_the_signature_and_answers_like_the_source(quantized) -> None:
    repo, _ = quantized
    source, new = (open_session(repo / "digits" / v / "model.onnx") for v in ("2", "3"))
    for a, b in zip(
        source.get_inputs() + source.get_outputs(),
        new.get_inputs() + new.get_outputs(),
        strict=True,
    ):
        assert (a.name, a.type, a.shape) == (b.name, b.type, b.shape)
    x = np.random.default_rng(0).random((8, 64), dtype=np.float32)
    np.testing.assert_allclose(
        new.run(None, {"input": x})[0], source.run(None, {"input": x})[0], atol=0.1
    )
    ops = {node.op_type for node in onnx.load(repo / "digits" / "3" / "model.onnx").graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops


def test_an_existing_version_is_refused_with_exit_2(quantized) -> None:
    repo, _ = quantized
    before = (repo / "digits" / "3" / "model.onnx").read_bytes()
    done = quantize(repo, "digits", "2", "--to", "3", *BENCH)
    assert done.returncode == 2
    assert "already exists" in done.stderr
    assert (repo / "digits" / "3" / "model.onnx").read_bytes() == before


def test_fp16_keeps_fp32_inputs_and_outputs(quantized) -> None:
    repo, _ = quantized
    done = quantize(repo, "digits", "2", "--to", "4", "--precision", "fp16")
    assert done.returncode == 0, done.stderr
    assert "only be judged on a GPU" in done.stdout
    doc = report(repo / "digits" / "4")
    assert doc["options"]["precision"] == "fp16" and doc["accuracy"]["loss"] <= 0.01
    assert 1.5 <= doc["size"]["ratio"] <= 2.5
    session = open_session(repo / "digits" / "4" / "model.onnx")
    assert session.get_inputs()[0].type == "tensor(float)"
    assert session.get_outputs()[0].type == "tensor(float)"


def test_dynamic_mode_needs_no_calibration_and_is_written(quantized) -> None:
    repo, _ = quantized
    done = quantize(repo, "digits", "2", "--to", "5", "--mode", "dynamic", *BENCH)
    assert done.returncode == 0, done.stderr
    doc = report(repo / "digits" / "5")
    assert doc["options"]["mode"] == "dynamic" and doc["options"]["format"] == "qoperator"


def leftovers(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir())


def test_a_loss_above_the_tolerance_writes_nothing_and_says_why(fragile_under_int8) -> None:
    repo, data = fragile_under_int8
    done = quantize(repo, "fragile", "1", "--to", "2", "--calibration", str(data), *BENCH)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "refused: relative top-1 accuracy loss against the labels" in done.stderr
    assert "tolerance 1.00%" in done.stderr and "Nothing was written" in done.stderr
    # The figures are printed too: the source got every held-out row right, int8 a third.
    assert re.search(r"accuracy \(100 rows\) +100\.00% +3\d\.\d\d%", done.stdout), done.stdout
    assert leftovers(repo / "fragile") == ["1"]  # no version, no staging folder


def test_accept_loss_writes_it_and_the_report_says_so(fragile_under_int8) -> None:
    repo, data = fragile_under_int8
    argv = ("fragile", "1", "--to", "2", "--calibration", str(data), "--accept-loss", *BENCH)
    done = quantize(repo, *argv)
    assert done.returncode == 0, done.stderr
    doc = report(repo / "fragile" / "2")
    assert doc["accuracy"]["loss"] > 0.01 and "--accept-loss" in doc["verdict"]
    assert leftovers(repo / "fragile") == ["1", "2"]


def test_a_model_without_built_in_data_asks_for_a_calibration_file(fragile_under_int8) -> None:
    repo, _ = fragile_under_int8
    done = quantize(repo, "fragile", "1", "--to", "2")
    assert done.returncode == 2
    assert "--calibration FILE.npz" in done.stderr
    assert leftovers(repo / "fragile") == ["1"]
