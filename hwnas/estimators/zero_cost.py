"""Training-free (zero-cost) proxies that apply to transformers.

Both run forward passes only, on a few unlabelled sentences, with the student's
weights taken as ``hwnas distill`` would start them: sliced from the supernet
when one is given, else the leading layers and units of the teacher. (The
papers compute their proxies at random initialisation; hwnas students never
start there, so the proxies see the weights a student actually starts from.)

``wpca``
    after W-PCA (Tang et al., "W-PCA Based Gradient-Free Proxy for Efficient
    Search of Lightweight Language Models", ICLR 2025): per layer, the number of
    principal components of the FFN's intermediate activations needed to explain
    ``eta`` (default 0.99) of their variance, summed over layers, times the
    parameter count. Reported as the log of that product.
``attn-confidence``
    after Serianni and Kalita ("Training-free Neural Architecture Search for RNNs
    and Transformers", ACL 2023): for every head of every layer, the mean over
    tokens of the largest attention weight a token gives; summed over heads and
    layers.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig, check_int
from hwnas.estimators._encoders import EncoderSource
from hwnas.estimators.base import ESTIMATORS, AccuracyEstimator
from hwnas.space import Architecture

__all__ = ["WPCA", "AttentionConfidence"]


def _sentences(path: str | Path | None, rows: int) -> list[str]:
    """The first ``rows`` texts of a labelled or unlabelled table (default: the embedded SST-2 sample)."""
    from hwnas.distill.data import load_task

    if path is None:
        from hwnas.data import embedded_path

        path = embedded_path("sst2/train.tsv")
    return list(load_task(path, limit=rows).texts)


class _ForwardProxy(AccuracyEstimator):
    requires = frozenset()

    def __init__(self, *, supernet: Any = None, teacher: str | Path = "default", task: str | Path | None = None,
                 rows: int = 64, max_len: int = 64, **_: Any) -> None:
        super().__init__()
        for n, v in (("rows", rows), ("max_len", max_len)):
            check_int(n, v, 2)
        self.source = EncoderSource(supernet=supernet, teacher=teacher)
        self._texts = _sentences(task, rows)
        self.max_len = max_len
        self._batch: Any = None

    def validate(self, arch: Architecture) -> Architecture:
        return self.source.validate(arch)

    def check_space(self, space) -> None:
        self.validate(space.largest)

    def _inputs(self):
        if self._batch is None:
            enc = self.source.tokenizer(self._texts, truncation=True, max_length=self.max_len, padding=True, return_tensors="pt")
            self._batch = {k: enc[k] for k in ("input_ids", "attention_mask")}
        return self._batch

    def _score(self, archs: list[Architecture]) -> np.ndarray:
        import torch

        batch = self._inputs()
        out = []
        with torch.no_grad():
            for arch in archs:
                out.append(self._one(self.source.encoder(arch), arch, batch))
        return np.array(out, dtype=np.float64)

    @abstractmethod
    def _one(self, model: Any, arch: Architecture, batch: dict) -> float:
        """The proxy of one architecture's encoder on the shared batch."""


@ESTIMATORS.register("wpca")
class WPCA(_ForwardProxy):
    name = "wpca"
    description = "W-PCA zero-cost proxy (Tang et al., ICLR 2025): FFN principal components x parameters; ~0.1-1 s"

    def __init__(self, *, eta: float = 0.99, **kwargs: Any) -> None:
        if not isinstance(eta, (int, float)) or not 0 < eta < 1:
            raise InvalidConfig(f"eta must be a number in (0, 1); got {eta!r}")
        super().__init__(**kwargs)
        self.eta = float(eta)

    def _one(self, model: Any, arch: Architecture, batch: dict) -> float:
        acts: list[Any] = []
        hooks = [layer.intermediate.register_forward_hook(lambda m, a, o: acts.append(o)) for layer in model.encoder.layer]
        try:
            model(**batch)
        finally:
            for h in hooks:
                h.remove()
        keep = batch["attention_mask"].bool()
        total = 0
        for a in acts:
            x = a[keep].double()  # tokens x ffn
            x = x - x.mean(0, keepdim=True)
            var = np.sort(np.linalg.svd(x.numpy(), compute_uv=False) ** 2)[::-1]
            share = np.cumsum(var) / max(var.sum(), 1e-30)
            total += int(np.searchsorted(share, self.eta) + 1)
        return float(np.log(total) + np.log(arch.num_parameters()))


@ESTIMATORS.register("attn-confidence")
class AttentionConfidence(_ForwardProxy):
    name = "attn-confidence"
    description = "attention confidence (Serianni & Kalita, ACL 2023): summed max attention weight per head; ~0.1-1 s"

    def _one(self, model: Any, arch: Architecture, batch: dict) -> float:
        out = model(**batch, output_attentions=True)
        mask = batch["attention_mask"].to(out.attentions[0].dtype)  # batch x seq
        total = 0.0
        for att in out.attentions:  # batch x heads x seq x seq
            top = att.max(dim=-1).values  # batch x heads x seq
            per_head = (top * mask[:, None, :]).sum((0, 2)) / mask.sum()
            total += float(per_head.sum())
        return total
