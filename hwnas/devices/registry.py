"""Device registry: names to backend classes, on the shared :class:`~hwnas._registry.Registry`.

Built-in backends are registered as ``"module:Class"`` strings so that listing or
choosing a device never imports a runtime it does not need (``hwnas profile
--device onnxruntime`` never imports tensorrt or torch_xla). Third-party
packages add backends through the ``hwnas.devices`` entry-point group::

    [project.entry-points."hwnas.devices"]
    my-phone = "my_package.phone:PhoneDevice"
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from typing import Any

from hwnas._registry import Registry
from hwnas.devices.base import Device
from hwnas.errors import DeviceUnavailable, HwnasError, InvalidConfig, UnknownDevice

__all__ = [
    "DEVICES", "register_device", "unregister_device", "get_device_class", "create_device", "list_devices",
    "device_names", "DeviceInfo", "parse_device_options", "check_device_options", "build_device",
]

ENTRY_POINT_GROUP = "hwnas.devices"

BUILTIN: dict[str, str] = {
    "cpu": "hwnas.devices.cpu:CPUDevice", "onnxruntime": "hwnas.devices.onnxruntime:ORTDevice",
    "cuda": "hwnas.devices.cuda:CUDADevice", "onnxruntime-cuda": "hwnas.devices.onnxruntime_cuda:ORTCUDADevice",
    "tensorrt": "hwnas.devices.tensorrt:TensorRTDevice", "tpu": "hwnas.devices.xla:TPUDevice",
    "xla-cpu": "hwnas.devices.xla:XLACPUDevice",
}


def new_registry() -> Registry[type[Device]]:
    """A device registry holding the built-in backends only (entry points are read on first use)."""
    return Registry("device", entry_point_group=ENTRY_POINT_GROUP, base=Device, unknown_error=UnknownDevice,
                    load_error=DeviceUnavailable, known_label="known devices", builtins=BUILTIN)


#: Every device backend by name.
DEVICES: Registry[type[Device]] = new_registry()


def register_device(name: str, target: str | type[Device], *, replace: bool = False) -> None:
    """Register a backend under ``name``.

    Args:
        target: a :class:`Device` subclass or a ``"module:Class"`` string (lazy).
        replace: allow replacing an existing registration (off by default: duplicates raise ``ValueError``).
    """
    DEVICES.add(name, target, replace=replace)


def unregister_device(name: str) -> None:
    DEVICES.unregister(name)


def device_names() -> list[str]:
    return DEVICES.names()


def get_device_class(name: str) -> type[Device]:
    """The backend class for ``name``; raises :class:`UnknownDevice` listing the known ones."""
    return DEVICES.get(name)


def build_device(name: str, **options: Any) -> Device:
    """Instantiate backend ``name`` with ``options`` checked, without asking whether it can run here (a fleet's
    coordinator validates settings whose availability is each measuring node's question).

    Raises:
        UnknownDevice: ``name`` is not registered.
        InvalidConfig: an option the backend does not take, or a value it refuses.
    """
    check_device_options(name, options)
    return get_device_class(name)(**options)


def create_device(name: str, **options: Any) -> Device:
    """Instantiate backend ``name`` after checking that it can run here.

    Raises:
        UnknownDevice: ``name`` is not registered.
        DeviceUnavailable: it is registered but cannot run here (the message says why and what to install).
    """
    cls = get_device_class(name)
    check_device_options(name, options)
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
    #: the backend's own constructor options (``hwnas profile --device-option KEY=VALUE``)
    options: tuple[str, ...] = ()


def list_devices() -> list[DeviceInfo]:
    """Every registered device, whether it can run here and, if not, why."""
    out = []
    for name in device_names():
        try:
            cls = get_device_class(name)
            ok, reason = cls.is_available()
            out.append(DeviceInfo(name, ok, reason, cls.description, tuple(cls.dtypes), DEVICES.origin(name),
                                  cls.option_names()))
        except HwnasError as exc:
            out.append(DeviceInfo(name, False, str(exc), "", (), DEVICES.origin(name)))
    return out


def check_device_options(name: str, options: Any) -> None:
    """Raise :class:`InvalidConfig` naming the first keyword in ``options`` that device ``name`` does not take."""
    cls = get_device_class(name)
    shared = set(inspect.signature(Device.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - shared - set(cls.option_names()))
    if unknown:
        raise _no_such_option(name, cls, unknown[0])


def _no_such_option(name: str, cls: type[Device], key: str) -> InvalidConfig:
    own = cls.option_names()
    accepted = f"its options: {', '.join(own)}" if own else "it has no options of its own"
    return InvalidConfig(f"device {name!r} has no option {key!r}; {accepted}")


def _option_value(text: str) -> Any:
    """``true``/``false`` and finite JSON numbers become bool and numbers; anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float)) and math.isfinite(value) else text


def parse_device_options(name: str, items: Any) -> dict[str, Any]:
    """``["cuda_graphs=true", "device_index=1"]`` as ``{"cuda_graphs": True, "device_index": 1}`` for device ``name``.

    Raises:
        UnknownDevice: ``name`` is not registered.
        InvalidConfig: an item is not ``KEY=VALUE``, names an option the device does not take, or repeats one.
    """
    cls = get_device_class(name)
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidConfig(f"a device option must be KEY=VALUE; got {item!r}")
        if key in out:
            raise InvalidConfig(f"device option {key!r} is given twice")
        if key not in cls.option_names():
            raise _no_such_option(name, cls, key)
        out[key] = _option_value(value)
    return out
