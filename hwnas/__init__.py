"""hwnas: hardware-aware compression of transformer language models.

Public entry points are re-exported lazily so that ``import hwnas`` (and
``hwnas --help``) never pulls in torch or a device runtime.
"""

from __future__ import annotations

from hwnas._lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "Architecture": "hwnas.space", "SearchSpace": "hwnas.space", "get_space": "hwnas.space",
    "HwnasError": "hwnas.errors", "create_device": "hwnas.devices.registry", "list_devices": "hwnas.devices.registry",
    "Shape": "hwnas.devices.base", "TimingConfig": "hwnas.devices.timing", "ProfileConfig": "hwnas.profiling.runner",
    "profile": "hwnas.profiling.runner", "read_profile": "hwnas.profiling.store", "load_predictor": "hwnas.predictors",
    "load_supernet": "hwnas.supernet",
}

__all__ = ["__version__"] + list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
