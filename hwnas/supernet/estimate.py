"""Accuracy estimators: score any architecture of a supernet's space without training it.

Two metrics behind one interface, :class:`SupernetEstimator`:

``"loss"``
    the held-out distillation loss of the sub-network (the same MiniLM-v2
    relation loss as in training, on the rows kept out of training and stored
    in the supernet folder). The score is *minus* the loss, so higher is better.
``"proxy"``
    a linear probe: mean-pooled last hidden states of the sub-network on a
    small labelled set (default: the embedded SST-2 sample, 1000 training and
    500 evaluation sentences), a logistic regression fitted on the training
    part, and the accuracy on the evaluation part (higher is better).

``score(archs)`` takes a batch of architectures; the teacher's targets (loss)
and the tokenised sentences (proxy) are computed once and shared by the whole
batch. Scores are cached per architecture in memory and, when ``cache`` is a
path (default: ``<supernet>/estimates/<metric>-<signature>.json``), on disk; the
signature covers the supernet's weights and the estimator's settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas._files import atomic_write_text
from hwnas.errors import InvalidConfig, InvalidData, check_int
from hwnas.space import Architecture, as_architectures

__all__ = ["SupernetEstimator", "METRICS", "as_architectures"]

METRICS = ("loss", "proxy")


def _read_labelled(path: Path, rows: int, what: str) -> tuple[list[str], np.ndarray]:
    """The first ``rows`` texts of a labelled classification file and their class indices (the task reader's)."""
    from hwnas.distill.data import load_task

    data = load_task(path, text_pair_col="", limit=rows)
    if data.kind != "classification" or data.num_labels < 2:
        raise InvalidData(f"{what} file {path} needs at least two different class labels; got {data.label_names or data.kind}")
    return data.texts, np.asarray(data.labels)


class SupernetEstimator:
    """Score architectures with a supernet; higher is better.

    Args:
        supernet: a :class:`~hwnas.supernet.supernet.Supernet` or a supernet folder.
        metric: ``"loss"`` (minus the held-out distillation loss) or ``"proxy"``
            (linear-probe accuracy on a labelled set, in [0, 1]).
        batch_size: sequences per forward pass.
        heldout_rows: use at most this many held-out rows (loss); ``None``: all stored.
        proxy_train, proxy_eval: labelled TSV/CSV files (``sentence``/``text`` and
            ``label`` columns); ``None``: the embedded SST-2 train/dev samples.
        proxy_train_rows, proxy_eval_rows: rows read from each.
        proxy_seq_len: truncation length of proxy sentences in tokens.
        cache: a JSON file for cached scores, ``None`` for the default file in the
            supernet folder, or ``False`` for memory only.
        threads: torch intra-op threads while scoring (``None``: unchanged).
    """

    def __init__(
        self, supernet: Any, metric: str = "loss", *, batch_size: int = 32, heldout_rows: int | None = None,
        proxy_train: str | Path | None = None, proxy_eval: str | Path | None = None, proxy_train_rows: int = 1000,
        proxy_eval_rows: int = 500, proxy_seq_len: int = 64, cache: str | Path | bool | None = None,
        threads: int | None = None, teacher: Any = None,
    ) -> None:
        if metric not in METRICS:
            raise InvalidConfig(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
        for name, v in (("batch_size", batch_size), ("proxy_train_rows", proxy_train_rows),
                        ("proxy_eval_rows", proxy_eval_rows), ("proxy_seq_len", proxy_seq_len)):
            check_int(name, v)
        check_int("heldout_rows", heldout_rows, none_ok=True)
        if isinstance(supernet, (str, Path)):
            from hwnas.supernet.supernet import load_supernet

            supernet = load_supernet(supernet)
        self.supernet = supernet
        self.metric = metric
        self.batch_size = batch_size
        self.heldout_rows = heldout_rows
        self.threads = threads
        self._teacher = teacher
        from hwnas.data import embedded_path

        self.proxy_train = Path(proxy_train) if proxy_train else embedded_path("sst2/train.tsv")
        self.proxy_eval = Path(proxy_eval) if proxy_eval else embedded_path("sst2/dev.tsv")
        self.proxy_train_rows, self.proxy_eval_rows, self.proxy_seq_len = proxy_train_rows, proxy_eval_rows, proxy_seq_len
        self._prepared = False
        self._memory: dict[str, float] = {}
        settings = {
            "metric": metric, "weights": supernet.meta.get("weights_sha256"), "steps": supernet.steps_done,
            "heldout_rows": heldout_rows,
        }
        if metric == "proxy":
            settings |= {"train": str(self.proxy_train), "eval": str(self.proxy_eval), "train_rows": proxy_train_rows,
                         "eval_rows": proxy_eval_rows, "seq_len": proxy_seq_len}
        self.signature = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.name = f"supernet-{metric}:{supernet.space.name}@{supernet.steps_done}"
        if cache is False:
            self.cache_path = None
        elif cache is None or cache is True:
            self.cache_path = Path(supernet.path) / "estimates" / f"{metric}-{self.signature}.json"
        else:
            self.cache_path = Path(cache)
        self._load_cache()

    def __repr__(self) -> str:
        return f"SupernetEstimator(name={self.name!r}, cached={len(self._memory)})"

    # ----------------------------------------------------------------- cache
    def _cached_scores(self) -> dict[str, float]:
        """The scores in the cache file for this estimator's signature (none when unreadable: only a lost speed-up)."""
        try:
            data = json.loads(self.cache_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        if data.get("signature") != self.signature:
            return {}
        return {k: float(v) for k, v in data.get("scores", {}).items()}

    def _load_cache(self) -> None:
        if self.cache_path is not None:
            self._memory.update(self._cached_scores())

    def _save_cache(self) -> None:
        if self.cache_path is None:
            return
        merged = {**self._cached_scores(), **self._memory}  # another process may have added scores meanwhile
        try:
            atomic_write_text(self.cache_path, json.dumps({"name": self.name, "signature": self.signature, "scores": merged},
                                                          indent=1))
        except OSError:
            pass  # a read-only supernet folder: keep the in-memory cache only

    # ----------------------------------------------------------------- setup
    def _prepare(self) -> None:
        if self._prepared:
            return
        from safetensors.torch import load_file

        if self.metric == "loss":
            path = Path(self.supernet.path) / "heldout.safetensors"
            if not path.is_file():
                raise InvalidData(f"{self.supernet.path} has no heldout.safetensors; the loss estimator needs held-out rows")
            held = load_file(str(path))
            ids, mask = held["input_ids"].long(), held["attention_mask"].long()
            if self.heldout_rows:
                ids, mask = ids[: self.heldout_rows], mask[: self.heldout_rows]
            if self._teacher is None:
                from hwnas.supernet.teacher import load_teacher

                self._teacher = load_teacher(self.supernet.teacher_location, tokenizer=False)
            from hwnas.supernet.teacher import teacher_qkv

            self._batches = []
            for i in range(0, len(ids), self.batch_size):
                b_mask = mask[i : i + self.batch_size]
                width = int(b_mask.sum(1).max())
                b_ids, b_mask = ids[i : i + self.batch_size, :width], b_mask[:, :width]
                qkv = teacher_qkv(self._teacher.model, b_ids, b_mask, int(self.supernet.meta.get("teacher_layer", -1)))
                self._batches.append((b_ids, b_mask, qkv))
        else:
            tok = self.supernet.tokenizer
            self._proxy = {}
            for split, path, rows in (("train", self.proxy_train, self.proxy_train_rows), ("eval", self.proxy_eval, self.proxy_eval_rows)):
                texts, labels = _read_labelled(path, rows, f"proxy {split}")
                order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch
                batches = []
                for i in range(0, len(texts), self.batch_size):
                    idx = order[i : i + self.batch_size]
                    enc = tok([texts[j] for j in idx], padding=True, truncation=True, max_length=self.proxy_seq_len, return_tensors="pt")
                    batches.append((idx, enc["input_ids"], enc["attention_mask"]))
                self._proxy[split] = (batches, labels)
            if len(set(self._proxy["eval"][1].tolist())) < 2:
                raise InvalidData("the proxy evaluation set needs at least two classes")
        self._prepared = True

    # ----------------------------------------------------------------- score
    def score(self, archs: Sequence[Any] | np.ndarray) -> np.ndarray:
        """One float per architecture, higher is better (``n`` float64 array).

        Args:
            archs: :class:`Architecture` objects, ``key`` strings, mappings, or an
                ``n x 4`` int array (layers, hidden, heads, ffn). Every one must lie
                in the supernet's space.
        """
        archs = as_architectures(archs)
        for a in archs:
            self.supernet.validate(a)
        todo = list(dict.fromkeys(a for a in archs if a.key not in self._memory))
        if todo:
            import torch

            old_threads = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                self._prepare()
                values = self._loss(todo) if self.metric == "loss" else self._probe(todo)
            finally:
                torch.set_num_threads(old_threads)
            for a, v in zip(todo, values, strict=True):
                self._memory[a.key] = float(v)
            self._save_cache()
        return np.array([self._memory[a.key] for a in archs], dtype=np.float64)

    def heldout_loss(self, archs: Sequence[Any]) -> np.ndarray:
        """The held-out distillation loss itself (lower is better); needs ``metric="loss"``."""
        if self.metric != "loss":
            raise InvalidConfig("heldout_loss needs an estimator with metric='loss'")
        return -self.score(archs)

    def _loss(self, archs: list[Architecture]) -> list[float]:
        import torch

        from hwnas.supernet.losses import TeacherTargets, distillation_loss

        model, r = self.supernet.model.eval(), self.supernet.relation_heads
        hidden_w = float(self.supernet.meta.get("hidden_weight", 0.0))
        totals = np.zeros(len(archs))
        weights = 0.0
        with torch.no_grad():
            for ids, mask, qkv in self._batches:
                t_hidden = None
                if hidden_w:
                    t_hidden = self._teacher.model(input_ids=ids, attention_mask=mask).last_hidden_state
                targets = TeacherTargets(qkv, mask, r, t_hidden)
                w = float(mask.sum())
                for j, arch in enumerate(archs):
                    o = model(ids, mask, arch, return_qkv=True)
                    totals[j] += w * float(distillation_loss(targets, o.qkv, o.last_hidden_state, hidden_weight=hidden_w))
                weights += w
        return list(-totals / weights)

    def _features(self, arch: Architecture, split: str) -> np.ndarray:
        import torch

        batches, labels = self._proxy[split]
        feats = np.zeros((len(labels), arch.hidden), dtype=np.float32)
        with torch.no_grad():
            for idx, ids, mask in batches:
                h = self.supernet.model(ids, mask, arch).last_hidden_state
                m = mask[..., None].to(h.dtype)
                feats[idx] = ((h * m).sum(1) / m.sum(1).clamp_min(1.0)).numpy()
        return feats

    def _probe(self, archs: list[Architecture]) -> list[float]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        out = []
        y_train, y_eval = self._proxy["train"][1], self._proxy["eval"][1]
        for arch in archs:
            x_train, x_eval = self._features(arch, "train"), self._features(arch, "eval")
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
            clf.fit(x_train, y_train)
            out.append(float((clf.predict(x_eval) == y_eval).mean()))
        return out
