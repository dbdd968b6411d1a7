"""Distillation losses: named components combined by weights from a config file.

Every component compares a student's forward pass with the teacher's on the
same batch. Each is a small function on tensors (tested against hand-computed
values) wrapped in a :class:`LossComponent` that knows which model outputs it
needs and which trainable parameters (projections, critics) it owns.

Components (registry :data:`LOSSES`):

``task``
    cross-entropy with the gold labels (mean squared error for regression).
``logits``
    KL divergence between teacher and student class distributions at
    temperature ``T``, multiplied by ``T**2`` so that its gradients keep the
    same scale whatever ``T`` is (Hinton et al., 2015). Regression: MSE of the outputs.
``hidden``
    MSE between hidden states of mapped layers (student layer ``i`` of ``Ls``
    learns teacher layer ``round(i * Lt / Ls)``), over real (non-padding)
    tokens; a learned linear projection maps the student's width to the
    teacher's when they differ (TinyBERT). It starts ``aligned`` (the
    zero-padded identity: student unit ``k`` gives teacher unit ``k``), the
    correspondence a student sliced from the teacher or extracted from a
    supernet already has; ``hidden_projection: random`` keeps the random start
    of earlier releases (with it, narrow sliced students stayed at the majority
    class: the loss pulled their last layer towards a random mix of the
    teacher's features, away from what their pooler reads).
``attention``
    KL divergence between teacher and student attention distributions of
    mapped layers, per query token, over real tokens. With different head
    counts both are first averaged over heads.
``value_relation``
    MiniLM's value-relation transfer on the last layer: values are split into
    ``R`` relation heads, ``softmax(V V^T / sqrt(d))`` gives a token-to-token
    distribution, and the student's is pulled to the teacher's by KL.
``mi_alpha``
    Distiller's intermediate objective: maximise a lower bound on the mutual
    information between teacher and student sentence representations (mean of
    mapped layers' token states), the ``alpha`` interpolation between the
    InfoNCE and NWJ bounds (Poole et al., 2019, "On variational bounds of
    mutual information"). The critic is a cosine similarity over a learned
    projection, divided by a temperature ``T``. The loss is minus the bound
    times ``T``, so that its gradients keep the scale of the other losses
    whatever ``T`` is (without the factor they grow like ``1/T``).

The loss-weights file (JSON or YAML) looks like::

    weights: {logits: 1.0, hidden: 1.0, attention: 0.0, value_relation: 0.0, mi_alpha: 0.0, task: 0.0}
    temperature: 2.0        # logits KD temperature (at the start, with temperature_end)
    temperature_end: null   # anneal the logits temperature linearly to this by the last step (null: constant)
    layer_map: uniform      # intermediate-layer mapping: uniform, last (the teacher's last layers) or top (last only)
    alpha: 0.5              # mi_alpha interpolation (0: NWJ, 1: InfoNCE)
    mi_temperature: 0.1     # critic temperature of mi_alpha
    relation_heads: null    # value_relation heads (null: the largest R <= the teacher's heads dividing both widths)
    weight_schedule: {}     # per-loss weight schedules over the training steps (empty: constant weights)
    hidden_projection: aligned  # how the hidden loss's width projection starts: aligned or random

Loss-weight schedules (:class:`WeightSchedule`): a loss's weight may move over training,
as a function of the fraction of training done ``p = step / (steps - 1)`` (0-based global
step, so a resumed run continues the schedule where it stopped)::

    weight_schedule:
      hidden: {shape: linear, end: 0.0}                 # from its weight (start) to 0
      attention: {shape: cosine, start: 1.0, end: 0.0}  # half-cosine from 1 to 0
      logits: {shape: step, start: 0.5, end: 1.0, at: 0.5}   # 0.5 for the first half, then 1

Shapes: ``constant`` (``start`` throughout), ``linear``, ``cosine`` (half a cosine from
``start`` to ``end``: flat at both ends) and ``step`` (``start`` before ``at``, ``end`` from
``at`` on). ``start`` and ``end`` default to the loss's weight in ``weights``; a scheduled loss
must have a weight > 0 there (that is what makes it part of the recipe). Decaying the
intermediate-layer losses while the output (logits) loss stays is the idea of progressive
and annealing knowledge distillation (Jafari et al., 2021, "Annealing Knowledge
Distillation", EACL; TinyBERT and MobileBERT also move from intermediate-layer to
prediction-layer distillation, there in separate stages).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas._files import read_yaml_or_json
from hwnas._registry import Registry
from hwnas.training.relations import relation_heads, relation_kl, relation_log_probs
from hwnas.errors import InvalidConfig

__all__ = [
    "LOSSES",
    "LossConfig",
    "ModelOutputs",
    "DistillLoss",
    "kd_logits",
    "hidden_mse",
    "attention_kl",
    "value_relation_kl",
    "mi_alpha_bound",
    "layer_map",
    "LAYER_MAPS",
    "WeightSchedule",
    "PROJECTION_INITS",
    "WEIGHT_SHAPES",
    "parse_weight_schedules",
    "register_loss",
]

_EPS = 1e-12


# ---------------------------------------------------------------- the pure functions
def kd_logits(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, averaged over the batch.

    Args:
        student, teacher: ``batch x classes`` logits.
        temperature: ``T > 0``.
    """
    t = temperature
    log_p_s = F.log_softmax(student / t, dim=-1)
    log_p_t = F.log_softmax(teacher / t, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return kl.mean() * t * t


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (``batch x seq``) over positions where ``mask`` is 1."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per feature, averaged over real tokens.

    Args:
        student, teacher: ``batch x seq x hidden`` (the student already projected to the teacher's width).
        mask: ``batch x seq``, 1 for real tokens.
    """
    return _masked_mean(((student - teacher) ** 2).mean(-1), mask)


def _row_kl(p_teacher: torch.Tensor, log_q_student: torch.Tensor) -> torch.Tensor:
    """KL(p || q) along the last axis; ``0 * log 0`` counts as 0."""
    return (p_teacher * (torch.log(p_teacher.clamp_min(_EPS)) - log_q_student)).sum(-1)


def attention_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of attention distributions, averaged over heads and real query tokens.

    Args:
        student, teacher: ``batch x heads x seq x seq`` attention probabilities
            (rows sum to 1). Different head counts are averaged over heads first.
        mask: ``batch x seq``, 1 for real tokens.
    """
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    kl = _row_kl(teacher, torch.log(student.clamp_min(_EPS)))  # batch x heads x seq
    return _masked_mean(kl.mean(1), mask)


def value_relation_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """MiniLM value-relation loss: KL between teacher and student value relations (:mod:`hwnas.training.relations`).

    Args:
        student: ``batch x seq x hidden_s`` value vectors (all heads concatenated).
        teacher: ``batch x seq x hidden_t``.
        mask: ``batch x seq``, 1 for real tokens.
        heads: relation heads ``R``; must divide both widths.
    """
    return relation_kl(relation_log_probs(teacher, heads, mask), relation_log_probs(student, heads, mask), mask)


def _log_interpolate(log_a: torch.Tensor, log_b: torch.Tensor, alpha: float) -> torch.Tensor:
    """``log(alpha * a + (1 - alpha) * b)`` computed in log space."""
    if alpha >= 1:
        return log_a
    if alpha <= 0:
        return log_b
    return torch.logaddexp(log_a + math.log(alpha), log_b + math.log1p(-alpha))


def mi_alpha_bound(scores: torch.Tensor, alpha: float, log_baseline: float | torch.Tensor = 0.0) -> torch.Tensor:
    """The ``alpha`` lower bound on mutual information from in-batch critic scores.

    ``scores[i, j] = f(x_i, y_j)``; the diagonal holds the matched (joint)
    pairs. For row ``i`` and column ``j`` the baseline is
    ``b[i, j] = log(alpha * mean_{k != j} exp(scores[i, k]) + (1 - alpha) * exp(log_baseline))``
    (leaving column ``j`` out keeps a pair out of its own baseline). Then::

        joint = mean_{i != j} (scores[i, i] - b[i, j])
        marginal = mean_{i != j} exp(scores[i, j] - b[i, i])
        bound = 1 + joint - marginal

    ``alpha = 0`` with a zero baseline is the NWJ bound; ``alpha = 1`` is a
    leave-one-out InfoNCE bound (at most ``log(batch)``).

    Args:
        scores: ``batch x batch`` critic values, batch >= 2.
        alpha: in ``[0, 1]``.
        log_baseline: ``log q(y)``, a scalar (0 by default).
    Returns:
        the bound in nats (a scalar); maximise it, or minimise its negative.
    """
    n = scores.shape[0]
    if n < 2:
        raise InvalidConfig("mi_alpha needs a batch of at least 2 examples")
    eye = torch.eye(n, dtype=torch.bool, device=scores.device)
    # Leave-one-out log-sum-exp over each row, leaving out each column in turn, computed directly
    # (n x n x n; n is a batch). Subtracting column j from the row's log-sum-exp instead,
    # lse + log1p(-exp(s_ij - lse)), cancels once s_ij dominates its row (a matched student): in float32
    # its gradient was off by about 4% of the gradient's norm when the diagonal led by 15.
    left_out = scores[:, None, :].expand(n, n, n).masked_fill(eye[None, :, :], float("-inf"))
    loo = torch.logsumexp(left_out, dim=-1)                                        # log sum_{k != j}
    loo_mean = loo - math.log(n - 1)
    base = torch.as_tensor(log_baseline, dtype=scores.dtype, device=scores.device).expand_as(scores)
    b = _log_interpolate(loo_mean, base, alpha)                                   # n x n
    diag_scores = scores.diagonal()
    joint = (diag_scores[:, None] - b)[~eye].mean()
    marg_log = (scores - b.diagonal()[:, None])[~eye]
    marginal = torch.exp(torch.logsumexp(marg_log, dim=0) - math.log(marg_log.numel()))
    return 1 + joint - marginal


#: Intermediate-layer mappings (:func:`layer_map`).
LAYER_MAPS = ("uniform", "last", "top")


def layer_map(student_layers: int, teacher_layers: int, how: str = "uniform") -> list[tuple[int, int]]:
    """Pairs ``(student index, teacher index)`` into ``hidden_states`` (index 0 = embeddings).

    ``uniform``: student layer ``i`` (1-based) learns teacher layer ``round(i * Lt / Ls)``: uniform
    spacing that always pairs the last layers (TinyBERT). ``last``: the student's layers learn the
    teacher's last ``Ls`` layers, in order (the lower teacher layers are skipped). ``top``: only the
    last layers are paired (MiniLM-style last-layer transfer).
    """
    if how not in LAYER_MAPS:
        raise InvalidConfig(f"layer_map must be one of {', '.join(LAYER_MAPS)}; got {how!r}")
    if how == "top":
        return [(student_layers, teacher_layers)]
    if how == "last":
        offset = max(0, teacher_layers - student_layers)
        return [(i, min(teacher_layers, offset + i)) for i in range(1, student_layers + 1)]
    return [(i, max(1, min(teacher_layers, round(i * teacher_layers / student_layers))))
            for i in range(1, student_layers + 1)]


# ---------------------------------------------------------------- model outputs
@dataclass
class ModelOutputs:
    """What one forward pass gives the losses.

    Attributes:
        logits: ``batch x classes`` (``batch x 1`` for regression).
        hidden_states: ``layers + 1`` tensors of ``batch x seq x hidden`` (index 0: embeddings).
        attentions: ``layers`` tensors of ``batch x heads x seq x seq``, or ``None``.
        values: ``layers`` tensors of ``batch x seq x hidden`` (value projections), or ``None``.
        attention_mask: ``batch x seq``, 1 for real tokens.
    """

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None
    attentions: tuple[torch.Tensor, ...] | None
    values: list[torch.Tensor] | None
    attention_mask: torch.Tensor


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int


# ---------------------------------------------------------------- components
class LossComponent(nn.Module, ABC):
    """A named loss. Subclasses set ``name``, ``needs`` and implement :meth:`forward`.

    ``needs`` is a subset of ``{"hidden_states", "attentions", "values", "teacher"}``
    telling the trainer which outputs to collect.
    """

    name: str = ""
    needs: frozenset[str] = frozenset({"teacher"})

    def __init__(self, config: LossConfig, student: ModelShape, teacher: ModelShape, kind: str) -> None:
        super().__init__()
        self.config, self.student_shape, self.teacher_shape, self.kind = config, student, teacher, kind
        self.progress = 0.0  # fraction of training done, in [0, 1]: set by DistillLoss.set_progress for schedules

    @abstractmethod
    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor) -> torch.Tensor:
        """The loss, a scalar tensor."""


#: Every loss component by name (entry-point group ``hwnas.losses``).
LOSSES: Registry[type[LossComponent]] = Registry("loss", entry_point_group="hwnas.losses", base=LossComponent)


def register_loss(cls: type[LossComponent]) -> type[LossComponent]:
    """Class decorator adding a component to :data:`LOSSES`; a duplicate name is an error."""
    if not cls.name or cls.name in LOSSES:
        raise InvalidConfig(f"loss name {cls.name!r} is empty or already registered")
    return LOSSES.register(cls.name)(cls)


#: How the hidden-state projection starts (:attr:`LossConfig.hidden_projection`).
PROJECTION_INITS = ("aligned", "random")


def _projection(src: int, dst: int, init: str = "random") -> nn.Module:
    """The student-to-teacher width map: the identity for equal widths, else a linear layer.

    ``aligned`` starts it as the zero-padded identity (student unit ``k`` gives teacher unit ``k``,
    bias 0); ``random`` keeps ``nn.Linear``'s random initialisation.
    """
    if src == dst:
        return nn.Identity()
    linear = nn.Linear(src, dst)
    if init == "aligned":
        with torch.no_grad():
            linear.weight.zero_()
            linear.weight[: min(src, dst), : min(src, dst)] = torch.eye(min(src, dst))
            linear.bias.zero_()
    return linear


@register_loss
class TaskLoss(LossComponent):
    """Cross-entropy with gold labels (MSE for regression); needs no teacher."""

    name = "task"
    needs = frozenset()

    def forward(self, student, teacher, labels):
        if self.kind == "regression":
            return F.mse_loss(student.logits.squeeze(-1), labels.to(student.logits.dtype))
        return F.cross_entropy(student.logits, labels)


@register_loss
class LogitsLoss(LossComponent):
    """Temperature-scaled KL of class distributions (x T^2); MSE for regression."""

    name = "logits"

    def forward(self, student, teacher, labels):
        if self.kind == "regression":
            return F.mse_loss(student.logits, teacher.logits)
        return kd_logits(student.logits, teacher.logits, self.config.temperature_at(self.progress))


@register_loss
class HiddenLoss(LossComponent):
    """Hidden-state MSE on mapped layers, with a learned projection when widths differ."""

    name = "hidden"
    needs = frozenset({"teacher", "hidden_states"})

    def __init__(self, config, student, teacher, kind):
        super().__init__(config, student, teacher, kind)
        self.pairs = layer_map(student.layers, teacher.layers, config.layer_map)
        self.proj = _projection(student.hidden, teacher.hidden, config.hidden_projection)

    def forward(self, student, teacher, labels):
        mask = student.attention_mask
        parts = [hidden_mse(self.proj(student.hidden_states[i]), teacher.hidden_states[j], mask) for i, j in self.pairs]
        return torch.stack(parts).mean()


@register_loss
class AttentionLoss(LossComponent):
    """Attention-distribution KL on mapped layers."""

    name = "attention"
    needs = frozenset({"teacher", "attentions"})

    def __init__(self, config, student, teacher, kind):
        super().__init__(config, student, teacher, kind)
        self.pairs = layer_map(student.layers, teacher.layers, config.layer_map)

    def forward(self, student, teacher, labels):
        mask = student.attention_mask
        parts = [attention_kl(student.attentions[i - 1], teacher.attentions[j - 1], mask) for i, j in self.pairs]
        return torch.stack(parts).mean()


def relation_heads_for(student_hidden: int, teacher_hidden: int, requested: int | None = None, *,
                       teacher_heads: int = 12) -> int:
    """Relation heads for MiniLM's value relation: ``requested``, or the largest ``R <= teacher_heads`` dividing
    both widths (:func:`hwnas.training.relation_heads`, the rule supernet training uses too)."""
    return relation_heads([student_hidden, teacher_hidden], cap=teacher_heads, requested=requested)


@register_loss
class ValueRelationLoss(LossComponent):
    """MiniLM's value-relation KL on the last layer."""

    name = "value_relation"
    needs = frozenset({"teacher", "values"})

    def __init__(self, config, student, teacher, kind):
        super().__init__(config, student, teacher, kind)
        self.heads = relation_heads_for(student.hidden, teacher.hidden, config.relation_heads, teacher_heads=teacher.heads)

    def forward(self, student, teacher, labels):
        return value_relation_kl(student.values[-1], teacher.values[-1], student.attention_mask, self.heads)


@register_loss
class MIAlphaLoss(LossComponent):
    """Minus Distiller's MI-alpha bound between teacher and student sentence representations."""

    name = "mi_alpha"
    needs = frozenset({"teacher", "hidden_states"})

    def __init__(self, config, student, teacher, kind):
        super().__init__(config, student, teacher, kind)
        self.pairs = layer_map(student.layers, teacher.layers, config.layer_map)
        self.proj = nn.Linear(student.hidden, teacher.hidden)

    @staticmethod
    def _pool(states: tuple[torch.Tensor, ...], layers: list[int], mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(states[0].dtype)[..., None]
        stacked = torch.stack([states[i] for i in layers]).mean(0)  # batch x seq x hidden
        return (stacked * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, student, teacher, labels):
        mask = student.attention_mask
        s = F.normalize(self.proj(self._pool(student.hidden_states, [i for i, _ in self.pairs], mask)), dim=-1)
        t = F.normalize(self._pool(teacher.hidden_states, [j for _, j in self.pairs], mask), dim=-1)
        temperature = self.config.mi_temperature
        scores = (t @ s.T) / temperature  # scores[i, j] = f(teacher_i, student_j)
        # The bound is a function of cosines / T, so it and its gradients grow like 1/T: at T = 0.1 they were
        # ten times those of the other losses, and under gradient clipping they crowded the task out (a student
        # went to chance at weight 0.1). Times T (as the logits loss is times T**2), the gradient with respect
        # to the cosines no longer depends on T and the loss lies within a few units, like the others.
        return -temperature * mi_alpha_bound(scores.float(), self.config.alpha)


# ---------------------------------------------------------------- loss-weight schedules
#: Shapes of a loss-weight schedule (:class:`WeightSchedule`).
WEIGHT_SHAPES = ("constant", "linear", "cosine", "step")


def _weight_value(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidConfig(f"{what} must be a finite number >= 0; got {value!r}")
    return float(value)


@dataclass(frozen=True)
class WeightSchedule:
    """How one loss's weight moves over training (see the module docstring).

    Args:
        shape: one of :data:`WEIGHT_SHAPES`.
        start: the weight at the first step (``None``: the loss's weight in ``weights``).
        end: the weight at the last step (``None``: the loss's weight in ``weights``).
        at: ``step`` only: the fraction of training, in ``(0, 1]``, from which the weight is ``end``
            (default 0.5).
    """

    shape: str = "constant"
    start: float | None = None
    end: float | None = None
    at: float | None = None

    def __post_init__(self) -> None:
        if self.shape not in WEIGHT_SHAPES:
            raise InvalidConfig(f"weight schedule shape must be one of {', '.join(WEIGHT_SHAPES)}; got {self.shape!r}")
        object.__setattr__(self, "start", _weight_value(self.start, "a scheduled weight's start"))
        object.__setattr__(self, "end", _weight_value(self.end, "a scheduled weight's end"))
        if self.at is None:
            if self.shape == "step":
                object.__setattr__(self, "at", 0.5)
            return
        if self.shape != "step":
            raise InvalidConfig(f"'at' applies to step schedules only; got at={self.at!r} with shape {self.shape!r}")
        if isinstance(self.at, bool) or not isinstance(self.at, (int, float)) or not 0 < self.at <= 1:
            raise InvalidConfig(f"a step schedule's 'at' must be a fraction of training in (0, 1]; got {self.at!r}")
        object.__setattr__(self, "at", float(self.at))

    def value(self, weight: float, progress: float) -> float:
        """The weight at ``progress`` (fraction of training done, clipped to ``[0, 1]``); ``weight``: the
        loss's weight in ``weights``, used where ``start`` or ``end`` is not set."""
        a = weight if self.start is None else self.start
        b = weight if self.end is None else self.end
        p = min(1.0, max(0.0, float(progress)))
        if self.shape == "constant":
            return a
        if self.shape == "linear":
            return a + (b - a) * p
        if self.shape == "cosine":
            return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * p))
        return a if p < self.at else b

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (``at`` for ``step`` only), as JSON values."""
        d: dict[str, Any] = {"shape": self.shape}
        for name in ("start", "end"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        if self.shape == "step":
            d["at"] = self.at
        return d

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> WeightSchedule:
        if isinstance(data, WeightSchedule):
            return data
        if isinstance(data, str):
            return cls.parse(data, where=where)
        if not isinstance(data, Mapping):
            raise InvalidConfig(f"{where}: expected a mapping such as {{shape: linear, end: 0}} or 'linear:1->0'; "
                                f"got {data!r}")
        unknown = sorted(set(data) - {"shape", "start", "end", "at"})
        if unknown:
            raise InvalidConfig(f"{where}: unknown keys {unknown}; allowed: shape, start, end, at")
        try:
            return cls(**dict(data))
        except (InvalidConfig, TypeError) as exc:
            raise InvalidConfig(f"{where}: {exc}") from None

    @classmethod
    def parse(cls, text: str, *, where: str = "weight schedule") -> WeightSchedule:
        """The compact form ``SHAPE[:[START]->[END]][@AT]``: ``linear:1->0``, ``cosine:->0``, ``step:1->0@0.3``."""
        spec = str(text).strip()
        shape, _, rest = spec.partition(":")
        rest, sep_at, at = rest.partition("@")
        if not sep_at and "@" in shape:
            shape, _, at = shape.partition("@")
            sep_at = "@"
        kw: dict[str, Any] = {"shape": shape.strip()}
        try:
            if rest.strip():
                start, arrow, end = rest.partition("->")
                if not arrow:
                    raise ValueError
                if start.strip():
                    kw["start"] = float(start)
                if end.strip():
                    kw["end"] = float(end)
            if sep_at:
                kw["at"] = float(at)
        except ValueError:
            raise InvalidConfig(f"{where}: cannot read {spec!r}; write SHAPE[:START->END][@AT], e.g. linear:1->0, "
                                "cosine:0.5->1 or step:1->0@0.5") from None
        try:
            return cls(**kw)
        except InvalidConfig as exc:
            raise InvalidConfig(f"{where}: {exc}") from None


def parse_weight_schedules(items: list[str], option: str = "--weight-schedule") -> dict[str, WeightSchedule]:
    """``["hidden=linear:1->0", "logits=cosine:0.5->1"]`` as schedules by loss name; ``["none"]``: no schedules.

    Loss names are checked against the losses when the schedules join a :class:`LossConfig`.
    """
    if [i.strip().lower() for i in items] == ["none"]:
        return {}
    out: dict[str, WeightSchedule] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        name = name.strip()
        if not sep or not name or not spec.strip():
            raise InvalidConfig(f"{option}: cannot read {item!r}; write LOSS=SHAPE[:START->END][@AT], e.g. "
                                "hidden=linear:1->0,logits=cosine:0.5->1 (or 'none')")
        if name not in LOSSES:
            raise InvalidConfig(f"{option}: unknown loss {name!r}; losses are: {', '.join(LOSSES)}")
        if name in out:
            raise InvalidConfig(f"{option}: {name!r} is scheduled twice")
        out[name] = WeightSchedule.parse(spec, where=f"{option} {name}")
    return out


# ---------------------------------------------------------------- config and the combination
@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss components and their settings (see the module docstring)."""

    weights: Mapping[str, float] = field(default_factory=lambda: {"logits": 1.0, "hidden": 1.0})
    temperature: float = 2.0
    alpha: float = 0.5
    mi_temperature: float = 0.1
    relation_heads: int | None = None
    temperature_end: float | None = None
    layer_map: str = "uniform"
    weight_schedule: Mapping[str, WeightSchedule] = field(default_factory=dict)
    hidden_projection: str = "aligned"

    def __post_init__(self) -> None:
        if not isinstance(self.weights, Mapping) or not self.weights:
            raise InvalidConfig(f"weights must be a mapping of loss name to weight; got {self.weights!r}")
        clean: dict[str, float] = {}
        for name, w in self.weights.items():
            if name not in LOSSES:
                raise InvalidConfig(f"unknown loss {name!r} in weights; losses are: {', '.join(LOSSES)}")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise InvalidConfig(f"weight of {name!r} must be a finite number >= 0; got {w!r}")
            clean[name] = float(w)
        if not any(clean.values()):
            raise InvalidConfig(f"at least one loss weight must be > 0; got {clean}")
        object.__setattr__(self, "weights", clean)
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise InvalidConfig(f"temperature must be > 0; got {self.temperature!r}")
        if not (isinstance(self.alpha, (int, float)) and 0 <= self.alpha <= 1):
            raise InvalidConfig(f"alpha must be in [0, 1]; got {self.alpha!r}")
        if not (isinstance(self.mi_temperature, (int, float)) and self.mi_temperature > 0):
            raise InvalidConfig(f"mi_temperature must be > 0; got {self.mi_temperature!r}")
        if self.relation_heads is not None and (not isinstance(self.relation_heads, int) or self.relation_heads < 1):
            raise InvalidConfig(f"relation_heads must be an integer >= 1 or null; got {self.relation_heads!r}")
        if self.temperature_end is not None and not (isinstance(self.temperature_end, (int, float))
                                                     and not isinstance(self.temperature_end, bool)
                                                     and math.isfinite(self.temperature_end) and self.temperature_end > 0):
            raise InvalidConfig(f"temperature_end must be > 0 or null; got {self.temperature_end!r}")
        if self.layer_map not in LAYER_MAPS:
            raise InvalidConfig(f"layer_map must be one of {', '.join(LAYER_MAPS)}; got {self.layer_map!r}")
        if self.hidden_projection not in PROJECTION_INITS:
            raise InvalidConfig(f"hidden_projection must be one of {', '.join(PROJECTION_INITS)}; "
                                f"got {self.hidden_projection!r}")
        self._check_schedule()

    def _check_schedule(self) -> None:
        schedule = self.weight_schedule if self.weight_schedule is not None else {}
        if not isinstance(schedule, Mapping):
            raise InvalidConfig(f"weight_schedule must map loss names to schedules; got {schedule!r}")
        clean: dict[str, WeightSchedule] = {}
        for name, spec in schedule.items():
            if name not in LOSSES:
                raise InvalidConfig(f"unknown loss {name!r} in weight_schedule; losses are: {', '.join(LOSSES)}")
            if self.weights.get(name, 0.0) <= 0:
                active = ", ".join(k for k, v in self.weights.items() if v > 0)
                raise InvalidConfig(f"weight_schedule names {name!r}, which is not among the losses ({active}); "
                                    f"give it a weight > 0 in the losses to schedule it")
            clean[name] = WeightSchedule.from_dict(spec, where=f"weight_schedule of {name!r}")
        object.__setattr__(self, "weight_schedule", clean)
        if clean:
            # every schedule is monotone between 0, 1 and the step points: checking a fine grid and each
            # side of every step is enough to find a point of training where no loss would be trained
            points = {i / 1000 for i in range(1001)}
            for s in clean.values():
                if s.shape == "step":
                    points |= {max(0.0, s.at - 1e-9), s.at}
            for p in sorted(points):
                if not any(self.weight_at(n, p) > 0 for n in self.active):
                    raise InvalidConfig(f"weight_schedule leaves every loss at weight 0 at {p:.0%} of training; "
                                        "keep at least one loss weighted above 0 throughout (e.g. logits)")

    def weight_at(self, name: str, progress: float) -> float:
        """The weight of loss ``name`` at ``progress`` (fraction of training done, ``step / (steps - 1)``)."""
        weight = self.weights.get(name, 0.0)
        schedule = self.weight_schedule.get(name)
        return weight if schedule is None else schedule.value(weight, progress)

    def temperature_at(self, progress: float) -> float:
        """Logits temperature at ``progress`` (fraction of training done): ``temperature``, moved linearly
        to ``temperature_end`` over training when that is set (an annealing schedule)."""
        if self.temperature_end is None:
            return self.temperature
        p = min(1.0, max(0.0, progress))
        return self.temperature + (self.temperature_end - self.temperature) * p

    @property
    def active(self) -> dict[str, float]:
        return {k: v for k, v in self.weights.items() if v > 0}

    def needs(self) -> set[str]:
        out: set[str] = set()
        for name in self.active:
            out |= LOSSES[name].needs
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights"] = dict(self.weights)
        d["weight_schedule"] = {name: s.to_dict() for name, s in self.weight_schedule.items()}
        # settings added later stay out at their defaults, so configs and checkpoints written before still match
        # (``hidden_projection: aligned`` too: a config without the key starts aligned, the bug fix included)
        for name, default in (("temperature_end", None), ("layer_map", "uniform"), ("weight_schedule", {}),
                              ("hidden_projection", "aligned")):
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "loss config") -> LossConfig:
        if not isinstance(data, Mapping):
            raise InvalidConfig(f"{where}: expected a mapping with 'weights'; got {type(data).__name__}")
        allowed = {"weights", "temperature", "alpha", "mi_temperature", "relation_heads", "temperature_end", "layer_map",
                   "weight_schedule", "hidden_projection"}
        unknown = set(data) - allowed
        if unknown:
            raise InvalidConfig(f"{where}: unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
        try:
            return cls(**dict(data))
        except InvalidConfig as exc:
            raise InvalidConfig(f"{where}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> LossConfig:
        """Read a JSON or YAML loss-weights file."""
        path = Path(path)
        data = read_yaml_or_json(path, InvalidConfig, "loss config")
        return cls.from_dict(data, where=f"loss config {path}")

    @classmethod
    def parse(cls, text: str) -> LossConfig:
        """``"logits=1,hidden=1"`` (weights only) or a path to a config file."""
        if Path(text).suffix.lower() in (".json", ".yaml", ".yml"):
            return cls.from_file(text)
        weights: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            try:
                weights[name.strip()] = float(value) if sep else 1.0
            except ValueError:
                raise InvalidConfig(f"cannot read loss weight {part!r}; write name=weight, e.g. logits=1,hidden=0.5") from None
        return cls(weights=weights)


class DistillLoss(nn.Module):
    """The weighted sum of the active components; owns their trainable parameters.

    ``forward`` returns ``(total, parts)`` where ``parts`` maps each active
    component's name to its unweighted value (a detached float). Each weight is
    :meth:`LossConfig.weight_at` the progress last given to :meth:`set_progress`.
    """

    def __init__(self, config: LossConfig, student: ModelShape, teacher: ModelShape, kind: str) -> None:
        super().__init__()
        self.config = config
        self.progress = 0.0
        self.components = nn.ModuleDict(
            {name: LOSSES[name](config, student, teacher, kind) for name in config.active}
        )

    def set_progress(self, progress: float) -> None:
        """Tell every component the fraction of training done (for the temperature and loss-weight schedules)."""
        self.progress = float(progress)
        for component in self.components.values():
            component.progress = float(progress)

    def forward(self, student: ModelOutputs, teacher: ModelOutputs | None, labels: torch.Tensor):
        total = student.logits.new_zeros(())
        parts: dict[str, float] = {}
        for name, component in self.components.items():
            value = component(student, teacher, labels)
            parts[name] = float(value.detach())
            total = total + self.config.weight_at(name, self.progress) * value.float()
        return total, parts
