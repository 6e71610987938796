"""What nginx's `mirror` costs a keep-alive client when the mirror target is slow: measured
before choosing how Weir shadows (it does not use `mirror`: the sidecar computes the copy).

    .venv/bin/python -m tests.bench.mirror      # a few seconds, prints two lines

A bare nginx (the one Weir runs) proxies to a live upstream that answers at once and mirrors
every request (`mirror`, `mirror_request_body on`) to one that answers after DELAY_S; one
client sends requests one after another on one keep-alive connection. nginx does not read the
next request of a connection until the mirror subrequest of the previous one has finished:
from the second request on, each waits for the mirror.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from scripts.edge.nginx import find_nginx
from tests.bench.procs import free_port

DELAY_S = 0.2
REQUESTS = 6

CONF = """daemon off; worker_processes 1; pid {tmp}/pid; error_log {tmp}/err warn;
events {{}}
http {{
  access_log off; client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p;
  fastcgi_temp_path {tmp}/f; uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
  upstream live {{ server 127.0.0.1:{live}; keepalive 8; }}
  upstream slow {{ server 127.0.0.1:{slow}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      {mirror}
      proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://live;
    }}
    location = /m {{
      internal; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://slow$request_uri;
    }}
  }}
}}
"""


def upstream(delay: float) -> int:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay)
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # one write

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def one_connection(port: int) -> list[float]:
    """Milliseconds per request, one after another on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        conn.request("POST", "/infer", body=b"x" * 100)
        conn.getresponse().read()
        times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return times


def main() -> int:
    live, slow = upstream(0.0), upstream(DELAY_S)
    tmp = Path(tempfile.mkdtemp(prefix="weir-mirror-bench-"))
    try:
        for mirror in (False, True):
            port = free_port()
            conf = tmp / f"nginx-{mirror}.conf"
            directive = "mirror /m; mirror_request_body on;" if mirror else ""
            conf.write_text(CONF.format(tmp=tmp, live=live, slow=slow, port=port, mirror=directive))
            nginx = subprocess.Popen([find_nginx().path, "-c", str(conf), "-p", str(tmp)])
            try:
                deadline = time.monotonic() + 10
                while True:  # until it listens (bounded)
                    try:
                        http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
                times = one_connection(port)
            finally:
                nginx.terminate()
                nginx.wait()
            print(
                f"mirror {'on ' if mirror else 'off'} (mirror target answers after "
                f"{DELAY_S * 1000:.0f} ms): ms per request on one keep-alive connection: "
                + " ".join(f"{t:.1f}" for t in times)
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
