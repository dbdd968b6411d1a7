"""A finished quick run (tiny real teacher, supernet, search, student) shared by the report tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def report_teacher(tmp_path_factory):
    """A 3-layer, 192-wide random BertModel with the default teacher's tokenizer (as wide as space ``tiny``)."""
    import torch
    from transformers import AutoTokenizer, BertModel

    from hwnas.distill.models import resolve_teacher
    from hwnas.space import Architecture

    folder = tmp_path_factory.mktemp("teacher")
    tok = AutoTokenizer.from_pretrained(resolve_teacher("default"))
    torch.manual_seed(0)
    BertModel(Architecture(3, 192, 4, 768).to_bert_config(vocab_size=tok.vocab_size, max_position_embeddings=512)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def finished_run(report_teacher, tmp_path_factory):
    """``hwnas run`` on the quick configuration; returns the run folder (do not modify it: copy it)."""
    from hwnas.pipeline import quick_config, run_pipeline

    work = tmp_path_factory.mktemp("runs")
    config = quick_config(10_000.0, work_dir=str(work), name="t", teacher=str(report_teacher), profile_samples=6)
    run_pipeline(config)
    return config.folder
