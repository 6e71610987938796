"""Which CPUs get 7-bit weights (reduce_range): x86 without VNNI or AMX, nothing else."""

from __future__ import annotations

import pytest

from scripts.quantize.cpu import detect, parse_cpuinfo

AVX2_ONLY = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2
processor\t: 1
flags\t\t: fpu avx512f avx512_vnni
"""


def cpuinfo(*flags: str) -> str:
    return f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: sse2 {' '.join(flags)}\n"


def test_avx2_without_vnni_reduces_the_range() -> None:
    features = parse_cpuinfo(AVX2_ONLY)
    assert features.x86 and features.avx2
    assert not features.vnni and not features.avx512
    assert features.reduce_range
    assert features.model == "Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz"


@pytest.mark.parametrize(
    "flags",
    [("avx2", "avx512f", "avx512_vnni"), ("avx2", "avx_vnni"), ("avx2", "amx_tile", "amx_int8")],
)
def test_vnni_or_amx_keeps_8_bit_weights(flags: tuple[str, ...]) -> None:
    features = parse_cpuinfo(cpuinfo(*flags))
    assert features.vnni or features.amx
    assert not features.reduce_range


def test_avx512_alone_is_not_vnni() -> None:
    features = parse_cpuinfo(cpuinfo("avx2", "avx512f", "avx512bw"))
    assert features.avx512 and not features.vnni
    assert features.reduce_range


def test_arm_has_no_flags_line_and_no_reduced_range() -> None:
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 asimddp\n"
    features = parse_cpuinfo(arm)
    assert not features.x86
    assert not features.reduce_range


def test_a_machine_without_cpuinfo_is_not_x86(tmp_path) -> None:
    features = detect(tmp_path / "absent")
    assert not features.x86 and not features.reduce_range
    assert features.as_dict()["cpu"] == "unknown"
