"""A training loss that becomes non-finite stops training (exit 1) and keeps the last good checkpoint; two
``supernet train`` on one --out: the second is refused naming the first."""

from __future__ import annotations

import json

import pytest

from hwnas.cli.main import main


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint_nan_injected(tmp_path, tiny_teacher, tiny_space,
                                                                                 corpus, capsys, monkeypatch):
    """The real loss, made NaN from the third call on (a diverging run cannot be produced on demand with the
    bounded learning rates TrainConfig accepts); everything else is the real training loop."""
    import hwnas.supernet.losses as losses
    from safetensors.torch import load_file

    from hwnas.training.checkpoint import latest_checkpoint, verify_checkpoint

    real = losses.distillation_loss
    calls = {"n": 0}

    def diverging(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] > 2 * 4 else value  # 4 sub-networks per step: NaN from step 2

    monkeypatch.setattr(losses, "distillation_loss", diverging)
    space = tmp_path / "t.json"
    tiny_space.save(space)
    out = tmp_path / "sn"
    code, _, err = _run(["supernet", "train", "--teacher", str(tiny_teacher), "--space", str(space), "--data", str(corpus),
                         "--steps", "4", "--batch-size", "4", "--max-len", "16", "--heldout", "8", "--threads", "1",
                         "--checkpoint-every", "1", "--quiet", "--out", str(out)], capsys)
    lines = [line for line in err.splitlines() if line.startswith("hwnas: error:")]
    assert code == 1 and len(lines) == 1 and "non-finite" in lines[0], err
    assert "internal error" not in err
    ckpt = latest_checkpoint(out / "checkpoints")
    assert ckpt is not None
    step = json.loads((ckpt / "state.json").read_text())["step"]
    assert step == 2
    verify_checkpoint(ckpt)
    import torch

    assert all(bool(torch.isfinite(t).all()) for t in load_file(str(ckpt / "model.safetensors")).values())
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == step  # no entry for the step that diverged


def test_a_second_training_on_the_same_folder_is_refused_naming_the_first(tmp_path, tiny_teacher, capsys):
    import os

    from hwnas._lock import writer_lock
    from hwnas.errors import InvalidConfig

    out = tmp_path / "sn"
    with writer_lock(tmp_path / "sn.lock", target=out, error=InvalidConfig):  # "another process" holds the folder
        code, _, err = _run(["supernet", "train", "--teacher", str(tiny_teacher), "--space", "tiny", "--steps", "1", "--max-len", "16",
                             "--out", str(out)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "being written by another process" in err and f"PID {os.getpid()}" in err
    assert not out.exists()
