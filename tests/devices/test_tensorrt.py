"""``tensorrt``: the ONNX half runs for real on ONNX Runtime (CPU); engine tests need TensorRT and a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.devices.base import Shape
from hwnas.devices.registry import create_device, get_device_class
from hwnas.devices.tensorrt import (
    ATOL_FP16,
    INPUT_NAMES,
    OUTPUT_NAMES,
    TensorRTDevice,
    export_for_tensorrt,
    profile_shapes,
)
from hwnas.errors import DeviceUnavailable, InvalidConfig
from hwnas.space import Architecture

ARCH = Architecture(layers=1, hidden=32, heads=2, ffn=64)
AVAILABLE, REASON = TensorRTDevice.is_available()
needs_tensorrt = pytest.mark.skipif(not AVAILABLE, reason=f"tensorrt engine tests need TensorRT and a GPU: {REASON}")


def test_registered_under_its_name():
    assert get_device_class("tensorrt") is TensorRTDevice


@pytest.mark.skipif(AVAILABLE, reason="TensorRT is available here")
def test_unavailable_reason_names_what_is_missing():
    ok, reason = TensorRTDevice.is_available()
    assert not ok
    assert "tensorrt" in reason or "CUDA" in reason
    with pytest.raises(DeviceUnavailable, match="device 'tensorrt' is not available here"):
        create_device("tensorrt")


def test_profile_is_pinned_to_the_measured_shape():
    shapes = profile_shapes(Shape(4, 96))
    assert set(shapes) == set(INPUT_NAMES)
    for lo, opt, hi in shapes.values():
        assert lo == opt == hi == (4, 96)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "bf16"}, "dtype 'bf16' is not supported by device 'tensorrt'"),
        ({"dtype": "int8"}, "supported: fp32, fp16"),
        ({"device_index": -1}, "device_index must be an integer >= 0"),
        ({"device_index": True}, "device_index must be an integer >= 0"),
        ({"workspace_gib": 0}, "workspace_gib must be a positive number"),
        ({"workspace_gib": "4"}, "workspace_gib must be a positive number"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(InvalidConfig, match=message):
        TensorRTDevice(**kwargs)


def test_settings_record_profile_and_typing():
    settings = TensorRTDevice(dtype="fp16", workspace_gib=2).settings()
    assert settings["dtype"] == "fp16"
    assert settings["workspace_gib"] == 2
    assert settings["typing"] == "strong"


def test_export_rejects_unknown_dtype():
    with pytest.raises(InvalidConfig, match="'fp32' or 'fp16'"):
        export_for_tensorrt(ARCH, Shape(1, 8), dtype="bf16", vocab_size=100, max_positions=64)


@pytest.fixture(scope="module")
def fp32_export():
    pytest.importorskip("onnxruntime")
    return export_for_tensorrt(ARCH, Shape(2, 16), vocab_size=100, max_positions=64)


def test_onnx_half_fp32_matches_pytorch_on_onnxruntime(fp32_export):
    import onnxruntime as ort

    onnx_bytes, feeds, reference = fp32_export
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == INPUT_NAMES
    assert [o.name for o in session.get_outputs()] == OUTPUT_NAMES
    assert feeds["input_ids"].dtype == np.int64 and feeds["input_ids"].shape == (2, 16)
    got = session.run(None, feeds)[0]
    assert got.shape == reference.shape == (2, 16, 32)
    assert np.max(np.abs(got - reference)) <= 1e-3


def test_onnx_half_has_dynamic_axes_for_other_profiles(fp32_export):
    """The same ONNX serves any batch/sequence: TensorRT's profile, not the export, fixes the shape."""
    import onnxruntime as ort
    import torch

    from hwnas.devices._models import build_encoder, encoder_module, example_inputs

    onnx_bytes, _, _ = fp32_export
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    ids, mask = example_inputs(3, 24, vocab_size=100, seed=5)
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    module = encoder_module(build_encoder(ARCH, vocab_size=100, max_positions=64, seed=0))
    with torch.inference_mode():
        expected = module(ids, mask).numpy()
    assert got.shape == (3, 24, 32)
    assert np.max(np.abs(got - expected)) <= 1e-3


def test_onnx_half_fp16_graph_keeps_io_types_and_accuracy():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    onnx_bytes, feeds, reference = export_for_tensorrt(ARCH, Shape(2, 16), dtype="fp16", vocab_size=100,
                                                       max_positions=64)
    model = onnx.load_from_string(onnx_bytes)
    onnx.checker.check_model(model)
    float_inits = {i.data_type for i in model.graph.initializer
                   if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    assert float_inits == {onnx.TensorProto.FLOAT16}, "weights must be fp16 in the fp16 graph"
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.INT64] * 2
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    got = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    diff = float(np.max(np.abs(got - reference)))
    assert 0 < diff <= ATOL_FP16, f"fp16 graph differs from fp32 PyTorch by {diff}"


@needs_tensorrt
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_engine_builds_runs_and_matches_pytorch(dtype, quick_timing):
    from hwnas.devices.timing import measure

    device = create_device("tensorrt", dtype=dtype)
    with device.prepare(ARCH, Shape(2, 16)) as runner:
        assert runner.export_s > 0
        assert runner.engine_bytes > 0
        assert runner.max_abs_diff <= (ATOL_FP16 if dtype == "fp16" else 1e-2)
        m = measure(runner, quick_timing)
        assert m.median_ms > 0
    fp = device.fingerprint()
    assert fp["tensorrt"] and fp["gpu_name"]
