"""Shared fixtures. Tests use tiny real models and real runtimes."""

from __future__ import annotations

import os
import tempfile

import pytest

# Keep the test suite polite on small shared machines and deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Every `hwnas distill` appends to the experience table under HWNAS_HOME: the suite's runs (subprocesses and
# Ray workers included, which inherit this) go to a temporary folder, never the user's cache.
os.environ["HWNAS_HOME"] = tempfile.mkdtemp(prefix="hwnas-test-home-")


@pytest.fixture
def quick_timing():
    from hwnas.devices.timing import TimingConfig

    return TimingConfig.quick()


@pytest.fixture
def tiny_arch():
    from hwnas.space import Architecture

    return Architecture(layers=1, hidden=32, heads=2, ffn=64)


@pytest.fixture
def saved_checkpoint(tmp_path):
    """``(folder, model, optimizer)``: a checkpoint of a tiny module after one AdamW step (so the optimizer has state),
    written by :func:`hwnas.training.checkpoint.save_checkpoint` with its checksums."""
    import torch

    from hwnas.training.checkpoint import save_checkpoint

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return save_checkpoint(tmp_path / "ckpt", 1, model, opt, {"seed": 0}), model, opt
