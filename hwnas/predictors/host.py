"""Host fingerprints: is this machine the one a host-bound predictor was profiled on?

For host-bound devices (``cpu``, ``onnxruntime``, ``xla-cpu``) the host *is* the
device: a ``cpu`` predictor fitted on one processor says little about another,
or about the same processor with another runtime version. :func:`host_mismatch`
compares the fingerprint recorded in a predictor's manifest with this host's
CPU model, core count and runtime version, and names both hosts when they
differ. Callers warn (or, with ``strict``, refuse) with its message.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from hwnas.errors import HwnasError, PredictorMismatch

__all__ = ["HOST_BOUND_DEVICES", "HostMismatchWarning", "is_host_bound", "host_mismatch", "check_host", "describe_host"]

#: Built-in devices whose latency is a property of the host machine.
HOST_BOUND_DEVICES = ("cpu", "onnxruntime", "xla-cpu")

#: The runtime whose version matters for each host-bound device (fingerprint key).
_RUNTIME = {"cpu": "torch", "onnxruntime": "onnxruntime", "xla-cpu": "torch-xla"}
_PACKAGES = {"cpu": ("torch", "transformers"), "onnxruntime": ("torch", "transformers", "onnx", "onnxruntime"),
             "xla-cpu": ("torch", "transformers", "torch-xla")}


class HostMismatchWarning(UserWarning):
    """A host-bound predictor is used on a host other than the one it was profiled on."""


def is_host_bound(device: str) -> bool:
    """True for the built-in host devices and for plugins whose class sets ``host_bound = True``."""
    if device in HOST_BOUND_DEVICES:
        return True
    try:
        from hwnas.devices.registry import get_device_class

        return bool(getattr(get_device_class(device), "host_bound", False))
    except HwnasError:
        return False


def describe_host(fp: Mapping[str, Any], device: str) -> str:
    """``"AMD EPYC, 2 cores, torch 2.13.0"``: what tells hosts apart."""
    runtime = _RUNTIME.get(device, "torch")
    parts = [str(fp.get("cpu_model") or "unknown CPU")]
    if fp.get("logical_cores"):
        parts.append(f"{fp['logical_cores']} cores")
    if fp.get(runtime):
        parts.append(f"{runtime} {fp[runtime]}")
    return ", ".join(parts)


def _current(device: str) -> dict[str, Any]:
    from hwnas.devices.fingerprint import host_fingerprint

    return host_fingerprint(None, _PACKAGES.get(device, ("torch",)))


def host_mismatch(manifest: Mapping[str, Any], current: Mapping[str, Any] | None = None) -> str | None:
    """A one-line description of how this host differs from the predictor's, or ``None``.

    ``None`` also when the device is not host-bound or the manifest records no
    fingerprint (nothing to compare).
    """
    dev = manifest.get("device") or {}
    name = str(dev.get("name"))
    recorded = dev.get("fingerprint")
    if not is_host_bound(name) or not isinstance(recorded, Mapping) or not recorded:
        return None
    now = dict(current) if current is not None else _current(name)
    runtime = _RUNTIME.get(name, "torch")
    diffs = [k for k in ("cpu_model", "logical_cores", runtime)
             if recorded.get(k) is not None and now.get(k) is not None and recorded.get(k) != now.get(k)]
    if not diffs:
        return None
    return (f"this {name} predictor was profiled on another host ({describe_host(recorded, name)}); this host is "
            f"{describe_host(now, name)}: its latencies may not hold here (differs in {', '.join(diffs)}; "
            f"check with `hwnas predictor check <bundle> --device {name}`)")


def check_host(manifest: Mapping[str, Any], *, strict: bool = False, current: Mapping[str, Any] | None = None) -> str | None:
    """Warn (:class:`HostMismatchWarning`) or, with ``strict``, raise when the host differs.

    Returns the message (``None`` when the hosts agree or nothing is recorded).

    Raises:
        PredictorMismatch: ``strict`` and the hosts differ.
    """
    message = host_mismatch(manifest, current)
    if message is None:
        return None
    if strict:
        raise PredictorMismatch(message + " (--strict)")
    warnings.warn(message, HostMismatchWarning, stacklevel=2)
    return message
