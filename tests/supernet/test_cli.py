"""``hwnas supernet train / score / extract / info`` end to end, and their one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from hwnas.cli.main import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def space_file(tmp_path_factory, tiny_space):
    path = tmp_path_factory.mktemp("space") / "t.json"
    tiny_space.save(path)
    return path


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, tiny_teacher, space_file, corpus):
    out = tmp_path_factory.mktemp("cli") / "sn"
    with pytest.raises(SystemExit) as exc:
        main(["supernet", "train", "--teacher", str(tiny_teacher), "--space", str(space_file), "--data", str(corpus),
              "--steps", "3", "--batch-size", "4", "--max-len", "16", "--heldout", "8", "--threads", "1", "--out", str(out)])
    assert exc.value.code == 0
    return out


def test_train_prints_a_summary_and_writes_a_supernet(trained_dir):
    meta = json.loads((trained_dir / "supernet.json").read_text())
    assert meta["steps_done"] == 3 and meta["space"]["name"] == "t"


def test_score_prints_json_lines(trained_dir, capsys):
    code, out, _ = run(["supernet", "score", str(trained_dir), "--arch", "layers=1,hidden=32,heads=2,ffn=64",
                        "--arch", "layers=2,hidden=48,heads=4,ffn=96", "--json", "--no-cache"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 2 and all(r["loss"] < 0 for r in rows)
    assert rows[1]["arch"] == {"layers": 2, "hidden": 48, "heads": 4, "ffn": 96}


def test_extract_gives_a_plain_bert_model(trained_dir, tmp_path, capsys):
    from transformers import AutoModel, AutoTokenizer, BertModel

    from hwnas.space import Architecture
    from hwnas.supernet import load_supernet

    out = tmp_path / "student"
    code, text, _ = run(["supernet", "extract", str(trained_dir), "--arch", "layers=2,hidden=32,heads=4,ffn=96", "--out", str(out)], capsys)
    assert code == 0 and "max |diff|" in text
    model = AutoModel.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    assert type(model) is BertModel and model.config.hidden_size == 32 and model.config.num_attention_heads == 4
    batch = tok(["the movie is good", "bad"], padding=True, return_tensors="pt")
    sn = load_supernet(trained_dir)
    with torch.no_grad():
        ref = sn.forward(Architecture(2, 32, 4, 96), batch["input_ids"], batch["attention_mask"]).last_hidden_state
        got = model(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    assert torch.allclose(ref[real], got[real], atol=1e-5, rtol=0)
    # never overwrite an existing student without --overwrite
    capsys.readouterr()  # drop transformers' own loading output from the calls above
    code, _, err = run(["supernet", "extract", str(trained_dir), "--arch", "layers=2,hidden=32,heads=4,ffn=96", "--out", str(out)], capsys)
    assert code == 2 and "already holds a student; pass --overwrite" in err and len(err.strip().splitlines()) == 1


def test_extract_overwrite_replaces_only_a_student_and_json_is_one_object(trained_dir, tmp_path, capsys):
    out = tmp_path / "student"
    args = ["supernet", "extract", str(trained_dir), "--arch", "layers=1,hidden=32,heads=2,ffn=64", "--out", str(out)]
    code, text, err = run([*args, "--json"], capsys)
    first = json.loads(text)
    assert code == 0 and first["architecture"] == {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64}, err
    assert json.loads((out / "hwnas.json").read_text())["kind"] == "student"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    args[4] = "layers=2,hidden=48,heads=4,ffn=96"
    code, text, err = run([*args, "--overwrite", "--json"], capsys)
    assert code == 0 and json.loads(text)["parameters"] > first["parameters"], err
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 48
    # a user's folder is never replaced, with or without --overwrite
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    args[-1] = str(mine)
    code, _, err = run([*args, "--overwrite"], capsys)
    assert code == 2 and "not written by hwnas" in err and (mine / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_train_json_is_one_object(tmp_path, tiny_teacher, space_file, corpus, capsys):
    out = tmp_path / "sn"
    code, text, err = run(["supernet", "train", "--teacher", str(tiny_teacher), "--space", str(space_file), "--data",
                           str(corpus), "--steps", "1", "--batch-size", "2", "--max-len", "16", "--heldout", "4",
                           "--threads", "1", "--quiet", "--json", "--out", str(out)], capsys)
    result = json.loads(text)  # the whole of stdout
    assert code == 0 and [r["supernet"] for r in result["supernets"]] == [str(out)], err
    assert result["supernets"][0]["steps_done"] == 1 and result["supernets"][0]["space"] == "t"


def test_architecture_outside_the_space_is_one_line(trained_dir, capsys):
    code, _, err = run(["supernet", "score", str(trained_dir), "--arch", "layers=3,hidden=32,heads=2,ffn=64"], capsys)
    assert code == 2 and "layers=3 is outside space 't'" in err and len(err.strip().splitlines()) == 1


def test_bad_teacher_and_empty_data_are_one_line(tmp_path, tiny_teacher, space_file, corpus, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    code, _, err = run(["supernet", "train", "--teacher", str(tiny_teacher), "--space", str(space_file), "--data", str(empty),
                        "--steps", "1", "--max-len", "16", "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and "holds no text" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["supernet", "train", "--teacher", str(tmp_path), "--space", str(space_file), "--data", str(corpus),
                        "--steps", "1", "--max-len", "16", "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "no config.json" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["supernet", "score", str(tmp_path), "--arch", "layers=1,hidden=32,heads=2,ffn=64"], capsys)
    assert code == 2 and "not a supernet folder" in err


def test_info(trained_dir, capsys):
    code, out, _ = run(["supernet", "info", str(trained_dir)], capsys)
    assert code == 0 and "3 of 3" in out
