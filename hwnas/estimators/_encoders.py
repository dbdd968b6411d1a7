"""Where estimators get a student's weights from: a supernet, or slices of a teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas.errors import InvalidArchitecture
from hwnas.space import Architecture

__all__ = ["EncoderSource"]


class EncoderSource:
    """Builds the ``BertModel`` of an architecture from a supernet or from a teacher's leading slices.

    Args:
        supernet: a supernet folder or object; when given, ``extract(arch)`` is used.
        teacher: ``"default"`` or a model folder; sliced like ``hwnas distill --init teacher``
            when there is no supernet (and always the tokenizer's source without one).
    """

    def __init__(self, *, supernet: Any = None, teacher: str | Path = "default") -> None:
        from hwnas.distill.models import architecture_of, resolve_teacher

        if isinstance(supernet, (str, Path)):
            from hwnas.supernet.supernet import load_supernet

            supernet = load_supernet(supernet)
        self.supernet = supernet
        self.teacher_path = resolve_teacher(teacher) if supernet is None else None
        self._state: dict | None = None
        self._config: Any = None
        if self.teacher_path is not None:
            from transformers import AutoConfig

            self._config = AutoConfig.from_pretrained(self.teacher_path)
            self.largest = architecture_of(self._config)
        self.signature = (f"supernet:{supernet.meta.get('weights_sha256')}" if supernet is not None
                          else f"teacher:{self.teacher_path}")

    @property
    def tokenizer(self):
        if self.supernet is not None:
            return self.supernet.tokenizer
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.teacher_path)

    def validate(self, arch: Architecture) -> Architecture:
        if self.supernet is not None:
            return self.supernet.validate(arch)
        big = self.largest
        if arch.layers > big.layers or arch.hidden > big.hidden or arch.ffn > big.ffn:
            raise InvalidArchitecture(f"{arch.key} is larger than the teacher ({big.key}); slices cannot be taken")
        return arch

    def encoder(self, arch: Architecture):
        """A ``BertModel`` of shape ``arch`` in eval mode with eager attention (attention maps available)."""
        from transformers import BertModel

        from hwnas.distill.models import _read_encoder_state, set_attention, slice_encoder_state

        if self.supernet is not None:
            model = self.supernet.extract(arch)
        else:
            if self._state is None:
                self._state = _read_encoder_state(self.teacher_path)
            model = BertModel(arch.to_bert_config(self._config))
            missing, unexpected = model.load_state_dict(slice_encoder_state(self._state, arch), strict=False)
            # a teacher saved without its pooler leaves a freshly initialised one; nothing else may be missing
            missing = [k for k in missing if not k.startswith("pooler.") and not k.endswith("_ids")]
            unexpected = [k for k in unexpected if not k.endswith("_ids")]  # index buffers some checkpoints carry
            if missing or unexpected:
                raise InvalidArchitecture(f"teacher slices do not fit {arch.key}: missing {missing[:3]}, unexpected {unexpected[:3]}")
        set_attention(model, "eager")
        return model.eval()
