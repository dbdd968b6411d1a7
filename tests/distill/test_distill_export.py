"""distill() end to end on a tiny real teacher: exported Hugging Face and ONNX students reproduce the trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.data import embedded_path
from hwnas.distill.api import DistillConfig, distill, load_data
from hwnas.distill.data import encode
from hwnas.distill.export import ONNX_ATOL
from hwnas.distill.losses import LossConfig
from hwnas.distill.trainer import evaluate
from hwnas.errors import InvalidConfig


@pytest.fixture(scope="module")
def distilled(tiny_teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "s"
    config = DistillConfig(
        arch="layers=1,hidden=32,heads=2,ffn=64", task=str(embedded_path("sst2/train.tsv")),
        eval=str(embedded_path("sst2/dev.tsv")), teacher=str(tiny_teacher), limit=96, eval_limit=48,
        steps=6, teacher_steps=6, agnostic_steps=3, batch_size=8, max_len=32, timing="quick", checkpoint_every=3,
        losses=LossConfig(weights={"logits": 1.0, "hidden": 1.0, "attention": 1.0, "value_relation": 1.0, "mi_alpha": 0.1}),
    )
    stages = []
    report = distill(config, out, on_progress=lambda ev: stages.append(ev.stage))
    return config, out, report, stages


def test_report_and_files(distilled):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config, out, report, stages = distilled
    assert {"teacher", "agnostic", "distill"} <= set(stages)
    on_disk = json.loads((out / "report.json").read_text())
    assert report == on_disk  # what distill() returns is what it wrote
    assert on_disk["arch_key"] == "layers=1,hidden=32,heads=2,ffn=64"
    for name in ("config.json", "model.safetensors", "model.onnx", "tokenizer.json", "report.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists() and not (out / "agnostic" / "checkpoints").exists()
    assert on_disk["metric"] == "accuracy"
    # the scores are the exported student's and the fine-tuned teacher's accuracy on the evaluation rows, recomputed here
    train_data, eval_data, _ = load_data(config)
    eval_enc = encode(AutoTokenizer.from_pretrained(out), eval_data, config.max_len)
    for key, folder in (("student_score", out), ("teacher_score", on_disk["teacher"]["path"])):
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        assert on_disk[key] == pytest.approx(evaluate(model, eval_enc, train_data.kind)["accuracy"]), key
    assert on_disk["retained"] == pytest.approx(on_disk["student_score"] / on_disk["teacher_score"])
    assert "sliced from the teacher" in on_disk["init"]
    m = on_disk["measured_latency"]
    assert m["student"]["latency_ms"] > 0 and m["teacher"]["latency_ms"] > 0
    # measured where it runs: the exported model on the (default) cpu device, next to its profiled encoder
    assert (m["device"], m["seq_len"], m["batch_size"], m["threads"], m["dtype"], m["clock"]) == \
        ("cpu", 128, 1, 1, "fp32", "wall")
    assert m["student"]["measured"].startswith("exported Hugging Face model")
    assert m["student_encoder"]["latency_ms"] > 0
    assert m["deployed_vs_profiled"] == pytest.approx(m["student"]["latency_ms"] / m["student_encoder"]["latency_ms"])
    assert m["speedup"] == pytest.approx(m["teacher"]["latency_ms"] / m["student_encoder"]["latency_ms"])
    assert m["drift"]["reference_arch"] is None  # no predictor given: no reference to compare with
    assert on_disk["exports"]["onnx"]["max_abs_diff"] <= ONNX_ATOL
    assert on_disk["parameters"] > 0 and on_disk["teacher"]["parameters"] > on_disk["parameters"]


def test_exported_students_agree_with_the_trained_model(distilled):
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, out, _, _ = distilled
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    texts = ["a gripping , beautifully acted film", "dull", "neither good nor bad , just long and forgettable in every way"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch_logits = model(**enc).logits.numpy()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {k: enc[k].numpy() for k in ("input_ids", "attention_mask", "token_type_ids")})[0]
    assert onnx_logits.shape == (3, 2)
    assert np.abs(onnx_logits - torch_logits).max() <= ONNX_ATOL
    assert model.config.id2label == {0: "0", 1: "1"}


def test_finished_folder_is_reused_and_other_settings_refused(distilled):
    config, out, _, _ = distilled
    from dataclasses import replace

    again = distill(config, out)
    assert again == json.loads((out / "report.json").read_text())
    with pytest.raises(InvalidConfig, match="holds a distillation with other settings \\(changed: steps\\)"):
        distill(replace(config, steps=7), out)
    assert (out / "model.onnx").is_file()  # nothing was lost


def test_teacher_is_cached_between_students(distilled, tmp_path):
    config, out, report, _ = distilled
    from dataclasses import replace

    stages = []
    second = distill(replace(config, arch="layers=1,hidden=16,heads=2,ffn=32", agnostic_steps=0, measure=False,
                             cache_dir=str(out.parent / "teachers")), tmp_path / "s2",
                     on_progress=lambda ev: stages.append(ev.stage))
    assert "teacher" not in stages and second["teacher"]["reused"] is True
    assert second["teacher"]["path"] == report["teacher"]["path"]
    assert second["measured_latency"] is None


def test_measure_models_clocks(distilled):
    from transformers import AutoModelForSequenceClassification

    from hwnas.devices.timing import TimingConfig
    from hwnas.distill.export import measure_models

    _, out, _, _ = distilled
    model = AutoModelForSequenceClassification.from_pretrained(out)
    for clock in ("wall", "thread_cpu"):
        lat = measure_models({"s": model}, seq_len=16, timing=TimingConfig.quick(), clock=clock)["s"]
        assert lat["clock"] == clock and lat["latency_ms"] > 0 and lat["seq_len"] == 16
    with pytest.raises(InvalidConfig, match="needs threads=1"):
        measure_models({"s": model}, threads=2, clock="thread_cpu")
    with pytest.raises(InvalidConfig, match="clock must be one of wall, thread_cpu"):
        measure_models({"s": model}, clock="cycles")


def test_onnx_export_check_with_fewer_than_three_texts(distilled, tmp_path):
    # the check runs the padded batch and up to three single examples: one or two texts (with or without pairs) is enough
    import shutil

    from hwnas.distill.export import export_onnx_classifier

    _, out, _, _ = distilled
    folder = shutil.copytree(out, tmp_path / "copy")
    single = export_onnx_classifier(folder, ["a fine film", "dull"], max_len=32, filename="two.onnx")
    paired = export_onnx_classifier(folder, ["a fine film"], ["it was"], max_len=32, filename="pair.onnx")
    for check in (single, paired):
        assert check.max_abs_diff <= ONNX_ATOL
    assert (single.examples, paired.examples) == (2, 1)
