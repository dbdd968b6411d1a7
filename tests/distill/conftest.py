"""Tiny real BERT teachers for the distillation tests (random weights, the real tokenizer)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory):
    """A 2-layer, 64-wide BertModel folder with the default teacher's tokenizer (no task head)."""
    import torch
    from transformers import AutoTokenizer, BertModel

    from hwnas.distill.models import resolve_teacher
    from hwnas.space import Architecture

    folder = tmp_path_factory.mktemp("tiny-teacher")
    tokenizer = AutoTokenizer.from_pretrained(resolve_teacher("default"))
    torch.manual_seed(0)
    config = Architecture(2, 64, 4, 128).to_bert_config(vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _experience_in_tmp(tmp_path_factory, monkeypatch):
    """Every ``hwnas distill`` run appends to the experience table: keep the tests' runs out of the user's cache."""
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path_factory.mktemp("hwnas-home")))
