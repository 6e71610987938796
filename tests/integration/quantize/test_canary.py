"""The README's canary, end to end: `weir up` serving the samples, `weir quantize` writing INT8
versions into its repository, `weir apply` grey-releasing them at 5% beside the old ones, and a
stock tritonclient getting answers from them through the edge."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from scripts.quantize.sessions import open_session
from tests.integration.quantize.conftest import copy_samples, quantize
from tests.processes import descendants
from tests.weir_up import READY_BANNER, ROOT, WeirUp, free_port

CANARY_DIGITS = '      "1": {}\n      "3": {}\n'
CANARY_SPLIT = '{split: {"1": 90, "2": 5, "3": 5}'


class Stack(WeirUp):
    """`weir up` on free ports, CPU only, with a repository of its own to quantize into."""

    def __init__(self, tmp: Path, samples: Path) -> None:
        self.port = free_port()
        self.runtime = tmp / "runtime"
        self.models = copy_samples(samples, tmp / "models")
        # The release serves every sample model; the image model comes along as it is.
        shutil.copytree(samples / "handwriting", self.models / "handwriting")
        text = (ROOT / "release.yaml").read_text()
        text = text.replace("listen: 8080", f"listen: 127.0.0.1:{self.port}")
        text = text.replace("127.0.0.1:9901", f"127.0.0.1:{free_port()}")
        self.release_text = text.replace("devices: auto", "devices: cpu")
        self.release = tmp / "release.yaml"
        self.release.write_text(self.release_text)
        self.launch(str(self.release))

    def command(self, *release: str) -> list[str]:
        return super().command(
            *release, "--runtime-dir", str(self.runtime), "--models", str(self.models)
        )

    def canary_release(self) -> Path:
        """Revision 2: digits 3 at 5% beside 1 and 2, cnn 2 at 5% beside 1."""
        text = self.release_text.replace("revision: 1 ", "revision: 2 ", 1)
        text = text.replace('      "1": {}\n', CANARY_DIGITS, 1)
        text = re.sub(r'\{split: \{"1": 90, "2": 10\}', CANARY_SPLIT, text, count=1)
        cnn_v2 = '      "2": {}\n    release: {split: {"1": 95, "2": 5}}\n'
        text, found = re.subn(
            r'(\n  cnn:\n    versions:\n      "1": [^\n]*\n)', rf"\1{cnn_v2}", text
        )
        assert found == 1 and CANARY_SPLIT in text
        path = self.release.with_name("release-2.yaml")
        path.write_text(text)
        return path


@pytest.fixture(scope="module")
def stack(repository: Path, tmp_path_factory: pytest.TempPathFactory):
    stack = Stack(tmp_path_factory.mktemp("canary"), repository)
    try:
        stack.wait_for_log(READY_BANNER)
        yield stack
    finally:
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGTERM)
            try:
                stack.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for pid in descendants(stack.process.pid):
                    os.kill(pid, signal.SIGKILL)
                stack.process.kill()
                stack.process.wait()


@pytest.fixture(scope="module")
def applied(stack: Stack) -> Stack:
    for argv in (("digits", "2", "--to", "3"), ("cnn", "1", "--to", "2")):
        done = quantize(stack.models, *argv, "--bench-seconds", "2")
        assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "apply", str(stack.canary_release())],
        cwd=ROOT,
        env={**os.environ, "WEIR_RUNTIME_DIR": str(stack.runtime)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "revision 2 is live" in done.stdout
    return stack


@pytest.fixture
def triton(applied: Stack):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{applied.port}")
    yield client
    client.close()


def local(stack: Stack, model: str, version: str, x: np.ndarray) -> np.ndarray:
    session = open_session(stack.models / model / version / "model.onnx")
    out: np.ndarray = session.run(None, {"input": x})[0]
    return out


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize(
    ("model", "version", "shape"),
    [("digits", "3", (4, 64)), ("digits", "2", (4, 64)), ("cnn", "2", (2, 3, 64, 64))],
)
def test_tritonclient_gets_answers_from_the_int8_versions_beside_the_old(
    applied, triton, model, version, shape, binary
) -> None:
    x = np.random.default_rng(3).random(shape, dtype=np.float32)
    inp = httpclient.InferInput("input", list(shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
    result = triton.infer(model, [inp], model_version=version, outputs=[out])
    assert result.get_response()["model_version"] == version
    got = result.as_numpy("probabilities")
    np.testing.assert_allclose(got, local(applied, model, version, x), rtol=1e-4, atol=1e-5)


def test_the_release_header_reaches_the_canary_without_a_version_in_the_url(applied, triton):
    inp = httpclient.InferInput("input", [1, 64], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 64), dtype=np.float32))
    result = triton.infer("digits", [inp], headers={"X-Weir-Version": "3"})
    assert result.get_response()["model_version"] == "3"


def test_the_canary_is_ready_and_reports_the_source_signature(applied, triton) -> None:
    assert triton.is_model_ready("digits", "3") and triton.is_model_ready("cnn", "2")
    assert triton.get_model_metadata("digits", "3")["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 64]}
    ]
