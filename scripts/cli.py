"""The `weir` command: one entry point, each subcommand owned by the module that implements it.

Every command is `module:main` (called with the remaining arguments, returning an exit code)
and `module:parser` (its argparse parser, for `weir k8s`'s argv test and anyone checking a
command line without running it). Modules are imported lazily so `weir validate` never pays
for ONNX Runtime. The top layer: nothing imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from scripts.args import CONVENTION


@dataclass(frozen=True)
class Command:
    main: str  # module:function(argv) -> exit code
    parser: str  # module:function() -> argparse.ArgumentParser
    help: str


def _in(module: str, main: str, parser: str, help_: str) -> Command:
    return Command(f"{module}:{main}", f"{module}:{parser}", help_)


DEPLOY = "scripts.deploy.commands"
ADMIN = "scripts.edge.admin_commands"
COMMANDS: dict[str, Command] = {
    "sidecar": _in("sidecar.server.launcher", "main", "parser", "run an inference sidecar"),
    "validate": _in(DEPLOY, "validate_main", "validate_parser", "check a release, change nothing"),
    "render": _in(DEPLOY, "render_main", "render_parser", "render a release's nginx config"),
    "apply": _in(DEPLOY, "apply_main", "apply_parser", "put a release live (the pipeline)"),
    "rollback": _in(DEPLOY, "rollback_main", "rollback_parser", "re-apply a previous revision"),
    "history": _in(DEPLOY, "history_main", "history_parser", "list applied revisions"),
    "edge": _in("scripts.stack.edge", "main", "parser", "run the edge alone in the foreground"),
    "status": _in(ADMIN, "status_main", "status_parser", "live state of every model"),
    "kill": _in(ADMIN, "kill_main", "kill_parser", "kill switch: a model or one version"),
    "revive": _in(ADMIN, "revive_main", "revive_parser", "undo a kill switch"),
    "split": _in(ADMIN, "split_main", "split_parser", "set live grey-release weights"),
    "up": _in("scripts.stack.up", "main", "parser", "run sidecars and edge on this machine"),
    "k8s": _in("scripts.k8s.manifests", "main", "parser", "print Kubernetes manifests"),
    "view": _in("scripts.fleet.model_view", "main", "parser", "sidecars' view of the models"),
    "probe": _in("scripts.fleet.probe", "main", "parser", "exit 0 when a sidecar is ready"),
    "quantize": _in("scripts.quantize.commands", "main", "parser", "INT8/FP16 copy, with a report"),
    "drift": _in(
        "scripts.drift.commands", "main", "parser", "drift: capture a reference, show drift"
    ),
    "rollout": _in(
        "scripts.rollout.commands", "main", "parser", "canary rollout: start, status, pause, ..."
    ),
}


def _target(spec: str) -> object:
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def parser_for(name: str) -> argparse.ArgumentParser:
    """The argparse parser of `weir NAME`."""
    build = _target(COMMANDS[name].parser)
    assert callable(build)
    return build()


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: weir COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.help}" for name, command in COMMANDS.items()]
    lines += ["", CONVENTION, "`weir COMMAND --help` explains each one."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"weir: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    func = _target(COMMANDS[name].main)
    assert callable(func)
    return int(func(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
