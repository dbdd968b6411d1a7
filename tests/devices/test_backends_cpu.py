"""Backend-specific checks for the host backends (cpu, onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.devices import Shape, create_device
from hwnas.space import Architecture

ARCH = Architecture(layers=2, hidden=64, heads=4, ffn=128)


def test_cpu_threads_are_pinned_and_restored():
    import torch

    before = torch.get_num_threads()
    device = create_device("cpu", threads=1)
    with device.pinned():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cpu_random_weights_have_realistic_scale():
    device = create_device("cpu", threads=1)
    runner = device.prepare(ARCH, Shape(2, 16))
    out = runner.output()
    assert out.shape == (2, 16, 64)
    # LayerNorm output: unit scale, not zeros or NaNs from uninitialised memory
    assert np.isfinite(out.numpy()).all()
    assert 0.5 < float(out.std()) < 2.0


def test_cpu_bf16_runs():
    device = create_device("cpu", threads=1, dtype="bf16")
    runner = device.prepare(ARCH, Shape(1, 8))
    import torch

    assert runner.output().dtype == torch.bfloat16


def test_onnxruntime_matches_pytorch():
    pytest.importorskip("onnxruntime")
    from hwnas.devices.onnxruntime import ATOL

    cpu = create_device("cpu", threads=1, seed=5)
    ort = create_device("onnxruntime", threads=1, seed=5)
    ref = cpu.prepare(ARCH, Shape(1, 12)).output().numpy()
    runner = ort.prepare(ARCH, Shape(1, 12))
    got = runner.output()
    assert runner.max_abs_diff <= ATOL
    assert np.abs(got - ref).max() <= ATOL  # same seed: same weights and inputs as the cpu backend
    assert runner.export_s > 0
    fp = ort.fingerprint()
    assert fp["onnxruntime"] and fp["execution_provider"] == "CPUExecutionProvider"
