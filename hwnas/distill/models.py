"""Teachers and students as ``transformers`` sequence classifiers.

* :func:`resolve_teacher` (from :mod:`hwnas.training.teacher`) turns ``--teacher``
  (``default``, a folder, a hub name) into a local folder.
* :func:`init_student` builds a ``BertForSequenceClassification`` of a given
  architecture, its encoder taken from a supernet (``sn.extract(arch)``), sliced
  from the teacher (leading layers, leading hidden units and FFN units), or
  random.
* :func:`forward_outputs` runs a model and collects what the losses need
  (hidden states, attention maps, value vectors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hwnas.distill.losses import ModelOutputs, ModelShape
from hwnas.errors import InvalidConfig
from hwnas.space import Architecture
from hwnas.training.teacher import resolve_teacher

__all__ = ["resolve_teacher", "init_student", "forward_outputs", "model_shape", "slice_encoder_state",
           "set_attention", "architecture_of"]

INIT_CHOICES = ("supernet", "teacher", "random")


def architecture_of(config: Any) -> Architecture:
    return Architecture(config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size)


def model_shape(model: Any) -> ModelShape:
    c = model.config
    return ModelShape(c.num_hidden_layers, c.hidden_size, c.num_attention_heads)


def set_attention(model: Any, implementation: str) -> None:
    """Switch transformers' attention kernel (``"eager"`` returns attention maps, ``"sdpa"`` is faster)."""
    if getattr(model.config, "_attn_implementation", None) == implementation:
        return
    try:
        model.set_attn_implementation(implementation)
    except (AttributeError, ValueError):
        model.config._attn_implementation = implementation


def slice_encoder_state(state: dict[str, torch.Tensor], arch: Architecture, *, prefix: str = "") -> dict[str, torch.Tensor]:
    """Cut a teacher ``BertModel`` state dict down to ``arch``.

    Keeps the first ``arch.layers`` layers, the first ``arch.hidden`` units of
    every hidden-sized axis and the first ``arch.ffn`` FFN units. Attention heads
    are re-split: the student's query/key/value use the teacher's first
    ``hidden`` output units, grouped into ``arch.heads`` heads (exact teacher
    heads only when the head width is the same).

    Args:
        state: ``BertModel`` parameters (keys like ``encoder.layer.0...``), optionally under ``prefix``.
    """
    h, f = arch.hidden, arch.ffn
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name.startswith("encoder.layer."):
            index = int(name.split(".")[2])
            if index >= arch.layers:
                continue
        if name.endswith("position_ids") or name.endswith("token_type_ids"):
            out[name] = value
            continue
        if value.dim() == 0:
            out[name] = value.clone()
            continue
        sizes = []
        for axis, n in enumerate(value.shape):
            if "intermediate.dense" in name and axis == 0 or "output.dense.weight" in name and "attention" not in name and axis == 1:
                sizes.append(min(f, n))
            elif name.startswith("embeddings.") and name.endswith("_embeddings.weight") and axis == 0:
                sizes.append(n)  # vocabulary / positions / token types are kept whole
            else:
                sizes.append(min(h, n))
        out[name] = value[tuple(slice(0, s) for s in sizes)].clone()
    return out


def init_student(
    arch: Architecture,
    num_labels: int,
    *,
    init: str,
    teacher_path: str | Path | None = None,
    supernet: Any = None,
    problem_type: str | None = None,
    seed: int = 0,
) -> tuple[Any, str]:
    """A ``BertForSequenceClassification`` of shape ``arch`` and a line saying where its weights came from.

    Args:
        init: ``"supernet"`` (``supernet.extract(arch)``), ``"teacher"`` (sliced from
            ``teacher_path``) or ``"random"``.
        problem_type: ``"single_label_classification"`` or ``"regression"``.
    """
    from transformers import AutoConfig, BertConfig, BertForSequenceClassification

    if init not in INIT_CHOICES:
        raise InvalidConfig(f"init must be one of {', '.join(INIT_CHOICES)}; got {init!r}")
    torch.manual_seed(seed)
    base: Any = None
    if init == "supernet":
        if supernet is None:
            raise InvalidConfig("init='supernet' needs a supernet")
        encoder = supernet.extract(arch)
        base = encoder.config
    elif teacher_path is not None:
        base = AutoConfig.from_pretrained(teacher_path)
    config: BertConfig = arch.to_bert_config(base, num_labels=num_labels)
    if problem_type:
        config.problem_type = problem_type
    model = BertForSequenceClassification(config)
    if init == "supernet":
        missing, unexpected = model.bert.load_state_dict(encoder.state_dict(), strict=False)
        note = f"encoder from supernet {getattr(supernet, 'path', '') or getattr(supernet, 'teacher', '')}".strip()
        _check_load(missing, unexpected, allowed_missing=("pooler.",))
        return model, note + f"; pooler{' and' if any(m.startswith('pooler.') for m in missing) else ''} classifier new"
    if init == "teacher":
        if teacher_path is None:
            raise InvalidConfig("init='teacher' needs teacher_path")
        teacher_state = _read_encoder_state(Path(teacher_path))
        sliced = slice_encoder_state(teacher_state, arch)
        missing, unexpected = model.bert.load_state_dict(sliced, strict=False)
        _check_load(missing, unexpected, allowed_missing=("pooler.",))
        return model, (f"sliced from the teacher (first {arch.layers} layers, first {arch.hidden} hidden units, "
                       f"first {arch.ffn} FFN units; no supernet given); classifier new")
    return model, "random initialisation (no supernet, no teacher slicing); classifier new"


def _check_load(missing: list[str], unexpected: list[str], allowed_missing: tuple[str, ...]) -> None:
    missing = [m for m in missing if not m.startswith(allowed_missing) and not m.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise InvalidConfig(f"student weights do not match the architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")


def _read_encoder_state(path: Path) -> dict[str, torch.Tensor]:
    """Encoder parameters of a saved BERT (``BertModel`` or ``BertFor...``), keys without ``bert.``."""
    from safetensors.torch import load_file

    file = path / "model.safetensors"
    if file.is_file():
        state = load_file(str(file))
    else:
        from transformers import AutoModel

        state = AutoModel.from_pretrained(path).state_dict()
    if any(k.startswith("bert.") for k in state):
        state = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
    return state


class _ValueCatcher:
    """Forward hooks collecting every layer's value projection (``batch x seq x hidden``)."""

    def __init__(self, model: Any) -> None:
        self.values: list[torch.Tensor] = []
        bert = getattr(model, "bert", model)
        self.handles = [layer.attention.self.value.register_forward_hook(self._hook) for layer in bert.encoder.layer]

    def _hook(self, module: Any, args: Any, output: torch.Tensor) -> None:
        self.values.append(output)

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def forward_outputs(model: Any, batch: dict[str, torch.Tensor], needs: set[str]) -> ModelOutputs:
    """Run a sequence classifier on ``batch`` and collect what ``needs`` asks for.

    Args:
        batch: ``input_ids``, ``attention_mask``, ``token_type_ids``, each ``batch x seq``.
        needs: subset of ``{"hidden_states", "attentions", "values"}``.
    """
    catcher = _ValueCatcher(model) if "values" in needs else None
    try:
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch.get("token_type_ids"),
            output_hidden_states="hidden_states" in needs,
            output_attentions="attentions" in needs,
        )
    finally:
        if catcher is not None:
            catcher.close()
    return ModelOutputs(
        logits=out.logits,
        hidden_states=out.hidden_states if "hidden_states" in needs else None,
        attentions=out.attentions if "attentions" in needs else None,
        values=catcher.values if catcher is not None else None,
        attention_mask=batch["attention_mask"],
    )
