"""The small search space and profiling settings the profiling tests share."""

from __future__ import annotations

from hwnas.devices.timing import TimingConfig
from hwnas.profiling import ProfileConfig

#: 16 architectures, each profiled in milliseconds.
MINI_SPACE = {"name": "mini", "layers": [1, 2], "hidden": [32, 64], "heads": [2, 4], "ffn": [64, 128]}


def mini_config(space_file: str, **overrides) -> ProfileConfig:
    """A quick CPU profiling config over ``space_file``: 4 samples, seq 8, batch 1, two interleaved rounds."""
    base = dict(device="cpu", space=space_file, samples=4, seq_lens=(8,), batch_sizes=(1,), interleave=2,
                timing=TimingConfig.quick())
    base.update(overrides)
    return ProfileConfig(**base)
