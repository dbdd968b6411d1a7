"""The one teacher resolver: the shipped default, local folders, and hub names (offline here)."""

from __future__ import annotations

import pytest

from hwnas.errors import InvalidConfig
from hwnas.training.teacher import resolve_teacher, teacher_name


def test_default_is_the_shipped_minilm_folder():
    folder = resolve_teacher("default")
    assert (folder / "config.json").is_file() and teacher_name("default") == "default"


def test_a_local_folder_resolves_to_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    real = (tmp_path / "t").resolve()
    assert resolve_teacher("./t") == real and teacher_name("t") == str(real)


@pytest.mark.parametrize("make,message", [
    (lambda p: p.mkdir(), "has no config.json; expected a BERT-like model saved with save_pretrained"),
    (lambda p: p.write_text("x"), "is not a folder; give 'default' or a folder with config.json"),
])
def test_a_local_path_that_is_no_model_is_one_line(tmp_path, make, message):
    make(tmp_path / "t")
    with pytest.raises(InvalidConfig, match=message):
        resolve_teacher(str(tmp_path / "t"))


def test_a_hub_name_that_cannot_be_fetched_is_one_line_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InvalidConfig) as info:
        resolve_teacher("hwnas-tests/no-such-teacher")
    text = str(info.value)
    assert "\n" not in text and text.startswith("teacher 'hwnas-tests/no-such-teacher' is neither 'default' nor a local")
    assert "needs a network" in text
    with pytest.raises(InvalidConfig, match="got an empty string"):
        resolve_teacher("  ")
