"""Podman as this sandbox runs it (../shared/CONTAINERS.md): runc, cgroupfs, fixed ulimits.

`make test-image` runs these tests; they skip, saying why, where podman cannot run containers.
WEIR_TEST_IMAGE names the image (default localhost/weir:test) and WEIR_TEST_BASE its base
(default localhost/debian:12, built with debootstrap as CONTAINERS.md shows).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("WEIR_TEST_IMAGE", "localhost/weir:test")
BASE = os.environ.get("WEIR_TEST_BASE", "localhost/debian:12")
CONF = Path("/etc/containers/weir.conf")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def env() -> dict[str, str]:
    out = dict(os.environ)
    if CONF.exists():
        out.setdefault("CONTAINERS_CONF", str(CONF))
    return out


def podman(
    *args: str, check: bool = True, timeout: float = 120, **kw
) -> subprocess.CompletedProcess:
    argv = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", *args]
    done = subprocess.run(
        argv, env=env(), capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


def why_not() -> str | None:
    """None when podman can build and run here, else the reason the tests skip."""
    if shutil.which("podman") is None:
        return (
            "podman is not installed (apt-get install -y podman runc; see ../shared/CONTAINERS.md)"
        )
    if shutil.which("runc") is None:
        return "runc is not installed (apt-get install -y runc)"
    try:
        info = podman("info", "--format", "json", check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman does not answer: {exc}"
    if info.returncode != 0:
        return f"podman info failed: {info.stderr.strip()[-300:]}"
    if (
        podman("image", "exists", IMAGE, check=False).returncode != 0
        and podman("image", "exists", BASE, check=False).returncode != 0
    ):
        return (
            f"neither {IMAGE} nor its base {BASE} exists: build the base with debootstrap "
            "as ../shared/CONTAINERS.md shows, or set WEIR_TEST_BASE"
        )
    return None


def build() -> tuple[float, int]:
    """Build IMAGE from the Dockerfile (layer cache reused); (seconds, image size in bytes)."""
    args = ["build", "--format", "docker", "--network", "host", "--build-arg", f"BASE={BASE}"]
    if CA_BUNDLE.exists():  # a TLS-inspecting proxy's CA, for pip (never stored in a layer)
        args += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    start = time.monotonic()
    podman(*args, "-t", IMAGE, str(ROOT), timeout=3600)
    seconds = time.monotonic() - start
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    return seconds, size


def inspect(name: str) -> dict:
    return json.loads(podman("inspect", name).stdout)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip_without_podman() -> None:
    reason = why_not()
    if reason:
        pytest.skip(reason)
