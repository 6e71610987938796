"""The sample models build offline, deterministically, with the signatures the docs promise."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models import build_samples


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    repository = tmp_path_factory.mktemp("repository")
    return repository, build_samples.build(repository)


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        ("digits/1", [2, 64]),
        ("digits/2", [2, 64]),
        ("cnn/1", [2, 3, 64, 64]),
        ("handwriting/1", [2, 64]),
    ],
)
def test_each_model_maps_its_input_to_class_probabilities(built, model, shape):
    repository, _ = built
    session = ort.InferenceSession(
        str(repository / model / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    (probabilities,) = session.run(None, {"input": np.random.rand(*shape).astype(np.float32)})
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_digits_versions_are_accurate_on_held_out_data(built):
    _, accuracy = built
    assert accuracy["digits/1"] > 0.93
    assert accuracy["digits/2"] > 0.95


def test_handwriting_reads_rendered_image_files_about_as_well_as_digits_reads_tensors(built):
    """Held-out digits drawn as PNG and JPEG files of six styles (28 to 480 px, grey, colour
    and transparent, dark on light and light on dark), through the model class's own
    preprocessing, against digits/2 on the same digits as tensors."""
    _, accuracy = built
    assert accuracy["handwriting/1 images"] == 6 * 450
    assert accuracy["handwriting/1"] > accuracy["digits/2"] - 0.02
    styles = [key for key in accuracy if key.startswith("handwriting/1 ") and "images" not in key]
    assert len(styles) == 6 and min(accuracy[key] for key in styles) > 0.93


def test_rebuild_is_skipped_when_models_exist_and_identical_when_forced(built):
    repository, _ = built
    before = (repository / "cnn/1/model.onnx").read_bytes()
    assert build_samples.build(repository) == {}
    build_samples.build(repository, force=True)
    assert (repository / "cnn/1/model.onnx").read_bytes() == before


def test_digits_and_handwriting_ship_a_drift_reference_from_their_held_out_data(built):
    from sidecar.serving.drift import load_reference

    repository, _ = built
    written = build_samples.write_references(repository, force=True)
    names = sorted(p.parent.relative_to(repository).as_posix() for p in written)
    assert names == ["digits/1", "digits/2", "handwriting/1"]  # cnn: random weights, inputs
    for path in written:
        reference = load_reference(path)
        rows = 450 if "digits" in str(path) else 450 * 6  # held-out digits; six renders each
        assert reference.rows == rows and "held-out" in reference.source
        assert sum(reference.signals["confidence"].values()) == rows
    assert build_samples.write_references(repository) == []  # kept unless forced
