"""Settings come from WEIR_* variables, typed, with flags on top."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sidecar.settings import Settings


def test_env_values_are_typed_and_flags_win():
    s = Settings.from_env({"WEIR_WORKERS": "3", "WEIR_DEVICE": "1", "WEIR_PORT": "9000"}, port=81)
    assert (s.workers, s.device, s.port) == (3, "1", 81)


def test_round_trip_through_the_environment():
    s = Settings(models="m", socket="/tmp/x.sock", max_queue_delay_ms=0.5)
    assert Settings.from_env(s.to_env()) == s


@pytest.mark.parametrize(
    "env", [{"WEIR_DEVICE": "gpu"}, {"WEIR_WORKERS": "-1"}, {"WEIR_WORKER_CLASS": "sync"}]
)
def test_bad_values_are_refused(env):
    with pytest.raises(ValidationError):
        Settings.from_env(env)


def test_worker_count_defaults_to_cpus_on_cpu_and_one_on_a_gpu():
    assert 1 <= Settings(device="cpu").worker_count() <= 4
    assert Settings(device="0").worker_count() == 1
    assert Settings(workers=3, device="0").worker_count() == 3


def test_the_body_limit_comes_from_its_variable_or_flag():
    assert Settings.from_env({"WEIR_MAX_BODY_BYTES": "1048576"}).max_body_bytes == 1 << 20
    assert (
        Settings.from_env({"WEIR_MAX_BODY_BYTES": "1"}, max_body_bytes=2048).max_body_bytes == 2048
    )
    with pytest.raises(ValidationError):
        Settings.from_env({"WEIR_MAX_BODY_BYTES": "16m"})  # bytes: `weir up` converts sizes
