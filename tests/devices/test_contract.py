"""The device contract: every registered device passes these tests, or is skipped with its reason.

A new backend gets this suite by registering itself; nothing here names a backend.
"""

from __future__ import annotations

import math

import pytest

from hwnas.devices import Shape, create_device, device_names, get_device_class
from hwnas.devices.base import Device, Runner
from hwnas.devices.timing import TimingConfig, measure_interleaved
from hwnas.errors import InvalidConfig
from hwnas.space import Architecture

TINY = Architecture(layers=1, hidden=32, heads=2, ffn=64)
TINY2 = Architecture(layers=2, hidden=64, heads=4, ffn=128)
SHAPE = Shape(batch_size=1, seq_len=16)


def _device_or_skip(name: str, **options) -> Device:
    cls = get_device_class(name)
    ok, reason = cls.is_available()
    if not ok:
        pytest.skip(f"device {name!r} is not available here: {reason}")
    return create_device(name, **options)


@pytest.fixture(params=device_names())
def device_name(request):
    return request.param


def test_class_declares_the_contract(device_name):
    cls = get_device_class(device_name)
    assert issubclass(cls, Device)
    assert cls.name == device_name
    assert cls.dtypes and all(isinstance(d, str) for d in cls.dtypes)
    ok, reason = cls.is_available()  # must never raise
    assert isinstance(ok, bool) and isinstance(reason, str)
    assert ok or reason, "an unavailable device must say why"


def test_rejects_unsupported_dtype_and_bad_threads(device_name):
    cls = get_device_class(device_name)
    with pytest.raises(InvalidConfig, match="is not supported by device"):
        cls(dtype="int3")
    with pytest.raises(InvalidConfig, match="threads must be an integer >= 1"):
        cls(threads=0)


def test_prepare_run_and_time(device_name):
    device = _device_or_skip(device_name, threads=1)
    runner = device.prepare(TINY, SHAPE)
    try:
        assert isinstance(runner, Runner)
        assert runner.build_s >= 0 and runner.export_s >= 0
        runner.run()
        runner.synchronize()
        seconds = runner.time_block(3)
        assert seconds > 0 and math.isfinite(seconds)
    finally:
        runner.close()


def test_fingerprint_and_settings(device_name):
    device = _device_or_skip(device_name, threads=1)
    fp = device.fingerprint()
    assert isinstance(fp, dict) and fp
    assert "python" in fp or "os" in fp
    settings = device.settings()
    assert settings["threads"] == 1 and settings["dtype"] == device.dtype


def test_measurement_of_two_sizes_orders_them(device_name):
    """A 2-layer, 64-wide encoder at 128x the tokens must take longer than a 1-layer, 32-wide one.

    (128x rather than 32x: backends with ~1 ms of fixed per-call cost, such as xla-cpu,
    otherwise order the two by noise on a busy machine.)
    """
    device = _device_or_skip(device_name, threads=1)
    small = device.prepare(TINY, Shape(1, 8))
    large = device.prepare(TINY2, Shape(8, 128))
    try:
        with device.pinned():
            m_small, m_large = measure_interleaved([small, large], TimingConfig.quick())
    finally:
        small.close()
        large.close()
    assert m_small.samples_ms and m_large.samples_ms
    assert m_large.median_ms > m_small.median_ms


def test_shape_beyond_positions_is_refused(device_name):
    device = _device_or_skip(device_name, threads=1, max_positions=32)
    with pytest.raises(InvalidConfig, match="exceeds max_positions=32"):
        device.prepare(TINY, Shape(1, 64))
