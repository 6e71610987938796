"""Versions that come and go while the sidecar serves: `Repository.sync` on real ONNX models."""

from __future__ import annotations

import shutil
import time
import weakref
from pathlib import Path

import pytest

from sidecar.errors import NotFound
from sidecar.serving.batching import BatchPolicy, threaded_driver
from sidecar.serving.generation import GENERATION_FILE, generation
from sidecar.serving.repository import Repository
from sidecar.serving.watcher import sync_once

LOAD = Repository.loader(BatchPolicy(8, 0.001, 16), "cpu", 1, threaded_driver)


@pytest.fixture
def root(tmp_path: Path, repository: Path) -> Path:
    """A repository holding digits version 1 only."""
    root = tmp_path / "repository"
    shutil.copytree(repository / "digits" / "1", root / "digits" / "1")
    return root


def _add(root: Path, repository: Path, name: str, version: str, source: str = "1") -> None:
    shutil.copytree(repository / name / source, root / name / version)


def test_a_new_version_loads_and_becomes_the_default(root: Path, repository: Path) -> None:
    repo = Repository.load(root, LOAD)
    _add(root, repository, "digits", "2", source="2")
    report = repo.sync(root, LOAD)
    assert report.loaded == ["digits/2"] and not report.retired and not report.failed
    assert repo.versions("digits") == ["1", "2"]
    assert repo.get("digits").version == "2"
    assert repo.sync(root, LOAD).loaded == []  # nothing new: nothing reloaded


def test_a_removed_version_retires_and_the_rest_keep_serving(root: Path, repository: Path) -> None:
    _add(root, repository, "digits", "2", source="2")
    repo = Repository.load(root, LOAD)
    held = repo.get("digits", "2")
    shutil.rmtree(root / "digits" / "2")
    report = repo.sync(root, LOAD)
    assert report.retired == ["digits/2"]
    assert repo.versions("digits") == ["1"] and repo.get("digits").version == "1"
    with pytest.raises(NotFound, match="no version '2'"):
        repo.get("digits", "2")
    assert held.batcher is not None  # a request that already held it still has it


def test_a_broken_version_is_reported_kept_out_and_retried_only_when_replaced(
    root: Path, repository: Path
) -> None:
    repo = Repository.load(root, LOAD)
    (root / "digits" / "3").mkdir()
    (root / "digits" / "3" / "model.onnx").write_bytes(b"not an onnx graph")
    report = repo.sync(root, LOAD)
    assert list(report.failed) == ["digits/3"]
    assert repo.versions("digits") == ["1"]
    with pytest.raises(NotFound, match="version '3' is in the repository but failed to load"):
        repo.get("digits", "3")
    assert repo.sync(root, LOAD).failed == {}  # same file: not retried on every rescan
    shutil.copy(repository / "digits" / "2" / "model.onnx", root / "digits" / "3" / "model.onnx")
    assert repo.sync(root, LOAD).loaded == ["digits/3"]
    assert repo.get("digits", "3").version == "3"


def test_a_new_model_with_a_bad_config_fails_alone(root: Path, repository: Path) -> None:
    repo = Repository.load(root, LOAD)
    _add(root, repository, "cnn", "1")
    (root / "cnn" / "config.yaml").write_text("batching: {max_batch_size: -1}\n")
    _add(root, repository, "digits", "2", source="2")
    report = repo.sync(root, LOAD)
    assert report.loaded == ["digits/2"]
    assert "max_batch_size" in report.failed["cnn/1"]
    with pytest.raises(NotFound, match="failed to load"):
        repo.get("cnn")


def test_sync_once_follows_a_swapped_symlink_and_reports_its_generation(
    tmp_path: Path, root: Path, repository: Path
) -> None:
    link = tmp_path / "current"
    link.symlink_to(root)
    repo = Repository.load(link.resolve(), LOAD)
    assert generation(link) == 0
    second = tmp_path / "next"
    shutil.copytree(root, second, symlinks=True)
    _add(second, repository, "digits", "2", source="2")
    (second / GENERATION_FILE).write_text("7\n")
    swap = link.with_name(link.name + ".tmp")
    swap.symlink_to(second)
    swap.replace(link)
    assert sync_once(repo, link, LOAD) == 7
    assert repo.versions("digits") == ["1", "2"]


def test_a_broken_version_at_start_is_kept_out_and_the_rest_serve(root: Path) -> None:
    (root / "digits" / "7").mkdir()
    (root / "digits" / "7" / "model.onnx").write_bytes(b"truncated")
    repo = Repository.load(root, LOAD)  # a worker restarted after a crash comes back
    assert repo.versions("digits") == ["1"]
    with pytest.raises(NotFound, match="version '7' is in the repository but failed to load"):
        repo.get("digits", "7")


def test_a_fixed_config_yaml_gets_a_failed_version_retried(root: Path) -> None:
    (root / "digits" / "config.yaml").write_text("batching: {max_batch_size: -1}\n")
    repo = Repository.load(root, LOAD)
    assert repo.names() == []
    assert repo.sync(root, LOAD).loaded == []  # unchanged: not retried
    (root / "digits" / "config.yaml").write_text("batching: {max_batch_size: 4}\n")
    assert repo.sync(root, LOAD).loaded == ["digits/1"]


def test_a_retired_version_is_freed_once_no_request_holds_it(root: Path, repository: Path) -> None:
    _add(root, repository, "digits", "2", source="2")
    repo = Repository.load(root, LOAD)
    held = weakref.ref(repo.get("digits", "2"))
    shutil.rmtree(root / "digits" / "2")
    assert repo.sync(root, LOAD).retired == ["digits/2"]
    deadline = time.monotonic() + 5  # its batching thread stops, then nothing refers to it
    while held() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held() is None
