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

__all__ = ["ElasticBert", "ElasticOutput"]


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
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "attn_norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ffn_norm": "output.LayerNorm",
}
_EMB_MAP = {
    "word": "embeddings.word_embeddings",
    "position": "embeddings.position_embeddings",
    "token_type": "embeddings.token_type_embeddings",
    "emb_norm": "embeddings.LayerNorm",
}


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
    """

    def __init__(self, max_arch: Architecture, base_config: Any, *, dropout: float = 0.0) -> None:
        super().__init__()
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
        self.reset_parameters()

    # ------------------------------------------------------------- weights
    def reset_parameters(self, seed: int = 0) -> None:
        """BERT's initialisation: normal(0, initializer_range) matrices, unit LayerNorm."""
        std = float(getattr(self.base_config, "initializer_range", 0.02))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=g) * std)
                elif "norm" in name and name.endswith("weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()

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
                block = tuple(slice(0, min(a, b)) for a, b in zip(param.shape, t.shape))
                param[block].copy_(t[block].to(param.dtype))
                counts["copied" if all(b >= a for a, b in zip(param.shape, t.shape)) else "partial"] += 1
        return counts

    @staticmethod
    def _teacher_name(name: str) -> str | None:
        parts = name.split(".")
        if parts[0] in _EMB_MAP:
            return f"{_EMB_MAP[parts[0]]}.{parts[-1]}"
        if parts[0] == "pooler":
            return f"pooler.dense.{parts[-1]}"
        if parts[0] == "layers":
            return f"encoder.layer.{parts[1]}.{_LAYER_MAP[parts[2]]}.{parts[3]}"
        return None

    # ------------------------------------------------------------- forward
    def check(self, arch: Architecture) -> None:
        m = self.max_arch
        if arch.layers > m.layers or arch.hidden > m.hidden or arch.ffn > m.ffn:
            raise InvalidArchitecture(
                f"{arch.key} does not fit in this supernet (largest: layers={m.layers}, hidden={m.hidden}, ffn={m.ffn})"
            )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        arch: Architecture,
        *,
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
        x = (
            self.word(input_ids)[..., :h]
            + self.token_type.weight[0, :h]
            + self.position(positions)[:, :h]
        )
        x = F.layer_norm(x, (h,), self.emb_norm.weight[:h], self.emb_norm.bias[:h], self.eps)
        x = F.dropout(x, p, self.training)
        mask = None
        if attention_mask is not None:
            keep = attention_mask[:, None, None, :].to(torch.bool)
            mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(~keep, torch.finfo(x.dtype).min)
        qkv = None
        for i in range(arch.layers):
            layer = self.layers[i]
            q = F.linear(x, layer.query.weight[:h, :h], layer.query.bias[:h])
            k = F.linear(x, layer.key.weight[:h, :h], layer.key.bias[:h])
            v = F.linear(x, layer.value.weight[:h, :h], layer.value.bias[:h])
            if return_qkv and i == arch.layers - 1:
                qkv = (q, k, v)
            heads = [t.view(bsz, seq, a, d).transpose(1, 2) for t in (q, k, v)]
            ctx = F.scaled_dot_product_attention(*heads, attn_mask=mask, scale=1.0 / math.sqrt(d))
            ctx = ctx.transpose(1, 2).reshape(bsz, seq, h)
            attn = F.linear(ctx, layer.attn_out.weight[:h, :h], layer.attn_out.bias[:h])
            x = F.layer_norm(F.dropout(attn, p, self.training) + x, (h,), layer.attn_norm.weight[:h], layer.attn_norm.bias[:h], self.eps)
            inner = self.act(F.linear(x, layer.ffn_in.weight[:f, :h], layer.ffn_in.bias[:f]))
            out = F.linear(inner, layer.ffn_out.weight[:h, :f], layer.ffn_out.bias[:h])
            x = F.layer_norm(F.dropout(out, p, self.training) + x, (h,), layer.ffn_norm.weight[:h], layer.ffn_norm.bias[:h], self.eps)
        return ElasticOutput(x, qkv)

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
        for i in range(arch.layers):
            layer = self.layers[i]
            pre = f"encoder.layer.{i}."
            for ours in ("query", "key", "value", "attn_out"):
                lin = getattr(layer, ours)
                put(pre + _LAYER_MAP[ours] + ".weight", lin.weight[:h, :h])
                put(pre + _LAYER_MAP[ours] + ".bias", lin.bias[:h])
            for ours in ("attn_norm", "ffn_norm"):
                ln = getattr(layer, ours)
                put(pre + _LAYER_MAP[ours] + ".weight", ln.weight[:h])
                put(pre + _LAYER_MAP[ours] + ".bias", ln.bias[:h])
            put(pre + "intermediate.dense.weight", layer.ffn_in.weight[:f, :h])
            put(pre + "intermediate.dense.bias", layer.ffn_in.bias[:f])
            put(pre + "output.dense.weight", layer.ffn_out.weight[:h, :f])
            put(pre + "output.dense.bias", layer.ffn_out.bias[:h])
        put("pooler.dense.weight", self.pooler.weight[:h, :h])
        put("pooler.dense.bias", self.pooler.bias[:h])
        return out

    def student_config(self, arch: Architecture):
        """The ``BertConfig`` of a standalone student (teacher's other fields kept)."""
        return arch.to_bert_config(
            self.base_config,
            hidden_dropout_prob=self.base_config.hidden_dropout_prob,
            architectures=["BertModel"],
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
