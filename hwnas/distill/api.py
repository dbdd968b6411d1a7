"""``distill()``: from an architecture to a trained, exported, verified student.

Stages, each written under the output folder and reused by the next call:

1. task data (and an evaluation split: the given file, or the last 10% of the
   training file, at most 1000 examples, when none is given);
2. the task teacher (:mod:`hwnas.distill.teacher`, cached by content);
3. the student's initial weights (supernet, teacher slices or random);
4. optional task-agnostic distillation on the task's sentences (hidden states
   and attention only, no labels);
5. task distillation with the configured losses (resumable checkpoint);
6. export: ``save_pretrained`` folder with tokenizer, ``model.onnx``, both
   verified; latency of student and teacher measured together; ``report.json``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hwnas._files import atomic_write_text
from hwnas.distill.data import TaskData, augment, encode, load_task
from hwnas.distill.losses import LossConfig
from hwnas.distill.tasks import held_out_count
from hwnas.errors import InvalidConfig
from hwnas.outputs import check_output_folder, one_writer, write_marker
from hwnas.progress import ProgressCallback, StatusCallback
from hwnas.space import Architecture, load_architectures
from hwnas.training.teacher import resolve_teacher

__all__ = ["DistillConfig", "CpuLedger", "distill", "resolve_arch", "REPORT_FILE", "DEFAULT_LOSSES", "teacher_train_config",
           "teacher_steps_for", "teacher_eval_every", "TEACHER_EVAL_EVERY"]

REPORT_FILE = "report.json"
CONFIG_FILE = "distill_config.json"
CPU_FILE = "cpu.json"
DEFAULT_LOSSES = {"logits": 1.0, "hidden": 1.0, "attention": 1.0}


class CpuLedger:
    """CPU time of the process, attempt by attempt, in ``<out>/cpu.json``, so that a distillation killed and
    resumed reports what all its attempts cost.

    Each attempt's entry is rewritten at every checkpoint and at the end; an attempt killed between checkpoints
    therefore counts up to its last checkpoint (the steps after it are redone, and counted, by the next attempt),
    so the total is a slight underestimate of the CPU actually spent. The clock is :func:`time.process_time`:
    every thread of this process, not its children; with several processes (torchrun) only the main one's.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.before: list[dict[str, Any]] = []
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                self.before = [a for a in data.get("attempts", []) if isinstance(a, dict)
                               and isinstance(a.get("cpu_s"), (int, float))]
            except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
                self.before = []  # a damaged ledger loses the earlier attempts' figures, never the run
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._t0 = time.process_time()

    def attempts(self, finished: bool = False) -> list[dict[str, Any]]:
        now = {"started_utc": self.started, "cpu_s": round(time.process_time() - self._t0, 3), "finished": finished}
        return [*self.before, now]

    def update(self, finished: bool = False) -> float:
        """Write the ledger; return the CPU seconds of all attempts so far."""
        attempts = self.attempts(finished)
        atomic_write_text(self.path, json.dumps({"clock": "process_time", "attempts": attempts}, indent=1) + "\n")
        return float(sum(a["cpu_s"] for a in attempts))


def _with_ledger(on_progress: ProgressCallback | None, ledger: CpuLedger | None) -> ProgressCallback | None:
    """``on_progress``, also writing ``ledger`` at every checkpoint event."""
    if ledger is None:
        return on_progress

    def progress(event) -> None:
        if event.checkpoint:
            ledger.update()
        if on_progress is not None:
            on_progress(event)

    return progress


@dataclass(frozen=True)
class DistillConfig:
    """Everything ``hwnas distill`` needs.

    Args:
        arch: an ``Architecture``, an ``layers=..,hidden=..`` string or a ``winner.json`` path.
        task: training data (file or ``datasets`` name); ``eval``: evaluation data (optional).
        teacher: ``"default"`` or a model folder. A folder whose head already has the
            task's number of labels is used as the task teacher as is.
        supernet: a supernet folder; the student starts from ``sn.extract(arch)``.
        init: without a supernet, ``"teacher"`` (slice the teacher) or ``"random"``.
        losses: the loss weights and settings.
        steps, batch_size, lr: task-distillation training.
        agnostic_steps: task-agnostic distillation steps before (0: none).
        teacher_epochs: fine-tune the task teacher for this many whole passes over the training
            data (one epoch is ``len(train) // batch_size`` steps), unless ``teacher_steps`` is given.
        teacher_steps: fine-tuning steps of the task teacher (``None``: ``teacher_epochs`` epochs).
        teacher_lr: peak learning rate of the teacher's fine-tuning (6% warm-up, linear decay).
        teacher_seed: seed of the teacher's fine-tuning (``None``: ``seed``). Fix it to repeat a
            student with several seeds against one teacher.
        teacher_eval_every: evaluate the teacher every this many steps and keep the best
            evaluation's weights (0: evaluate at the end only; ``None``: every
            :data:`TEACHER_EVAL_EVERY` steps when trained by epochs, at the end only with
            ``teacher_steps``, so command lines written before epochs existed keep their meaning).
        recipe: the name of the recipe these settings came from (:mod:`hwnas.distill.recipes`);
            recorded, not applied (:func:`hwnas.distill.recipes.apply_recipe` applies one).
        max_len: tokens per example; ``limit``: use only the first examples of the training data.
        augment: noisy copies of each training example (0: none).
        predictor: a predictor bundle for the predicted latency in the report; its
            device settings, clock and reference architecture are used for measuring.
        measure: measure the student after training, on the device and at the shape
            the search used (:func:`hwnas.search.verify.measure_student`).
        device, seq_len, latency_batch_size: where and at which shape to measure;
            default: the winner file's, else the predictor's device, seq 128, batch 1.
            A winner file that records no device or shape must be given them here.
        threads, dtype: device settings (default: the predictor's when one is given).
        latency_clock: ``"wall"`` or ``"thread_cpu"`` when no predictor is given
            (with one, its clock is used).
        strict: refuse a host-bound predictor profiled on another host (default: warn).
        cache_dir: where fine-tuned teachers are cached (default: ``<out>/../teachers``).
    """

    arch: Any
    task: str
    eval: str | None = None
    teacher: str = "default"
    supernet: str | None = None
    init: str = "teacher"
    losses: LossConfig = field(default_factory=lambda: LossConfig(weights=dict(DEFAULT_LOSSES)))
    steps: int = 600
    batch_size: int = 32
    lr: float = 1e-4
    agnostic_steps: int = 0
    teacher_steps: int | None = None
    teacher_epochs: int = 1
    teacher_lr: float = 5e-5
    teacher_seed: int | None = None
    teacher_eval_every: int | None = None
    max_len: int = 128
    limit: int | None = None
    eval_limit: int | None = None
    augment: int = 0
    augment_method: str = "edit"
    seed: int = 0
    mixed_precision: str = "auto"
    checkpoint_every: int = 100
    predictor: str | None = None
    measure: bool = True
    threads: int | None = 1
    timing: str = "default"
    latency_clock: str = "wall"
    device: str | None = None
    seq_len: int | None = None
    latency_batch_size: int | None = None
    dtype: str | None = None
    strict: bool = False
    cache_dir: str | None = None
    text_col: str | None = None
    text_pair_col: str | None = None
    label_col: str | None = None
    recipe: str | None = None

    def __post_init__(self) -> None:
        if self.init not in ("teacher", "random"):
            raise InvalidConfig(f"init must be 'teacher' or 'random' (the supernet is chosen with supernet=); got {self.init!r}")
        if self.timing not in ("default", "quick"):
            raise InvalidConfig(f"timing must be 'default' or 'quick'; got {self.timing!r}")
        if self.teacher_seed is not None and (isinstance(self.teacher_seed, bool) or not isinstance(self.teacher_seed, int)
                                              or self.teacher_seed < 0):
            raise InvalidConfig(f"teacher_seed must be an integer >= 0 or None; got {self.teacher_seed!r}")
        from hwnas.distill.data import AUGMENT_METHODS

        if self.augment_method not in AUGMENT_METHODS:
            raise InvalidConfig(f"augment_method must be one of {', '.join(AUGMENT_METHODS)}; got {self.augment_method!r}")
        for name in ("agnostic_steps", "augment"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidConfig(f"{name} must be an integer >= 0; got {v!r}")
        for name, least in (("teacher_steps", 1), ("teacher_epochs", 1), ("teacher_eval_every", 0)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < least):
                raise InvalidConfig(f"{name} must be an integer >= {least}" + (" or None" if name != "teacher_epochs" else "")
                                    + f"; got {v!r}")
        # fail on bad training settings now, not after the teacher has been fine-tuned
        from hwnas.distill.trainer import TrainConfig

        TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, max_len=self.max_len,
                    mixed_precision=self.mixed_precision, checkpoint_every=self.checkpoint_every)
        teacher_train_config(self, _checking=True)
        _, info = resolve_arch(self.arch)
        if self.measure:
            latency_target(self, info)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["arch"] = resolve_arch(self.arch)[0].key
        d["losses"] = self.losses.to_dict()
        d["teacher_eval_every"] = teacher_eval_every(self)
        if self.teacher_steps is not None:  # epochs do not matter when the steps are given
            del d["teacher_epochs"]
        # settings added later stay out at the value that means what folders written before them did
        for name, default in LEGACY_DEFAULTS.items():
            if name in d and d[name] == default:
                del d[name]
        return d


#: Settings added after folders were first written, at the value their absence means in those folders.
LEGACY_DEFAULTS: dict[str, Any] = {"teacher_seed": None, "teacher_eval_every": 0, "augment_method": "edit",
                                   "recipe": None}
#: Evaluation interval (steps) of a teacher fine-tuned by epochs, when none is given.
TEACHER_EVAL_EVERY = 200


def teacher_eval_every(config: DistillConfig, steps: int | None = None) -> int:
    """The teacher's evaluation interval in steps (0: at the end only); ``steps``: its fine-tuning steps when known.

    ``None`` means :data:`TEACHER_EVAL_EVERY` for a teacher trained by epochs and 0 with ``teacher_steps`` given.
    An interval at or beyond the last step means no evaluation before the end, so it is recorded as 0.
    """
    every = config.teacher_eval_every
    if every is None:
        every = TEACHER_EVAL_EVERY if config.teacher_steps is None else 0
    steps = config.teacher_steps if steps is None else steps
    if steps is not None and every >= steps:
        return 0
    return every


def teacher_steps_for(config: DistillConfig, n_train: int) -> int:
    """Fine-tuning steps of the task teacher: ``teacher_steps``, else ``teacher_epochs`` epochs of ``n_train``
    examples, one epoch being ``n_train // batch_size`` full batches (at least 1 step)."""
    if config.teacher_steps is not None:
        return config.teacher_steps
    return max(1, config.teacher_epochs * n_train // config.batch_size)


def resolve_arch(arch: Any) -> tuple[Architecture, dict[str, Any]]:
    """An :class:`Architecture` and, for a ``winner.json``, the search's record of it."""
    if isinstance(arch, Architecture):
        return arch, {}
    text = str(arch)
    path = Path(text)
    if path.suffix.lower() in (".json", ".jsonl", ".txt") or path.is_file():
        archs = load_architectures(path)
        if len(archs) != 1:
            raise InvalidConfig(f"{path} holds {len(archs)} architectures; give a file with one (such as winner.json)")
        info: dict[str, Any] = {}
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            if isinstance(data, dict) and "arch" in data:
                info = {k: v for k, v in data.items() if k != "arch"}
        return archs[0], info
    return Architecture.parse(text), {}


def latency_target(config: DistillConfig, search_info: dict[str, Any], predictor_device: str | None = None) -> dict[str, Any]:
    """``{"device", "seq_len", "batch_size"}`` the student is measured at.

    Explicit settings win; then the winner file's record of the search; then the
    predictor's device, sequence 128 and batch 1.

    Raises:
        InvalidConfig: a winner file (``search_info`` present) that records no
            device or shape, with none given explicitly.
    """
    from hwnas.devices.base import Shape

    if search_info:
        missing = [k for k, given in (("device", config.device), ("seq_len", config.seq_len),
                                      ("batch_size", config.latency_batch_size))
                   if given is None and search_info.get(k) in (None, "")]
        if missing:
            raise InvalidConfig(f"{config.arch} records no {', '.join(missing)} of the search, so it cannot be verified "
                                "where it was searched; give --device and --seq-len (and --latency-batch-size), "
                                "or pass --no-measure")
    def first(*values: Any) -> Any:
        return next(v for v in values if v is not None)

    Shape(first(config.latency_batch_size, 1), first(config.seq_len, 1))  # validates what was given, naming it
    out = {
        "device": config.device or search_info.get("device") or predictor_device or "cpu",
        "seq_len": int(first(config.seq_len, search_info.get("seq_len"), 128)),
        "batch_size": int(first(config.latency_batch_size, search_info.get("batch_size"), 1)),
    }
    Shape(out["batch_size"], out["seq_len"])
    return out


def teacher_train_config(config: DistillConfig, n_train: int | None = None, *, _checking: bool = False):
    """The fine-tuning settings of the task teacher (part of its cache key) for ``n_train`` training examples
    (needed when the teacher is fine-tuned by epochs; ``_checking``: only validate, one epoch counted as one step).

    Batches are length-bucketed (:class:`~hwnas.distill.trainer.BatchPlan`), the learning rate warms up over
    6% of the steps and decays linearly to 0. The key holds the resolved step count, not the epochs, so a
    teacher cached by ``teacher_steps=N`` is reused by epochs that come to ``N`` steps, and the reverse.
    """
    from hwnas.distill.trainer import TrainConfig

    if n_train is None and config.teacher_steps is None and not _checking:
        raise InvalidConfig("the teacher's fine-tuning by epochs needs the number of training examples: "
                            "call teacher_train_config(config, len(train_data))")
    steps = teacher_steps_for(config, n_train) if n_train is not None else (config.teacher_steps or 1)
    every = teacher_eval_every(config, steps)
    return TrainConfig(steps=steps, batch_size=config.batch_size, lr=config.teacher_lr,
                       max_len=config.max_len, seed=config.seed if config.teacher_seed is None else config.teacher_seed,
                       mixed_precision=config.mixed_precision, checkpoint_every=config.checkpoint_every,
                       eval_every=every, keep_best=every > 0)


def _augmented(config: DistillConfig, data: TaskData, teacher: Any) -> TaskData:
    """``data`` plus ``config.augment`` noisy copies per example (word edits, or masked-LM replacement with
    the teacher's own MLM head where its folder has one, random vocabulary words otherwise)."""
    if not config.augment:
        return data
    if config.augment_method == "mlm":
        from hwnas.distill.data import load_mlm_head

        return augment(data, config.augment, seed=config.seed, method="mlm", tokenizer=teacher.tokenizer,
                       mlm=load_mlm_head(resolve_teacher(config.teacher)))
    return augment(data, config.augment, seed=config.seed)


def load_data(config: DistillConfig) -> tuple[TaskData, TaskData, str]:
    """Training and evaluation data of ``config`` and a line saying where the evaluation data came from."""
    cols = {"text_col": config.text_col, "text_pair_col": config.text_pair_col, "label_col": config.label_col}
    train_data = load_task(config.task, limit=config.limit, **cols)
    if config.eval:
        eval_data = load_task(config.eval, label_names=train_data.label_names or None, limit=config.eval_limit,
                              task=train_data.kind, **cols)
        eval_note = str(config.eval)
    else:
        train_data, eval_data = _split_evaluation(train_data, config.seed)
        eval_note = f"last {len(eval_data)} examples of {config.task} (held out)"
    if (eval_data.pairs is None) != (train_data.pairs is None):
        raise InvalidConfig(f"{config.eval}: sentence pairs in one of train/eval data but not the other")
    return train_data, eval_data, eval_note


def _split_evaluation(data: TaskData, seed: int) -> tuple[TaskData, TaskData]:
    n_eval = held_out_count(len(data))
    if len(data) - n_eval < 2:
        raise InvalidConfig(f"{data.source}: {len(data)} examples are too few to hold some out for evaluation; give eval data")
    return data.subset(range(len(data) - n_eval)), data.subset(range(len(data) - n_eval, len(data)))


def _status(on_status: StatusCallback | None, text: str) -> None:
    if on_status:
        on_status(text)


def distill(
    config: DistillConfig,
    out: str | Path,
    *,
    on_status: StatusCallback | None = None,
    on_progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run every stage into ``out`` and return the report (also written to ``out/report.json``).

    A finished folder with the same settings is returned as is; a folder
    written with other settings is refused unless ``overwrite``. An unfinished
    one is resumed. One process at a time writes ``out``: its lock,
    ``<out>.lock`` beside it, refuses a second run on the same folder
    (:class:`~hwnas.errors.InvalidConfig` naming the holder).

    Args:
        on_status: short lines naming the stage.
        on_progress: a :class:`~hwnas.progress.ProgressEvent` after every training step, with
            stage ``"teacher"``, ``"agnostic"`` or ``"distill"``, the loss parts as metrics, and
            ``checkpoint=True`` on steps that wrote a checkpoint.
    """
    from hwnas.training.processes import process_state

    main, barrier = process_state()
    with one_writer(out, main=main):  # one process writes a student folder; a second is refused naming the first
        return _distill(config, Path(out), main, barrier, on_status, on_progress, overwrite)


def _distill(config: DistillConfig, out: Path, main: bool, barrier, on_status: StatusCallback | None,
             on_progress: ProgressCallback | None, overwrite: bool) -> dict[str, Any]:
    from hwnas.distill.trainer import TrainConfig, refuse_legacy_checkpoint, train

    t_start = time.perf_counter()
    arch, search_info = resolve_arch(config.arch)
    p, target = _latency_setup(config, search_info)
    if not overwrite:  # the precise reason first (--overwrite clears such a checkpoint when the settings changed)
        for folder in (out, out / "agnostic"):
            refuse_legacy_checkpoint(folder)
    finished = _open_folder(config, out, overwrite, main, barrier)
    if finished is not None:
        _status(on_status, f"reusing finished student in {out}")
        return finished
    for folder in (out, out / "agnostic"):  # before hours of teacher fine-tuning, not after
        refuse_legacy_checkpoint(folder)
    ledger = CpuLedger(out / CPU_FILE) if main else None
    on_progress = _with_ledger(on_progress, ledger)
    _status(on_status, "loading task data")
    train_data, eval_data, eval_note = load_data(config)
    teacher = _task_teacher(config, out, train_data, eval_data, on_status, on_progress)
    tokenizer = teacher.tokenizer
    train_aug = _augmented(config, train_data, teacher)
    train_enc, eval_enc = encode(tokenizer, train_aug, config.max_len), encode(tokenizer, eval_data, config.max_len)
    arch, student, init_note = _student(config, arch, train_data, teacher)
    history: dict[str, Any] = {}
    agnostic = _agnostic(config, out, student, teacher, train_enc, train_data.kind, main, barrier, on_status,
                         on_progress) if config.agnostic_steps else None
    if agnostic is not None:
        history["agnostic"] = agnostic
    _status(on_status, f"distilling {arch} ({config.steps} steps, losses {', '.join(config.losses.active)})")
    tc = TrainConfig(steps=config.steps, batch_size=config.batch_size, lr=config.lr, max_len=config.max_len,
                     seed=config.seed, mixed_precision=config.mixed_precision, checkpoint_every=config.checkpoint_every)
    result = train(student, teacher.model, config.losses, train_enc, train_data.kind, tc, out, eval_encoded=eval_enc,
                   stage="distill", on_progress=on_progress, meta={"arch": arch.key, "init": init_note})
    history["distill"] = {"loss_first": result.loss_first, "loss_last": result.loss_last, "train_s": result.wall_s,
                          "resumed_from": result.resumed_from, "mixed_precision": result.mixed_precision,
                          "curve": result.history}
    report_file = out / REPORT_FILE
    if not main:  # export and verify: the main process only; the others wait and read its report
        barrier()
        return json.loads(report_file.read_text())
    _status(on_status, "exporting and verifying (Hugging Face folder, ONNX)")
    report = _export_and_report(config, out, arch, search_info, student, tokenizer, teacher, train_data, eval_data,
                                eval_note, init_note, result, history, p, target, on_status)
    report["wall_s"] = time.perf_counter() - t_start
    report["cpu_s"] = ledger.update(finished=True)
    report["cpu_attempts"] = len(ledger.attempts())
    atomic_write_text(report_file, json.dumps(report, indent=2, default=str) + "\n")
    barrier()
    return report


def _latency_setup(config: DistillConfig, search_info: dict[str, Any]):
    """The predictor (or ``None``) and where the student will be measured; an unavailable device fails now,
    before hours of training, not after."""
    p = None
    if config.predictor:
        from hwnas.predictors import load_predictor

        p = load_predictor(config.predictor)
    target = latency_target(config, search_info, p.device if p is not None else None)
    if config.measure:
        from hwnas.devices.registry import create_device

        create_device(target["device"], threads=_manifest_threads(p.manifest, config.threads) if p else config.threads,
                      dtype=config.dtype or "fp32")
    return p, target


def _open_folder(config: DistillConfig, out: Path, overwrite: bool, main: bool, barrier) -> dict[str, Any] | None:
    """The finished report of a folder with these settings, else ``None`` after recording the settings (an
    unfinished folder with these settings is resumed; one with others is refused, or cleared with ``overwrite``)."""
    from hwnas.distill.trainer import clear_checkpoint

    check_output_folder(out, kind="distill")  # never write into (or replace) a folder hwnas did not make
    settings = config.to_dict()
    cfg_file, report_file = out / CONFIG_FILE, out / REPORT_FILE
    if cfg_file.is_file():
        previous = json.loads(cfg_file.read_text())
        # a folder written before a setting existed holds it at its default
        defaults = {**{f.name: f.default for f in fields(DistillConfig) if f.default is not MISSING}, **LEGACY_DEFAULTS}
        previous = {**{k: v for k, v in defaults.items() if k not in previous and k in settings}, **previous}
        now = json.loads(json.dumps(settings, default=str))
        # the recipe's name labels the settings; the settings decide whether a folder can be reused
        previous.pop("recipe", None)
        now.pop("recipe", None)
        if previous != now:
            if not overwrite:
                changed = sorted(k for k in set(previous) | set(now) if previous.get(k) != now.get(k))
                raise InvalidConfig(
                    f"{out} holds a distillation with other settings (changed: {', '.join(changed)}); "
                    "choose another --out, or pass --overwrite to replace it"
                )
            report_file.unlink(missing_ok=True)
            (out / CPU_FILE).unlink(missing_ok=True)
            clear_checkpoint(out)
            clear_checkpoint(out / "agnostic")
        elif report_file.is_file():
            return json.loads(report_file.read_text())
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "distill")
        atomic_write_text(cfg_file, json.dumps(settings, indent=2, default=str) + "\n")
    barrier()
    return None


def _task_teacher(config: DistillConfig, out: Path, train_data: TaskData, eval_data: TaskData,
                  on_status: StatusCallback | None, on_progress: ProgressCallback | None):
    """The teacher given, when its head already fits the task; else the cached or newly fine-tuned task teacher."""
    from transformers import AutoConfig

    from hwnas.distill.teacher import finetune_teacher, load_task_teacher, task_head_labels

    base = resolve_teacher(config.teacher)
    base_cfg = AutoConfig.from_pretrained(base)
    if task_head_labels(base_cfg) == train_data.num_labels:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(base)
        return load_task_teacher(base, encode(tok, eval_data, config.max_len), train_data.kind, train_data.num_labels)
    cache_dir = Path(config.cache_dir) if config.cache_dir else out.parent / "teachers"
    tc = teacher_train_config(config, len(train_data))
    epochs = None if config.teacher_steps is not None else config.teacher_epochs
    return finetune_teacher(base, train_data, eval_data, tc, cache_dir, max_len=config.max_len,
                            on_status=on_status, on_progress=on_progress, epochs=epochs)


def _student(config: DistillConfig, arch: Architecture, train_data: TaskData, teacher):
    """``(arch, student, note)``: the student's initial weights from the supernet, teacher slices or random."""
    from hwnas.distill.models import init_student

    supernet = None
    if config.supernet:
        from hwnas.supernet import load_supernet

        supernet = load_supernet(config.supernet)
        arch = supernet.space.validate(arch)
    problem = "regression" if train_data.kind == "regression" else "single_label_classification"
    student, note = init_student(arch, train_data.num_labels, init="supernet" if supernet else config.init,
                                 teacher_path=teacher.path, supernet=supernet, problem_type=problem, seed=config.seed)
    if train_data.label_names:
        student.config.id2label = {i: n for i, n in enumerate(train_data.label_names)}
        student.config.label2id = {n: i for i, n in enumerate(train_data.label_names)}
    return arch, student, note


def _agnostic(config: DistillConfig, out: Path, student, teacher, train_enc, kind: str, main: bool, barrier,
              on_status: StatusCallback | None, on_progress: ProgressCallback | None) -> dict[str, Any] | None:
    """Task-agnostic distillation (no labels: hidden states and attention only), kept in ``out/agnostic``."""
    from safetensors.torch import load_file

    from hwnas.distill.trainer import TrainConfig, clear_checkpoint, train
    from hwnas.training.checkpoint import save_weights

    agn_dir = out / "agnostic"
    done_file = agn_dir / "student.safetensors"
    if done_file.is_file():
        student.load_state_dict(load_file(str(done_file)))
        _status(on_status, "reusing task-agnostic distillation")
        return None
    _status(on_status, f"task-agnostic distillation ({config.agnostic_steps} steps)")
    agn_cfg = TrainConfig(steps=config.agnostic_steps, batch_size=config.batch_size, lr=config.lr * 2,
                          max_len=config.max_len, seed=config.seed + 1, mixed_precision=config.mixed_precision,
                          checkpoint_every=config.checkpoint_every)
    r = train(student, teacher.model, LossConfig(weights={"hidden": 1.0, "attention": 1.0}), train_enc, kind, agn_cfg,
              agn_dir, stage="agnostic", on_progress=on_progress)
    if main:
        save_weights(done_file, student.state_dict())
        clear_checkpoint(agn_dir)
    barrier()
    return {"loss_first": r.loss_first, "loss_last": r.loss_last, "train_s": r.wall_s}


def _export_and_report(config: DistillConfig, out: Path, arch: Architecture, search_info: dict[str, Any], student,
                       tokenizer, teacher, train_data: TaskData, eval_data: TaskData, eval_note: str, init_note: str,
                       result, history: dict[str, Any], p, target: dict[str, Any],
                       on_status: StatusCallback | None) -> dict[str, Any]:
    """Export (Hugging Face folder, ONNX, both verified), drop the checkpoints, measure, and build the report."""
    import torch
    import transformers

    from hwnas.distill.export import export_onnx_classifier, save_hf
    from hwnas.distill.models import architecture_of
    from hwnas.distill.trainer import clear_checkpoint

    sample = list(range(min(8, len(eval_data))))
    texts = [eval_data.texts[i] for i in sample]
    pairs = [eval_data.pairs[i] for i in sample] if eval_data.pairs is not None else None
    hf_check = save_hf(student, tokenizer, out, texts, pairs, config.max_len)
    onnx_check = export_onnx_classifier(out, texts, pairs, config.max_len)
    clear_checkpoint(out)

    predicted: dict[str, Any] = {}
    threads = config.threads
    if p is not None:
        threads = _manifest_threads(p.manifest, threads)
        predicted = {
            "predictor": str(config.predictor),
            "device": p.device,
            "seq_len": target["seq_len"],
            "batch_size": target["batch_size"],
            "latency_ms": float(p.predict([arch], seq_len=target["seq_len"], batch_size=target["batch_size"])[0]),
            "latency_upper_ms": float(p.predict_upper([arch], seq_len=target["seq_len"],
                                                      batch_size=target["batch_size"])[0]),
        }
    elif search_info.get("latency_ms") is not None:
        predicted = {"predictor": search_info.get("predictor"), "device": search_info.get("device"),
                     "seq_len": search_info.get("seq_len"), "batch_size": search_info.get("batch_size"),
                     "latency_ms": search_info.get("latency_ms"), "latency_upper_ms": search_info.get("latency_upper_ms")}

    measured: dict[str, Any] = {}
    if config.measure:
        from hwnas.devices.timing import TimingConfig
        from hwnas.search.verify import measure_student

        timing = TimingConfig.quick(clock=config.latency_clock) if config.timing == "quick" \
            else TimingConfig(clock=config.latency_clock)
        dtype = config.dtype
        if dtype is None and p is not None:
            from hwnas.search.verify import predictor_device_settings

            dtype = predictor_device_settings(p)["dtype"]
        budget = search_info.get("budget_ms")
        measured = measure_student(
            arch, device=target["device"], seq_len=target["seq_len"], batch_size=target["batch_size"],
            threads=threads, dtype=dtype or "fp32", exported=out, teacher=architecture_of(teacher.model.config),
            predictor=p, timing=timing, budget_ms=float(budget) if budget is not None else None,
            strict=config.strict, seed=config.seed, on_status=on_status)
        measured["timing"] = config.timing
    metric = "accuracy" if train_data.kind == "classification" else "pearson"
    s_score, t_score = result.metrics.get(metric), teacher.metrics.get(metric)
    report = {
        "arch": arch.as_dict(),
        "arch_key": arch.key,
        "parameters": sum(p.numel() for p in student.parameters()),
        "encoder_parameters": arch.num_parameters(student.config.vocab_size, student.config.max_position_embeddings),
        "init": init_note,
        "supernet": config.supernet,
        "search": search_info or None,
        "teacher": {
            "base": str(config.teacher),
            "path": str(teacher.path),
            "reused": teacher.reused,
            "arch": architecture_of(teacher.model.config).key,
            "parameters": sum(p.numel() for p in teacher.model.parameters()),
            "metrics": teacher.metrics,
            "fine_tune": _fine_tune_summary(teacher.info),
        },
        "recipe": recipe_record(config),
        "task": train_data.describe(),
        "eval": {**eval_data.describe(), "note": eval_note},
        "metric": metric,
        "student_score": s_score,
        "teacher_score": t_score,
        "retained": (s_score / t_score) if s_score is not None and t_score else None,
        "student_metrics": result.metrics,
        "losses": config.losses.to_dict(),
        "training": history,
        "predicted_latency": predicted or None,
        "measured_latency": measured or None,
        "exports": {"huggingface": hf_check.as_dict(), "onnx": onnx_check.as_dict()},
        "files": sorted(p.name for p in out.iterdir() if p.is_file()) + [REPORT_FILE],
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
    }
    return report


def _fine_tune_summary(info: dict[str, Any]) -> dict[str, Any] | None:
    """How the task teacher was fine-tuned (from its ``teacher.json``), or ``None`` for a teacher given ready-made."""
    tc = info.get("train_config")
    if not isinstance(tc, dict):
        return None
    return {"steps": tc.get("steps"), "epochs": info.get("epochs"), "lr": tc.get("lr"), "warmup": tc.get("warmup"),
            "bucketed": tc.get("bucket", True), "eval_every": tc.get("eval_every"), "best_step": info.get("best_step"),
            "train_s": info.get("train_s"), "cpu_s": info.get("cpu_s"), "curve": info.get("curve")}


def recipe_record(config: DistillConfig) -> dict[str, Any]:
    """``{"name", "overrides"}``: the recipe a run's settings came from and the settings that differ from it."""
    from hwnas.distill.recipes import RECIPES, recipe_overrides

    name = config.recipe or "default"
    # a recipe read from a file is recorded by its name; its settings are in distill_config.json
    return {"name": name, "overrides": recipe_overrides(config, name) if name in RECIPES else None}


def _manifest_threads(manifest: dict[str, Any], default: int | None) -> int | None:
    """The thread count of the predictor's measurements (``manifest["device"]["threads"]``), else ``default``."""
    device = manifest.get("device")
    if isinstance(device, dict) and isinstance(device.get("threads"), int):
        return device["threads"]
    return default
