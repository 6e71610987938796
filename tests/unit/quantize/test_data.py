"""Where calibration and evaluation rows come from: a file, or the samples' own data."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.quantize.data import DataError, builtin, cnn_images, for_model, from_npz


def test_a_file_is_split_three_quarters_to_calibrate_one_to_judge(tmp_path) -> None:
    path = tmp_path / "rows.npz"
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.savez(path, x=x, labels=np.arange(20) % 3)
    data = from_npz(path, ["x"])
    assert len(data.calibration["x"]) == 15 and data.rows == 5
    np.testing.assert_array_equal(data.evaluation["x"], x[15:])
    assert data.labels is not None and list(data.labels) == [0, 1, 2, 0, 1]
    assert "rows 15-19" in data.source


def test_a_file_without_labels_judges_agreement_only(tmp_path) -> None:
    path = tmp_path / "rows.npz"
    np.savez(path, a=np.zeros((8, 2), np.float32), b=np.ones((8, 1), np.float32))
    data = from_npz(path, ["a", "b"])
    assert data.labels is None and set(data.evaluation) == {"a", "b"}


def test_a_file_missing_an_input_says_which_and_how_to_save_it(tmp_path) -> None:
    path = tmp_path / "rows.npz"
    np.savez(path, pixels=np.zeros((4, 2), np.float32))
    with pytest.raises(DataError, match=r"no array for input.* input; it holds pixels") as err:
        from_npz(path, ["input"])
    assert "np.savez(FILE, input=rows" in str(err.value)


def test_arrays_of_different_lengths_are_refused(tmp_path) -> None:
    path = tmp_path / "rows.npz"
    np.savez(path, x=np.zeros((4, 2), np.float32), labels=np.zeros(5))
    with pytest.raises(DataError, match="same number of rows"):
        from_npz(path, ["x"])


def test_an_unreadable_file_says_so(tmp_path) -> None:
    path = tmp_path / "rows.npz"
    path.write_text("not an archive")
    with pytest.raises(DataError, match="cannot read calibration file"):
        from_npz(path, ["x"])


def test_digits_uses_the_held_out_quarter_the_model_never_trained_on() -> None:
    data = builtin("digits", ["input"])
    assert data is not None and data.labels is not None
    assert data.calibration["input"].shape == (1347, 64)
    assert data.evaluation["input"].shape == (450, 64)
    assert data.evaluation["input"].dtype == np.float32
    assert data.evaluation["input"].min() >= 0.0 and data.evaluation["input"].max() <= 1.0


def test_cnn_images_are_seeded() -> None:
    np.testing.assert_array_equal(cnn_images(4, seed=3), cnn_images(4, seed=3))
    assert cnn_images(4, seed=3).shape == (4, 3, 64, 64)
    data = builtin("cnn", ["input"])
    assert data is not None and data.labels is None and data.rows == 256


def test_other_models_need_a_file() -> None:
    assert builtin("digits", ["a", "b"]) is None
    with pytest.raises(DataError, match=r"--calibration FILE\.npz"):
        for_model("resnet", ["input"], None)


def test_labels_must_be_class_indices(tmp_path) -> None:
    path = tmp_path / "rows.npz"
    np.savez(path, x=np.zeros((4, 2), np.float32), labels=np.array(["a", "b", "c", "d"]))
    with pytest.raises(DataError, match="class indices"):
        from_npz(path, ["x"])
