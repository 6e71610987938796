"""The one pipeline: every entry point that changes what the edge serves goes through it.

    validate -> render -> nginx -t -> sidecar sync (when `weir up`'s sidecars run) -> switch
    `current` -> reload, live settings or start nginx -> verify the checksum -> record in history

`run(change)` runs them for every entry point; what each one asks for is a `Change`
(`changes.py`): `weir apply FILE` (`apply_release`), `weir rollback` (`rollback`), and an edge's
start (`scripts/stack/edge.py`: `weir edge [FILE]`, `weir up`'s edge and its every restart,
which without a file serves the last applied revision).

A failure before the switch changes nothing; after it, `current`, the running edge and the
sidecars' view are put back, and the message says what serves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from scripts.deploy.changes import Change, plan_current, plan_file, plan_rollback, require_newer
from scripts.deploy.history import History, HistoryEntry
from scripts.deploy.lock import change_lock
from scripts.edge.errors import DeployError, LiveChangeError
from scripts.edge.live import publish_settings, reload_and_verify, wait_for_checksum
from scripts.edge.nginx import NginxBinary, find_nginx
from scripts.edge.process import NginxProcess, clear_leftovers, log_offset, nginx_test
from scripts.edge.revisions import Revision, current_revision, render_revision, switch_current
from scripts.fleet.sync import SidecarSyncError, sync_sidecars
from scripts.release import Release
from scripts.runtime import RuntimeDir, TokenError, read_token

KEEP_REVISIONS = 20
# A revision directory no history entry refers to (left by an apply killed before it recorded
# one) is removed once it is this old. Renders happen only under the change lock, which pruning
# holds too, so none can be in progress; the age only spares a directory just rendered.
UNREFERENCED_GRACE_S = 300.0


@dataclass(frozen=True)
class Spawn:
    """Start nginx as the pipeline's go-live step (the edge's own start), instead of reloading
    a running one. stderr: where nginx's stderr goes (None: ours)."""

    stderr: int | None = None
    die_with_parent: bool = False


@dataclass(frozen=True)
class Outcome:
    message: str
    revision: Revision
    process: NginxProcess | None = None


def apply_release(path: Path | str, runtime: RuntimeDir, nginx: NginxBinary | None = None) -> str:
    """`weir apply FILE`."""
    return run(runtime, plan_file(runtime, path), nginx).message


def rollback(runtime: RuntimeDir, to: int | None = None, nginx: NginxBinary | None = None) -> str:
    """`weir rollback [--to REVISION]`."""
    with change_lock(runtime):
        return _run_locked(runtime, plan_rollback(runtime, to), nginx, None).message


def reload_current(runtime: RuntimeDir, pid: int, nginx: NginxBinary | None = None) -> str:
    """SIGHUP to `weir edge`: the live revision again, `nginx -t`-ed, reloaded into nginx `pid`
    and verified. When `current` is not the last recorded revision (an apply died between
    switching and recording), that one is put live through the whole pipeline instead."""
    nginx = nginx or find_nginx()
    with change_lock(runtime):
        change = plan_current(runtime)
        revision = change.revision
        assert revision is not None
        live = current_revision(runtime)
        if live is None or live.dir != revision.dir:
            return _run_locked(runtime, change, nginx, None).message
        nginx_test(nginx, runtime, revision.conf)
        reload_and_verify(runtime, pid, revision)
    return f"revision {revision.revision} reloaded and verified (checksum {revision.checksum[:12]})"


def run(
    runtime: RuntimeDir,
    change: Change,
    nginx: NginxBinary | None = None,
    spawn: Spawn | None = None,
) -> Outcome:
    """Put `change` live through every step; spawn: start nginx as the go-live step."""
    runtime.ensure()
    cleared = None
    if spawn is not None:
        # Before anything changes: refuses when an edge runs, and frees the ports of one that
        # crashed (the workers of a SIGKILLed master serve on, holding them).
        cleared = clear_leftovers(runtime)
    with change_lock(runtime):
        outcome = _run_locked(runtime, change, nginx, spawn)
    if cleared:
        return dataclasses.replace(outcome, message=f"{cleared}; {outcome.message}")
    return outcome


def _run_locked(
    runtime: RuntimeDir, change: Change, nginx: NginxBinary | None, spawn: Spawn | None
) -> Outcome:
    nginx = nginx or find_nginx()
    # A start is planned again here, under the lock: an apply that finished while this waited
    # for the lock (a restart of an edge that crashed during it) made its revision the live one.
    change = change.resolved(runtime)
    release = change.loaded.release  # validated when loaded, a kept revision's too
    check_token(release, runtime)
    if change.action == "apply":
        require_newer(change.loaded, runtime)
    previous = current_revision(runtime)
    revision = change.revision or render_revision(change.loaded, runtime, nginx)
    fresh = change.revision is None
    synced = None
    try:
        nginx_test(nginx, runtime, revision.conf)
        # New versions load in the sidecars before the edge may route to them; a revision that
        # is live already is what they serve.
        if previous is None or previous.dir != revision.dir:
            try:
                synced = sync_sidecars(release, runtime)
            except SidecarSyncError as exc:
                raise DeployError(f"{exc}\nthe edge was not changed") from None
    except BaseException:
        if fresh:
            shutil.rmtree(revision.dir, ignore_errors=True)
        raise
    try:
        process, how = go_live(runtime, nginx, revision, previous, spawn)
    except LiveChangeError:
        raise  # the new revision is (partly) live: its sidecars' view must stay
    except BaseException:
        if synced is not None:
            synced.undo()
        live = current_revision(runtime)
        if fresh and (live is None or live.dir != revision.dir):
            shutil.rmtree(revision.dir, ignore_errors=True)  # never served: nothing refers to it
        raise
    record(runtime, revision, change)
    message = f"revision {revision.revision} is live ({how}; checksum {revision.checksum[:12]})"
    if synced is not None:
        message += f"; {synced.message}"
    return Outcome(message, revision, process)


def check_token(release: Release, runtime: RuntimeDir) -> None:
    if release.edge.admin_auth == "open":
        return
    try:
        token = read_token(runtime)
    except TokenError as exc:
        raise DeployError(str(exc)) from None
    if not token:
        raise DeployError(
            "no admin token: export WEIR_ADMIN_TOKEN, or create the token file with "
            f"`weir edge --init-token` ({runtime.token_file}, mode 0600); a loopback admin API "
            "without a token needs `edge: {admin_auth: open}` in the release"
        )


def go_live(
    runtime: RuntimeDir,
    nginx: NginxBinary,
    revision: Revision,
    previous: Revision | None,
    spawn: Spawn | None = None,
) -> tuple[NginxProcess | None, str]:
    """Switch `current` to revision, then start nginx (spawn), reload it or hand it the new
    settings, and verify; on any failure put everything back. Returns the started process and
    how the revision went live."""
    switched = previous is None or previous.dir != revision.dir
    if switched:
        switch_current(runtime, revision.dir)
    pid = None if spawn is not None else runtime.edge_pid()
    # Same nginx wiring (e.g. only the split or breaker settings changed): no reload, so no
    # keep-alive connection is closed under the clients' feet.
    hot = pid is not None and previous is not None and previous.wiring == revision.wiring
    process = None
    try:
        if spawn is not None:
            offset = log_offset(runtime)
            process = NginxProcess.spawn(
                nginx, runtime, spawn.stderr, die_with_parent=spawn.die_with_parent
            )
            wait_for_checksum(runtime, revision, offset)
            return process, f"nginx pid {process.pid} started and verified"
        if pid is None:
            return None, "no edge running; `weir edge` starts it"
        if hot:
            publish_settings(runtime, revision)
            return None, f"edge pid {pid} took the new settings without a reload, verified"
        reload_and_verify(runtime, pid, revision)
        return None, f"edge pid {pid} reloaded and verified"
    except BaseException as exc:  # any failure, a Ctrl-C too: `current` must not stay switched
        if process is not None:
            process.stop()
        if not switched:
            raise
        reason = exc if isinstance(exc, Exception) else DeployError("interrupted before verifying")
        _switch_back(runtime, pid, hot, revision, previous, reason)


def _switch_back(
    runtime: RuntimeDir,
    pid: int | None,
    hot: bool,
    revision: Revision,
    previous: Revision | None,
    exc: Exception,
) -> NoReturn:
    """Undo a switch whose go-live step failed, and say truthfully what serves."""
    if previous is None:
        if pid is None:  # nothing served before, and nothing serves now
            with contextlib.suppress(OSError):
                runtime.current.unlink()
            raise DeployError(f"{exc}\nnothing was changed") from None
        raise LiveChangeError(
            f"{exc}\n`current` points at revision {revision.revision} (no previous revision "
            "existed to go back to); fix the cause and apply again"
        ) from None
    try:
        switch_current(runtime, previous.dir)
    except OSError as undo:
        raise LiveChangeError(
            f"{exc}\nswitching `current` back to revision {previous.revision} failed too "
            f"({undo}): {runtime.current} still points at revision {revision.revision}, which a "
            f"restart would serve; run `weir rollback --to {previous.revision}`"
        ) from None
    if pid is None:
        raise DeployError(
            f"{exc}\nthe edge did not start; revision {previous.revision} stays current"
        ) from None
    with contextlib.suppress(OSError, DeployError):
        if hot:
            publish_settings(runtime, previous)
        else:
            os.kill(pid, signal.SIGHUP)
    raise DeployError(
        f"{exc}\nrevision {previous.revision} is still serving; nothing was changed"
    ) from None


def record(runtime: RuntimeDir, revision: Revision, change: Change) -> None:
    """The history's new entry; none when the revision was its last one already (a restart)."""
    history = History(runtime.history)
    last = history.current()
    if last is not None and last.dir == revision.dir.name:
        return
    try:
        history.record(
            HistoryEntry(
                revision=revision.revision,
                checksum=revision.checksum,
                dir=revision.dir.name,
                action=change.action,
                applied_at=time.time(),
                source=change.source,
            )
        )
    except OSError as exc:
        raise LiveChangeError(
            f"revision {revision.revision} is live, but recording it in {runtime.history} "
            f"failed ({exc}): `weir history` and `weir rollback` do not know of it"
        ) from None
    with contextlib.suppress(OSError):  # old revision directories stay: harmless
        prune_revisions(runtime)


def prune_revisions(runtime: RuntimeDir) -> None:
    """Keep the directories the recent history refers to, and the live one; remove those that
    fell out of the recent history, and those it never referred to once they are older than
    UNREFERENCED_GRACE_S (call it holding the change lock)."""
    entries = History(runtime.history).entries()
    keep = {e.dir for e in entries[-KEEP_REVISIONS:]}
    current = current_revision(runtime)
    if current is not None:
        keep.add(current.dir.name)
    referenced = {e.dir for e in entries}
    now = time.time()
    for directory in runtime.revisions.iterdir():
        if directory.name in keep or not directory.is_dir():
            continue
        if directory.name in referenced or now - directory.stat().st_mtime > UNREFERENCED_GRACE_S:
            shutil.rmtree(directory, ignore_errors=True)
