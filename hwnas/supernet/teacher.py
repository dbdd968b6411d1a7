"""Loading the teacher and reading its self-attention relations.

What ``--teacher`` may name (``default``, a local folder, a hub name) is decided
by :func:`hwnas.training.teacher.resolve_teacher`, the resolver distillation uses too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import InvalidConfig
from hwnas.training.teacher import DEFAULT_TEACHER, resolve_teacher, teacher_name

__all__ = ["DEFAULT_TEACHER", "Teacher", "resolve_teacher", "load_teacher", "find_qkv_modules"]


@dataclass
class Teacher:
    """A loaded teacher: ``model`` (eval mode), ``tokenizer``, ``name`` and ``location``."""

    model: Any
    tokenizer: Any
    name: str
    location: str

    @property
    def config(self):
        return self.model.config


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_teacher(spec: str | Path = DEFAULT_TEACHER, *, tokenizer: bool = True) -> Teacher:
    """Load the teacher model (eval mode, fp32, eager attention) and its tokenizer."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    name, kwargs = teacher_name(spec), {"local_files_only": True}
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    import logging

    hub_logger = logging.getLogger("huggingface_hub")
    hub_level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        location = str(resolve_teacher(spec))  # quietly: the hub's retry warnings would bury the one-line error
        try:
            config = AutoConfig.from_pretrained(location, **kwargs)
        except Exception as exc:  # noqa: BLE001 (deliberate: a user's folder; any loader failure is one line)
            raise InvalidConfig(f"cannot load teacher config from folder {location}: {_one_line(exc)}") from None
        hidden = getattr(config, "hidden_size", None)
        layers = getattr(config, "num_hidden_layers", None)
        if not hidden or not layers or getattr(config, "is_encoder_decoder", False):
            raise InvalidConfig(
                f"teacher {name!r} is a {getattr(config, 'model_type', '?')} model, not a BERT-like encoder "
                "(needs hidden_size, num_hidden_layers and self-attention query/key/value)"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = AutoModel.from_pretrained(location, attn_implementation="eager", **kwargs)
        except Exception as exc:  # noqa: BLE001 (deliberate: as above)
            raise InvalidConfig(f"cannot load teacher weights from {location}: {_one_line(exc)}") from None
        tok = None
        if tokenizer:
            try:
                tok = AutoTokenizer.from_pretrained(location, **kwargs)
            except Exception as exc:  # noqa: BLE001 (deliberate: as above)
                raise InvalidConfig(f"teacher {name!r} has no usable tokenizer: {_one_line(exc)}") from None
    finally:
        hub_logger.setLevel(hub_level)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    find_qkv_modules(model, -1, name=name)  # fail early if there is no self-attention to read
    return Teacher(model=model, tokenizer=tok, name=name, location=location)


def find_qkv_modules(model: Any, layer: int = -1, *, name: str = "teacher"):
    """The query, key and value ``nn.Linear`` modules of one self-attention layer.

    Works for BERT-like models (``encoder.layer[i].attention.self.{query,key,value}``
    and the same names elsewhere, e.g. RoBERTa, ELECTRA).
    """
    found: dict[int, dict[str, Any]] = {}
    for mod_name, module in model.named_modules():
        parts = mod_name.split(".")
        if len(parts) < 2 or parts[-1] not in ("query", "key", "value") or "crossattention" in parts:
            continue
        idx = next((int(p) for p in parts if p.isdigit()), None)
        if idx is not None:
            found.setdefault(idx, {})[parts[-1]] = module
    layers = sorted(i for i, m in found.items() if len(m) == 3)
    if not layers:
        raise InvalidConfig(
            f"teacher {name!r} has no self-attention query/key/value projections; a BERT-like encoder is required"
        )
    try:
        idx = layers[layer]
    except IndexError:
        raise InvalidConfig(f"teacher layer {layer} does not exist; the teacher has {len(layers)} layers") from None
    m = found[idx]
    return m["query"], m["key"], m["value"]


def teacher_qkv(model: Any, input_ids, attention_mask, layer: int = -1):
    """Run the teacher and return the chosen layer's query, key, value (each ``batch x seq x hidden``)."""
    import torch

    captured: dict[str, torch.Tensor] = {}
    mods = find_qkv_modules(model, layer)
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, key=key: captured.__setitem__(key, out.detach()))
        for key, m in zip(("q", "k", "v"), mods, strict=True)
    ]
    try:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for h in hooks:
            h.remove()
    return captured["q"], captured["k"], captured["v"]


def teacher_summary(config: Any) -> dict[str, Any]:
    """The teacher's shape, for JSON records."""
    return {
        "model_type": getattr(config, "model_type", None), "layers": config.num_hidden_layers,
        "hidden": config.hidden_size, "heads": config.num_attention_heads,
        "ffn": getattr(config, "intermediate_size", None), "vocab_size": config.vocab_size,
    }
