"""Training: the loss falls, checkpoints are complete, bad inputs get one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from hwnas.errors import InvalidConfig, InvalidData
from hwnas.supernet import load_supernet
from hwnas.supernet.estimate import SupernetEstimator
from hwnas.supernet.train import TrainConfig, batch_rows, sandwich, train_supernet


def _cfg(tmp_path, teacher, space, corpus, **kw):
    base = dict(space=space, out=str(tmp_path / "sn"), teacher=str(teacher), data=str(corpus), steps=30, batch_size=4,
                seq_len=16, lr=3e-3, heldout=8, checkpoint_every=10, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_a_few_steps_lower_the_heldout_loss(tmp_path, tiny_teacher, tiny_space, corpus):
    cfg = _cfg(tmp_path, tiny_teacher, tiny_space, corpus, steps=1)
    train_supernet(cfg)
    archs = [tiny_space.smallest, tiny_space.largest, "layers=2,hidden=32,heads=4,ffn=96"]
    before = SupernetEstimator(load_supernet(cfg.out), "loss", cache=False).heldout_loss(archs)
    said = []
    result = train_supernet(_cfg(tmp_path, tiny_teacher, tiny_space, corpus, steps=30), resume=True, on_status=said.append)
    assert said == [f"resuming {tmp_path / 'sn'} from step 1"]
    after = SupernetEstimator(load_supernet(cfg.out), "loss", cache=False).heldout_loss(archs)
    assert result.steps_done == 30 and result.resumed_from == 1
    assert np.all(after < before), (before, after)
    log = [json.loads(x) for x in (tmp_path / "sn" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(30))
    # every step trains the largest and the smallest sub-network plus two random ones
    assert all(e["archs"][0] == tiny_space.largest.key and e["archs"][1] == tiny_space.smallest.key for e in log)
    assert all(len(e["archs"]) >= 3 for e in log)


def test_supernet_folder_contents(tmp_path, tiny_teacher, tiny_space, corpus):
    cfg = _cfg(tmp_path, tiny_teacher, tiny_space, corpus, steps=4, checkpoint_every=2)
    events = []
    train_supernet(cfg, on_progress=events.append)
    out = tmp_path / "sn"
    # progress is reported as events (tokenising, then one per step), never drawn
    tokenise = [e for e in events if e.stage == "tokenise"]
    rows = json.loads((out / "supernet.json").read_text())["data"]["rows"]
    assert tokenise and tokenise[-1].completed == rows >= 48 and tokenise[-1].total is None
    steps = [e for e in events if e.stage == "supernet"]
    assert [(e.completed, e.total, e.checkpoint) for e in steps] == [(1, 4, False), (2, 4, True), (3, 4, False), (4, 4, True)]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e.metrics["loss"] for e in steps] == [e["mean"] for e in log]
    meta = json.loads((out / "supernet.json").read_text())
    assert meta["format"] == "hwnas-supernet" and meta["steps_done"] == 4 and meta["space"]["name"] == "t"
    assert meta["relation_heads"] == 4  # largest R <= 4 teacher heads dividing 64, 32 and 48
    assert (out / "tokenizer_config.json").is_file()
    pointer = json.loads((out / "checkpoints" / "latest.json").read_text())
    ckpt = out / "checkpoints" / pointer["checkpoint"]
    assert pointer["step"] == 4 and sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.json", ckpt.name]
    opt = load_file(str(ckpt / "optimizer.safetensors"))
    assert "rng.torch" in opt and any(k.endswith(".exp_avg") for k in opt)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 4 and state["seed"] == 0
    held = load_file(str(out / "heldout.safetensors"))
    assert held["input_ids"].shape[0] == 8


def test_refuses_to_overwrite_without_resume(tmp_path, tiny_teacher, tiny_space, corpus):
    cfg = _cfg(tmp_path, tiny_teacher, tiny_space, corpus, steps=2, checkpoint_every=1)
    train_supernet(cfg)
    before = (tmp_path / "sn" / "model.safetensors").read_bytes()
    with pytest.raises(InvalidConfig, match="pass --resume"):
        train_supernet(cfg)
    with pytest.raises(InvalidConfig, match="seq_len was 16"):
        train_supernet(_cfg(tmp_path, tiny_teacher, tiny_space, corpus, steps=2, seq_len=32), resume=True)
    assert (tmp_path / "sn" / "model.safetensors").read_bytes() == before


def test_bad_inputs_get_clear_errors(tmp_path, tiny_teacher, tiny_space, corpus):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(InvalidData, match="holds no text"):
        train_supernet(_cfg(tmp_path, tiny_teacher, tiny_space, empty))
    not_bert = tmp_path / "not-bert"
    not_bert.mkdir()
    (not_bert / "notes.txt").write_text("no model here")
    with pytest.raises(InvalidConfig, match="no config.json"):
        train_supernet(_cfg(tmp_path, not_bert, tiny_space, corpus))
    (not_bert / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2,
                                                      "num_attention_heads": 4}))
    with pytest.raises(InvalidConfig, match="cannot load teacher weights"):
        train_supernet(_cfg(tmp_path, not_bert, tiny_space, corpus))
    with pytest.raises(InvalidConfig, match="steps must be an integer >= 1"):
        _cfg(tmp_path, tiny_teacher, tiny_space, corpus, steps=0)
    with pytest.raises(InvalidConfig, match="relation_heads=5"):
        train_supernet(_cfg(tmp_path, tiny_teacher, tiny_space, corpus, relation_heads=5))


def test_data_order_and_sandwich_depend_only_on_seed_and_step(tiny_space):
    assert np.array_equal(batch_rows(10, 4, 0, 7), batch_rows(10, 4, 0, 7))
    epoch0 = np.concatenate([batch_rows(12, 4, 0, s) for s in range(3)])
    assert sorted(epoch0.tolist()) == list(range(12))  # each row once per epoch
    assert sandwich(tiny_space, 0, 5, 2) == sandwich(tiny_space, 0, 5, 2)
    assert sandwich(tiny_space, 0, 5, 2)[:2] == [tiny_space.largest, tiny_space.smallest]


def test_a_checkpoint_from_the_writer_of_earlier_releases_resumes_like_a_new_one(tmp_path, tiny_teacher, tiny_space, corpus):
    """Supernet checkpoints kept their layout: one rewritten by the pre-shared-loop writer resumes to the same weights."""
    import shutil

    import torch

    from hwnas.supernet.train import SupernetLoop
    from tests.training.legacy_checkpoints import old_supernet_save_checkpoint

    first = _cfg(tmp_path, tiny_teacher, tiny_space, corpus, steps=2, checkpoint_every=2)
    train_supernet(first)
    shutil.copytree(tmp_path / "sn", tmp_path / "old")
    old = _cfg(tmp_path, tiny_teacher, tiny_space, corpus, steps=2, checkpoint_every=2, out=str(tmp_path / "old"))
    loop = SupernetLoop(old, resume=True, on_progress=None, on_status=None)
    loop.setup(None)
    state = loop.restore(loop.existing)
    shutil.rmtree(loop.checkpoints)
    old_supernet_save_checkpoint(loop.checkpoints, 2, loop.model, loop.optimizer, {k: v for k, v in state.items() if k != "step"})

    for out in ("sn", "old"):
        result = train_supernet(_cfg(tmp_path, tiny_teacher, tiny_space, corpus, steps=4, checkpoint_every=2,
                                     out=str(tmp_path / out)), resume=True)
        assert result.resumed_from == 2
    a, b = load_file(str(tmp_path / "sn" / "model.safetensors")), load_file(str(tmp_path / "old" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [(tmp_path / out / "train_log.jsonl").read_text().splitlines() for out in ("sn", "old")]
    assert [json.loads(x)["mean"] for x in logs[0]] == [json.loads(x)["mean"] for x in logs[1]]
