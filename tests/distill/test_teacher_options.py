"""Teacher fine-tuning options of hwnas distill: a seed of its own, and keeping the best evaluation."""

from __future__ import annotations

import pytest

from hwnas.distill.api import DistillConfig, teacher_train_config
from hwnas.errors import InvalidConfig


def _config(**kw):
    return DistillConfig(arch="layers=1,hidden=32,heads=2,ffn=64", task="unused.tsv", **kw)


def test_the_teacher_follows_the_student_seed_unless_given_its_own():
    assert teacher_train_config(_config(seed=3)).seed == 3
    assert teacher_train_config(_config(seed=3, teacher_seed=0)).seed == 0
    # so students repeated with seeds 1 and 2 share the seed-0 teacher's cache key settings
    assert teacher_train_config(_config(seed=2, teacher_seed=0)).to_dict() == teacher_train_config(_config(seed=0)).to_dict()


def test_evaluating_the_teacher_keeps_its_best_weights():
    cfg = teacher_train_config(_config(teacher_eval_every=50))
    assert cfg.eval_every == 50 and cfg.keep_best
    default = teacher_train_config(_config())
    assert default.eval_every == 0 and not default.keep_best


def test_new_settings_at_their_defaults_leave_the_recorded_config_unchanged():
    d = _config().to_dict()
    assert "teacher_seed" not in d and "teacher_eval_every" not in d
    assert _config(teacher_seed=0).to_dict()["teacher_seed"] == 0


@pytest.mark.parametrize("kw,message", [({"teacher_seed": -1}, "teacher_seed must be an integer >= 0"),
                                        ({"teacher_eval_every": -5}, "eval_every must be an integer >= 0")])
def test_bad_teacher_settings(kw, message):
    with pytest.raises(InvalidConfig, match=message):
        _config(**kw)
