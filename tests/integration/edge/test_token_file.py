"""The edge's own start reads the admin token file with weir apply's rules (runtime.read_token):
a file readable by group or others is refused, with what to do. Real nginx, no sidecar: the
master's init_by_lua decides before any request."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from scripts.edge.nginx import NginxNotFound, find_nginx
from scripts.edge.render import CONF_NAME, render
from scripts.release import parse_release
from scripts.runtime import RuntimeDir


@pytest.fixture
def edge(tmp_path: Path) -> tuple[RuntimeDir, list[str]]:
    """A rendered revision switched to, and the command that starts its nginx."""
    try:
        nginx = find_nginx()
    except NginxNotFound as exc:  # pragma: no cover - depends on the machine
        pytest.skip(str(exc))
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.ensure()
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    listen, admin = (f"127.0.0.1:{s.getsockname()[1]}" for s in sockets)
    for s in sockets:
        s.close()  # free again for nginx: picked only so that two tests never share a port
    release = parse_release(
        f"revision: 1\nedge: {{listen: '{listen}', admin_listen: '{admin}', workers: 1}}\n"
        "sidecars: {devices: cpu}\nmodels: {digits: {versions: {'1': {}}}}\n"
    )
    out = runtime.edge / "revisions" / "r1"
    render(release, runtime, nginx, out)
    runtime.current.symlink_to(out)
    return runtime, [nginx.path, "-p", str(runtime.edge), "-c", str(out / CONF_NAME)]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "WEIR_ADMIN_TOKEN"}


def test_a_token_file_readable_by_others_stops_the_start(edge) -> None:
    runtime, command = edge
    runtime.token_file.write_text("s3cret\n")
    runtime.token_file.chmod(0o640)
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=20)
    assert result.returncode != 0
    assert (
        f"{runtime.token_file} is readable by others (mode 640): "
        f"run `chmod 600 {runtime.token_file}` and retry"
    ) in result.stderr


def test_a_private_token_file_starts_the_edge(edge) -> None:
    runtime, command = edge
    runtime.token_file.write_text("s3cret\n")
    runtime.token_file.chmod(0o600)
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 10
        while not runtime.pid_file.exists() and process.poll() is None:
            assert time.monotonic() < deadline, "nginx wrote no pid file"
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGQUIT)
        process.wait(timeout=10)
