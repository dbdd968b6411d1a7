from __future__ import annotations

import pytest

from hwnas.devices import registry
from hwnas.devices.base import Device, Runner
from hwnas.errors import DeviceUnavailable, UnknownDevice


class _NeverHere(Device):
    """A real backend class for a device that does not exist on any machine."""

    name = "never-here"
    install_hint = "pip install never-here"

    @classmethod
    def is_available(cls):
        return False, "the never-here runtime is not installed"

    def fingerprint(self):
        return {}

    def prepare(self, arch, shape):  # pragma: no cover - never reached
        raise AssertionError


@pytest.fixture
def never_here():
    registry.register_device("never-here", _NeverHere)
    yield
    registry.unregister_device("never-here")


def test_unknown_device_lists_known_ones():
    with pytest.raises(UnknownDevice, match=r"unknown device 'gpu9'; known devices: cpu, onnxruntime"):
        registry.create_device("gpu9")


def test_unavailable_device_says_why_and_how(never_here):
    with pytest.raises(DeviceUnavailable, match="not available here: the never-here runtime is not installed .pip install never-here."):
        registry.create_device("never-here")
    info = {d.name: d for d in registry.list_devices()}["never-here"]
    assert not info.available and "not installed" in info.reason


def test_duplicates_are_rejected(never_here):
    class Other(_NeverHere):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register_device("never-here", Other)
    registry.register_device("never-here", _NeverHere)  # the same class again (a re-imported module): a no-op
    with pytest.raises(ValueError, match="already registered"):
        registry.register_device("cpu", _NeverHere)
    registry.register_device("never-here", Other, replace=True)
    assert registry.get_device_class("never-here") is Other


def test_incomplete_backend_fails_at_construction():
    class Incomplete(Device):
        name = "incomplete"

        @classmethod
        def is_available(cls):
            return True, ""

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()

    class NoRun(Runner):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoRun()


def test_bad_target_string_is_reported(never_here):
    registry.register_device("broken", "hwnas.devices.nonexistent:Nope")
    try:
        with pytest.raises(DeviceUnavailable, match="could not be loaded"):
            registry.get_device_class("broken")
    finally:
        registry.unregister_device("broken")


def test_listing_devices_does_not_import_heavy_runtimes():
    import subprocess
    import sys

    code = (
        "import sys; from hwnas.devices.registry import list_devices; list_devices(); "
        "print(sorted(m for m in ('tensorrt', 'torch_xla') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
