"""The `weir` command: one entry point, each subcommand owned by the module that implements it.

Every target is `module:function`, called with the remaining arguments and returning an exit
code. Modules are imported lazily so `weir validate` never pays for ONNX Runtime.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "sidecar": ("sidecar.server.launcher:main", "run an inference sidecar in the foreground"),
    "validate": ("scripts.control:validate_main", "check a release YAML, change nothing"),
    "render": ("scripts.control:render_main", "render a release's nginx config to stdout/dir"),
    "apply": ("scripts.control:apply_main", "validate, test, switch and reload the edge"),
    "rollback": ("scripts.control:rollback_main", "re-apply a previous revision"),
    "history": ("scripts.control:history_main", "list applied revisions"),
    "edge": ("scripts.edge:main", "run the edge alone in the foreground"),
    "status": ("scripts.admin_client:status_main", "live state of every model at the edge"),
    "kill": ("scripts.admin_client:kill_main", "kill switch: a model or one version"),
    "revive": ("scripts.admin_client:revive_main", "undo a kill switch"),
    "split": ("scripts.admin_client:split_main", "set live grey-release weights"),
    "up": ("scripts.up:main", "run sidecars and edge on this machine"),
    "k8s": ("scripts.k8s:main", "print Kubernetes manifests for a release"),
    "probe": ("scripts.probe:main", "exit 0 when a sidecar's health endpoint answers 200"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: weir COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`weir COMMAND --help` explains each one."]
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
    module_name, func_name = COMMANDS[name][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
