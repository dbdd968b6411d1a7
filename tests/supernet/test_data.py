"""Text sources, tokenising into a cache, and their errors."""

from __future__ import annotations

import gzip
import json

import pytest

from hwnas.errors import InvalidData
from hwnas.supernet.data import build_token_cache, iter_texts
from hwnas.supernet.teacher import load_teacher


@pytest.fixture(scope="module")
def tokenizer(tiny_teacher):
    return load_teacher(str(tiny_teacher)).tokenizer


def test_formats_and_column_detection(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\n  second line  \n")
    (tmp_path / "b.tsv").write_text("sentence\tlabel\nhello there\t1\nbye\t0\n")
    with gzip.open(tmp_path / "c.csv.gz", "wt") as fh:
        fh.write('id,title,text\n1,T,"a, quoted text"\n2,U,plain\n')
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "json one", "x": 1}) + "\n\n" + json.dumps({"text": "json two"}) + "\n")
    assert list(iter_texts(tmp_path / "a.txt")) == ["first line", "second line"]
    assert list(iter_texts(tmp_path / "b.tsv")) == ["hello there", "bye"]
    assert list(iter_texts(tmp_path / "c.csv.gz")) == ["a, quoted text", "plain"]
    assert list(iter_texts(tmp_path / "d.jsonl")) == ["json one", "json two"]
    assert list(iter_texts(tmp_path / "c.csv.gz", text_column="title")) == ["T", "U"]


def test_default_source_is_the_embedded_sst2_sample():
    texts = iter_texts(None)
    first = next(texts)
    assert isinstance(first, str) and first and "\t" not in first


def test_missing_text_column_names_the_columns(tmp_path):
    (tmp_path / "x.csv").write_text("id,body2\n1,hi\n")
    with pytest.raises(InvalidData, match="no text column.*id, body2"):
        list(iter_texts(tmp_path / "x.csv"))


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(InvalidData, match="unknown format"):
        list(iter_texts(tmp_path / "x.parquet"))
    with pytest.raises(InvalidData, match="does not exist"):
        list(iter_texts(tmp_path / "nope.txt"))


def test_empty_file_is_refused_without_leaving_a_cache(tmp_path, tokenizer):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(InvalidData, match="holds no text"):
        build_token_cache(empty, tokenizer, seq_len=16, cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("tokens-*"))


def test_cache_rows_long_texts_and_reuse(tmp_path, tokenizer):
    src = tmp_path / "c.txt"
    src.write_text("the movie\n" + " ".join(["good film"] * 40) + "\n")
    data = build_token_cache(src, tokenizer, seq_len=16, cache_dir=tmp_path / "cache")
    assert data.seq_len == 16 and len(data) == 1 + 6  # 80 word pieces cut into pieces of 14
    assert data.lengths[0] == 4 and data.ids[0, 0] == tokenizer.cls_token_id and data.ids[0, 3] == tokenizer.sep_token_id
    assert all(data.ids[0, 4:] == tokenizer.pad_token_id)
    ids, mask = data.batch([0, 1])
    assert ids.shape == (2, 16) and mask[0].sum() == 4 and mask[1].sum() == 16
    files = sorted((tmp_path / "cache").iterdir())
    stamps = [f.stat().st_mtime_ns for f in files]
    again = build_token_cache(src, tokenizer, seq_len=16, cache_dir=tmp_path / "cache")
    assert len(again) == len(data) and [f.stat().st_mtime_ns for f in sorted((tmp_path / "cache").iterdir())] == stamps
    limited = build_token_cache(src, tokenizer, seq_len=16, cache_dir=tmp_path / "cache", max_rows=3)
    assert len(limited) == 3


def test_corpora_are_read_by_the_one_table_reader(tmp_path):
    """The task reader's rules hold for supernet corpora too: a ragged row and non-UTF-8 bytes are refused by name."""
    (tmp_path / "ragged.tsv").write_text("sentence\tlabel\nfine\t1\nno label here\n")
    with pytest.raises(InvalidData, match=r"ragged\.tsv, row 3: 1 fields but the header has 2"):
        list(iter_texts(tmp_path / "ragged.tsv"))
    (tmp_path / "latin.txt").write_bytes("first\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(InvalidData, match=r"latin\.txt: not UTF-8 text \(byte 9\)"):
        list(iter_texts(tmp_path / "latin.txt"))
