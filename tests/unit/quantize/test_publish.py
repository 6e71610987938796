"""A new version folder is invisible to a sidecar's scan until it is whole."""

from __future__ import annotations

import pytest

from scripts.quantize.publish import PublishError, publish, stage
from sidecar.serving.repository import scan


def repository(tmp_path):
    (tmp_path / "digits" / "2").mkdir(parents=True)
    (tmp_path / "digits" / "2" / "model.onnx").write_bytes(b"v2")
    return tmp_path


def test_a_staged_version_is_not_seen_until_published(tmp_path) -> None:
    root = repository(tmp_path)
    staging = stage(root / "digits", "3")
    (staging / "model.onnx").write_bytes(b"v3")
    assert [(e.name, e.version) for e in scan(root)] == [("digits", "2")]
    publish(staging, root / "digits" / "3")
    assert [(e.name, e.version) for e in scan(root)] == [("digits", "2"), ("digits", "3")]
    assert not staging.exists()
    assert (root / "digits" / "3").stat().st_mode & 0o777 == 0o755
    assert (root / "digits" / "3" / "model.onnx").stat().st_mode & 0o777 == 0o644


def test_a_version_that_appeared_meanwhile_is_kept_and_the_staging_folder_goes(tmp_path) -> None:
    root = repository(tmp_path)
    staging = stage(root / "digits", "3")
    (staging / "model.onnx").write_bytes(b"ours")
    (root / "digits" / "3").mkdir()
    (root / "digits" / "3" / "model.onnx").write_bytes(b"theirs")
    with pytest.raises(PublishError, match="appeared while quantizing"):
        publish(staging, root / "digits" / "3")
    assert (root / "digits" / "3" / "model.onnx").read_bytes() == b"theirs"
    assert sorted(p.name for p in (root / "digits").iterdir()) == ["2", "3"]
