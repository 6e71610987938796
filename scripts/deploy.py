"""The steps of putting a release live, each of which leaves the previous config serving on failure.

render into a fresh directory -> `nginx -t` it -> (under `weir up`: the sidecars load the
release's model versions) -> switch `current` (one rename) -> reload (HUP) -> verify that the
running workers report the new checksum -> record it in the history.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from scripts.admin_client import AdminClient, AdminError
from scripts.edge.render import CONF_NAME, SETTINGS_NAME, render
from scripts.history import Entry, History
from scripts.nginx_bin import NginxBinary, find_nginx
from scripts.release import LoadedRelease, Release, load_release
from scripts.runtime import RuntimeDir, TokenError, read_token
from scripts.sidecar_sync import SidecarSyncError, sync_sidecars

KEEP_REVISIONS = 20
VERIFY_SECONDS = 10.0


class DeployError(RuntimeError):
    """Something stopped a change; the message says what still serves and what to do."""


class LiveChangeError(DeployError):
    """A failure after `current` was switched that could not be fully undone, or after the new
    revision went live: the message says what serves now."""


@dataclass(frozen=True)
class Revision:
    revision: int
    checksum: str
    dir: Path
    wiring: str = ""

    @property
    def conf(self) -> Path:
        return self.dir / CONF_NAME

    @classmethod
    def at(cls, directory: Path) -> Revision:
        settings = json.loads((directory / SETTINGS_NAME).read_text())
        return cls(settings["revision"], settings["checksum"], directory, settings["wiring"])


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


def nginx_test(nginx: NginxBinary, runtime: RuntimeDir, conf: Path) -> None:
    result = subprocess.run(
        [nginx.path, "-t", "-q", "-p", str(runtime.edge), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().replace("\n", "\n    ")
        raise DeployError(f"nginx -t rejected the rendered config {conf}:\n    {detail}")


def render_revision(loaded: LoadedRelease, runtime: RuntimeDir, nginx: NginxBinary) -> Revision:
    """Render and `nginx -t` a release into a fresh revision directory (removed on failure)."""
    runtime.ensure()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}"
    final = runtime.revisions / f"r{loaded.release.revision}-{stamp}"
    try:
        rendered = render(loaded.release, runtime, nginx, final, release_text=loaded.text)
        nginx_test(nginx, runtime, final / CONF_NAME)
    except Exception:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return Revision(loaded.release.revision, rendered.checksum, final, rendered.settings["wiring"])


def current_revision(runtime: RuntimeDir) -> Revision | None:
    try:
        return Revision.at(runtime.current.resolve(strict=True))
    except (OSError, ValueError, KeyError):
        return None


def switch_current(runtime: RuntimeDir, target: Path) -> None:
    """Point `current` at target with one atomic rename."""
    tmp = runtime.edge / f".current.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, runtime.edge))
    os.replace(tmp, runtime.current)


def admin_refusal(runtime: RuntimeDir, address: str, status: int, data: object) -> str:
    """What an admin API answer other than 200 means, for the operator."""
    message = data.get("error") if isinstance(data, dict) else str(data).strip()[:200]
    text = f"the edge's admin API at {address} answered {status} {message}"
    if status == 403:
        return text + (
            ": the WEIR_ADMIN_TOKEN in your shell (else the token file "
            f"{runtime.token_file}) differs from the edge's, read when it started: use the "
            "edge's token, or restart the edge with yours"
        )
    if status == 401:
        return text + (
            ": your shell has no admin token (WEIR_ADMIN_TOKEN, or the token file "
            f"{runtime.token_file}) and the edge requires one: export the edge's token"
        )
    return text


def running_checksum(runtime: RuntimeDir, revision: Revision) -> tuple[str | None, str]:
    """The checksum the running workers report, or None and why it could not be read."""
    settings = json.loads((revision.dir / SETTINGS_NAME).read_text())
    address = settings["admin_listen"]
    client = AdminClient(address, _token_or_none(runtime), timeout=2.0)
    try:
        status, data = client.request("GET", "/admin/checksum")
    except AdminError as exc:
        return None, str(exc)
    if status != 200 or not isinstance(data, dict):
        return None, admin_refusal(runtime, address, status, data)
    return data.get("checksum"), ""


def _token_or_none(runtime: RuntimeDir) -> str | None:
    try:
        return read_token(runtime)
    except TokenError:
        return None


def log_offset(runtime: RuntimeDir) -> int:
    """Where the error log ends now: what nginx writes after this answers the next action."""
    try:
        return runtime.error_log.stat().st_size
    except FileNotFoundError:
        return 0


def log_since(log: Path, offset: int) -> str | None:
    """What nginx wrote to its error log after offset (None: no log to read)."""
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def _new_errors(log: Path, offset: int) -> list[str]:
    """The `[emerg]` lines written after offset: nginx refusing a config (an `[alert]` is not a
    refusal: nginx logs those for e.g. a worker it had to kill, and carries on)."""
    return [line for line in (log_since(log, offset) or "").splitlines() if "[emerg]" in line]


def wait_for_checksum(
    runtime: RuntimeDir, revision: Revision, log_offset: int, timeout: float = VERIFY_SECONDS
) -> None:
    """Until the running workers report revision's checksum; log_offset: where the error log
    ended before the action being verified (older lines are not about it)."""
    deadline = time.monotonic() + timeout
    seen, problem = None, ""
    while time.monotonic() < deadline:
        seen, problem = running_checksum(runtime, revision)
        if seen == revision.checksum:
            return
        errors = _new_errors(runtime.error_log, log_offset)
        if errors:
            raise DeployError("nginx refused the new config:\n    " + "\n    ".join(errors[-5:]))
        if " answered 403 " in problem:  # a wrong token stays wrong: no point waiting
            raise DeployError(f"could not verify the new config: {problem}")
        time.sleep(0.05)
    if problem:
        raise DeployError(
            f"the edge did not report the new checksum within {timeout:g}s: {problem}"
        )
    raise DeployError(
        f"the edge did not report the new checksum within {timeout:g}s "
        f"(it reports {seen or 'nothing'}); see {runtime.error_log}"
    )


def reload_and_verify(runtime: RuntimeDir, pid: int, revision: Revision) -> None:
    offset = log_offset(runtime)
    os.kill(pid, signal.SIGHUP)
    wait_for_checksum(runtime, revision, offset)


def publish_settings(runtime: RuntimeDir, revision: Revision) -> None:
    """Same wiring: hand the workers the new Lua settings; no reload, no connection closed."""
    settings = json.loads((revision.dir / SETTINGS_NAME).read_text())
    address = settings["admin_listen"]
    client = AdminClient(address, _token_or_none(runtime), timeout=5.0)
    offset = log_offset(runtime)
    try:
        status, data = client.request("POST", "/admin/settings/reload")
    except AdminError as exc:
        raise DeployError(str(exc)) from None
    if status != 200:
        raise DeployError(
            "the edge did not take the new settings: "
            + admin_refusal(runtime, address, status, data)
        )
    wait_for_checksum(runtime, revision, offset)


@contextlib.contextmanager
def change_lock(runtime: RuntimeDir, wait: float = 30.0) -> Iterator[None]:
    """One change at a time per runtime directory (two applies must not interleave)."""
    runtime.edge.mkdir(parents=True, exist_ok=True)
    with (runtime.edge / "change.lock").open("w") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DeployError(
                        f"another apply or rollback holds {runtime.edge / 'change.lock'} "
                        f"for over {wait:g}s; wait for it, or find it with `fuser`"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def go_live(runtime: RuntimeDir, revision: Revision, action: str, source: str = "") -> str:
    """Switch to revision and, if an edge runs, reload it and verify; undo on any failure.

    Returns a one-line description of what happened.
    """
    previous = current_revision(runtime)
    switch_current(runtime, revision.dir)
    pid = runtime.edge_pid()
    # Same nginx wiring (e.g. only the revision or breaker settings changed): no reload, so no
    # keep-alive connection is closed under the clients' feet.
    hot = pid is not None and previous is not None and previous.wiring == revision.wiring
    if pid is not None:
        try:
            if hot:
                publish_settings(runtime, revision)
            else:
                reload_and_verify(runtime, pid, revision)
        except Exception as exc:  # not only DeployError: `current` must not stay switched
            _switch_back(runtime, pid, hot, revision, previous, exc)
    try:
        History(runtime.history).record(
            Entry(
                revision=revision.revision,
                checksum=revision.checksum,
                dir=revision.dir.name,
                action=action,
                applied_at=time.time(),
                source=source,
            )
        )
    except OSError as exc:
        raise LiveChangeError(
            f"revision {revision.revision} is live, but recording it in {runtime.history} "
            f"failed ({exc}): `weir history` and `weir rollback` do not know of it"
        ) from None
    with contextlib.suppress(OSError):  # old revision directories stay: harmless
        prune_revisions(runtime)
    if pid is None:
        where = "no edge running; `weir edge` starts it"
    elif hot:
        where = f"edge pid {pid} took the new settings without a reload, verified"
    else:
        where = f"edge pid {pid} reloaded and verified"
    return f"revision {revision.revision} is live ({where}; checksum {revision.checksum[:12]})"


def _switch_back(
    runtime: RuntimeDir,
    pid: int,
    hot: bool,
    revision: Revision,
    previous: Revision | None,
    exc: Exception,
) -> NoReturn:
    """Undo a switch whose reload or verification failed, and say truthfully what serves."""
    if previous is None:
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
    with contextlib.suppress(OSError, DeployError):
        if hot:
            publish_settings(runtime, previous)
        else:
            os.kill(pid, signal.SIGHUP)
    raise DeployError(
        f"{exc}\nrevision {previous.revision} is still serving; nothing was changed"
    ) from None


def prune_revisions(runtime: RuntimeDir) -> None:
    """Keep the directories the recent history refers to, and the live one."""
    entries = History(runtime.history).entries()
    keep = {e.dir for e in entries[-KEEP_REVISIONS:]}
    current = current_revision(runtime)
    if current is not None:
        keep.add(current.dir.name)
    referenced = {e.dir for e in entries}
    for directory in runtime.revisions.iterdir():
        if directory.name in referenced and directory.name not in keep:
            shutil.rmtree(directory, ignore_errors=True)


def apply_release(
    path: Path | str,
    runtime: RuntimeDir,
    nginx: NginxBinary | None = None,
    *,
    allow_same: bool = False,
) -> str:
    """validate -> render -> nginx -t -> switch -> reload -> verify -> history."""
    loaded = load_release(path)
    check_token(loaded.release, runtime)
    with change_lock(runtime):
        return _apply_locked(loaded, path, runtime, nginx, allow_same)


def _apply_locked(
    loaded: LoadedRelease,
    path: Path | str,
    runtime: RuntimeDir,
    nginx: NginxBinary | None,
    allow_same: bool,
) -> str:
    release = loaded.release
    hint = f"or `weir rollback --to {release.revision}` to go back to an applied one"
    try:
        require_newer(loaded, path, runtime, hint)
    except DeployError:
        current = current_revision(runtime)
        if allow_same and current is not None and current.revision == release.revision:
            return f"revision {release.revision} is already current"
        raise
    revision = render_revision(loaded, runtime, nginx or find_nginx())
    # New versions load in the sidecars before the edge may route to them.
    try:
        synced = sync_sidecars(release, runtime)
    except SidecarSyncError as exc:
        raise DeployError(f"{exc}\nthe edge was not changed") from None
    try:
        message = go_live(runtime, revision, "apply", source=str(Path(path).absolute()))
    except LiveChangeError:
        raise  # the new revision is (partly) live: its sidecars' view must stay
    except BaseException:
        if synced is not None:
            synced.undo()
        raise
    return f"{message}; {synced.message}" if synced else message


def require_newer(loaded: LoadedRelease, path: Path | str, runtime: RuntimeDir, hint: str) -> None:
    """Refuse a release whose revision is not above every one applied here (call it holding
    the change lock, so that two applies cannot both pass it)."""
    revision = loaded.release.revision
    highest = History(runtime.history).highest_revision()
    if highest is not None and revision <= highest:
        raise DeployError(
            f"{path}: revision {revision} is not newer than revision {highest}, the highest "
            f"applied here: raise `revision:` above {highest} ({hint})"
        )


def rollback(runtime: RuntimeDir, to: int | None = None, nginx: NginxBinary | None = None) -> str:
    with change_lock(runtime):
        return _rollback_locked(runtime, to, nginx)


def _rollback_locked(runtime: RuntimeDir, to: int | None, nginx: NginxBinary | None) -> str:
    history = History(runtime.history)
    current = history.current()
    if current is None:
        raise DeployError("no history in this runtime directory: nothing to roll back to")
    target = history.latest_of(to) if to is not None else history.previous()
    if target is None:
        known = ", ".join(map(str, sorted({e.revision for e in history.entries()})))
        why = f"revision {to} was never applied" if to else "nothing older than the current one"
        raise DeployError(f"no revision to roll back to ({why}); applied revisions: {known}")
    directory = runtime.revisions / target.dir
    if not (directory / CONF_NAME).exists():
        raise DeployError(f"revision {target.revision}'s rendered config {directory} is gone")
    revision = Revision.at(directory)
    nginx_test(nginx or find_nginx(), runtime, revision.conf)
    return go_live(runtime, revision, "rollback")
