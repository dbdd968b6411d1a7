"""Third-party devices through the ``hwnas.devices`` entry-point group.

A real (tiny) plugin package is written to a temporary directory with a
``*.dist-info/entry_points.txt``, put on ``sys.path`` and discovered by
``importlib.metadata`` exactly as an installed package would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hwnas.devices import registry

REPO = Path(__file__).resolve().parents[2]

PLUGIN_SOURCE = '''
"""A toy accelerator: a float32 matmul chain sized by the architecture, on the host."""

import numpy as np

from hwnas.devices.base import Device, Runner


class _ToyRunner(Runner):
    def __init__(self, arch, shape):
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((shape.batch_size * shape.seq_len, arch.hidden)).astype(np.float32)
        self.w = rng.standard_normal((arch.hidden, arch.hidden)).astype(np.float32) / arch.hidden
        self.layers = arch.layers
        self.calls = 0

    def run(self):
        y = self.x
        for _ in range(self.layers):
            y = y @ self.w
        self.calls += 1


class ToyDevice(Device):
    name = "toy-npu"
    description = "toy accelerator from a plugin"
    dtypes = ("fp32",)

    @classmethod
    def is_available(cls):
        return True, ""

    def fingerprint(self):
        return {"toy_firmware": "1.2.3"}

    def prepare(self, arch, shape):
        self.check_shape(shape)
        return _ToyRunner(arch, shape)


class NotADevice:
    pass
'''

ENTRY_POINTS = """\
[hwnas.devices]
toy-npu = hwnas_toy_plugin:ToyDevice
toy-missing = hwnas_toy_plugin.nowhere:Device
toy-wrong-type = hwnas_toy_plugin:NotADevice
cpu = hwnas_toy_plugin:ToyDevice
"""


@pytest.fixture
def plugin_dir(tmp_path):
    """A plugin 'installed' in tmp_path: its package and its dist-info metadata."""
    package = tmp_path / "hwnas_toy_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist = tmp_path / "hwnas_toy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hwnas-toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return tmp_path


@pytest.fixture
def with_plugin(plugin_dir, monkeypatch):
    """The plugin on sys.path and a registry that has not yet read entry points (restored afterwards)."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.setattr(registry, "DEVICES", registry.new_registry())
    yield plugin_dir
    sys.modules.pop("hwnas_toy_plugin", None)


def test_plugin_device_is_discovered_and_profiled(with_plugin, quick_timing):
    from hwnas.devices.base import Shape
    from hwnas.profiling.runner import Task, measure_tasks
    from hwnas.space import Architecture

    assert "toy-npu" in registry.device_names()
    cls = registry.get_device_class("toy-npu")
    assert cls.__module__ == "hwnas_toy_plugin"
    device = registry.create_device("toy-npu")
    tasks = [Task(Architecture(layers=2, hidden=64, heads=2, ffn=128), Shape(1, 16)),
             Task(Architecture(layers=1, hidden=32, heads=2, ffn=64), Shape(1, 16))]
    records = measure_tasks(device, tasks, quick_timing)
    assert [r["device"] for r in records] == ["toy-npu", "toy-npu"]
    assert all(r["latency_ms"] > 0 for r in records)
    assert records[0]["fingerprint"] == {"toy_firmware": "1.2.3"}


def test_plugin_listed_with_its_origin(with_plugin):
    infos = {info.name: info for info in registry.list_devices()}
    toy = infos["toy-npu"]
    assert toy.available and toy.origin == "plugin (hwnas-toy-plugin)"
    assert toy.description == "toy accelerator from a plugin"


def test_plugin_cannot_replace_a_builtin(with_plugin):
    from hwnas.devices.cpu import CPUDevice

    assert registry.get_device_class("cpu") is CPUDevice
    assert {i.name: i.origin for i in registry.list_devices()}["cpu"] == "built-in"


def test_broken_plugins_are_reported_not_fatal(with_plugin):
    from hwnas.errors import DeviceUnavailable

    infos = {info.name: info for info in registry.list_devices()}
    assert not infos["toy-missing"].available
    assert "could not be loaded from hwnas_toy_plugin.nowhere:Device" in infos["toy-missing"].reason
    assert not infos["toy-wrong-type"].available
    assert "is not a hwnas.devices.Device subclass" in infos["toy-wrong-type"].reason
    with pytest.raises(DeviceUnavailable, match="toy-missing"):
        registry.create_device("toy-missing")


def test_cli_lists_and_profiles_a_plugin_device(plugin_dir, tmp_path):
    """End to end in a fresh process: `hwnas devices` and `hwnas profile` see the plugin."""
    from hwnas.profiling.store import read_records

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)])}
    cli = [sys.executable, "-m", "hwnas.cli.main"]
    listed = subprocess.run([*cli, "devices", "--json"], capture_output=True, check=False, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    by_name = {d["name"]: d for d in json.loads(listed.stdout)}
    assert by_name["toy-npu"]["available"] is True
    assert by_name["toy-npu"]["origin"] == "plugin (hwnas-toy-plugin)"

    out = tmp_path / "toy.jsonl"
    run = subprocess.run([*cli, "profile", "--device", "toy-npu", "--space", "tiny", "--samples", "2",
                          "--quick", "--seq-len", "8", "--out", str(out)],
                         capture_output=True, check=False, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    records = list(read_records(out))
    assert len(records) == 2 and {r["device"] for r in records} == {"toy-npu"}
