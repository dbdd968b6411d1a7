"""Device registry: names to backend classes, imported lazily.

Built-in backends are listed as ``"module:Class"`` strings so that listing or
choosing a device never imports a runtime it does not need (``hwnas profile
--device onnxruntime`` never imports tensorrt or torch_xla). Third-party
packages add backends through the ``hwnas.devices`` entry-point group::

    [project.entry-points."hwnas.devices"]
    my-phone = "my_package.phone:PhoneDevice"
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from hwnas.devices.base import Device
from hwnas.errors import DeviceUnavailable, HwnasError, UnknownDevice

__all__ = [
    "register_device",
    "unregister_device",
    "get_device_class",
    "create_device",
    "list_devices",
    "device_names",
    "DeviceInfo",
]

ENTRY_POINT_GROUP = "hwnas.devices"

_BUILTIN: dict[str, str] = {
    "cpu": "hwnas.devices.cpu:CPUDevice",
    "onnxruntime": "hwnas.devices.onnxruntime:ORTDevice",
    "cuda": "hwnas.devices.cuda:CUDADevice",
    "onnxruntime-cuda": "hwnas.devices.onnxruntime_cuda:ORTCUDADevice",
    "tensorrt": "hwnas.devices.tensorrt:TensorRTDevice",
    "tpu": "hwnas.devices.xla:TPUDevice",
    "xla-cpu": "hwnas.devices.xla:XLACPUDevice",
}

_registry: dict[str, str | type[Device]] = dict(_BUILTIN)
_origin: dict[str, str] = {name: "built-in" for name in _BUILTIN}
_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _registry:
            continue  # a built-in or an earlier registration wins; never silently replaced
        _registry[ep.name] = ep.value
        _origin[ep.name] = f"plugin ({ep.dist.name if ep.dist else ep.value})"


def register_device(name: str, target: str | type[Device], *, replace: bool = False) -> None:
    """Register a backend under ``name``.

    Args:
        target: a :class:`Device` subclass or a ``"module:Class"`` string (lazy).
        replace: allow replacing an existing registration (off by default:
            duplicates raise ``ValueError``).
    """
    _load_entry_points()
    if name in _registry and not replace:
        raise ValueError(f"device {name!r} is already registered ({_origin.get(name, '?')}); pass replace=True to override")
    _registry[name] = target
    _origin[name] = "registered"


def unregister_device(name: str) -> None:
    _registry.pop(name, None)
    _origin.pop(name, None)


def device_names() -> list[str]:
    _load_entry_points()
    return list(_registry)


def get_device_class(name: str) -> type[Device]:
    """The backend class for ``name``; raises :class:`UnknownDevice` listing the known ones."""
    _load_entry_points()
    if name not in _registry:
        raise UnknownDevice(f"unknown device {name!r}; known devices: {', '.join(_registry)}")
    target = _registry[name]
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:
            raise DeviceUnavailable(f"device {name!r} could not be loaded from {target}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Device)):
            raise DeviceUnavailable(f"device {name!r}: {target} is not a hwnas.devices.Device subclass")
        _registry[name] = cls
        target = cls
    return target


def create_device(name: str, **options: Any) -> Device:
    """Instantiate backend ``name`` after checking that it can run here.

    Raises:
        UnknownDevice: ``name`` is not registered.
        DeviceUnavailable: it is registered but cannot run here (the message says why and what to install).
    """
    cls = get_device_class(name)
    ok, reason = cls.is_available()
    if not ok:
        hint = f" ({cls.install_hint})" if cls.install_hint and cls.install_hint not in reason else ""
        raise DeviceUnavailable(f"device {name!r} is not available here: {reason}{hint}")
    return cls(**options)


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    available: bool
    reason: str
    description: str
    dtypes: tuple[str, ...]
    origin: str


def list_devices() -> list[DeviceInfo]:
    """Every registered device, whether it can run here and, if not, why."""
    out = []
    for name in device_names():
        try:
            cls = get_device_class(name)
            ok, reason = cls.is_available()
            out.append(DeviceInfo(name, ok, reason, cls.description, tuple(cls.dtypes), _origin.get(name, "")))
        except HwnasError as exc:
            out.append(DeviceInfo(name, False, str(exc), "", (), _origin.get(name, "")))
    return out
