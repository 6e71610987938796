"""The operator commands: `weir status | kill | revive | split | history`, and `weir edge`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from scripts.edge.admin_commands import kill_main, revive_main, split_main, status_main
from scripts.k8s import manifests
from scripts.release import load_release

ROOT = Path(__file__).resolve().parents[3]


def test_admin_wrappers(harness, upstreams, tools, capsys) -> None:
    harness.start(tools.two_versions(upstreams))
    rt = ["--runtime-dir", str(harness.runtime.root)]
    assert status_main(rt) == 0
    out = capsys.readouterr().out
    assert "revision 1" in out and "v2  weight    50%  breaker closed" in out

    assert kill_main(["digits", "--version", "2", *rt]) == 0
    assert harness.status()["models"]["digits"]["versions"]["2"]["killed"] is True
    assert revive_main(["digits", "--version", "2", *rt]) == 0
    assert split_main(["digits", "1=100", *rt]) == 0
    assert harness.status()["models"]["digits"]["weights"]["override"] == {"1": 100}
    assert split_main(["digits", "--clear", *rt]) == 0
    # The input is wrong: 2 (the operation failing is 1; scripts/args.py EXIT_CODES).
    assert kill_main(["nope", *rt]) == 2
    assert "no model nope" in capsys.readouterr().err
    assert kill_main(["digits", "--version", "9", *rt]) == 2
    assert split_main(["digits", "1=60", "2=60", *rt]) == 2


def test_wrappers_explain_a_missing_edge(tmp_path, capsys) -> None:
    assert status_main(["--runtime-dir", str(tmp_path)]) == 1
    assert "no applied release" in capsys.readouterr().err


def test_weir_edge_runs_in_the_foreground_and_stops_on_ctrl_c(harness, upstreams, tools) -> None:
    path = harness.write(harness.release(tools.two_versions(upstreams)))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.cli",
            "edge",
            str(path),
            "--runtime-dir",
            str(harness.runtime.root),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if tools.request("POST", harness.listen, "/v2/models/digits/infer", {})[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        assert tools.request("POST", harness.listen, "/v2/models/digits/infer", {})[0] == 200
    finally:
        os.kill(process.pid, signal.SIGINT)
        process.wait(15)
    assert process.returncode == 0
    assert harness.runtime.edge_pid() is None


def test_the_kubernetes_edge_container_command_starts_the_edge(harness, upstreams, tools) -> None:
    """The edge container's command line, as `weir k8s` renders it, run here: the image's
    ENTRYPOINT is `weir`, the ConfigMap's release is mounted at the path its args name."""
    source = harness.write(harness.release(tools.two_versions(upstreams)))
    docs = yaml.safe_load_all(manifests.render_manifests(load_release(source), "weir:t", 1, 1, 1))
    by_kind = {doc["kind"]: doc for doc in docs}
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    (edge,) = [c for c in pod["containers"] if c["name"] == "edge"]
    mounted = harness.tmp / "etc-weir"
    mounted.mkdir()
    (mounted / "release.yaml").write_text(by_kind["ConfigMap"]["data"]["release.yaml"])
    argv = [a.replace(manifests.RELEASE_DIR, str(mounted)) for a in edge["args"]]
    assert edge["command"] == ["weir"] and argv[0] == "edge"
    env = {**os.environ, "WEIR_RUNTIME_DIR": str(harness.runtime.root)}
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", *argv], cwd=ROOT, env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 15
        while harness.runtime.edge_pid() is None and process.poll() is None:
            assert time.monotonic() < deadline, "the edge did not start"
            time.sleep(0.1)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        deadline = time.monotonic() + 10
        while True:
            try:
                if tools.request("POST", harness.listen, "/v2/models/digits/infer", {})[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the edge does not answer"
            time.sleep(0.1)
        assert harness.status()["revision"] == 1
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(15)
    assert process.returncode == 0
