"""What a promotion leaves behind: the live release with the canary at 100% and its rollout
done (a revision to apply, and the change a person commits to their release file), and the
canary's drift reference from the windows it passed."""

from __future__ import annotations

from pathlib import Path

import yaml

from scripts.edge.revisions import current_revision
from scripts.rollout import state as st
from scripts.rollout.counts import Signals
from scripts.rollout.reference import MIN_ROWS, rows_of, write_from_signals
from scripts.runtime import RuntimeDir
from sidecar.serving.drift import REFERENCE_FILE


class RolloutError(RuntimeError):
    """A rollout that cannot start or go on; the message says why and what to do."""


def promoted_release(runtime: RuntimeDir, s: st.RolloutState) -> tuple[int, str, str]:
    """The live release with the canary at 100% and its rollout done: a file to apply, its
    revision, and the change for a person to commit to their release file."""
    if s.release_file:  # --release: the file the rollout started from
        data = yaml.safe_load(Path(s.release_file).read_text())
    else:
        live = current_revision(runtime)
        if live is None:
            raise RolloutError(f"no applied revision in {runtime.root}")
        data = yaml.safe_load((live.dir / "release.yaml").read_text())
    revision = int(data["revision"]) + 1
    model = data["models"][s.model]
    versions = [str(v) for v in model["versions"]]
    split = {v: (100 if v == s.canary else 0) for v in versions}
    data["revision"] = revision
    model.setdefault("release", {})["split"] = split
    model.pop("rollout", None)
    # A shadow of the promoted version would copy every request onto the version that now
    # answers it: compute twice, compare nothing. A shadow of another version stays.
    shadow = model.get("shadow")
    drop_shadow = isinstance(shadow, dict) and str(shadow.get("version")) == s.canary
    if drop_shadow:
        model.pop("shadow")
    path = st.rollouts_dir(runtime) / f"{s.model}-r{revision}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# weir rollout {s.model}: canary {s.canary} promoted to 100%\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    pairs = ", ".join(f'"{v}": {w}' for v, w in split.items())
    change = "\n".join(
        [
            f"Commit this change to your release file (applied as revision {revision}; the "
            f"whole file is {path}):",
            f"  revision: {revision}",
            f"  models.{s.model}.release.split: {{{pairs}}}",
            f"  models.{s.model}.rollout: remove it (done)",
        ]
        + (
            [
                f"  models.{s.model}.shadow: remove it (version {s.canary} answers every "
                "client now: shadowing it onto itself compares nothing)"
            ]
            if drop_shadow
            else []
        )
    )
    return revision, str(path), change


def capture_reference(runtime: RuntimeDir, s: st.RolloutState, canary: Signals | None) -> str:
    """The promoted canary's passed windows (`canary`, summed) as its drift reference
    (reference.json), in the folder this runtime's sidecars serve it from, unless it has one
    already; what was done, for the record."""
    folder = runtime.root / "repository" / s.model / s.canary
    if not (folder / "model.onnx").is_file():
        return f"no drift reference captured: {folder} is not here"
    if (folder / REFERENCE_FILE).exists():
        return f"its drift reference stays {folder / REFERENCE_FILE}"
    if canary is None or rows_of(canary) < MIN_ROWS:
        rows = 0 if canary is None else rows_of(canary)
        return (
            f"no drift reference captured: its passed windows held {rows:.0f} rows, under "
            f"{MIN_ROWS} (`weir drift capture {s.model} {s.canary}` once it served more)"
        )
    source = (
        f"weir rollout: canary {s.canary}'s windows that passed before its promotion "
        f"(steps {', '.join(f'{w:g}%' for w in s.steps[: s.step])})"
    )
    path = write_from_signals(folder, s.model, s.canary, canary, source)
    return f"its drift reference: {path} ({rows_of(canary):.0f} rows)"
