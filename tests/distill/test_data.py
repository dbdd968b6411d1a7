"""Task loading: formats, column detection, and one-line errors naming file, row and problem."""

from __future__ import annotations

import gzip
import json

import pytest

from hwnas.data import embedded_path
from hwnas.distill.data import augment, load_task
from hwnas.errors import InvalidData


def test_embedded_sst2_is_detected():
    data = load_task(embedded_path("sst2/train.tsv"))
    assert len(data) == 4000 and data.kind == "classification" and data.num_labels == 2
    assert data.columns == {"text": "sentence", "pair": None, "label": "label"} and data.pairs is None
    assert set(data.labels) == {0, 1}
    assert len(load_task(embedded_path("sst2/dev.tsv"), limit=10)) == 10


def test_csv_pairs_with_text_labels(tmp_path):
    f = tmp_path / "nli.csv"
    f.write_text('premise,hypothesis,gold_label\n"A man, sitting",A person sits,entailment\nA dog,A cat,contradiction\nX,Y,entailment\n')
    data = load_task(f)
    assert data.pairs == ["A person sits", "A cat", "Y"] and data.texts[0] == "A man, sitting"
    assert data.label_names == ["contradiction", "entailment"] and data.labels == [1, 0, 1]


def test_jsonl_regression_and_gzip(tmp_path):
    rows = [{"sentence1": "a", "sentence2": "b", "score": 4.5}, {"sentence1": "c", "sentence2": "d", "score": 1.0}]
    f = tmp_path / "sts.jsonl.gz"
    f.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    data = load_task(f)
    assert data.kind == "regression" and data.labels == [4.5, 1.0] and data.num_labels == 1 and data.pairs == ["b", "d"]


def test_given_columns_and_label_order_from_training_data(tmp_path):
    f = tmp_path / "d.tsv"
    f.write_text("id\tbody\ty\n1\tgood\tpos\n2\tbad\tneg\n")
    data = load_task(f, text_col="body", label_col="y", label_names=["pos", "neg"])
    assert data.labels == [0, 1] and data.label_names == ["pos", "neg"]
    with pytest.raises(InvalidData, match=r"labels \['neg'\] do not occur in the training data"):
        load_task(f, text_col="body", label_col="y", label_names=["pos", "other"])


@pytest.mark.parametrize(
    "name, content, kwargs, message",
    [
        ("empty.tsv", "", {}, r"empty\.tsv: the file is empty"),
        ("header.tsv", "sentence\tlabel\n", {}, r"header\.tsv: the file has a header but no rows"),
        ("nolabel.tsv", "sentence\tstars\nok\t1\n", {}, r"nolabel\.tsv: cannot find the label column; tried label, .*columns are: sentence, stars"),
        ("given.tsv", "sentence\tlabel\nok\t1\n", {"text_col": "text"}, r"given\.tsv: no column 'text' for the text; columns are: sentence, label"),
        ("ragged.tsv", "sentence\tlabel\nok\t1\nbad row\n", {}, r"ragged\.tsv, row 3: 1 fields but the header has 2"),
        ("emptytext.tsv", "sentence\tlabel\nok\t1\n \t0\n", {}, r"emptytext\.tsv, row 3: empty 'sentence'"),
        ("nolab.tsv", "sentence\tlabel\nok\t1\nfine\t\n", {}, r"nolab\.tsv, row 3: missing label in column 'label'"),
        ("mixed.tsv", "sentence\tlabel\nok\t1\nfine\tpositive\n", {}, r"mixed\.tsv, row 3: label 'positive' is not a number, while other labels are numbers"),
        ("frac.tsv", "sentence\tlabel\nok\t1\nfine\t0.5\n", {"task": "classification"}, r"frac\.tsv, row 3: label '0.5' is fractional"),
        ("regr.tsv", "sentence\tlabel\nok\t1.5\nfine\thigh\n", {"task": "regression"}, r"regr\.tsv, row 3: label 'high' is not a number"),
        ("one.tsv", "sentence\tlabel\nok\t1\nfine\t1\n", {}, r"one\.tsv: every label is 1; a classification task needs at least two classes"),
        ("bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": \n', {}, r"bad\.jsonl, row 2: not valid JSON"),
        ("list.jsonl", '{"text": "a", "label": 1}\n[1, 2]\n', {}, r"list\.jsonl, row 2: expected a JSON object"),
        ("data.xlsx", "x", {}, r"data\.xlsx: unknown file type '.xlsx'; accepted: .tsv, .csv, .jsonl"),
    ],
)
def test_bad_files_get_one_line_naming_file_and_row(tmp_path, name, content, kwargs, message):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(InvalidData, match=message) as info:
        load_task(f, **kwargs)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InvalidData, match=r"nope\.tsv: no such file"):
        load_task(tmp_path / "nope.tsv")
    with pytest.raises(InvalidData, match="is a folder"):
        load_task(tmp_path)


def test_not_utf8(tmp_path):
    f = tmp_path / "latin.tsv"
    f.write_bytes("sentence\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(InvalidData, match=r"latin\.tsv: not UTF-8 text"):
        load_task(f)


def test_augment_keeps_labels_and_changes_text():
    data = load_task(embedded_path("sst2/train.tsv"), limit=50)
    more = augment(data, 2, seed=1, p_delete=0.3, p_swap=0.3)
    assert len(more) == 150 and more.labels == data.labels * 3
    assert more.texts[:50] == data.texts
    assert sum(a != b for a, b in zip(more.texts[50:100], data.texts, strict=True)) > 25
    assert augment(data, 2, seed=1, p_delete=0.3, p_swap=0.3).texts == more.texts  # seeded
