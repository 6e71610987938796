"""The devices a release's sidecars run on: `auto` (every visible GPU, else the CPU), `cpu`, or
a list of GPU indexes."""

from __future__ import annotations

import os
import shutil
import subprocess


def detect_gpus() -> list[int]:
    """GPU indexes nvidia-smi reports (CUDA_VISIBLE_DEVICES narrows them); [] without GPUs."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = [i for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = {int(x) for x in visible.split(",") if x.strip().isdigit()}
        gpus = [g for g in gpus if g in wanted]
    return gpus


def resolve_devices(devices: str | list[int]) -> list[str]:
    """The release's `sidecars.devices` as socket suffixes: ['cpu'] or ['0', '1', ...]."""
    if devices == "cpu":
        return ["cpu"]
    if devices == "auto":
        return [str(g) for g in detect_gpus()] or ["cpu"]
    return [str(d) for d in devices]
