"""Cheap construction of randomly initialised BERT encoders for profiling.

Latency does not depend on trained weights, so the model is built on the meta
device (no memory, no initialisation), materialised with ``to_empty`` and filled
with values of realistic scale (normal(0, 0.02) matrices, unit LayerNorm). This
is several times faster than transformers' own initialisation for larger models.
"""

from __future__ import annotations

from typing import Any

from hwnas.space import Architecture

TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def import_runtime() -> None:
    """Import torch and transformers' BERT once, so the first build time excludes imports."""
    import torch  # noqa: F401
    from transformers import BertModel  # noqa: F401


def build_encoder(
    arch: Architecture, *, vocab_size: int = 30522, max_positions: int = 512, attn_implementation: str = "sdpa",
    dtype: str = "fp32", device: Any = "cpu", seed: int = 0,
):
    """A ``transformers.BertModel`` (no pooler) with random weights, in eval mode."""
    import torch
    from transformers import BertModel

    config = arch.to_bert_config(vocab_size=vocab_size, max_position_embeddings=max_positions)
    config._attn_implementation = attn_implementation
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    model = model.to_empty(device=device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
            elif name.endswith("LayerNorm.weight"):
                param.fill_(1.0)
            else:
                param.zero_()
        for name, buf in model.named_buffers():
            if name.endswith("position_ids"):
                buf.copy_(torch.arange(buf.shape[-1], device=buf.device).expand_as(buf))
            else:  # token_type_ids and any other index buffer start at zero
                buf.zero_()
    if dtype != "fp32":
        model = model.to(getattr(torch, TORCH_DTYPES[dtype]))
    return model.eval()


def example_inputs(batch_size: int, seq_len: int, *, vocab_size: int = 30522, device: Any = "cpu", seed: int = 0):
    """Random token ids and a full attention mask, both ``batch_size x seq_len`` int64."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    input_ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)
    attention_mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    return input_ids.to(device), attention_mask.to(device)


def encoder_module(model):
    """Wrap a BertModel so ``forward(input_ids, attention_mask)`` returns the last hidden state.

    Positional inputs make the module traceable and exportable to ONNX.
    """
    import torch

    class _Encoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return _Encoder(model).eval()
