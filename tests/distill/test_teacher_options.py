"""Teacher fine-tuning options of hwnas distill: a seed of its own, and keeping the best evaluation."""

from __future__ import annotations

import pytest

from hwnas.distill.api import DistillConfig, teacher_train_config
from hwnas.errors import InvalidConfig


def _config(**kw):
    return DistillConfig(arch="layers=1,hidden=32,heads=2,ffn=64", task="unused.tsv", **kw)


def test_the_teacher_follows_the_student_seed_unless_given_its_own():
    assert teacher_train_config(_config(seed=3), 1000).seed == 3
    assert teacher_train_config(_config(seed=3, teacher_seed=0), 1000).seed == 0
    # so students repeated with seeds 1 and 2 share the seed-0 teacher's cache key settings
    assert teacher_train_config(_config(seed=2, teacher_seed=0), 1000).to_dict() == \
        teacher_train_config(_config(seed=0), 1000).to_dict()


def test_by_epochs_the_teacher_settings_need_the_number_of_examples():
    with pytest.raises(InvalidConfig, match="needs the number of training examples"):
        teacher_train_config(_config())


def test_evaluating_the_teacher_keeps_its_best_weights():
    cfg = teacher_train_config(_config(teacher_eval_every=50, teacher_steps=600))
    assert cfg.eval_every == 50 and cfg.keep_best
    # by epochs, the teacher is evaluated every 200 steps by default; with --teacher-steps, at the end only
    by_epochs = teacher_train_config(_config(), 60_000)
    assert by_epochs.eval_every == 200 and by_epochs.keep_best
    by_steps = teacher_train_config(_config(teacher_steps=600))
    assert by_steps.eval_every == 0 and not by_steps.keep_best


def test_new_settings_at_their_defaults_leave_the_recorded_config_unchanged():
    d = _config(teacher_steps=600).to_dict()
    assert not {"teacher_seed", "teacher_eval_every", "teacher_epochs", "recipe"} & set(d)
    assert _config(teacher_seed=0, teacher_steps=600).to_dict()["teacher_seed"] == 0


@pytest.mark.parametrize("kw,message", [({"teacher_seed": -1}, "teacher_seed must be an integer >= 0"),
                                        ({"teacher_eval_every": -5}, "eval_every must be an integer >= 0")])
def test_bad_teacher_settings(kw, message):
    with pytest.raises(InvalidConfig, match=message):
        _config(**kw)
