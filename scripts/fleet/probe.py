"""`weir probe`: ask a sidecar's health endpoint over its unix socket (or TCP) and exit 0 on 200.

Kubernetes exec probes and `weir up` use it: sidecars listen on unix sockets that an httpGet
probe cannot reach.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import sys


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def get(address: str, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET `path` from `unix:/path.sock` or `host:port`; raises OSError when nothing answers."""
    if address.startswith("unix:"):
        conn: http.client.HTTPConnection = UnixHTTPConnection(address[5:], timeout)
    else:
        host, _, port = address.rpartition(":")
        conn = http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weir probe", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="unix socket path of the sidecar")
    where.add_argument("--address", help="host:port")
    parser.add_argument("--path", default="/v2/health/ready")
    parser.add_argument("--timeout", type=float, default=2.0)
    return parser


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    address = f"unix:{args.socket}" if args.socket else args.address
    try:
        status, body = get(address, args.path, args.timeout)
    except OSError as exc:
        print(f"weir probe: nothing answers at {address}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        detail = body[:200].decode("utf-8", "replace")
        print(f"weir probe: {address}{args.path} answered {status}: {detail}", file=sys.stderr)
        return 1
    return 0
