"""Build Weir's bundled sample models into the model repository.

Nothing is downloaded: `digits` is trained on scikit-learn's bundled digits data set and
`cnn` uses fixed random weights drawn from a seeded generator, so every build is identical.

    digits/1/model.onnx       logistic regression    input [N,64] FP32 -> probabilities [N,10]
    digits/2/model.onnx       small MLP              input [N,64] FP32 -> probabilities [N,10]
    cnn/1/model.onnx          4 conv layers + dense  input [N,3,64,64] FP32 -> probabilities [N,10]
    handwriting/1/model.onnx  MLP behind a model class (models/handwriting/model.py): a PNG or
                              JPEG of one digit in (BYTES), its label and confidence out
    */reference.json          digits and handwriting: predicted classes and confidence on the
                              held-out data, what their drift is measured against

`handwriting` is trained on what its own pre-processing makes of the training digits rendered
as image files in random styles, and scored on the held-out digits (never trained on) rendered
in six fixed styles (sizes, colours, light and dark backgrounds, PNG and JPEG: models/rendered.py),
beside digits/2 on the same held-out digits as tensors.

The graphs are written with `onnx.helper` from the trained weights, so they carry exactly one
input and one output with the names clients see in metadata (`input`, `probabilities`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

try:  # as a module (tests, `python -m models.build_samples`) or as a script (`make models`)
    from models import rendered
except ImportError:  # pragma: no cover - run as models/build_samples.py
    import rendered  # type: ignore[no-redef]

OPSET = 17
INPUT = "input"
OUTPUT = "probabilities"
REPOSITORY = Path(__file__).resolve().parent
SAMPLES = ("digits/1", "digits/2", "cnn/1", "handwriting/1")


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every onnxruntime release of the last three years
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    onnx.save(model, tmp)
    tmp.replace(path)  # a half-written model must never be picked up by a sidecar


def _io(shape_in: list[int | str], classes: int) -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    return (
        helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, shape_in),
        helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", classes]),
    )


def dense_graph(name: str, layers: list[tuple[np.ndarray, np.ndarray]]) -> onnx.GraphProto:
    """A stack of Gemm layers, ReLU between them, softmax at the end."""
    nodes, inits = [], []
    current = INPUT
    for i, (weight, bias) in enumerate(layers):
        w, b, out = f"w{i}", f"b{i}", f"dense{i}"
        inits += [
            numpy_helper.from_array(weight.astype(np.float32), w),
            numpy_helper.from_array(bias.astype(np.float32), b),
        ]
        nodes.append(helper.make_node("Gemm", [current, w, b], [out]))
        current = out
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"relu{i}"]))
            current = f"relu{i}"
    nodes.append(helper.make_node("Softmax", [current], [OUTPUT], axis=-1))
    inp, out = _io(["N", layers[0][0].shape[0]], layers[-1][0].shape[1])
    return helper.make_graph(nodes, name, [inp], [out], initializer=inits)


def cnn_graph(seed: int = 7) -> onnx.GraphProto:
    """Conv 3->32, pool, conv 32->64, pool, conv 64->128, conv 128->128, global pool, dense 10.

    About 80M multiply-adds a sample: a few ms on one CPU core, heavy enough for batching to matter.
    """
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current, channels = INPUT, 3
    for i, out_channels in enumerate((32, 64, 128, 128)):
        fan_in = channels * 9
        weight = rng.normal(0, np.sqrt(2.0 / fan_in), (out_channels, channels, 3, 3))
        inits += [
            numpy_helper.from_array(weight.astype(np.float32), f"conv{i}_w"),
            numpy_helper.from_array(np.zeros(out_channels, np.float32), f"conv{i}_b"),
        ]
        nodes += [
            helper.make_node(
                "Conv", [current, f"conv{i}_w", f"conv{i}_b"], [f"conv{i}"], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]),
        ]
        current, channels = f"relu{i}", out_channels
        if i < 2:
            nodes.append(
                helper.make_node(
                    "MaxPool", [current], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2]
                )
            )
            current = f"pool{i}"
    dense_w = rng.normal(0, np.sqrt(1.0 / channels), (channels, 10)).astype(np.float32)
    inits += [
        numpy_helper.from_array(dense_w, "dense_w"),
        numpy_helper.from_array(np.zeros(10, np.float32), "dense_b"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),
    ]
    inp, out = _io(["N", 3, 64, 64], 10)
    return helper.make_graph(nodes, "cnn", [inp], [out], initializer=inits)


def build_digits(repository: Path) -> dict[str, float]:
    """Train both digits versions on a fixed split; return their held-out accuracy."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(
        np.float32
    )  # pixel intensities 0..16 -> 0..1; clients send the same scale
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)

    logistic = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=600, random_state=0).fit(
        x_train, y_train
    )

    layers_v1 = [(logistic.coef_.T, logistic.intercept_)]
    layers_v2 = list(zip(mlp.coefs_, mlp.intercepts_, strict=True))
    _save(dense_graph("digits_v1", layers_v1), repository / "digits" / "1" / "model.onnx")
    _save(dense_graph("digits_v2", layers_v2), repository / "digits" / "2" / "model.onnx")
    return {
        "digits/1": float(logistic.score(x_test, y_test)),
        "digits/2": float(mlp.score(x_test, y_test)),
    }


# Versions shipped with a reference.json (drift: sidecar/serving/drift.py). Not cnn: fixed
# random weights read random inputs, so its predictions have no distribution worth watching.
REFERENCED = ("digits/1", "digits/2", "handwriting/1")


def held_out_digits() -> np.ndarray:
    """The digits build_digits never trained on, as clients send them (pixels / 16)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    _, x_test, _, _ = train_test_split(x, y, test_size=0.25, random_state=0)
    return x_test


def write_references(
    repository: Path, versions: tuple[str, ...] = REFERENCED, force: bool = False
) -> list[Path]:
    """Each version's reference.json from its own ONNX file on held-out inputs (written
    where missing, or always with `force`): what its predictions look like on data it was
    not trained on."""
    import onnxruntime as ort

    from sidecar.serving.drift import (
        REFERENCE_FILE,
        reference_counts,
        reference_document,
        write_reference,
    )

    written = []
    for sample in versions:
        folder = repository / sample
        model = folder / "model.onnx"
        if not model.is_file() or ((folder / REFERENCE_FILE).exists() and not force):
            continue
        name, version = sample.split("/")
        if name == "handwriting":
            inputs = rendered.held_out_features()
            source = (
                f"models/build_samples.py: the {len(inputs)} held-out digits rendered as image "
                f"files in {len(rendered.TEST_STYLES)} styles, through its preprocessing"
            )
        else:
            inputs = held_out_digits()
            source = f"models/build_samples.py: the {len(inputs)} held-out scikit-learn digits"
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        (probabilities,) = session.run(None, {INPUT: inputs})
        classes, confidence = reference_counts(probabilities)
        document = reference_document(name, version, classes, confidence, source, None)
        written.append(write_reference(folder, document))
    return written


def build(repository: Path, force: bool = False) -> dict[str, float]:
    targets = [repository / p / "model.onnx" for p in SAMPLES]
    if not force and all(t.exists() for t in targets):
        return {}
    accuracy = build_digits(repository)
    _save(cnn_graph(), repository / "cnn" / "1" / "model.onnx")
    accuracy.update(rendered.build_handwriting(repository, dense_graph, _save))
    return accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=Path, default=REPOSITORY, help="model repository root")
    parser.add_argument("--force", action="store_true", help="rebuild even when the models exist")
    args = parser.parse_args(argv)
    accuracy = build(args.repository, args.force)
    for path in write_references(args.repository, force=args.force or bool(accuracy)):
        print(f"wrote {path} (drift reference, from held-out data)")
    if not accuracy:
        print(f"sample models already present in {args.repository} (use --force to rebuild)")
        return 0
    for model in ("digits/1", "digits/2"):
        print(f"built {model}: held-out accuracy {accuracy[model]:.4f}")
    print(f"built cnn/1: fixed random weights (seed 7), in {args.repository}")
    print(
        f"built handwriting/1: held-out accuracy {accuracy['handwriting/1']:.4f} on "
        f"{accuracy['handwriting/1 images']:.0f} rendered image files "
        f"({len(rendered.TEST_STYLES)} styles per held-out digit); digits/2 on the same "
        f"digits as tensors: {accuracy['digits/2']:.4f}"
    )
    for style in rendered.TEST_STYLES:
        print(f"  {style.describe():<52} {accuracy['handwriting/1 ' + style.name]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
