"""The CPU features that decide which int8 kernels ONNX Runtime runs, read from /proc/cpuinfo.

Why it matters: x86 CPUs without VNNI multiply int8 with `vpmaddubsw`, which adds pairs of
u8xs8 products into a saturating int16; weights that use all 8 bits can overflow it. ONNX
Runtime's answer is `reduce_range` (7-bit weights), at a small cost in precision. CPUs with
VNNI (AVX512-VNNI, AVX-VNNI) or AMX accumulate into int32 and need no such care; neither do
ARM CPUs (their /proc/cpuinfo says `Features`, not `flags`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


@dataclass(frozen=True)
class CpuFeatures:
    x86: bool
    avx2: bool
    avx512: bool
    vnni: bool
    amx: bool
    model: str

    @property
    def reduce_range(self) -> bool:
        """7-bit weights: only on x86 without an int32-accumulating int8 instruction."""
        return self.x86 and not (self.vnni or self.amx)

    def as_dict(self) -> dict[str, object]:
        return {
            "cpu": self.model,
            "x86": self.x86,
            "avx2": self.avx2,
            "avx512": self.avx512,
            "vnni": self.vnni,
            "amx": self.amx,
            "reduce_range_recommended": self.reduce_range,
        }


def parse_cpuinfo(text: str) -> CpuFeatures:
    """The features of the first processor listed (all cores of a machine share them)."""
    flags: set[str] = set()
    model = "unknown"
    x86 = False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            x86 = True
            flags = set(value.split())
        elif key == "model name" and model == "unknown":
            model = value.strip()
    return CpuFeatures(
        x86=x86,
        avx2="avx2" in flags,
        avx512="avx512f" in flags,
        vnni=any(flag in flags for flag in VNNI_FLAGS),
        amx="amx_int8" in flags,
        model=model,
    )


def detect(path: Path = CPUINFO) -> CpuFeatures:
    """This machine's features; a machine without /proc/cpuinfo is treated as not x86."""
    try:
        return parse_cpuinfo(path.read_text())
    except OSError:
        return parse_cpuinfo("")
