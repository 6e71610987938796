"""What `weir apply` checks before it asks `weir up`'s sidecars for new versions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.release import parse_release
from scripts.runtime import RuntimeDir
from scripts.sidecar_sync import (
    LocalSidecars,
    SidecarSyncError,
    loaded_state,
    local_versions,
    sync_sidecars,
)

RELEASE = """
revision: 4
sidecars: {devices: cpu}
models:
  digits:
    versions:
      "1": {}
      "3": {}
      "9": {upstreams: ["127.0.0.1:9000"]}
"""

METRICS = """\
# HELP weir_model_ready 1 when the model version is loaded and warmed up in a live worker.
# TYPE weir_model_ready gauge
weir_model_ready{model="digits",version="1"} 1.0
weir_model_ready{model="digits",version="3"} 0.0
weir_repository_generation{repository="/srv/.weir/repository"} 7.0
"""


def test_loaded_state_reads_the_generation_and_each_version(tmp_path: Path) -> None:
    assert loaded_state(METRICS) == (7, {("digits", "1"): 1.0, ("digits", "3"): 0.0})
    assert loaded_state("# nothing yet\n") == (None, {})


def test_versions_with_their_own_upstreams_are_not_the_local_sidecars_business() -> None:
    assert local_versions(parse_release(RELEASE)) == [("digits", "1"), ("digits", "3")]


def test_without_a_running_weir_up_nothing_is_synced(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path)
    assert sync_sidecars(parse_release(RELEASE), runtime) is None
    LocalSidecars(pid=2**22 + 1, models=str(tmp_path), devices=["cpu"]).write(runtime)
    assert sync_sidecars(parse_release(RELEASE), runtime) is None  # its pid is gone


def _running(tmp_path: Path, devices: list[str]) -> RuntimeDir:
    runtime = RuntimeDir(tmp_path / "run")
    runtime.root.mkdir()
    LocalSidecars(os.getpid(), str(tmp_path / "models"), devices).write(runtime)
    return runtime


def test_a_missing_model_file_is_refused_before_anything_changes(tmp_path: Path) -> None:
    runtime = _running(tmp_path, ["cpu"])
    (tmp_path / "models" / "digits" / "1").mkdir(parents=True)
    (tmp_path / "models" / "digits" / "1" / "model.onnx").write_bytes(b"weights")
    with pytest.raises(SidecarSyncError, match=r"does not hold: digits/3;"):
        sync_sidecars(parse_release(RELEASE), runtime)
    assert not (runtime.root / "repository").exists()


def test_a_device_change_asks_for_a_restart(tmp_path: Path) -> None:
    runtime = _running(tmp_path, ["0", "1"])
    with pytest.raises(SidecarSyncError, match="needs a restart of `weir up`"):
        sync_sidecars(parse_release(RELEASE), runtime)
    LocalSidecars.forget(runtime)
    assert LocalSidecars.read(runtime) is None
