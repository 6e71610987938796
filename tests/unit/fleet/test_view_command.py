"""`weir view`: refused under a running `weir up`, and nothing created when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.fleet import model_view
from scripts.fleet.sync import LocalSidecars
from scripts.runtime import RuntimeDir

RELEASE = "revision: 1\nmodels:\n  digits:\n    versions: {1: {}}\n"


def models(tmp_path: Path) -> Path:
    repo = tmp_path / "models"
    (repo / "digits" / "1").mkdir(parents=True)
    (repo / "digits" / "1" / "model.onnx").write_bytes(b"")
    return repo


def release(tmp_path: Path, text: str = RELEASE) -> Path:
    path = tmp_path / "release.yaml"
    path.write_text(text)
    return path


def test_view_is_refused_while_weir_up_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.root.mkdir()
    held = LocalSidecars(4242, str(models(tmp_path)), ["cpu"]).hold(runtime)
    try:
        argv = [str(release(tmp_path)), "--models", str(tmp_path / "models")]
        assert model_view.main([*argv, "--runtime-dir", str(runtime.root)]) == 1
    finally:
        LocalSidecars.forget(runtime, held)
    assert "`weir up` (pid 4242) runs sidecars" in capsys.readouterr().err
    assert not runtime.repository.exists() and not (runtime.root / "repository.d").exists()
    # Once it stopped, the view is built.
    assert model_view.main([*argv, "--runtime-dir", str(runtime.root)]) == 0
    assert runtime.repository.is_symlink()


@pytest.mark.parametrize("broken", ["release", "models"])
def test_a_failed_view_creates_nothing(tmp_path: Path, broken: str) -> None:
    runtime = tmp_path / "rt"
    path = release(tmp_path, "revision: x\n" if broken == "release" else RELEASE)
    repo = tmp_path / "absent" if broken == "models" else models(tmp_path)
    code = model_view.main([str(path), "--models", str(repo), "--runtime-dir", str(runtime)])
    assert code == (2 if broken == "release" else 1)
    assert not runtime.exists()
