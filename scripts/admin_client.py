"""`weir status | kill | revive | split`: friendly wrappers over the edge's admin API.

The curl commands in DESIGN.md stay the primary path; these read the admin address from the
applied revision and the token from WEIR_ADMIN_TOKEN or the runtime directory's token file.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
from dataclasses import dataclass
from typing import Any

from scripts.runtime import RuntimeDir, TokenError, command_parser, read_token


class AdminError(RuntimeError):
    pass


@dataclass(frozen=True)
class AdminClient:
    address: str  # host:port
    token: str | None
    timeout: float = 5.0

    @classmethod
    def for_runtime(cls, runtime: RuntimeDir, timeout: float = 5.0) -> AdminClient:
        settings_file = runtime.current / "settings.json"
        try:
            settings = json.loads(settings_file.read_text())
        except (OSError, ValueError):
            raise AdminError(
                f"no applied release in {runtime.root} (missing {settings_file}): "
                "start the edge with `weir edge` or `weir apply FILE` first"
            ) from None
        try:
            token = read_token(runtime)
        except TokenError as exc:
            raise AdminError(str(exc)) from None
        return cls(settings["admin_listen"], token, timeout)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on a fresh connection (so a reload's new workers answer)."""
        host, _, port = self.address.rpartition(":")
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=self.timeout)
        headers = {"Connection": "close"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None if body is None else json.dumps(body)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise AdminError(
                f"the edge's admin API at {self.address} does not answer ({exc}): "
                "is the edge running? (`weir edge`)"
            ) from None
        finally:
            conn.close()
        content_type = response.getheader("Content-Type", "")
        if content_type.startswith("application/json"):
            try:
                return response.status, json.loads(raw)
            except ValueError:
                pass
        return response.status, raw.decode(errors="replace")

    def checked(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.request(method, path, body)
        if status >= 400:
            message = data.get("error") if isinstance(data, dict) else data
            raise AdminError(f"{method} {path} -> {status}: {message}")
        return data


def _client(args: argparse.Namespace) -> AdminClient:
    return AdminClient.for_runtime(RuntimeDir.from_arg(args.runtime_dir))


def _fail(exc: Exception) -> int:
    print(f"weir: {exc}", file=sys.stderr)
    return 1


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


def status_main(argv: list[str]) -> int:
    parser = command_parser("status", "live state of every model at the edge")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")
    args = parser.parse_args(argv)
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


def _kill_switch(argv: list[str], method: str, prog: str, description: str, done: str) -> int:
    """kill and revive: the same arguments, one POST or DELETE on the kill route."""
    parser = command_parser(prog, description)
    parser.add_argument("model")
    parser.add_argument("--version")
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
        "POST",
        "kill",
        "kill switch: the model (or one version) answers with its fallback",
        "killed {what}: takes effect on the next request (undo: weir revive)",
    )


def revive_main(argv: list[str]) -> int:
    return _kill_switch(argv, "DELETE", "revive", "undo a kill switch", "revived {what}")


def split_main(argv: list[str]) -> int:
    parser = command_parser("split", "set live grey-release weights: weir split digits 1=90 2=10")
    parser.add_argument("model")
    parser.add_argument("weights", nargs="*", help="VERSION=WEIGHT pairs")
    parser.add_argument("--clear", action="store_true", help="go back to the release's weights")
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
