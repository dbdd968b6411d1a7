"""Elastic BERT: slices have the asked shapes, extraction equals the in-supernet forward."""

from __future__ import annotations

import pytest
import torch

from hwnas.errors import InvalidArchitecture
from hwnas.space import Architecture, SearchSpace
from hwnas.supernet.elastic import ElasticBert
from hwnas.supernet.teacher import load_teacher
from hwnas.supernet.train import space_warnings


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return load_teacher(str(tiny_teacher))


@pytest.fixture(scope="module")
def elastic(teacher, tiny_space):
    torch.manual_seed(0)
    m = ElasticBert(tiny_space.largest, teacher.config)
    m.init_from_teacher(teacher.model)
    with torch.no_grad():  # make every slice differ from a plain copy of the teacher
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _inputs(vocab: int, bsz: int = 3, seq: int = 12):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (bsz, seq), generator=g)
    mask = torch.ones(bsz, seq, dtype=torch.long)
    mask[1, 7:] = 0  # one padded row
    return ids, mask


@pytest.mark.parametrize("arch", [Architecture(1, 32, 2, 64), Architecture(2, 48, 4, 96), Architecture(2, 32, 4, 96), Architecture(1, 48, 2, 64)])
def test_slice_shapes_follow_a_standard_bert_config(elastic, arch):
    from transformers import BertModel

    state = elastic.slice_state_dict(arch)
    reference = BertModel(elastic.student_config(arch), add_pooling_layer=True).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items() if not k.endswith(("position_ids", "token_type_ids"))}
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    q = state["encoder.layer.0.attention.self.query.weight"]
    assert q.shape == (arch.hidden, arch.hidden)  # attention output width equals hidden, whatever the head count
    assert state["encoder.layer.0.intermediate.dense.weight"].shape == (arch.ffn, arch.hidden)
    assert sum(k.endswith("attention.self.query.weight") for k in state) == arch.layers


def test_forward_shapes_and_qkv(elastic, teacher):
    ids, mask = _inputs(teacher.config.vocab_size)
    arch = Architecture(2, 48, 4, 96)
    out = elastic(ids, mask, arch, return_qkv=True)
    assert out.last_hidden_state.shape == (3, 12, 48)
    assert [t.shape for t in out.qkv] == [(3, 12, 48)] * 3


@pytest.mark.parametrize("arch", [Architecture(1, 32, 2, 64), Architecture(2, 48, 4, 96), Architecture(2, 48, 2, 64)])
def test_extracted_student_equals_in_supernet_forward(elastic, teacher, arch):
    ids, mask = _inputs(teacher.config.vocab_size)
    student = elastic.extract(arch)
    assert student.config.hidden_size == arch.hidden and student.config.num_attention_heads == arch.heads
    assert student.config.num_hidden_layers == arch.layers and student.config.intermediate_size == arch.ffn
    with torch.no_grad():
        ours = elastic(ids, mask, arch).last_hidden_state
        theirs = student(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)


def test_head_count_changes_the_function_not_the_weights(elastic, teacher):
    ids, mask = _inputs(teacher.config.vocab_size)
    a2, a4 = Architecture(2, 48, 2, 96), Architecture(2, 48, 4, 96)
    s2, s4 = elastic.slice_state_dict(a2), elastic.slice_state_dict(a4)
    assert all(torch.equal(s2[k], s4[k]) for k in s2)
    with torch.no_grad():
        assert not torch.allclose(elastic(ids, mask, a2).last_hidden_state, elastic(ids, mask, a4).last_hidden_state)


def test_teacher_shaped_supernet_reproduces_the_teacher(teacher):
    cfg = teacher.config
    full = Architecture(cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size)
    m = ElasticBert(full, cfg)
    counts = m.init_from_teacher(teacher.model)
    assert counts["missing"] == 0 and counts["partial"] == 0
    ids, mask = _inputs(cfg.vocab_size)
    with torch.no_grad():
        ours = m.eval()(ids, mask, full).last_hidden_state
        theirs = teacher.model(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-5, rtol=0)


def test_space_beyond_the_teacher_is_warned_and_partly_initialised(teacher):
    big = SearchSpace(name="big", layers=(1, 3), hidden=(32, 96), heads=(2, 4), ffn=(64, 256))
    msgs = space_warnings(big, teacher.config)
    assert len(msgs) == 3 and any("hidden up to 96" in m for m in msgs)
    m = ElasticBert(big.largest, teacher.config)
    counts = m.init_from_teacher(teacher.model)
    assert counts["partial"] > 0 and counts["missing"] > 0  # layer 3 has no teacher layer
    t = teacher.model.state_dict()["encoder.layer.0.attention.self.query.weight"]
    assert torch.equal(m.layers[0].query.weight[:64, :64], t)


def test_architecture_larger_than_the_supernet_is_refused(elastic, teacher):
    ids, mask = _inputs(teacher.config.vocab_size)
    with pytest.raises(InvalidArchitecture, match="does not fit"):
        elastic(ids, mask, Architecture(3, 48, 4, 96))
