"""The contract every registered loss component keeps (parametrised over the registry, tiny real models)."""

from __future__ import annotations

import pytest
import torch

from hwnas.distill.losses import LOSSES, LossComponent, LossConfig
from hwnas.distill.models import forward_outputs, model_shape, set_attention
from hwnas.errors import InvalidConfig

#: Losses that measure a distance to the teacher: zero when the student is the teacher.
DISTANCES = {"logits", "hidden", "attention", "value_relation"}


def _model(seed, layers=2, hidden=32, heads=4):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=2 * hidden, max_position_embeddings=16, num_labels=2)
    model = BertForSequenceClassification(cfg).eval()
    set_attention(model, "eager")
    return model


def _batch():
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(4, 7, dtype=torch.long)
    mask[2, 5:] = 0
    return {"input_ids": torch.randint(1, 50, (4, 7), generator=g), "attention_mask": mask,
            "token_type_ids": torch.zeros(4, 7, dtype=torch.long), "labels": torch.tensor([0, 1, 1, 0])}


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_is_a_finite_differentiable_scalar(name):
    cls = LOSSES[name]
    assert issubclass(cls, LossComponent) and cls.name == name
    student, teacher = _model(0, layers=1, hidden=24, heads=2), _model(1)
    comp = cls(LossConfig(weights={name: 1.0}), model_shape(student), model_shape(teacher), "classification")
    needs = set(cls.needs) - {"teacher"}
    batch = _batch()
    s_out = forward_outputs(student, batch, needs)
    with torch.no_grad():
        t_out = forward_outputs(teacher, batch, needs) if "teacher" in cls.needs else None
    value = comp(s_out, t_out, batch["labels"])
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("name", sorted(DISTANCES))
def test_distance_losses_vanish_when_the_student_is_the_teacher(name):
    model = _model(2)
    comp = LOSSES[name](LossConfig(weights={name: 1.0}), model_shape(model), model_shape(model), "classification")
    needs = set(LOSSES[name].needs) - {"teacher"}
    batch = _batch()
    with torch.no_grad():
        out = forward_outputs(model, batch, needs)
        assert float(comp(out, out, batch["labels"])) == pytest.approx(0.0, abs=1e-5)


def test_the_loss_base_class_cannot_be_used_without_forward():
    class Incomplete(LossComponent):
        name = "incomplete"

    model = _model(0)
    with pytest.raises(TypeError):
        Incomplete(LossConfig(), model_shape(model), model_shape(model), "classification")


def test_a_duplicate_loss_name_is_refused():
    from hwnas.distill.losses import register_loss

    class Again(LossComponent):
        name = "logits"

        def forward(self, student, teacher, labels):
            return student.logits.sum()

    with pytest.raises(InvalidConfig, match="already registered"):
        register_loss(Again)
