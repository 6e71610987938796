"""What an entry point asks the pipeline to put live: a `Change`.

- `plan_file(FILE)`: `weir apply FILE`; `weir edge FILE` and `weir up FILE` too, which serve
  `current` instead when FILE is the release it was rendered from.
- `plan_rollback(TO)`: `weir rollback`, a kept revision, validated and `nginx -t`-ed again.
- `plan_current()`: `weir edge` and `weir up` without a file, and every restart of a crashed
  edge: the last applied revision, never a file on disk (a file may be edited, or older than
  what was applied or rolled back to since).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from scripts.deploy.history import History
from scripts.edge.errors import DeployError
from scripts.edge.render import CONF_NAME
from scripts.edge.revisions import Revision, current_revision
from scripts.release import LoadedRelease, load_release
from scripts.runtime import RuntimeDir


@dataclass(frozen=True)
class Change:
    """What to put live: a validated release and, when it is a kept one, its revision."""

    loaded: LoadedRelease
    action: str  # apply | rollback | start (serve a kept revision again)
    source: str = ""
    revision: Revision | None = None
    # A start is planned again by the pipeline once it holds the change lock: what was live
    # when it was first planned may have been replaced since (an apply finished meanwhile), and
    # a start must serve what is live, never switch `current` back to an older revision.
    replan: Callable[[RuntimeDir], Change] | None = field(default=None, compare=False)

    def resolved(self, runtime: RuntimeDir) -> Change:
        """This change as planned now (call it holding the change lock)."""
        return self.replan(runtime) if self.replan is not None else self


def plan_file(runtime: RuntimeDir, path: Path | str, *, serve_same: bool = False) -> Change:
    """A release file to apply; with serve_same (an edge's start), the file `current` was
    rendered from is served as it is instead of being applied again."""
    loaded = load_release(path)
    current = current_revision(runtime)
    replan = partial(plan_file, path=path, serve_same=True) if serve_same else None
    if serve_same and current is not None and current.same_text(loaded.text):
        return Change(loaded, "start", revision=current, replan=replan)
    return Change(loaded, "apply", source=str(Path(path).absolute()), replan=replan)


def plan_current(runtime: RuntimeDir) -> Change:
    """The last applied revision again: what a restart serves.

    That is the history's last entry: every apply and rollback records one once its revision
    is verified live. `current` says the same, unless an apply died between switching it and
    recording (SIGKILLed, the machine lost): then it points at a revision nobody saw verified,
    which `weir history` does not know and the sidecars may not hold, and the recorded one
    is served instead. Without a usable history entry, `current` is what there is.
    """
    current = current_revision(runtime)
    last = History(runtime.history).current()
    if last is not None:
        recorded = (runtime.revisions / last.dir).resolve()
        stale = current is None or current.dir != recorded
        if stale and (recorded / CONF_NAME).exists():
            current = Revision.at(recorded)
    if current is None:
        raise DeployError(
            f"nothing was applied in {runtime.root} yet: give a release file "
            "(`weir edge FILE`, `weir up FILE`)"
        )
    return Change(current.load(), "start", revision=current, replan=plan_current)


def plan_rollback(runtime: RuntimeDir, to: int | None) -> Change:
    """A kept revision: `to`, or the newest one older than the current (call it locked)."""
    history = History(runtime.history)
    if history.current() is None:
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
    return Change(revision.load(), "rollback", revision=revision)


def require_newer(loaded: LoadedRelease, runtime: RuntimeDir) -> None:
    """Refuse a release whose revision is not above every one applied here (called holding
    the change lock, so that two applies cannot both pass it)."""
    revision = loaded.release.revision
    highest = History(runtime.history).highest_revision()
    if highest is not None and revision <= highest:
        raise DeployError(
            f"{loaded.path}: revision {revision} is not newer than revision {highest}, the "
            f"highest applied here: raise `revision:` above {highest} to apply it, "
            f"`weir rollback --to {revision}` to go back to an applied one, or start "
            "`weir edge` / `weir up` without a file to serve the live one"
        )
