"""`weir status | kill | revive | split`: friendly wrappers over the edge's admin API.

The curl commands in the README stay the primary path; these read the admin address from the
applied revision and the token from WEIR_ADMIN_TOKEN or the runtime directory's token file.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from scripts.args import command_parser
from scripts.edge.admin_client import AdminClient, AdminError
from scripts.runtime import RuntimeDir


def _client(args: argparse.Namespace) -> AdminClient:
    return AdminClient.for_runtime(RuntimeDir.from_arg(args.runtime_dir))


def _fail(exc: Exception) -> int:
    """2 when the edge says the request was wrong (no such model or version, bad weights), 1 when
    the operation failed (scripts/args.py EXIT_CODES)."""
    print(f"weir: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, AdminError) and exc.status in (400, 404) else 1


def format_status(data: dict[str, Any]) -> str:
    lines = [f"revision {data['revision']}  checksum {str(data['checksum'])[:12]}"]
    for name in sorted(data["models"]):
        model = data["models"][name]
        flag = "  KILLED" if model["killed"] else ""
        override = model["weights"]["override"]
        lines.append(f"{name}{flag}" + ("  (live split override)" if override else ""))
        for version in sorted(model["versions"], key=int):
            v = model["versions"][version]
            breaker = v["breaker"]["state"]
            killed = "  KILLED" if v["killed"] else ""
            weight = f"{float(v['weight']):g}%"
            lines.append(f"  v{version}  weight {weight:>6}  breaker {breaker}{killed}")
    return "\n".join(lines)


def status_parser() -> argparse.ArgumentParser:
    parser = command_parser("status", "live state of every model at the edge")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


def status_main(argv: list[str]) -> int:
    args = status_parser().parse_args(argv)
    try:
        data = _client(args).checked("GET", "/admin/status")
    except AdminError as exc:
        return _fail(exc)
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else format_status(data))
    return 0


def _kill_path(model: str, version: str | None) -> str:
    if version:
        return f"/admin/models/{model}/versions/{version}/kill"
    return f"/admin/models/{model}/kill"


def _kill_switch_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """kill and revive: the same arguments."""
    parser = command_parser(prog, description)
    parser.add_argument("model", help="the model's name in the release (e.g. digits)")
    parser.add_argument(
        "--version", help="only this version of the model (default: the whole model)"
    )
    return parser


def kill_parser() -> argparse.ArgumentParser:
    return _kill_switch_parser(
        "kill", "kill switch: the model (or one version) answers with its fallback"
    )


def revive_parser() -> argparse.ArgumentParser:
    return _kill_switch_parser("revive", "undo a kill switch")


def _kill_switch(argv: list[str], parser: argparse.ArgumentParser, method: str, done: str) -> int:
    """kill and revive: one POST or DELETE on the kill route."""
    args = parser.parse_args(argv)
    try:
        _client(args).checked(method, _kill_path(args.model, args.version))
    except AdminError as exc:
        return _fail(exc)
    what = f"{args.model} v{args.version}" if args.version else args.model
    print(done.format(what=what))
    return 0


def kill_main(argv: list[str]) -> int:
    return _kill_switch(
        argv,
        kill_parser(),
        "POST",
        "killed {what}: takes effect on the next request (undo: weir revive)",
    )


def revive_main(argv: list[str]) -> int:
    return _kill_switch(argv, revive_parser(), "DELETE", "revived {what}")


def split_parser() -> argparse.ArgumentParser:
    parser = command_parser("split", "set live grey-release weights: weir split digits 1=90 2=10")
    parser.add_argument("model", help="the model's name in the release (e.g. digits)")
    parser.add_argument("weights", nargs="*", help="VERSION=WEIGHT pairs")
    parser.add_argument("--clear", action="store_true", help="go back to the release's weights")
    return parser


def split_main(argv: list[str]) -> int:
    parser = split_parser()
    args = parser.parse_args(argv)
    if args.clear == bool(args.weights):
        parser.error("give VERSION=WEIGHT pairs, or --clear")
    weights: dict[str, float] = {}
    for pair in args.weights:
        version, sep, weight = pair.partition("=")
        try:
            weights[version] = float(weight)
        except ValueError:
            sep = ""
        if not sep:
            parser.error(f"{pair!r}: write VERSION=WEIGHT, e.g. 1=90")
    try:
        client = _client(args)
        if args.clear:
            client.checked("DELETE", f"/admin/models/{args.model}/split")
        else:
            client.checked("PUT", f"/admin/models/{args.model}/split", weights)
    except AdminError as exc:
        return _fail(exc)
    done = "back to the release's weights" if args.clear else f"live weights {weights}"
    print(f"{args.model}: {done}")
    return 0
