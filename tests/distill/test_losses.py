"""Each loss component against values computed by hand, and gradients reaching every trainable part."""

from __future__ import annotations

import math

import pytest
import torch

from hwnas.distill.losses import (
    LOSSES,
    DistillLoss,
    LossConfig,
    ModelShape,
    attention_kl,
    hidden_mse,
    kd_logits,
    layer_map,
    mi_alpha_bound,
    relation_heads_for,
    value_relation_kl,
)
from hwnas.distill.models import forward_outputs
from hwnas.errors import InvalidConfig
from hwnas.space import Architecture


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def _softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_logits_matches_hand_value_and_scales_by_t_squared(temperature):
    student = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0], [0.0, 2.0]])
    expected = 0.0
    for s, t in zip(student.tolist(), teacher.tolist(), strict=True):
        expected += _kl(_softmax([x / temperature for x in t]), _softmax([x / temperature for x in s]))
    expected = expected / 2 * temperature**2
    assert kd_logits(student, teacher, temperature).item() == pytest.approx(expected, rel=1e-5)
    # the first row alone at T=1: 0.75 ln 1.5 + 0.25 ln 0.5
    assert kd_logits(student[:1], teacher[:1], 1.0).item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-5)


def test_kd_logits_is_zero_for_equal_logits():
    x = torch.randn(4, 3)
    assert kd_logits(x, x.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_hidden_mse_ignores_padding():
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    teacher = torch.zeros(1, 2, 2)
    assert hidden_mse(student, teacher, torch.tensor([[1, 0]])).item() == pytest.approx((1 + 4) / 2)
    assert hidden_mse(student, teacher, torch.tensor([[1, 1]])).item() == pytest.approx((1 + 4 + 9 + 16) / 4)


def test_attention_kl_hand_value():
    teacher = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    student = torch.full((1, 1, 2, 2), 0.5)
    # row 0: 1 * ln(1 / 0.5); row 1: 0
    assert attention_kl(student, teacher, torch.tensor([[1, 1]])).item() == pytest.approx(math.log(2) / 2, rel=1e-5)
    # only the second query is real: KL 0
    assert attention_kl(student, teacher, torch.tensor([[0, 1]])).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_kl_averages_heads_when_counts_differ():
    teacher = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]]])  # 2 heads, mean: uniform rows
    student = torch.full((1, 1, 2, 2), 0.5)
    assert attention_kl(student, teacher, torch.ones(1, 2)).item() == pytest.approx(0.0, abs=1e-6)


def test_value_relation_hand_value():
    teacher = torch.tensor([[[1.0], [0.0]]])  # relations [[1, 0], [0, 0]] / sqrt(1)
    student = torch.zeros(1, 2, 1)  # uniform relations
    p = math.e / (math.e + 1)
    row0 = _kl([p, 1 - p], [0.5, 0.5])
    assert value_relation_kl(student, teacher, torch.ones(1, 2), heads=1).item() == pytest.approx(row0 / 2, rel=1e-5)


def test_value_relation_masks_padding_keys():
    teacher = torch.tensor([[[1.0], [0.0], [5.0]]])
    student = torch.tensor([[[1.0], [0.0], [-7.0]]])
    # the third token is padding: as a key it must not matter, as a query it is not counted
    assert value_relation_kl(student, teacher, torch.tensor([[1, 1, 0]]), heads=1).item() == pytest.approx(0.0, abs=1e-6)


def _mi_by_definition(scores, alpha, log_baseline=0.0):
    n = len(scores)

    def b(i, j):
        loo = sum(math.exp(scores[i][k]) for k in range(n) if k != j) / (n - 1)
        return math.log(alpha * loo + (1 - alpha) * math.exp(log_baseline))

    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    joint = sum(scores[i][i] - b(i, j) for i, j in pairs) / len(pairs)
    marginal = sum(math.exp(scores[i][j] - b(i, i)) for i, j in pairs) / len(pairs)
    return 1 + joint - marginal


def test_mi_alpha_nwj_case_by_hand():
    a, b, c, d = 0.3, -0.2, 0.5, 1.1
    expected = 1 + (a + d) / 2 - (math.exp(b) + math.exp(c)) / 2  # NWJ with a zero baseline
    got = mi_alpha_bound(torch.tensor([[a, b], [c, d]]), alpha=0.0).item()
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 0.99, 1.0])
def test_mi_alpha_matches_definition(alpha):
    torch.manual_seed(0)
    scores = torch.randn(4, 4) * 2
    assert mi_alpha_bound(scores, alpha).item() == pytest.approx(_mi_by_definition(scores.tolist(), alpha), rel=1e-4, abs=1e-5)


def test_mi_alpha_is_higher_for_dependent_pairs():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(16, 8), dim=-1)
    matched = mi_alpha_bound((x @ x.T) / 0.2, 0.5)
    shuffled = mi_alpha_bound((x @ x[torch.randperm(16)].T) / 0.2, 0.5)
    assert matched.item() > shuffled.item()


def test_mi_alpha_rejects_batch_of_one():
    with pytest.raises(InvalidConfig, match="at least 2"):
        mi_alpha_bound(torch.zeros(1, 1), 0.5)


def test_layer_map_pairs_last_layers():
    assert layer_map(2, 6) == [(1, 3), (2, 6)]
    assert layer_map(3, 6) == [(1, 2), (2, 4), (3, 6)]
    assert layer_map(6, 6)[-1] == (6, 6)
    assert layer_map(4, 2) == [(1, 1), (2, 1), (3, 2), (4, 2)]


def test_relation_heads():
    assert relation_heads_for(384, 256) == 8
    assert relation_heads_for(384, 96) == 12
    with pytest.raises(InvalidConfig, match="relation_heads must divide"):
        relation_heads_for(384, 100, 8)


def _tiny(arch, seed):
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    model = BertForSequenceClassification(arch.to_bert_config(vocab_size=50, max_position_embeddings=16, num_labels=2))
    model.set_attn_implementation("eager")
    return model


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_gives_gradients_to_student_and_own_parameters(name):
    teacher = _tiny(Architecture(2, 32, 4, 64), 0).eval()
    student = _tiny(Architecture(1, 16, 2, 32), 1).train()
    config = LossConfig(weights={name: 1.0})
    loss = DistillLoss(config, ModelShape(1, 16, 2), ModelShape(2, 32, 4), "classification")
    batch = {"input_ids": torch.randint(0, 50, (4, 6)), "attention_mask": torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 6, [1] * 3 + [0] * 3]),
             "token_type_ids": torch.zeros(4, 6, dtype=torch.long)}
    needs = config.needs() - {"teacher"}
    with torch.no_grad():
        t_out = forward_outputs(teacher, batch, needs)
    s_out = forward_outputs(student, batch, needs)
    total, parts = loss(s_out, t_out, torch.tensor([0, 1, 1, 0]))
    assert torch.isfinite(total) and set(parts) == {name}
    total.backward()
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    for p in loss.parameters():  # projections and critics learn too
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_regression_losses():
    config = LossConfig(weights={"task": 1.0, "logits": 1.0})
    loss = DistillLoss(config, ModelShape(1, 16, 2), ModelShape(1, 16, 2), "regression")
    from hwnas.distill.losses import ModelOutputs

    s = ModelOutputs(torch.tensor([[1.0], [2.0]]), None, None, None, torch.ones(2, 3))
    t = ModelOutputs(torch.tensor([[0.0], [2.0]]), None, None, None, torch.ones(2, 3))
    total, parts = loss(s, t, torch.tensor([1.0, 0.0]))
    assert parts["task"] == pytest.approx((0 + 4) / 2)
    assert parts["logits"] == pytest.approx(1 / 2)
    assert total.item() == pytest.approx(2.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weights": {"logit": 1.0}}, "unknown loss 'logit'"),
        ({"weights": {"logits": -1.0}}, "must be a finite number >= 0"),
        ({"weights": {"logits": 0.0}}, "at least one loss weight"),
        ({"weights": {}}, "mapping of loss name"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"mi_temperature": -1}, "mi_temperature must be > 0"),
        ({"relation_heads": 0}, "relation_heads must be an integer"),
    ],
)
def test_loss_config_validation(kwargs, message):
    with pytest.raises(InvalidConfig, match=message):
        LossConfig(**kwargs)


def test_loss_config_files(tmp_path):
    f = tmp_path / "losses.yaml"
    f.write_text("weights: {logits: 1, mi_alpha: 0.5}\ntemperature: 3\nalpha: 0.2\n")
    c = LossConfig.parse(str(f))
    assert c.weights == {"logits": 1.0, "mi_alpha": 0.5} and c.temperature == 3 and c.alpha == 0.2
    j = tmp_path / "losses.json"
    j.write_text('{"weights": {"hidden": 2}, "temprature": 1}')
    with pytest.raises(InvalidConfig, match="unknown keys \\['temprature'\\]"):
        LossConfig.from_file(j)
    assert LossConfig.parse("logits=1,hidden=0.5").weights == {"logits": 1.0, "hidden": 0.5}
    with pytest.raises(InvalidConfig, match="cannot read loss weight"):
        LossConfig.parse("logits=abc")
