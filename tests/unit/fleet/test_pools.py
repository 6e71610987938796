"""Pools as processes: one sidecar per pool and device, named as before pools in the default
pool; a view per pool holding only its models; the pool layout fixed while `weir up` runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.fleet.model_view import build_view, publish_view
from scripts.fleet.pools import pool_layout, pool_sidecars, view_link
from scripts.fleet.sync import LocalSidecars, SidecarSyncError, layout_change, sync_sidecars
from scripts.release import parse_release
from scripts.runtime import RuntimeDir

POOLS = """
revision: 5
sidecars:
  devices: [0, 1]
  pools:
    light: {workers: 1, cpus: [0], memory: 1g}
    heavy: {cpus: [1]}
    spare: {}
models:
  digits: {versions: {"1": {}}, pool: light}
  cnn: {versions: {"1": {}}, pool: heavy}
  other: {versions: {"1": {}}}
"""


def test_one_sidecar_per_pool_in_use_and_device_named_as_before_in_the_default_pool() -> None:
    sidecars = pool_sidecars(parse_release(POOLS))
    assert [(s.pool, s.device, s.label, s.name) for s in sidecars] == [
        ("default", "0", "0", "sidecar-0"),
        ("default", "1", "1", "sidecar-1"),
        ("light", "0", "light-0", "sidecar-light-0"),
        ("light", "1", "light-1", "sidecar-light-1"),
        ("heavy", "0", "heavy-0", "sidecar-heavy-0"),
        ("heavy", "1", "heavy-1", "sidecar-heavy-1"),
    ]  # `spare` declares a pool no model uses: it runs nothing
    runtime = RuntimeDir(Path("/srv/weir"))
    assert sidecars[0].socket(runtime) == runtime.sidecar_socket("0")
    assert sidecars[2].address(runtime) == "unix:/srv/weir/run/sidecar-light-0.sock"
    assert view_link(runtime, "default") == runtime.repository
    assert view_link(runtime, "heavy") == Path("/srv/weir/repository-heavy")


def repository(root: Path) -> Path:
    for name in ("digits", "cnn", "other", "unnamed"):
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.onnx").write_bytes(b"weights")
    return root


def test_each_pool_view_holds_only_its_models_and_unnamed_ones_stay_in_the_default(
    tmp_path: Path,
) -> None:
    models = repository(tmp_path / "models")
    release = parse_release(POOLS)

    def names(pool: str) -> list[str]:
        view = build_view(release, models, tmp_path / f"view-{pool}", pool)
        return sorted(p.name for p in view.iterdir())

    assert names("light") == ["digits"]
    assert names("heavy") == ["cnn"]
    assert names("default") == ["other", "unnamed"]
    runtime = RuntimeDir(tmp_path / "rt")
    assert publish_view(release, models, view_link(runtime, "heavy"), "heavy") == 1
    assert (runtime.root / "repository-heavy.d" / "1" / "cnn" / "1" / "model.onnx").is_file()


def running(tmp_path: Path, release_text: str) -> tuple[RuntimeDir, object]:
    runtime = RuntimeDir(tmp_path / "run")
    runtime.root.mkdir()
    models = repository(tmp_path / "models")
    release = parse_release(release_text)
    local = LocalSidecars(os.getpid(), str(models), ["0", "1"], 2.0, None, pool_layout(release))
    return runtime, local.hold(runtime)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("heavy: {cpus: [1]}", "heavy: {cpus: [1, 2]}"), "pools default; light {workers: 1, "),
        (
            ('cnn: {versions: {"1": {}}, pool: heavy}', 'cnn: {versions: {"1": {}}, pool: light}'),
            "pools default; light",
        ),  # heavy no longer runs
        (
            ('other: {versions: {"1": {}}}', 'other: {versions: {"1": {}}, pool: spare}'),
            "pools light {workers: 1, cpus: [0], memory: 1024m}; heavy {cpus: [1]}; spare, "
            "where it runs default; light",
        ),  # default no longer runs, spare does
        (
            (
                'pool: light}\n  cnn: {versions: {"1": {}}, pool: heavy}',
                'pool: heavy}\n  cnn: {versions: {"1": {}}, pool: light}',
            ),
            "it moves digits to heavy (it runs in light), cnn to light (it runs in heavy)",
        ),
    ],
)
def test_a_change_of_the_pool_layout_asks_for_a_restart_before_anything_changes(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    runtime, held = running(tmp_path, POOLS)
    try:
        changed = parse_release(POOLS.replace(*edit))
        with pytest.raises(SidecarSyncError) as info:
            sync_sidecars(changed, runtime)
        message = str(info.value)
        assert "changes the sidecar pools of `weir up`" in message and expected in message
        assert "restart `weir up` with this release" in message
        assert not (runtime.root / "repository-heavy").exists()
    finally:
        LocalSidecars.forget(runtime, held)  # type: ignore[arg-type]


def test_a_new_model_in_a_running_pool_and_a_removed_model_keep_the_layout() -> None:
    release = parse_release(POOLS)
    local = LocalSidecars(1, "/m", ["0", "1"], layout=pool_layout(release))
    added = POOLS.replace("  other:", '  digits2: {versions: {"1": {}}, pool: light}\n  other:')
    assert layout_change(parse_release(added), local) is None
    assert layout_change(parse_release(POOLS.replace("  other:", "  x:")), local) is None


def test_a_manifest_from_before_pools_fits_only_a_release_without_them() -> None:
    old = LocalSidecars(1, "/m", ["cpu"])
    plain = 'revision: 1\nmodels: {digits: {versions: {"1": {}}}}\n'
    assert layout_change(parse_release(plain), old) is None
    assert "where it runs default" in (layout_change(parse_release(POOLS), old) or "")
