"""The defaults the model and the CPU decide: per-channel for convolutions, reduce_range for
x86 without VNNI; and the note an operator's override earns."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto, helper, save

from scripts.quantize.commands import parser
from scripts.quantize.cpu import CpuFeatures
from scripts.quantize.run import _range_note, choose_options

AVX2 = CpuFeatures(x86=True, avx2=True, avx512=False, vnni=False, amx=False, model="old")
VNNI = CpuFeatures(x86=True, avx2=True, avx512=True, vnni=True, amx=False, model="new")


def model(tmp_path: Path, op: str) -> Path:
    inputs = ["x", "w"] if op == "Conv" else ["x"]
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    path = tmp_path / f"{op}.onnx"
    save(helper.make_model(graph), path)
    return path


def options(argv: list[str], path: Path, features: CpuFeatures):
    return choose_options(parser().parse_args(["m", "1", "--to", "2", *argv]), path, features)


def test_per_channel_follows_the_convolutions(tmp_path) -> None:
    assert options([], model(tmp_path, "Conv"), VNNI).per_channel
    assert not options([], model(tmp_path, "Relu"), VNNI).per_channel
    assert options(["--per-channel"], model(tmp_path, "Relu"), VNNI).per_channel


def test_reduce_range_follows_the_cpu_unless_told(tmp_path) -> None:
    path = model(tmp_path, "Relu")
    assert options([], path, AVX2).reduce_range
    assert not options([], path, VNNI).reduce_range
    assert not options(["--no-reduce-range"], path, AVX2).reduce_range


def test_dynamic_mode_is_qoperator(tmp_path) -> None:
    assert options(["--mode", "dynamic"], model(tmp_path, "Relu"), VNNI).format == "qoperator"


@pytest.mark.parametrize(
    ("argv", "features", "says"),
    [
        ([], VNNI, "accumulate in int32"),
        ([], AVX2, None),
        (["--no-reduce-range"], AVX2, "may saturate"),
        (["--reduce-range"], VNNI, "does not need them"),
        (["--precision", "fp16"], AVX2, None),
    ],
)
def test_the_range_note(tmp_path, argv, features, says) -> None:
    note = _range_note(options(argv, model(tmp_path, "Relu"), features), features)
    assert (note is None) if says is None else (says in str(note))
