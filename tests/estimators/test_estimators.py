"""What each estimator computes, beyond the shared contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.errors import InvalidConfig, InvalidData
from hwnas.estimators import make_estimator
from hwnas.estimators.baselines import encoder_flops
from hwnas.space import Architecture


def test_params_count_the_bert_model_exactly(est_teacher):
    from transformers import BertModel

    arch = Architecture(2, 48, 4, 96)
    model = BertModel(arch.to_bert_config(), add_pooling_layer=False)
    assert make_estimator("params").score([arch])[0] == sum(p.numel() for p in model.parameters())


def test_flops_grow_with_every_dimension_but_heads():
    base = Architecture(2, 64, 2, 128)
    f = encoder_flops(base)
    assert encoder_flops(Architecture(3, 64, 2, 128)) > f
    assert encoder_flops(Architecture(2, 128, 2, 128)) > f
    assert encoder_flops(Architecture(2, 64, 2, 256)) > f
    assert encoder_flops(Architecture(2, 64, 4, 128)) == f  # same matrix products, re-split into heads
    assert encoder_flops(base, seq_len=256) > 2 * f  # the attention term is quadratic in length


def test_teacher_slices_are_the_teacher_for_its_own_shape(est_teacher):
    """The zero-cost proxies see what hwnas distill --init teacher starts from: the full shape is the teacher."""
    import torch
    from transformers import AutoModel

    from hwnas.estimators._encoders import EncoderSource

    src = EncoderSource(teacher=str(est_teacher))
    model = src.encoder(Architecture(2, 64, 4, 128))
    teacher = AutoModel.from_pretrained(str(est_teacher)).eval()
    ids = torch.tensor([[2, 5, 9, 12, 3]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).last_hidden_state, teacher(input_ids=ids).last_hidden_state)


def test_attention_confidence_counts_heads_and_layers(est_teacher):
    est = make_estimator("attn-confidence", teacher=str(est_teacher), rows=8, max_len=16)
    one, two = est.score([Architecture(1, 32, 2, 64), Architecture(2, 32, 2, 64)])
    # a summed max attention weight: each head contributes at most 1 and more than 1/seq_len
    assert 2 / 16 < one <= 2.0 and one < two <= 4.0


def test_wpca_components_are_bounded_by_the_ffn_width(est_teacher):
    est = make_estimator("wpca", teacher=str(est_teacher), rows=8, max_len=16)
    arch = Architecture(2, 32, 2, 64)
    components = np.exp(est.score([arch])[0]) / arch.num_parameters()
    assert 2 <= round(components) <= 2 * 64  # at least one and at most ffn components per layer
    with pytest.raises(InvalidConfig, match="eta"):
        make_estimator("wpca", teacher=str(est_teacher), eta=1.5)


def test_task_proxy_caches_on_disk_and_a_second_process_pays_nothing(est_teacher, est_task, tmp_path, monkeypatch):
    cache = tmp_path / "tp.json"
    opts = dict(task=str(est_task), teacher=str(est_teacher), steps=2, batch_size=4, train_rows=48, eval_rows=16,
                max_len=16, cache=str(cache))
    first = make_estimator("task-proxy", **opts)
    scores = first.score([Architecture(1, 32, 2, 64), Architecture(2, 48, 4, 96)])
    assert np.all((scores >= 0) & (scores <= 1))
    stored = json.loads(cache.read_text())
    assert set(stored["scores"]) == {"layers=1,hidden=32,heads=2,ffn=64", "layers=2,hidden=48,heads=4,ffn=96"}

    from hwnas.estimators.task_proxy import FewStepTask

    def no_training(self, arch):
        raise AssertionError(f"{arch} was trained again despite the cache")

    monkeypatch.setattr(FewStepTask, "_train_and_score", no_training)
    second = make_estimator("task-proxy", **opts)
    np.testing.assert_array_equal(second.score([Architecture(2, 48, 4, 96), Architecture(1, 32, 2, 64)]), scores[::-1])
    # other settings are another signature: the cached scores do not apply
    other = make_estimator("task-proxy", **{**opts, "steps": 3})
    assert other.signature != second.signature
    with pytest.raises(AssertionError, match="trained again"):
        other.score([Architecture(1, 32, 2, 64)])


def test_task_proxy_learns_a_learnable_task(est_teacher, est_task, tmp_path):
    """Trained long enough on a task a word decides, the proxy beats the majority class clearly."""
    from hwnas.distill.data import load_task

    est = make_estimator("task-proxy", task=str(est_task), teacher=str(est_teacher), steps=60, batch_size=8,
                         lr=3e-3, train_rows=64, eval_rows=32, max_len=16, cache=False)
    held = load_task(est_task, limit=96).labels[64:96]
    majority = max(np.mean(np.asarray(held) == c) for c in set(held))
    assert est.score([Architecture(2, 64, 4, 128)])[0] > majority + 0.1


def test_task_proxy_bad_input(est_teacher, est_task, tmp_path):
    with pytest.raises(InvalidData, match="has 96 rows"):
        make_estimator("task-proxy", task=str(est_task), teacher=str(est_teacher), train_rows=90, eval_rows=20)
    with pytest.raises(InvalidData, match="does not exist"):
        make_estimator("task-proxy", task=str(tmp_path / "missing.tsv"))
    with pytest.raises(InvalidConfig, match="steps must be an integer >= 1"):
        make_estimator("task-proxy", task=str(est_task), teacher=str(est_teacher), steps=0)


def test_the_default_teacher_gives_slices_to_the_zero_cost_proxies():
    """The shipped teacher's checkpoint carries index buffers (position_ids) a sliced student must tolerate."""
    est = make_estimator("attn-confidence", teacher="default", rows=4, max_len=12)
    scores = est.score([Architecture(1, 128, 2, 256), Architecture(2, 128, 2, 256)])
    assert np.all(np.isfinite(scores)) and scores[1] > scores[0]
