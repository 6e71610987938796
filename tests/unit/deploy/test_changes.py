"""What each entry point asks the pipeline for: a file to apply, the live revision again, or a
kept one; and what a file that is not newer is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.deploy.changes import plan_current, plan_file, plan_rollback, require_newer
from scripts.deploy.history import History, HistoryEntry
from scripts.edge.errors import DeployError
from scripts.edge.revisions import Revision, switch_current
from scripts.release import load_release
from scripts.runtime import RuntimeDir
from tests.revisions import RELEASE, kept_revision


@pytest.fixture
def runtime(tmp_path: Path) -> RuntimeDir:
    rt = RuntimeDir(tmp_path / "rt")
    rt.ensure()
    return rt


def kept(runtime: RuntimeDir, n: int, *, live: bool = True) -> Revision:
    """A rendered revision n in the runtime directory, recorded in the history."""
    return kept_revision(runtime, n, live=live)


def write(tmp_path: Path, n: int, extra: str = "") -> Path:
    path = tmp_path / f"release-{n}{extra and '-x'}.yaml"
    path.write_text(RELEASE.format(n=n) + extra)
    return path


def test_a_file_is_applied_unless_an_edge_start_finds_it_live(
    runtime: RuntimeDir, tmp_path: Path
) -> None:
    live = kept(runtime, 1)
    same = write(tmp_path, 1)
    assert plan_file(runtime, same).action == "apply"  # `weir apply` of it is refused later
    change = plan_file(runtime, same, serve_same=True)
    assert (change.action, change.revision) == ("start", live)
    edited = plan_file(runtime, write(tmp_path, 1, "    timeout: 3s\n"), serve_same=True)
    assert edited.action == "apply" and edited.source.endswith("-x.yaml")


def test_a_restart_serves_current_never_a_file(runtime: RuntimeDir) -> None:
    kept(runtime, 1, live=False)
    kept(runtime, 2)
    kept_first = runtime.revisions / "r1"
    switch_current(runtime, kept_first)  # rolled back to 1, and recorded
    History(runtime.history).record(HistoryEntry(1, "c1", "r1", "rollback", 1.0))
    change = plan_current(runtime)
    assert change.revision is not None and change.revision.dir == kept_first
    assert change.loaded.release.revision == 1
    runtime.current.unlink()  # `current` lost: the history's last entry says what was live
    assert plan_current(runtime).revision.dir == kept_first


def test_a_restart_after_an_apply_died_before_recording_serves_the_recorded_one(
    runtime: RuntimeDir,
) -> None:
    first = kept(runtime, 1)
    unrecorded = runtime.revisions / "r2"
    unrecorded.mkdir()
    for name in ("settings.json", "nginx.conf", "release.yaml"):
        (unrecorded / name).write_text((first.dir / name).read_text().replace("1", "2"))
    # Rendered only (killed before the switch), then switched too (killed before recording).
    assert plan_current(runtime).revision.dir == first.dir
    switch_current(runtime, unrecorded)
    change = plan_current(runtime)
    assert change.revision is not None and change.revision.dir == first.dir
    assert change.loaded.release.revision == 1


def test_a_restart_with_nothing_applied_asks_for_a_file(runtime: RuntimeDir) -> None:
    with pytest.raises(DeployError, match=r"nothing was applied in .* give a release file"):
        plan_current(runtime)


def test_an_older_file_is_told_what_to_do(runtime: RuntimeDir, tmp_path: Path) -> None:
    kept(runtime, 2)
    with pytest.raises(DeployError) as info:
        require_newer(load_release(write(tmp_path, 1)), runtime)
    message = str(info.value)
    assert "revision 1 is not newer than revision 2" in message
    assert "raise `revision:` above 2" in message and "weir rollback --to 1" in message
    assert "without a file to serve the live one" in message
    require_newer(load_release(write(tmp_path, 3)), runtime)


def test_rollback_targets(runtime: RuntimeDir) -> None:
    with pytest.raises(DeployError, match="nothing to roll back to"):
        plan_rollback(runtime, None)
    kept(runtime, 1)
    kept(runtime, 2)
    change = plan_rollback(runtime, None)
    assert (change.action, change.revision.revision) == ("rollback", 1)
    with pytest.raises(
        DeployError, match=r"revision 9 was never applied\); applied revisions: 1, 2"
    ):
        plan_rollback(runtime, 9)
    (runtime.revisions / "r1" / "nginx.conf").unlink()
    with pytest.raises(DeployError, match=r"rendered config .* is gone"):
        plan_rollback(runtime, 1)
