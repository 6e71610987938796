"""`weir up FILE`: the sidecars start on the view of what serves; the file's view reaches them
only through the pipeline's sidecar sync (which puts the live one back if the apply fails)."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.deploy.changes import plan_file
from scripts.edge.revisions import switch_current
from scripts.runtime import RuntimeDir
from scripts.stack.up import first_view

RELEASE = "revision: {n}\nmodels:\n  digits:\n    versions: {{{v}: {{}}}}\n"


def setup(tmp_path: Path) -> tuple[RuntimeDir, Path]:
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.ensure()
    models = tmp_path / "models"
    for version in ("1", "2"):
        (models / "digits" / version).mkdir(parents=True)
        (models / "digits" / version / "model.onnx").write_bytes(b"")
    return runtime, models


def live(runtime: RuntimeDir, n: int, version: int) -> None:
    directory = runtime.revisions / f"r{n}"
    directory.mkdir()
    settings = {"revision": n, "checksum": f"c{n}", "wiring": "w", "admin_listen": "127.0.0.1:9"}
    (directory / "settings.json").write_text(json.dumps(settings))
    (directory / "nginx.conf").write_text("")
    (directory / "release.yaml").write_text(RELEASE.format(n=n, v=version))
    switch_current(runtime, directory)


def release_file(tmp_path: Path, n: int, version: int) -> Path:
    path = tmp_path / f"release-{n}.yaml"
    path.write_text(RELEASE.format(n=n, v=version))
    return path


def test_an_apply_over_a_live_revision_starts_the_sidecars_on_the_live_view(
    tmp_path: Path,
) -> None:
    runtime, models = setup(tmp_path)
    live(runtime, 1, version=1)
    change = plan_file(runtime, release_file(tmp_path, 2, version=2), serve_same=True)
    assert change.action == "apply"
    assert first_view(runtime, change, models).revision == 1


def test_without_a_live_revision_the_file_is_all_there_is(tmp_path: Path) -> None:
    runtime, models = setup(tmp_path)
    change = plan_file(runtime, release_file(tmp_path, 2, version=2), serve_same=True)
    assert first_view(runtime, change, models).revision == 2


def test_a_start_serves_its_revision(tmp_path: Path) -> None:
    runtime, models = setup(tmp_path)
    live(runtime, 1, version=1)
    change = plan_file(runtime, release_file(tmp_path, 1, version=1), serve_same=True)
    assert change.action == "start"
    assert first_view(runtime, change, models).revision == 1
