"""What `weir apply` checks before it asks `weir up`'s sidecars for new versions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.fleet.sync import (
    LocalSidecars,
    SidecarSyncError,
    loaded_state,
    local_versions,
    sync_sidecars,
)
from scripts.release import parse_release
from scripts.runtime import RuntimeDir

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
    held = LocalSidecars(pid=os.getpid(), models=str(tmp_path), devices=["cpu"]).hold(runtime)
    assert LocalSidecars.read(runtime) is not None
    held.close()  # what a SIGKILLed `weir up` leaves: the file, unlocked
    assert (tmp_path / "sidecars.json").exists()
    assert LocalSidecars.read(runtime) is None
    assert sync_sidecars(parse_release(RELEASE), runtime) is None


@pytest.fixture
def running(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RuntimeDir]:
    """A runtime directory whose `weir up` runs on `request.param` (devices, poll seconds)."""
    devices, poll = getattr(request, "param", (["cpu"], 2.0))
    runtime = RuntimeDir(tmp_path / "run")
    runtime.root.mkdir()
    (tmp_path / "models" / "digits" / "1").mkdir(parents=True)
    (tmp_path / "models" / "digits" / "1" / "model.onnx").write_bytes(b"weights")
    held = LocalSidecars(os.getpid(), str(tmp_path / "models"), devices, poll).hold(runtime)
    yield runtime
    LocalSidecars.forget(runtime, held)
    assert LocalSidecars.read(runtime) is None


def test_a_missing_model_file_is_refused_before_anything_changes(running: RuntimeDir) -> None:
    with pytest.raises(SidecarSyncError, match=r"does not hold: digits/3;"):
        sync_sidecars(parse_release(RELEASE), running)
    assert not (running.root / "repository").exists()


@pytest.mark.parametrize("running", [(["0", "1"], 2.0)], indirect=True)
def test_a_device_change_asks_for_a_restart(running: RuntimeDir) -> None:
    with pytest.raises(SidecarSyncError, match="needs a restart of `weir up`"):
        sync_sidecars(parse_release(RELEASE), running)


@pytest.mark.parametrize("running", [(["cpu"], 0.0)], indirect=True)
def test_sidecars_that_never_rescan_are_refused_up_front(running: RuntimeDir) -> None:
    release = parse_release(RELEASE.replace('      "3": {}\n', ""))
    with pytest.raises(SidecarSyncError, match="WEIR_REPOSITORY_POLL_SECONDS=0"):
        sync_sidecars(release, running)


def test_an_apply_raising_max_body_above_the_sidecars_limit_asks_for_a_restart(
    tmp_path: Path,
) -> None:
    runtime = RuntimeDir(tmp_path / "run")
    runtime.root.mkdir()
    (tmp_path / "models" / "digits" / "1").mkdir(parents=True)
    (tmp_path / "models" / "digits" / "1" / "model.onnx").write_bytes(b"weights")
    limit = 16 * 1024**2
    held = LocalSidecars(os.getpid(), str(tmp_path / "models"), ["cpu"], 2.0, limit).hold(runtime)
    try:
        assert LocalSidecars.read(runtime) == LocalSidecars(
            os.getpid(), str(tmp_path / "models"), ["cpu"], 2.0, limit
        )
        bigger = parse_release(RELEASE.replace('      "3": {}\n', "") + "edge: {max_body: 17m}\n")
        with pytest.raises(SidecarSyncError) as info:
            sync_sidecars(bigger, runtime)
        message = str(info.value)
        assert f"edge.max_body ({17 * 1024**2} bytes) is above the {limit} bytes" in message
        assert "Restart `weir up` with this release" in message
        assert not (runtime.root / "repository").exists()  # refused before anything changed
    finally:
        LocalSidecars.forget(runtime, held)
