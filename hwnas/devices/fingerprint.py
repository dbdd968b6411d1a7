"""Host fingerprints: what machine and software a measurement was taken on."""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["host_fingerprint", "package_versions"]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@lru_cache(maxsize=1)
def _cpu_model() -> str:
    info = _read("/proc/cpuinfo") or ""
    for line in info.splitlines():
        if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _physical_cores() -> int | None:
    info = _read("/proc/cpuinfo")
    if not info:
        return None
    pairs = set()
    phys = core = None
    for line in info.splitlines() + [""]:
        if line.startswith("physical id"):
            phys = line.split(":", 1)[1].strip()
        elif line.startswith("core id"):
            core = line.split(":", 1)[1].strip()
        elif not line.strip() and core is not None:
            pairs.add((phys, core))
            phys = core = None
    return len(pairs) or None


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of the named distributions (``None`` when absent)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def host_fingerprint(threads: int | None = None, packages: tuple[str, ...] = ("torch", "transformers")) -> dict[str, Any]:
    """CPU model, core counts, frequency governor, OS, Python and library versions."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    fp: dict[str, Any] = {
        "cpu_model": _cpu_model(), "logical_cores": os.cpu_count(), "physical_cores": _physical_cores(),
        "usable_cores": affinity, "threads": threads,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "max_freq_khz": _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"), "machine": platform.machine(),
        "os": platform.platform(), "python": sys.version.split()[0], "hwnas": package_versions("hwnas")["hwnas"],
    }
    fp.update(package_versions(*packages))
    return fp
