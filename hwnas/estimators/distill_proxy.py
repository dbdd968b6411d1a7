"""The distillation recipe itself, shortened: distill each student for a few steps and score it.

``task-proxy`` fine-tunes a student on the labels alone. The students a search
ranks will be *distilled* (logits, hidden states, attention from a fine-tuned
teacher), so ``distill-proxy`` runs that: the student starts where ``hwnas
distill`` starts it (teacher slices or the supernet's slice), is distilled with
the given losses by the same training loop (:func:`hwnas.distill.trainer.train`)
for ``steps`` steps instead of hundreds or thousands, and is scored on held-out
rows it never trained on. One run records several scores; ``metric`` chooses
which one :meth:`score` returns:

- ``accuracy``: accuracy on the held-out rows;
- ``agreement``: how often the student's prediction equals the teacher's (needs no labels);
- ``kd``: minus the mean KL divergence from the teacher's to the student's
  predicted distribution (temperature 1), a continuous score with less sampling
  noise than a count of right answers.

All three are cached on disk per architecture, keyed by everything that changes
them (teacher weights, data files, losses, settings), so switching the metric,
or asking again, costs nothing. A run also keeps, row by row, whether the student
was right and whether it agreed with the teacher (two bit strings, ``correct`` and
``agrees``, hex-encoded), so accuracy and agreement can be read on any slice of the
held-out rows afterwards (:meth:`DistillProxy.slice_metrics`) without training again:
one run scored on all of a validation file gives a score on the rows a ground truth
used and one on rows it did not, and a bootstrap over rows (the evaluation noise).

``record_at`` also scores the student at earlier steps of the same run (say 200, 300
and 400 of 500), recorded as ``accuracy@200``, ``correct@200`` and so on: the
training is the same, so one run gives the whole curve of what stopping earlier would
have scored (``metric="accuracy@300"`` scores with the figure at step 300).

Cost: the recipe's cost per step times ``steps``, plus one pass over the held-out
rows; ``bench/bench_estimators.py`` prints the measured figure.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hwnas._files import sha256_file
from hwnas.errors import InvalidConfig, InvalidData, check_int
from hwnas.estimators._cache import DiskResults
from hwnas.estimators._encoders import EncoderSource
from hwnas.estimators.base import ESTIMATORS, AccuracyEstimator
from hwnas.space import Architecture

__all__ = ["DistillProxy", "METRICS", "ROW_RECORDS", "pack_bits", "unpack_bits"]

#: What a run records; :meth:`DistillProxy.score` returns one of them (higher is better for all).
METRICS = ("accuracy", "agreement", "kd")


#: The per-row records of a run (hex-encoded bit strings, one bit per held-out row, first row first).
ROW_RECORDS = ("correct", "agrees")

#: The per-row record whose mean is each metric (``kd`` has none).
_ROW_OF_METRIC = {"accuracy": "correct", "agreement": "agrees"}


def pack_bits(flags: Any) -> str:
    """Booleans, one per row, as a hex string (``np.packbits`` order: first row in the top bit)."""
    return np.packbits(np.asarray(flags, dtype=bool)).tobytes().hex()


def unpack_bits(text: str, rows: int) -> np.ndarray:
    """The first ``rows`` booleans of a :func:`pack_bits` string."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:rows].astype(bool)


def _clean_run(rec: Any) -> dict[str, Any] | None:
    """A cached run with every metric finite, its numbers as floats (and its per-row hex records, ``correct``,
    ``agrees`` and their ``@STEP`` forms, when they read back); anything else is dropped."""
    if not isinstance(rec, dict) or not all(isinstance(rec.get(m), (int, float)) and np.isfinite(rec[m])
                                            for m in METRICS):
        return None
    out: dict[str, Any] = {k: float(v) for k, v in rec.items() if isinstance(v, (int, float))}
    for k, v in rec.items():
        if k.partition("@")[0] in ROW_RECORDS and isinstance(v, str):
            try:
                bytes.fromhex(v)
            except ValueError:
                continue
            out[k] = v
    return out


def _loss_config(losses: Any):
    from hwnas.distill.api import DEFAULT_LOSSES
    from hwnas.distill.losses import LossConfig

    if losses is None:
        return LossConfig(weights=dict(DEFAULT_LOSSES))
    if isinstance(losses, LossConfig):
        return losses
    if isinstance(losses, dict):
        return LossConfig.from_dict(losses)
    return LossConfig.parse(str(losses))


@ESTIMATORS.register("distill-proxy")
class DistillProxy(AccuracyEstimator):
    """A few steps of the distillation recipe, scored on held-out rows (higher is better).

    Args:
        task: a labelled ``.tsv``/``.csv``/``.jsonl`` file (as ``hwnas distill --task``).
        teacher: a teacher already fine-tuned on the task (a folder whose classification head has
            the task's number of labels, such as the teachers ``hwnas distill`` caches).
        supernet: start students from the supernet's slices instead of the teacher's.
        eval_task: a separate file to score on; without it the last ``eval_rows`` rows of ``task``
            are held out and the students train on the rest.
        eval_offset, eval_rows: score on rows ``eval_offset .. eval_offset + eval_rows`` of ``eval_task``
            (``eval_offset`` only applies with ``eval_task``); ``eval_rows=None``: 2,000, or without
            ``eval_task`` the smaller of 2,000 and a fifth of the task file.
        train_rows: train on the first ``train_rows`` training rows only (``None``: all of them).
        losses: a :class:`~hwnas.distill.losses.LossConfig`, its dict, a JSON file, or
            ``"logits=1,hidden=1"`` (default: ``hwnas distill``'s).
        steps, batch_size, lr, max_len, seed: the short distillation (6% warm-up, linear decay,
            as ``hwnas distill``).
        schedule_steps: run the learning-rate (and loss-weight) schedule of a ``schedule_steps``-step
            distillation and stop after ``steps`` of it: the first ``steps`` steps of the full run, same
            batches, same rates (``None``: a whole ``steps``-step schedule, compressed).
        metric: ``accuracy``, ``agreement`` or ``kd`` (see the module docstring), or ``NAME@STEP`` for its
            figure at a step of ``record_at``.
        record_at: earlier steps (each below ``steps``) at which the same run is also scored (module docstring).
        cache: a JSON file for the scores; ``None``: ``~/.cache/hwnas/distill-proxy/<signature>.json``;
            ``False``: memory only.
        threads: torch intra-op threads while training (``None``: unchanged).
    """

    name = "distill-proxy"
    requires = frozenset({"task", "teacher"})
    description = ("a few steps of the distillation recipe from a fine-tuned teacher, scored on held-out rows; "
                   "~1 min per small student at 100-200 steps")

    def __init__(self, *, task: str | Path, teacher: str | Path, supernet: Any = None,
                 eval_task: str | Path | None = None, eval_offset: int = 0, eval_rows: int | None = None,
                 train_rows: int | None = None, losses: Any = None, steps: int = 100, batch_size: int = 32,
                 lr: float = 1e-4, max_len: int = 64, seed: int = 0, schedule_steps: int | None = None,
                 metric: str = "accuracy", record_at: Any = (),
                 cache: str | Path | bool | None = None, threads: int | None = None, **_: Any) -> None:
        super().__init__()
        for n, v in (("steps", steps), ("batch_size", batch_size), ("max_len", max_len)):
            check_int(n, v)
        check_int("eval_rows", eval_rows, none_ok=True)
        check_int("schedule_steps", schedule_steps, none_ok=True)
        if schedule_steps is not None and schedule_steps < steps:
            raise InvalidConfig(f"schedule_steps must be at least steps ({steps}); got {schedule_steps}")
        check_int("eval_offset", eval_offset, minimum=0)
        if train_rows is not None:
            check_int("train_rows", train_rows)
        if not isinstance(lr, (int, float)) or not 0 < lr < 1:
            raise InvalidConfig(f"lr must be a number in (0, 1); got {lr!r}")
        if isinstance(record_at, str):
            parts = [x.strip() for x in record_at.replace(";", ",").split(",") if x.strip()]
            if not all(x.isdigit() for x in parts):
                raise InvalidConfig(f"record_at must be step counts, comma-separated; got {record_at!r}")
            record_at = [int(x) for x in parts]
        elif isinstance(record_at, int):
            record_at = [record_at]
        record_at = sorted(set(record_at or ()))
        for r in record_at:
            if not isinstance(r, int) or isinstance(r, bool) or not 1 <= r < steps:
                raise InvalidConfig(f"record_at steps must be integers from 1 to steps - 1 = {steps - 1}; got {r!r}")
        self.record_at = tuple(record_at)
        base, _, at = str(metric).partition("@")
        if base not in METRICS or (at and not (at.isdigit() and int(at) in self.record_at)):
            steps_note = (f", or one of them @STEP for a step in record_at ({', '.join(map(str, self.record_at))})"
                          if self.record_at else " (NAME@STEP needs that step in record_at)")
            raise InvalidConfig(f"distill-proxy metric must be one of {', '.join(METRICS)}{steps_note}; got {metric!r}")
        if teacher in (None, "", "default"):
            raise InvalidConfig("distill-proxy needs a teacher fine-tuned on the task (--teacher FOLDER, e.g. one of "
                                "the teachers hwnas distill caches); the default teacher has no task head")
        from hwnas.distill.data import load_task

        path = Path(task)
        if not path.is_file():
            raise InvalidData(f"task file {path} does not exist")
        teacher_dir = Path(teacher)
        if not (teacher_dir / "config.json").is_file():
            raise InvalidConfig(f"teacher {teacher_dir} is not a model folder (no config.json)")
        data = load_task(path)
        if data.kind != "classification":
            raise InvalidConfig(f"distill-proxy scores classification tasks; {path} looks like {data.kind}")
        from transformers import AutoConfig

        from hwnas.distill.teacher import task_head_labels

        labels = task_head_labels(AutoConfig.from_pretrained(teacher_dir))
        if labels != data.num_labels:
            raise InvalidConfig(f"teacher {teacher_dir} is not fine-tuned on this task (it needs a sequence-"
                                f"classification head with {data.num_labels} labels; it has "
                                f"{labels if labels is not None else 'none'}); give the task teacher hwnas distill "
                                "caches")
        if eval_rows is None:  # 2,000 rows, or a fifth of a small task file
            eval_rows = 2000 if eval_task is not None else max(1, min(2000, len(data) // 5))
        if eval_task is not None:
            epath = Path(eval_task)
            if not epath.is_file():
                raise InvalidData(f"evaluation file {epath} does not exist")
            held_all = load_task(epath, limit=eval_offset + eval_rows)
            if len(held_all) < eval_offset + eval_rows:
                raise InvalidData(f"evaluation file {epath} has {len(held_all)} rows; distill-proxy needs eval_offset "
                                  f"+ eval_rows = {eval_offset + eval_rows}")
            held = held_all.subset(range(eval_offset, eval_offset + eval_rows))
            train = data
            data_sig = [sha256_file(path), sha256_file(epath)]
        else:
            if len(data) <= eval_rows:
                raise InvalidData(f"task file {path} has {len(data)} rows; holding out eval_rows = {eval_rows} "
                                  "leaves none to train on (give --eval-task or fewer eval rows)")
            train = data.subset(range(len(data) - eval_rows))
            held = data.subset(range(len(data) - eval_rows, len(data)))
            data_sig = [sha256_file(path)]
        if train_rows is not None:
            train = train.subset(range(min(train_rows, len(train))))
        if len(set(held.labels)) < 2:
            raise InvalidData("the held-out rows hold one class only; give a shuffled task file")
        self.train, self.held, self.num_labels = train, held, data.num_labels
        self.loss_config = _loss_config(losses)
        self.teacher_dir = teacher_dir
        weights = teacher_dir / "model.safetensors"
        self.source = EncoderSource(supernet=supernet, teacher=teacher_dir)
        self.steps, self.batch_size, self.lr, self.max_len, self.seed = steps, batch_size, float(lr), max_len, seed
        self.schedule_steps = schedule_steps if schedule_steps is not None and schedule_steps > steps else None
        self.metric, self.threads = metric, threads
        sn_sig = self.source.signature if self.source.supernet is not None else "teacher-slices"
        settings = {"teacher": sha256_file(weights) if weights.is_file() else str(teacher_dir.resolve()),
                    "init": sn_sig, "data": data_sig, "eval_offset": eval_offset if eval_task is not None else None,
                    "eval_rows": eval_rows, "train_rows": train_rows, "losses": self.loss_config.to_dict(),
                    "steps": steps, **({"schedule_steps": self.schedule_steps} if self.schedule_steps else {}),
                    "batch_size": batch_size, "lr": self.lr, "max_len": max_len, "seed": seed,
                    **({"record_at": list(self.record_at)} if self.record_at else {})}
        self.signature = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self._cache = DiskResults(cache, name=self.name, signature=self.signature, field="runs", clean=_clean_run)
        self.cache_path = self._cache.path
        self._disk = self._cache.read()
        self._ready: Any = None
        self.label = (f"distill-proxy[{metric}, {steps} steps"
                      + (f" of {self.schedule_steps}" if self.schedule_steps else "") + "]")

    # ------------------------------------------------------------ space
    def validate(self, arch: Architecture) -> Architecture:
        return self.source.validate(arch)

    def check_space(self, space) -> None:
        self.validate(space.largest)

    @property
    def cached(self) -> set[str]:
        """Keys of the architectures whose run is cached (in memory or in the results file)."""
        return set(self._disk)

    def metrics(self, archs) -> list[dict[str, Any]]:
        """Every recorded metric (and the run's seconds) of each architecture, running those not yet cached."""
        archs = self._as_archs(archs)
        self.score(archs)
        return [dict(self._disk[a.key]) for a in archs]

    def slice_metrics(self, archs, start: int = 0, stop: int | None = None, *,
                      step: int | None = None) -> list[dict[str, float]]:
        """Accuracy and agreement of each architecture on held-out rows ``start:stop`` (positions among this
        estimator's ``eval_rows``), read from the per-row records of its run (running those not cached yet);
        ``step``: at that step of ``record_at`` instead of the end.

        Raises:
            InvalidConfig: an empty or out-of-range slice, or a cached run recorded before per-row records
                were kept (run it again with a new cache file).
        """
        correct = self.row_records(archs, start, stop, step=step, record="correct")
        agrees = self.row_records(archs, start, stop, step=step, record="agrees")
        return [{"accuracy": float(c.mean()), "agreement": float(a.mean())} for c, a in zip(correct, agrees, strict=True)]

    def row_records(self, archs, start: int = 0, stop: int | None = None, *, step: int | None = None,
                    record: str = "correct") -> np.ndarray:
        """``architectures x rows`` booleans of held-out rows ``start:stop``: whether each student was right
        (``record="correct"``) or agreed with the teacher (``"agrees"``), at the end or at ``step``.

        Raises:
            InvalidConfig: as :meth:`slice_metrics`, and an unknown ``record``.
        """
        if record not in ROW_RECORDS:
            raise InvalidConfig(f"record must be one of {', '.join(ROW_RECORDS)}; got {record!r}")
        rows = len(self.held)
        stop = rows if stop is None else stop
        if not 0 <= start < stop <= rows:
            raise InvalidConfig(f"a slice of the {rows} held-out rows needs 0 <= start < stop <= {rows}; "
                                f"got {start}:{stop}")
        if step is not None and step not in self.record_at:
            raise InvalidConfig(f"step {step} is not one of record_at ({', '.join(map(str, self.record_at)) or 'none'})")
        at = "" if step is None else f"@{step}"
        out = []
        for arch, run in zip(self._as_archs(archs), self.metrics(archs), strict=True):
            if not all(k + at in run for k in ROW_RECORDS):
                raise InvalidConfig(f"the cached run of {arch.key} has no per-row records (recorded by an older "
                                    f"hwnas); score it again with another cache file than {self.cache_path}")
            out.append(unpack_bits(run[record + at], rows)[start:stop])
        return np.array(out, dtype=bool).reshape(len(out), stop - start)

    def runs_without_rows(self) -> list[str]:
        """Keys of the cached runs recorded without per-row records (by an older hwnas): they cannot give
        :meth:`row_scores`."""
        return sorted(k for k, run in self._disk.items() if not all(r in run for r in ROW_RECORDS))

    def row_scores_problem(self) -> str | None:
        if self.metric.split("@")[0] not in _ROW_OF_METRIC:
            return (f"per-row scores: distill-proxy with metric {self.metric} is not a mean of per-row hits "
                    "(accuracy and agreement are)")
        old = self.runs_without_rows()
        if old:
            return (f"per-row scores: its cache {self.cache_path} holds {len(old)} run(s) recorded without per-row "
                    "records (an older hwnas); give another --estimator-option cache=FILE")
        return None

    def row_scores(self, archs) -> np.ndarray:
        """Per held-out row, 1.0 where the student was right (``metric=accuracy``) or agreed with the teacher
        (``agreement``), at the metric's step; the row means are :meth:`score`'s values.

        Raises:
            InvalidConfig: for ``metric=kd``, which is not a mean of per-row hits.
        """
        base, _, at = self.metric.partition("@")
        if base not in _ROW_OF_METRIC:
            raise InvalidConfig(f"distill-proxy with metric {self.metric} has no per-row scores (accuracy and "
                                "agreement have)")
        return self.row_records(archs, step=int(at) if at else None, record=_ROW_OF_METRIC[base]).astype(np.float64)

    def _as_archs(self, archs) -> list[Architecture]:
        from hwnas.space import as_architectures

        return [self.validate(a) for a in as_architectures(archs)]

    # ------------------------------------------------------------ scoring
    def _score(self, archs: list[Architecture]) -> np.ndarray:
        out = []
        for arch in archs:
            if arch.key not in self._disk:
                self._disk[arch.key] = self._run(arch)
                self._cache.write(self._disk)
            out.append(self._disk[arch.key][self.metric])
        return np.array(out, dtype=np.float64)

    def _prepare(self):
        if self._ready is None:
            import torch

            from hwnas.distill.data import encode
            from hwnas.distill.teacher import load_task_teacher
            from hwnas.distill.trainer import predict_logits

            teacher = load_task_teacher(self.teacher_dir, None, "classification", self.num_labels)
            tok = teacher.tokenizer
            train_enc, held_enc = encode(tok, self.train, self.max_len), encode(tok, self.held, self.max_len)
            teacher_logits = predict_logits(teacher.model, held_enc)
            self._ready = (teacher, train_enc, held_enc, torch.log_softmax(teacher_logits, -1), self.source.supernet)
        return self._ready

    def _run(self, arch: Architecture) -> dict[str, float]:
        import time

        import torch

        from hwnas.distill.models import init_student
        from hwnas.distill.trainer import DistillLoop, TrainConfig, predict_logits

        teacher, train_enc, held_enc, teacher_logp, supernet = self._prepare()
        old_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        t0 = time.process_time()
        try:
            student, _ = init_student(arch, self.num_labels, init="supernet" if supernet is not None else "teacher",
                                      teacher_path=self.teacher_dir, supernet=supernet,
                                      problem_type="single_label_classification", seed=self.seed)
            tc = TrainConfig(steps=self.schedule_steps or self.steps, batch_size=self.batch_size, lr=self.lr,
                             max_len=self.max_len, seed=self.seed, checkpoint_every=0)
            earlier: dict[str, Any] = {}
            with tempfile.TemporaryDirectory(prefix="hwnas-distill-proxy-") as tmp:
                loop = DistillLoop(student, teacher.model, self.loss_config, train_enc, "classification", tc, tmp,
                                   eval_encoded=None, stage="distill-proxy", on_progress=None, on_evaluation=None,
                                   meta={"arch": arch.key})
                loop.prepare()
                # the schedule is the whole run's (tc.steps); run it in segments, scoring at each recorded step:
                # batches and rates depend on the step only, so the segments train exactly as one run would
                for stop in (*self.record_at, self.steps):
                    loop.steps = stop
                    loop.run()
                    loop.start = stop
                    if stop < self.steps:
                        at = self._judge(predict_logits(student, held_enc), held_enc, teacher_logp)
                        earlier |= {f"{k}@{stop}": v for k, v in at.items()}
                loop.finish()
            logits = predict_logits(student, held_enc)
        finally:
            torch.set_num_threads(old_threads)
        return {**self._judge(logits, held_enc, teacher_logp), "cpu_s": time.process_time() - t0, **earlier}

    @staticmethod
    def _judge(logits, held_enc, teacher_logp) -> dict[str, Any]:
        import torch

        logp = torch.log_softmax(logits, -1)
        kl = float((teacher_logp.exp() * (teacher_logp - logp)).sum(-1).mean())
        pred = logits.argmax(-1)
        correct, agrees = (pred == held_enc["labels"]), (pred == teacher_logp.argmax(-1))
        return {"accuracy": float(correct.float().mean()), "agreement": float(agrees.float().mean()), "kd": -kl,
                "correct": pack_bits(correct.numpy()), "agrees": pack_bits(agrees.numpy())}
