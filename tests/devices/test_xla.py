"""``tpu`` and ``xla-cpu`` (torch-xla).

torch-xla pins its own torch, so it lives in a separate virtual environment
(``.ci/xla-env`` builds it). These tests run in two ways:

* inside an interpreter that has torch-xla: everything below runs for real on
  the XLA CPU client (``PJRT_DEVICE=CPU``);
* inside the main environment, when ``HWNAS_XLA_PYTHON`` names the torch-xla
  interpreter (``.ci/run`` sets it): :func:`test_xla_suite_in_its_own_environment`
  runs this file and the xla-cpu cases of the device contract suite there.

Without either, they are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
from importlib.util import find_spec
from pathlib import Path

import pytest

from hwnas.devices.base import Shape
from hwnas.devices.registry import create_device, get_device_class
from hwnas.devices.xla import TPUDevice, XLACPUDevice, tpu_chips
from hwnas.errors import DeviceUnavailable, InvalidConfig
from hwnas.space import Architecture

REPO = Path(__file__).resolve().parents[2]
ARCH = Architecture(layers=1, hidden=32, heads=2, ffn=64)
HAS_XLA = find_spec("torch_xla") is not None
XLA_PYTHON = os.environ.get("HWNAS_XLA_PYTHON", "")


def _timing():
    """A short protocol: torch-xla's per-call tracing is noisy and warm-up would otherwise run to its cap."""
    from hwnas.devices.timing import TimingConfig

    return TimingConfig(warmup_min_runs=2, warmup_min_s=0.01, warmup_max_s=0.5, block_min_s=0.002,
                        min_rounds=3, max_rounds=5, max_time_s=0.2, target_rel_ci=0.05)


needs_xla = pytest.mark.skipif(
    not HAS_XLA,
    reason="torch_xla is not installed in this interpreter (it pins its own torch; .ci/xla-env builds an environment "
           "with it and test_xla_suite_in_its_own_environment runs these tests there)",
)


def test_registered_under_their_names():
    assert get_device_class("tpu") is TPUDevice
    assert get_device_class("xla-cpu") is XLACPUDevice


def test_tpu_chips_counts_google_tpus_on_the_pci_bus(tmp_path):
    def device(slot: str, vendor: str, dev: str) -> None:
        d = tmp_path / slot
        d.mkdir()
        (d / "vendor").write_text(vendor + "\n")
        (d / "device").write_text(dev + "\n")

    device("0000:00:04.0", "0x1ae0", "0x005e")  # TPU v4
    device("0000:00:05.0", "0x1ae0", "0x0063")  # TPU v5e
    device("0000:00:06.0", "0x1ae0", "0x0001")  # another Google device, not a TPU
    device("0000:00:07.0", "0x10de", "0x2330")  # an NVIDIA GPU
    assert tpu_chips(str(tmp_path)) == 2
    assert tpu_chips(str(tmp_path / "missing")) == 0


@pytest.mark.skipif(tpu_chips() > 0, reason="this host has a TPU")
def test_tpu_refuses_to_start_without_a_tpu():
    ok, reason = TPUDevice.is_available()
    assert not ok
    assert "torch-xla is not installed" in reason or "no TPU chip found" in reason
    with pytest.raises(DeviceUnavailable, match="device 'tpu' is not available here"):
        create_device("tpu")


@pytest.mark.parametrize("kwargs, message", [
    ({"dtype": "fp16"}, "dtype 'fp16' is not supported by device 'xla-cpu'; supported: fp32, bf16"),
    ({"threads": -1}, "threads must be an integer >= 1"),
    ({"mode": "eager"}, "mode must be one of dynamo, lazy; got 'eager'"),
])
def test_xla_config_validation(kwargs, message):
    with pytest.raises(InvalidConfig, match=message):
        XLACPUDevice(**kwargs)


@pytest.mark.skipif(HAS_XLA, reason="torch_xla is installed here")
def test_xla_cpu_unavailable_names_the_package():
    ok, reason = XLACPUDevice.is_available()
    assert not ok and "torch-xla is not installed" in reason


# ------------------------------------------------------ with torch-xla present
@pytest.fixture(scope="module", params=["dynamo", "lazy"])
def xla_device(request):
    if not HAS_XLA:
        pytest.skip("torch_xla is not installed in this interpreter")
    return create_device("xla-cpu", mode=request.param, vocab_size=100, max_positions=64)


def test_mode_is_recorded_in_settings():
    assert XLACPUDevice(mode="lazy").settings()["mode"] == "lazy"
    assert XLACPUDevice().settings()["mode"] == "dynamo"


@needs_xla
def test_xla_cpu_is_available():
    assert XLACPUDevice.is_available() == (True, "")


@needs_xla
def test_compiles_in_prepare_times_steady_and_matches_pytorch(xla_device):
    import torch

    from hwnas.devices._models import build_encoder, encoder_module, example_inputs
    from hwnas.devices.timing import measure
    from hwnas.devices.xla import compile_count

    with xla_device.prepare(ARCH, Shape(2, 16)) as runner:
        assert runner.export_s > 0
        before = compile_count()
        m = measure(runner, _timing())
        assert compile_count() == before, "a steady graph must not recompile while timed"
        assert m.warnings == []
        assert m.median_ms > 0
        got = runner.output()
    module = encoder_module(build_encoder(ARCH, vocab_size=100, max_positions=64))
    with torch.inference_mode():
        expected = module(*example_inputs(2, 16, vocab_size=100))
    assert got.shape == (2, 16, 32)
    assert float((got - expected).abs().max()) <= 1e-4


@needs_xla
def test_dynamo_mode_never_falls_back_to_uncompiled_code(xla_device):
    """dynamo keeps 8 graphs per code object by default, then runs it uncompiled: not acceptable here."""
    import torch._dynamo

    if xla_device.mode != "dynamo":
        pytest.skip("dynamo settings only matter in dynamo mode")
    with xla_device.prepare(ARCH, Shape(1, 8)):
        assert torch._dynamo.config.recompile_limit >= 100_000
        assert torch._dynamo.config.fail_on_recompile_limit_hit is True


@needs_xla
def test_recompilation_inside_a_timed_block_is_reported(xla_device):
    """Changing the input shape after warm-up forces a new graph: the block is flagged, not trusted."""
    import torch

    with xla_device.prepare(ARCH, Shape(1, 8)) as runner:
        runner.time_block(2)
        assert runner.after_block() is None
        device = runner.input_ids.device
        runner.input_ids = torch.randint(0, 100, (1, 12)).to(device)
        runner.attention_mask = torch.ones(1, 12, dtype=torch.long).to(device)
        runner.time_block(2)
        warning = runner.after_block()
        assert warning is not None and "compiled" in warning and "timed block" in warning
        runner.time_block(2)  # the new graph is cached now
        assert runner.after_block() is None


@needs_xla
def test_bf16_runs():
    import torch

    from hwnas.devices.timing import measure

    device = create_device("xla-cpu", dtype="bf16", vocab_size=100, max_positions=64)
    with device.prepare(ARCH, Shape(1, 8)) as runner:
        assert runner.output().dtype == torch.bfloat16
        assert measure(runner, _timing()).median_ms > 0


@needs_xla
def test_fingerprint_names_the_pjrt_device():
    fp = create_device("xla-cpu").fingerprint()
    assert fp["pjrt_device"] == "CPU"
    assert fp["xla_hardware"] == "CPU"
    assert fp["torch-xla"]


@needs_xla
def test_profile_cli_on_xla_cpu(tmp_path):
    """`hwnas profile --device xla-cpu --space tiny --samples 4 --quick`, in this process.

    In-process because a second interpreter would pay torch-xla's import and
    runtime start-up again (tens of seconds on a loaded 2-core machine).
    """
    from click.testing import CliRunner

    from hwnas.cli.main import cli
    from hwnas.profiling.store import read_records

    out = tmp_path / "xla.jsonl"
    result = CliRunner().invoke(cli, ["profile", "--device", "xla-cpu", "--space", "tiny", "--samples", "4",
                                      "--quick", "--seq-len", "8", "--interleave", "4", "--out", str(out)])
    assert result.exit_code == 0, f"{result.output[-2000:]} {result.exception!r}"
    assert "profile summary" in result.output
    records = list(read_records(out))
    assert len(records) == 4
    for r in records:
        assert r["device"] == "xla-cpu"
        assert r["latency_ms"] > 0 and r["export_s"] > 0
        assert r["fingerprint"]["pjrt_device"] == "CPU"
        assert not any("compiled" in w for w in r["warnings"]), r["warnings"]


# ------------------------------------------------ bridge from the main venv
@pytest.mark.skipif(HAS_XLA, reason="torch_xla is importable here: the tests above ran in this interpreter")
@pytest.mark.skipif(not XLA_PYTHON, reason="torch_xla is not installed here and HWNAS_XLA_PYTHON is not set "
                    "(bash .ci/xla-env builds the environment and prints the interpreter to set it to)")
@pytest.mark.timeout(900)
def test_xla_suite_in_its_own_environment():
    """Run this file, and the xla cases of the device contract suite, in the torch-xla interpreter."""
    targets = [str(Path(__file__).relative_to(REPO))]
    contract = REPO / "tests" / "devices" / "test_contract.py"
    args = [XLA_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *targets]
    if contract.exists():
        args += [str(contract.relative_to(REPO))]
    args += ["-k", "xla"]  # every test of this file (its module name matches) and the contract's xla cases
    env = {**os.environ, "PJRT_DEVICE": "CPU", "PYTHONPATH": str(REPO)}
    env.pop("HWNAS_XLA_PYTHON", None)
    result = subprocess.run(args, capture_output=True, check=False, text=True, cwd=REPO, env=env, timeout=850)
    tail = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    summary = [line for line in result.stdout.splitlines() if " passed" in line]
    assert summary and " failed" not in summary[-1], tail
    print(tail)  # the nested summary, visible with -s or -rA
