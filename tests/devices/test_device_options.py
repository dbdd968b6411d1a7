"""A backend's own options (``cuda_graphs`` for ``cuda``...): declared, parsed, recorded, and reused by verification.

The round trip runs on a real (tiny) host backend with one option of its own, registered for the test: the
built-in backends with options need a GPU or torch-xla, which this machine may lack. Their option names are read
from their classes, which import nothing heavy.
"""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from hwnas.devices import registry
from hwnas.devices.base import Device, Runner
from hwnas.errors import InvalidConfig
from tests.cli_run import run_cli


class _ChainRunner(Runner):
    def __init__(self, arch, shape, passes):
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((shape.batch_size * shape.seq_len, arch.hidden)).astype(np.float32)
        self.w = rng.standard_normal((arch.hidden, arch.hidden)).astype(np.float32) / arch.hidden
        self.steps = arch.layers * passes

    def run(self):
        y = self.x
        for _ in range(self.steps):
            y = y @ self.w


class PassesDevice(Device):
    """A matmul chain on the host whose option ``passes`` repeats it (so the option changes what is measured)."""

    name = "passes-test"
    description = "host matmul chain with an option"
    created: ClassVar[list[PassesDevice]] = []

    def __init__(self, *, passes: int = 1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
            raise InvalidConfig(f"passes must be an integer >= 1; got {passes!r}")
        self.passes = passes
        PassesDevice.created.append(self)

    @classmethod
    def is_available(cls):
        return True, ""

    def fingerprint(self):
        return {"host": "test"}

    def settings(self):
        return {**super().settings(), "passes": self.passes}

    def prepare(self, arch, shape):
        self.check_shape(shape)
        return _ChainRunner(arch, shape, self.passes)


@pytest.fixture
def passes_device(monkeypatch):
    monkeypatch.setattr(registry, "DEVICES", registry.new_registry())
    registry.register_device(PassesDevice.name, PassesDevice)
    PassesDevice.created.clear()
    return PassesDevice


def test_option_names_are_the_constructors_own_keywords(passes_device):
    from hwnas.devices.cpu import CPUDevice
    from hwnas.devices.cuda import CUDADevice
    from hwnas.devices.tensorrt import TensorRTDevice
    from hwnas.devices.xla import TPUDevice

    assert CUDADevice.option_names() == ("device_index", "cuda_graphs")
    assert TensorRTDevice.option_names() == ("device_index", "workspace_gib")
    assert TPUDevice.option_names() == ("mode",)
    assert CPUDevice.option_names() == ()
    assert passes_device.option_names() == ("passes",)
    assert passes_device(passes=3).options() == {"passes": 3}
    listed = {info.name: info for info in registry.list_devices()}
    assert listed["cuda"].options == ("device_index", "cuda_graphs") and listed["cpu"].options == ()


def test_parse_device_options_types_the_values():
    assert registry.parse_device_options("cuda", ["cuda_graphs=true", "device_index=1"]) == \
        {"cuda_graphs": True, "device_index": 1}
    assert registry.parse_device_options("cuda", ["cuda_graphs=False"]) == {"cuda_graphs": False}
    assert registry.parse_device_options("tensorrt", ["workspace_gib=0.5"]) == {"workspace_gib": 0.5}
    # a number that is not finite stays text, so the backend's own check refuses it by name
    assert registry.parse_device_options("tensorrt", ["workspace_gib=NaN"]) == {"workspace_gib": "NaN"}
    assert registry.parse_device_options("tpu", ["mode=eager"]) == {"mode": "eager"}
    assert registry.parse_device_options("cuda", []) == {}


@pytest.mark.parametrize("device, items, message", [
    ("cuda", ["cuda_graphs"], "a device option must be KEY=VALUE; got 'cuda_graphs'"),
    ("cuda", ["=1"], "a device option must be KEY=VALUE; got '=1'"),
    ("cuda", ["graphs=true"], "device 'cuda' has no option 'graphs'; its options: device_index, cuda_graphs"),
    ("cuda", ["threads=2"], "device 'cuda' has no option 'threads'; its options: device_index, cuda_graphs"),
    ("cpu", ["cuda_graphs=true"], "device 'cpu' has no option 'cuda_graphs'; it has no options of its own"),
    ("cuda", ["device_index=0", "device_index=1"], "device option 'device_index' is given twice"),
])
def test_parse_device_options_refuses_in_one_line(device, items, message):
    with pytest.raises(InvalidConfig) as info:
        registry.parse_device_options(device, items)
    assert str(info.value) == message


def test_create_device_names_an_option_the_backend_does_not_take(passes_device):
    with pytest.raises(InvalidConfig, match="device 'passes-test' has no option 'graphs'; its options: passes"):
        registry.create_device("passes-test", graphs=True)
    assert registry.create_device("passes-test", passes=2, threads=1).passes == 2


def _profile_args(out, *extra):
    return ["profile", "--device", "passes-test", "--space", "tiny", "--samples", "12", "--seq-len", "8", "--quick",
            "--quiet", "--out", out, *extra]


def test_profile_records_the_option_and_verification_reuses_it(passes_device, tmp_path, capsys):
    from hwnas.predictors import load_predictor
    from hwnas.profiling.store import read_records
    from hwnas.search.verify import measure_student, predictor_device_settings, verify
    from hwnas.space import Architecture

    out = tmp_path / "p.jsonl"
    code, _, err = run_cli(_profile_args(out, "--device-option", "passes=3"), capsys)
    assert code == 0, err
    records = list(read_records(out))
    assert len(records) == 12 and {r["settings"]["passes"] for r in records} == {3}

    # resuming with another value of the option would mix two devices in one file: refused, file untouched
    before = out.read_bytes()
    code, _, err = run_cli(_profile_args(out, "--device-option", "passes=1", "--resume"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert out.read_bytes() == before

    bundle = tmp_path / "p.hwnas"
    code, _, err = run_cli(["predictor", "fit", out, "--out", bundle, "--no-plot", "--quiet"], capsys)
    assert code == 0, err
    predictor = load_predictor(bundle)
    assert predictor_device_settings(predictor)["options"] == {"passes": 3}

    arch = Architecture(layers=1, hidden=128, heads=2, ffn=256)  # inside the tiny space the predictor learned
    PassesDevice.created.clear()
    from hwnas.devices.timing import TimingConfig

    results = verify([arch], device="passes-test", predictor=predictor, budget_ms=1e3, seq_len=8,
                     timing=TimingConfig.quick())
    assert len(results) == 1 and {d.passes for d in PassesDevice.created} == {3}
    PassesDevice.created.clear()
    measured = measure_student(arch, device="passes-test", seq_len=8, predictor=predictor, timing=TimingConfig.quick())
    assert measured["device_options"] == {"passes": 3} and {d.passes for d in PassesDevice.created} == {3}


def test_profile_refuses_a_bad_option_before_writing(passes_device, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    code, _, err = run_cli(_profile_args(out, "--device-option", "passes=0"), capsys)
    assert code == 2 and err.strip() == "hwnas: error: passes must be an integer >= 1; got 0", err
    code, _, err = run_cli(_profile_args(out, "--device-option", "laps=2"), capsys)
    assert code == 2 and err.strip() == "hwnas: error: device 'passes-test' has no option 'laps'; its options: passes"
    assert not out.exists()


def test_fleet_chunks_carry_the_options(passes_device):
    """What a Ray worker receives rebuilds the device with its options (the spec is plain JSON)."""
    from hwnas.devices.base import Shape
    from hwnas.devices.timing import TimingConfig
    from hwnas.profiling import Task
    from hwnas.profiling.fleet import _base_spec, _device_and_reference
    from hwnas.space import Architecture

    device = registry.create_device("passes-test", passes=2)
    spec = _base_spec(device, 0, TimingConfig.quick(), Task(Architecture(layers=1, hidden=32, heads=2, ffn=64), Shape(1, 8)))
    rebuilt, _ = _device_and_reference(json.loads(json.dumps(spec)))
    assert spec["options"] == {"passes": 2} and rebuilt.passes == 2


def test_devices_json_lists_options(capsys):
    code, out, _ = run_cli(["devices", "--json"], capsys)
    assert code == 0
    by_name = {d["name"]: d for d in json.loads(out)}
    assert by_name["cuda"]["options"] == ["device_index", "cuda_graphs"] and by_name["cpu"]["options"] == []


def test_hwnas_run_profiles_with_the_option(passes_device, tmp_path, capsys):
    """`hwnas run --device-option` reaches the profile stage (the student's measurement reads it from the predictor)."""
    from hwnas.pipeline import ProfileStage, RunContext, quick_config

    config = quick_config(5.0, work_dir=str(tmp_path), name="run", device="passes-test", device_options={"passes": 2},
                          profile_samples=2, seq_len=8)
    config.folder.mkdir(parents=True)
    stage = ProfileStage(RunContext(config))
    assert stage.run()[0] == "ran"
    records = [json.loads(line) for line in stage.output.read_text().splitlines()]
    assert len(records) == 2 and {r["settings"]["passes"] for r in records} == {2}
    code, _, err = run_cli(["run", "--max-latency", "5ms", "--quick", "--device", "passes-test", "--device-option",
                            "laps=1", "--work-dir", tmp_path / "w"], capsys)
    assert code == 2 and err.strip() == "hwnas: error: device 'passes-test' has no option 'laps'; its options: passes"
    assert not (tmp_path / "w").exists()
