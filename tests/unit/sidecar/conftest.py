"""Shared fixtures: the sample model repository (built into a tmp dir when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import build_samples

SAMPLES = ("digits/1", "digits/2", "cnn/1")


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_samples.REPOSITORY
    if any(not (root / sample / "model.onnx").is_file() for sample in SAMPLES):
        root = tmp_path_factory.mktemp("repository")
        build_samples.build(root)
    return root
