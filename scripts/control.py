"""`weir validate | render | apply | rollback | history`: the release control plane.

Every failure leaves the previous config serving and says why, for an on-call engineer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scripts.deploy import (
    DeployError,
    LiveChangeError,
    apply_release,
    current_revision,
    rollback,
)
from scripts.edge.render import CONF_NAME, RenderError, render
from scripts.history import History
from scripts.nginx_bin import NginxNotFound, find_nginx
from scripts.release import ReleaseError, load_release
from scripts.runtime import RuntimeDir, command_parser

FAILURES = (ReleaseError, DeployError, RenderError, NginxNotFound, OSError)


def _runtime(value: str | None) -> RuntimeDir:
    return RuntimeDir.from_arg(value)


def _fail(command: str, exc: BaseException) -> int:
    if isinstance(exc, LiveChangeError):  # its message says what serves now
        print(f"weir {command}: FAILED after the switch\n{exc}", file=sys.stderr)
    else:
        print(f"weir {command}: FAILED, nothing changed\n{exc}", file=sys.stderr)
    return 1


def validate_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="weir validate", description="check a release YAML")
    parser.add_argument("file")
    args = parser.parse_args(argv)
    try:
        release = load_release(args.file).release
    except ReleaseError as exc:
        print(exc, file=sys.stderr)
        return 2
    models = ", ".join(f"{n} ({len(m.versions)} versions)" for n, m in release.models.items())
    print(f"{args.file}: valid, revision {release.revision}: {models}")
    return 0


def render_main(argv: list[str]) -> int:
    parser = command_parser("render", "render a release's nginx config (stdout, or into --out DIR)")
    parser.add_argument("file")
    parser.add_argument("--out", help="write nginx.conf and settings.json into this directory")
    args = parser.parse_args(argv)
    try:
        loaded = load_release(args.file)
        runtime = _runtime(args.runtime_dir)
        if args.out:
            out = Path(args.out).absolute()
            rendered = render(loaded.release, runtime, find_nginx(), out, release_text=loaded.text)
            print(
                f"rendered revision {loaded.release.revision} into {out} "
                f"(checksum {rendered.checksum[:12]})",
                file=sys.stderr,
            )
        else:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                rendered = render(
                    loaded.release, runtime, find_nginx(), Path(tmp), release_text=loaded.text
                )
                sys.stdout.write((Path(tmp) / CONF_NAME).read_text())
    except ReleaseError as exc:
        print(exc, file=sys.stderr)
        return 2
    except FAILURES as exc:
        print(f"weir render: {exc}", file=sys.stderr)
        return 1
    return 0


def apply_main(argv: list[str]) -> int:
    parser = command_parser(
        "apply", "validate, render, nginx -t, switch, reload and verify a release"
    )
    parser.add_argument("file")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        message = apply_release(args.file, _runtime(args.runtime_dir))
    except ReleaseError as exc:
        print(f"weir apply: FAILED, nothing changed: invalid release\n{exc}", file=sys.stderr)
        return 2
    except FAILURES as exc:
        return _fail("apply", exc)
    print(f"{message} in {time.monotonic() - started:.2f}s")
    return 0


def rollback_main(argv: list[str]) -> int:
    parser = command_parser("rollback", "re-apply a previous revision from the history")
    parser.add_argument("--to", type=int, metavar="REVISION", help="default: the one before")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        message = rollback(_runtime(args.runtime_dir), args.to)
    except FAILURES as exc:
        return _fail("rollback", exc)
    print(f"{message} in {time.monotonic() - started:.2f}s")
    return 0


def history_main(argv: list[str]) -> int:
    parser = command_parser("history", "list applied revisions, newest last")
    args = parser.parse_args(argv)
    runtime = _runtime(args.runtime_dir)
    entries = History(runtime.history).entries()
    if not entries:
        print(f"no revisions applied in {runtime.root}")
        return 0
    live = current_revision(runtime)
    live_index = max(
        (i for i, e in enumerate(entries) if live and e.dir == live.dir.name), default=-1
    )
    for index, entry in enumerate(entries):
        marker = "*" if index == live_index else " "
        print(
            f"{marker} {entry.when()}  revision {entry.revision:<6} {entry.action:<8} "
            f"{entry.checksum[:12]}  {entry.source}"
        )
    return 0
