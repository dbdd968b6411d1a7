"""Elastic BERT: one set of weights, every architecture of a space is a slice.

The supernet stores the weights of the largest shape it must serve (the maximum
of every dimension of its space). A sub-network ``Architecture(L, h, a, f)``
uses

* the first ``L`` transformer layers;
* the first ``h`` hidden units everywhere: embedding columns, LayerNorm entries,
  the first ``h`` rows *and* columns of the query/key/value/output projections;
* ``a`` attention heads of width ``h / a`` over those ``h`` query/key/value
  units (so the attention output is exactly ``h`` wide, as in a standard
  ``BertConfig`` with ``hidden_size=h, num_attention_heads=a``);
* the first ``f`` FFN units (rows of the intermediate projection, columns of
  the output projection).

Because the head count only decides how the first ``h`` query/key/value units
are grouped, students with 4 or 8 heads share the same projection weights.
:meth:`ElasticBert.extract` copies the slice into a plain ``BertModel`` whose
forward equals :meth:`ElasticBert.forward` for that architecture.

Mixture-of-Supernets (Jawahar et al., ACL Findings 2024) lets the architecture
choose its own weights instead (``mixture="layer"`` or ``"neuron"``): every
mixed matrix of every layer (the two FFN projections; with ``mix_attention``
also the four attention projections) keeps ``experts`` copies, and a small
router, fed with a normalised encoding of the architecture (layers, hidden,
heads, FFN, each divided by its maximum), outputs softmax mixing weights: one
per expert (layer-wise) or one per expert and output row (neuron-wise). The
student's matrix is the mixture of the experts' slices. The mixing depends
only on the architecture, never on the tokens, so every student still
collapses into one ordinary ``BertModel``. Expert 0 is the plain layer's own
``nn.Linear``; the other experts live in ``<name>_xw``/``<name>_xb`` tensors.

Why the experts need help to specialise: the gradient of a mixed matrix
``sum_e a_e W_e`` with respect to expert ``e`` is ``a_e`` times one shared
tensor. If the mixing ``a`` is the same for every architecture and the experts
start equal, every expert receives the same update (AdamW then moves them
identically), so they stay copies and the mixture is plain weight sharing; the
router's own gradient is proportional to the experts' differences, so it barely
moves either. Two things break the symmetry:

* ``router_init`` > 0: the router's output layer starts random (normal with
  standard deviation ``router_init / sqrt(router_hidden)``), so architectures mix
  differently from the first step. Expert ``e`` then receives the sum over the
  step's sub-networks of ``a_e(arch)`` times that sub-network's gradient, which
  differs between experts, and they diverge even from identical starts. Because
  the experts start as (near) copies of the teacher's slice, the starting
  supernet is still (nearly) the teacher's slices whatever the mixing.
  ``router_init=0`` is the zero output layer of earlier versions (uniform mixing
  for every architecture at the start).
* ``router_temperature``: softmax(logits / T); below 1 sharpens the mixing.

``expert_init`` says how the extra experts start: ``"noise"``, a copy of expert 0
plus seeded Gaussian noise of ``expert_noise`` times the tensor's standard
deviation (:meth:`ElasticBert.init_experts`), or ``"random"``, fresh normal values
of ``expert_noise`` times that standard deviation, not a copy (the reference code
trains its extra experts from an independent random start).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.errors import InvalidArchitecture
from hwnas.space import Architecture

__all__ = ["ElasticBert", "ElasticOutput", "MIXTURES", "MAX_EXPERTS", "EXPERT_INITS", "MOS_DEFAULTS", "MOS_LEGACY",
           "check_mixture"]

MIXTURES = ("none", "layer", "neuron")
MAX_EXPERTS = 16
EXPERT_INITS = ("noise", "random")
#: Defaults of the options that make the experts specialise (chosen with ``bench/bench_mos.py --diagnose``).
MOS_DEFAULTS = {"router_init": 3.0, "router_temperature": 1.0, "expert_init": "noise", "expert_noise": 1e-3}
#: What a supernet written before these options existed meant by them (zero router output layer).
MOS_LEGACY = {"router_init": 0.0, "router_temperature": 1.0, "expert_init": "noise", "expert_noise": 1e-3}
_FFN_MATS = ("ffn_in", "ffn_out")
_ATTN_MATS = ("query", "key", "value", "attn_out")


@dataclass
class ElasticOutput:
    """What a sub-network forward returns.

    Attributes:
        last_hidden_state: ``batch x seq x h`` float tensor.
        qkv: query, key and value of the last layer before the head split,
            each ``batch x seq x h`` (``None`` unless asked for).
    """

    last_hidden_state: torch.Tensor
    qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None


class _Layer(nn.Module):
    def __init__(self, hidden: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=eps)


# Supernet parameter name -> BertModel parameter name (per layer, with {i}).
_LAYER_MAP = {
    "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
    "attn_out": "attention.output.dense", "attn_norm": "attention.output.LayerNorm", "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense", "ffn_norm": "output.LayerNorm",
}
_EMB_MAP = {
    "word": "embeddings.word_embeddings", "position": "embeddings.position_embeddings",
    "token_type": "embeddings.token_type_embeddings", "emb_norm": "embeddings.LayerNorm",
}


class _Router(nn.Module):
    """Architecture encoding (4 numbers in [0, 1]) -> softmax mixing weights per mixed matrix."""

    def __init__(self, outputs: dict[str, int], experts: int, hidden: int, neuron: bool, *, init: float = 0.0,
                 temperature: float = 1.0) -> None:
        super().__init__()
        self.experts, self.neuron = experts, neuron
        self.init, self.temperature = float(init), float(temperature)
        self.sizes = dict(outputs)
        self.body = nn.Linear(4, hidden)
        self.heads = nn.ModuleDict({k: nn.Linear(hidden, experts * (n if neuron else 1)) for k, n in outputs.items()})

    def reset(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            self.body.weight.copy_(torch.randn(self.body.weight.shape, generator=generator) / math.sqrt(4))
            self.body.bias.zero_()
            for head in self.heads.values():  # init 0: zero logits, uniform mixing for every architecture
                std = self.init / math.sqrt(head.weight.shape[1])
                head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * std if std else 0.0)
                head.bias.zero_()

    def forward(self, code: torch.Tensor) -> dict[str, torch.Tensor]:
        z = F.relu(self.body(code))
        out = {}
        for k, head in self.heads.items():
            logits = head(z)
            if self.neuron:
                logits = logits.view(self.experts, self.sizes[k])
            if self.temperature != 1.0:
                logits = logits / self.temperature
            out[k] = torch.softmax(logits, dim=0)  # E, or E x rows
        return out


class ElasticBert(nn.Module):
    """A BERT encoder whose sub-networks are slices of one set of weights.

    Args:
        max_arch: the largest shape served (every dimension at its maximum;
            ``max_arch.heads`` is not used by the weights, which do not depend on
            the head count).
        base_config: a ``transformers.BertConfig`` (usually the teacher's) giving
            the vocabulary, positions, token types, activation and LayerNorm eps.
        dropout: dropout probability on hidden states during training (0 by
            default: supernet training is distillation, and dropout makes the
            sandwich sub-networks noisier).
        mixture: ``"none"`` (plain weight sharing), ``"layer"`` or ``"neuron"``
            (Mixture-of-Supernets, see the module doc).
        experts: expert copies per mixed matrix (2 to 16; with a mixture only).
        router_hidden: width of the router's hidden layer.
        mix_attention: also mix the query/key/value/output projections (FFN only by default).
        router_init: standard deviation of the router's output layer times ``sqrt(router_hidden)``
            (0: zero output layer, uniform mixing at the start; see the module doc).
        router_temperature: softmax temperature of the mixing weights (below 1: sharper).
        expert_init: ``"noise"`` (copy of expert 0 plus noise) or ``"random"`` (see :meth:`init_experts`).
        expert_noise: the noise's (or the random start's) standard deviation relative to the tensor's.
    """

    def __init__(self, max_arch: Architecture, base_config: Any, *, dropout: float = 0.0, mixture: str = "none",
                 experts: int = 2, router_hidden: int = 128, mix_attention: bool = False,
                 router_init: float = MOS_DEFAULTS["router_init"],
                 router_temperature: float = MOS_DEFAULTS["router_temperature"],
                 expert_init: str = MOS_DEFAULTS["expert_init"], expert_noise: float = MOS_DEFAULTS["expert_noise"]) -> None:
        super().__init__()
        check_mixture(mixture, experts, router_hidden, router_init=router_init, router_temperature=router_temperature,
                      expert_init=expert_init, expert_noise=expert_noise)
        from transformers.activations import ACT2FN

        self.max_arch = max_arch
        self.base_config = base_config
        self.dropout = float(dropout)
        h, f = max_arch.hidden, max_arch.ffn
        eps = float(base_config.layer_norm_eps)
        self.eps = eps
        self.act = ACT2FN[base_config.hidden_act]
        self.word = nn.Embedding(base_config.vocab_size, h)
        self.position = nn.Embedding(base_config.max_position_embeddings, h)
        self.token_type = nn.Embedding(base_config.type_vocab_size, h)
        self.emb_norm = nn.LayerNorm(h, eps=eps)
        self.layers = nn.ModuleList(_Layer(h, f, eps) for _ in range(max_arch.layers))
        # The pooler is not trained by distillation; it is carried so that an
        # extracted student is a complete BertModel (teacher's pooler slice).
        self.pooler = nn.Linear(h, h)
        self.mixture = mixture
        self.experts = int(experts) if mixture != "none" else 1
        self.router_hidden = int(router_hidden)
        self.mix_attention = bool(mix_attention) and mixture != "none"
        self.router_init, self.router_temperature = float(router_init), float(router_temperature)
        self.expert_init, self.expert_noise = expert_init, float(expert_noise)
        self.mixed: tuple[str, ...] = ()
        self.router: _Router | None = None
        if mixture != "none":
            self.mixed = _FFN_MATS + (_ATTN_MATS if self.mix_attention else ())
            outputs = {}
            for i, layer in enumerate(self.layers):
                for name in self.mixed:
                    lin = getattr(layer, name)
                    layer.register_parameter(f"{name}_xw", nn.Parameter(torch.zeros(self.experts - 1, *lin.weight.shape)))
                    layer.register_parameter(f"{name}_xb", nn.Parameter(torch.zeros(self.experts - 1, *lin.bias.shape)))
                    outputs[f"l{i}_{name}"] = lin.weight.shape[0]
            self.router = _Router(outputs, self.experts, self.router_hidden, neuron=mixture == "neuron",
                                  init=self.router_init, temperature=self.router_temperature)
        self.reset_parameters()

    def mixture_info(self) -> dict[str, Any]:
        """What ``supernet.json`` records about the mixture."""
        info = {"kind": self.mixture, "experts": self.experts, "router_hidden": self.router_hidden,
                "mix_attention": self.mix_attention}
        if self.router is not None:  # a plain supernet's record is unchanged
            info.update(router_init=self.router_init, router_temperature=self.router_temperature,
                        expert_init=self.expert_init, expert_noise=self.expert_noise)
        return info

    # ------------------------------------------------------------- weights
    def reset_parameters(self, seed: int = 0) -> None:
        """BERT's initialisation: normal(0, initializer_range) matrices, unit LayerNorm."""
        std = float(getattr(self.base_config, "initializer_range", 0.02))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("router."):
                    continue
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=g) * std)
                elif "norm" in name and name.endswith("weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()
            if self.router is not None:
                self.router.reset(g)
                self.init_experts(seed)

    def init_experts(self, seed: int = 0, scale: float | None = None) -> None:
        """Start every extra expert from expert 0 (``expert_init="noise"``: a copy plus seeded noise of ``scale`` x
        the tensor's std) or afresh (``"random"``: seeded normal values of ``scale`` x that std).

        ``scale`` defaults to :attr:`expert_noise`. Called after the teacher's weights
        are copied in, so that all experts start from the teacher's slice (``noise``).
        """
        if self.router is None:
            return
        scale = self.expert_noise if scale is None else float(scale)
        keep = 0.0 if self.expert_init == "random" else 1.0
        g = torch.Generator().manual_seed(seed + 7919)
        with torch.no_grad():
            for layer in self.layers:
                for name in self.mixed:
                    lin = getattr(layer, name)
                    for src, extra in ((lin.weight, getattr(layer, f"{name}_xw")), (lin.bias, getattr(layer, f"{name}_xb"))):
                        noise = torch.randn(extra.shape, generator=g) * (float(src.std()) if src.numel() > 1 else 0.0) * scale
                        extra.copy_(keep * src.detach()[None].expand_as(extra) + noise)

    def init_from_teacher(self, teacher: nn.Module) -> dict[str, int]:
        """Copy the teacher's weights into the leading block of every tensor.

        ``teacher`` is a BERT-like model (``BertModel`` naming). Entries beyond
        the teacher's shape keep their random initialisation. Returns counts
        ``{"copied": parameters fully inside the teacher's shape, "partial": ...,
        "missing": ...}`` so callers can warn.
        """
        src = {k.removeprefix("bert."): v for k, v in teacher.state_dict().items()}
        counts = {"copied": 0, "partial": 0, "missing": 0}
        with torch.no_grad():
            for name, param in self.named_parameters():
                tname = self._teacher_name(name)
                t = src.get(tname) if tname else None
                if t is None or t.dim() != param.dim():
                    counts["missing"] += 1
                    continue
                block = tuple(slice(0, min(a, b)) for a, b in zip(param.shape, t.shape, strict=True))
                param[block].copy_(t[block].to(param.dtype))
                counts["copied" if all(b >= a for a, b in zip(param.shape, t.shape, strict=True)) else "partial"] += 1
        return counts

    @staticmethod
    def _teacher_name(name: str) -> str | None:
        parts = name.split(".")
        if parts[0] in _EMB_MAP:
            return f"{_EMB_MAP[parts[0]]}.{parts[-1]}"
        if parts[0] == "pooler":
            return f"pooler.dense.{parts[-1]}"
        if parts[0] == "layers" and parts[2] in _LAYER_MAP:
            return f"encoder.layer.{parts[1]}.{_LAYER_MAP[parts[2]]}.{parts[3]}"
        return None  # router and extra experts: no teacher counterpart (see init_experts)

    # ------------------------------------------------------------- forward
    def check(self, arch: Architecture) -> None:
        m = self.max_arch
        if arch.layers > m.layers or arch.hidden > m.hidden or arch.ffn > m.ffn:
            raise InvalidArchitecture(
                f"{arch.key} does not fit in this supernet (largest: layers={m.layers}, hidden={m.hidden}, ffn={m.ffn})"
            )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, arch: Architecture, *,
        return_qkv: bool = False,
    ) -> ElasticOutput:
        """Run the sub-network ``arch``.

        Args:
            input_ids: ``batch x seq`` int64 token ids.
            attention_mask: ``batch x seq`` (1 = token, 0 = padding) or ``None``.
            arch: the sub-network; must fit inside :attr:`max_arch`.
            return_qkv: also return the last layer's query, key and value.
        """
        self.check(arch)
        h, a, f = arch.hidden, arch.heads, arch.ffn
        d = h // a
        bsz, seq = input_ids.shape
        p = self.dropout if self.training else 0.0
        positions = torch.arange(seq, device=input_ids.device)
        x = (self.word(input_ids)[..., :h] + self.token_type.weight[0, :h] + self.position(positions)[:, :h])
        x = F.layer_norm(x, (h,), self.emb_norm.weight[:h], self.emb_norm.bias[:h], self.eps)
        x = F.dropout(x, p, self.training)
        mask = None
        if attention_mask is not None:
            keep = attention_mask[:, None, None, :].to(torch.bool)
            mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(~keep, torch.finfo(x.dtype).min)
        qkv = None
        mix = self.mixing(arch)
        for i in range(arch.layers):
            layer = self.layers[i]
            q = F.linear(x, *self._lin(i, "query", h, h, mix))
            k = F.linear(x, *self._lin(i, "key", h, h, mix))
            v = F.linear(x, *self._lin(i, "value", h, h, mix))
            if return_qkv and i == arch.layers - 1:
                qkv = (q, k, v)
            heads = [t.view(bsz, seq, a, d).transpose(1, 2) for t in (q, k, v)]
            ctx = F.scaled_dot_product_attention(*heads, attn_mask=mask, scale=1.0 / math.sqrt(d))
            ctx = ctx.transpose(1, 2).reshape(bsz, seq, h)
            attn = F.linear(ctx, *self._lin(i, "attn_out", h, h, mix))
            x = F.layer_norm(F.dropout(attn, p, self.training) + x, (h,), layer.attn_norm.weight[:h], layer.attn_norm.bias[:h], self.eps)
            inner = self.act(F.linear(x, *self._lin(i, "ffn_in", f, h, mix)))
            out = F.linear(inner, *self._lin(i, "ffn_out", h, f, mix))
            x = F.layer_norm(F.dropout(out, p, self.training) + x, (h,), layer.ffn_norm.weight[:h], layer.ffn_norm.bias[:h], self.eps)
        return ElasticOutput(x, qkv)

    def expert_distance(self) -> float:
        """Mean over layers, mixed matrices and extra experts of ``||W_e - W_0|| / ||W_0||`` (0 without a mixture):
        how far the experts have moved apart."""
        out = []
        with torch.no_grad():
            for layer in self.layers:
                for name in self.mixed:
                    w0 = getattr(layer, name).weight
                    out += [float((we - w0).norm() / w0.norm().clamp_min(1e-12)) for we in getattr(layer, f"{name}_xw")]
        return sum(out) / len(out) if out else 0.0

    def mixing_spread(self, archs: list[Architecture]) -> float:
        """How much the mixing depends on the architecture: the standard deviation across ``archs`` (two or more)
        of every mixing weight (per expert, and per row for neuron-wise), averaged over entries and matrices."""
        if self.router is None or len(archs) < 2:
            return 0.0
        with torch.no_grad():
            mixes = [self.mixing(a) for a in archs]
            return sum(float(torch.stack([m[k] for m in mixes]).std(0).mean()) for k in mixes[0]) / len(mixes[0])

    def mixing(self, arch: Architecture) -> dict[str, torch.Tensor] | None:
        """The router's mixing weights for ``arch`` (``None`` for a plain supernet)."""
        if self.router is None:
            return None
        m = self.max_arch
        code = torch.tensor([arch.layers / m.layers, arch.hidden / m.hidden, arch.heads / max(m.heads, 1),
                             arch.ffn / m.ffn], dtype=self.router.body.weight.dtype)
        return self.router(code)

    def _lin(self, i: int, name: str, rows: int, cols: int, mix: dict[str, torch.Tensor] | None):
        """Weight (``rows x cols``) and bias (``rows``) of matrix ``name`` of layer ``i`` for the current mixing."""
        layer = self.layers[i]
        lin = getattr(layer, name)
        w, b = lin.weight[:rows, :cols], lin.bias[:rows]
        if mix is None or name not in self.mixed:
            return w, b
        a = mix[f"l{i}_{name}"]
        xw, xb = getattr(layer, f"{name}_xw")[:, :rows, :cols], getattr(layer, f"{name}_xb")[:, :rows]
        if a.dim() == 1:  # layer-wise: one weight per expert
            return (a[0] * w + torch.einsum("e,eoi->oi", a[1:], xw), a[0] * b + torch.einsum("e,eo->o", a[1:], xb))
        a = a[:, :rows]  # neuron-wise: one weight per expert and output row
        return (a[0, :, None] * w + torch.einsum("eo,eoi->oi", a[1:], xw),
                a[0] * b + torch.einsum("eo,eo->o", a[1:], xb))

    # ------------------------------------------------------------ extraction
    def slice_state_dict(self, arch: Architecture) -> dict[str, torch.Tensor]:
        """The sub-network's weights under ``BertModel`` names (contiguous copies)."""
        self.check(arch)
        h, f = arch.hidden, arch.ffn
        out: dict[str, torch.Tensor] = {}

        def put(name: str, t: torch.Tensor) -> None:
            out[name] = t.detach().clone().contiguous()

        put("embeddings.word_embeddings.weight", self.word.weight[:, :h])
        put("embeddings.position_embeddings.weight", self.position.weight[:, :h])
        put("embeddings.token_type_embeddings.weight", self.token_type.weight[:, :h])
        put("embeddings.LayerNorm.weight", self.emb_norm.weight[:h])
        put("embeddings.LayerNorm.bias", self.emb_norm.bias[:h])
        mix = self.mixing(arch)
        for i in range(arch.layers):
            layer = self.layers[i]
            pre = f"encoder.layer.{i}."
            for ours in ("query", "key", "value", "attn_out"):
                w, b = self._lin(i, ours, h, h, mix)
                put(pre + _LAYER_MAP[ours] + ".weight", w)
                put(pre + _LAYER_MAP[ours] + ".bias", b)
            for ours in ("attn_norm", "ffn_norm"):
                ln = getattr(layer, ours)
                put(pre + _LAYER_MAP[ours] + ".weight", ln.weight[:h])
                put(pre + _LAYER_MAP[ours] + ".bias", ln.bias[:h])
            w, b = self._lin(i, "ffn_in", f, h, mix)
            put(pre + "intermediate.dense.weight", w)
            put(pre + "intermediate.dense.bias", b)
            w, b = self._lin(i, "ffn_out", h, f, mix)
            put(pre + "output.dense.weight", w)
            put(pre + "output.dense.bias", b)
        put("pooler.dense.weight", self.pooler.weight[:h, :h])
        put("pooler.dense.bias", self.pooler.bias[:h])
        return out

    def student_config(self, arch: Architecture):
        """The ``BertConfig`` of a standalone student (teacher's other fields kept)."""
        return arch.to_bert_config(
            self.base_config, hidden_dropout_prob=self.base_config.hidden_dropout_prob, architectures=["BertModel"],
        )

    def extract(self, arch: Architecture):
        """A standalone ``transformers.BertModel`` (with pooler) equal to the slice, in eval mode."""
        from transformers import BertModel

        config = self.student_config(arch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.device("meta"):
                model = BertModel(config, add_pooling_layer=True)
        model = model.to_empty(device="cpu")
        state = self.slice_state_dict(arch)
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Only non-persistent index buffers may be absent from the slice.
        if unexpected or any(not n.endswith(("position_ids", "token_type_ids")) for n in missing):
            raise RuntimeError(f"slice does not match BertModel: missing={missing}, unexpected={unexpected}")
        with torch.no_grad():
            emb = model.embeddings
            emb.position_ids.copy_(torch.arange(emb.position_ids.shape[-1]).expand_as(emb.position_ids))
            emb.token_type_ids.zero_()
        return model.eval()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_mixture(mixture: str, experts: int, router_hidden: int = 128, *, router_init: float = 0.0,
                  router_temperature: float = 1.0, expert_init: str = "noise", expert_noise: float = 1e-3) -> None:
    """Raise :class:`InvalidConfig` for a bad Mixture-of-Supernets setting."""
    from hwnas.errors import InvalidConfig

    if not _number(router_init) or not 0 <= router_init <= 100:
        raise InvalidConfig(f"router_init must be a number from 0 to 100 (0: uniform mixing at the start); got {router_init!r}")
    if not _number(router_temperature) or not 0.01 <= router_temperature <= 100:
        raise InvalidConfig(f"router_temperature must be a number from 0.01 to 100; got {router_temperature!r}")
    if expert_init not in EXPERT_INITS:
        raise InvalidConfig(f"expert_init must be one of {', '.join(EXPERT_INITS)}; got {expert_init!r}")
    if not _number(expert_noise) or not 0 <= expert_noise <= 10:
        raise InvalidConfig(f"expert_noise must be a number from 0 to 10 (times each tensor's std); got {expert_noise!r}")
    if expert_init == "random" and expert_noise == 0:
        raise InvalidConfig("expert_init random needs expert_noise > 0 (it is the random start's scale)")

    if mixture not in MIXTURES:
        raise InvalidConfig(f"mixture must be one of {', '.join(MIXTURES)}; got {mixture!r}")
    if isinstance(experts, bool) or not isinstance(experts, int) or not 1 <= experts <= MAX_EXPERTS:
        raise InvalidConfig(f"experts must be an integer from 1 to {MAX_EXPERTS}; got {experts!r}")
    if mixture != "none" and experts < 2:
        raise InvalidConfig(f"a {mixture} mixture needs experts >= 2 (one expert is a plain supernet: mixture none)")
    if isinstance(router_hidden, bool) or not isinstance(router_hidden, int) or not 1 <= router_hidden <= 4096:
        raise InvalidConfig(f"router_hidden must be an integer from 1 to 4096; got {router_hidden!r}")
