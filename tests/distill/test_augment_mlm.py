"""Masked-language-model word replacement: the teacher's own MLM head when it has one, random
vocabulary words when it has none; seeded, label-keeping, word-count-keeping."""

from __future__ import annotations

import pytest
import torch

from hwnas.data import embedded_path
from hwnas.distill.data import augment, load_mlm_head, load_task, mlm_replace
from hwnas.errors import InvalidData
from hwnas.space import Architecture


@pytest.fixture(scope="module")
def tokenizer(tiny_teacher):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_teacher)


@pytest.fixture(scope="module")
def data():
    return load_task(embedded_path("sst2/train.tsv"), limit=40)


def _mlm_folder(folder, tokenizer, favourite: str | None = None):
    """A tiny BertForMaskedLM with every head weight saved; with ``favourite``, its output bias makes that
    word the head's first prediction everywhere."""
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    config = Architecture(1, 32, 2, 64).to_bert_config(vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    model = BertForMaskedLM(config)
    if favourite is not None:
        with torch.no_grad():
            model.cls.predictions.bias[tokenizer.convert_tokens_to_ids(favourite)] = 100.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _changed_words(original: list[str], copy: list[str]) -> list[tuple[str, str]]:
    out = []
    for a, b in zip(original, copy, strict=True):
        wa, wb = a.split(), b.split()
        assert len(wa) == len(wb)  # replacement, never deletion or insertion
        out += [(x, y) for x, y in zip(wa, wb, strict=True) if x != y]
    return out


def test_a_folder_without_a_trained_mlm_head_falls_back_to_vocabulary_words(tiny_teacher, tokenizer, data):
    assert load_mlm_head(tiny_teacher) is None  # a BertModel folder, like the default sentence-embedding teacher
    more = augment(data, 2, seed=3, method="mlm", tokenizer=tokenizer, mlm=None, p_replace=0.2)
    assert len(more) == 3 * len(data) and more.labels == data.labels * 3 and more.texts[:len(data)] == data.texts
    changes = _changed_words(data.texts * 2, more.texts[len(data):])
    assert len(changes) >= len(data)  # at least one word of every sentence (a few draws may repeat the word)
    vocab = tokenizer.get_vocab()
    assert all(new in vocab and new.isalpha() and not new.startswith("##") for _, new in changes)
    assert "random-word-replaced" in more.source
    again = augment(data, 2, seed=3, method="mlm", tokenizer=tokenizer, mlm=None, p_replace=0.2)
    assert again.texts == more.texts  # seeded
    assert augment(data, 2, seed=4, method="mlm", tokenizer=tokenizer, p_replace=0.2).texts != more.texts


def test_the_teachers_mlm_head_chooses_the_replacements(tmp_path, tokenizer, data):
    head = load_mlm_head(_mlm_folder(tmp_path / "mlm", tokenizer, favourite="banana"))
    assert head is not None and not head.training
    # top_k=1: every picked word becomes the head's first prediction, which the bias made "banana"
    copies = mlm_replace(data.texts, tokenizer, head, seed=0, p_replace=0.15, top_k=1)
    changes = _changed_words(data.texts, copies)
    assert len(changes) >= len(data) and {new for _, new in changes} == {"banana"}
    assert mlm_replace(data.texts, tokenizer, head, seed=0, p_replace=0.15, top_k=1) == copies  # deterministic
    # with the default top_k=8 the draw is among the head's 8 best whole words, banana among them
    wider = _changed_words(data.texts, mlm_replace(data.texts, tokenizer, head, seed=0, p_replace=0.15))
    assert "banana" in {new for _, new in wider} and len({new for _, new in wider}) > 1


def test_mlm_replacement_of_sentence_pairs_and_the_top_k(tmp_path, tokenizer):
    from hwnas.distill.data import TaskData

    head = load_mlm_head(_mlm_folder(tmp_path / "mlm", tokenizer))
    pairs = TaskData(["a good film", "the plot is thin"], ["it was fine", "nothing happens"], [0, 1], "classification",
                     ["0", "1"], "pairs")
    more = augment(pairs, 1, seed=1, method="mlm", tokenizer=tokenizer, mlm=head, top_k=3)
    assert len(more) == 4 and more.pairs is not None and len(more.pairs) == 4 and more.labels == [0, 1, 0, 1]
    assert "mlm-replaced" in more.source
    for orig, copy in ((pairs.texts, more.texts[2:]), (pairs.pairs, more.pairs[2:])):
        assert [len(s.split()) for s in orig] == [len(s.split()) for s in copy]


def test_a_classifier_folder_has_no_mlm_head(tmp_path, tokenizer):
    from transformers import BertForSequenceClassification

    config = Architecture(1, 32, 2, 64).to_bert_config(vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    BertForSequenceClassification(config).save_pretrained(tmp_path / "clf")
    assert load_mlm_head(tmp_path / "clf") is None


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "backtranslate"}, "unknown augmentation method 'backtranslate'; known: edit, mlm"),
    ({"method": "mlm"}, "augmentation method 'mlm' needs the teacher's tokenizer"),
    ({"factor": -1}, "augmentation factor must be an integer >= 0; got -1"),
])
def test_bad_augmentation_settings_are_one_line(data, kwargs, message):
    kwargs = {"factor": 1, **kwargs}
    factor = kwargs.pop("factor")
    with pytest.raises(InvalidData, match=message):
        augment(data, factor, **kwargs)


def test_p_replace_out_of_range(tokenizer):
    with pytest.raises(InvalidData, match=r"p_replace must be in \(0, 1\]; got 0"):
        mlm_replace(["a film"], tokenizer, p_replace=0)


def test_distill_config_takes_the_augment_method_and_uses_the_teachers_head(tokenizer, data, tmp_path):
    from types import SimpleNamespace

    from hwnas.distill.api import DistillConfig, _augmented
    from hwnas.errors import InvalidConfig

    arch, task = "layers=1,hidden=32,heads=2,ffn=64", str(embedded_path("sst2/train.tsv"))
    with pytest.raises(InvalidConfig, match="augment_method must be one of"):
        DistillConfig(arch=arch, task=task, augment=1, augment_method="synonyms")
    assert "augment_method" not in DistillConfig(arch=arch, task=task).to_dict()  # folders written before still match
    folder = _mlm_folder(tmp_path / "mlm-teacher", tokenizer, favourite="wonderful")
    config = DistillConfig(arch=arch, task=task, teacher=str(folder), augment=1, augment_method="mlm", seed=3)
    assert config.to_dict()["augment_method"] == "mlm"
    out = _augmented(config, data, SimpleNamespace(tokenizer=tokenizer))
    copies = out.texts[len(data):]
    assert len(out) == 2 * len(data) and list(out.labels[len(data):]) == list(data.labels)
    # the head was loaded from the teacher's folder: its favourite word, one of the top 8 it samples from,
    # turns up in several copies (random vocabulary words, the fallback, would almost never give it)
    assert sum("wonderful" in t.split() for t in copies) >= 3
    assert _augmented(DistillConfig(arch=arch, task=task, augment=0, augment_method="mlm"), data, None) is data
