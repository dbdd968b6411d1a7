"""The pieces supernet training and distillation share (hwnas.training) and the file layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas._files import atomic_write_text, sha256_file
from hwnas.errors import InvalidConfig
from hwnas.training import epoch_batch, linear_warmup_decay, relation_heads, relation_kl, relation_log_probs


def _old_supernet_batch_rows(n, batch_size, seed, step):
    """The supernet loop's batch order before it moved to hwnas.training (checkpoints written then must resume
    onto the same batches)."""
    start, out = step * batch_size, []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), n)
        perm = np.random.default_rng([seed, epoch, 11]).permutation(n)
        out.extend(perm[offset: offset + min(batch_size - len(out), n - offset)].tolist())
    return out


@pytest.mark.parametrize("n,bs", [(10, 4), (7, 7), (5, 12)])
def test_epoch_batch_keeps_the_supernet_order_of_earlier_releases(n, bs):
    for step in range(6):
        assert epoch_batch(n, bs, step, 3, salt=(11,)).tolist() == _old_supernet_batch_rows(n, bs, 3, step)


def test_every_epoch_is_a_permutation_and_salt_separates_loops():
    rows = np.concatenate([epoch_batch(12, 4, s, 0) for s in range(3)])
    assert sorted(rows.tolist()) == list(range(12))
    assert epoch_batch(12, 4, 0, 0).tolist() != epoch_batch(12, 4, 0, 0, salt=(11,)).tolist()


def test_linear_warmup_then_decay_to_zero():
    lr = [linear_warmup_decay(s, peak=1.0, warmup_steps=10, total_steps=100) for s in range(100)]
    assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)
    assert lr[10] == pytest.approx(1.0) and lr[99] == pytest.approx(1 / 90)
    assert all(a >= b for a, b in zip(lr[9:], lr[10:], strict=False))


def test_one_rule_for_relation_heads():
    assert relation_heads([384, 256]) == 8          # the largest R <= 12 dividing both
    assert relation_heads([384, 96]) == 12
    assert relation_heads([384, 288, 192], cap=12) == 12
    assert relation_heads([64, 48], cap=4) == 4      # capped by the teacher's heads
    assert relation_heads([384, 100], requested=4) == 4
    with pytest.raises(InvalidConfig, match=r"relation_heads=8 does not divide \[100\]"):
        relation_heads([384, 100], requested=8)
    # distillation's value relation follows the same rule, capped by the teacher's heads as the supernet's is
    from hwnas.distill.losses import relation_heads_for

    assert relation_heads_for(64, 32, teacher_heads=4) == relation_heads([64, 32], cap=4) == 4
    assert relation_heads_for(384, 256) == relation_heads([384, 256], cap=12) == 8


def test_relation_kl_is_zero_for_identical_relations_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    lx = relation_log_probs(x, 2, mask)
    assert relation_kl(lx, lx, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert relation_kl(lx, relation_log_probs(y, 2, mask), mask).item() > 0.01
    # padding keys get no probability
    assert torch.exp(lx[1, :, :, 3:]).max().item() < 1e-6


def test_the_value_relation_loss_of_distillation_is_the_shared_relation_kl():
    from hwnas.distill.losses import value_relation_kl

    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(2, 6, 8, generator=g), torch.randn(2, 6, 12, generator=g)
    mask = torch.ones(2, 6)
    expected = relation_kl(relation_log_probs(t, 4, mask), relation_log_probs(s, 4, mask), mask)
    assert value_relation_kl(s, t, mask, 4).item() == pytest.approx(expected.item(), rel=1e-6)


def test_atomic_write_replaces_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "f.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new content")
    assert target.read_text() == "new content"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]
    import hashlib

    assert sha256_file(target) == hashlib.sha256(b"new content").hexdigest()
