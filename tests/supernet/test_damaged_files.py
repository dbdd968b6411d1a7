"""Damaged supernet files: a torn or foreign teacher-cache file is recomputed, damaged weights are one clear error."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from hwnas.errors import InvalidConfig
from hwnas.supernet import load_supernet
from hwnas.supernet.train import TrainConfig, train_supernet


def _train(out, teacher, space, corpus, cache):
    return train_supernet(TrainConfig(space=space, out=str(out), teacher=str(teacher), data=str(corpus), steps=2,
                                      batch_size=4, seq_len=16, lr=3e-3, heldout=8, checkpoint_every=2, threads=1,
                                      teacher_cache=str(cache)))


def test_a_torn_or_foreign_teacher_cache_file_is_recomputed(tmp_path, tiny_teacher, tiny_space, corpus):
    cache = tmp_path / "qkv"
    first = _train(tmp_path / "a", tiny_teacher, tiny_space, corpus, cache)
    files = sorted(cache.glob("*/step-*.safetensors"))
    assert len(files) == 2
    # copies: load_file maps the file, and damaging it in place below would pull the pages from under the tensors
    kept = [{k: v.clone() for k, v in load_file(str(f)).items()} for f in files]
    torn = files[0].read_bytes()
    files[0].write_bytes(torn[: len(torn) // 2])  # a run killed while writing
    save_file({"x": torch.zeros(1)}, str(files[1]))  # readable, but not a q/k/v record
    second = _train(tmp_path / "b", tiny_teacher, tiny_space, corpus, cache)
    # the same data and seed: the recomputed teacher targets give the same losses, and the cache is whole again
    assert [e["mean"] for e in second.losses] == pytest.approx([e["mean"] for e in first.losses])
    for f, before in zip(files, kept, strict=True):
        again = load_file(str(f))
        assert again.keys() == before.keys() and all(torch.equal(again[k], before[k]) for k in before)


def test_damaged_weights_are_one_clear_error(tmp_path, tiny_teacher, tiny_space, corpus):
    out = tmp_path / "sn"
    _train(out, tiny_teacher, tiny_space, corpus, tmp_path / "qkv")
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidConfig, match="does not match the checksum in supernet.json"):
        load_supernet(out)
    with pytest.raises(InvalidConfig, match=r"is damaged and cannot be read \(SafetensorError\)"):
        load_supernet(out, verify=False)
