"""Task-agnostic supernet training with the sandwich rule.

Every step takes one batch of text, runs the teacher once to get its last
layer's query/key/value relations (:class:`~hwnas.supernet.losses.TeacherTargets`),
and then trains, on the same targets, the largest sub-network of the space, the
smallest, and ``random_subnets`` sub-networks drawn uniformly from the space
(the sandwich rule of BigNAS / AutoDistil). Gradients of all sampled
sub-networks are summed into one optimizer step.

Data parallel: started under ``torchrun`` or ``accelerate launch`` (anything
that sets ``WORLD_SIZE``, ``RANK`` and ``MASTER_ADDR``), every process takes a
disjoint share of each global batch, all processes draw the same sub-networks
(the draw is seeded by ``(seed, step)``), gradients are averaged with one
all-reduce per step, and only rank 0 writes files. The gloo backend is used on
CPU, NCCL on CUDA.

Resuming: the data order and the sub-networks of step ``t`` depend only on
``(seed, t)``, and the checkpoint holds the weights, the optimizer state and
the RNG state, so a run killed at any moment continues from its last
checkpoint with ``resume=True`` and gives the same sub-network sequence.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas._files import sha256_file
from hwnas.errors import InvalidConfig, TrainingDiverged
from hwnas.space import Architecture, SearchSpace, get_space
from hwnas.training.schedule import epoch_batch, linear_warmup_decay

__all__ = ["TrainConfig", "TrainResult", "train_supernet", "space_warnings", "FORMAT", "VERSION"]

FORMAT = "hwnas-supernet"
VERSION = 1

# Fields that must agree between a checkpoint and the command resuming it.
_RESUME_FIELDS = (
    "teacher", "data", "text_column", "batch_size", "seq_len", "lr", "weight_decay", "warmup_steps",
    "random_subnets", "relation_heads", "teacher_layer", "hidden_weight", "heldout", "seed",
    "train_embeddings", "max_rows", "mixture", "experts", "router_hidden", "mix_attention",
)
# What a checkpoint written before a field existed meant by it.
_RESUME_DEFAULTS = {"mixture": "none", "experts": 2, "router_hidden": 128, "mix_attention": False}


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

    def __post_init__(self) -> None:
        def positive(name: str, allow_zero: bool = False) -> None:
            v = getattr(self, name)
            lo = 0 if allow_zero else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InvalidConfig(f"{name} must be an integer >= {lo}; got {v!r}")

        for name in ("steps", "batch_size", "checkpoint_every"):
            positive(name)
        for name in ("random_subnets", "heldout", "seed"):
            positive(name, allow_zero=True)
        if isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int) or self.seq_len < 8:
            raise InvalidConfig(f"seq_len must be an integer >= 8; got {self.seq_len!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise InvalidConfig(f"lr must be a number in (0, 1); got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < 1):
            raise InvalidConfig(f"weight_decay must be in [0, 1); got {self.weight_decay!r}")
        if not (isinstance(self.hidden_weight, (int, float)) and self.hidden_weight >= 0):
            raise InvalidConfig(f"hidden_weight must be >= 0; got {self.hidden_weight!r}")
        for name in ("warmup_steps", "max_rows", "relation_heads", "threads"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "warmup_steps" else 1)):
                raise InvalidConfig(f"{name} must be a positive integer or None; got {v!r}")
        if not isinstance(self.teacher_layer, int) or isinstance(self.teacher_layer, bool):
            raise InvalidConfig(f"teacher_layer must be an integer (negative counts from the end); got {self.teacher_layer!r}")
        if not str(self.out).strip():
            raise InvalidConfig("out must be a folder path; got an empty string")
        from hwnas.supernet.elastic import check_mixture

        check_mixture(self.mixture, self.experts, self.router_hidden)
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


class _Dist:
    """torch.distributed when launched by torchrun / accelerate, else one process."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.owns_group = False
        if self.world > 1 and not dist.is_initialized():
            import torch

            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend)
            self.owns_group = True
        if self.world > 1:
            self.world, self.rank = dist.get_world_size(), dist.get_rank()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            self.dist.barrier()

    def average_grads(self, params: list[Any]) -> None:
        """All-reduce the gradients of ``params`` (one flat buffer) and divide by the world size."""
        if self.world == 1:
            return
        import torch

        for p in params:  # a parameter no sampled sub-network touched still takes part, as zeros
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def total(self, value: float) -> float:
        """Sum of ``value`` over all processes."""
        if self.world == 1:
            return value
        import torch

        t = torch.tensor([value], dtype=torch.float64)
        self.dist.all_reduce(t)
        return float(t[0])

    def mean(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        import torch

        t = torch.tensor(values, dtype=torch.float64)
        self.dist.all_reduce(t)
        return (t / self.world).tolist()

    def close(self) -> None:
        if self.owns_group:
            self.dist.destroy_process_group()


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
        if key in ("experts", "router_hidden", "mix_attention") and now.get("mixture") == "none" \
                and stored.get("mixture", "none") == "none":
            continue  # meaningless without a mixture
        if stored.get(key, _RESUME_DEFAULTS.get(key)) != now.get(key):
            raise InvalidConfig(
                f"cannot resume: {key} was {stored.get(key)!r} in the checkpoint but is {now.get(key)!r} now; "
                "use the same settings or another --out"
            )
    if cfg.steps < stored.get("steps_done", 0):
        raise InvalidConfig(f"cannot resume: steps={cfg.steps} is below the {stored['steps_done']} steps already done")


def train_supernet(cfg: TrainConfig, *, resume: bool = False, progress: bool = True, log=None) -> TrainResult:
    """Train (or resume) one supernet; returns a :class:`TrainResult`.

    ``log`` is an optional callable receiving one line of text per event
    (warnings, checkpoints); rich progress bars are shown when ``progress``.
    """
    import torch
    from safetensors.torch import save_file

    from hwnas.outputs import MARKER, check_output_folder, write_marker
    from hwnas.supernet.checkpoint import atomic_write_text, latest_checkpoint, load_checkpoint, save_checkpoint
    from hwnas.supernet.data import build_token_cache
    from hwnas.supernet.elastic import ElasticBert
    from hwnas.supernet.losses import TeacherTargets, default_relation_heads, distillation_loss
    from hwnas.supernet.teacher import load_teacher, teacher_qkv, teacher_summary

    say = log or (lambda line: None)
    out = Path(cfg.out)
    ckpt_root = out / "checkpoints"
    dist = _Dist()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        existing = latest_checkpoint(ckpt_root) if ckpt_root.exists() else None
        if existing is not None and not resume:
            raise InvalidConfig(f"{out} already holds a supernet checkpoint; pass --resume to continue it, or choose another --out")
        if resume and existing is None and (out / "supernet.json").is_file():
            stored = json.loads((out / "supernet.json").read_text())
            if stored.get("steps_done", 0) > 0:
                raise InvalidConfig(f"{out} has a supernet but no checkpoint to resume from")
        if not resume and out.exists() and any(out.iterdir()) and not (out / "supernet.json").is_file():
            if any(p.name not in (".cache", MARKER) for p in out.iterdir()):
                raise InvalidConfig(f"{out} exists and is not empty; choose an empty or new --out folder")
        check_output_folder(out, kind="supernet")  # never write into a folder hwnas did not make

        teacher = load_teacher(cfg.teacher)
        tcfg = teacher.config
        warns = space_warnings(cfg.space, tcfg)
        for w in warns:
            warnings.warn(w, stacklevel=2)
            if dist.main:
                say(f"warning: {w}")
        widths = [tcfg.hidden_size, *cfg.space.hidden]
        r = cfg.relation_heads or default_relation_heads(widths, tcfg.num_attention_heads)
        bad = [w for w in widths if w % r]
        if bad:
            raise InvalidConfig(f"relation_heads={r} must divide the teacher's and every student's hidden size; it does not divide {bad}")

        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else out / ".cache"
        if dist.main:
            data = build_token_cache(cfg.data, teacher.tokenizer, seq_len=cfg.seq_len, cache_dir=cache_dir,
                                     text_column=cfg.text_column, max_rows=cfg.max_rows, progress=progress)
        dist.barrier()
        if not dist.main:
            data = build_token_cache(cfg.data, teacher.tokenizer, seq_len=cfg.seq_len, cache_dir=cache_dir,
                                     text_column=cfg.text_column, max_rows=cfg.max_rows)
        heldout = min(cfg.heldout, len(data) // 5)
        n_train = len(data) - heldout
        if n_train < 1:
            raise InvalidConfig(f"data has {len(data)} rows, too few to train on")
        if cfg.batch_size % dist.world:
            raise InvalidConfig(f"batch_size={cfg.batch_size} must be divisible by the {dist.world} data-parallel processes")

        torch.manual_seed(cfg.seed)
        model = ElasticBert(cfg.space.largest, tcfg, mixture=cfg.mixture, experts=cfg.experts,
                            router_hidden=cfg.router_hidden, mix_attention=cfg.mix_attention)
        model.reset_parameters(seed=cfg.seed)
        counts = model.init_from_teacher(teacher.model)
        model.init_experts(cfg.seed)  # every expert starts from the teacher's slice (no-op without a mixture)
        model.pooler.weight.requires_grad_(False)
        model.pooler.bias.requires_grad_(False)
        if not cfg.train_embeddings:
            model.word.weight.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1]
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() <= 1]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6,
        )

        record = cfg.record()
        start, total_wall_prev, resumed_from = 0, 0.0, None
        if resume and existing is not None:
            stored = json.loads((existing / "state.json").read_text())
            _check_resume({**stored["config"], "steps_done": stored["step"]}, cfg)
            state = load_checkpoint(existing, model, optimizer)
            start, total_wall_prev, resumed_from = int(state["step"]), float(state.get("total_wall_s", 0.0)), int(state["step"])
            if dist.main:
                say(f"resuming {out} from step {start}")

        meta = {
            "format": FORMAT,
            "version": VERSION,
            "space": cfg.space.to_dict(),
            "teacher": teacher.name,
            "teacher_location": teacher.location,
            "teacher_shape": teacher_summary(tcfg),
            "max_arch": cfg.space.largest.as_dict(),
            "base_config": tcfg.to_dict(),
            "relation_heads": r,
            "mixture": model.mixture_info(),
            "teacher_layer": cfg.teacher_layer,
            "hidden_weight": cfg.hidden_weight,
            "steps_done": start,
            "steps_target": cfg.steps,
            "train": record,
            "data": {k: v for k, v in data.info.items() if k != "format"} | {"heldout_rows": heldout, "train_rows": n_train},
            "init_from_teacher": counts,
            "warnings": warns,
            "world_size": dist.world,
        }
        if dist.main:
            out.mkdir(parents=True, exist_ok=True)
            write_marker(out, "supernet")
            if not (out / "tokenizer_config.json").is_file():
                teacher.tokenizer.save_pretrained(str(out))
            h_rows = np.arange(n_train, len(data))
            if heldout:
                ids, mask = data.batch(h_rows)
                save_file({"input_ids": ids.to(torch.int32).contiguous(), "attention_mask": mask.to(torch.int8).contiguous()},
                          str(out / "heldout.safetensors"))
            if start == 0:
                # A fresh supernet: the teacher-initialised weights are usable before the first step.
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors.tmp"))
                os.replace(out / "model.safetensors.tmp", out / "model.safetensors")
                meta["weights_sha256"] = sha256_file(out / "model.safetensors")
                atomic_write_text(out / "supernet.json", json.dumps(meta, indent=2))
        dist.barrier()

        log_path = out / "train_log.jsonl"
        if dist.main and log_path.exists():  # drop lines past the checkpoint we resume from
            kept = [ln for ln in log_path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] < start]
            atomic_write_text(log_path, "".join(k + "\n" for k in kept))

        def checkpoint(step_done: int, wall: float) -> None:
            if dist.main:
                state = {"seed": cfg.seed, "config": record, "total_wall_s": total_wall_prev + wall,
                         "relation_heads": r, "world_size": dist.world}
                final = save_checkpoint(ckpt_root, step_done, model, optimizer, state)
                tmp_link = out / "model.safetensors.tmp"
                tmp_link.unlink(missing_ok=True)
                try:
                    os.link(final / "model.safetensors", tmp_link)
                except OSError:
                    import shutil

                    shutil.copyfile(final / "model.safetensors", tmp_link)
                os.replace(tmp_link, out / "model.safetensors")
                meta.update(steps_done=step_done, weights_sha256=sha256_file(out / "model.safetensors"),
                            train_wall_s=total_wall_prev + wall)
                atomic_write_text(out / "supernet.json", json.dumps(meta, indent=2))
                say(f"checkpoint step {step_done} -> {final}")
            dist.barrier()

        tc_dir = None
        if cfg.teacher_cache:
            tc_key = hashlib.sha256(json.dumps(
                [data.info.get("source"), data.info.get("bytes"), data.info["rows"], cfg.seq_len, cfg.max_rows, cfg.text_column,
                 heldout, cfg.seed, cfg.batch_size, dist.rank, dist.world, cfg.teacher_layer, teacher.name, tcfg.to_dict()],
                sort_keys=True, default=str).encode()).hexdigest()[:16]
            tc_dir = Path(cfg.teacher_cache) / f"qkv-{tc_key}"
            tc_dir.mkdir(parents=True, exist_ok=True)

        def _cached_qkv(step: int):
            from safetensors.torch import load_file

            f = tc_dir / f"step-{step:07d}.safetensors"
            if not f.is_file():
                return None
            try:
                t = load_file(str(f))
                return t["q"], t["k"], t["v"]
            except Exception:  # a torn file from a killed run: recompute
                return None

        def _store_qkv(step: int, qkv) -> None:
            f = tc_dir / f"step-{step:07d}.safetensors"
            tmp = f.with_name(f.name + f".{os.getpid()}.tmp")
            save_file({"q": qkv[0].contiguous(), "k": qkv[1].contiguous(), "v": qkv[2].contiguous()}, str(tmp))
            os.replace(tmp, f)

        model.train()
        t0 = time.perf_counter()
        losses: list[dict[str, Any]] = []
        bar = None
        if progress and dist.main:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            bar = Progress(TextColumn(f"supernet {cfg.space.name}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn())
            task = bar.add_task("train", total=cfg.steps, completed=start, loss="-")
            bar.start()
        log_fh = open(log_path, "a", encoding="utf-8") if dist.main else None
        try:
            for step in range(start, cfg.steps):
                rows = batch_rows(n_train, cfg.batch_size, cfg.seed, step)[dist.rank :: dist.world]
                ids, mask = data.batch(rows)
                qkv = _cached_qkv(step) if cfg.teacher_cache else None
                if qkv is None:
                    qkv = teacher_qkv(teacher.model, ids, mask, cfg.teacher_layer)
                    if cfg.teacher_cache:
                        _store_qkv(step, qkv)
                t_hidden = None
                if cfg.hidden_weight:
                    with torch.no_grad():
                        t_hidden = teacher.model(input_ids=ids, attention_mask=mask).last_hidden_state
                targets = TeacherTargets(qkv, mask, r, t_hidden)
                archs = sandwich(cfg.space, cfg.seed, step, cfg.random_subnets)
                # Shards may hold different numbers of real tokens; weigh each process's
                # mean so that the averaged gradient is that of the global-batch mean.
                scale = dist.world * float(mask.sum()) / dist.total(float(mask.sum())) if dist.world > 1 else 1.0
                optimizer.zero_grad(set_to_none=False)
                values = []
                for arch in archs:
                    o = model(ids, mask, arch, return_qkv=True)
                    loss = scale * distillation_loss(targets, o.qkv, o.last_hidden_state, hidden_weight=cfg.hidden_weight)
                    (loss / len(archs)).backward()
                    values.append(float(loss.detach()))
                if dist.total(float(not np.all(np.isfinite(values)))) > 0:  # every process stops together
                    raise TrainingDiverged(f"the training loss became non-finite at step {step} ({values}); stopped "
                                           f"before updating the weights: {out} keeps its last good checkpoint")
                dist.average_grads(params)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, cfg)
                optimizer.step()
                values = dist.mean(values)
                entry = {"step": step, "lr": lr_at(step, cfg), "largest": values[0], "smallest": values[-1],
                         "mean": float(np.mean(values)), "archs": [a.key for a in archs], "wall_s": time.perf_counter() - t0}
                losses.append(entry)
                if log_fh is not None:
                    log_fh.write(json.dumps(entry) + "\n")
                    log_fh.flush()
                if bar is not None:
                    bar.update(task, completed=step + 1, loss=f"{entry['mean']:.4f}")
                if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                    checkpoint(step + 1, time.perf_counter() - t0)
        finally:
            if bar is not None:
                bar.stop()
            if log_fh is not None:
                log_fh.close()
        wall = time.perf_counter() - t0
        run = cfg.steps - start
        return TrainResult(
            out=out, steps_done=cfg.steps, steps_run=run, wall_s=wall, total_wall_s=total_wall_prev + wall,
            samples_per_s=run * cfg.batch_size / wall if wall > 0 and run else 0.0,
            resumed_from=resumed_from, first_loss=losses[0]["mean"] if losses else None,
            last_loss=losses[-1]["mean"] if losses else None, losses=losses,
        )
    finally:
        dist.close()
