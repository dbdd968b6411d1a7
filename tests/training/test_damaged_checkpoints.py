"""Damaged checkpoint files that get past the checksums (a checkpoint of an older release has none) still
give the one clear error, whatever part is damaged: the weights, state.json or the optimizer state."""

from __future__ import annotations

import pytest

from hwnas.errors import InvalidConfig
from hwnas.training.checkpoint import CHECKSUMS, load_checkpoint


@pytest.fixture
def checkpoint(saved_checkpoint):
    path, _, _ = saved_checkpoint
    (path / CHECKSUMS).unlink()  # as written by a release without checksums: nothing catches the damage earlier
    return saved_checkpoint


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(("name", "damage", "message"), [
    ("model.safetensors", _truncate, r"is damaged \(SafetensorError\)"),
    ("model.safetensors", lambda p: p.write_bytes(b""), r"is damaged \(SafetensorError\)"),
    ("state.json", lambda p: p.write_text("{not json"), r"is damaged \(JSONDecodeError\)"),
    ("state.json", lambda p: p.write_bytes(b"\xff\xfe"), r"is damaged \(UnicodeDecodeError\)"),
    ("optimizer.safetensors", _truncate, r"the optimizer state is damaged \(SafetensorError\)"),
    ("optimizer.json", lambda p: p.write_text("[1,"), r"the optimizer state is damaged \(JSONDecodeError\)"),
    ("model.safetensors", lambda p: p.unlink(), r"is damaged \(FileNotFoundError\)"),
])
def test_a_damaged_part_is_one_clear_error(checkpoint, name, damage, message):
    path, model, opt = checkpoint
    assert load_checkpoint(path, model, opt)["step"] == 1
    damage(path / name)
    with pytest.raises(InvalidConfig, match=message):
        load_checkpoint(path, model, opt)
