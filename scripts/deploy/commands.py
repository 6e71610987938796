"""`weir validate | render | apply | rollback | history`: the release control plane's commands.

apply and rollback are the pipeline (`pipeline.py`); every failure leaves the previous config
serving and says why, for an on-call engineer. Each command's parser has its own builder
(`*_parser`), which `weir k8s`'s test uses to check the argv it renders.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from scripts.args import add_release_file, command_parser
from scripts.deploy import pipeline
from scripts.deploy.history import History
from scripts.edge.errors import DeployError, LiveChangeError
from scripts.edge.nginx import NginxNotFound, find_nginx
from scripts.edge.render import CONF_NAME, RenderError, render
from scripts.edge.revisions import current_revision
from scripts.release import ReleaseError, load_release
from scripts.runtime import RuntimeDir

FAILURES = (ReleaseError, DeployError, RenderError, NginxNotFound, OSError)


def _fail(command: str, exc: BaseException) -> int:
    if isinstance(exc, LiveChangeError):  # its message says what serves now
        print(f"weir {command}: FAILED after the switch\n{exc}", file=sys.stderr)
    else:
        print(f"weir {command}: FAILED, nothing changed\n{exc}", file=sys.stderr)
    return 1


def validate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weir validate", description="check a release YAML")
    add_release_file(parser)
    return parser


def _versions(count: int) -> str:
    return f"{count} version" if count == 1 else f"{count} versions"


def validate_main(argv: list[str]) -> int:
    args = validate_parser().parse_args(argv)
    try:
        release = load_release(args.file).release
    except ReleaseError as exc:
        print(exc, file=sys.stderr)
        return 2
    models = ", ".join(f"{n} ({_versions(len(m.versions))})" for n, m in release.models.items())
    print(f"{args.file}: valid, revision {release.revision}: {models}")
    return 0


def render_parser() -> argparse.ArgumentParser:
    parser = command_parser("render", "render a release's nginx config (stdout, or into --out DIR)")
    add_release_file(parser)
    parser.add_argument("--out", help="write nginx.conf and settings.json into this directory")
    return parser


def render_main(argv: list[str]) -> int:
    args = render_parser().parse_args(argv)
    try:
        loaded = load_release(args.file)
        runtime = RuntimeDir.from_arg(args.runtime_dir)
        if args.out:
            out = Path(args.out).absolute()
            rendered = render(loaded.release, runtime, find_nginx(), out, release_text=loaded.text)
            print(
                f"rendered revision {loaded.release.revision} into {out} "
                f"(checksum {rendered.checksum[:12]})",
                file=sys.stderr,
            )
        else:
            with tempfile.TemporaryDirectory() as tmp:
                render(loaded.release, runtime, find_nginx(), Path(tmp), release_text=loaded.text)
                sys.stdout.write((Path(tmp) / CONF_NAME).read_text())
    except ReleaseError as exc:
        print(exc, file=sys.stderr)
        return 2
    except FAILURES as exc:
        print(f"weir render: {exc}", file=sys.stderr)
        return 1
    return 0


def apply_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "apply", "validate, render, nginx -t, sync the sidecars, switch, reload and verify"
    )
    add_release_file(parser)
    return parser


def rollback_parser() -> argparse.ArgumentParser:
    parser = command_parser("rollback", "re-apply a previous revision from the history")
    parser.add_argument("--to", type=int, metavar="REVISION", help="default: the one before")
    return parser


def _change(command: str, step: Callable[[], str]) -> int:
    """Run one pipeline entry point; its message on success, the reason on failure."""
    started = time.monotonic()
    try:
        message = step()
    except ReleaseError as exc:
        print(f"weir {command}: FAILED, nothing changed: invalid release\n{exc}", file=sys.stderr)
        return 2
    except FAILURES as exc:
        return _fail(command, exc)
    except KeyboardInterrupt:
        # Every step undoes itself on the way out (the sidecars' view is put back, `current`
        # is switched only after every check): an interrupted change changed nothing.
        print(f"weir {command}: interrupted, nothing changed", file=sys.stderr)
        return 1
    print(f"{message} in {time.monotonic() - started:.2f}s")
    return 0


def apply_main(argv: list[str]) -> int:
    args = apply_parser().parse_args(argv)
    runtime = RuntimeDir.from_arg(args.runtime_dir)
    return _change("apply", lambda: pipeline.apply_release(args.file, runtime))


def rollback_main(argv: list[str]) -> int:
    args = rollback_parser().parse_args(argv)
    runtime = RuntimeDir.from_arg(args.runtime_dir)
    return _change("rollback", lambda: pipeline.rollback(runtime, args.to))


def history_parser() -> argparse.ArgumentParser:
    return command_parser("history", "list applied revisions, newest last")


def history_main(argv: list[str]) -> int:
    args = history_parser().parse_args(argv)
    runtime = RuntimeDir.from_arg(args.runtime_dir)
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
