"""Fixtures for the supernet tests: a tiny random BERT teacher with a real tokenizer, and text files."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

WORDS = (
    "the a movie film good bad is and of to it this that not very story with but for an "
    "funny dull great acting plot characters director best worst love boring"
).split()

TEXTS = [
    "the movie is very good and the acting is great",
    "a dull film with a boring plot",
    "this is not the best story but it is funny",
    "the director made a great film about love",
    "the worst acting of the year",
    "characters with very good lines and a funny plot",
    "it is a bad movie and a dull story",
    "good film , great director , best acting",
] * 6


def make_teacher(folder: Path, *, layers: int = 2, hidden: int = 64, heads: int = 4, ffn: int = 128, seed: int = 0) -> Path:
    """Save a random BertModel (peaked attention: larger init scale) plus a word-piece tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab_list = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase,
                  *("##" + c for c in string.ascii_lowercase), *string.digits, *".,'!?-;:()", *WORDS]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=ffn, max_position_embeddings=64, initializer_range=0.2)
    torch.manual_seed(seed)
    model = BertModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("teacher") / "tiny-bert")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_space():
    """A space strictly inside the tiny teacher (hidden 64, 2 layers, FFN 128)."""
    from hwnas.space import SearchSpace

    return SearchSpace(name="t", layers=(1, 2), hidden=(32, 48), heads=(2, 4), ffn=(64, 96))
