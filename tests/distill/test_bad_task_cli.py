"""Bad input of issue 14 at the command line: a task with one class, labels missing in some rows, a recipe
file naming an unknown loss. Each is one line, exit 2, and what is already in --out stays as it was."""

from __future__ import annotations

import pytest

from hwnas.outputs import write_marker
from tests.cli_run import run_cli as _run


@pytest.mark.parametrize("name, content, recipe, message", [
    ("one.tsv", "sentence\tlabel\ngood\t1\nfine\t1\nnice\t1\n", None,
     "one.tsv: every label is 1; a classification task needs at least two classes"),
    ("holes.tsv", "sentence\tlabel\ngood\t1\nbad\t0\nfine\t\nawful\t0\n", None,
     "holes.tsv, row 4: missing label in column 'label'"),
    ("holes.jsonl", '{"text": "good", "label": 1}\n{"text": "bad"}\n', None,
     "holes.jsonl, row 2: missing label in column 'label'"),
    ("ok.tsv", "sentence\tlabel\ngood\t1\nbad\t0\n", "weights: {logits: 1, contrastive_magic: 0.5}\n",
     "unknown loss 'contrastive_magic' in weights; losses are: "),
])
def test_bad_task_or_recipe_is_one_line_exit_2_and_keeps_out(name, content, recipe, message, tmp_path, capsys):
    task = tmp_path / name
    task.write_text(content)
    out = tmp_path / "student"
    out.mkdir()
    write_marker(out, "distill")  # a student folder hwnas wrote earlier (a foreign folder is refused sooner)
    kept = out / "model.safetensors"
    kept.write_bytes(b"weights trained before")  # stands for a student already there
    args = ["distill", "--arch", "L1-H32-A2-I64", "--task", str(task), "--out", str(out), "--quiet", "--no-measure"]
    if recipe is not None:
        (tmp_path / "recipe.yaml").write_text(recipe)
        args += ["--losses", str(tmp_path / "recipe.yaml")]
    code, _, err = _run(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert kept.read_bytes() == b"weights trained before"


def test_distill_front_refuses_an_unknown_loss_before_writing(tmp_path, capsys):
    import json

    search = tmp_path / "search"
    search.mkdir()
    (search / "front.json").write_text(json.dumps({"front": [
        {"arch": {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64}, "score": 0.5, "latency_ms": 1.0}]}))
    (tmp_path / "recipe.yaml").write_text("weights: {logits: 1, dark_knowledge: 2}\n")
    code, _, err = _run(["distill", "front", str(search), "--task", "x.tsv", "--cluster", "local",
                         "--losses", str(tmp_path / "recipe.yaml")], capsys)
    assert code == 2 and "unknown loss 'dark_knowledge'" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in search.iterdir()) == ["front.json"]
