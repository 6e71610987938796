"""A small real upstream speaking just enough KServe V2 for the edge's tests.

Run: python fake_upstream.py --version 1 [--port 0 | --socket PATH]; it prints "READY <port>".
Tests steer it through POST /_control {"status": 500, "marked": true, "delay": 0.2} (status
0 = answer normally; marked: a 5xx carries `X-Weir-Failure: server`, as the real sidecar marks
its own failures) and read its request count from GET /_control.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INFER = re.compile(r"^/v2/models/([^/]+)/versions/([0-9]+)/infer$")
META = re.compile(r"^/v2/models/([^/]+)(?:/versions/([0-9]+))?(/ready)?$")


class Behaviour:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status = 0
        self.marked = False
        self.delay = 0.0
        self.count = 0
        self.ready_count = 0
        self.paths: list[str] = []  # the last metadata paths asked for


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-sidecar"
    # A buffered wfile: each answer leaves in one write, flushed after the handler returns, as
    # the real sidecar writes its answers. A SIGKILL can then never land between an answer's
    # headers and its body, which would leave the edge a truncated answer it cannot replace.
    wbufsize = 1 << 16
    behaviour: Behaviour
    version: str

    def setup(self) -> None:
        super().setup()
        # Small writes on keep-alive connections: without this, Nagle and delayed ACKs add
        # 40 ms to a request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *_args: object) -> None:
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        if self.path == "/_control":
            with self.behaviour.lock:
                b = self.behaviour
                self._send(
                    200,
                    {
                        "count": b.count,
                        "status": b.status,
                        "ready": b.ready_count,
                        "paths": b.paths,
                    },
                )
            return
        if self.path in ("/v2/health/live", "/v2/health/ready"):
            with self.behaviour.lock:
                self.behaviour.ready_count += self.path.endswith("ready")
            self._send(200, {"ready": True})
            return
        match = META.match(self.path)
        with self.behaviour.lock:
            self.behaviour.paths = [*self.behaviour.paths[-9:], self.path]
        if match:
            self._send(
                200,
                {"name": match.group(1), "versions": [self.version], "platform": "onnx_onnxv1"},
                {"X-Weir-Model-Version": self.version},
            )
            return
        self._send(404, {"error": "unknown route"})

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/_control":
            update = json.loads(body or b"{}")
            with self.behaviour.lock:
                self.behaviour.status = int(update.get("status", self.behaviour.status))
                self.behaviour.delay = float(update.get("delay", self.behaviour.delay))
                self.behaviour.marked = bool(update.get("marked", self.behaviour.marked))
                if update.get("reset"):
                    self.behaviour.count = 0
            self._send(200, {"ok": True})
            return
        match = INFER.match(self.path)
        if not match:
            self._send(404, {"error": f"no route {self.path}"})
            return
        with self.behaviour.lock:
            self.behaviour.count += 1
            status, delay = self.behaviour.status, self.behaviour.delay
            marked = self.behaviour.marked
        if delay:
            time.sleep(delay)
        if status:
            headers = {"Retry-After": "1"} if status == 503 else {}
            if marked and status >= 500:
                headers["X-Weir-Failure"] = "server"
            self._send(status, {"error": f"told to answer {status}"}, headers)
            return
        header_len = self.headers.get("Inference-Header-Content-Length")
        self._send(
            200,
            {
                "model_name": match.group(1),
                "model_version": match.group(2),
                "served_by": self.version,
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "binary_header_length": header_len,
                "outputs": [],
            },
            {"X-Weir-Model-Version": match.group(2)},
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--version", default="1")
    args = parser.parse_args()
    handler = type("H", (Handler,), {"behaviour": Behaviour(), "version": args.version})
    server = Server(("127.0.0.1", args.port), handler)
    print(f"READY {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
