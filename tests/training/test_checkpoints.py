"""The one checkpoint format: what it writes, and what happens to checkpoints written before it."""

from __future__ import annotations

import json

import pytest
import torch

from hwnas.errors import InvalidConfig
from hwnas.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tests.training.legacy_checkpoints import old_distill_save_checkpoint, old_supernet_save_checkpoint, trained_tiny


def _same_optimizer_state(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if json.loads(json.dumps(sa["param_groups"])) != json.loads(json.dumps(sb["param_groups"])) or sa["state"].keys() != sb["state"].keys():
        return False
    return all(torch.equal(torch.as_tensor(sa["state"][i][k]), torch.as_tensor(sb["state"][i][k]))
               for i in sa["state"] for k in sa["state"][i])


@pytest.mark.parametrize("writer", ["old supernet writer", "new writer"])
def test_a_checkpoint_restores_weights_optimizer_and_random_state(tmp_path, writer):
    model, opt = trained_tiny()
    save = old_supernet_save_checkpoint if writer == "old supernet writer" else save_checkpoint
    torch.manual_seed(123)
    folder = save(tmp_path / "checkpoints", 2, model, opt, {"seed": 0, "note": "x"})
    expected_draw = torch.rand(3)

    fresh, fresh_opt = trained_tiny(seed=1, steps=1)
    assert latest_checkpoint(tmp_path / "checkpoints") == folder
    state = load_checkpoint(folder, fresh, fresh_opt)
    assert state == {"step": 2, "seed": 0, "note": "x"}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))
    assert _same_optimizer_state(opt, fresh_opt)
    assert torch.equal(torch.rand(3), expected_draw)  # the random state of the step the checkpoint was written at


def test_the_new_writer_keeps_the_layout_of_supernet_checkpoints(tmp_path):
    model, opt = trained_tiny()
    old = old_supernet_save_checkpoint(tmp_path / "old", 5, model, opt, {"seed": 0})
    new = save_checkpoint(tmp_path / "new", 5, model, opt, {"seed": 0})
    # the same files, plus checksums.json (a sha256 per file, checked on load)
    assert sorted([*(p.name for p in old.iterdir()), "checksums.json"]) == sorted(p.name for p in new.iterdir())
    sums = json.loads((new / "checksums.json").read_text())
    assert sorted(sums) == sorted(p.name for p in old.iterdir())
    assert json.loads((old / "optimizer.json").read_text()) == json.loads((new / "optimizer.json").read_text())
    # only the newest checkpoint is kept, and no temporary file is left
    save_checkpoint(tmp_path / "new", 6, model, opt, {"seed": 0})
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["latest.json", "step-0000006"]
    assert sorted(p.name for p in (tmp_path / "new" / "step-0000006").iterdir()) == \
        ["checksums.json", "model.safetensors", "optimizer.json", "optimizer.safetensors", "state.json"]


def test_a_torn_pointer_is_one_clear_line(tmp_path):
    model, opt = trained_tiny()
    save_checkpoint(tmp_path, 1, model, opt, {})
    (tmp_path / "latest.json").write_text('{"checkpoint": ')
    with pytest.raises(InvalidConfig, match="latest.json is corrupt; delete the checkpoints folder"):
        latest_checkpoint(tmp_path)


def test_an_old_distillation_checkpoint_is_refused_with_one_line_and_kept(tmp_path):
    from transformers import BertForSequenceClassification

    from hwnas.distill.losses import LossConfig
    from hwnas.distill.trainer import TrainConfig, train
    from hwnas.space import Architecture

    model, opt = trained_tiny()
    old_distill_save_checkpoint(tmp_path / "checkpoint", model, opt, 3, {"train_config": {}})
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoint").iterdir()}
    torch.manual_seed(0)
    student = BertForSequenceClassification(Architecture(1, 16, 2, 32).to_bert_config(vocab_size=50, max_position_embeddings=16,
                                                                                       num_labels=2))
    enc = {"input_ids": torch.randint(0, 50, (8, 8)), "attention_mask": torch.ones(8, 8, dtype=torch.long),
           "token_type_ids": torch.zeros(8, 8, dtype=torch.long), "labels": torch.randint(0, 2, (8,))}
    with pytest.raises(InvalidConfig) as info:
        train(student, None, LossConfig(weights={"task": 1.0}), enc, "classification",
              TrainConfig(steps=2, batch_size=4, checkpoint_every=1), tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "checkpoint") in message and "delete that folder" in message
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoint").iterdir()} == before
    assert not (tmp_path / "checkpoints").exists()


def _tiny_distill_inputs(seed: int = 0):
    from transformers import BertForSequenceClassification

    from hwnas.space import Architecture

    torch.manual_seed(seed)
    student = BertForSequenceClassification(Architecture(1, 16, 2, 32).to_bert_config(vocab_size=50, max_position_embeddings=16,
                                                                                       num_labels=2))
    enc = {"input_ids": torch.randint(0, 50, (8, 8)), "attention_mask": torch.ones(8, 8, dtype=torch.long),
           "token_type_ids": torch.zeros(8, 8, dtype=torch.long), "labels": torch.randint(0, 2, (8,))}
    return student, enc


def test_a_distillation_checkpoint_is_checksummed_and_a_flipped_byte_is_refused(tmp_path):
    from hwnas.distill.losses import LossConfig
    from hwnas.distill.trainer import TrainConfig, train
    from hwnas.training.checkpoint import verify_checkpoint

    student, enc = _tiny_distill_inputs()
    train(student, None, LossConfig(weights={"task": 1.0}), enc, "classification",
          TrainConfig(steps=2, batch_size=4, checkpoint_every=1), tmp_path)
    ckpt = latest_checkpoint(tmp_path / "checkpoints")
    assert ckpt is not None and (ckpt / "checksums.json").is_file()
    verify_checkpoint(ckpt)  # as written: passes
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    fresh, _ = _tiny_distill_inputs(seed=1)
    with pytest.raises(InvalidConfig, match="does not match its checksum"):  # resuming with the same settings
        train(fresh, None, LossConfig(weights={"task": 1.0}), enc, "classification",
              TrainConfig(steps=2, batch_size=4, checkpoint_every=1), tmp_path)


def test_a_non_finite_distillation_loss_stops_before_the_weights_change_nan_injected(tmp_path):
    """A real training run whose student has one non-finite embedding row (a loss cannot be made to diverge on
    demand with a tiny model): the shared loop stops at the first step, before any update."""
    from hwnas.distill.losses import LossConfig
    from hwnas.distill.trainer import TrainConfig, train
    from hwnas.errors import TrainingDiverged

    student, enc = _tiny_distill_inputs()
    with torch.no_grad():
        student.bert.embeddings.word_embeddings.weight[int(enc["input_ids"][0, 0])] = float("inf")
    before = {k: v.clone() for k, v in student.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="non-finite at step 1") as info:
        train(student, None, LossConfig(weights={"task": 1.0}), enc, "classification",
              TrainConfig(steps=2, batch_size=8, checkpoint_every=1), tmp_path)
    assert "\n" not in str(info.value) and "no checkpoint had been written yet" in str(info.value)
    after = student.state_dict()
    assert all(torch.equal(before[k], after[k].cpu()) for k in before)  # no optimizer step was taken (on a GPU, train moved it)
    assert latest_checkpoint(tmp_path / "checkpoints") is None
