"""The runtime directory: where things live, which pid is an edge, the admin token's rules and
the devices sidecars run on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scripts.runtime import (
    RuntimeDir,
    TokenError,
    detect_gpus,
    ensure_token,
    read_token,
    resolve_devices,
)


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RuntimeDir:
    monkeypatch.delenv("WEIR_ADMIN_TOKEN", raising=False)
    return RuntimeDir(tmp_path / "rt")


def test_the_layout_and_the_default(runtime: RuntimeDir, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime.ensure()
    for path in (runtime.run, runtime.logs, runtime.revisions, runtime.tmp):
        assert path.is_dir()
    assert runtime.current == runtime.root / "edge" / "current"
    assert runtime.sidecar_socket("0") == runtime.root / "run" / "sidecar-0.sock"
    assert runtime.repository == runtime.root / "repository"
    monkeypatch.setenv("WEIR_RUNTIME_DIR", "somewhere")
    assert RuntimeDir.from_arg(None).root == Path("somewhere").absolute()
    assert RuntimeDir.from_arg("else").root == Path("else").absolute()


def test_edge_pid_is_only_a_live_nginx(runtime: RuntimeDir) -> None:
    runtime.ensure()
    assert runtime.edge_pid() is None  # no pid file
    runtime.pid_file.write_text("999999999\n")
    assert runtime.edge_pid() is None  # nobody has it
    runtime.pid_file.write_text(f"{os.getpid()}\n")
    assert runtime.edge_pid() is None  # a live process, but not nginx
    fake = subprocess.Popen(["bash", "-c", 'exec -a "nginx: master process" sleep 30'])
    try:
        runtime.pid_file.write_text(f"{fake.pid}\n")
        while b"nginx" not in Path(f"/proc/{fake.pid}/cmdline").read_bytes():
            pass
        assert runtime.edge_pid() == fake.pid
    finally:
        fake.kill()
        fake.wait()


def test_the_environment_token_wins(runtime: RuntimeDir, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_token(runtime) is None
    monkeypatch.setenv("WEIR_ADMIN_TOKEN", "  from-env \n")
    assert read_token(runtime) == "from-env"
    assert ensure_token(runtime) == "from-env"
    assert not runtime.token_file.exists()  # nothing written when the environment has one


def test_a_created_token_is_private_and_stays(runtime: RuntimeDir) -> None:
    token = ensure_token(runtime)
    assert len(token) >= 32
    assert runtime.token_file.stat().st_mode & 0o777 == 0o600
    assert ensure_token(runtime) == token == read_token(runtime)


def test_a_token_file_others_may_read_is_refused_with_the_fix(runtime: RuntimeDir) -> None:
    runtime.edge.mkdir(parents=True)
    runtime.token_file.write_text("t\n")
    runtime.token_file.chmod(0o640)
    with pytest.raises(TokenError, match=r"mode 640\): run `chmod 600 "):
        read_token(runtime)
    runtime.token_file.chmod(0o600)
    runtime.token_file.write_text("\n")
    assert read_token(runtime) is None  # an empty file is no token


def test_devices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_devices("cpu") == ["cpu"]
    assert resolve_devices([0, 2]) == ["0", "2"]
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert detect_gpus() == []
    assert resolve_devices("auto") == ["cpu"]
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: A (UUID: x)'\necho 'GPU 1: B (UUID: y)'\n")
    smi.chmod(0o755)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert detect_gpus() == [0, 1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert resolve_devices("auto") == ["1"]
