"""Device backends: one module per backend, a registry, and the shared timing protocol."""

from hwnas.devices.base import DTYPES, Device, Runner, Shape
from hwnas.devices.registry import (
    DeviceInfo, create_device, device_names, get_device_class, list_devices, register_device, unregister_device,
)
from hwnas.devices.timing import Measurement, TimingConfig, measure, measure_interleaved

__all__ = [
    "DTYPES", "Device", "Runner", "Shape", "DeviceInfo", "create_device", "device_names", "get_device_class",
    "list_devices", "register_device", "unregister_device", "Measurement", "TimingConfig", "measure",
    "measure_interleaved",
]
