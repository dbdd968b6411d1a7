"""Task-agnostic supernet training with the sandwich rule.

Every step takes one batch of text, runs the teacher once to get its last
layer's query/key/value relations (:class:`~hwnas.supernet.losses.TeacherTargets`),
and then trains, on the same targets, the largest sub-network of the space, the
smallest, and ``random_subnets`` sub-networks drawn uniformly from the space
(the sandwich rule of BigNAS / AutoDistil). Gradients of all sampled
sub-networks are summed into one optimizer step.

Data parallel: started under ``torchrun`` or ``accelerate launch``, every
process takes a disjoint share of each global batch, all processes draw the same
sub-networks (the draw is seeded by ``(seed, step)``), gradients are averaged
with one ``accelerate`` all-reduce per step (gloo: the supernet trains on the
CPU), and only the main process writes files.

Resuming: the data order and the sub-networks of step ``t`` depend only on
``(seed, t)``, and the checkpoint holds the weights, the optimizer state and
the RNG state (:mod:`hwnas.training.checkpoint`), so a run killed at any moment
continues from its last checkpoint with ``resume=True`` and gives the same
sub-network sequence. The loop itself is :class:`hwnas.training.loop.TrainLoop`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas._files import atomic_write_bytes, atomic_write_text, sha256_file
from hwnas.errors import InvalidConfig, check_int
from hwnas.outputs import MARKER, check_output_folder, write_marker
from hwnas.progress import ProgressCallback, StatusCallback
from hwnas.space import Architecture, SearchSpace, get_space
from hwnas.supernet.elastic import MOS_DEFAULTS, MOS_LEGACY
from hwnas.supernet.teacher import teacher_qkv, teacher_summary
from hwnas.training.checkpoint import save_weights
from hwnas.training.loop import TrainLoop
from hwnas.training.relations import relation_heads
from hwnas.training.schedule import epoch_batch, linear_warmup_decay

__all__ = ["TrainConfig", "TrainResult", "train_supernet", "space_warnings", "SupernetLoop", "FORMAT", "VERSION"]

FORMAT = "hwnas-supernet"
VERSION = 1

# Fields that must agree between a checkpoint and the command resuming it.
_RESUME_FIELDS = (
    "teacher", "data", "text_column", "batch_size", "seq_len", "lr", "weight_decay", "warmup_steps",
    "random_subnets", "relation_heads", "teacher_layer", "hidden_weight", "heldout", "seed",
    "train_embeddings", "max_rows", "mixture", "experts", "router_hidden", "mix_attention", "router_lr_mult",
    "router_init", "router_temperature", "expert_init", "expert_noise",
)
# Fields that mean nothing without a mixture (not compared when both runs are plain).
_MIXTURE_FIELDS = ("experts", "router_hidden", "mix_attention", "router_lr_mult", "router_init", "router_temperature",
                   "expert_init", "expert_noise")
# What a checkpoint written before a field existed meant by it.
_RESUME_DEFAULTS = {"mixture": "none", "experts": 2, "router_hidden": 128, "mix_attention": False,
                    "router_lr_mult": 1.0, **MOS_LEGACY}
#: Default router learning-rate multiplier (chosen with ``bench/bench_mos.py --diagnose``).
ROUTER_LR_MULT = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one supernet training run.

    Args:
        space: a built-in space name, a space file, or a :class:`SearchSpace`.
        out: the supernet folder (weights, ``supernet.json``, tokenizer, checkpoints).
        teacher: ``"default"``, a local model folder, or a hub name.
        data: text source (see :mod:`hwnas.supernet.data`); ``None``: embedded SST-2 sentences.
        text_column: column of a table or JSON-lines source; ``None``: detected.
        steps: total optimizer steps (a resumed run continues up to this number).
        batch_size: global batch in sequences (split across data-parallel processes).
        seq_len: maximum sequence length in tokens.
        lr: peak AdamW learning rate; linear warm-up then linear decay to 0.
        warmup_steps: warm-up length; ``None``: 5% of ``steps``.
        random_subnets: random sub-networks per step besides the largest and smallest.
        relation_heads: relation heads R; ``None``: the largest R <= teacher heads
            dividing the teacher's and every student's hidden size.
        teacher_layer: teacher layer whose relations are distilled (-1: last).
        hidden_weight: weight of the optional hidden-state relation term (0: off).
        heldout: rows kept out of training for the held-out loss (stored in the supernet).
        checkpoint_every: steps between checkpoints.
        seed: seeds the data order, the sub-network draws and the initialisation.
        train_embeddings: also train the word embeddings (the largest tensor).
        max_rows: use at most this many rows of tokenised data.
        cache_dir: where tokenised data is cached; ``None``: ``<out>/.cache``.
        threads: torch intra-op threads; ``None``: leave torch's default.
        teacher_cache: a folder where the teacher's query/key/value of every batch
            are stored and reused by later runs on the same data, seed and batch
            size (e.g. several supernets or stand-alone students); ``None``: off.
        mixture, experts, router_hidden, mix_attention: Mixture-of-Supernets
            (see :class:`~hwnas.supernet.elastic.ElasticBert`).
        router_lr_mult: the router's learning rate is ``lr`` times this (same schedule).
        router_init, router_temperature, expert_init, expert_noise: how the router
            and the extra experts start, and the mixing's softmax temperature (see
            :mod:`hwnas.supernet.elastic`).
    """

    space: Any
    out: str
    teacher: str = "default"
    data: str | None = None
    text_column: str | None = None
    steps: int = 2000
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int | None = None
    random_subnets: int = 2
    relation_heads: int | None = None
    teacher_layer: int = -1
    hidden_weight: float = 0.0
    heldout: int = 128
    checkpoint_every: int = 50
    seed: int = 0
    train_embeddings: bool = True
    max_rows: int | None = None
    cache_dir: str | None = None
    threads: int | None = None
    teacher_cache: str | None = None
    mixture: str = "none"
    experts: int = 2
    router_hidden: int = 128
    mix_attention: bool = False
    router_lr_mult: float = ROUTER_LR_MULT
    router_init: float = MOS_DEFAULTS["router_init"]
    router_temperature: float = MOS_DEFAULTS["router_temperature"]
    expert_init: str = MOS_DEFAULTS["expert_init"]
    expert_noise: float = MOS_DEFAULTS["expert_noise"]

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "random_subnets", "heldout", "seed"):
            check_int(name, getattr(self, name), 1 if name in ("steps", "batch_size", "checkpoint_every") else 0)
        check_int("seq_len", self.seq_len, 8)
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise InvalidConfig(f"lr must be a number in (0, 1); got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < 1):
            raise InvalidConfig(f"weight_decay must be in [0, 1); got {self.weight_decay!r}")
        if not (isinstance(self.hidden_weight, (int, float)) and self.hidden_weight >= 0):
            raise InvalidConfig(f"hidden_weight must be >= 0; got {self.hidden_weight!r}")
        for name in ("warmup_steps", "max_rows", "relation_heads", "threads"):
            check_int(name, getattr(self, name), 0 if name == "warmup_steps" else 1, none_ok=True)
        if not isinstance(self.teacher_layer, int) or isinstance(self.teacher_layer, bool):
            raise InvalidConfig(f"teacher_layer must be an integer (negative counts from the end); got {self.teacher_layer!r}")
        if not str(self.out).strip():
            raise InvalidConfig("out must be a folder path; got an empty string")
        from hwnas.supernet.elastic import check_mixture

        check_mixture(self.mixture, self.experts, self.router_hidden, router_init=self.router_init,
                      router_temperature=self.router_temperature, expert_init=self.expert_init,
                      expert_noise=self.expert_noise)
        lr_mult = self.router_lr_mult
        if isinstance(lr_mult, bool) or not isinstance(lr_mult, (int, float)) or not 0 < lr_mult <= 1000 \
                or lr_mult * self.lr >= 1:
            raise InvalidConfig(f"router_lr_mult must be a number in (0, 1000] with router_lr_mult x lr below 1; "
                                f"got {lr_mult!r} (lr {self.lr!r})")
        if not isinstance(self.mix_attention, bool):
            raise InvalidConfig(f"mix_attention must be True or False; got {self.mix_attention!r}")
        object.__setattr__(self, "space", get_space(self.space))

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else max(1, self.steps // 20)

    def record(self) -> dict[str, Any]:
        """JSON-able form (the space as its dict)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["space"] = self.space.to_dict()
        d["data"] = None if self.data is None else str(self.data)
        return d


@dataclass
class TrainResult:
    """Summary of a run (this invocation only, and the total across resumes)."""

    out: Path
    steps_done: int
    steps_run: int
    wall_s: float
    total_wall_s: float
    samples_per_s: float
    resumed_from: int | None
    first_loss: float | None
    last_loss: float | None
    losses: list[dict[str, Any]] = field(default_factory=list)


def space_warnings(space: SearchSpace, teacher_config: Any) -> list[str]:
    """Dimensions of the space beyond the teacher's, whose weights cannot start from it."""
    out = []
    pairs = (
        ("layers", space.layers[-1], teacher_config.num_hidden_layers),
        ("hidden", space.hidden[-1], teacher_config.hidden_size),
        ("ffn", space.ffn[-1], getattr(teacher_config, "intermediate_size", space.ffn[-1])),
    )
    for dim, ours, theirs in pairs:
        if ours > theirs:
            out.append(
                f"space {space.name!r} has {dim} up to {ours} but the teacher has {theirs}; "
                "the weights beyond the teacher's start from random values"
            )
    return out


def sandwich(space: SearchSpace, seed: int, step: int, random_subnets: int) -> list[Architecture]:
    """Largest, smallest and ``random_subnets`` uniform draws for ``step`` (same on every rank, no repeats)."""
    rng = np.random.default_rng([seed, step, 7])
    valid = space.enumerate()
    archs = [space.largest, space.smallest]
    if random_subnets:
        picks = rng.choice(len(valid), size=min(random_subnets, len(valid)), replace=len(valid) < random_subnets)
        archs += [valid[int(i)] for i in picks]
    return list(dict.fromkeys(archs))  # a one-architecture space trains it once


def batch_rows(n_train: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Row indices of global batch ``step`` (:func:`hwnas.training.epoch_batch`, salt 11)."""
    return epoch_batch(n_train, batch_size, step, seed, salt=(11,))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``cfg.lr`` over ``cfg.warmup`` steps, then linear decay to 0 at ``cfg.steps``."""
    return linear_warmup_decay(step, peak=cfg.lr, warmup_steps=cfg.warmup, total_steps=cfg.steps)


def _check_resume(stored: dict[str, Any], cfg: TrainConfig) -> None:
    now = cfg.record()
    if stored.get("space") != now["space"]:
        raise InvalidConfig(
            f"cannot resume: the checkpoint was trained on space {stored.get('space', {}).get('name')!r} "
            f"({stored.get('space')}), not {cfg.space.name!r}"
        )
    for key in _RESUME_FIELDS:
        if key in _MIXTURE_FIELDS and now.get("mixture") == "none" \
                and stored.get("mixture", "none") == "none":
            continue  # meaningless without a mixture
        if stored.get(key, _RESUME_DEFAULTS.get(key)) != now.get(key):
            raise InvalidConfig(
                f"cannot resume: {key} was {stored.get(key, _RESUME_DEFAULTS.get(key))!r} in the checkpoint but is "
                f"{now.get(key)!r} now; "
                "use the same settings or another --out"
            )
    if cfg.steps < stored.get("steps_done", 0):
        raise InvalidConfig(f"cannot resume: steps={cfg.steps} is below the {stored['steps_done']} steps already done")


class SupernetLoop(TrainLoop):
    """Sandwich-rule training of one supernet on :class:`~hwnas.training.loop.TrainLoop`."""

    def __init__(self, cfg: TrainConfig, *, resume: bool, on_progress: ProgressCallback | None,
                 on_status: StatusCallback | None) -> None:
        # The supernet trains on the CPU; several processes average gradients through accelerate (gloo).
        from hwnas.training.processes import make_accelerator

        super().__init__(stage="supernet", steps=cfg.steps, checkpoint_every=cfg.checkpoint_every,
                         checkpoints=Path(cfg.out) / "checkpoints", on_progress=on_progress, on_status=on_status,
                         accelerator=make_accelerator("no", cpu=True, single_without_launcher=True))
        self.cfg, self.out = cfg, Path(cfg.out)
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        self.losses: list[dict[str, Any]] = []
        self.total_wall_prev, self.resumed_from = 0.0, None
        self._check_folder(resume)

    # ------------------------------------------------------------ set-up
    def _check_folder(self, resume: bool) -> None:
        out = self.out
        self.existing = self.latest()
        if self.existing is not None and not resume:
            raise InvalidConfig(f"{out} already holds a supernet checkpoint; pass --resume to continue it, or choose another --out")
        if resume and self.existing is None and (out / "supernet.json").is_file():
            if json.loads((out / "supernet.json").read_text()).get("steps_done", 0) > 0:
                raise InvalidConfig(f"{out} has a supernet but no checkpoint to resume from")
        if not resume and out.exists() and not (out / "supernet.json").is_file():
            if any(p.name not in (".cache", MARKER) for p in out.iterdir()):
                raise InvalidConfig(f"{out} exists and is not empty; choose an empty or new --out folder")
        check_output_folder(out, kind="supernet")  # never write into a folder hwnas did not make

    def setup(self, on_progress: ProgressCallback | None) -> None:
        """Teacher, relation heads, tokenised data, model and optimizer."""
        import torch

        from hwnas.supernet.data import build_token_cache
        from hwnas.supernet.elastic import ElasticBert
        from hwnas.supernet.teacher import load_teacher

        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.teacher = teacher = load_teacher(cfg.teacher)
        tcfg = teacher.config
        self.warns = space_warnings(cfg.space, tcfg)
        for w in self.warns:
            warnings.warn(w, stacklevel=3)
            self.status(f"warning: {w}")
        self.r = relation_heads([tcfg.hidden_size, *cfg.space.hidden], cap=tcfg.num_attention_heads,
                                requested=cfg.relation_heads)
        if cfg.batch_size % self.world:
            raise InvalidConfig(f"batch_size={cfg.batch_size} must be divisible by the {self.world} data-parallel processes")
        cache = dict(seq_len=cfg.seq_len, cache_dir=Path(cfg.cache_dir) if cfg.cache_dir else self.out / ".cache",
                     text_column=cfg.text_column, max_rows=cfg.max_rows)
        if self.main:  # the main process tokenises; the others then read its cache
            self.data = build_token_cache(cfg.data, teacher.tokenizer, on_progress=on_progress, **cache)
        self.accelerator.wait_for_everyone()
        if not self.main:
            self.data = build_token_cache(cfg.data, teacher.tokenizer, **cache)
        self.heldout = min(cfg.heldout, len(self.data) // 5)
        self.n_train = len(self.data) - self.heldout
        if self.n_train < 1:
            raise InvalidConfig(f"data has {len(self.data)} rows, too few to train on")

        torch.manual_seed(cfg.seed)
        model = ElasticBert(cfg.space.largest, tcfg, mixture=cfg.mixture, experts=cfg.experts,
                            router_hidden=cfg.router_hidden, mix_attention=cfg.mix_attention, router_init=cfg.router_init,
                            router_temperature=cfg.router_temperature, expert_init=cfg.expert_init,
                            expert_noise=cfg.expert_noise)
        model.reset_parameters(seed=cfg.seed)
        self.init_counts = model.init_from_teacher(teacher.model)
        model.init_experts(cfg.seed)  # every expert starts from the teacher's slice (no-op without a mixture)
        model.pooler.weight.requires_grad_(False)
        model.pooler.bias.requires_grad_(False)
        if not cfg.train_embeddings:
            model.word.weight.requires_grad_(False)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.model = model
        # The router gets its own groups only when its learning rate differs, so that the optimizer state of a
        # checkpoint written without them (plain, or router_lr_mult 1) still loads.
        router = {id(p) for p in model.router.parameters()} if model.router is not None and cfg.router_lr_mult != 1 else set()
        groups = []
        for mult, members in ((1.0, [p for p in self.params if id(p) not in router]),
                              (float(cfg.router_lr_mult), [p for p in self.params if id(p) in router])):
            if members:
                groups += [{"params": [p for p in members if p.dim() > 1], "weight_decay": cfg.weight_decay, "lr_mult": mult},
                           {"params": [p for p in members if p.dim() <= 1], "weight_decay": 0.0, "lr_mult": mult}]
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
        self.teacher_cache = self._teacher_cache_dir()

    def _teacher_cache_dir(self) -> Path | None:
        cfg, info = self.cfg, self.data.info
        if not cfg.teacher_cache:
            return None
        key = hashlib.sha256(json.dumps(
            [info.get("source"), info.get("bytes"), info["rows"], cfg.seq_len, cfg.max_rows, cfg.text_column,
             self.heldout, cfg.seed, cfg.batch_size, self.rank, self.world, cfg.teacher_layer, self.teacher.name,
             self.teacher.config.to_dict()], sort_keys=True, default=str).encode()).hexdigest()[:16]
        return Path(cfg.teacher_cache) / f"qkv-{key}"

    # ------------------------------------------------------------ resume
    def check_resume(self, state: dict[str, Any]) -> None:
        _check_resume({**state["config"], "steps_done": state["step"]}, self.cfg)

    def resume(self) -> None:
        state = self.restore(self.existing) if self.existing is not None else None
        if state is not None:
            self.total_wall_prev, self.resumed_from = float(state.get("total_wall_s", 0.0)), self.start
            self.status(f"resuming {self.out} from step {self.start}")

    def write_start(self) -> None:
        """The supernet's description, tokenizer and held-out rows; the teacher-initialised weights of a new one."""
        import torch

        cfg, data, tcfg = self.cfg, self.data, self.teacher.config
        self.meta = {
            "format": FORMAT, "version": VERSION, "space": cfg.space.to_dict(), "teacher": self.teacher.name,
            "teacher_location": self.teacher.location, "teacher_shape": teacher_summary(tcfg),
            "max_arch": cfg.space.largest.as_dict(), "base_config": tcfg.to_dict(), "relation_heads": self.r,
            "mixture": self.model.mixture_info(), "teacher_layer": cfg.teacher_layer, "hidden_weight": cfg.hidden_weight,
            "steps_done": self.start, "steps_target": cfg.steps, "train": cfg.record(),
            "data": {k: v for k, v in data.info.items() if k != "format"} | {"heldout_rows": self.heldout, "train_rows": self.n_train},
            "init_from_teacher": self.init_counts, "warnings": self.warns, "world_size": self.world,
        }
        log_path = self.out / "train_log.jsonl"
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_marker(self.out, "supernet")
            if not (self.out / "tokenizer_config.json").is_file():
                self.teacher.tokenizer.save_pretrained(str(self.out))
            if self.heldout:
                ids, mask = data.batch(np.arange(self.n_train, len(data)))
                save_weights(self.out / "heldout.safetensors",
                             {"input_ids": ids.to(torch.int32), "attention_mask": mask.to(torch.int8)})
            if self.start == 0:  # a fresh supernet: the teacher-initialised weights are usable before the first step
                self._publish(save_weights(self.out / "model.safetensors", self.model.state_dict()))
            if log_path.exists():  # drop lines past the checkpoint we resume from
                kept = [ln for ln in log_path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] < self.start]
                atomic_write_text(log_path, "".join(k + "\n" for k in kept))
        self.accelerator.wait_for_everyone()
        # Held open for the whole run (one line per step); train_supernet closes it in its finally.
        self.log_fh = open(log_path, "a", encoding="utf-8") if self.main else None  # noqa: SIM115
        self.model.train()

    def _publish(self, weights: Path, **extra: Any) -> None:
        self.meta.update(weights_sha256=sha256_file(weights), **extra)
        atomic_write_text(self.out / "supernet.json", json.dumps(self.meta, indent=2))

    # ------------------------------------------------------------ step
    def lr_at(self, step: int) -> float:
        return lr_at(step, self.cfg)

    def _teacher_qkv(self, step: int, ids, mask):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        f = self.teacher_cache / f"step-{step:07d}.safetensors" if self.teacher_cache else None
        if f is not None and f.is_file():
            try:
                t = load_file(str(f))
                return t["q"], t["k"], t["v"]
            except (SafetensorError, OSError, KeyError):  # a torn or foreign file from a killed run: recompute
                pass
        qkv = teacher_qkv(self.teacher.model, ids, mask, self.cfg.teacher_layer)
        if f is not None:
            save_weights(f, dict(zip("qkv", qkv, strict=True)))
        return qkv

    def train_step(self, step: int) -> dict[str, float]:
        import torch

        from hwnas.supernet.losses import TeacherTargets, distillation_loss

        cfg, acc = self.cfg, self.accelerator
        ids, mask = self.data.batch(batch_rows(self.n_train, cfg.batch_size, cfg.seed, step)[self.rank :: self.world])
        t_hidden = None
        if cfg.hidden_weight:
            with torch.no_grad():
                t_hidden = self.teacher.model(input_ids=ids, attention_mask=mask).last_hidden_state
        targets = TeacherTargets(self._teacher_qkv(step, ids, mask), mask, self.r, t_hidden)
        archs = sandwich(cfg.space, cfg.seed, step, cfg.random_subnets)
        # Shards may hold different numbers of real tokens; weigh each process's
        # mean so that the averaged gradient is that of the global-batch mean.
        tokens = float(mask.sum())
        scale = self.world * tokens / float(acc.reduce(torch.tensor([tokens], dtype=torch.float64), "sum")[0]) \
            if self.world > 1 else 1.0
        self.optimizer.zero_grad(set_to_none=False)
        values = []
        for arch in archs:
            o = self.model(ids, mask, arch, return_qkv=True)
            loss = scale * distillation_loss(targets, o.qkv, o.last_hidden_state, hidden_weight=cfg.hidden_weight)
            (loss / len(archs)).backward()
            values.append(float(loss.detach()))
        self.stop_if_diverged(step, values)  # before any update: the last checkpoint stays the last good one
        if self.world > 1:
            self._average_grads()
            values = acc.reduce(torch.tensor(values, dtype=torch.float64), "mean").tolist()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        for group in self.optimizer.param_groups:  # the loop set every group to lr_at(step)
            group["lr"] = lr_at(step, cfg) * group.get("lr_mult", 1.0)
        self.optimizer.step()
        entry = {"step": step, "lr": lr_at(step, cfg), "largest": values[0], "smallest": values[-1],
                 "mean": float(np.mean(values)), "archs": [a.key for a in archs], "wall_s": self.elapsed()}
        self.losses.append(entry)
        return {"loss": entry["mean"], "lr": entry["lr"]}

    def _average_grads(self) -> None:
        """Average the gradients over processes in one flat all-reduce (a parameter no sampled sub-network
        touched still takes part, as zeros)."""
        import torch

        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in self.params]
        flat = self.accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), "mean")
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def after_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.log_fh is not None:
            self.log_fh.write(json.dumps(self.losses[-1]) + "\n")
            self.log_fh.flush()

    # ------------------------------------------------------------ checkpoint
    def checkpoint_state(self) -> dict[str, Any]:
        return {"seed": self.cfg.seed, "config": self.cfg.record(), "total_wall_s": self.total_wall_prev + self.elapsed(),
                "relation_heads": self.r, "world_size": self.world}

    def after_checkpoint(self, folder: Path | None, done: int) -> None:
        """The supernet folder's weights and description follow every checkpoint."""
        if folder is not None:
            weights = atomic_write_bytes(self.out / "model.safetensors", (folder / "model.safetensors").read_bytes())
            self._publish(weights, steps_done=done, train_wall_s=self.total_wall_prev + self.elapsed())


def train_supernet(cfg: TrainConfig, *, resume: bool = False, on_progress: ProgressCallback | None = None,
                   on_status: StatusCallback | None = None) -> TrainResult:
    """Train (or resume) one supernet; returns a :class:`TrainResult`.

    Args:
        resume: continue from the last checkpoint in ``cfg.out`` (refused without it when one exists).
        on_progress: receives ``ProgressEvent(stage="tokenise", ...)`` while the data is tokenised, then
            ``ProgressEvent(stage="supernet", completed=step, total=cfg.steps, metrics={"loss", "lr"},
            checkpoint=...)`` after every step (main process only).
        on_status: receives one line per warning or notice (main process only).
    """
    loop = SupernetLoop(cfg, resume=resume, on_progress=on_progress, on_status=on_status)
    loop.setup(on_progress)
    loop.resume()
    loop.write_start()
    try:
        loop.run()
    finally:
        if loop.log_fh is not None:
            loop.log_fh.close()
    run, wall, losses = cfg.steps - loop.start, loop.wall_s, loop.losses
    return TrainResult(
        out=loop.out, steps_done=cfg.steps, steps_run=run, wall_s=wall, total_wall_s=loop.total_wall_prev + wall,
        samples_per_s=run * cfg.batch_size / wall if wall > 0 and run else 0.0, resumed_from=loop.resumed_from,
        first_loss=losses[0]["mean"] if losses else None, last_loss=losses[-1]["mean"] if losses else None, losses=losses,
    )
