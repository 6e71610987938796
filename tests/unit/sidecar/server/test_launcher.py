"""`weir sidecar` flags mirror the settings, and it refuses to start on a bad setup."""

from __future__ import annotations

import pytest

from sidecar.server import launcher
from sidecar.serving.onnx_session import gpu_present
from sidecar.settings import Settings


def test_every_setting_has_a_flag():
    flags = {a.dest for a in launcher.parser()._actions}
    assert set(Settings.model_fields) <= flags


def test_flags_are_typed_like_the_settings():
    args = launcher.parser().parse_args(["--workers", "3", "--max-queue-delay-ms", "0.5"])
    assert (args.workers, args.max_queue_delay_ms, args.port) == (3, 0.5, None)


def test_missing_repository_exits_2(tmp_path, capsys):
    assert launcher.main(["--models", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_invalid_setting_exits_2_naming_it(tmp_path, capsys):
    assert launcher.main(["--models", str(tmp_path), "--device", "gpu"]) == 2
    assert "device" in capsys.readouterr().err


@pytest.mark.skipif(gpu_present(), reason="this machine has a GPU")
def test_asking_for_a_gpu_without_one_exits_2(tmp_path, capsys):
    assert launcher.main(["--models", str(tmp_path), "--device", "0"]) == 2
    assert "use --device cpu" in capsys.readouterr().err
