"""Fixtures of the estimator tests: a tiny real teacher, a tiny supernet trained from it, a labelled task file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.supernet.conftest import TEXTS, make_teacher


@pytest.fixture(scope="session")
def est_teacher(tmp_path_factory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("est-teacher") / "tiny-bert")


@pytest.fixture(scope="session")
def est_space():
    from hwnas.space import SearchSpace

    return SearchSpace(name="t", layers=(1, 2), hidden=(32, 48), heads=(2, 4), ffn=(64, 96))


@pytest.fixture(scope="session")
def est_task(tmp_path_factory) -> Path:
    """A labelled TSV: label 1 for sentences with a positive word, else 0 (64 rows, shuffled)."""
    import random

    positive = ("good", "great", "best", "funny", "love")
    rows = [(t, int(any(w in t.split() for w in positive))) for t in TEXTS]
    rows = rows + [(f"{t} indeed", y) for t, y in rows]
    random.Random(0).shuffle(rows)
    path = tmp_path_factory.mktemp("est-task") / "task.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def est_task_teacher(tmp_path_factory, est_teacher, est_task) -> Path:
    """The tiny teacher really fine-tuned on ``est_task`` (a few steps) by hwnas's own teacher fine-tuning."""
    from hwnas.distill.data import load_task
    from hwnas.distill.teacher import finetune_teacher
    from hwnas.distill.trainer import TrainConfig

    data = load_task(est_task)
    tc = TrainConfig(steps=4, batch_size=8, lr=1e-3, max_len=16, checkpoint_every=0)
    return Path(finetune_teacher(est_teacher, data, None, tc, tmp_path_factory.mktemp("est-task-teacher"),
                                 max_len=16).path)


@pytest.fixture(scope="session")
def est_supernet(tmp_path_factory, est_teacher, est_space) -> Path:
    from hwnas.supernet.train import TrainConfig, train_supernet

    corpus = tmp_path_factory.mktemp("est-corpus") / "corpus.txt"
    corpus.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path_factory.mktemp("est-supernet") / "sn"
    train_supernet(TrainConfig(space=est_space, out=str(out), teacher=str(est_teacher), data=str(corpus), steps=2,
                               batch_size=4, seq_len=16, heldout=8, checkpoint_every=2, threads=1, random_subnets=1))
    return out


def context(name: str, est_teacher, est_task, est_supernet, tmp_path, task_teacher=None, supernet_start=False) -> dict:
    """What each registered estimator needs, cheap settings for the expensive ones."""
    ctx: dict = {"teacher": str(est_teacher), "task": str(est_task)}
    if name.startswith("supernet-"):
        ctx["supernet"] = str(est_supernet)
        ctx["cache"] = False
    if name == "supernet-probe":
        ctx |= {"proxy_train": str(est_task), "proxy_eval": str(est_task), "proxy_train_rows": 32, "proxy_eval_rows": 16}
    if name == "distill-proxy":
        ctx |= {"teacher": str(task_teacher), "steps": 2, "batch_size": 4, "eval_rows": 16, "max_len": 16,
                "cache": str(tmp_path / "distill-proxy.json")}
        if est_supernet is not None and supernet_start:
            ctx["supernet"] = str(est_supernet)
    if name == "task-proxy":
        ctx |= {"steps": 2, "batch_size": 4, "train_rows": 48, "eval_rows": 16, "max_len": 16,
                "cache": str(tmp_path / "task-proxy.json")}
    if name in ("wpca", "attn-confidence"):
        ctx |= {"rows": 8, "max_len": 16}
    if name == "learned":
        from hwnas.estimators.learned import fit_learned
        from hwnas.space import SearchSpace

        space = SearchSpace(name="t", layers=(1, 2), hidden=(32, 48), heads=(2, 4), ffn=(64, 96))
        table = write_synthetic_table(tmp_path / "gt.csv", space.enumerate(), bands=3)
        ctx["path"] = str(fit_learned(table, task="sst2", space=space, out=tmp_path / "learned").out)
    return ctx


def synthetic_accuracy(arch) -> float:
    """A known relation for the learned-estimator tests: wider is better, deeper is slightly worse."""
    return 0.50 + 0.0005 * arch.hidden - 0.004 * arch.layers + 0.00002 * arch.ffn


def write_synthetic_table(path: Path, archs, *, bands: int, space: str = "t", task: str = "sst2",
                          accuracy=synthetic_accuracy, seeds: tuple[int, ...] = (0,)) -> Path:
    """A ground-truth CSV in the columns bench/ground_truth/run.py writes; students dealt round-robin into ``bands``
    bands (a test fixture of the mechanics, not a measurement)."""
    import csv

    fields = ["arch", "layers", "hidden", "heads", "ffn", "space", "band", "task", "seed", "recipe", "steps",
              "accuracy", "predicted_ms"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for i, a in enumerate(archs):
            for seed in seeds:
                w.writerow({"arch": a.key, **a.as_dict(), "space": space, "band": f"{space}-b{i % bands}", "task": task,
                            "seed": seed, "recipe": "synthetic", "steps": 0, "accuracy": f"{accuracy(a):.5f}",
                            "predicted_ms": 1.0 + i % bands})
    return path


def load_bench(name: str, path: str | None = None):
    """``bench/<name>.py`` (or ``bench/<path>``, as module ``name``) as a module (the benchmarks are scripts, not part
    of the package), loaded once; ``bench/`` goes on the path because the scripts import each other."""
    import importlib.util
    import sys

    root = Path(__file__).resolve().parents[2]
    if str(root / "bench") not in sys.path:
        sys.path.insert(0, str(root / "bench"))
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, root / "bench" / (path or f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]
