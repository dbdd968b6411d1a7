"""``cuda`` and ``onnxruntime-cuda``.

What can run on a machine without a GPU runs for real: availability reasons,
configuration checks, the CLI's one-line refusal, and ONNX Runtime's IOBinding
runner (bound to CPU memory through the same code). Tests that need a GPU are
skipped with the reason the device gives.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwnas.devices.base import Shape
from hwnas.devices.cuda import CUDADevice, _nvidia_smi_info, gpu_fingerprint
from hwnas.devices.onnxruntime_cuda import BoundORTRunner, ORTCUDADevice, to_fp16
from hwnas.devices.registry import create_device, get_device_class
from hwnas.errors import DeviceUnavailable, InvalidConfig
from hwnas.space import Architecture

ARCH = Architecture(layers=1, hidden=32, heads=2, ffn=64)
CUDA_OK, CUDA_REASON = CUDADevice.is_available()
ORT_CUDA_OK, ORT_CUDA_REASON = ORTCUDADevice.is_available()
needs_cuda = pytest.mark.skipif(not CUDA_OK, reason=f"needs a CUDA GPU: {CUDA_REASON}")
needs_ort_cuda = pytest.mark.skipif(not ORT_CUDA_OK, reason=f"needs onnxruntime-gpu and a GPU: {ORT_CUDA_REASON}")
REPO = Path(__file__).resolve().parents[2]


def test_registered_under_their_names():
    assert get_device_class("cuda") is CUDADevice
    assert get_device_class("onnxruntime-cuda") is ORTCUDADevice


# ----------------------------------------------------------------- cuda: no GPU
@pytest.mark.skipif(CUDA_OK, reason="a CUDA GPU is available here")
def test_cuda_unavailable_reason_says_why():
    import torch

    ok, reason = CUDADevice.is_available()
    assert not ok
    if torch.version.cuda is None:
        assert f"torch {torch.__version__} was built without CUDA" in reason
    else:
        assert "no NVIDIA GPU found" in reason or "no CUDA GPU is visible" in reason
    with pytest.raises(DeviceUnavailable, match="device 'cuda' is not available here"):
        create_device("cuda", dtype="fp16")


@pytest.mark.skipif(CUDA_OK, reason="a CUDA GPU is available here")
def test_cli_refuses_cuda_in_one_line_with_exit_code_2(tmp_path):
    out = tmp_path / "gpu.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "hwnas.cli.main", "profile", "--device", "cuda", "--dtype", "fp16",
         "--space", "tiny", "--samples", "2", "--out", str(out)],
        capture_output=True, check=False, text=True, env=env, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hwnas: error: device 'cuda' is not available here:")
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_gpu_fingerprint_leaves_out_what_it_cannot_read():
    fp = gpu_fingerprint(0)
    assert fp["gpu_index"] == 0
    if not CUDA_OK:
        assert "gpu_name" not in fp and "compute_capability" not in fp


def _fake_nvidia_smi(folder: Path, answer: str) -> None:
    """An ``nvidia-smi`` on PATH that prints ``answer`` whatever it is asked."""
    script = folder / "nvidia-smi"
    script.write_text(f"#!{sys.executable}\nprint({answer!r})\n")
    script.chmod(0o755)


@pytest.mark.skipif(os.name != "posix", reason="the fake nvidia-smi is a POSIX script")
def test_nvidia_smi_facts_named_in_query_order_mocked_smi(tmp_path, monkeypatch):
    _fake_nvidia_smi(tmp_path, "550.54, 1980, 2619, 1980, 2619, 700.00, [N/A]")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _nvidia_smi_info(0, None) == {"driver": "550.54", "sm_clock_mhz": "1980", "mem_clock_mhz": "2619",
                                         "max_sm_clock_mhz": "1980", "max_mem_clock_mhz": "2619",
                                         "power_limit_w": "700.00"}


@pytest.mark.skipif(os.name != "posix", reason="the fake nvidia-smi is a POSIX script")
@pytest.mark.parametrize("answer", ["550.54, 1980, 2619, 700.00", "550.54, 1980, 2619, 1980, 2619, 700.00, Enabled, 1", ""])
def test_nvidia_smi_answer_of_another_shape_is_left_out_mocked_smi(answer, tmp_path, monkeypatch):
    # fields that cannot be matched to the names asked for are left out, never paired with the wrong name
    _fake_nvidia_smi(tmp_path, answer)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _nvidia_smi_info(0, None) == {}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "int8"}, "dtype 'int8' is not supported by device 'cuda'; supported: fp32, fp16, bf16"),
        ({"device_index": -1}, "device_index must be an integer >= 0; got -1"),
        ({"device_index": "0"}, "device_index must be an integer >= 0; got '0'"),
        ({"cuda_graphs": "yes"}, "cuda_graphs must be True or False; got 'yes'"),
        ({"threads": 0}, "threads must be an integer >= 1"),
    ],
)
def test_cuda_config_validation(kwargs, message):
    with pytest.raises(InvalidConfig, match=message):
        CUDADevice(**kwargs)


def test_cuda_settings_record_graphs_and_index():
    settings = CUDADevice(dtype="bf16", cuda_graphs=True, device_index=1).settings()
    assert settings["cuda_graphs"] is True
    assert settings["device_index"] == 1
    assert settings["dtype"] == "bf16"


# ------------------------------------------------------------- cuda: on a GPU
@needs_cuda
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("graphs", [False, True])
def test_cuda_runner_matches_cpu_and_measures(dtype, graphs, quick_timing):
    import torch

    from hwnas.devices._models import build_encoder, encoder_module, example_inputs
    from hwnas.devices.timing import measure

    device = create_device("cuda", dtype=dtype, cuda_graphs=graphs, vocab_size=100, max_positions=64)
    with device.prepare(ARCH, Shape(2, 16)) as runner:
        got = runner.output().numpy()
        assert (runner.export_s > 0) is graphs
        m = measure(runner, quick_timing)
        assert m.median_ms > 0
    module = encoder_module(build_encoder(ARCH, vocab_size=100, max_positions=64))
    with torch.inference_mode():
        expected = module(*example_inputs(2, 16, vocab_size=100)).numpy()
    assert np.max(np.abs(got - expected)) <= (5e-2 if dtype == "fp16" else 1e-2)
    fp = device.fingerprint()
    assert fp["gpu_name"] and fp["gpu_memory_bytes"] > 0 and fp["cuda"]


# ------------------------------------------------------- onnxruntime-cuda
@pytest.mark.skipif(ORT_CUDA_OK, reason="onnxruntime-gpu and a GPU are available here")
def test_ort_cuda_unavailable_reason_names_the_provider():
    ok, reason = ORTCUDADevice.is_available()
    assert not ok
    assert "CUDAExecutionProvider" in reason or "onnxruntime-gpu" in reason or "NVIDIA GPU" in reason


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "bf16"}, "dtype 'bf16' is not supported by device 'onnxruntime-cuda'; supported: fp32, fp16"),
        ({"device_index": -2}, "device_index must be an integer >= 0"),
    ],
)
def test_ort_cuda_config_validation(kwargs, message):
    with pytest.raises(InvalidConfig, match=message):
        ORTCUDADevice(**kwargs)


@pytest.fixture(scope="module")
def cpu_session():
    ort = pytest.importorskip("onnxruntime")
    from hwnas.devices.tensorrt import export_for_tensorrt

    onnx_bytes, feeds, reference = export_for_tensorrt(ARCH, Shape(2, 16), vocab_size=100, max_positions=64)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return onnx_bytes, session, feeds, reference


def test_iobinding_runner_binds_preallocated_output_and_matches(cpu_session, quick_timing):
    """The IOBinding runner of onnxruntime-cuda, bound to CPU memory: same code, runnable here."""
    from hwnas.devices.timing import measure

    _, session, feeds, reference = cpu_session
    with BoundORTRunner(session, feeds, device_type="cpu", device_id=0) as runner:
        # the dynamic "batch"/"sequence" output dims were resolved, so the output is pre-allocated
        assert "last_hidden_state" in runner._values
        assert runner._values["last_hidden_state"].shape() == [2, 16, 32]
        got = runner.output()
        assert np.max(np.abs(got - reference)) <= 1e-3
        m = measure(runner, quick_timing)
        assert m.median_ms > 0 and len(m.samples_ms) >= quick_timing.min_rounds
        assert runner.binding.get_outputs()[0].shape() == [2, 16, 32]


def test_iobinding_runner_falls_back_to_runtime_allocation_for_unknown_dims(cpu_session):
    """An output whose dims cannot be resolved from the inputs is left for ONNX Runtime to allocate."""
    _, session, feeds, reference = cpu_session
    runner = BoundORTRunner(session, {k: v for k, v in feeds.items()}, device_type="cpu")
    runner._values.pop("last_hidden_state")  # emulate the unresolved case on a fresh binding
    runner.binding.clear_binding_outputs()
    runner.binding.bind_output("last_hidden_state", "cpu", 0)
    assert np.max(np.abs(runner.output() - reference)) <= 1e-3
    runner.close()


def test_fp16_conversion_keeps_interface(cpu_session):
    onnx = pytest.importorskip("onnx")
    onnx_bytes, *_ = cpu_session
    model = onnx.load_from_string(to_fp16(onnx_bytes))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@needs_ort_cuda
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_ort_cuda_runner_on_gpu(dtype, quick_timing):
    from hwnas.devices.timing import measure

    device = create_device("onnxruntime-cuda", dtype=dtype, vocab_size=100, max_positions=64)
    with device.prepare(ARCH, Shape(2, 16)) as runner:
        assert runner.export_s > 0
        assert measure(runner, quick_timing).median_ms > 0
    assert device.fingerprint()["execution_provider"] == "CUDAExecutionProvider"


@needs_cuda
@pytest.mark.parametrize("graphs", [False, True])
def test_cuda_runs_an_exported_student_as_deployed(graphs, tmp_path, quick_timing):
    import torch
    from transformers import BertForSequenceClassification

    from hwnas.devices.timing import measure

    torch.manual_seed(0)
    BertForSequenceClassification(ARCH.to_bert_config(vocab_size=100, max_position_embeddings=64)).save_pretrained(tmp_path)
    device = create_device("cuda", cuda_graphs=graphs, vocab_size=100, max_positions=64)
    assert device.exported_kind() == "exported Hugging Face model (PyTorch, CUDA)"
    with device.prepare_exported(tmp_path, Shape(2, 16)) as runner:
        assert tuple(runner.output().shape) == (2, 2)  # logits of the two-label head
        assert measure(runner, quick_timing).median_ms > 0
