"""bench/bench_rescore.py: real (tiny) exported students scored again on chosen rows, cached, with the verdict rule
of bench_end_to_end.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_rescore  # noqa: E402
from bench_end_to_end import compare  # noqa: E402

SENTENCES = ["a fine film", "dull and slow", "i loved it", "a waste of time", "bright and warm", "tedious",
             "great acting", "bad plot", "wonderful", "awful ending", "a joy", "boring"]


def _student(folder: Path, seed: int, favour: int) -> Path:
    """A tiny random classifier whose bias makes it answer ``favour`` (nearly) always."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from hwnas.distill.models import resolve_teacher
    from hwnas.space import Architecture

    tokenizer = AutoTokenizer.from_pretrained(resolve_teacher("default"))
    torch.manual_seed(seed)
    config = Architecture(1, 32, 2, 64).to_bert_config(vocab_size=tokenizer.vocab_size, max_position_embeddings=64)
    config.num_labels = 2
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([8.0, 0.0] if favour == 0 else [0.0, 8.0]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "distill_config.json").write_text(json.dumps({"max_len": 16}))
    return folder


def _accuracy(folder: Path, rows: list[int], labels: list[int]) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    hits = 0
    with torch.no_grad():
        for i in rows:
            enc = tok(SENTENCES[i], truncation=True, max_length=16, return_tensors="pt")
            hits += int(model(**enc).logits.argmax(-1).item() == labels[i])
    return hits / len(rows)


def test_rescore_scores_each_student_on_the_rows_caches_and_gives_the_verdict(tmp_path, capsys):
    labels = [1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0]  # rows 0-3 and 8-11: five 1s, three 0s
    eval_file = tmp_path / "dev.tsv"
    eval_file.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in zip(SENTENCES, labels, strict=True)))
    arms = {}
    favour = {"searched": (1, 1, 1), "largest-params": (0, 1, 1)}
    for arm, key in (("searched", "a"), ("largest-params", "b")):
        runs = {str(s): {"seed": s, "folder": str(_student(tmp_path / f"{arm}-s{s}", s, favour[arm][s])),
                         "accuracy": 0.5 + s / 10} for s in range(3)}
        arms[arm] = {"key": key, "runs": runs}
    results = tmp_path / "e2e.json"
    results.write_text(json.dumps({"budgets": [{"label": "20ms", "arms": arms}]}))
    cache = tmp_path / "cache.json"
    argv = ["--results", str(results), "--eval", str(eval_file), "--rows", "0:4,8:12", "--seeds", "0,2",
            "--cache", str(cache)]
    assert bench_rescore.main(argv) == 0
    out = capsys.readouterr().out
    rows = [0, 1, 2, 3, 8, 9, 10, 11]
    want = {arm: [_accuracy(tmp_path / f"{arm}-s{s}", rows, labels) for s in (0, 2)] for arm in arms}
    stored = json.loads(cache.read_text())
    assert len(stored) == 4 and all(v["n"] == 8 and v["rows"] == "0:4,8:12" for v in stored.values())
    got = {arm: [next(v["accuracy"] for v in stored.values() if v["folder"].endswith(f"{arm}-s{s}")) for s in (0, 2)]
           for arm in arms}
    assert got == want and want == {"searched": [0.625, 0.625], "largest-params": [0.375, 0.625]}
    verdict = compare(want["searched"], want["largest-params"], False)
    assert f"diff {verdict['diff'] * 100:+.2f} points" in out and verdict["verdict"] in out
    assert "2 and 2 seeds" in out
    old = compare([0.5, 0.7], [0.5, 0.7], False)
    assert f"original rows            searched 60.00  largest-params 60.00  diff {old['diff'] * 100:+.2f}" in out
    with pytest.raises(SystemExit, match="has 12 rows"):
        bench_rescore.main([*argv[:4], "--rows", "0:20", "--seeds", "0", "--cache", str(tmp_path / "c2.json")])
    # a rerun reads the cache: the students' weights are no longer needed
    for arm in arms:
        for s in (0, 2):
            (tmp_path / f"{arm}-s{s}" / "model.safetensors").unlink()
    assert bench_rescore.main(argv) == 0
    assert f"diff {verdict['diff'] * 100:+.2f} points" in capsys.readouterr().out
    for arm in arms:  # seed 1 was never scored; without its weights it cannot be
        (tmp_path / f"{arm}-s1" / "model.safetensors").unlink()
    with pytest.raises(SystemExit, match="no exported student in"):
        bench_rescore.main([*argv[:6], "--seeds", "1", "--cache", str(cache)])


def test_rescore_refuses_malformed_rows(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_rescore.main(["--results", "x.json", "--eval", "d.tsv", "--rows", "5:2"])
    assert exc.value.code == 2 and "0 <= START < STOP" in capsys.readouterr().err
