"""Real `weir sidecar` processes (gunicorn) on the sample models, on loopback, stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from models import build_samples
from tests.heavy_models import build_heavy_models

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ("digits/1", "digits/2", "cnn/1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sidecar:
    """One `weir sidecar` process group, started in the foreground like an operator would."""

    def __init__(self, tmp: Path, models: Path, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"sidecar-{self.port}.log"
        weir = Path(sys.executable).with_name("weir")
        command = [str(weir)] if weir.exists() else [sys.executable, "-m", "scripts.cli"]
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                *command,
                "sidecar",
                "--models",
                str(models),
                "--device",
                "cpu",
                "--port",
                str(self.port),
                *args,
            ],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def wait_ready(self, timeout: float = 60.0) -> Sidecar:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sidecar exited early:\n{self.log_text()}")
            try:
                if requests.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or still loading
                pass
            time.sleep(0.1)
        raise TimeoutError(f"sidecar not ready after {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self) -> bool:
        """SIGINT (gunicorn's quick shutdown); True when it exited without needing SIGKILL."""
        clean = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                clean = False
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return clean


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_samples.REPOSITORY
    if all((root / s / "model.onnx").is_file() for s in SAMPLES):
        return root
    built = tmp_path_factory.mktemp("repository")
    build_samples.build(built)
    return built


@pytest.fixture(scope="session")
def sidecar(tmp_path_factory: pytest.TempPathFactory, repository: Path) -> Iterator[Sidecar]:
    """The default sidecar (uvicorn workers), two workers, a 4 MiB body limit."""
    tmp = tmp_path_factory.mktemp("sidecar")
    proc = Sidecar(tmp, repository, "--workers", "2", "--max-body-bytes", str(4 << 20))
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def binary_cnn_request(rows: int) -> tuple[bytes, dict[str, str]]:
    """A cnn infer body with `rows` images as a binary tensor, and its headers."""
    x = np.random.default_rng(rows).random((rows, 3, 64, 64), dtype=np.float32)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }
    return head + x.tobytes(), headers


@pytest.fixture
def cnn_request():
    return binary_cnn_request


def copy_model(repository: Path, target: Path, model: str, version: str = "1") -> Path:
    dest = target / model / version
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(repository / model / version / "model.onnx", dest / "model.onnx")
    return target / model


@pytest.fixture
def spawn_sidecar(tmp_path: Path):
    """Factory: `spawn_sidecar(models, *flags, env=...)` starts one more sidecar for this test."""
    started: list[Sidecar] = []

    def spawn(models: Path, *args: str, env: dict[str, str] | None = None, wait: bool = True):
        proc = Sidecar(tmp_path, models, *args, env=env)
        started.append(proc)
        return proc.wait_ready() if wait else proc

    yield spawn
    unclean = [proc.log_path.name for proc in started if not proc.stop()]
    assert not unclean, f"sidecars needed SIGKILL after SIGINT: {unclean}"


@pytest.fixture
def private_repository(tmp_path: Path, repository: Path):
    """Factory: a tmp repository holding copies of chosen sample models, for config.yaml tests."""

    def make(*models: str) -> Path:
        root = tmp_path / "repo"
        for model in models:
            copy_model(repository, root, model)
        return root

    return make


@pytest.fixture
def fragile_repository(tmp_path: Path) -> Path:
    """A repository with `fragile` v1: `x` FP32 [N, K] → `y` = x reshaped to [N, 1], fine
    when K == 1 and a runtime error otherwise. Validation cannot see it coming (K is dynamic),
    so it makes batches that fail."""
    from onnx import TensorProto, checker, helper, numpy_helper, save

    shape = numpy_helper.from_array(np.array([0, 1], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "fragile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "K"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    root = tmp_path / "fragile-repo"
    (root / "fragile" / "1").mkdir(parents=True)
    save(model, root / "fragile" / "1" / "model.onnx")
    return root


@pytest.fixture
def identity_repository(tmp_path: Path) -> Path:
    """Identity models, `x` → `y` of shape [N, K]: `echo` FP32, `u8` UINT8, `i8` INT8, `h16`
    FP16 (V2 integer and half types end to end)."""
    from onnx import TensorProto, checker, helper, save

    root = tmp_path / "identity-repo"
    types = {
        "echo": TensorProto.FLOAT,
        "u8": TensorProto.UINT8,
        "i8": TensorProto.INT8,
        "h16": TensorProto.FLOAT16,
    }
    for name, elem in types.items():
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            name,
            [helper.make_tensor_value_info("x", elem, ["N", "K"])],
            [helper.make_tensor_value_info("y", elem, ["N", "K"])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        checker.check_model(model)
        (root / name / "1").mkdir(parents=True)
        save(model, root / name / "1" / "model.onnx")
    return root


# Batches of 16 that wait up to 2 s for company: 16 concurrent requests form one batch under
# gthread (uvicorn and meinheld batch what arrives in one loop turn and never wait).
POISON_BATCHING = "batching: {max_batch_size: 16, max_queue_delay_ms: 2000}\n"


@pytest.fixture
def poison_repository(tmp_path: Path) -> Path:
    """Models that fail only for some inputs, which validation cannot see coming:

    - `poison`: `x` FP32 [N, 4], `i` INT64 [N, 1] → `y` FP32 [N, 1] = x[row, i[row]]
      (GatherElements): a row whose index is outside [-4, 3] fails the whole run with ONNX
      Runtime's FAIL, the same error code a CUDA failure has;
    - `broken`: `x` FP32 [N, 4] → `y` = GatherElements(x, 4 * sign(|x|)): computes the
      warmup's zeros (so it loads) and nothing else, a model broken for every real input.
    """
    from onnx import TensorProto, checker, helper, numpy_helper, save

    def write(name: str, nodes, inputs, inits=()) -> None:
        graph = helper.make_graph(
            nodes,
            name,
            inputs,
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
            list(inits),
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        checker.check_model(model)
        (root / name / "1").mkdir(parents=True)
        save(model, root / name / "1" / "model.onnx")
        (root / name / "config.yaml").write_text(POISON_BATCHING)

    root = tmp_path / "poison-repo"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    i = helper.make_tensor_value_info("i", TensorProto.INT64, ["N", 1])
    write("poison", [helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)], [x, i])
    four = numpy_helper.from_array(np.array(4.0, dtype=np.float32), "four")
    starts = numpy_helper.from_array(np.array([0], dtype=np.int64), "starts")
    ends = numpy_helper.from_array(np.array([1], dtype=np.int64), "ends")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    write(
        "broken",
        [
            helper.make_node("Abs", ["x"], ["abs"]),
            helper.make_node("Sign", ["abs"], ["sign"]),
            helper.make_node("Mul", ["sign", "four"], ["scaled"]),
            helper.make_node("Slice", ["scaled", "starts", "ends", "axes"], ["column"]),
            helper.make_node("Cast", ["column"], ["index"], to=TensorProto.INT64),
            helper.make_node("GatherElements", ["x", "index"], ["y"], axis=1),
        ],
        [x],
        [four, starts, ends, axes],
    )
    return root


@pytest.fixture(scope="session")
def heavy_repository(tmp_path_factory: pytest.TempPathFactory, repository: Path) -> Path:
    """`slow`, `wide` and the light `digits` (`tests/heavy_models.py`)."""
    root = tmp_path_factory.mktemp("heavy-repo")
    copy_model(repository, root, "digits")
    build_heavy_models(root)
    return root
