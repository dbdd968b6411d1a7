"""The estimator interface: one score per architecture, higher is better, cached."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.errors import InvalidArchitecture, InvalidConfig
from hwnas.space import Architecture
from hwnas.supernet import load_supernet
from hwnas.supernet.estimate import SupernetEstimator
from hwnas.supernet.train import TrainConfig, train_supernet


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_teacher, tiny_space, corpus):
    out = tmp_path_factory.mktemp("est") / "sn"
    train_supernet(TrainConfig(space=tiny_space, out=str(out), teacher=str(tiny_teacher), data=str(corpus), steps=3,
                               batch_size=4, seq_len=16, heldout=8, threads=1))
    return load_supernet(out)


def test_loss_scores_one_per_architecture(trained, tiny_space):
    archs = tiny_space.enumerate()[:5]
    est = SupernetEstimator(trained, "loss", cache=False)
    scores = est.score(archs)
    assert scores.shape == (5,) and scores.dtype == np.float64
    assert np.all(scores < 0)  # minus a KL divergence
    as_array = est.score(np.array([a.as_tuple() for a in archs]))
    assert np.array_equal(scores, as_array)
    assert np.array_equal(est.heldout_loss(archs), -scores)
    assert est.name == "supernet-loss:t@3"
    # a larger sub-network imitates the teacher better than the smallest one
    big, small = est.heldout_loss([tiny_space.largest, tiny_space.smallest])
    assert big < small


def test_proxy_scores_are_accuracies(trained, tiny_space):
    est = SupernetEstimator(trained, "proxy", cache=False, proxy_train_rows=80, proxy_eval_rows=40)
    scores = est.score([tiny_space.smallest, tiny_space.largest])
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    assert np.all(scores * 40 == np.round(scores * 40))  # a share of the 40 evaluation sentences


def test_scores_are_cached_in_memory_and_on_disk(trained, tiny_space, tmp_path):
    cache = tmp_path / "scores.json"
    archs = [tiny_space.smallest, tiny_space.largest]
    first = SupernetEstimator(trained, "loss", cache=cache)
    s1 = first.score(archs)
    assert cache.is_file()
    second = SupernetEstimator(trained, "loss", cache=cache)
    s2 = second.score(list(reversed(archs)))
    assert np.array_equal(s2, s1[::-1])
    assert not second._prepared  # answered from the file: the teacher was never run


def test_estimator_rejects_bad_input(trained):
    est = SupernetEstimator(trained, "loss", cache=False)
    with pytest.raises(InvalidArchitecture, match="outside space 't'"):
        est.score([Architecture(2, 64, 4, 96)])
    with pytest.raises(InvalidArchitecture, match="n x 4"):
        est.score(np.zeros((2, 3), dtype=int))
    with pytest.raises(InvalidConfig, match="metric must be one of loss, proxy"):
        SupernetEstimator(trained, "accuracy")
